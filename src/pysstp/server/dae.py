"""The server's sessions as Dynamic Authorization (:mod:`pysstp.aaa.dae`) sees them: found by their
identification attributes, ended with Admin-Reset, their timeouts changed by a CoA-Request.

With several workers the supervisor holds the listener and asks every worker to act on its own sessions
(:class:`WorkerSessions`, :func:`act_on_request`): the request is answered from all their answers
(docs/scaling.md, "Workers")."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from pysstp.aaa.dae import (
    Change,
    DaeClient,
    DaeServer,
    DaeSession,
    DynamicAuthorization,
    LocalSessions,
    Selector,
    SessionTable,
)
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.aaa.radius.server import read_secret
from pysstp.errors import SystemSetupError
from pysstp.server.app import ServerConnection, SstpServerApp
from pysstp.server.config import DaeSettings


@dataclass(frozen=True)
class ServerSession:
    """One call of the server, with the attributes a Disconnect- or CoA-Request names sessions by."""

    connection: ServerConnection

    @property
    def session_id(self) -> str:
        """Acct-Session-Id."""
        return self.connection.info.session_id

    @property
    def user(self) -> str | None:
        """The name the session was admitted with."""
        return self.connection.info.user

    @property
    def framed_address(self) -> IPv4Address | None:
        """The session's tunnel address."""
        return self.connection.info.address

    @property
    def calling_station(self) -> str:
        """The client's address (what the server sends as Calling-Station-Id)."""
        return self.connection.source


class ServerSessions(LocalSessions):
    """The :class:`~pysstp.aaa.dae.SessionTable` of one :class:`SstpServerApp`."""

    def __init__(self, app: SstpServerApp) -> None:
        self.app = app

    def sessions(self) -> Iterator[ServerSession]:
        """Calls that have a user: authenticated, and up or coming up (a call still negotiating its login
        has no session to end or change yet)."""
        for connection in self.app.connections:
            if connection.info.user is not None and not connection.closed:
                yield ServerSession(connection)

    def disconnect(self, session: DaeSession, reason: str) -> None:
        """End the call in order, with the terminate cause Admin-Reset."""
        assert isinstance(session, ServerSession)
        session.connection.end(reason, TerminateCause.ADMIN_RESET)

    def change(self, session: DaeSession, change: Change) -> None:
        """Apply a CoA-Request: a new Session-Timeout counts from now, an Idle-Timeout replaces the
        server's for this session (0 removes either)."""
        assert isinstance(session, ServerSession)
        if change.session_timeout is not None:
            session.connection.set_session_timeout(change.session_timeout)
        if change.idle_timeout is not None:
            session.connection.set_idle_timeout(change.idle_timeout)


Ask = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Sends a request to one worker and returns its answer (raises ``ConnectionError`` when it is gone)."""


class WorkerSessions:
    """The :class:`~pysstp.aaa.dae.SessionTable` of several workers: each acts on its own sessions
    (:func:`act_on_request`), and the sessions are all that any of them matched."""

    def __init__(self, workers: Callable[[], Sequence[Ask]]) -> None:
        self.workers = workers
        """Asks each running worker (one that died meanwhile has no sessions left to act on)."""

    async def act(self, selector: Selector, change: Change | None, reason: str) -> list[str]:
        """Ask every worker at once; join their Acct-Session-Ids."""
        request = {
            "op": "dae",
            "session_id": selector.session_id,
            "user": selector.user,
            "address": str(selector.address) if selector.address is not None else None,
            "calling_station": selector.calling_station,
            "change": None if change is None else [change.session_timeout, change.idle_timeout],
            "reason": reason,
        }
        answers = await asyncio.gather(*(ask(request) for ask in self.workers()), return_exceptions=True)
        return [
            session_id
            for answer in answers
            if not isinstance(answer, BaseException)
            for session_id in answer.get("sessions", ())
        ]


async def act_on_request(table: SessionTable, request: dict[str, Any]) -> dict[str, Any]:
    """A worker's answer to :class:`WorkerSessions`: what it did to its own sessions."""
    address = request["address"]
    selector = Selector(
        session_id=request["session_id"],
        user=request["user"],
        address=IPv4Address(address) if address is not None else None,
        calling_station=request["calling_station"],
    )
    change = None if request["change"] is None else Change(*request["change"])
    return {"sessions": await table.act(selector, change, request["reason"])}


def dae_clients(settings: DaeSettings) -> list[DaeClient]:
    """The allow-listed clients with their secrets read from their files; raises
    :class:`~pysstp.errors.ConfigError` for a file that cannot be used."""
    return [DaeClient(client.address, read_secret(client.secret_file)) for client in settings.clients]


async def start_dae(table: SessionTable, settings: DaeSettings) -> DaeServer | None:
    """Listen for Disconnect- and CoA-Requests for the sessions of ``table``; ``None`` when no client is
    configured. Raises :class:`~pysstp.errors.SystemSetupError` (port in use ...) or ``ConfigError``."""
    if not settings.clients:
        return None
    server = DaeServer(DynamicAuthorization(dae_clients(settings), table))
    try:
        await server.start(settings.listen, settings.port)
    except OSError as exc:
        # uvloop raises its own OSError without an errno, the system's as its cause.
        cause = exc if exc.errno is not None or not isinstance(exc.__cause__, OSError) else exc.__cause__
        why = "it is in use" if cause.errno == errno.EADDRINUSE else (cause.strerror or str(cause)).lower()
        raise SystemSetupError(
            f"cannot listen for dynamic authorization on {settings.listen} UDP port {settings.port}: {why} "
            "(set dae.listen and dae.port)"
        ) from None
    return server
