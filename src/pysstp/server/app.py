"""The SSTP server: TLS listeners, one shared TUN device, the session table and the packet routing.

Every accepted call is a :class:`ServerConnection` (a :class:`~pysstp.connection.LinkConnection` around
a :class:`~pysstp.link.ServerLink`). Packets the kernel routes into the TUN are read in batches and handed
to the session that owns the destination address (a dict lookup); packets from a session come in one batch
per TLS read and are written to the TUN after checking that their source address belongs to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import itertools
import logging
import secrets
import ssl
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal, Protocol, cast

from pysstp.aaa.backend import Answer, AuthBackend, Authorization, CallContext
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.connection import LinkConnection
from pysstp.errors import PysstpError
from pysstp.link import (
    AuthenticationFailed,
    CallEvent,
    Ipv6Up,
    LinkDown,
    LinkUp,
    ServerConfig,
    ServerLink,
    ServerNetwork,
    Verdict,
    Verification,
    ip_mtu,
)
from pysstp.ppp.constants import DEFAULT_MRU
from pysstp.ppp.ipv6cp import link_local_address
from pysstp.server import ipv6
from pysstp.server.accounting import SessionAccounting
from pysstp.server.backoff import Backoff, BackoffBackend
from pysstp.server.listener import TlsListener
from pysstp.sstp.http import error_response

log = logging.getLogger("pysstp.server")

TUN_BATCH = 64
"""Packets read from the TUN per wake-up: enough to coalesce writes, few enough to stay fair."""
SHUTDOWN_GRACE = 3.0
"""Seconds the server waits for sessions to finish CALL_DISCONNECT on shutdown."""
IDLE_CHECK_INTERVAL = 30.0
"""The longest time between two checks for idle sessions."""

_SESSION_PREFIX = secrets.randbits(32)
"""Makes this process's Acct-Session-Ids differ from those of its earlier runs (RFC 2866 §5.5)."""
_CALL_NUMBERS = itertools.count(1)


def new_call_number() -> int:
    """A number per call, unique in this process: NAS-Port and the low half of the Acct-Session-Id."""
    return next(_CALL_NUMBERS)


def session_id(number: int) -> str:
    """The Acct-Session-Id of call ``number``: 16 hex digits, the process's random prefix first."""
    return f"{_SESSION_PREFIX:08X}{number & 0xFFFFFFFF:08X}"


class Tun(Protocol):
    """What the server needs of the TUN device."""

    @property
    def fd(self) -> int: ...

    def read_batch(self, limit: int) -> list[bytes]: ...

    def write_batch(self, packets: list[memoryview]) -> None: ...


class KernelRoutes(Protocol):
    """Routes into the TUN added and removed per session: networks behind a client (site-to-site), and
    host routes that give a session a smaller MTU than the TUN's."""

    def add(self, network: IPv4Network | IPv6Network, mtu: int | None = None) -> None: ...

    def remove(self, network: IPv4Network | IPv6Network) -> None: ...


class Pool(Protocol):
    """What the server needs of an address pool."""

    network: IPv4Network

    def allocate(self, user: str, fixed: IPv4Address | None = None) -> IPv4Address | None: ...

    def release(self, address: IPv4Address) -> None: ...

    def fixed_refusal(self, address: IPv4Address) -> str | None: ...


OnLimit = Literal["deny", "replace"]
"""What a login beyond a user's session limit does: refused, or the user's oldest session ends for it."""


@dataclass(frozen=True)
class Limits:
    """Per-server admission limits; 0 means unlimited."""

    max_sessions: int = 1000
    max_sessions_per_user: int = 0
    max_negotiating: int = 256
    connections_per_source_per_minute: int = 60
    on_limit: OnLimit = "deny"
    """What happens when a user's session limit is reached (``max_sessions_per_user`` or the user's own)."""


@dataclass
class SessionInfo:
    """What ``pysstp status`` shows of one session."""

    peer: str
    started: float
    user: str | None = None
    address: IPv4Address | None = None
    routes: tuple[IPv4Network | IPv6Network, ...] = ()
    auth_method: str | None = None
    hash_protocol: str | None = None
    tls: str | None = None
    session_id: str = ""
    """Acct-Session-Id (:class:`~pysstp.aaa.backend.CallContext`)."""
    classes: tuple[bytes, ...] = ()
    """The backend's Class values for this session, kept for accounting."""


class ServerConnection(LinkConnection):
    """One accepted call."""

    link: ServerLink

    def __init__(self, server: SstpServerApp, link: ServerLink) -> None:
        super().__init__(link, deliver=server.deliver, on_event=server.on_event)
        self.server = server
        self.info = SessionInfo(peer="?", started=time.time())
        self.source = "?"
        self.address_key: bytes | None = None
        self.address_pool: Pool | None = None
        """The pool its address came from (and goes back to)."""
        self.ipv6_keys: tuple[bytes, ...] = ()
        """Its IPv6 addresses in the routing table: link-local and, with a prefix, the global one."""
        self.router_address: IPv6Address | None = None
        """The server's link-local address on this session's link, once IPv6CP is up."""
        self.ipv6_prefix = server.ipv6_prefix
        """The /64 its router advertisements carry: the server's, or the backend's Framed-IPv6-Prefix."""
        self.mtu_routes: tuple[IPv4Network | IPv6Network, ...] = ()
        """Host routes that carry this session's MTU, when it is below the TUN's."""
        self.auth_failure: str | None = None
        """Why authentication failed, in the backend's words."""
        self.terminate_cause: TerminateCause | None = None
        """Why the call ended, for accounting: set by whoever ends it here, else from how it ended."""
        number = new_call_number()
        self.context = CallContext(session_id(number), "?", "?", number)
        """Who is calling, for the authentication backend (completed when the connection is made)."""
        self.info.session_id = self.context.session_id
        self.authorization = Authorization()
        """What the backend's yes decided about this session."""
        self.verifying: asyncio.Task[None] | None = None
        """The backend's answer being awaited, if any."""
        self.asked = False
        """A question went to the backend: it hears :meth:`AuthBackend.finished` when the call ends."""
        self._session_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admission control happens here, before the link says anything."""
        peername = transport.get_extra_info("peername")
        self.peer = self.info.peer = f"{peername[0]}:{peername[1]}" if peername else "unknown peer"
        self.source = str(peername[0]) if peername else "?"
        sockname = transport.get_extra_info("sockname")
        self.context = CallContext(
            self.context.session_id,
            calling_station=self.source,
            called_station=str(sockname[0]) if sockname else "?",
            nas_port=self.context.nas_port,
        )
        penalty = self.server.backoff.refused(self.source)
        if penalty is not None:
            log.warning(
                "%s: refused for %.0f s more after %d failed logins from %s (HTTP 503)",
                self.peer,
                penalty.seconds,
                penalty.failures,
                self.source,
            )
            # uvloop's TLS transport does not derive from asyncio.Transport (see LinkConnection).
            transport = cast(asyncio.Transport, transport)
            transport.set_protocol(RefusedCall(transport, self.server.link_config.handshake_timeout))
            self.closed = True
            return
        refusal = self.server.admit(self)
        if refusal is not None:
            log.warning("%s: refused: %s", self.peer, refusal)
            self.closed = True
            transport.close()
            return
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            self.info.tls = f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()
            if self.server.require_client_certificate and ssl_object.getpeercert(binary_form=True) is None:
                log.warning(
                    "%s: refused: no TLS client certificate (verify-client-certificate = require)", self.peer
                )
                self.closed = True
                transport.close()
                return
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Whatever ended the call, its address and routes go back."""
        super().connection_lost(exc)
        self.server.forget(self)

    def end(self, reason: str, cause: TerminateCause) -> None:
        """End the call in order (LCP Terminate, CALL_DISCONNECT), remembering why for accounting."""
        if self.terminate_cause is None:
            self.terminate_cause = cause
        self.close(reason)

    def set_session_timeout(self, seconds: float) -> None:
        """End the session ``seconds`` from now (Session-Timeout, RFC 2865 §5.27); 0 removes the limit."""
        if self._session_timer is not None:
            self._session_timer.cancel()
            self._session_timer = None
        if seconds > 0 and not self.closed:
            self._session_timer = self._loop.call_later(seconds, self._session_timeout, seconds)

    def _session_timeout(self, seconds: float) -> None:
        self._session_timer = None
        log.info("%s: session timeout (%.0f s); disconnecting", self.peer, seconds)
        self.end("session timeout", TerminateCause.SESSION_TIMEOUT)

    def set_idle_timeout(self, seconds: float) -> None:
        """End the session after ``seconds`` without IP traffic (Idle-Timeout, RFC 2865 §5.28) instead of
        what the backend or the server said; 0 means never."""
        self.authorization = dataclasses.replace(self.authorization, idle_timeout=seconds)
        if seconds > 0:
            self.server.watch_idle(seconds)

    def stop_timers(self) -> None:
        """The session is over: its own session timeout no longer applies."""
        if self._session_timer is not None:
            self._session_timer.cancel()
            self._session_timer = None

    @property
    def idle_timeout(self) -> float:
        """Seconds without IP before the call is ended: the backend's for this user, else the server's."""
        own = self.authorization.idle_timeout
        return own if own is not None else self.server.idle_timeout

    @property
    def mtu(self) -> int:
        """The session's MTU: the peer's MRU, capped by the backend's Framed-MTU."""
        cap = self.authorization.mtu
        return min(self.link.mtu, ip_mtu(cap)) if cap else self.link.mtu


class RefusedCall(asyncio.Protocol):
    """A call from a source refused after many failed logins: its HTTP request gets 503 Service
    Unavailable, so the client can say that the server turned it away, not that a password was wrong.

    The answer waits for the request: written earlier, it could be lost to the reset that the request
    would cause when it reached a closed socket.
    """

    def __init__(self, transport: asyncio.Transport, timeout: float) -> None:
        self.transport = transport
        self._timer = asyncio.get_running_loop().call_later(timeout, transport.abort)

    def data_received(self, data: bytes) -> None:
        """The request (or whatever the peer sent first): answer 503 and close."""
        if not self.transport.is_closing():
            self.transport.write(error_response(HTTPStatus.SERVICE_UNAVAILABLE))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """Gone: nothing to clean up but the timer."""
        self._timer.cancel()


class SstpServerApp:
    """The server: accepts calls, assigns addresses, routes packets between the TUN and the sessions."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        link_config: ServerConfig,
        backend: AuthBackend,
        pool: Pool,
        tun: Tun,
        pools: Mapping[str, Pool] | None = None,
        dns: tuple[IPv4Address, ...] = (),
        server_address: IPv4Address,
        limits: Limits | None = None,
        idle_timeout: float = 0.0,
        backoff: Backoff | None = None,
        kernel_routes: KernelRoutes | None = None,
        ipv6_prefix: IPv6Network | None = None,
        tun_mtu: int = DEFAULT_MRU,
        require_client_certificate: bool = False,
        accounting: SessionAccounting | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.accounting = accounting
        """RADIUS accounting of the sessions, if configured."""
        self.require_client_certificate = require_client_certificate
        """Refuse calls without a TLS client certificate. The context only requests one (CERT_OPTIONAL), so
        a missing certificate is refused here, after the handshake, with the session's own log line."""
        self.link_config = link_config
        self.backend = BackoffBackend(backend, backoff or Backoff())
        """Who decides logins: the configured backend, behind the login back-off."""
        self.pool = pool
        self.pools = dict(pools or {})
        """Named pools, picked by the backend (RADIUS Framed-Pool)."""
        self.tun = tun
        self.dns = dns
        self.server_address = server_address
        self.limits = limits or Limits()
        self.idle_timeout = idle_timeout
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_interval: float | None = None
        self.kernel_routes = kernel_routes
        self.tun_mtu = tun_mtu
        """The TUN device's MTU: the largest MTU any session may have (see :meth:`_limit_path_mtu`)."""
        self.ipv6_prefix = ipv6_prefix
        """The /64 announced to every session by router advertisement; None for link-local only."""
        self._ra_timer: asyncio.TimerHandle | None = None
        self.connections: set[ServerConnection] = set()
        self.negotiating: set[ServerConnection] = set()
        """Admitted calls whose link is not up yet (kept apart so admission does not scan every call)."""
        self.by_address: dict[bytes, ServerConnection] = {}
        self.by_network: list[tuple[IPv4Network | IPv6Network, ServerConnection]] = []
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        # The TLS handshake gets as long as the HTTP request that follows it.
        self.listener = TlsListener(self._new_connection, ssl_context, link_config.handshake_timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.tun_drops = 0
        self.spoofed = 0
        """Packets from sessions dropped because their source is not the session's (or they are not IP)."""

    @property
    def backoff(self) -> Backoff:
        """The failed-login counts and their cost, shared by admission (refusal) and the backend wrapper."""
        return self.backend.backoff

    @backoff.setter
    def backoff(self, backoff: Backoff) -> None:
        self.backend.backoff = backoff

    # -- lifecycle ---------------------------------------------------------------------------------

    async def listen(self, hosts: Iterable[str], port: int) -> list[tuple[str, int]]:
        """Start a TLS listener on each host; return the bound (host, port) pairs."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.tun.fd, self._on_tun_readable)
        if self.idle_timeout > 0:
            self.watch_idle(self.idle_timeout)
        if self.link_config.ipv6:
            # Also in link-local mode: sessions may have their own prefix (Framed-IPv6-Prefix).
            self._ra_timer = self._loop.call_later(ipv6.RA_INTERVAL, self._advertise_all)
        bound: list[tuple[str, int]] = []
        for host in hosts:
            bound += await self.listener.open(host, port)
        return bound

    async def shutdown(self, reason: str = "server shutting down") -> None:
        """Stop accepting, disconnect every session in order, wait a little for them, then close."""
        await self.listener.close()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._ra_timer is not None:
            self._ra_timer.cancel()
        for connection in list(self.connections):
            connection.terminate_cause = connection.terminate_cause or TerminateCause.ADMIN_REBOOT
            connection.close(reason)
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while any(not c.closed for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            if connection.transport is not None and not connection.closed:
                connection.transport.abort()
                # abort() reports the loss only on a later loop turn, after the caller has stopped
                # accounting: the session's Stop (and its address) must be handed over now.
                self.forget(connection)
        if self._loop is not None:
            self._loop.remove_reader(self.tun.fd)

    def reconfigure(
        self,
        *,
        ssl_context: ssl.SSLContext,
        link_config: ServerConfig,
        dns: tuple[IPv4Address, ...],
        limits: Limits,
        idle_timeout: float,
        require_client_certificate: bool,
    ) -> None:
        """Apply a reloaded configuration (SIGHUP). TLS, the link settings and DNS hold for calls accepted
        from now on, limits and timeouts at once; established calls keep what they negotiated."""
        self.ssl_context = self.listener.ssl_context = ssl_context
        self.listener.handshake_timeout = link_config.handshake_timeout
        self.link_config = link_config
        self.dns = dns
        self.limits = limits
        self.require_client_certificate = require_client_certificate
        if idle_timeout != self.idle_timeout:
            self.idle_timeout = idle_timeout
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
                self._idle_interval = None
            if idle_timeout > 0 and self._loop is not None:
                self.watch_idle(idle_timeout)
            for connection in self.connections:
                if connection.authorization.idle_timeout:
                    self.watch_idle(connection.authorization.idle_timeout)

    def watch_idle(self, timeout: float) -> None:
        """Check for idle calls often enough for a ``timeout`` (the server's, or one session's)."""
        interval = min(timeout / 4, IDLE_CHECK_INTERVAL)
        if self._idle_interval is not None and self._idle_interval <= interval:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_interval = interval
        self._check_idle()

    def _check_idle(self) -> None:
        """Disconnect (in order) calls that carried no IP packet for their idle timeout."""
        assert self._loop is not None and self._idle_interval is not None
        now = self._loop.time()
        for connection in list(self.connections):
            timeout = connection.idle_timeout
            if timeout > 0 and connection.link.is_up and connection.last_ip < now - timeout:
                log.info("%s: idle for %.0f s; disconnecting", connection.peer, timeout)
                connection.end("idle timeout", TerminateCause.IDLE_TIMEOUT)
        self._idle_timer = self._loop.call_later(self._idle_interval, self._check_idle)

    def _new_connection(self) -> ServerConnection:
        connection: ServerConnection

        def network_for_user(user: str) -> ServerNetwork | str:
            return self._assign(connection, user)

        link = ServerLink(self.link_config, network_for_user=network_for_user)
        connection = ServerConnection(self, link)
        return connection

    # -- admission ---------------------------------------------------------------------------------

    def admit(self, connection: ServerConnection) -> str | None:
        """Why a new connection must be refused, or ``None`` to accept it."""
        limits = self.limits
        if limits.max_sessions and len(self.connections) >= limits.max_sessions:
            return f"session limit reached ({limits.max_sessions})"
        negotiating = len(self.negotiating)
        if limits.max_negotiating and negotiating >= limits.max_negotiating:
            return f"too many calls negotiating at once ({negotiating})"
        source = connection.source
        if limits.connections_per_source_per_minute:
            now = time.monotonic()
            recent = self._recent[source]
            while recent and recent[0] < now - 60:
                recent.popleft()
            if len(recent) >= limits.connections_per_source_per_minute:
                return (
                    f"more than {limits.connections_per_source_per_minute} connections a minute from {source}"
                )
            recent.append(now)
        self.connections.add(connection)
        self.negotiating.add(connection)
        return None

    def _assign(self, connection: ServerConnection, user: str) -> ServerNetwork | str:
        """IPCP is about to start for ``user``: pick its address (the backend's fixed one first), or say
        why not."""
        authorization = connection.authorization
        limit = authorization.max_sessions or self.limits.max_sessions_per_user
        if limit:
            others = sorted(
                (c for c in self.connections if c.info.user == user and c is not connection),
                key=lambda c: c.info.started,
            )
            if len(others) >= limit:
                if self.limits.on_limit == "deny":
                    return self._refuse(
                        connection, f"user {user!r} already has {len(others)} session(s), the limit"
                    )
                self._replace(others[: len(others) - limit + 1], connection)
        fixed = authorization.address
        if fixed is not None:
            # A fixed address is taken from the pool whose network holds it, whatever Framed-Pool says.
            pool = next((p for p in self.pools.values() if fixed in p.network), self.pool)
            if (problem := pool.fixed_refusal(fixed)) is not None:
                # The peer sees the first 64 bytes (LCP Terminate-Request): what is wrong goes first.
                return self._refuse(connection, f"fixed address {problem} (user {user!r})")
        elif authorization.pool is not None:
            named = self.pools.get(authorization.pool)
            if named is None:
                known = ", ".join(sorted(self.pools)) or "none"
                return self._refuse(
                    connection,
                    f"pool {authorization.pool!r} of user {user!r} is not in the config (named pools: "
                    f"{known}); add [pools.{authorization.pool}] or correct Framed-Pool",
                )
            pool = named
        else:
            pool = self.pool
        address = pool.allocate(user, fixed)
        if address is None:
            if fixed is not None:
                return self._refuse(connection, f"the fixed address {fixed} of user {user!r} is in use")
            where = "the pool" if authorization.pool is None else f"pool {authorization.pool!r}"
            return self._refuse(connection, f"no IPv4 address left in {where} for user {user!r}")
        ipv6_prefix = self._own_ipv6_prefix(connection, authorization.ipv6_prefix)
        if isinstance(ipv6_prefix, str):
            pool.release(address)
            return self._refuse(connection, f"{ipv6_prefix} (user {user!r})")
        connection.info.user = user
        connection.info.address = address
        connection.address_pool = pool
        connection.info.routes = authorization.routes
        if ipv6_prefix is not None:
            # Routed to the session like a network behind it (RFC 3162 §2.3), so every address the client
            # forms in it (SLAAC, privacy addresses) reaches it and may leave it.
            connection.ipv6_prefix = ipv6_prefix
            connection.info.routes += (ipv6_prefix,)
        connection.info.classes = authorization.classes
        connection.address_key = address.packed
        return ServerNetwork(self.server_address, address, authorization.dns or self.dns)

    def _own_ipv6_prefix(
        self, connection: ServerConnection, prefix: IPv6Network | None
    ) -> IPv6Network | str | None:
        """The session's own /64 from the backend (Framed-IPv6-Prefix), ``None`` for the server's, or
        why the login must be refused."""
        if prefix is None or prefix == self.ipv6_prefix:
            return None
        if not self.link_config.ipv6:
            log.info("%s: IPv6 is off; Framed-IPv6-Prefix %s not used", connection.peer, prefix)
            return None
        if prefix.prefixlen != ipv6.SLAAC_PREFIX_LEN:
            # SLAAC forms addresses only in a /64 (RFC 4862 §5.5.3, RFC 4291 §2.5.1).
            log.warning(
                "%s: Framed-IPv6-Prefix %s is not a /64; the session gets the server's prefix",
                connection.peer,
                prefix,
            )
            return None
        if self.ipv6_prefix is not None and prefix.overlaps(self.ipv6_prefix):
            return f"Framed-IPv6-Prefix {prefix} overlaps the server's prefix {self.ipv6_prefix}"
        for network, owner in self.by_network:
            if network.overlaps(prefix) and owner is not connection:
                return f"Framed-IPv6-Prefix {prefix} is already routed to another session"
        return prefix

    def _replace(self, older: list[ServerConnection], newer: ServerConnection) -> None:
        """``on_limit = "replace"``: end the user's oldest sessions for a new one. They leave the tables at
        once, so the new session can have the same fixed address and routes while they say goodbye."""
        for connection in older:
            log.info(
                "%s: session %s of user %r ends for the newer one from %s (on_limit = replace)",
                connection.peer,
                connection.info.session_id,
                connection.info.user,
                newer.peer,
            )
            connection.end("replaced by a newer session of the same user", TerminateCause.ADMIN_RESET)
            self.forget(connection)

    @staticmethod
    def _refuse(connection: ServerConnection, reason: str) -> str:
        log.warning("%s: refused: %s", connection.peer, reason)
        return reason

    # -- events ------------------------------------------------------------------------------------

    def on_event(self, connection: LinkConnection, event: CallEvent) -> None:
        """Log what matters and keep the routing table in step with the sessions."""
        assert isinstance(connection, ServerConnection)
        if isinstance(event, LinkUp):
            self.negotiating.discard(connection)
            connection.info.auth_method = event.auth_method.value if event.auth_method else None
            connection.info.hash_protocol = event.hash_protocol.name if event.hash_protocol else None
            if connection.address_key is not None:
                self.by_address[connection.address_key] = connection
            if connection.info.address is not None:
                self._limit_path_mtu(connection, [connection.info.address])
            for network in connection.info.routes:
                self._add_site_route(connection, network)
            log.info(
                "%s: user %r up: %s, %s, %s binding, %s",
                connection.peer,
                event.user,
                event.peer_address,
                connection.info.auth_method,
                connection.info.hash_protocol,
                connection.info.tls,
            )
            self._limit_session(connection)
            if self.accounting is not None:
                self.accounting.up(connection)
        elif isinstance(event, Verification):
            self._verify(connection, event)
        elif isinstance(event, AuthenticationFailed):
            connection.auth_failure = event.reason
            log.warning(
                "%s: authentication failed for %r: %s", connection.peer, event.user, connection.auth_failure
            )
        elif isinstance(event, Ipv6Up):
            self._ipv6_up(connection, event)
        elif isinstance(event, LinkDown):
            level = logging.WARNING if event.error else logging.INFO
            reason = event.reason
            if connection.auth_failure is not None:
                reason = f"authentication failed: {connection.auth_failure}"
            if connection.terminate_cause is None:
                # An orderly end we did not start is the client's (CALL_DISCONNECT, LCP Terminate).
                lost = event.error
                connection.terminate_cause = (
                    TerminateCause.LOST_CARRIER if lost else TerminateCause.USER_REQUEST
                )
            log.log(level, "%s: call ended: %s", connection.peer, reason)
            self.forget(connection)

    # -- authentication ----------------------------------------------------------------------------

    def _verify(self, connection: ServerConnection, question: Verification) -> None:
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
            log.warning(
                "%s: the authentication backend failed (%s); refusing the login", connection.peer, exc
            )
            reason = f"the authentication backend failed: {exc}"
            answer = Answer(Verdict(False, question.user, reason=reason))
        connection.verifying = None
        if connection.closed or connection.link.is_closed:
            return
        if answer.verdict.success and not answer.verdict.more:
            connection.authorization = answer.authorization
        if answer.authorization.reply_message:
            log.info("%s: the backend says %r", connection.peer, answer.authorization.reply_message)
        assert self._loop is not None
        connection.link.answer(self._loop.time(), question, answer.verdict)
        connection.flush()

    def _limit_session(self, connection: ServerConnection) -> None:
        """Apply the backend's per-session limits once the call is up."""
        authorization = connection.authorization
        if authorization.idle_timeout:
            self.watch_idle(authorization.idle_timeout)
        if authorization.session_timeout:
            connection.set_session_timeout(authorization.session_timeout)

    def forget(self, connection: ServerConnection) -> None:
        """Take a finished session out of every table and give its address back (idempotent)."""
        if connection.verifying is not None:
            connection.verifying.cancel()
            connection.verifying = None
        connection.stop_timers()
        if connection.asked:
            connection.asked = False
            self.backend.finished(connection.context)
        if self.accounting is not None:
            # Without a LinkDown first, the TCP connection just went away.
            self.accounting.down(connection, connection.terminate_cause or TerminateCause.LOST_CARRIER)
        self.connections.discard(connection)
        self.negotiating.discard(connection)
        if connection.address_key is not None:
            if self.by_address.get(connection.address_key) is connection:
                del self.by_address[connection.address_key]
            connection.address_key = None
            if connection.info.address is not None and connection.address_pool is not None:
                connection.address_pool.release(connection.info.address)
            connection.address_pool = None
        self._drop_ipv6_keys(connection)
        self._remove_mtu_routes(connection, (4,))
        for network, owner in self.by_network:
            if owner is connection:
                self._remove_route(connection, network)
        self.by_network = [(n, c) for n, c in self.by_network if c is not connection]

    def _remove_route(self, connection: ServerConnection, network: IPv4Network | IPv6Network) -> None:
        """Remove a route added for ``connection``; a failure is logged, not raised."""
        if self.kernel_routes is None:
            return
        try:
            self.kernel_routes.remove(network)
        except PysstpError as exc:
            log.warning("%s: could not remove route %s: %s", connection.peer, network, exc)

    def _add_site_route(self, connection: ServerConnection, network: IPv4Network | IPv6Network) -> None:
        """Route a network behind the client into the tunnel while the client is connected."""
        if any(network == n for n, _ in self.by_network):
            log.warning(
                "%s: %s is already routed to another session; not adding it", connection.peer, network
            )
            return
        if self.kernel_routes is not None:
            try:
                self.kernel_routes.add(network)
            except PysstpError as exc:
                log.warning("%s: could not route %s into the tunnel: %s", connection.peer, network, exc)
                return
        self.by_network.append((network, connection))
        log.info("%s: routing %s to user %r", connection.peer, network, connection.info.user)

    # -- IPv6 --------------------------------------------------------------------------------------

    def _ipv6_up(self, connection: ServerConnection, event: Ipv6Up) -> None:
        """IPv6CP is open: route the client's addresses into the session and advertise the prefix."""
        self._drop_ipv6_keys(connection)  # IPv6CP was renegotiated: the identifiers may have changed
        peer_iid = event.peer_interface_id
        if not any(peer_iid) or peer_iid == ipv6.SERVER_INTERFACE_ID:
            log.warning("%s: unusable IPv6 interface identifier %s; no IPv6", connection.peer, peer_iid.hex())
            return
        addresses = [link_local_address(peer_iid)]
        if connection.ipv6_prefix is not None:
            addresses.append(ipv6.interface_address(connection.ipv6_prefix, peer_iid))
        keys = tuple(address.packed for address in addresses)
        if any(key in self.by_address for key in keys):
            # First come, first served: a client must not take over another session's addresses.
            log.warning(
                "%s: IPv6 address %s belongs to another session; no IPv6", connection.peer, addresses[0]
            )
            return
        for key in keys:
            self.by_address[key] = connection
        connection.ipv6_keys = keys
        connection.router_address = link_local_address(event.local_interface_id)
        self._limit_path_mtu(connection, addresses)
        log.info("%s: IPv6 up: %s", connection.peer, ", ".join(map(str, addresses)))
        asyncio.get_running_loop().call_later(ipv6.INITIAL_RA_DELAY, self._advertise, connection)

    def _drop_ipv6_keys(self, connection: ServerConnection) -> None:
        """Take the session's IPv6 addresses out of the routing table (idempotent)."""
        for key in connection.ipv6_keys:
            del self.by_address[key]
        connection.ipv6_keys = ()
        connection.router_address = None
        self._remove_mtu_routes(connection, (6,))

    # -- per-session MTU ---------------------------------------------------------------------------

    def _limit_path_mtu(
        self, connection: ServerConnection, addresses: Iterable[IPv4Address | IPv6Address]
    ) -> None:
        """Give a session whose MTU is below the TUN's host routes with its own MTU.

        The TUN is as large as the largest MRU a client may get (``max-peer-mru``), so with large MRUs
        allowed, a client that negotiated less needs its own limit: the kernel then fragments, or refuses
        with ICMP "fragmentation needed"/"packet too big", what is routed to it, local sockets size their
        segments for it, and the nftables MSS clamp ("rt mtu") clamps to it.
        """
        mtu = connection.mtu
        if self.kernel_routes is None or mtu >= self.tun_mtu:
            return
        for address in addresses:
            network = ipaddress.ip_network(address)
            try:
                self.kernel_routes.add(network, mtu=mtu)
            except PysstpError as exc:
                log.warning("%s: could not limit the MTU to %s to %d: %s", connection.peer, network, mtu, exc)
                continue
            connection.mtu_routes += (network,)

    def _remove_mtu_routes(self, connection: ServerConnection, versions: tuple[int, ...]) -> None:
        """Remove the session's MTU routes of these IP versions (idempotent)."""
        for network in connection.mtu_routes:
            if network.version in versions:
                self._remove_route(connection, network)
        connection.mtu_routes = tuple(n for n in connection.mtu_routes if n.version not in versions)

    def _advertise(self, connection: ServerConnection, destination: IPv6Address = ipv6.ALL_NODES) -> None:
        """Send the session a router advertisement for the prefix (none in link-local-only mode)."""
        if connection.ipv6_prefix is None or connection.router_address is None:
            return
        advertisement = ipv6.router_advertisement(
            connection.ipv6_prefix,
            source=connection.router_address,
            mtu=connection.mtu,
            destination=destination,
        )
        connection.send_ip_batch([advertisement])

    def _advertise_all(self) -> None:
        """Unsolicited advertisements at an interval, so clients' default route and prefix stay fresh."""
        for connection in self.connections:
            self._advertise(connection)
        assert self._loop is not None
        self._ra_timer = self._loop.call_later(ipv6.RA_INTERVAL, self._advertise_all)

    def _accept_ipv6(self, connection: ServerConnection, packet: memoryview) -> bool:
        """Whether a packet from a session that is not IPv4 may go to the TUN: only IPv6 from one of the
        session's addresses or networks. Router Solicitations are answered here instead: on each session's
        link the server is the router."""
        if not ipv6.is_ipv6(packet):
            self.spoofed += 1
            return False
        source = bytes(packet[ipv6.SOURCE])
        if ipv6.is_router_solicitation(packet):
            # RFC 4861 §6.2.6: answer a specified source directly; one that has no address yet via all-nodes.
            self._advertise(
                connection, IPv6Address(source) if source in connection.ipv6_keys else ipv6.ALL_NODES
            )
            return False
        if source in connection.ipv6_keys or self._routed_from(connection, source):
            return True
        self.spoofed += 1
        return False

    def _route_ipv6(self, packet: bytes) -> ServerConnection | None:
        if not ipv6.is_ipv6(packet):
            return None
        destination = packet[ipv6.DESTINATION]
        connection = self.by_address.get(destination)
        if connection is not None or not self.by_network:
            return connection
        return self._route_to_network(IPv6Address(destination))

    # -- data path ---------------------------------------------------------------------------------

    def deliver(self, connection: LinkConnection, packets: list[memoryview]) -> None:
        """IP packets from a session: to the TUN, those whose source belongs to that session."""
        assert isinstance(connection, ServerConnection)
        own = connection.address_key or b""
        accepted: list[memoryview] = []
        accept = accepted.append
        for packet in packets:
            if len(packet) >= 20 and packet[0] >> 4 == 4:
                # Compared as a view: making bytes of it costs as much again, and is needed only when it
                # differs.
                if packet[12:16] != own and not self._routed_from(connection, bytes(packet[12:16])):
                    self.spoofed += 1
                    continue
            elif not self._accept_ipv6(connection, packet):
                continue
            accept(packet)
        self.tun.write_batch(accepted)

    def _routed_from(self, connection: ServerConnection, source: bytes) -> bool:
        """Whether ``source`` (4 or 16 bytes) lies in a network behind the client (site-to-site)."""
        if not connection.info.routes:
            return False
        address = ipaddress.ip_address(source)
        return any(
            address in network for network in connection.info.routes if network.version == address.version
        )

    def _on_tun_readable(self) -> None:
        by_address = self.by_address
        batches: dict[ServerConnection, list[bytes]] = {}
        for packet in self.tun.read_batch(TUN_BATCH):
            if len(packet) >= 20 and packet[0] >> 4 == 4:
                # IPv4 to a session's own address, looked up here without a call per packet.
                connection = by_address.get(packet[16:20])
                if connection is None and self.by_network:
                    connection = self._route_to_network(IPv4Address(packet[16:20]))
            else:
                connection = self._route_ipv6(packet)
            if connection is None:
                self.tun_drops += 1
                continue
            batch = batches.get(connection)
            if batch is None:
                batches[connection] = [packet]
            else:
                batch.append(packet)
        for connection, packets in batches.items():
            connection.send_ip_batch(packets)

    def _route_to_network(self, address: IPv4Address | IPv6Address) -> ServerConnection | None:
        """The session whose site-to-site networks hold ``address``."""
        for network, owner in self.by_network:
            if network.version == address.version and address in network:
                return owner
        return None
