"""The SSTP server: wires the listener, admission, the address authority, the session table, per-session
routing and the data path around one shared TUN device (docs/architecture.md, "The server").

Every accepted call is a :class:`~pysstp.server.session.ServerConnection`. This class decides its life:
admitted or refused, verified by the backend, given its addresses, routed while up, forgotten when it
ends; and it counts what happened for :meth:`SstpServerApp.snapshot`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_address

from pysstp.aaa.backend import Answer, AuthBackend
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.connection import LinkConnection
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
)
from pysstp.ppp.constants import DEFAULT_MRU
from pysstp.server import ipv6
from pysstp.server.accounting import SessionAccounting
from pysstp.server.addresses import AddressAuthority, Pool, Reservation
from pysstp.server.admission import Admission, Limits
from pysstp.server.backoff import Backoff, BackoffBackend
from pysstp.server.datapath import DataPath, Tun
from pysstp.server.listener import TlsListener
from pysstp.server.routing import KernelRoutes, SessionRouting
from pysstp.server.session import ServerConnection
from pysstp.server.sessions import SessionTable
from pysstp.server.stats import DropCause, FailureReason, ServerStats, SessionStats

__all__ = ["Limits", "Pool", "ServerConnection", "SstpServerApp"]

SHUTDOWN_GRACE = 3.0
"""Seconds the server waits for sessions to finish CALL_DISCONNECT on shutdown."""
IDLE_CHECK_INTERVAL = 30.0
"""The longest time between two checks for idle sessions."""
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

Rates = Mapping[ServerConnection, tuple[float, float]]
"""Bit rates in and out per session (``control.RateMeter``)."""


class SstpServerApp:
    """The server: accepts calls, gives them addresses, routes packets between the TUN and the sessions."""

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
        self.admission = Admission(limits or Limits())
        self.addresses = AddressAuthority(
            pool,
            pools or {},
            server_address=server_address,
            dns=dns,
            ipv6=link_config.ipv6,
            ipv6_prefix=ipv6_prefix,
        )
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
        self.table: SessionTable[ServerConnection] = SessionTable()
        self.routing = SessionRouting(self.table, kernel_routes, tun_mtu)
        self.datapath = DataPath(tun, self.table, self.routing.advertise)
        # The TLS handshake gets as long as the HTTP request that follows it.
        self.listener = TlsListener(self._new_connection, ssl_context, link_config.handshake_timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = time.time()
        self.connects = 0
        """Calls that came up."""
        self.failures: Counter[FailureReason] = Counter()
        """Calls that did not come up, by reason (TLS handshakes are the listener's to count)."""
        self._ended: Counter[str] = Counter()
        """The traffic counters of sessions that have ended (:meth:`snapshot` adds those still up)."""

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
        self.addresses.dns = dns
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
        connection: ServerConnection

        def network_for_user(user: str) -> ServerNetwork | str:
            # The address was reserved when the backend said yes (:meth:`_reserve`).
            connection.info.user = user
            return connection.network or "no address was reserved for this login"

        link = ServerLink(self.link_config, network_for_user=network_for_user)
        connection = ServerConnection(self, link)
        return connection

    # -- admission ---------------------------------------------------------------------------------

    def admit(self, connection: ServerConnection) -> str | None:
        """Why a new connection must be refused (counted), or ``None`` to accept it."""
        now = time.monotonic()
        refusal = self.admission.admit(connection.source, len(self.connections), len(self.negotiating), now)
        if refusal is not None:
            self.count_failure(connection, refusal[0])
            return refusal[1]
        self.connections.add(connection)
        self.negotiating.add(connection)
        return None

    def count_failure(self, connection: ServerConnection, reason: FailureReason) -> None:
        """Count a call that does not come up, once, by the first reason found."""
        if connection.failure is None:
            connection.failure = reason
            self.failures[reason] += 1

    async def _reserve(self, connection: ServerConnection, user: str) -> ServerNetwork | str | None:
        """The backend accepted ``user``: apply the user's session limit and reserve the addresses (the
        address authority may answer later); ``None`` when the call ended meanwhile."""
        others = sorted(
            (c for c in self.connections if c.info.user == user and c is not connection),
            key=lambda c: c.info.started,
        )
        decision = self.admission.for_user(user, connection.authorization.max_sessions, others)
        if isinstance(decision, str):
            return self._refuse(connection, decision)
        self._replace(decision, connection)
        self._release(connection)  # a login again on the same call (LCP renegotiated) frees the old one
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
        self._hold(connection, user, reservation)
        return reservation.network

    def _hold(self, connection: ServerConnection, user: str, reservation: Reservation) -> None:
        info = connection.info
        info.user = user
        info.address = reservation.address
        connection.address_pool = reservation.pool
        connection.address_key = reservation.address.packed
        info.routes = connection.authorization.routes
        if reservation.ipv6_prefix is not None:
            # Routed to the session like a network behind it (RFC 3162 §2.3), so every address the client
            # forms in it (SLAAC, privacy addresses) reaches it and may leave it.
            connection.ipv6_prefix = reservation.ipv6_prefix
            info.routes += (reservation.ipv6_prefix,)
        info.classes = connection.authorization.classes

    def _release(self, connection: ServerConnection) -> None:
        """Give the session's IPv4 address back and take it out of the table (idempotent)."""
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

    # -- events ------------------------------------------------------------------------------------

    def on_event(self, connection: LinkConnection, event: CallEvent) -> None:
        """Log what matters and keep the routing table in step with the sessions."""
        assert isinstance(connection, ServerConnection)
        if isinstance(event, LinkUp):
            self.negotiating.discard(connection)
            self.connects += 1
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
            self._verify(connection, event)
        elif isinstance(event, AuthenticationFailed):
            connection.auth_failure = event.reason
            self.count_failure(connection, FailureReason.AUTHENTICATION)
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
            connection.authorization = answer.authorization
            # The addresses are reserved before the link goes on to IPCP, which asks for them at once.
            connection.network = await self._reserve(connection, answer.verdict.user or question.user)
            if connection.network is None:
                return
        connection.verifying = None
        if answer.authorization.reply_message:
            connection.log.info(
                "%s: the backend says %r", connection.peer, answer.authorization.reply_message
            )
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
        if connection in self.negotiating:
            self.count_failure(connection, FailureReason.PROTOCOL)
            self.negotiating.discard(connection)
        if connection in self.connections:
            self.connections.discard(connection)
            self._ended.update(_traffic(connection))
        self._release(connection)
        self.routing.down(connection)

    # -- statistics --------------------------------------------------------------------------------

    def snapshot(self, worker: int = 0, rates: Rates | None = None) -> ServerStats:
        """This process's counters and sessions at this moment (``rates`` from the control socket's
        sampler, when it runs)."""
        live = sorted(self.connections, key=lambda c: c.info.started)
        totals = Counter(self._ended)
        for connection in live:
            totals.update(_traffic(connection))
        failures = {reason.value: count for reason, count in self.failures.items()}
        if self.listener.handshake_failures:
            failures[FailureReason.TLS_HANDSHAKE.value] = self.listener.handshake_failures
        drops = {
            DropCause.QUEUE_FULL.value: totals["drops"],
            DropCause.SPOOFED_SOURCE.value: self.datapath.spoofed,
            DropCause.NO_SESSION.value: self.datapath.tun_drops,
            DropCause.BEFORE_BINDING.value: totals["dropped_ip"],
        }
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * PAGE_SIZE
        times = os.times()
        return ServerStats(
            worker=worker,
            pid=os.getpid(),
            started=self.started,
            sessions=tuple(self._session_stats(c, worker, (rates or {}).get(c)) for c in live),
            negotiating=len(self.negotiating),
            connects=self.connects,
            failures=failures,
            bytes_in=totals["bytes_in"],
            bytes_out=totals["bytes_out"],
            packets_in=totals["packets_in"],
            packets_out=totals["packets_out"],
            drops=drops,
            rss_bytes=rss,
            cpu_seconds=times.user + times.system,
        )

    def _session_stats(
        self, connection: ServerConnection, worker: int, rates: tuple[float, float] | None
    ) -> SessionStats:
        info = connection.info
        rate_in, rate_out = rates or (0.0, 0.0)
        return SessionStats(
            session_id=info.session_id,
            peer=info.peer,
            started=info.started,
            up=connection.link.is_up,
            user=info.user,
            address=str(info.address) if info.address else None,
            ipv6=tuple(str(ip_address(key)) for key in connection.ipv6_keys),
            backend=self.backend.name,
            auth=info.auth_method,
            hash=info.hash_protocol,
            tls=info.tls,
            mtu=connection.mtu,
            bytes_in=connection.bytes_in,
            bytes_out=connection.bytes_out,
            packets_in=connection.packets_in,
            packets_out=connection.packets_out,
            rate_in=round(rate_in),
            rate_out=round(rate_out),
            drops=connection.drops,
            routes=tuple(str(route) for route in info.routes),
            classes=tuple(value.hex() for value in info.classes),
            worker=worker,
        )


def _traffic(connection: ServerConnection) -> dict[str, int]:
    """A session's counters that the server's totals add up."""
    return {
        "bytes_in": connection.bytes_in,
        "bytes_out": connection.bytes_out,
        "packets_in": connection.packets_in,
        "packets_out": connection.packets_out,
        "drops": connection.drops,
        "dropped_ip": connection.link.dropped_ip,
    }
