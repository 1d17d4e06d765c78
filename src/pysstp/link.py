"""One SSTP call: the SSTP machine and the PPP session glued together, still sans-I/O.

Feed a link the plaintext that came out of TLS and the time; take from it the plaintext for TLS, the IP
packets for the TUN device, events, and the next deadline. :class:`ClientLink` dials, :class:`ServerLink`
answers. After :class:`LinkUp`, the I/O shell may bypass the link for IP packets: it frames them with
:func:`frame_ip_packets` and has :meth:`Link.split_packets` cut incoming ones out of the stream, calling
:meth:`Link.note_activity` so the SSTP hello timer knows the peer is alive.

The link is the shells' only face of sstp/ and ppp/: what they need of those layers (the events it
passes on, :class:`ServerNetwork`, :class:`Phase`...) they import from here (``__all__``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address

from pysstp.ppp.auth.base import EapMode
from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings, EapTlsServerSettings
from pysstp.ppp.auth.peap import PeapPeerSettings, PeapServerSettings
from pysstp.ppp.auth.verification import Verdict, Verification
from pysstp.ppp.constants import DEFAULT_MRU, AuthMethod, Phase, Role
from pysstp.ppp.events import (
    Authenticated,
    AuthenticationFailed,
    Ipv4Up,
    Ipv6Up,
    LcpOpened,
    NetworkProtocolDown,
    PhaseChanged,
    SessionDown,
)
from pysstp.ppp.frame import encode_frame
from pysstp.ppp.session import NetworkForUser, PppConfig, PppSession, ServerNetwork, SessionOutput
from pysstp.randomness import RandomBytes
from pysstp.sstp import events as sstp_events
from pysstp.sstp.constants import HEADER_LEN, MAX_PACKET_LEN, VERSION, HashProtocol, Status, Timer
from pysstp.sstp.events import (
    CallConnectAcked,
    CallConnectedSent,
    CallConnectedVerified,
    CallConnectRequested,
    CryptoBindingFailed,
    HttpRequestReceived,
    HttpResponseReceived,
    PeerAborted,
    PeerDisconnecting,
)
from pysstp.sstp.machine import SstpClient, SstpServer
from pysstp.sstp.packets import StatusInfo

# The face the shells use: the link itself, its data path, and every event of a call, including those of
# the layers below that the link passes on (the shells import them from here, not from sstp/ or ppp/).
__all__ = [
    "ABORTED_AFTER_BINDING",
    "DATA_OVERHEAD",
    "IPV4_FRAME",
    "IPV6_FRAME",
    "MAX_IP_PACKET",
    "Authenticated",
    "AuthenticationFailed",
    "CallConnectAcked",
    "CallConnectRequested",
    "CallConnectedSent",
    "CallConnectedVerified",
    "CallEvent",
    "ClientConfig",
    "ClientLink",
    "CryptoBindingFailed",
    "EapMode",
    "HttpRequestReceived",
    "HttpResponseReceived",
    "Ipv4Up",
    "Ipv6Up",
    "LcpOpened",
    "Link",
    "LinkDown",
    "LinkEvent",
    "LinkUp",
    "NetworkForUser",
    "NetworkProtocolDown",
    "PeerAborted",
    "PeerDisconnecting",
    "Phase",
    "PhaseChanged",
    "ServerConfig",
    "ServerLink",
    "ServerNetwork",
    "SessionDown",
    "Verdict",
    "Verification",
    "frame_ip_packets",
    "ip_mtu",
    "ip_payload",
]

IPV4_FRAME = b"\xff\x03\x00\x21"
"""Address, control and protocol fields of a PPP frame carrying IPv4."""
IPV6_FRAME = b"\xff\x03\x00\x57"
DATA_OVERHEAD = HEADER_LEN + len(IPV4_FRAME)
MAX_IP_PACKET = MAX_PACKET_LEN - DATA_OVERHEAD


def ip_mtu(mru: int) -> int:
    """The largest IP packet a PPP frame within ``mru`` carries in one SSTP packet (4087 at most)."""
    return min(mru, MAX_IP_PACKET)


_IP_WORDS = frozenset((int.from_bytes(IPV4_FRAME), int.from_bytes(IPV6_FRAME)))
"""The PPP fields of an IP data packet as one big-endian word, as :meth:`Link.split_packets` finds them."""

# Every possible 8-byte header of a data packet, by total length: a list lookup costs less than building
# one (the data path frames every packet; docs/benchmarks-notes.md, "Per-packet costs").
_IPV4_HEADERS = [bytes((VERSION, 0, n >> 8, n & 0xFF)) + IPV4_FRAME for n in range(MAX_PACKET_LEN + 1)]
_IPV6_HEADERS = [bytes((VERSION, 0, n >> 8, n & 0xFF)) + IPV6_FRAME for n in range(MAX_PACKET_LEN + 1)]


def frame_ip_packets(packets: Iterable[bytes | memoryview]) -> bytes:
    """The SSTP data packets for ``packets``, joined (one buffer for one TLS write); IP packets too long
    for SSTP's 12-bit length are left out (the TUN's MTU, set from the MRU, keeps them from coming)."""
    parts: list[bytes | memoryview] = []
    append = parts.append
    v4, v6 = _IPV4_HEADERS, _IPV6_HEADERS
    for packet in packets:
        length = len(packet) + DATA_OVERHEAD
        if length <= MAX_PACKET_LEN:
            append(v6[length] if packet[0] >> 4 == 6 else v4[length])
            append(packet)
    return b"".join(parts)


def ip_payload(packet: memoryview | bytes) -> memoryview | bytes | None:
    """The IP packet inside an SSTP data packet in the uncompressed PPP form, else ``None``."""
    if packet[1] & 1 or len(packet) <= DATA_OVERHEAD:
        return None
    header = bytes(packet[HEADER_LEN:DATA_OVERHEAD])
    if header in (IPV4_FRAME, IPV6_FRAME):
        return packet[DATA_OVERHEAD:]
    return None


# Events -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """Base of the events the link itself adds to those it passes on from the SSTP machine and PPP."""


@dataclass(frozen=True, slots=True)
class LinkUp(LinkEvent):
    """The call carries IP: SSTP call connected and at least one network protocol open."""

    user: str | None
    auth_method: AuthMethod | None
    hash_protocol: HashProtocol | None
    local_address: IPv4Address | None
    peer_address: IPv4Address | None
    dns_servers: tuple[IPv4Address, ...]
    mtu: int


@dataclass(frozen=True, slots=True)
class LinkDown(LinkEvent):
    """The call is over: the I/O shell must close TLS/TCP now. ``error`` is False for an orderly end."""

    reason: str
    error: bool


CallEvent = (
    LinkUp
    | LinkDown
    | SessionOutput
    | HttpResponseReceived
    | HttpRequestReceived
    | CallConnectAcked
    | CallConnectRequested
    | CallConnectedSent
    | CallConnectedVerified
    | CryptoBindingFailed
    | PeerDisconnecting
    | PeerAborted
)
"""Everything :meth:`Link.take_events` reports: the link's own events and the PPP session's and SSTP
machine's it passes on (the progress of the call, authentication failed with its reason, each network
protocol up), and the authenticator's questions (:class:`Verification`, a server's to answer with
:meth:`ServerLink.answer`). All of them can be imported from this module."""


# Configuration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientConfig:
    """What a client link needs to dial one server."""

    host: str
    username: str
    password: str = field(repr=False)
    auth_methods: tuple[AuthMethod, ...] = ()
    hash_protocols: HashProtocol = HashProtocol.SHA1 | HashProtocol.SHA256
    mru: int = DEFAULT_MRU
    max_peer_mru: int = DEFAULT_MRU
    ipv6: bool = False
    request_dns: bool = True
    hello_interval: float = Timer.HELLO.value
    lcp_echo_interval: float | None = None
    correlation_id: str | None = None
    eap_tls: EapTlsPeerSettings | None = None
    peap: PeapPeerSettings | None = None


@dataclass(frozen=True)
class ServerConfig:
    """What a server link needs to answer one call, the same for every call (the per-call parts are
    :class:`ServerLink`'s other arguments)."""

    certificate_hashes: Mapping[HashProtocol, bytes] = field(repr=False)
    """The hashes of the certificate clients see in TLS, which their crypto binding carries
    (:func:`~pysstp.sstp.binding.certificate_hashes`; with TLS offloaded, the terminator's)."""
    auth_methods: tuple[AuthMethod, ...] = ()
    hash_protocols: HashProtocol = HashProtocol.SHA1 | HashProtocol.SHA256
    mru: int = DEFAULT_MRU
    max_peer_mru: int = DEFAULT_MRU
    ipv6: bool = False
    ipv6_interface_id: bytes | None = None
    hello_interval: float = Timer.HELLO.value
    negotiation_timeout: float = Timer.NEGOTIATION.value
    handshake_timeout: float = 10.0
    """Seconds from :meth:`Link.start` to the whole HTTP request: the spec sets no limit, and a
    half-open scanner should not hold a call for the whole negotiation timeout."""
    lcp_echo_interval: float | None = None
    server_name: str = "pysstp"
    http_date: Callable[[], str] | None = None
    not_sstp_response: bytes | None = None
    eap_tls: EapTlsServerSettings | None = None
    peap: PeapServerSettings | None = None
    eap_mode: EapMode = "local"
    """``pass-through``: EAP runs in the authentication backend (RFC 3579), which must answer
    :class:`~pysstp.ppp.auth.verification.EapProof` questions (RADIUS does, the local backend does not)."""

    @cached_property
    def ppp(self) -> PppConfig:
        """The PPP part, made once: every call of the server shares it."""
        return PppConfig(
            role=Role.SERVER,
            auth_methods=self.auth_methods,
            mru=self.mru,
            max_peer_mru=self.max_peer_mru,
            ipv6=self.ipv6,
            ipv6_interface_id=self.ipv6_interface_id,
            lcp_echo_interval=self.lcp_echo_interval,
            server_name=self.server_name,
            eap_tls_server=self.eap_tls,
            peap_server=self.peap,
            eap_mode=self.eap_mode,
        )


# Links --------------------------------------------------------------------------------------------


class Link:
    """What client and server links share: the glue between the SSTP machine and the PPP session."""

    __slots__ = (
        "_binding_sent",
        "_closed",
        "_down_error",
        "_down_reason",
        "_events",
        "_http_done",
        "_ip_in",
        "_up",
        "dropped_ip",
        "hash_protocol",
        "session",
    )

    sstp: SstpClient | SstpServer

    def __init__(self, session: PppSession) -> None:
        self.session = session
        # None while empty: an idle call holds no empty lists (docs/scaling.md, "Numbers").
        self._events: list[CallEvent] | None = None
        self._ip_in: list[bytes] | None = None
        self._up = False
        self._closed = False
        self._down_reason: str | None = None
        self._down_error = False
        self.hash_protocol: HashProtocol | None = None
        self._binding_sent = False
        self._http_done = False
        self.dropped_ip = 0

    # -- inputs ------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """TLS is up: a client sends its HTTP request; a server starts waiting for one (its handshake
        and negotiation timers run from now)."""
        self.sstp.start(now)
        self._process(now)

    def receive_data(self, data: bytes, now: float) -> None:
        """Plaintext bytes read from TLS (any boundaries)."""
        self.sstp.receive_data(data, now)
        self._process(now)

    def receive_packet(self, packet: bytes, now: float) -> None:
        """One whole SSTP packet that the I/O shell already cut from the stream."""
        self.sstp.receive_packet(packet, now)
        self._process(now)

    def split_packets(self, data: bytes) -> tuple[list[memoryview], list[tuple[int, bytes]]]:
        """The receive side of the fast path, once the call is up: cut TLS plaintext into the IP packets
        it carries (views of it) and the other SSTP packets, each whole and with the number of IP packets
        before it, to go to :meth:`receive_packet` in that order. Cut with the SSTP machine's own deframer,
        so the start of a packet read before the switch is not lost. Raises
        :class:`~pysstp.errors.DelineationError` when the stream is not SSTP."""
        return self.sstp.deframer.split(data, _IP_WORDS)

    def note_activity(self, now: float) -> None:
        """The fast path delivered data packets: the peer is alive."""
        self.sstp.note_activity(now)

    def handle_timer(self, now: float) -> None:
        """Run every timer that is due."""
        self.sstp.handle_timer(now)
        self.session.handle_timer(now)
        self._process(now)

    def send_ip(self, packet: bytes) -> bool:
        """Queue one IP packet for the peer; False (and counted) when the link cannot carry it now."""
        is_v6 = bool(packet) and packet[0] >> 4 == 6
        allowed = self.session.ipv6_up if is_v6 else self.session.ipv4_up
        if not (self._up and allowed) or not packet or len(packet) > MAX_IP_PACKET:
            self.dropped_ip += 1
            return False
        self.sstp.send_ppp((IPV6_FRAME if is_v6 else IPV4_FRAME) + packet)
        return True

    def transport_lost(self, now: float, reason: str) -> None:
        """TLS/TCP ended under the call (the peer closed it, or it broke)."""
        if not self._closed:
            self._finish(reason, True, now)

    def close(self, now: float, reason: str = "closed by local request") -> None:
        """End the call in order: LCP Terminate, then CALL_DISCONNECT."""
        if self._closed:
            return
        self._note_down(reason, error=False)
        if self.session.phase is Phase.DEAD:
            self.sstp.disconnect(now)
        else:
            self.session.close(now, reason)
        self._process(now)

    # -- outputs -----------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Plaintext to write to TLS."""
        return self.sstp.data_to_send()

    def take_ip_packets(self) -> list[bytes]:
        """IP packets received from the peer since the last call."""
        packets, self._ip_in = self._ip_in, None
        return packets if packets is not None else []

    def take_events(self) -> list[CallEvent]:
        """Events since the last call."""
        events, self._events = self._events, None
        return events if events is not None else []

    def next_deadline(self) -> float | None:
        """Earliest time :meth:`handle_timer` must run."""
        if self._closed:
            return None
        deadlines = [d for d in (self.sstp.next_deadline(), self.session.next_deadline()) if d is not None]
        return min(deadlines, default=None)

    @property
    def is_up(self) -> bool:
        """IP may flow (see :class:`LinkUp`)."""
        return self._up

    @property
    def http_done(self) -> bool:
        """The HTTP handshake finished: the peer speaks SSTP (a client's server answered 200)."""
        return self._http_done

    @property
    def is_closed(self) -> bool:
        """:class:`LinkDown` was emitted; nothing more will happen."""
        return self._closed

    @property
    def mtu(self) -> int:
        """Largest IP packet the peer accepts (its MRU), bounded by what an SSTP packet can carry."""
        return ip_mtu(self.session.lcp.peer_mru)

    # -- glue --------------------------------------------------------------------------------------

    def _process(self, now: float) -> None:
        """Move frames and events between the two machines until both are quiet."""
        busy = True
        while busy:
            busy = False
            for protocol, packet in self.session.take_outgoing():
                busy = True
                self.sstp.send_ppp(encode_frame(protocol, packet))
            for sstp_event in self.sstp.take_events():
                busy = True
                self._on_sstp_event(sstp_event, now)
            for session_event in self.session.take_events():
                busy = True
                self._report(session_event)
                self._on_session_event(session_event, now)
        self._check_up()

    def _on_sstp_event(self, event: sstp_events.Event, now: float) -> None:
        if isinstance(event, sstp_events.PppFrameReceived):
            self._on_frame(event.frame, now)
            return
        if isinstance(event, sstp_events.ConnectionClosed):
            self._finish(event.reason, event.error, now)
            return
        self._report(event)
        if isinstance(event, HttpRequestReceived | HttpResponseReceived):
            self._http_done = True
        elif isinstance(event, CallConnectAcked | CallConnectRequested):
            self.session.start(now)
        elif isinstance(event, CallConnectedSent | CallConnectedVerified):
            self.hash_protocol = event.hash_protocol
            self._binding_sent = isinstance(event, CallConnectedSent)
        elif isinstance(event, CryptoBindingFailed):
            self._note_down(f"crypto binding failed: {event.reason}", error=True)
        elif isinstance(event, PeerAborted):
            reason = f"peer aborted the call ({_status_text(event.status)})"
            if self._binding_sent and not self._up:
                # A server checks CALL_CONNECTED's crypto binding and answers a bad one with CALL_ABORT
                # (MS-SSTP 3.2.5.2): an abort now almost always means that, whatever status it carries.
                reason += f" {ABORTED_AFTER_BINDING}"
            self._note_down(reason, error=True)
        elif isinstance(event, PeerDisconnecting):
            self._note_down(self.session.down_reason or "peer disconnected the call", error=False)

    def _finish(self, reason: str, error: bool, now: float) -> None:
        """The call is over: tell PPP, and report LinkDown with the first meaningful reason."""
        self._note_down(reason, error=error)
        self.session.lower_down(now, reason, error=error)
        self.session.take_outgoing()
        for event in self.session.take_events():
            self._report(event)
        self._up = False
        self._closed = True
        assert self._down_reason is not None
        self._report(LinkDown(self._down_reason, self._down_error))

    def _on_frame(self, frame: bytes, now: float) -> None:
        header = frame[:4]
        if header in (IPV4_FRAME, IPV6_FRAME):
            allowed = self.session.ipv4_up if header == IPV4_FRAME else self.session.ipv6_up
            # The call, not the LinkUp event, gates data: a packet may arrive in the same read as the
            # NCP's final Ack, before LinkUp is reported.
            if not (allowed and self._connected()):
                self.dropped_ip += 1
            elif self._ip_in is None:
                self._ip_in = [frame[4:]]
            else:
                self._ip_in.append(frame[4:])
            return
        self.session.receive_frame(frame, now)

    def _report(self, event: CallEvent) -> None:
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)

    def _on_session_event(self, event: SessionOutput, now: float) -> None:
        if isinstance(event, Authenticated):
            self._on_authenticated(event.hlak, now)
        elif isinstance(event, AuthenticationFailed):
            self._note_down(f"authentication failed: {event.reason}", error=True)
        elif isinstance(event, SessionDown):
            self._note_down(event.reason, error=event.error)
            self.sstp.disconnect(now)

    def _on_authenticated(self, hlak: bytes, now: float) -> None:
        raise NotImplementedError

    def _connected(self) -> bool:
        raise NotImplementedError

    def _check_up(self) -> None:
        if self._up or self._closed or not self._connected():
            return
        if not (self.session.ipv4_up or self.session.ipv6_up):
            return
        self._up = True
        ipcp = self.session.ipcp
        self._report(
            LinkUp(
                user=self.session.user,
                auth_method=self.session.auth_method,
                hash_protocol=self.hash_protocol,
                local_address=ipcp.local_address if ipcp is not None and self.session.ipv4_up else None,
                peer_address=ipcp.peer_address if ipcp is not None and self.session.ipv4_up else None,
                dns_servers=ipcp.dns_servers if ipcp is not None and self.session.ipv4_up else (),
                mtu=self.mtu,
            )
        )

    def _note_down(self, reason: str, *, error: bool) -> None:
        """Remember the first reason the call is ending; later, vaguer reasons do not replace it."""
        if self._down_reason is None:
            self._down_reason = reason
            self._down_error = error


SERVER_SHUTTING_DOWN = "server shutting down"
"""What a pysstp server's LCP Terminate-Request says when it stops or a drain's deadline passes. A client
with ``--reconnect`` dials again after it (another node behind the load balancer may take the call),
unlike after a kick, which dialing back would undo."""

ABORTED_AFTER_BINDING = "after our crypto binding (CALL_CONNECTED), before the call was up"
"""Ends a client's down reason when the server aborted once it had our crypto binding."""


def _status_text(status: StatusInfo | None) -> str:
    """A Status Info as words for a log line, e.g. 'invalid frame received'."""
    if status is None:
        return "no status given"
    try:
        return Status(status.status).name.lower().replace("_", " ")
    except ValueError:
        return f"status {status.status:#x}"


class ClientLink(Link):
    """The dialing side of one call."""

    __slots__ = ("config", "sstp")

    sstp: SstpClient

    def __init__(self, config: ClientConfig, *, random_bytes: RandomBytes = os.urandom) -> None:
        correlation_id = config.correlation_id or "{" + str(uuid.UUID(bytes=random_bytes(16))).upper() + "}"
        super().__init__(
            PppSession(
                PppConfig(
                    role=Role.CLIENT,
                    auth_methods=config.auth_methods,
                    mru=config.mru,
                    max_peer_mru=config.max_peer_mru,
                    ipv6=config.ipv6,
                    lcp_echo_interval=config.lcp_echo_interval,
                    username=config.username,
                    password=config.password,
                    request_dns=config.request_dns,
                    eap_tls_peer=config.eap_tls,
                    peap_peer=config.peap,
                ),
                random_bytes=random_bytes,
            )
        )
        self.config = config
        self.sstp = SstpClient(
            config.host,
            correlation_id=correlation_id,
            hash_protocols=config.hash_protocols,
            hello_interval=config.hello_interval,
            random_bytes=random_bytes,
        )

    def set_server_certificate(self, der: bytes) -> None:
        """The DER of the leaf certificate TLS saw; the crypto binding hashes it."""
        self.sstp.set_server_certificate(der)

    def _on_authenticated(self, hlak: bytes, now: float) -> None:
        self.sstp.complete_binding(hlak, now)

    def _connected(self) -> bool:
        return self.sstp.is_connected


class ServerLink(Link):
    """The answering side of one call."""

    __slots__ = ("config", "sstp")

    sstp: SstpServer

    def __init__(
        self,
        config: ServerConfig,
        *,
        network_for_user: NetworkForUser,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        """``network_for_user`` is asked once the user is authenticated, for the addresses of this call or
        the reason there are none. Whether the user's proof holds is asked with a :class:`Verification`
        event and answered with :meth:`answer`."""
        super().__init__(PppSession(config.ppp, network_for_user=network_for_user, random_bytes=random_bytes))
        self.config = config
        self.sstp = SstpServer(
            cert_hashes=config.certificate_hashes,
            hash_protocols=config.hash_protocols,
            hello_interval=config.hello_interval,
            negotiation_timeout=config.negotiation_timeout,
            handshake_timeout=config.handshake_timeout,
            random_bytes=random_bytes,
            http_date=config.http_date,
            not_sstp_response=config.not_sstp_response,
        )

    def answer(self, now: float, question: Verification, verdict: Verdict) -> None:
        """The answer to ``question``, a :class:`Verification` this link reported (the authenticator
        waiting for it goes on; an answer nobody waits for any more is ignored)."""
        if self._closed:
            return
        self.session.answer(now, question, verdict)
        self._process(now)

    def _on_authenticated(self, hlak: bytes, now: float) -> None:
        self.sstp.set_hlak(hlak, now)

    def _connected(self) -> bool:
        return self.sstp.is_connected
