"""The SSTP server: wires the listener, admission, the address authority, the session table, per-session
routing and the data path around one shared TUN device (docs/architecture.md, "The server").

Every accepted call is a :class:`~pysstp.server.session.ServerConnection`. This class decides its life:
admitted or refused, verified by the backend, given its addresses, routed while up, forgotten when it
ends; and it counts what happened for :meth:`SstpServerApp.snapshot`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Network

from pysstp.aaa.backend import AuthBackend
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.aaa.radius.client import RadiusClient
from pysstp.connection import LinkConnection
from pysstp.link import (
    SERVER_SHUTTING_DOWN,
    AuthenticationFailed,
    CallEvent,
    Ipv6Up,
    LinkDown,
    LinkUp,
    ServerConfig,
    Verification,
)
from pysstp.ppp.constants import DEFAULT_MRU
from pysstp.server import ipv6
from pysstp.server.accounting import SessionAccounting
from pysstp.server.addresses import AddressAuthority, Pool
from pysstp.server.admission import Admission, Limits
from pysstp.server.backoff import Backoff, BackoffBackend
from pysstp.server.counters import Rates, ServerCounters
from pysstp.server.datapath import DataPath, Tun
from pysstp.server.inform import Push, Responder
from pysstp.server.inform import Session as InformSession
from pysstp.server.listener import TlsListener
from pysstp.server.logins import Logins
from pysstp.server.ratelimit import session_bucket
from pysstp.server.routing import KernelRoutes, SessionRouting
from pysstp.server.session import ServerConnection
from pysstp.server.sessions import SessionTable
from pysstp.server.stats import FailureReason, ServerStats

__all__ = ["Limits", "Pool", "ServerConnection", "SstpServerApp"]

SHUTDOWN_GRACE = 3.0
"""Seconds the server waits for sessions to finish CALL_DISCONNECT on shutdown."""
IDLE_CHECK_INTERVAL = 30.0
"""The longest time between two checks for idle sessions."""


class SstpServerApp:
    """The server: accepts calls, gives them addresses, routes packets between the TUN and the sessions."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None,
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
        proxy_sources: Sequence[IPv4Network | IPv6Network] | None = None,
        push: Push | None = None,
        radius: RadiusClient | None = None,
        addresses: AddressAuthority | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.radius = radius
        """The RADIUS client, if configured: :meth:`snapshot` carries its servers' counts."""
        self.accounting = accounting
        """RADIUS accounting of the sessions, if configured."""
        self.require_client_certificate = require_client_certificate
        """Refuse calls without a TLS client certificate. The context only requests one (CERT_OPTIONAL), so
        a missing certificate is refused here, after the handshake, with the session's own log line."""
        self.link_config = link_config
        self.backend = BackoffBackend(backend, backoff or Backoff())
        """Who decides logins: the configured backend, behind the login back-off."""
        self.admission = Admission(limits or Limits())
        self.addresses = addresses or AddressAuthority(
            pool,
            pools or {},
            server_address=server_address,
            dns=dns,
            ipv6=link_config.ipv6,
            ipv6_prefix=ipv6_prefix,
        )
        """Who gives sessions their addresses: the pools here, unless another authority is handed in (a
        worker's, which asks the supervisor: docs/scaling.md, "Workers")."""
        self.tun = tun
        self.idle_timeout = idle_timeout
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_interval: float | None = None
        self.ipv6_prefix = ipv6_prefix
        """The /64 announced to every session by router advertisement; None for link-local only."""
        self._ra_timer: asyncio.TimerHandle | None = None
        self.connections: set[ServerConnection] = set()
        self.negotiating: set[ServerConnection] = set()
        """Admitted calls whose link is not up yet (kept apart so admission does not scan every call)."""
        self.counters = ServerCounters()
        self.table: SessionTable[ServerConnection] = SessionTable()
        self.routing = SessionRouting(self.table, kernel_routes, tun_mtu)
        self.routing.push = push or Push()
        self.inform: Responder[ServerConnection] = Responder(server_address, self._inform_session)
        self.datapath = DataPath(tun, self.table, self.routing.advertise, self.inform)
        # Bound once: each call holds these two, and a bound method made per call costs 64 bytes each.
        self.deliver = self.datapath.deliver
        """Where the calls' IP packets go (:meth:`DataPath.deliver`)."""
        self.report = self.on_event
        """:meth:`on_event`, which every call reports its events to."""
        self.logins = Logins(
            self.backend,
            self.admission,
            self.addresses,
            self.table,
            self.forget,
            self.counters.failed,
        )
        # The TLS handshake gets as long as the HTTP request that follows it.
        self.listener = TlsListener(
            self._new_connection, ssl_context, link_config.handshake_timeout, proxy_sources
        )
        self.draining = False
        """Accepting no new calls (see :meth:`drain`); the health endpoint answers 503."""
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def backoff(self) -> Backoff:
        """The failed-login counts and their cost, shared by admission (refusal) and the backend wrapper."""
        return self.backend.backoff

    @backoff.setter
    def backoff(self, backoff: Backoff) -> None:
        self.backend.backoff = backoff

    @property
    def limits(self) -> Limits:
        """The admission limits in force."""
        return self.admission.limits

    @property
    def pools(self) -> dict[str, Pool]:
        """Named pools, picked by the backend (RADIUS Framed-Pool)."""
        return self.addresses.pools

    @property
    def dns(self) -> tuple[IPv4Address, ...]:
        """The DNS servers offered to sessions whose backend names none."""
        return self.addresses.dns

    @property
    def by_address(self) -> dict[bytes, ServerConnection]:
        """The session table's addresses (see :class:`SessionTable`)."""
        return self.table.by_address

    @property
    def by_network(self) -> list[tuple[IPv4Network | IPv6Network, ServerConnection]]:
        """The session table's networks behind clients."""
        return self.table.by_network

    @property
    def spoofed(self) -> int:
        """Packets from sessions dropped for their source address."""
        return self.datapath.spoofed

    # -- lifecycle ---------------------------------------------------------------------------------

    async def listen(self, hosts: Iterable[str], port: int) -> list[tuple[str, int]]:
        """Start a TLS listener on each host; return the bound (host, port) pairs."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.tun.fd, self.datapath.on_tun_readable)
        if self.idle_timeout > 0:
            self.watch_idle(self.idle_timeout)
        if self.link_config.ipv6:
            # Also in link-local mode: sessions may have their own prefix (Framed-IPv6-Prefix).
            self._ra_timer = self._loop.call_later(ipv6.RA_INTERVAL, self._advertise_all)
        bound: list[tuple[str, int]] = []
        for host in hosts:
            bound += await self.listener.open(host, port)
        return bound

    async def drain(self) -> None:
        """Stop accepting calls (the listening sockets close, so the kernel refuses new connections);
        established calls go on."""
        self.draining = True
        await self.listener.close()

    async def shutdown(self, reason: str = SERVER_SHUTTING_DOWN) -> None:
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
        ssl_context: ssl.SSLContext | None,
        link_config: ServerConfig,
        dns: tuple[IPv4Address, ...],
        limits: Limits,
        idle_timeout: float,
        require_client_certificate: bool,
        push: Push | None = None,
    ) -> None:
        """Apply a reloaded configuration (SIGHUP). TLS, the link settings and DNS hold for calls accepted
        from now on, limits and timeouts at once; established calls keep what they negotiated."""
        self.ssl_context = self.listener.ssl_context = ssl_context
        self.listener.handshake_timeout = link_config.handshake_timeout
        self.link_config = link_config
        self.addresses.dns = dns
        if push is not None:
            self.routing.push = push
        self.admission.limits = limits
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
                connection.log.info(
                    "%s: idle for %.0f s; disconnecting", connection.peer, timeout, extra={"event": "timeout"}
                )
                connection.end("idle timeout", TerminateCause.IDLE_TIMEOUT)
        self._idle_timer = self._loop.call_later(self._idle_interval, self._check_idle)

    def _advertise_all(self) -> None:
        """Unsolicited advertisements at an interval, so clients' default route and prefix stay fresh."""
        for connection in self.connections:
            self.routing.advertise(connection)
        assert self._loop is not None
        self._ra_timer = self._loop.call_later(ipv6.RA_INTERVAL, self._advertise_all)

    def _new_connection(self) -> ServerConnection:
        return ServerConnection(self)

    # -- admission ---------------------------------------------------------------------------------

    def admit(self, connection: ServerConnection) -> str | None:
        """Why a new connection must be refused (counted), or ``None`` to accept it."""
        now = time.monotonic()
        refusal = self.admission.admit(connection.source, len(self.connections), len(self.negotiating), now)
        if refusal is not None:
            self.counters.failed(connection, refusal[0])
            return refusal[1]
        self.connections.add(connection)
        self.negotiating.add(connection)
        return None

    # -- events ------------------------------------------------------------------------------------

    def on_event(self, connection: LinkConnection, event: CallEvent) -> None:
        """Log what matters and keep the routing table in step with the sessions."""
        assert isinstance(connection, ServerConnection)
        if isinstance(event, LinkUp):
            self.negotiating.discard(connection)
            self.counters.connects += 1
            connection.info.auth_method = event.auth_method.value if event.auth_method else None
            connection.info.hash_protocol = event.hash_protocol.name if event.hash_protocol else None
            self.routing.up(connection)
            connection.log.info(
                "%s: user %r up: %s, %s, %s binding, %s",
                connection.peer,
                event.user,
                event.peer_address,
                connection.info.auth_method,
                connection.info.hash_protocol,
                connection.info.tls,
                extra={"event": "up"},
            )
            self._limit_session(connection)
            if self.accounting is not None:
                self.accounting.up(connection)
        elif isinstance(event, Verification):
            self.logins.verify(connection, event)
        elif isinstance(event, AuthenticationFailed):
            connection.auth_failure = event.reason
            self.counters.failed(connection, FailureReason.AUTHENTICATION)
            connection.log.warning(
                "%s: authentication failed for %r: %s",
                connection.peer,
                event.user,
                connection.auth_failure,
                extra={"event": "auth_failed"},
            )
        elif isinstance(event, Ipv6Up):
            if self.routing.ipv6_up(connection, event):
                asyncio.get_running_loop().call_later(
                    ipv6.INITIAL_RA_DELAY, self.routing.advertise, connection
                )
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
            connection.log.log(level, "%s: call ended: %s", connection.peer, reason, extra={"event": "down"})
            self.forget(connection)

    def _limit_session(self, connection: ServerConnection) -> None:
        """Apply the backend's per-session limits once the call is up."""
        authorization = connection.authorization
        limits, now = self.limits, time.monotonic()
        connection.rate_in = session_bucket(authorization.rate_in, limits.rate_in, connection.mtu, now)
        connection.rate_out = session_bucket(authorization.rate_out, limits.rate_out, connection.mtu, now)
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
        if connection in self.negotiating:
            self.counters.failed(connection, FailureReason.PROTOCOL)
            self.negotiating.discard(connection)
        if connection in self.connections:
            self.connections.discard(connection)
            self.counters.ended(connection)
        self.logins.release(connection)
        self.routing.down(connection)

    def _inform_session(self, connection: ServerConnection) -> InformSession | None:
        """What the answer to this session's DHCPINFORM holds; ``None`` before it has an address."""
        address, pool = connection.info.address, connection.address_pool
        if address is None or pool is None:
            return None
        return InformSession(
            address,
            self.addresses.server_address,
            pool.network,
            connection.authorization.dns or self.dns,
            self.routing.push_for(connection),
        )

    # -- statistics --------------------------------------------------------------------------------

    def snapshot(self, worker: int = 0, rates: Rates | None = None, *, sessions: bool = True) -> ServerStats:
        """This process's counters and sessions at this moment (``rates`` as the control socket measured
        them for a status); without ``sessions`` only the counts (for the metrics)."""
        return self.counters.snapshot(
            worker=worker,
            live=sorted(self.connections, key=lambda c: c.info.started)
            if sessions
            else tuple(self.connections),
            negotiating=len(self.negotiating),
            handshake_failures=self.listener.handshake_failures,
            proxy_header_failures=self.listener.proxy_header_failures,
            spoofed=self.datapath.spoofed,
            no_session=self.datapath.tun_drops,
            dhcp=self.inform.dropped,
            backend=self.backend.name,
            rates=rates,
            draining=self.draining,
            radius=self.radius.stats() if self.radius is not None else (),
            sessions=sessions,
        )
