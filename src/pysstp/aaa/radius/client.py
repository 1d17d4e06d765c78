"""RADIUS over asyncio UDP: send a request to the first server that answers, and take only genuine replies.

Each request has its own future, so a dead or slow server delays only the requests waiting on it
(no lock is shared between requests). Replies are matched by Identifier and checked against the request's
Authenticator (RFC 2865 §3); a late or duplicate reply finds no request waiting under its Identifier, or
fails that check, and is dropped. Replies to an Access-Request must carry a valid Message-Authenticator
(RFC 3579 §3.2; the BlastRADIUS countermeasure for CVE-2024-3596).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from pyrad import packet as radius_packet

from pysstp.aaa.radius.server import RadiusServer
from pysstp.errors import PysstpError

log = logging.getLogger("pysstp.radius")

IDENTIFIERS = 256
"""One byte of Identifier: at most this many requests wait on one socket (RFC 2865 §3)."""
MAX_SOCKETS_PER_SERVER = 16
"""Bound on outstanding requests per server: this many sockets of :data:`IDENTIFIERS` each."""
HEADER_SIZE = 20
"""Code, Identifier, Length, Authenticator (RFC 2865 §3)."""
MESSAGE_AUTHENTICATOR = 80
"""RFC 2869 §5.14."""

_ANSWERS = {
    radius_packet.AccessRequest: frozenset(
        {radius_packet.AccessAccept, radius_packet.AccessReject, radius_packet.AccessChallenge}
    ),
    radius_packet.AccountingRequest: frozenset({radius_packet.AccountingResponse}),
}
"""Which reply codes answer which request codes."""

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the request durations counted per server; fixed, so that the counts of
several worker processes add up."""

REQUEST_KINDS = ("access", "accounting")
"""Requests by the port they go to: authentication (Access-Request) or accounting."""

RequestFactory = Callable[[RadiusServer], radius_packet.Packet]
"""Builds the request for one server (secrets differ, so User-Password and authenticators do)."""


class RadiusUnavailable(PysstpError):
    """No RADIUS server answered the request."""


@dataclass(frozen=True, slots=True)
class RadiusServerStatus:
    """One server's state, for ``pysstp status``."""

    name: str
    alive: bool
    dead_for: float
    """Seconds left before a dead server is tried again first (0 when alive)."""


@dataclass(frozen=True, slots=True)
class RadiusServerStats:
    """What one server was asked and how it answered, since the client started (for the metrics)."""

    server: str
    requests: Mapping[str, int] = field(default_factory=dict)
    """Requests sent to the server (resends not counted), by kind (:data:`REQUEST_KINDS`)."""
    timeouts: int = 0
    """Requests the server did not answer after all retries."""
    durations: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)
    """Answered requests by duration: one count per bound of :data:`DURATION_BUCKETS`, then one for
    longer ones (each request is counted once, in the first bucket it fits)."""
    duration_sum: float = 0.0
    """Seconds from sending to the answer, added up over the answered requests."""

    def plus(self, other: RadiusServerStats) -> RadiusServerStats:
        """Both counts added up (the same server as seen by two worker processes)."""
        return RadiusServerStats(
            self.server,
            dict(Counter(self.requests) + Counter(other.requests)),
            self.timeouts + other.timeouts,
            tuple(a + b for a, b in zip(self.durations, other.durations, strict=True)),
            self.duration_sum + other.duration_sum,
        )


@dataclass(eq=False, slots=True)
class _Waiting:
    request: radius_packet.Packet
    future: asyncio.Future[radius_packet.Packet]


class _Socket(asyncio.DatagramProtocol):
    """One connected UDP socket to one server: up to :data:`IDENTIFIERS` requests wait on it at once."""

    def __init__(self, server: RadiusServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, _Waiting] = {}
        # Identifiers go round from a random start, so a just-freed one is reused as late as possible.
        self._next = secrets.randbelow(IDENTIFIERS)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def allocate(self) -> int | None:
        """A free Identifier, or ``None`` when all are in use."""
        for step in range(IDENTIFIERS):
            identifier = (self._next + step) % IDENTIFIERS
            if identifier not in self.waiting:
                self._next = (identifier + 1) % IDENTIFIERS
                return identifier
        return None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < HEADER_SIZE:
            log.warning(
                "RADIUS server %s: dropped a %d-byte datagram (too short)", self.server.name, len(data)
            )
            return
        waiting = self.waiting.get(data[1])
        if waiting is None or waiting.future.done():
            log.info(
                "RADIUS server %s: dropped a reply with Identifier %d that no request waits for "
                "(late or duplicate)",
                self.server.name,
                data[1],
            )
            return
        reply = _genuine_reply(self.server, waiting.request, data)
        if reply is not None:
            waiting.future.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the timeout and failover handle it.
        log.debug("RADIUS server %s: %s", self.server.name, exc)

    def close(self) -> None:
        """Close the socket; requests still waiting fail with :class:`RadiusUnavailable`."""
        if self.transport is not None:
            self.transport.close()
        for waiting in self.waiting.values():
            if not waiting.future.done():
                waiting.future.set_exception(RadiusUnavailable("the RADIUS client was closed"))
        self.waiting.clear()


def _genuine_reply(
    server: RadiusServer, request: radius_packet.Packet, data: bytes
) -> radius_packet.Packet | None:
    """The decoded reply if it answers ``request`` and is signed with the shared secret, else ``None``
    (logged)."""
    try:
        reply = request.CreateReply(packet=data)
    except (radius_packet.PacketError, KeyError, ValueError) as error:
        log.warning("RADIUS server %s: dropped a malformed reply: %s", server.name, error)
        return None
    reply.request_authenticator = request.authenticator
    if reply.code not in _ANSWERS.get(request.code, frozenset()):
        log.warning(
            "RADIUS server %s: dropped a reply of code %d to a request of code %d",
            server.name,
            reply.code,
            request.code,
        )
        return None
    if request.code == radius_packet.AccessRequest and not OrderedDict.__contains__(
        reply, MESSAGE_AUTHENTICATOR
    ):
        log.warning(
            "RADIUS server %s: dropped a reply without Message-Authenticator (BlastRADIUS, CVE-2024-3596); "
            "the server must sign its replies",
            server.name,
        )
        return None
    if not request.VerifyReply(reply, data, enforce_ma=True):
        log.warning(
            "RADIUS server %s: dropped a reply with a wrong Response Authenticator or Message-Authenticator "
            "(forged, or the shared secret differs; BlastRADIUS, CVE-2024-3596)",
            server.name,
        )
        return None
    return reply


@dataclass(eq=False, slots=True)
class _ServerState:
    server: RadiusServer
    sockets: dict[int, list[_Socket]] = field(default_factory=dict)
    """Per destination port."""
    dead_until: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    durations: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0

    def answered(self, seconds: float) -> None:
        """Count an answer that came ``seconds`` after the request was first sent."""
        self.durations[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum += seconds

    def stats(self) -> RadiusServerStats:
        """The counts of this moment."""
        return RadiusServerStats(
            self.server.name, dict(self.requests), self.timeouts, tuple(self.durations), self.duration_sum
        )


class RadiusClient:
    """Sends RADIUS requests to ``servers`` with priority and failover (RFC 5080 §2.2).

    Servers are tried in ``priority`` order, the dead ones (that did not answer within their timeouts and
    retries) last. Retransmissions to one server are the same bytes, so a reply to any copy counts.
    """

    def __init__(self, servers: Sequence[RadiusServer]) -> None:
        if not servers:
            raise ValueError("a RADIUS client needs at least one server")
        self._servers = [_ServerState(server) for server in sorted(servers, key=lambda s: s.priority)]
        self._closed = False

    def status(self) -> list[RadiusServerStatus]:
        """Each server's state, in priority order."""
        now = asyncio.get_running_loop().time()
        return [
            RadiusServerStatus(state.server.name, state.dead_until <= now, max(0.0, state.dead_until - now))
            for state in self._servers
        ]

    def stats(self) -> tuple[RadiusServerStats, ...]:
        """Each server's counts, in priority order."""
        return tuple(state.stats() for state in self._servers)

    async def send(
        self, build: RequestFactory, *, accounting: bool = False
    ) -> tuple[RadiusServer, radius_packet.Packet]:
        """Send the request ``build`` makes to the servers in turn; return the first genuine reply and
        the server that sent it.

        ``accounting`` sends to each server's accounting port. Raises :class:`RadiusUnavailable` when
        no server answered.
        """
        if self._closed:
            raise RadiusUnavailable("the RADIUS client is closed")
        loop = asyncio.get_running_loop()
        now = loop.time()
        order = [s for s in self._servers if s.dead_until <= now] + [
            s for s in self._servers if s.dead_until > now
        ]
        for position, state in enumerate(order):
            reply = await self._exchange(state, build, accounting)
            if reply is not None:
                if state.dead_until > 0:
                    log.info("RADIUS server %s answers again", state.server.name)
                    state.dead_until = 0.0
                return state.server, reply
            server = state.server
            state.dead_until = loop.time() + server.dead_time
            following = order[position + 1].server.name if position + 1 < len(order) else "no other server"
            log.warning(
                "RADIUS server %s did not answer %d tries %.1f s apart: skipped for %.0f s; next: %s",
                server.name,
                server.retries + 1,
                server.timeout,
                server.dead_time,
                following,
            )
        names = ", ".join(state.server.name for state in self._servers)
        raise RadiusUnavailable(f"no RADIUS server answered ({names})")

    async def _exchange(
        self, state: _ServerState, build: RequestFactory, accounting: bool
    ) -> radius_packet.Packet | None:
        server = state.server
        port = server.accounting_port if accounting else server.port
        try:
            socket, identifier = await self._allocate(state, port)
        except OSError as error:
            log.warning("RADIUS server %s: cannot send to it: %s", server.name, error)
            return None
        request = build(server)
        request.id = identifier
        data = request.RequestPacket()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[radius_packet.Packet] = loop.create_future()
        socket.waiting[identifier] = _Waiting(request, future)
        state.requests["accounting" if accounting else "access"] += 1
        sent = loop.time()
        try:
            for _ in range(server.retries + 1):
                assert socket.transport is not None
                socket.transport.sendto(data)
                done, _pending = await asyncio.wait({future}, timeout=server.timeout)
                if done:
                    reply = future.result()
                    state.answered(loop.time() - sent)
                    return reply
            state.timeouts += 1
            return None
        finally:
            socket.waiting.pop(identifier, None)
            if not future.done():
                future.cancel()

    async def _allocate(self, state: _ServerState, port: int) -> tuple[_Socket, int]:
        sockets = state.sockets.setdefault(port, [])
        for socket in sockets:
            identifier = socket.allocate()
            if identifier is not None:
                return socket, identifier
        if len(sockets) >= MAX_SOCKETS_PER_SERVER:
            raise RadiusUnavailable(
                f"RADIUS server {state.server.name}: {IDENTIFIERS * MAX_SOCKETS_PER_SERVER} requests "
                "already wait for it"
            )
        server = state.server
        _transport, socket = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Socket(server), remote_addr=(server.address, port)
        )
        sockets.append(socket)
        identifier = socket.allocate()
        assert identifier is not None
        return socket, identifier

    async def close(self) -> None:
        """Close every socket; requests still waiting fail with :class:`RadiusUnavailable`."""
        self._closed = True
        for state in self._servers:
            for sockets in state.sockets.values():
                for socket in sockets:
                    socket.close()
            state.sockets.clear()
