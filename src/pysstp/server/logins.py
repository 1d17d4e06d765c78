"""Logins: the backend's answers to a call's questions, and what a final yes gives the session.

On a :class:`~pysstp.link.Verification` one task per question asks the backend (behind the login
back-off); only that call waits. After the final yes the user's session limit is applied (refused, or the
user's oldest sessions make way) and the session's addresses are reserved by the
:class:`~pysstp.server.addresses.AddressAuthority`, an awaited step so that an authority in another
process can answer it; only then does the link hear the verdict and go on to IPCP, where
``network_for_user`` hands over the reservation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from pysstp.aaa.backend import Answer
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.link import ServerNetwork, Verdict, Verification
from pysstp.server.addresses import AddressAuthority
from pysstp.server.admission import Admission
from pysstp.server.backoff import BackoffBackend
from pysstp.server.session import NO_AUTHORIZATION, ServerConnection
from pysstp.server.sessions import SessionTable
from pysstp.server.stats import FailureReason


class Logins:
    """Answers the calls' logins for the server."""

    def __init__(
        self,
        backend: BackoffBackend,
        admission: Admission,
        addresses: AddressAuthority,
        table: SessionTable[ServerConnection],
        forget: Callable[[ServerConnection], None],
        count_failure: Callable[[ServerConnection, FailureReason], None],
    ) -> None:
        self.backend = backend
        self.admission = admission
        self.addresses = addresses
        self.table = table
        self._sessions_of: dict[str, dict[ServerConnection, None]] = {}
        """Each user's sessions that hold addresses, so that a login counts the user's sessions without
        reading every call's (with 100,000 calls that scan was most of a worker's CPU per login,
        docs/scaling.md "Numbers")."""
        self.forget = forget
        """Takes a replaced session out of every table at once."""
        self.count_failure = count_failure

    def verify(self, connection: ServerConnection, question: Verification) -> None:
        """Ask the backend; only this call waits for the answer."""
        connection.asked = True
        if connection.verifying is not None:
            # A new authenticator asks (the peer started LCP over): nobody waits for the old answer.
            connection.verifying.cancel()
        connection.verifying = asyncio.get_running_loop().create_task(self._answer(connection, question))

    async def _answer(self, connection: ServerConnection, question: Verification) -> None:
        try:
            answer = await self.backend.verify(question, connection.context)
        except Exception as exc:  # a broken backend refuses this login, never the server
            connection.log.warning(
                "%s: the authentication backend failed (%s); refusing the login",
                connection.peer,
                exc,
                extra={"event": "backend_failed"},
            )
            reason = f"the authentication backend failed: {exc}"
            answer = Answer(Verdict(False, question.user, reason=reason))
        if connection.closed or connection.link.is_closed:
            connection.verifying = None
            return
        if answer.verdict.success and not answer.verdict.more:
            # Most logins get nothing particular (a user entry of defaults, a RADIUS accept without
            # attributes): such a session keeps the shared empty authorization, not the backend's copy.
            authorization = answer.authorization
            connection.authorization = (
                NO_AUTHORIZATION if authorization == NO_AUTHORIZATION else authorization
            )
            # The addresses are reserved before the link goes on to IPCP, which asks for them at once.
            connection.network = await self._reserve(connection, answer.verdict.user or question.user)
            if connection.network is None:
                return
        connection.verifying = None
        if answer.authorization.reply_message:
            message = answer.authorization.reply_message
            connection.log.info("%s: the backend says %r", connection.peer, message)
        connection.link.answer(asyncio.get_running_loop().time(), question, answer.verdict)
        connection.flush()

    async def _reserve(self, connection: ServerConnection, user: str) -> ServerNetwork | str | None:
        """The backend accepted ``user``: apply the user's session limit and reserve the addresses (the
        address authority may answer later); ``None`` when the call ended meanwhile."""
        others = sorted(
            (c for c in self._sessions_of.get(user, ()) if c is not connection),
            key=lambda c: c.info.started,
        )
        decision = self.admission.for_user(user, connection.authorization.max_sessions, others)
        if isinstance(decision, str):
            return self._refuse(connection, decision)
        self._replace(decision, connection)
        self.release(connection)  # a login again on the same call (LCP renegotiated) frees the old one
        reservation = await self.addresses.reserve(
            user,
            connection.authorization,
            prefix_taken=lambda prefix: self.table.overlaps(prefix, connection),
            log=connection.log,
            peer=connection.peer,
        )
        if isinstance(reservation, str):
            return self._refuse(connection, reservation)
        if connection.closed or connection.link.is_closed:
            self.addresses.release(reservation.address, reservation.pool)
            return None
        connection.hold(user, reservation)
        self._sessions_of.setdefault(user, {})[connection] = None
        return reservation.network

    def sessions_of(self, user: str) -> int:
        """How many sessions ``user`` holds in this process."""
        return len(self._sessions_of.get(user, ()))

    def release(self, connection: ServerConnection) -> None:
        """Give the session's IPv4 address back and take it out of the tables (idempotent)."""
        user = connection.info.user
        if user is not None and (mine := self._sessions_of.get(user)) is not None:
            mine.pop(connection, None)
            if not mine:
                del self._sessions_of[user]
        if connection.address_key is not None:
            self.table.remove_address(connection.address_key, connection)
            connection.address_key = None
        if connection.info.address is not None and connection.address_pool is not None:
            self.addresses.release(connection.info.address, connection.address_pool)
        connection.address_pool = None

    def _replace(self, older: Iterable[ServerConnection], newer: ServerConnection) -> None:
        """``on_limit = "replace"``: end the user's oldest sessions for a new one. They leave the tables at
        once, so the new session can have the same fixed address and routes while they say goodbye."""
        for connection in older:
            connection.log.info(
                "%s: session %s of user %r ends for the newer one from %s (on_limit = replace)",
                connection.peer,
                connection.info.session_id,
                connection.info.user,
                newer.peer,
                extra={"event": "replaced"},
            )
            connection.end("replaced by a newer session of the same user", TerminateCause.ADMIN_RESET)
            self.forget(connection)

    def _refuse(self, connection: ServerConnection, reason: str) -> str:
        self.count_failure(connection, FailureReason.ADDRESS)
        connection.log.warning("%s: refused: %s", connection.peer, reason, extra={"event": "refused"})
        return reason
