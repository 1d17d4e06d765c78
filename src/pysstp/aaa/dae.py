"""Dynamic Authorization (RFC 5176): Disconnect-Request and CoA-Request from allow-listed RADIUS clients.

A RADIUS server (or an admin with ``radclient``) ends a session with a Disconnect-Request, or changes its
limits with a CoA-Request, sent to the server's UDP port 3799. The protocol lives here: who may ask
(:class:`DaeClient`, by source address, each with its own secret), the checks a request must pass
(Request Authenticator, Message-Authenticator, Event-Timestamp: RFC 5176 §2.3, §3.4, §6.3), which sessions it
names (:class:`Selector`, RFC 5176 §3: all the identification attributes given must match), and the answer
(ACK, or NAK with an Error-Cause). What a session is and how it ends is the server's: it hands in a
:class:`SessionTable`, whose sessions may live in this process (:class:`LocalSessions`) or in several
worker processes that are asked in turn (docs/scaling.md, "Workers").

:class:`DynamicAuthorization` turns one datagram into the reply bytes (or ``None``: dropped) without a
socket, so every rule is tested packet by packet; :class:`DaeServer` is its asyncio UDP listener.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Protocol, cast

from pyrad.packet import (
    CoAACK,
    CoANAK,
    CoAPacket,
    CoARequest,
    DisconnectACK,
    DisconnectNAK,
    DisconnectRequest,
    PacketError,
)

from pysstp.aaa.radius.dictionary import radius_dictionary

log = logging.getLogger("pysstp.dae")

DAE_PORT = 3799
"""The Dynamic Authorization port (RFC 5176 §3)."""

EVENT_WINDOW = 300.0
"""Seconds an Event-Timestamp may differ from our clock before the request counts as a replay
(RFC 5176 §6.3: 300 s "should be adequate")."""
DUPLICATE_WINDOW = EVENT_WINDOW
"""Seconds a reply is kept to answer a retransmission of its request again (RFC 5080 §2.2.2); RFC 5176
§6.3 wants the same window as for stale Event-Timestamps, so a replay inside it is a duplicate."""
DUPLICATE_CACHE_SIZE = 4096
"""Replies kept at most, so a flood of valid requests cannot grow the cache without bound."""


class ErrorCause(StrEnum):
    """Error-Cause values of a NAK (RFC 5176 §3.5), named as in the RADIUS dictionary."""

    UNSUPPORTED_ATTRIBUTE = "Unsupported-Attribute"
    MISSING_ATTRIBUTE = "Missing-Attribute"
    INVALID_REQUEST = "Invalid-Request"
    UNSUPPORTED_SERVICE = "Unsupported-Service"
    SESSION_CONTEXT_NOT_FOUND = "Session-Context-Not-Found"


IDENTIFICATION = ("Acct-Session-Id", "User-Name", "Framed-IP-Address", "Calling-Station-Id")
"""The session identification attributes understood (RFC 5176 §3): any of them, all must match."""
_NAS_IDENTIFICATION = ("NAS-IP-Address", "NAS-IPv6-Address", "NAS-Identifier")
"""Name the NAS, not a session; this server is one NAS, so they are accepted as they come."""
_ALWAYS_ALLOWED = ("Message-Authenticator", "Proxy-State", "Event-Timestamp", *_NAS_IDENTIFICATION)
_CHANGES = ("Session-Timeout", "Idle-Timeout")
"""What a CoA-Request may change (RFC 5176 §3.6 lists both for CoA-Request only)."""


# -- who may ask -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaeClient:
    """An allow-listed RADIUS client: its source address and its shared secret."""

    address: IPv4Address | IPv6Address
    secret: bytes = field(repr=False)


def _normalise(address: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
    """An IPv4 client seen through a dual-stack socket (``::ffff:192.0.2.1``) is that IPv4 client."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# -- which sessions --------------------------------------------------------------------------------


class DaeSession(Protocol):
    """What a session shows of itself to Dynamic Authorization."""

    @property
    def session_id(self) -> str:
        """Acct-Session-Id."""
        ...

    @property
    def user(self) -> str | None:
        """User-Name as it authenticated (``None`` until then)."""
        ...

    @property
    def framed_address(self) -> IPv4Address | None:
        """Framed-IP-Address: its tunnel address."""
        ...

    @property
    def calling_station(self) -> str:
        """Calling-Station-Id: the client's address as RADIUS sees it."""
        ...


@dataclass(frozen=True)
class Selector:
    """The session identification attributes of a request; a session matches when every one given does."""

    session_id: str | None = None
    user: str | None = None
    address: IPv4Address | None = None
    calling_station: str | None = None

    def __bool__(self) -> bool:
        """Whether the request named a session at all."""
        return any(value is not None for value in vars(self).values())

    def matches(self, session: DaeSession) -> bool:
        """Whether ``session`` is one of those named."""
        return (
            (self.session_id is None or session.session_id == self.session_id)
            and (self.user is None or session.user == self.user)
            and (self.address is None or session.framed_address == self.address)
            and (self.calling_station is None or session.calling_station == self.calling_station)
        )

    def __str__(self) -> str:
        """The attributes as ``radclient`` would be given them."""
        values = (self.session_id, self.user, self.address, self.calling_station)
        names = zip(IDENTIFICATION, values, strict=True)
        return ", ".join(f"{name}={value}" for name, value in names if value is not None)


@dataclass(frozen=True)
class Change:
    """What a CoA-Request changes; ``None`` leaves a limit as it is, 0 removes it."""

    session_timeout: int | None = None
    """Seconds from now until the session ends (Session-Timeout)."""
    idle_timeout: int | None = None
    """Seconds without traffic after which the session ends (Idle-Timeout)."""

    def __str__(self) -> str:
        """The attributes as ``radclient`` would be given them."""
        changes = (("Session-Timeout", self.session_timeout), ("Idle-Timeout", self.idle_timeout))
        return ", ".join(f"{name}={value}" for name, value in changes if value is not None) or "no change"


class SessionTable(Protocol):
    """The server's sessions, as Dynamic Authorization needs them."""

    async def act(self, selector: Selector, change: Change | None, reason: str) -> list[str]:
        """End (``change`` is ``None``; in order, with the terminate cause Admin-Reset, RFC 2866 §5.10) or
        change every session ``selector`` matches; return their Acct-Session-Ids (none: no such session)."""
        ...


class LocalSessions(ABC):
    """A :class:`SessionTable` of the sessions in this process."""

    @abstractmethod
    def sessions(self) -> Iterable[DaeSession]:
        """Every session that exists (up, or authenticated and coming up)."""

    @abstractmethod
    def disconnect(self, session: DaeSession, reason: str) -> None:
        """End ``session`` in order, with the terminate cause Admin-Reset."""

    @abstractmethod
    def change(self, session: DaeSession, change: Change) -> None:
        """Apply a CoA's change to a live session."""

    async def act(self, selector: Selector, change: Change | None, reason: str) -> list[str]:
        """End or change the matching sessions at once."""
        matched = [session for session in self.sessions() if selector.matches(session)]
        for session in matched:
            if change is None:
                self.disconnect(session, reason)
            else:
                self.change(session, change)
        return [session.session_id for session in matched]


# -- the protocol ----------------------------------------------------------------------------------


class _Refusal(Exception):
    """A request to be answered with a NAK."""

    def __init__(self, cause: ErrorCause, why: str) -> None:
        super().__init__(why)
        self.cause = cause


@dataclass
class DaeCounters:
    """What ``pysstp status`` shows of the listener."""

    acks: int = 0
    naks: int = 0
    duplicates: int = 0
    dropped: int = 0


class DynamicAuthorization:
    """Answers Disconnect-Requests and CoA-Requests (RFC 5176) for one :class:`SessionTable`."""

    def __init__(self, clients: Iterable[DaeClient], table: SessionTable) -> None:
        self.clients = {_normalise(client.address): client for client in clients}
        self.table = table
        self.dictionary = radius_dictionary()
        self.counters = DaeCounters()
        self._replies: OrderedDict[tuple[str, int, int, bytes], tuple[float, int, asyncio.Future[bytes]]] = (
            OrderedDict()
        )
        """Each request's reply by its key, from the moment it is taken on (the sessions may be in other
        processes, so a retransmission can arrive while the first copy is still being answered)."""

    async def handle(
        self, data: bytes, source: tuple[str, int], now: float, wall_clock: float
    ) -> bytes | None:
        """The reply to one datagram from ``source`` (host, port), or ``None`` when it is dropped.

        ``now`` is a monotonic clock (the duplicate window), ``wall_clock`` seconds since the epoch (the
        Event-Timestamp check).
        """
        peer = f"{source[0]}:{source[1]}"
        try:
            address = _normalise(ip_address(source[0]))
        except ValueError:
            address = None
        client = self.clients.get(address) if address is not None else None
        if client is None:
            return self._drop(f"{peer}: not a dynamic authorization client (dae.clients); request dropped")
        try:
            request = CoAPacket(secret=client.secret, dict=self.dictionary, packet=data)
        except PacketError as exc:
            return self._drop(f"{peer}: malformed RADIUS packet ({exc}); dropped")
        if request.code not in (DisconnectRequest, CoARequest):
            return self._drop(f"{peer}: RADIUS code {request.code} is no Disconnect- or CoA-Request; dropped")
        kind = "Disconnect-Request" if request.code == DisconnectRequest else "CoA-Request"
        # RFC 5176 §2.3 and §3.4: a request whose authenticators do not check out is silently discarded.
        if not request.VerifyCoARequest():
            return self._drop(f"{peer}: {kind} with a wrong Request Authenticator (wrong secret?); dropped")
        if request.message_authenticator and not request.verify_message_authenticator():
            return self._drop(f"{peer}: {kind} with a wrong Message-Authenticator; dropped")
        self._expire(now)
        # Keyed without the source port (RFC 5080 §2.2.2 keys on it): the port is not signed, so a copy
        # replayed from another port inside the window would otherwise be done again (RFC 5176 §6.3).
        key = (str(address), request.code, request.id, request.authenticator)
        cached = self._replies.get(key)
        if cached is not None:
            if cached[1] != source[1]:
                return self._drop(
                    f"{peer}: {kind} {request.id} already came from port {cached[1]}; dropped as a possible "
                    "replay (a new request needs another Identifier or an Event-Timestamp)"
                )
            # RFC 5080 §2.2.2: a retransmission gets the same answer, and nothing is done twice.
            self.counters.duplicates += 1
            log.debug("%s: %s %d again; answering as before", peer, kind, request.id)
            return await asyncio.shield(cached[2])
        stale = self._stale_event(request, wall_clock)
        if stale is not None:
            return self._drop(f"{peer}: {kind} {stale}; dropped as a possible replay")
        answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._replies[key] = (now, source[1], answered)
        if len(self._replies) > DUPLICATE_CACHE_SIZE:
            self._replies.popitem(last=False)
        try:
            reply = await self._answer(request, kind, peer)
            if request.message_authenticator:
                reply.add_message_authenticator()
            raw: bytes = reply.ReplyPacket()
            answered.set_result(raw)
        finally:
            if not answered.done():  # failed: a retransmission is a new request
                answered.cancel()
                self._replies.pop(key, None)
        return raw

    def _drop(self, message: str) -> bytes | None:
        """Count and log a request that gets no answer; returns ``None`` (the answer: none)."""
        self.counters.dropped += 1
        log.warning("%s", message)
        return None

    def _expire(self, now: float) -> None:
        while self._replies:
            key, (when, _port, _raw) = next(iter(self._replies.items()))
            if when > now - DUPLICATE_WINDOW:
                return
            del self._replies[key]

    @staticmethod
    def _stale_event(request: CoAPacket, wall_clock: float) -> str | None:
        """Why the request's Event-Timestamp makes it a possible replay, if it does."""
        try:
            stamps = request.get("Event-Timestamp", [])
        except (ValueError, struct.error, OSError):
            return "with a malformed Event-Timestamp"
        for stamp in stamps:
            if abs(wall_clock - float(stamp)) > EVENT_WINDOW:
                return f"with an Event-Timestamp {wall_clock - float(stamp):+.0f} s away from our clock"
        return None

    async def _answer(self, request: CoAPacket, kind: str, peer: str) -> CoAPacket:
        disconnect = request.code == DisconnectRequest
        reply = request.CreateReply()
        try:
            selector, change = self._read(request, disconnect)
            reason = f"disconnected by a Disconnect-Request from {peer}"
            sessions = await self.table.act(selector, None if disconnect else change, reason)
            if not sessions:
                raise _Refusal(ErrorCause.SESSION_CONTEXT_NOT_FOUND, f"no session matches {selector}")
        except _Refusal as refusal:
            self.counters.naks += 1
            log.warning("%s: %s %d refused (%s): %s", peer, kind, request.id, refusal.cause, refusal)
            reply.code = DisconnectNAK if disconnect else CoANAK
            reply["Error-Cause"] = refusal.cause.value
            return reply
        self.counters.acks += 1
        for session_id in sessions:
            if disconnect:
                log.info("%s: Disconnect-Request for session %s (%s)", peer, session_id, selector)
            else:
                log.info("%s: CoA-Request for session %s: %s", peer, session_id, change)
        reply.code = DisconnectACK if disconnect else CoAACK
        return reply

    def _read(self, request: CoAPacket, disconnect: bool) -> tuple[Selector, Change]:
        """The sessions named and the change asked for; raises :class:`_Refusal` for what is wrong."""
        allowed = _ALWAYS_ALLOWED + IDENTIFICATION + (() if disconnect else _CHANGES)
        values: dict[str, Any] = {}
        for name in request.keys():  # noqa: SIM118 - pyrad's keys() are names, iterating gives codes
            if name == "Service-Type" and not disconnect:
                # RFC 5176 §3.2: Authorize-Only asks the NAS to authorize again, which this one cannot;
                # in a Disconnect-Request, Service-Type is just an attribute that must not be there.
                raise _Refusal(
                    ErrorCause.UNSUPPORTED_SERVICE, "Service-Type (authorize again) is not supported"
                )
            if name not in allowed:
                raise _Refusal(ErrorCause.UNSUPPORTED_ATTRIBUTE, f"attribute {name} is not supported here")
            if name in IDENTIFICATION or name in _CHANGES:
                values[name] = self._single(request, name)
        selector = Selector(
            session_id=values.get("Acct-Session-Id"),
            user=values.get("User-Name"),
            address=IPv4Address(values["Framed-IP-Address"]) if "Framed-IP-Address" in values else None,
            calling_station=values.get("Calling-Station-Id"),
        )
        if not selector:
            raise _Refusal(
                ErrorCause.MISSING_ATTRIBUTE,
                "no session named: give Acct-Session-Id, User-Name, Framed-IP-Address or Calling-Station-Id",
            )
        return selector, Change(values.get("Session-Timeout"), values.get("Idle-Timeout"))

    @staticmethod
    def _single(request: CoAPacket, name: str) -> Any:
        """The one value of attribute ``name``; several, or one that cannot be decoded, is invalid."""
        try:
            found: Sequence[Any] = request[name]
        except (ValueError, struct.error, OSError) as exc:
            raise _Refusal(ErrorCause.INVALID_REQUEST, f"{name} is malformed ({exc})") from None
        if len(found) != 1:
            raise _Refusal(ErrorCause.INVALID_REQUEST, f"{name} is given {len(found)} times")
        value = found[0]
        if isinstance(value, bytes):  # a string attribute that is not UTF-8
            raise _Refusal(ErrorCause.INVALID_REQUEST, f"{name} is not UTF-8")
        return value


# -- the listener ----------------------------------------------------------------------------------


class DaeServer(asyncio.DatagramProtocol):
    """The UDP listener of :class:`DynamicAuthorization` (port 3799 by default)."""

    def __init__(self, authorization: DynamicAuthorization) -> None:
        self.authorization = authorization
        self.transport: asyncio.DatagramTransport | None = None
        self.bound: tuple[str, int] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int = DAE_PORT) -> tuple[str, int]:
        """Listen on ``host``:``port``; return the bound address. Raises :class:`OSError`."""
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        assert self.transport is not None
        name = self.transport.get_extra_info("sockname")
        self.bound = (name[0], name[1])
        log.info(
            "dynamic authorization (RFC 5176) on %s port %d for %d client(s)",
            self.bound[0],
            self.bound[1],
            len(self.authorization.clients),
        )
        return self.bound

    def close(self) -> None:
        """Stop listening."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for task in self._tasks:
            task.cancel()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The socket is bound."""
        # asyncio's own datagram transport does not subclass DatagramTransport on every Python version.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """One request: answer it (or not) in a task of its own; ending a session does not wait for its
        goodbye."""
        task = asyncio.get_running_loop().create_task(self._reply(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        source = (str(addr[0]), int(addr[1]))
        reply = await self.authorization.handle(data, source, asyncio.get_running_loop().time(), time.time())
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for an earlier reply (the client went away): nothing to do but say so."""
        log.debug("dynamic authorization socket: %s", exc)

    def state(self) -> dict[str, Any]:
        """What ``pysstp status`` shows: where it listens, for how many clients, and its counts."""
        counters = self.authorization.counters
        return {
            "listening": _host_port(*self.bound) if self.bound and self.transport else None,
            "clients": len(self.authorization.clients),
            "acks": counters.acks,
            "naks": counters.naks,
            "duplicates": counters.duplicates,
            "dropped": counters.dropped,
        }


def _host_port(host: str, port: int) -> str:
    """``host:port``, ``[host]:port`` for IPv6."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
