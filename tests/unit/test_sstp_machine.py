"""SstpClient and SstpServer: conversations in memory with a fake clock, every timer, every failure path."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysstp.sstp.binding import BindingFailure, build_call_connected, certificate_hash
from pysstp.sstp.constants import (
    MAX_CONNECT_NAKS,
    MAX_DATA_PAYLOAD,
    AttributeId,
    HashProtocol,
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
    HttpRequestReceived,
    HttpResponseReceived,
    PeerAborted,
    PeerDisconnecting,
    PppFrameReceived,
    SstpEvent,
)
from pysstp.sstp.http import build_request, error_response
from pysstp.sstp.machine import SstpClient, SstpServer, SstpState, is_ppp_control_frame
from pysstp.sstp.packets import (
    CallAbort,
    CallConnectAck,
    CallConnected,
    CallConnectNak,
    CallConnectRequest,
    CallDisconnect,
    CallDisconnectAck,
    ControlMessage,
    EchoRequest,
    EchoResponse,
    StatusInfo,
    decode_control,
    encode_control,
    encode_data,
)

SHA1, SHA256 = HashProtocol.SHA1, HashProtocol.SHA256
BOTH = SHA1 | SHA256
DER = b"0\x82\x03\x00 a certificate the client saw"
CERT_HASHES = {SHA1: certificate_hash(DER, SHA1), SHA256: certificate_hash(DER, SHA256)}
HLAK = bytes(range(100, 132))
NONCE = b"\x07" * 32
DATE = "Thu, 09 Nov 2006 00:51:09 GMT"
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"

LCP_CONF_REQ = bytes.fromhex("ff 03 c0 21 01 01 00 08 01 04 05 dc")
IPCP_CONF_REQ = bytes.fromhex("ff 03 80 21 01 01 00 0a 03 06 00 00 00 00")
IPV4 = bytes.fromhex("ff 03 00 21 45 00 00 14") + bytes(12)
ECHO_REQUEST = encode_control(EchoRequest())
ECHO_RESPONSE = encode_control(EchoResponse())


def fake_random(n: int) -> bytes:
    return b"\x07" * n


def control(data: bytes) -> list[ControlMessage]:
    """The control messages in a chunk of bytes the machine sent (data packets skipped)."""
    messages = []
    pos = 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 2 : pos + 4], "big") & 0x0FFF
        if data[pos + 1] & 1:
            messages.append(decode_control(data[pos : pos + length]))
        pos += length
    return messages


def closed(events: Sequence[SstpEvent]) -> list[ConnectionClosed]:
    return [e for e in events if isinstance(e, ConnectionClosed)]


class Pair:
    """A client and a server joined back to back, with one clock."""

    def __init__(
        self,
        *,
        server_hashes: HashProtocol = BOTH,
        client_hashes: HashProtocol = BOTH,
        hello: float = Timer.HELLO,
        negotiation_timeout: float = Timer.NEGOTIATION,
        client_der: bytes = DER,
    ) -> None:
        self.now = 0.0
        self.client = SstpClient(
            "vpn.test", correlation_id="{C0FFEE}", hash_protocols=client_hashes, hello_interval=hello
        )
        self.server = SstpServer(
            cert_hashes=CERT_HASHES,
            hash_protocols=server_hashes,
            hello_interval=hello,
            negotiation_timeout=negotiation_timeout,
            random_bytes=fake_random,
            http_date=lambda: DATE,
        )
        self.client.set_server_certificate(client_der)
        self.client_events: list[SstpEvent] = []
        self.server_events: list[SstpEvent] = []
        self.to_server: list[bytes] = []
        self.to_client: list[bytes] = []

    def pump(self) -> None:
        while True:
            c, s = self.client.data_to_send(), self.server.data_to_send()
            if not c and not s:
                break
            if c:
                self.to_server.append(c)
                self.server.receive_data(c, self.now)
            if s:
                self.to_client.append(s)
                self.client.receive_data(s, self.now)
        self.client_events += self.client.take_events()
        self.server_events += self.server.take_events()

    def advance(self, now: float) -> None:
        self.now = now
        self.client.handle_timer(now)
        self.server.handle_timer(now)
        self.pump()

    def handshake(self) -> None:
        self.client.start(self.now)
        self.pump()

    def bind(self, hlak: bytes = HLAK) -> None:
        self.client.complete_binding(hlak, self.now)
        self.server.set_hlak(HLAK, self.now)
        self.pump()

    def connected(self) -> Pair:
        self.handshake()
        self.bind()
        assert self.client.is_connected and self.server.is_connected
        self.client_events.clear()
        self.server_events.clear()
        self.to_client.clear()
        self.to_server.clear()
        return self


def server_after_http() -> SstpServer:
    server = SstpServer(cert_hashes=CERT_HASHES, random_bytes=fake_random)
    server.receive_data(build_request("h", "{1}"), 0)
    server.data_to_send()
    server.take_events()
    return server


def server_pending() -> SstpServer:
    server = server_after_http()
    server.receive_data(encode_control(CallConnectRequest()), 0)
    assert server.state is SstpState.SERVER_CALL_CONNECTED_PENDING
    server.data_to_send()
    server.take_events()
    return server


def client_after_http() -> SstpClient:
    client = SstpClient("h", correlation_id="{1}")
    client.start(0)
    client.receive_data(HTTP_OK, 0)
    client.data_to_send()
    client.take_events()
    return client


def client_acked(mask: HashProtocol = BOTH) -> SstpClient:
    client = client_after_http()
    client.set_server_certificate(DER)
    client.receive_data(encode_control(CallConnectAck(mask, NONCE)), 0)
    client.take_events()
    return client


# ---------------------------------------------------------------------------------------- full handshakes


@pytest.mark.parametrize(
    ("server_hashes", "client_hashes", "chosen"),
    [(BOTH, BOTH, SHA256), (SHA256, BOTH, SHA256), (SHA1, BOTH, SHA1), (BOTH, SHA1, SHA1)],
)
def test_full_handshake_and_binding(
    server_hashes: HashProtocol, client_hashes: HashProtocol, chosen: HashProtocol
) -> None:
    pair = Pair(server_hashes=server_hashes, client_hashes=client_hashes)
    pair.handshake()
    assert pair.to_server[0] == build_request("vpn.test", "{C0FFEE}")
    assert pair.to_client[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"Date: {DATE}".encode() in pair.to_client[0]
    assert [type(e) for e in pair.client_events] == [HttpResponseReceived, CallConnectAcked]
    assert pair.client_events[1] == CallConnectAcked(chosen, NONCE)
    assert [type(e) for e in pair.server_events] == [HttpRequestReceived, CallConnectRequested]
    assert pair.client.state is SstpState.CLIENT_CONNECT_ACK_RECEIVED
    assert pair.server.state is SstpState.SERVER_CALL_CONNECTED_PENDING
    assert control(pair.to_client[-1]) == [CallConnectAck(server_hashes, NONCE)]

    pair.client.send_ppp(LCP_CONF_REQ)
    pair.server.send_ppp(LCP_CONF_REQ)
    pair.pump()
    assert PppFrameReceived(LCP_CONF_REQ) in pair.client_events
    assert PppFrameReceived(LCP_CONF_REQ) in pair.server_events

    pair.bind()
    assert CallConnectedSent(chosen) in pair.client_events
    assert CallConnectedVerified(chosen) in pair.server_events
    assert pair.client.is_connected and pair.server.is_connected
    assert pair.client.hash_protocol is chosen and pair.server.hash_protocol is chosen
    assert pair.client.next_deadline() == Timer.HELLO
    assert pair.server.next_deadline() == Timer.HELLO

    pair.client.send_ppp(IPV4)
    pair.server.send_ppp(IPV4)
    pair.pump()
    assert pair.client_events[-1] == PppFrameReceived(IPV4)
    assert pair.server_events[-1] == PppFrameReceived(IPV4)


def test_call_connected_before_set_hlak_is_verified_later() -> None:
    pair = Pair()
    pair.handshake()
    pair.client.complete_binding(HLAK, 1)
    pair.pump()
    assert pair.server.state is SstpState.SERVER_CALL_CONNECTED_PENDING
    assert not any(isinstance(e, CallConnectedVerified) for e in pair.server_events)
    pair.server.set_hlak(HLAK, 2)
    assert pair.server.take_events() == [CallConnectedVerified(SHA256)]
    assert pair.server.is_connected


def test_call_connected_after_set_hlak_is_verified_on_arrival() -> None:
    pair = Pair()
    pair.handshake()
    pair.server.set_hlak(HLAK, 1)
    assert not pair.server.take_events()
    pair.advance(50)
    pair.client.complete_binding(HLAK, 59)
    pair.pump()
    assert CallConnectedVerified(SHA256) in pair.server_events


def test_short_hlak_is_padded_on_both_sides() -> None:
    pair = Pair()
    pair.handshake()
    pair.client.complete_binding(b"\x01" * 16, 0)
    pair.server.set_hlak(b"\x01" * 16 + bytes(16), 0)
    pair.pump()
    assert pair.server.is_connected


def test_default_correlation_id_comes_from_random_bytes() -> None:
    client = SstpClient("h", random_bytes=bytes)
    client.start(0)
    assert b"SSTPCORRELATIONID: {00000000-0000-4000-8000-000000000000}\r\n" in client.data_to_send()


def test_pipelined_request_and_call_connect_request() -> None:
    server = SstpServer(cert_hashes=CERT_HASHES, random_bytes=fake_random)
    server.receive_data(build_request("h", "{1}") + encode_control(CallConnectRequest()), 0)
    out = server.data_to_send()
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Date:" not in head
    assert control(rest) == [CallConnectAck(BOTH, NONCE)]


# ---------------------------------------------------------------------------------------- crypto binding


def _binding_failure(pair: Pair, reason: BindingFailure) -> None:
    assert CryptoBindingFailed(reason) in pair.server_events
    abort = control(pair.to_client[-1])
    assert abort == [CallAbort(StatusInfo(AttributeId.CRYPTO_BINDING, Status.INVALID_FRAME_RECEIVED))]
    assert any(isinstance(e, PeerAborted) for e in pair.client_events)
    assert pair.server.state is SstpState.CALL_ABORT_TIMEOUT_PENDING
    pair.advance(pair.now + Timer.ABORT_2)
    assert closed(pair.server_events)[0].error
    assert closed(pair.client_events)[0].error


def test_wrong_hlak_is_a_bad_compound_mac() -> None:
    pair = Pair()
    pair.handshake()
    pair.bind(hlak=bytes(32))
    _binding_failure(pair, BindingFailure.BAD_COMPOUND_MAC)


def test_wrong_hlak_found_when_set_hlak_comes_late() -> None:
    pair = Pair()
    pair.handshake()
    pair.client.complete_binding(bytes(32), 0)
    pair.pump()
    pair.server.set_hlak(HLAK, 1)
    pair.now = 1
    pair.pump()
    _binding_failure(pair, BindingFailure.BAD_COMPOUND_MAC)


def test_wrong_certificate_hash() -> None:
    pair = Pair(client_der=b"a man in the middle's certificate")
    pair.handshake()
    pair.bind()
    _binding_failure(pair, BindingFailure.WRONG_CERT_HASH)


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (build_call_connected(HLAK, bytes(32), CERT_HASHES[SHA256], SHA256), BindingFailure.WRONG_NONCE),
        (build_call_connected(HLAK, NONCE, CERT_HASHES[SHA1], SHA1), BindingFailure.HASH_NOT_OFFERED),
        (
            build_call_connected(HLAK, NONCE, CERT_HASHES[SHA256], SHA256)[:-1] + b"\x00",
            BindingFailure.BAD_COMPOUND_MAC,
        ),
        (bytes.fromhex("10 01 00 0C 00 04 00 01 00 03 00 04"), BindingFailure.MALFORMED),
    ],
    ids=["nonce", "hash", "mac", "malformed"],
)
def test_crafted_call_connected_failures(packet: bytes, reason: BindingFailure) -> None:
    server = SstpServer(
        cert_hashes={SHA256: CERT_HASHES[SHA256]}, hash_protocols=SHA256, random_bytes=fake_random
    )
    server.receive_data(build_request("h", "{1}") + encode_control(CallConnectRequest()), 0)
    server.data_to_send()
    server.set_hlak(HLAK, 0)
    server.receive_data(packet, 1)
    assert CryptoBindingFailed(reason) in server.take_events()
    assert control(server.data_to_send()) == [
        CallAbort(StatusInfo(AttributeId.CRYPTO_BINDING, Status.INVALID_FRAME_RECEIVED))
    ]
    assert server.state is SstpState.CALL_ABORT_PENDING
    server.handle_timer(1 + Timer.ABORT_1)
    assert closed(server.take_events())[0].error


def test_second_call_connected_is_unacceptable() -> None:
    pair = Pair().connected()
    pair.server.receive_data(build_call_connected(HLAK, NONCE, CERT_HASHES[SHA256], SHA256), 5)
    assert control(pair.server.data_to_send()) == [
        CallAbort(StatusInfo(AttributeId.NO_ERROR, Status.UNACCEPTED_FRAME_RECEIVED))
    ]


def test_complete_binding_misuse() -> None:
    client = client_after_http()
    with pytest.raises(RuntimeError):
        client.complete_binding(HLAK, 0)
    client.receive_data(encode_control(CallConnectAck(BOTH, NONCE)), 0)
    with pytest.raises(RuntimeError):
        client.complete_binding(HLAK, 0)  # no certificate yet
    client.abort(Status.NO_ERROR, 1)
    client.complete_binding(HLAK, 1)  # tearing down: ignored
    assert client.state is SstpState.CALL_ABORT_PENDING


def test_client_aborts_when_no_hash_protocol_is_usable() -> None:
    client = SstpClient("h", correlation_id="{1}", hash_protocols=SHA1)
    client.start(0)
    client.receive_data(HTTP_OK + encode_control(CallConnectAck(SHA256, NONCE)), 0)
    assert control(client.data_to_send().partition(b"\r\n\r\n")[2])[-1] == CallAbort(
        StatusInfo(AttributeId.CRYPTO_BINDING_REQ, Status.VALUE_NOT_SUPPORTED)
    )
    assert client.state is SstpState.CALL_ABORT_PENDING


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        SstpServer(cert_hashes={SHA256: CERT_HASHES[SHA256]})  # SHA1 offered but no SHA1 digest
    with pytest.raises(ValueError):
        SstpServer(cert_hashes={SHA256: bytes(20)}, hash_protocols=SHA256)
    with pytest.raises(ValueError):
        SstpServer(cert_hashes=CERT_HASHES, hash_protocols=HashProtocol(0))
    with pytest.raises(ValueError):
        SstpClient("h", hash_protocols=HashProtocol(4))
    with pytest.raises(ValueError):
        SstpClient("h", hash_protocols=HashProtocol(5))
    with pytest.raises(ValueError):
        SstpClient("h", hello_interval=0)


# ---------------------------------------------------------------------------------------- timers


def test_http_response_timer() -> None:
    client = SstpClient("h", correlation_id="{1}")
    client.start(0)
    assert client.data_to_send().startswith(b"SSTP_DUPLEX_POST ")
    assert client.next_deadline() == Timer.HTTP_RESPONSE
    client.handle_timer(59.9)
    assert not client.take_events()
    client.handle_timer(60)
    assert client.take_events() == [ConnectionClosed("timed out in the HTTP handshake", True)]
    assert client.data_to_send() == b""
    assert client.next_deadline() is None


def test_server_start_limits_the_wait_for_the_request() -> None:
    server = SstpServer(cert_hashes=CERT_HASHES, negotiation_timeout=30)
    server.start(0)
    server.receive_data(b"SSTP_DUPLEX_POST /sra_", 10)
    server.handle_timer(30)
    assert closed(server.take_events())[0].error
    assert server.data_to_send() == b""


def test_server_closes_at_the_handshake_timeout_without_a_request() -> None:
    server = SstpServer(cert_hashes=CERT_HASHES, negotiation_timeout=60, handshake_timeout=10)
    server.start(0)
    assert server.next_deadline() == 10
    server.receive_data(b"SSTP_DUPLEX_POST /sra_", 5)
    server.handle_timer(9.9)
    assert not server.take_events()
    server.handle_timer(10)
    assert server.take_events() == [ConnectionClosed("no SSTP request within 10 s", True)]
    assert server.data_to_send() == b""
    assert server.next_deadline() is None


def test_server_handshake_timeout_ends_with_the_request() -> None:
    server = SstpServer(cert_hashes=CERT_HASHES, negotiation_timeout=60, handshake_timeout=10)
    server.start(0)
    server.receive_data(build_request("h", "{1}"), 5)
    assert server.data_to_send().startswith(b"HTTP/1.1 200")
    assert [type(event) for event in server.take_events()] == [HttpRequestReceived]
    assert server.next_deadline() == 60  # CALL_CONNECT_REQUEST: the negotiation timer from start()
    server.handle_timer(10)
    assert not server.take_events()


def test_server_waits_for_call_connect_request_at_most_the_negotiation_timeout() -> None:
    server = SstpServer(cert_hashes=CERT_HASHES, negotiation_timeout=30)
    server.receive_data(build_request("h", "{1}"), 10)
    server.data_to_send()
    assert server.next_deadline() == 40
    server.handle_timer(40)
    assert control(server.data_to_send()) == [
        CallAbort(StatusInfo(AttributeId.NO_ERROR, Status.NEGOTIATION_TIMEOUT))
    ]


def test_server_start_timer_covers_call_connect_request() -> None:
    server = SstpServer(cert_hashes=CERT_HASHES, negotiation_timeout=30)
    server.start(0)
    server.receive_data(build_request("h", "{1}"), 10)
    server.data_to_send()
    server.handle_timer(30)
    assert control(server.data_to_send()) == [
        CallAbort(StatusInfo(AttributeId.NO_ERROR, Status.NEGOTIATION_TIMEOUT))
    ]


def test_client_negotiation_timer_after_call_connect_request() -> None:
    client = client_after_http()
    assert client.next_deadline() == Timer.NEGOTIATION
    client.handle_timer(Timer.NEGOTIATION)
    assert control(client.data_to_send()) == [
        CallAbort(StatusInfo(AttributeId.NO_ERROR, Status.NEGOTIATION_TIMEOUT))
    ]
    assert client.state is SstpState.CALL_ABORT_PENDING
    client.handle_timer(Timer.NEGOTIATION + Timer.ABORT_1 - 0.1)
    assert not client.take_events()
    client.handle_timer(Timer.NEGOTIATION + Timer.ABORT_1)
    assert client.take_events() == [ConnectionClosed("negotiation timed out", True)]


def test_negotiation_timers_after_call_connect_ack() -> None:
    pair = Pair()
    pair.now = 5
    pair.handshake()
    assert pair.client.next_deadline() == 5 + Timer.NEGOTIATION
    assert pair.server.next_deadline() == 5 + Timer.NEGOTIATION
    pair.advance(5 + Timer.NEGOTIATION)
    # both abort at once; each sees the other's CALL_ABORT as the answer and closes 1 s later
    assert CallAbort(StatusInfo(AttributeId.NO_ERROR, Status.NEGOTIATION_TIMEOUT)) in control(
        pair.to_client[-1]
    )
    assert pair.server.state is SstpState.CALL_ABORT_TIMEOUT_PENDING
    pair.advance(6 + Timer.NEGOTIATION)
    assert closed(pair.server_events) == [ConnectionClosed("negotiation timed out", True)]
    assert closed(pair.client_events) == [ConnectionClosed("negotiation timed out", True)]


def test_server_negotiation_timeout_without_call_connected() -> None:
    pair = Pair(negotiation_timeout=10)
    pair.handshake()
    pair.server.set_hlak(HLAK, 1)
    pair.advance(10)
    assert control(pair.to_client[-1]) == [
        CallAbort(StatusInfo(AttributeId.NO_ERROR, Status.NEGOTIATION_TIMEOUT))
    ]
    assert PeerAborted(StatusInfo(AttributeId.NO_ERROR, Status.NEGOTIATION_TIMEOUT)) in pair.client_events


def test_late_call_connected_before_the_timer_is_accepted() -> None:
    pair = Pair()
    pair.handshake()
    pair.server.set_hlak(HLAK, 1)
    pair.client.send_ppp(IPCP_CONF_REQ)  # IPCP already running: sstpc sends CALL_CONNECTED this late
    pair.advance(Timer.NEGOTIATION - 0.5)
    pair.client.complete_binding(HLAK, pair.now)
    pair.pump()
    assert pair.server.is_connected
    pair.advance(Timer.NEGOTIATION + 1)
    assert pair.server.is_connected


def test_hello_echo_then_close_when_the_peer_is_silent() -> None:
    pair = Pair().connected()
    client = pair.client
    client.handle_timer(Timer.HELLO - 0.1)
    assert client.data_to_send() == b""
    client.handle_timer(Timer.HELLO)
    assert client.data_to_send() == ECHO_REQUEST
    assert client.next_deadline() == 2 * Timer.HELLO
    client.handle_timer(2 * Timer.HELLO - 0.1)
    assert not client.take_events()
    client.handle_timer(2 * Timer.HELLO)
    assert client.take_events() == [ConnectionClosed("nothing received for 120 s", True)]
    assert client.data_to_send() == b""


def test_hello_between_two_live_peers_never_closes() -> None:
    pair = Pair(hello=20).connected()
    for t in range(20, 400, 20):
        pair.advance(t)
    assert pair.client.is_connected and pair.server.is_connected
    assert ECHO_REQUEST in pair.to_client[0] or ECHO_REQUEST in pair.to_server[0]


def test_softether_never_answers_echo_but_its_own_pings_keep_us_up() -> None:
    client = client_acked()
    client.complete_binding(HLAK, 0)
    client.data_to_send()
    for t in range(3, 600, 3):
        client.receive_data(ECHO_REQUEST, t)
        client.handle_timer(t)
        assert client.data_to_send() == ECHO_RESPONSE
    assert client.is_connected


def test_any_packet_and_note_activity_restart_the_hello_timer() -> None:
    pair = Pair().connected()
    pair.client.note_activity(50)
    assert pair.client.next_deadline() == 50 + Timer.HELLO
    pair.server.send_ppp(IPV4)
    pair.now = 70
    pair.pump()
    assert pair.client.next_deadline() == 70 + Timer.HELLO
    pair.client.handle_timer(130)
    assert pair.client.data_to_send() == ECHO_REQUEST
    pair.client.receive_data(ECHO_RESPONSE, 131)
    assert pair.client.next_deadline() == 131 + Timer.HELLO
    pair.client.handle_timer(190.9)
    assert pair.client.data_to_send() == b""
    pair.client.handle_timer(191)
    assert pair.client.data_to_send() == ECHO_REQUEST


def test_custom_hello_interval() -> None:
    pair = Pair(hello=20).connected()
    pair.client.handle_timer(20)
    assert pair.client.data_to_send() == ECHO_REQUEST
    pair.client.handle_timer(40)
    assert closed(pair.client.take_events())


def test_no_hello_before_call_connected() -> None:
    client = client_acked()
    assert client.next_deadline() == Timer.NEGOTIATION


# ---------------------------------------------------------------------------------------- abort / disconnect


def test_abort_initiator_closes_after_3_s_when_unanswered() -> None:
    pair = Pair().connected()
    pair.client.abort(Status.VALUE_NOT_SUPPORTED, 10)
    assert control(pair.client.data_to_send()) == [CallAbort(StatusInfo(0, Status.VALUE_NOT_SUPPORTED))]
    assert pair.client.next_deadline() == 10 + Timer.ABORT_1
    pair.client.receive_data(ECHO_REQUEST + encode_data(IPV4), 11)  # ignored while aborting
    assert pair.client.data_to_send() == b""
    assert not pair.client.take_events()
    pair.client.handle_timer(12.9)
    assert not pair.client.take_events()
    pair.client.handle_timer(13)
    assert pair.client.take_events() == [ConnectionClosed("aborted locally (VALUE_NOT_SUPPORTED)", True)]


def test_abort_answered_closes_both_after_1_s() -> None:
    pair = Pair().connected()
    pair.now = 10
    pair.client.abort(Status.VALUE_NOT_SUPPORTED, 10)
    pair.pump()
    assert PeerAborted(StatusInfo(0, Status.VALUE_NOT_SUPPORTED)) in pair.server_events
    assert pair.server.state is SstpState.CALL_ABORT_TIMEOUT_PENDING
    assert pair.client.state is SstpState.CALL_ABORT_TIMEOUT_PENDING
    pair.advance(10.9)
    assert not closed(pair.client_events) and not closed(pair.server_events)
    pair.advance(11)
    assert closed(pair.client_events) == [ConnectionClosed("aborted locally (VALUE_NOT_SUPPORTED)", True)]
    assert closed(pair.server_events) == [ConnectionClosed("peer aborted (VALUE_NOT_SUPPORTED)", True)]


@pytest.mark.parametrize(
    "abort",
    [
        "10 01 00 08 00 05 00 00",  # SoftEther: no attribute
        "10 01 00 10 00 05 00 01 00 02 00 08 00 00 00 07",  # sstpd: 4-byte value
        "10 01 00 14 00 05 00 01 00 02 00 0C 00 00 00 02 00 00 00 07",  # accel-ppp
    ],
)
def test_peer_abort_forms(abort: str) -> None:
    client = client_acked()
    client.receive_data(bytes.fromhex(abort), 5)
    events = client.take_events()
    assert isinstance(events[0], PeerAborted)
    assert control(client.data_to_send()) == [CallAbort(StatusInfo(0, Status.NO_ERROR))]
    client.handle_timer(5 + Timer.ABORT_2)
    assert closed(client.take_events())[0].error


@pytest.mark.parametrize("side", ["client", "server"])
def test_orderly_disconnect_from_either_side(side: str) -> None:
    pair = Pair().connected()
    initiator, responder = (pair.client, pair.server) if side == "client" else (pair.server, pair.client)
    pair.now = 20
    initiator.disconnect(20)
    pair.pump()
    init_events, resp_events = (
        (pair.client_events, pair.server_events)
        if side == "client"
        else (pair.server_events, pair.client_events)
    )
    assert init_events == [ConnectionClosed("disconnected", False)]
    assert resp_events == [PeerDisconnecting(StatusInfo(0, Status.NO_ERROR))]
    assert responder.state is SstpState.CALL_DISCONNECT_TIMEOUT_PENDING
    assert responder.next_deadline() == 20 + Timer.DISCONNECT_2
    pair.advance(21)
    assert resp_events[-1] == ConnectionClosed("peer disconnected", False)


def test_disconnect_initiator_closes_after_5_s_without_ack() -> None:
    pair = Pair().connected()
    pair.server.disconnect(10)
    assert control(pair.server.data_to_send()) == [CallDisconnect(StatusInfo(0, Status.NO_ERROR))]
    pair.server.handle_timer(14.9)
    assert not pair.server.take_events()
    pair.server.handle_timer(15)
    assert pair.server.take_events() == [ConnectionClosed("disconnected (no CALL_DISCONNECT_ACK)", False)]


def test_disconnect_collision() -> None:
    pair = Pair().connected()
    pair.client.disconnect(0)
    pair.server.disconnect(0)
    pair.pump()
    assert closed(pair.client_events) == [ConnectionClosed("disconnected", False)]
    assert closed(pair.server_events) == [ConnectionClosed("disconnected", False)]


def test_softether_disconnect_without_status_is_acknowledged() -> None:
    client = client_acked()
    client.receive_data(bytes.fromhex("10 01 00 08 00 06 00 00"), 3)
    assert client.take_events() == [PeerDisconnecting(None)]
    assert control(client.data_to_send()) == [CallDisconnectAck()]


def test_disconnect_before_sstp_closes_quietly() -> None:
    client = SstpClient("h", correlation_id="{1}")
    client.start(0)
    client.data_to_send()
    client.disconnect(1)
    assert client.take_events() == [ConnectionClosed("disconnected before the call started", False)]
    assert client.data_to_send() == b""


def test_abort_during_http_sends_nothing() -> None:
    server = SstpServer(cert_hashes=CERT_HASHES)
    server.abort(Status.NO_ERROR, 0)
    assert closed(server.take_events())
    assert server.data_to_send() == b""


def test_nothing_happens_after_connection_closed() -> None:
    pair = Pair().connected()
    pair.client.abort(Status.NO_ERROR, 0)
    pair.client.handle_timer(Timer.ABORT_1)
    pair.client.take_events()
    pair.client.data_to_send()
    pair.client.receive_data(ECHO_REQUEST, 4)
    pair.client.receive_packet(ECHO_REQUEST, 4)
    pair.client.handle_timer(1000)
    pair.client.send_ppp(LCP_CONF_REQ)
    pair.client.disconnect(5)
    pair.client.abort(Status.NO_ERROR, 5)
    assert pair.client.take_events() == []
    assert pair.client.data_to_send() == b""
    assert pair.client.next_deadline() is None
    assert pair.client.is_closed


# ---------------------------------------------------------------------------------------- NAK handling


def test_server_naks_unsupported_protocol_then_aborts() -> None:
    server = server_after_http()
    bad = encode_control(CallConnectRequest(protocol_id=2))
    nak = bytes.fromhex("10 01 00 14 00 03 00 01 00 02 00 0C 00 00 00 01 00 00 00 04")
    for _ in range(MAX_CONNECT_NAKS):
        server.receive_data(bad, 1)
        assert server.data_to_send() == nak
    assert server.state is SstpState.SERVER_CONNECT_REQUEST_PENDING
    server.receive_data(bad, 2)
    assert control(server.data_to_send()) == [CallAbort(StatusInfo(0, Status.RETRY_COUNT_EXCEEDED))]


def test_server_naks_a_malformed_call_connect_request() -> None:
    server = server_after_http()
    server.receive_data(bytes.fromhex("10 01 00 08 00 01 00 00"), 1)
    assert control(server.data_to_send()) == [
        CallConnectNak((StatusInfo(AttributeId.ENCAPSULATED_PROTOCOL_ID, Status.REQUIRED_ATTRIBUTE_MISSING),))
    ]
    server.receive_data(encode_control(CallConnectRequest()), 2)
    assert control(server.data_to_send()) == [CallConnectAck(BOTH, NONCE)]


def test_client_retries_after_nak_then_gives_up() -> None:
    client = client_after_http()
    accel_nak = bytes.fromhex("10 01 00 16 00 03 00 01 00 02 00 0C 00 00 00 01 00 00 00 04 00 00")
    for attempt in range(MAX_CONNECT_NAKS):
        client.receive_data(accel_nak, 10 + attempt)
        assert control(client.data_to_send()) == [CallConnectRequest()]
        assert client.next_deadline() == 10 + attempt + Timer.NEGOTIATION
    client.receive_data(accel_nak, 20)
    assert control(client.data_to_send()) == [CallAbort(StatusInfo(0, Status.RETRY_COUNT_EXCEEDED))]


def test_client_against_server_that_naks() -> None:
    client = client_after_http()
    server = server_after_http()
    nak_all = CallConnectNak((StatusInfo(AttributeId.ENCAPSULATED_PROTOCOL_ID, Status.VALUE_NOT_SUPPORTED),))
    for _ in range(MAX_CONNECT_NAKS):
        client.receive_data(encode_control(nak_all), 1)
        server.receive_data(encode_control(CallConnectRequest(protocol_id=9)), 1)
        assert control(server.data_to_send()) == [nak_all]
    assert control(client.data_to_send()) == [CallConnectRequest()] * MAX_CONNECT_NAKS


# ------------------------------------------------------------------------------ gating, echoes, violations


def test_ppp_control_frame_classification() -> None:
    assert is_ppp_control_frame(LCP_CONF_REQ)
    assert is_ppp_control_frame(IPCP_CONF_REQ)
    assert is_ppp_control_frame(bytes.fromhex("c0 21 01 01 00 04"))  # no ff 03
    assert not is_ppp_control_frame(IPV4)
    assert not is_ppp_control_frame(bytes.fromhex("ff 03 21 45 00"))  # PFC: 1-byte IPv4 protocol
    assert not is_ppp_control_frame(bytes.fromhex("21 45 00"))
    assert not is_ppp_control_frame(bytes.fromhex("ff 03 c0"))
    assert not is_ppp_control_frame(b"")
    assert not is_ppp_control_frame(bytes.fromhex("ff 03"))


def test_client_sends_only_control_frames_before_call_connected() -> None:
    client = client_acked()
    client.send_ppp(LCP_CONF_REQ)
    client.send_ppp(IPV4)
    client.send_ppp(bytes.fromhex("21 45 00 00"))
    client.send_ppp(bytes.fromhex("c0 21 09 01 00 08 00 00 00 00"))
    assert client.data_to_send() == encode_data(LCP_CONF_REQ) + encode_data(
        bytes.fromhex("c0 21 09 01 00 08 00 00 00 00")
    )
    assert client.dropped_sent_frames == 2
    client.complete_binding(HLAK, 1)
    client.data_to_send()
    client.send_ppp(IPV4)
    assert client.data_to_send() == encode_data(IPV4)


def test_send_ppp_before_ppp_starts_is_dropped_and_oversize_raises() -> None:
    client = client_after_http()
    client.send_ppp(LCP_CONF_REQ)
    assert client.data_to_send() == b""
    assert client.dropped_sent_frames == 1
    with pytest.raises(ValueError):
        client.send_ppp(bytes(MAX_DATA_PAYLOAD + 1))


def test_server_drops_ip_before_the_binding_is_verified() -> None:
    server = server_after_http()
    server.receive_data(encode_data(IPV4), 0)  # before CALL_CONNECT_REQUEST
    server.receive_data(encode_control(CallConnectRequest()), 0)
    server.take_events()
    server.data_to_send()
    server.receive_data(encode_data(LCP_CONF_REQ) + encode_data(IPV4) + encode_data(b""), 1)
    assert server.take_events() == [PppFrameReceived(LCP_CONF_REQ)]
    assert server.dropped_received_frames == 3
    server.send_ppp(IPV4)
    assert server.data_to_send() == b""
    server.set_hlak(HLAK, 2)
    server.receive_data(build_call_connected(HLAK, NONCE, CERT_HASHES[SHA256], SHA256), 2)
    server.receive_packet(encode_data(IPV4), 3)
    assert server.take_events() == [CallConnectedVerified(SHA256), PppFrameReceived(IPV4)]


def test_client_drops_ip_before_call_connected() -> None:
    client = client_acked()
    client.receive_data(encode_data(IPV4) + encode_data(LCP_CONF_REQ), 1)
    assert client.take_events() == [PppFrameReceived(LCP_CONF_REQ)]
    assert client.dropped_received_frames == 1


@pytest.mark.parametrize("machine", ["server", "client"])
def test_echo_request_answered_before_call_connected(machine: str) -> None:
    sstp = server_pending() if machine == "server" else client_acked()
    sstp.receive_data(ECHO_REQUEST, 1)
    assert sstp.data_to_send() == ECHO_RESPONSE
    sstp.receive_data(ECHO_RESPONSE, 2)
    assert sstp.data_to_send() == b""
    assert not sstp.take_events()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (server_after_http, CallConnectAck(BOTH, NONCE)),
        (server_after_http, CallDisconnectAck()),
        (server_pending, CallConnectRequest()),
        (client_after_http, CallConnectRequest()),
        (client_acked, CallConnectAck(BOTH, NONCE)),
        (client_acked, CallConnected(SHA256, NONCE, bytes(32), bytes(32))),
    ],
)
def test_message_invalid_for_state_aborts(make: object, message: ControlMessage) -> None:
    sstp = make()  # type: ignore[operator]
    sstp.receive_data(encode_control(message), 1)
    assert control(sstp.data_to_send()) == [CallAbort(StatusInfo(0, Status.UNACCEPTED_FRAME_RECEIVED))]
    assert sstp.state is SstpState.CALL_ABORT_PENDING


def test_malformed_control_packet_aborts_with_its_status() -> None:
    pair = Pair().connected()
    pair.client.receive_data(bytes.fromhex("10 01 00 08 00 0A 00 00"), 1)
    assert control(pair.client.data_to_send()) == [CallAbort(StatusInfo(0, Status.INVALID_FRAME_RECEIVED))]


@pytest.mark.parametrize("garbage", ["20 00 00 04", "10 00 00 02", "10 01 00 04 00 00"])
def test_delineation_error_closes_without_sending(garbage: str) -> None:
    pair = Pair().connected()
    pair.client.send_ppp(IPV4)  # queued but not yet written: dropped as well
    pair.client.receive_data(ECHO_REQUEST + bytes.fromhex(garbage), 1)
    assert pair.client.data_to_send() == b""
    [event] = pair.client.take_events()
    assert isinstance(event, ConnectionClosed) and event.error
    assert pair.client.is_closed


def test_server_rejects_non_sstp_http() -> None:
    server = SstpServer(cert_hashes=CERT_HASHES)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0)
    assert server.data_to_send() == error_response(501)
    [event] = server.take_events()
    assert isinstance(event, ConnectionClosed) and event.error and "501" in event.reason


def test_client_fails_on_non_200() -> None:
    client = SstpClient("h", correlation_id="{1}")
    client.start(0)
    client.data_to_send()
    client.receive_data(b"HTTP/1.1 404 Not Found\r\n\r\n", 1)
    [event] = client.take_events()
    assert isinstance(event, ConnectionClosed) and "404" in event.reason
    assert client.data_to_send() == b""


def test_client_data_before_start_closes() -> None:
    client = SstpClient("h", correlation_id="{1}")
    client.receive_data(HTTP_OK, 0)
    assert closed(client.take_events())
    with pytest.raises(RuntimeError):
        SstpClient("h").receive_packet(ECHO_REQUEST, 0)


def test_start_twice_is_an_error() -> None:
    client = SstpClient("h", correlation_id="{1}")
    client.start(0)
    with pytest.raises(RuntimeError):
        client.start(0)


# ---------------------------------------------------------------------------------------- fuzzing

chunks = st.lists(st.binary(max_size=120), max_size=8)


def _feed(machine: SstpClient | SstpServer, data: list[bytes]) -> None:
    for t, chunk in enumerate(data):
        machine.receive_data(chunk, float(t))
        machine.handle_timer(float(t))
        machine.data_to_send()
        machine.take_events()


@settings(max_examples=200)
@given(chunks)
def test_random_bytes_into_a_fresh_server(data: list[bytes]) -> None:
    _feed(SstpServer(cert_hashes=CERT_HASHES), data)


@settings(max_examples=200)
@given(chunks)
def test_random_bytes_into_a_client_waiting_for_http(data: list[bytes]) -> None:
    client = SstpClient("h", correlation_id="{1}")
    client.start(0)
    _feed(client, data)


sstp_like = st.lists(
    st.one_of(
        st.binary(max_size=60).map(lambda b: b"\x10\x01" + (len(b) + 4).to_bytes(2, "big") + b),
        st.binary(max_size=60).map(encode_data),
        st.sampled_from(
            [
                ECHO_REQUEST,
                ECHO_RESPONSE,
                encode_control(CallConnectRequest()),
                encode_control(CallConnectAck(BOTH, NONCE)),
                encode_control(CallDisconnect()),
                encode_control(CallDisconnectAck()),
                encode_control(CallAbort()),
                build_call_connected(HLAK, NONCE, CERT_HASHES[SHA256], SHA256),
            ]
        ),
        st.binary(max_size=20),
    ),
    max_size=10,
)


@settings(max_examples=300)
@given(sstp_like, st.sampled_from(["server", "pending", "client", "acked", "connected"]))
def test_random_sstp_into_every_phase(packets: list[bytes], phase: str) -> None:
    machine: SstpClient | SstpServer
    if phase == "server":
        machine = server_after_http()
    elif phase == "pending":
        machine = server_pending()
        machine.set_hlak(HLAK, 0)
    elif phase == "client":
        machine = client_after_http()
    elif phase == "acked":
        machine = client_acked()
    else:
        machine = client_acked()
        machine.complete_binding(HLAK, 0)
    _feed(machine, packets)
    if not machine.is_closed:
        machine.handle_timer(1e6)
        machine.handle_timer(2e6)
        machine.handle_timer(3e6)
        assert machine.is_closed
