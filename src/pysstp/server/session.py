"""One accepted call on the server: its connection, what ``pysstp status`` shows of it, its log.

:class:`ServerConnection` is a :class:`~pysstp.connection.LinkConnection` around a
:class:`~pysstp.link.ServerLink`; the server (``server/app.py``) decides what it may do. A call from a
source in back-off is handed to :class:`RefusedCall` instead, which answers HTTP 503.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import secrets
import sys
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import TYPE_CHECKING, Any, cast

from pysstp.aaa.backend import Authorization, CallContext
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.connection import LinkConnection
from pysstp.link import ServerLink, ServerNetwork, ip_mtu
from pysstp.server.config import MAX_WORKERS
from pysstp.server.ratelimit import TokenBucket
from pysstp.server.stats import FailureReason, SessionStats
from pysstp.sstp.http import error_response

if TYPE_CHECKING:
    from pysstp.server.addresses import Pool, Reservation
    from pysstp.server.app import SstpServerApp

log = logging.getLogger("pysstp.server")

_SESSION_PREFIX = secrets.randbits(32)
"""Makes this process's Acct-Session-Ids differ from those of its earlier runs (RFC 2866 §5.5)."""
WORKER_BITS = (MAX_WORKERS - 1).bit_length()
"""With several workers, the high bits of a call number (NAS-Port, 32 bits) are the worker's index."""
CALL_BITS = 32 - WORKER_BITS
"""The bits left for the count of a worker's calls (wrapping after 2**26)."""

NO_AUTHORIZATION = Authorization()
"""A call's authorization until the backend says yes, and after a yes that authorizes nothing particular:
one shared (frozen) value, not one per call."""


@dataclass
class CallNumbers:
    """Numbers calls: NAS-Port and the low half of the Acct-Session-Id. With several workers each
    number carries its worker's index in the high :data:`WORKER_BITS` bits, so the numbers of all
    workers differ (docs/scaling.md, "Workers")."""

    worker: int | None = None
    """This process's worker index (set once, at the worker's start); ``None`` for a single server."""
    count: itertools.count[int] = dataclasses.field(default_factory=lambda: itertools.count(1))

    def next(self) -> int:
        """The next call's number."""
        number = next(self.count)
        if self.worker is None:
            return number
        return self.worker << CALL_BITS | number & ((1 << CALL_BITS) - 1)


CALL_NUMBERS = CallNumbers()
"""This process's call numbers."""


def new_call_number() -> int:
    """A number per call, unique in this process (and across workers): NAS-Port and the low half of the
    Acct-Session-Id."""
    return CALL_NUMBERS.next()


def session_id(number: int) -> str:
    """The Acct-Session-Id of call ``number``: 16 hex digits, the process's random prefix first."""
    return f"{_SESSION_PREFIX:08X}{number & 0xFFFFFFFF:08X}"


@dataclass(slots=True)
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


class SessionLog(logging.LoggerAdapter[logging.Logger]):
    """The server's logger for one session: each record carries the session's ``peer``, ``session_id``
    and, once known, ``user`` and ``address`` as fields (for JSON logs), besides any ``event`` the line
    names in ``extra``."""

    def __init__(self, logger: logging.Logger, info: SessionInfo) -> None:
        super().__init__(logger)
        self.session = info

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Add the session's fields to the record (read now: user and address come later)."""
        info = self.session
        fields: dict[str, object] = {"peer": info.peer, "session_id": info.session_id}
        if info.user is not None:
            fields["user"] = info.user
        if info.address is not None:
            fields["address"] = str(info.address)
        fields.update(kwargs.get("extra") or {})
        kwargs["extra"] = fields
        return msg, kwargs


class ServerConnection(LinkConnection):
    """One accepted call."""

    # A gateway holds 100,000 of these: no per-instance __dict__ (docs/scaling.md, "Numbers").
    __slots__ = (
        "_session_timer",
        "address_key",
        "address_pool",
        "asked",
        "auth_failure",
        "authorization",
        "context",
        "failure",
        "info",
        "ipv6_keys",
        "ipv6_prefix",
        "mtu_routes",
        "network",
        "rate_drops",
        "rate_in",
        "rate_out",
        "router_address",
        "server",
        "source",
        "terminate_cause",
        "verifying",
    )

    link: ServerLink

    def __init__(self, server: SstpServerApp) -> None:
        link = ServerLink(server.link_config, network_for_user=self._network_for_user)
        super().__init__(link, deliver=server.deliver, on_event=server.report)
        self.server = server
        self.info = SessionInfo(peer="?", started=time.time())
        self.source = "?"
        self.address_key: bytes | None = None
        self.address_pool: Pool | None = None
        """The pool its address came from (and goes back to)."""
        self.network: ServerNetwork | str | None = None
        """What IPCP will offer, reserved after the login was accepted, or why there is nothing."""
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
        self.failure: FailureReason | None = None
        """Why the call did not come up, once counted (each failed call is counted once)."""
        self.terminate_cause: TerminateCause | None = None
        """Why the call ended, for accounting: set by whoever ends it here, else from how it ended."""
        number = new_call_number()
        self.context = CallContext(session_id(number), "?", "?", number)
        """Who is calling, for the authentication backend (completed when the connection is made)."""
        self.info.session_id = self.context.session_id
        self.authorization = NO_AUTHORIZATION
        """What the backend's yes decided about this session."""
        self.verifying: asyncio.Task[None] | None = None
        """The backend's answer being awaited, if any."""
        self.asked = False
        """A question went to the backend: it hears :meth:`AuthBackend.finished` when the call ends."""
        self._session_timer: asyncio.TimerHandle | None = None
        self.rate_in: TokenBucket | None = None
        """The policer of what the client sends, when the session has a limit (set when it comes up)."""
        self.rate_out: TokenBucket | None = None
        """The policer of what the client receives, likewise."""
        self.rate_drops = 0
        """IP packets either way dropped by those policers."""

    @property
    def log(self) -> SessionLog:
        """Log lines about this session, with its fields (made for each line: a session that logs
        nothing keeps no logger of its own)."""
        return SessionLog(log, self.info)

    def _network_for_user(self, user: str) -> ServerNetwork | str:
        # The address was reserved when the backend said yes (:class:`~pysstp.server.logins.Logins`).
        self.info.user = user
        return self.network or "no address was reserved for this login"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admission control happens here, before the link says anything."""
        peername = self.peername(transport)
        self.peer = self.info.peer = f"{peername[0]}:{peername[1]}" if peername else "unknown peer"
        self.source = str(peername[0]) if peername else "?"
        sockname = transport.get_extra_info("sockname")
        self.context = CallContext(
            self.context.session_id,
            calling_station=self.source,
            called_station=str(sockname[0]) if sockname else "?",
            nas_port=self.context.nas_port,
        )
        server = self.server
        penalty = server.backoff.refused(self.source)
        if penalty is not None:
            server.counters.failed(self, FailureReason.BACKOFF)
            self.log.warning(
                "%s: refused for %.0f s more after %d failed logins from %s (HTTP 503)",
                self.peer,
                penalty.seconds,
                penalty.failures,
                self.source,
                extra={"event": "refused"},
            )
            # uvloop's TLS transport does not derive from asyncio.Transport (see LinkConnection).
            transport = cast(asyncio.Transport, transport)
            transport.set_protocol(RefusedCall(transport, server.link_config.handshake_timeout))
            self.closed = True
            return
        refusal = server.admit(self)
        if refusal is not None:
            self.log.warning("%s: refused: %s", self.peer, refusal, extra={"event": "refused"})
            self.closed = True
            transport.close()
            return
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            # Interned: a server's calls share a handful of these, not one string each.
            self.info.tls = sys.intern(f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip())
            if server.require_client_certificate and ssl_object.getpeercert(binary_form=True) is None:
                server.counters.failed(self, FailureReason.CLIENT_CERTIFICATE)
                self.log.warning(
                    "%s: refused: no TLS client certificate (verify-client-certificate = require)",
                    self.peer,
                    extra={"event": "refused"},
                )
                self.closed = True
                transport.close()
                return
        super().connection_made(transport)
        self.peer = self.info.peer  # the base class made an equal string of its own

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
        self.log.info(
            "%s: session timeout (%.0f s); disconnecting", self.peer, seconds, extra={"event": "timeout"}
        )
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

    def hold(self, user: str, reservation: Reservation) -> None:
        """The backend accepted ``user`` and the addresses are reserved: this is the session's now."""
        info = self.info
        info.user = user
        info.address = reservation.address
        self.address_pool = reservation.pool
        self.address_key = reservation.address.packed
        info.routes = self.authorization.routes
        if reservation.ipv6_prefix is not None:
            # Routed to the session like a network behind it (RFC 3162 §2.3), so every address the client
            # forms in it (SLAAC, privacy addresses) reaches it and may leave it.
            self.ipv6_prefix = reservation.ipv6_prefix
            info.routes += (reservation.ipv6_prefix,)
        info.classes = self.authorization.classes

    def traffic(self) -> dict[str, int]:
        """The counters that the server's totals add up."""
        return {
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "packets_in": self.packets_in,
            "packets_out": self.packets_out,
            "drops": self.drops,
            "dropped_ip": self.link.dropped_ip,
            "rate_drops": self.rate_drops,
        }

    def stats(self, backend: str, worker: int, rates: tuple[float, float] | None) -> SessionStats:
        """The session as the snapshot shows it (``rates`` in and out in bit/s, when sampled)."""
        info = self.info
        rate_in, rate_out = rates or (0.0, 0.0)
        return SessionStats(
            session_id=info.session_id,
            peer=info.peer,
            started=info.started,
            up=self.link.is_up,
            user=info.user,
            address=str(info.address) if info.address else None,
            ipv6=tuple(str(ip_address(key)) for key in self.ipv6_keys),
            backend=backend,
            auth=info.auth_method,
            hash=info.hash_protocol,
            tls=info.tls,
            mtu=self.mtu,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            packets_in=self.packets_in,
            packets_out=self.packets_out,
            rate_in=round(rate_in),
            rate_out=round(rate_out),
            drops=self.drops,
            rate_drops=self.rate_drops,
            limit_in=self.rate_in.rate if self.rate_in is not None else 0,
            limit_out=self.rate_out.rate if self.rate_out is not None else 0,
            routes=tuple(str(route) for route in info.routes),
            classes=tuple(value.hex() for value in info.classes),
            worker=worker,
        )

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
