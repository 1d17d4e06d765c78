"""The server's sessions as Dynamic Authorization (:mod:`pysstp.aaa.dae`) sees them: found by their
identification attributes, ended with Admin-Reset, their timeouts changed by a CoA-Request."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address

from pysstp.aaa.dae import Change, DaeClient, DaeServer, DaeSession, DynamicAuthorization
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


class ServerSessions:
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


def dae_clients(settings: DaeSettings) -> list[DaeClient]:
    """The allow-listed clients with their secrets read from their files; raises
    :class:`~pysstp.errors.ConfigError` for a file that cannot be used."""
    return [DaeClient(client.address, read_secret(client.secret_file)) for client in settings.clients]


async def start_dae(app: SstpServerApp, settings: DaeSettings) -> DaeServer | None:
    """Listen for Disconnect- and CoA-Requests for ``app``'s sessions; ``None`` when no client is
    configured. Raises :class:`~pysstp.errors.SystemSetupError` (port in use ...) or ``ConfigError``."""
    if not settings.clients:
        return None
    server = DaeServer(DynamicAuthorization(dae_clients(settings), ServerSessions(app)))
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
