"""Sans-I/O SSTP state machines for both roles ([MS-SSTP] §3.1-3.3), HTTP handshake included.

Feed TLS plaintext with ``receive_data`` (or whole packets with ``receive_packet``), the time with
``handle_timer``; drain ``data_to_send()`` and ``take_events()``; call ``handle_timer`` again at
``next_deadline()``. Which control message is acceptable in which state is one explicit table per role
(``_TRANSITIONS``); any other message is a protocol violation and starts the abort procedure, except in
the teardown states, which ignore what they do not expect.

The spec's transient states Call_Abort_In_Progress_1/2 and Call_Disconnect_In_Progress_1/2 last only while
a message is queued, so they are not represented. ``CLOSED`` is ours: the caller must close TLS/TCP.
"""

from __future__ import annotations

import enum
import os
import uuid
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, ClassVar

from pysstp.errors import DelineationError
from pysstp.randomness import RandomBytes
from pysstp.sstp.binding import (
    BindingFailure,
    CryptoBindingError,
    build_call_connected,
    certificate_hash,
    choose_hash,
    normalize_hlak,
    verify_call_connected,
)
from pysstp.sstp.constants import (
    CONTROL_BIT,
    ENCAPSULATED_PROTOCOL_PPP,
    HASH_DIGEST_LEN,
    HEADER_LEN,
    MAX_CONNECT_NAKS,
    MAX_DATA_PAYLOAD,
    NONCE_LEN,
    PPP_ADDRESS_CONTROL,
    PPP_CONTROL_PROTOCOL_MIN,
    AttributeId,
    HashProtocol,
    MessageType,
    Status,
    Timer,
)
from pysstp.sstp.events import (
    CallConnectAcked,
    CallConnectedSent,
    CallConnectedVerified,
    CallConnectRequested,
    ConnectionClosed,
    CryptoBindingFailed,
    Event,
    HttpRequestReceived,
    HttpResponseReceived,
    PeerAborted,
    PeerDisconnecting,
    PppFrameReceived,
)
from pysstp.sstp.http import (
    HttpRequestRejected,
    HttpResponseError,
    RequestParser,
    ResponseParser,
    build_request,
    ok_response,
)
from pysstp.sstp.packets import (
    CallAbort,
    CallConnectAck,
    CallConnected,
    CallConnectNak,
    CallConnectRequest,
    CallDisconnect,
    CallDisconnectAck,
    ControlMessage,
    Deframer,
    EchoRequest,
    EchoResponse,
    SstpPacketError,
    StatusInfo,
    decode_control,
    encode_control,
    encode_data,
)

_ALL_HASHES = HashProtocol.SHA1 | HashProtocol.SHA256
_NO_ERROR = StatusInfo(AttributeId.NO_ERROR, Status.NO_ERROR)


class SstpState(enum.Enum):
    """States of [MS-SSTP] §3.2.1.1.1 (client), §3.3.1.1.1 (server) and §3.1.1.1 (teardown), plus CLOSED."""

    CLIENT_CALL_DISCONNECTED = "Client_Call_Disconnected"
    CLIENT_CONNECT_REQUEST_SENT = "Client_Connect_Request_Sent"
    CLIENT_CONNECT_ACK_RECEIVED = "Client_Connect_Ack_Received"
    CLIENT_CALL_CONNECTED = "Client_Call_Connected"
    SERVER_CALL_DISCONNECTED = "Server_Call_Disconnected"
    SERVER_CONNECT_REQUEST_PENDING = "Server_Connect_Request_Pending"
    SERVER_CALL_CONNECTED_PENDING = "Server_Call_Connected_Pending"
    SERVER_CALL_CONNECTED = "Server_Call_Connected"
    CALL_ABORT_PENDING = "Call_Abort_Pending"
    CALL_ABORT_TIMEOUT_PENDING = "Call_Abort_Timeout_Pending"
    CALL_DISCONNECT_ACK_PENDING = "Call_Disconnect_Ack_Pending"
    CALL_DISCONNECT_TIMEOUT_PENDING = "Call_Disconnect_Timeout_Pending"
    CLOSED = "Closed"


TEARDOWN_STATES = frozenset(
    {
        SstpState.CALL_ABORT_PENDING,
        SstpState.CALL_ABORT_TIMEOUT_PENDING,
        SstpState.CALL_DISCONNECT_ACK_PENDING,
        SstpState.CALL_DISCONNECT_TIMEOUT_PENDING,
    }
)

_Handler = Callable[[Any, Any, bytes, float], None]
"""(machine, decoded message, raw packet, now) -> None."""


def is_ppp_control_frame(frame: bytes) -> bool:
    """True if a PPP frame carries link, auth or network control (protocol >= 0x8000).

    Accepts the compressed forms: ``ff 03`` may be missing, and an odd first protocol byte means a 1-byte
    (PFC) protocol, which is always below 0x100 and therefore data.
    """
    start = len(PPP_ADDRESS_CONTROL) if frame.startswith(PPP_ADDRESS_CONTROL) else 0
    if len(frame) < start + 2 or frame[start] & 1:
        return False
    return int.from_bytes(frame[start : start + 2], "big") >= PPP_CONTROL_PROTOCOL_MIN


def _check_hash_protocols(mask: HashProtocol) -> None:
    # plain ints: IntFlag's ~ keeps only known bits, so it cannot find unknown ones
    if not int(mask) or int(mask) & ~int(_ALL_HASHES):
        raise ValueError(f"hash protocols must be SHA1 and/or SHA256, not {mask!r}")


def _status_name(status: StatusInfo | None) -> str:
    if status is None:
        return "no status"
    try:
        return Status(status.status).name
    except ValueError:
        return f"status {status.status:#x}"


class _SstpMachine:
    """What both roles share: framing, PPP gating, echo/hello, the abort and disconnect sub-machines."""

    __slots__ = (
        "_close_reason",
        "_deadline",
        "_deframer",
        "_echo_outstanding",
        "_events",
        "_hello_deadline",
        "_hello_interval",
        "_outgoing",
        "_random_bytes",
        "dropped_received_frames",
        "dropped_sent_frames",
        "state",
    )

    _INITIAL_STATE: ClassVar[SstpState]
    _NEGOTIATING_STATE: ClassVar[SstpState]
    """PPP runs but only control frames may pass (before CALL_CONNECTED)."""
    _CONNECTED_STATE: ClassVar[SstpState]
    _TRANSITIONS: ClassVar[Mapping[SstpState, Mapping[type[ControlMessage], _Handler]]]

    def __init__(self, *, hello_interval: float, random_bytes: RandomBytes) -> None:
        if hello_interval <= 0:
            raise ValueError("hello_interval must be positive")
        self.state = self._INITIAL_STATE
        self.dropped_received_frames = 0
        """PPP frames received but not passed on: data before CALL_CONNECTED, or no PPP running."""
        self.dropped_sent_frames = 0
        """Frames given to ``send_ppp`` and silently dropped (see there)."""
        self._hello_interval = float(hello_interval)
        self._random_bytes = random_bytes
        self._deframer = Deframer()
        # None while empty: an idle call holds no empty lists (docs/scaling.md, "Numbers").
        self._outgoing: list[bytes] | None = None
        self._events: list[Event] | None = None
        self._deadline: float | None = None
        self._hello_deadline: float | None = None
        self._echo_outstanding = False
        self._close_reason = ""

    # ------------------------------------------------------------------------------------------ public API

    @property
    def is_connected(self) -> bool:
        """True in Client_Call_Connected / Server_Call_Connected: all PPP frames may flow."""
        return self.state is self._CONNECTED_STATE

    @property
    def is_closed(self) -> bool:
        """True once :class:`ConnectionClosed` was reported: nothing more will happen."""
        return self.state is SstpState.CLOSED

    @property
    def deframer(self) -> Deframer:
        """The stream deframer. A fast path that takes over cutting the stream must use this one (it may
        hold the start of a packet) and then hand non-data packets to :meth:`receive_packet`."""
        return self._deframer

    def receive_data(self, data: bytes, now: float) -> None:
        """TLS plaintext from the peer: the HTTP head first, then SSTP packets cut at any boundary."""
        if self.state is SstpState.CLOSED:
            return
        if self.state is self._INITIAL_STATE:
            leftover = self._receive_http(data, now)
            if not leftover:
                return
            data = leftover
        try:
            packets = self._deframer.feed(data)
        except DelineationError as exc:
            self._close(f"SSTP stream cannot be delineated: {exc}", error=True, silent=True)
            return
        for packet in packets:
            if self.is_closed:
                return
            self._receive_packet(packet, now)

    def receive_packet(self, packet: bytes, now: float) -> None:
        """One whole SSTP packet already cut by the caller (as :class:`Deframer` would)."""
        if self.state is SstpState.CLOSED:
            return
        if self.state is self._INITIAL_STATE:
            raise RuntimeError("SSTP packets before the HTTP handshake finished")
        self._receive_packet(packet, now)

    def note_activity(self, now: float) -> None:
        """The caller's fast path received a data packet itself: it counts for the hello timer."""
        if self._hello_deadline is not None:
            self._hello_deadline = now + self._hello_interval
            self._echo_outstanding = False

    def send_ppp(self, frame: bytes) -> None:
        """Queue one PPP frame in a data packet.

        Frames over 4091 bytes raise ValueError. Otherwise nothing is refused loudly: before
        CALL_CONNECTED only PPP control frames (protocol >= 0x8000) are sent, and nothing is sent before
        PPP may start or during teardown; such frames are dropped and counted in ``dropped_sent_frames``,
        the way a router drops packets for a link that is not up.
        """
        if len(frame) > MAX_DATA_PAYLOAD:
            raise ValueError(
                f"PPP frame of {len(frame)} bytes exceeds the SSTP maximum of {MAX_DATA_PAYLOAD}"
            )
        state = self.state
        if state is self._CONNECTED_STATE or (
            state is self._NEGOTIATING_STATE and is_ppp_control_frame(frame)
        ):
            self._write(encode_data(frame))
        else:
            self.dropped_sent_frames += 1

    def disconnect(self, now: float) -> None:
        """Orderly end: CALL_DISCONNECT, then wait up to 5 s for CALL_DISCONNECT_ACK."""
        if self.state is SstpState.CLOSED or self.state in TEARDOWN_STATES:
            return
        if self.state is self._INITIAL_STATE:
            self._close("disconnected before the call started", error=False)
            return
        self._send(CallDisconnect(_NO_ERROR))
        self._close_reason = "disconnected"
        self._enter(SstpState.CALL_DISCONNECT_ACK_PENDING, now + Timer.DISCONNECT_1)

    def abort(self, status: Status, now: float) -> None:
        """Abort the call: CALL_ABORT with ``status``, then close after 3 s (1 s once the peer answers)."""
        self._abort(StatusInfo(AttributeId.NO_ERROR, status), f"aborted locally ({status.name})", now)

    def handle_timer(self, now: float) -> None:
        """Handle every deadline that is due at ``now``; harmless when none is."""
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._on_state_timeout(now)
        if self._hello_deadline is not None and now >= self._hello_deadline:
            self._on_hello_timeout(now)

    def next_deadline(self) -> float | None:
        """The earliest time at which ``handle_timer`` must be called, or None."""
        if self._hello_deadline is None:
            return self._deadline
        if self._deadline is None:
            return self._hello_deadline
        return min(self._deadline, self._hello_deadline)

    def data_to_send(self) -> bytes:
        """Everything queued for the peer, joined into one buffer for one TLS write."""
        outgoing, self._outgoing = self._outgoing, None
        return b"".join(outgoing) if outgoing is not None else b""

    def take_events(self) -> list[Event]:
        """Events since the last call, oldest first."""
        events, self._events = self._events, None
        return events if events is not None else []

    # ------------------------------------------------------------------------------------------ internals

    def _receive_http(self, data: bytes, now: float) -> bytes | None:
        """Feed the HTTP handshake; return the bytes after a completed head (already SSTP)."""
        raise NotImplementedError

    def _receive_packet(self, packet: bytes, now: float) -> None:
        # the hello timer restarts on any received packet, data or control ([MS-SSTP] §3.1.2.3)
        self.note_activity(now)
        if not packet[1] & CONTROL_BIT:
            self._receive_ppp(packet[HEADER_LEN:])
            return
        try:
            msg = decode_control(packet)
        except SstpPacketError as exc:
            self._on_malformed(exc, now)
            return
        handler = self._TRANSITIONS.get(self.state, {}).get(type(msg))
        if handler is not None:
            handler(self, msg, packet, now)
        elif self.state not in TEARDOWN_STATES:
            self._abort(
                StatusInfo(AttributeId.NO_ERROR, Status.UNACCEPTED_FRAME_RECEIVED),
                f"{type(msg).__name__} is not acceptable in {self.state.value}",
                now,
            )

    def _receive_ppp(self, frame: bytes) -> None:
        state = self.state
        if frame and (
            state is self._CONNECTED_STATE
            or (state is self._NEGOTIATING_STATE and is_ppp_control_frame(frame))
        ):
            self._emit(PppFrameReceived(frame))
        else:
            self.dropped_received_frames += 1

    def _on_malformed(self, exc: SstpPacketError, now: float) -> None:
        if self.state not in TEARDOWN_STATES:
            self._abort(StatusInfo(exc.attribute_id, exc.status), f"malformed control packet: {exc}", now)

    def _on_state_timeout(self, now: float) -> None:
        state = self.state
        if state is self._INITIAL_STATE:
            self._close("timed out in the HTTP handshake", error=True)
        elif state in (SstpState.CALL_ABORT_PENDING, SstpState.CALL_ABORT_TIMEOUT_PENDING):
            self._close(self._close_reason, error=True)
        elif state is SstpState.CALL_DISCONNECT_ACK_PENDING:
            self._close(f"{self._close_reason} (no CALL_DISCONNECT_ACK)", error=False)
        elif state is SstpState.CALL_DISCONNECT_TIMEOUT_PENDING:
            self._close(self._close_reason, error=False)
        else:
            self._abort(
                StatusInfo(AttributeId.NO_ERROR, Status.NEGOTIATION_TIMEOUT), "negotiation timed out", now
            )

    def _on_hello_timeout(self, now: float) -> None:
        if self._echo_outstanding:
            # [MS-SSTP] §3.1.2.3: the peer is gone; close without sending CALL_ABORT
            self._close(f"nothing received for {2 * self._hello_interval:g} s", error=True, silent=True)
            return
        self._send(EchoRequest())
        self._echo_outstanding = True
        self._hello_deadline = now + self._hello_interval

    def _send(self, msg: ControlMessage) -> None:
        self._write(encode_control(msg))

    def _write(self, data: bytes) -> None:
        if self._outgoing is None:
            self._outgoing = [data]
        else:
            self._outgoing.append(data)

    def _emit(self, event: Event) -> None:
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)

    def _enter(self, state: SstpState, deadline: float | None) -> None:
        """Move to ``state`` with its timer; the hello timer only runs in the connected state."""
        self.state = state
        self._deadline = deadline
        if state is not self._CONNECTED_STATE:
            self._hello_deadline = None

    def _enter_connected(self, now: float) -> None:
        self._enter(self._CONNECTED_STATE, None)
        self._hello_deadline = now + self._hello_interval
        self._echo_outstanding = False

    def _abort(self, status: StatusInfo, reason: str, now: float) -> None:
        """Initiator side of the abort sub-machine ([MS-SSTP] §3.1.2.1)."""
        if self.state is SstpState.CLOSED or self.state in TEARDOWN_STATES:
            return
        if self.state is self._INITIAL_STATE:
            # no SSTP has been spoken yet, so there is nobody to send CALL_ABORT to
            self._close(reason, error=True)
            return
        self._send(CallAbort(status))
        self._close_reason = reason
        self._enter(SstpState.CALL_ABORT_PENDING, now + Timer.ABORT_1)

    def _close(self, reason: str, *, error: bool, silent: bool = False) -> None:
        """End the call; ``silent`` drops unsent output too (the spec's "close without sending")."""
        if silent:
            self._outgoing = None
        self.state = SstpState.CLOSED
        self._deadline = None
        self._hello_deadline = None
        self._emit(ConnectionClosed(reason, error))

    # ------------------------------------------------------------------------------------------ handlers

    def _on_echo_request(self, msg: EchoRequest, packet: bytes, now: float) -> None:
        self._send(EchoResponse())

    def _on_echo_response(self, msg: EchoResponse, packet: bytes, now: float) -> None:
        """Nothing to do: any received packet already restarted the hello timer."""

    def _on_peer_abort(self, msg: CallAbort, packet: bytes, now: float) -> None:
        """Responder side of the abort sub-machine: answer with CALL_ABORT, close after 1 s."""
        self._emit(PeerAborted(msg.status))
        self._send(CallAbort(_NO_ERROR))
        self._close_reason = f"peer aborted ({_status_name(msg.status)})"
        self._enter(SstpState.CALL_ABORT_TIMEOUT_PENDING, now + Timer.ABORT_2)

    def _on_abort_answer(self, msg: CallAbort, packet: bytes, now: float) -> None:
        """Our CALL_ABORT was answered (or crossed the peer's): close after 1 s."""
        self._emit(PeerAborted(msg.status))
        self._enter(SstpState.CALL_ABORT_TIMEOUT_PENDING, now + Timer.ABORT_2)

    def _on_peer_disconnect(self, msg: CallDisconnect, packet: bytes, now: float) -> None:
        """Responder side of the disconnect sub-machine: CALL_DISCONNECT_ACK, close after 1 s."""
        self._emit(PeerDisconnecting(msg.status))
        self._send(CallDisconnectAck())
        self._close_reason = "peer disconnected"
        self._enter(SstpState.CALL_DISCONNECT_TIMEOUT_PENDING, now + Timer.DISCONNECT_2)

    def _on_disconnect_collision(self, msg: CallDisconnect, packet: bytes, now: float) -> None:
        """Both ends sent CALL_DISCONNECT: acknowledge the peer's and keep waiting for its ACK of ours."""
        self._emit(PeerDisconnecting(msg.status))
        self._send(CallDisconnectAck())

    def _on_disconnect_ack(self, msg: CallDisconnectAck, packet: bytes, now: float) -> None:
        self._close(self._close_reason, error=False)

    _COMMON: ClassVar[Mapping[type[ControlMessage], _Handler]] = {
        EchoRequest: _on_echo_request,
        EchoResponse: _on_echo_response,
        CallAbort: _on_peer_abort,
        CallDisconnect: _on_peer_disconnect,
    }
    """Acceptable in every non-teardown SSTP state: SoftEther pings before CALL_CONNECTED."""

    _TEARDOWN: ClassVar[Mapping[SstpState, Mapping[type[ControlMessage], _Handler]]] = {
        SstpState.CALL_ABORT_PENDING: {CallAbort: _on_abort_answer},
        SstpState.CALL_ABORT_TIMEOUT_PENDING: {},
        SstpState.CALL_DISCONNECT_ACK_PENDING: {
            CallDisconnectAck: _on_disconnect_ack,
            CallDisconnect: _on_disconnect_collision,
        },
        SstpState.CALL_DISCONNECT_TIMEOUT_PENDING: {},
    }


class SstpClient(_SstpMachine):
    """The client role: HTTP request, CALL_CONNECT_REQUEST, and after PPP authentication the binding.

    Use: ``start(now)``; on :class:`CallConnectAcked` start PPP; ``set_server_certificate(der)`` any time
    before ``complete_binding(hlak, now)``, which the PPP layer triggers once authentication succeeded.
    ``correlation_id`` defaults to a random GUID drawn from ``random_bytes``.
    """

    __slots__ = (
        "_certificate",
        "_hash_protocols",
        "_naks",
        "_nonce",
        "_request",
        "_response_parser",
        "hash_protocol",
    )

    _INITIAL_STATE = SstpState.CLIENT_CALL_DISCONNECTED
    _NEGOTIATING_STATE = SstpState.CLIENT_CONNECT_ACK_RECEIVED
    _CONNECTED_STATE = SstpState.CLIENT_CALL_CONNECTED

    def __init__(
        self,
        host: str,
        *,
        correlation_id: str | None = None,
        hash_protocols: HashProtocol = _ALL_HASHES,
        hello_interval: float = Timer.HELLO,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        super().__init__(hello_interval=hello_interval, random_bytes=random_bytes)
        _check_hash_protocols(hash_protocols)
        if correlation_id is None:
            correlation_id = str(uuid.UUID(bytes=random_bytes(16), version=4)).upper()
        self._request = build_request(host, correlation_id)
        self._hash_protocols = hash_protocols
        self._response_parser: ResponseParser | None = None
        self._naks = 0
        self._certificate: bytes | None = None
        self._nonce = b""
        self.hash_protocol: HashProtocol | None = None
        """The hash protocol chosen from the server's CALL_CONNECT_ACK."""

    def start(self, now: float) -> None:
        """Send the HTTP request and wait up to 60 s for the response."""
        if self.state is not SstpState.CLIENT_CALL_DISCONNECTED or self._response_parser is not None:
            raise RuntimeError("start() may be called once, first")
        self._write(self._request)
        self._response_parser = ResponseParser()
        self._deadline = now + Timer.HTTP_RESPONSE

    def set_server_certificate(self, der: bytes) -> None:
        """The DER encoding of the leaf certificate the TLS layer received (hashed for the binding)."""
        self._certificate = bytes(der)

    def complete_binding(self, hlak: bytes, now: float) -> None:
        """PPP authentication succeeded: send CALL_CONNECTED and enter Client_Call_Connected.

        A no-op once the call is being torn down; RuntimeError before CALL_CONNECT_ACK or without the
        server certificate.
        """
        if self.state is SstpState.CLOSED or self.state in TEARDOWN_STATES:
            return
        if self.state is not SstpState.CLIENT_CONNECT_ACK_RECEIVED or self.hash_protocol is None:
            raise RuntimeError(f"complete_binding() in {self.state.value}")
        if self._certificate is None:
            raise RuntimeError("complete_binding() before set_server_certificate()")
        proto = self.hash_protocol
        cert_hash = certificate_hash(self._certificate, proto)
        self._write(build_call_connected(hlak, self._nonce, cert_hash, proto))
        self._emit(CallConnectedSent(proto))
        self._enter_connected(now)

    def _receive_http(self, data: bytes, now: float) -> bytes | None:
        parser = self._response_parser
        if parser is None:
            self._close("data received before the HTTP request was sent", error=True)
            return None
        try:
            response = parser.feed(data)
        except HttpResponseError as exc:
            self._close(f"HTTP handshake failed: {exc}", error=True)
            return None
        if response is None:
            return None
        self._response_parser = None
        self._emit(HttpResponseReceived(response))
        self._send(CallConnectRequest())
        self._enter(SstpState.CLIENT_CONNECT_REQUEST_SENT, now + Timer.NEGOTIATION)
        return response.leftover

    def _on_connect_ack(self, msg: CallConnectAck, packet: bytes, now: float) -> None:
        try:
            proto = choose_hash(msg.hash_protocols & self._hash_protocols)
        except CryptoBindingError:
            self._abort(
                StatusInfo(AttributeId.CRYPTO_BINDING_REQ, Status.VALUE_NOT_SUPPORTED),
                f"server offers no usable hash protocol (bitmask {int(msg.hash_protocols):#04x})",
                now,
            )
            return
        self.hash_protocol = proto
        self._nonce = msg.nonce
        self._emit(CallConnectAcked(proto, msg.nonce))
        self._enter(SstpState.CLIENT_CONNECT_ACK_RECEIVED, now + Timer.NEGOTIATION)

    def _on_connect_nak(self, msg: CallConnectNak, packet: bytes, now: float) -> None:
        self._naks += 1
        if self._naks > MAX_CONNECT_NAKS:
            self._abort(
                StatusInfo(AttributeId.NO_ERROR, Status.RETRY_COUNT_EXCEEDED),
                f"server refused CALL_CONNECT_REQUEST {self._naks} times",
                now,
            )
            return
        self._send(CallConnectRequest())
        self._enter(SstpState.CLIENT_CONNECT_REQUEST_SENT, now + Timer.NEGOTIATION)

    _TRANSITIONS = {
        SstpState.CLIENT_CONNECT_REQUEST_SENT: {
            **_SstpMachine._COMMON,
            CallConnectAck: _on_connect_ack,
            CallConnectNak: _on_connect_nak,
        },
        SstpState.CLIENT_CONNECT_ACK_RECEIVED: _SstpMachine._COMMON,
        SstpState.CLIENT_CALL_CONNECTED: _SstpMachine._COMMON,
        **_SstpMachine._TEARDOWN,
    }


class SstpServer(_SstpMachine):
    """The server role: HTTP request, CALL_CONNECT_ACK, then verification of the client's binding.

    Use: optionally ``start(now)`` at TLS accept (arms the negotiation timer for the HTTP request and
    CALL_CONNECT_REQUEST, as accel-ppp does, and the shorter ``handshake_timeout`` for the HTTP request
    alone, so a half-open scanner is gone quickly); on :class:`CallConnectRequested` start PPP;
    ``set_hlak(hlak, now)`` when PPP authentication finished. ``cert_hashes`` maps every offered hash
    protocol to the digest of the certificate the client sees. Until the binding is verified, received
    PPP data frames (non-control protocols) are dropped and counted in ``dropped_received_frames``.
    """

    __slots__ = (
        "_cert_hashes",
        "_handshake_timeout",
        "_hash_protocols",
        "_hlak",
        "_http_date",
        "_naks",
        "_negotiation_deadline",
        "_negotiation_timeout",
        "_nonce",
        "_not_sstp_response",
        "_pending_call_connected",
        "_request_parser",
        "hash_protocol",
    )

    _INITIAL_STATE = SstpState.SERVER_CALL_DISCONNECTED
    _NEGOTIATING_STATE = SstpState.SERVER_CALL_CONNECTED_PENDING
    _CONNECTED_STATE = SstpState.SERVER_CALL_CONNECTED

    def __init__(
        self,
        *,
        cert_hashes: Mapping[HashProtocol, bytes],
        hash_protocols: HashProtocol = _ALL_HASHES,
        hello_interval: float = Timer.HELLO,
        negotiation_timeout: float = Timer.NEGOTIATION,
        handshake_timeout: float | None = None,
        random_bytes: RandomBytes = os.urandom,
        http_date: Callable[[], str] | None = None,
        not_sstp_response: bytes | None = None,
    ) -> None:
        super().__init__(hello_interval=hello_interval, random_bytes=random_bytes)
        self._not_sstp_response = not_sstp_response
        """Sent instead of the 404/501 to a request that is not SSTP (a browser, a scanner)."""
        _check_hash_protocols(hash_protocols)
        for proto in (HashProtocol.SHA1, HashProtocol.SHA256):
            if proto & hash_protocols and len(cert_hashes.get(proto, b"")) != HASH_DIGEST_LEN[proto]:
                raise ValueError(f"cert_hashes needs the {HASH_DIGEST_LEN[proto]}-byte {proto.name} digest")
        # Not copied: the server's one mapping serves every call (ServerConfig.certificate_hashes).
        self._cert_hashes = cert_hashes
        self._hash_protocols = hash_protocols
        self._negotiation_timeout = float(negotiation_timeout)
        self._handshake_timeout = negotiation_timeout if handshake_timeout is None else handshake_timeout
        """Seconds from ``start()`` to the whole HTTP request; the spec sets no limit, so ours."""
        self._negotiation_deadline: float | None = None
        self._http_date = http_date
        self._request_parser: RequestParser | None = RequestParser()
        """Reads the HTTP request; dropped once it is read."""
        self._naks = 0
        self._nonce = b""
        self._hlak: bytes | None = None
        self._pending_call_connected: bytes | None = None
        self.hash_protocol: HashProtocol | None = None
        """The hash protocol of the verified CALL_CONNECTED."""

    def start(self, now: float) -> None:
        """Optional: from now, the HTTP request must come within ``handshake_timeout`` and
        CALL_CONNECT_REQUEST within ``negotiation_timeout``."""
        if self.state is self._INITIAL_STATE:
            self._negotiation_deadline = now + self._negotiation_timeout
            self._deadline = min(self._negotiation_deadline, now + self._handshake_timeout)

    def set_hlak(self, hlak: bytes, now: float) -> None:
        """PPP authentication finished with this HLAK (32 zero bytes for PAP/CHAP-MD5).

        A CALL_CONNECTED that arrived earlier is verified now; a later one is verified on arrival.
        """
        if self.state is SstpState.CLOSED or self.state in TEARDOWN_STATES:
            return
        self._hlak = normalize_hlak(hlak)
        packet = self._pending_call_connected
        if packet is not None and self.state is SstpState.SERVER_CALL_CONNECTED_PENDING:
            self._pending_call_connected = None
            self._verify(packet, self._hlak, now)

    def _receive_http(self, data: bytes, now: float) -> bytes | None:
        assert self._request_parser is not None  # only in the initial state, which the request ends
        try:
            request = self._request_parser.feed(data)
        except HttpRequestRejected as exc:
            not_sstp = exc.status_code in (HTTPStatus.NOT_FOUND, HTTPStatus.NOT_IMPLEMENTED)
            answer = self._not_sstp_response if not_sstp and self._not_sstp_response else exc.response
            self._write(answer)
            self._close(f"HTTP request rejected: {exc}", error=True)
            return None
        if request is None:
            return None
        self._request_parser = None
        self._emit(HttpRequestReceived(request))
        self._write(ok_response(self._http_date() if self._http_date is not None else None))
        # the spec sets no timer for CALL_CONNECT_REQUEST; without one a silent client would hold the call
        deadline = self._negotiation_deadline
        if deadline is None:
            deadline = now + self._negotiation_timeout
        self._enter(SstpState.SERVER_CONNECT_REQUEST_PENDING, deadline)
        return request.leftover

    def _on_state_timeout(self, now: float) -> None:
        if self.state is self._INITIAL_STATE:
            wait = min(self._handshake_timeout, self._negotiation_timeout)
            self._close(f"no SSTP request within {wait:g} s", error=True)
        else:
            super()._on_state_timeout(now)

    def _nak(self, status: StatusInfo, now: float) -> None:
        self._naks += 1
        if self._naks > MAX_CONNECT_NAKS:
            self._abort(
                StatusInfo(AttributeId.NO_ERROR, Status.RETRY_COUNT_EXCEEDED),
                f"client sent {self._naks} unacceptable CALL_CONNECT_REQUESTs",
                now,
            )
        else:
            self._send(CallConnectNak((status,)))

    def _binding_failed(self, reason: BindingFailure, now: float) -> None:
        self._emit(CryptoBindingFailed(reason))
        self._abort(
            StatusInfo(AttributeId.CRYPTO_BINDING, Status.INVALID_FRAME_RECEIVED),
            f"crypto binding failed: {reason.value}",
            now,
        )

    def _verify(self, packet: bytes, hlak: bytes, now: float) -> None:
        try:
            proto = verify_call_connected(
                packet,
                hlak=hlak,
                nonce=self._nonce,
                cert_hashes=self._cert_hashes,
                offered=self._hash_protocols,
            )
        except CryptoBindingError as exc:
            self._binding_failed(exc.reason, now)
            return
        self.hash_protocol = proto
        # Only this check needed them: an established call does not keep its keys (docs/scaling.md).
        self._nonce, self._hlak = b"", None
        self._emit(CallConnectedVerified(proto))
        self._enter_connected(now)

    def _on_malformed(self, exc: SstpPacketError, now: float) -> None:
        if (
            self.state is SstpState.SERVER_CONNECT_REQUEST_PENDING
            and exc.message_type == MessageType.CALL_CONNECT_REQUEST
        ):
            self._nak(StatusInfo(exc.attribute_id, exc.status), now)
        elif (
            self.state is SstpState.SERVER_CALL_CONNECTED_PENDING
            and exc.message_type == MessageType.CALL_CONNECTED
        ):
            self._binding_failed(BindingFailure.MALFORMED, now)
        else:
            super()._on_malformed(exc, now)

    def _on_connect_request(self, msg: CallConnectRequest, packet: bytes, now: float) -> None:
        if msg.protocol_id != ENCAPSULATED_PROTOCOL_PPP:
            self._nak(StatusInfo(AttributeId.ENCAPSULATED_PROTOCOL_ID, Status.VALUE_NOT_SUPPORTED), now)
            return
        self._nonce = self._random_bytes(NONCE_LEN)
        self._send(CallConnectAck(self._hash_protocols, self._nonce))
        self._emit(CallConnectRequested())
        self._enter(SstpState.SERVER_CALL_CONNECTED_PENDING, now + self._negotiation_timeout)

    def _on_call_connected(self, msg: CallConnected, packet: bytes, now: float) -> None:
        if self._hlak is None:
            # Windows sends CALL_CONNECTED right after the auth Success, possibly before set_hlak()
            self._pending_call_connected = packet
        else:
            self._verify(packet, self._hlak, now)

    _TRANSITIONS = {
        SstpState.SERVER_CONNECT_REQUEST_PENDING: {
            **_SstpMachine._COMMON,
            CallConnectRequest: _on_connect_request,
        },
        SstpState.SERVER_CALL_CONNECTED_PENDING: {
            **_SstpMachine._COMMON,
            CallConnected: _on_call_connected,
        },
        SstpState.SERVER_CALL_CONNECTED: _SstpMachine._COMMON,
        **_SstpMachine._TEARDOWN,
    }
