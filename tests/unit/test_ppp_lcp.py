"""LCP policy: Windows and SoftEther byte traces, auth negotiation both ways, magic, MRU, echo, rejects."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysstp.ppp.constants import MAX_MRU, AuthMethod, Code, LcpOption, Protocol, Role
from pysstp.ppp.events import (
    EchoReplyReceived,
    IdentificationReceived,
    LayerFinished,
    LayerUp,
    ProtocolRejected,
    TimeRemainingReceived,
)
from pysstp.ppp.frame import encode_frame
from pysstp.ppp.fsm import FsmState
from pysstp.ppp.lcp import Lcp, LcpConfig
from pysstp.ppp.packet import ControlPacket, Option, decode_options, encode_options

from helpers.ppp_wire import Wire, fixed_random, packet, seeded_random, sent

MSCHAP_V2, PAP, EAP, CHAP_MD5 = (
    AuthMethod.MSCHAP_V2,
    AuthMethod.PAP,
    AuthMethod.EAP_MSCHAP_V2,
    AuthMethod.CHAP_MD5,
)


def sstp_data(lcp_packet: bytes) -> bytes:
    """The SSTP data packet that carries an LCP packet, as recorded traces print them."""
    frame = encode_frame(Protocol.LCP, lcp_packet)
    return bytes.fromhex("10 00") + (len(frame) + 4).to_bytes(2, "big") + frame


def server(*methods: AuthMethod, magic: str = "11223344", **config: object) -> Lcp:
    return Lcp(
        LcpConfig(role="server", auth_methods=methods, **config),  # type: ignore[arg-type]
        random_bytes=fixed_random(bytes.fromhex(magic)),
    )


def client(*methods: AuthMethod, magic: str = "c39deaee", **config: object) -> Lcp:
    return Lcp(
        LcpConfig(role="client", auth_methods=methods, **config),  # type: ignore[arg-type]
        random_bytes=fixed_random(bytes.fromhex(magic)),
    )


def started(lcp: Lcp) -> list[bytes]:
    lcp.open(0.0)
    lcp.up(0.0)
    return sent(lcp)


def pair(a: Lcp, b: Lcp) -> Wire:
    wire = Wire(a, b)
    wire.start()
    return wire


# --------------------------------------------------------------------------------- Windows as the client


def test_windows_first_request() -> None:
    lcp = server(MSCHAP_V2)
    assert started(lcp) == [packet("01 01 00 13 01 04 05 dc 03 05 c2 23 81 05 06 11 22 33 44")]
    # Windows 10's first Configure-Request, as recorded.
    lcp.receive(packet("01 00 00 15 01 04 0F FB 05 06 34 5F 64 CA 07 02 08 02 0D 03 06"), 0.1)
    assert sent(lcp) == [packet("04 00 00 0b 07 02 08 02 0d 03 06")]  # PFC, ACFC, Callback in one Reject
    lcp.receive(packet("01 01 00 0e 01 04 0f fb 05 06 34 5f 64 ca"), 0.2)
    assert sent(lcp) == [packet("03 01 00 08 01 04 05 dc")]  # MRU 4091 Nak'ed down to 1500
    lcp.receive(packet("01 02 00 0e 01 04 05 dc 05 06 34 5f 64 ca"), 0.3)
    assert sent(lcp) == [packet("02 02 00 0e 01 04 05 dc 05 06 34 5f 64 ca")]
    lcp.receive(packet("02 01 00 13 01 04 05 dc 03 05 c2 23 81 05 06 11 22 33 44"), 0.4)
    assert lcp.state == FsmState.OPENED
    assert lcp.take_events()[-1] == LayerUp(Protocol.LCP)
    assert (lcp.auth_method, lcp.peer_mru, lcp.our_mru) == (MSCHAP_V2, 1500, 1500)
    assert (lcp.magic, lcp.peer_magic) == (0x11223344, 0x345F64CA)
    # Windows then sends Identification packets, which must not disturb the link.
    lcp.receive(packet("0c 03 00 12 34 5f 64 ca") + b"MSRASV5.20", 0.5)
    assert lcp.take_events() == [IdentificationReceived("MSRASV5.20")]
    assert sent(lcp) == []
    assert lcp.state == FsmState.OPENED


# ---------------------------------------------------------------------------------- SoftEther as server


def test_softether_trace() -> None:
    """SoftEther's LCP exchange as recorded, byte for byte (SSTP header included)."""
    lcp = client(MSCHAP_V2, PAP)
    (request,) = started(lcp)
    assert sstp_data(request) == packet("10 00 00 16 ff 03 c0 21 01 01 00 0e 01 04 05 dc 05 06 c3 9d ea ee")

    def softether(trace: str) -> None:
        data = packet(trace)
        assert data[:8] == sstp_data(data[8:])[:8]
        lcp.receive(data[8:], 1.0)

    softether("10 00 00 12 ff 03 c0 21 04 01 00 0a 05 06 c3 9d ea ee")  # Reject of our magic
    assert [sstp_data(p) for p in sent(lcp)] == [packet("10 00 00 10 ff 03 c0 21 01 02 00 08 01 04 05 dc")]
    softether("10 00 00 10 ff 03 c0 21 01 00 00 08 03 04 c2 27")  # auth = EAP
    assert [sstp_data(p) for p in sent(lcp)] == [packet("10 00 00 11 ff 03 c0 21 03 00 00 09 03 05 c2 23 81")]
    echo = "0a 00 00 18 00 00 00 00 41 68 6f 20 42 61 6b 61 20 4d 61 6e 75 6b 65 00"
    softether("10 00 00 20 ff 03 c0 21 09" + echo[2:])  # Echo-Request before LCP is open
    assert [sstp_data(p) for p in sent(lcp)] == [packet("10 00 00 20 ff 03 c0 21 " + echo)]
    softether("10 00 00 10 ff 03 c0 21 02 02 00 08 01 04 05 dc")  # Ack of ours
    softether("10 00 00 11 ff 03 c0 21 01 01 00 09 03 05 c2 23 81")  # auth = MS-CHAPv2
    assert [sstp_data(p) for p in sent(lcp)] == [packet("10 00 00 11 ff 03 c0 21 02 01 00 09 03 05 c2 23 81")]
    assert lcp.state == FsmState.OPENED
    assert (lcp.auth_method, lcp.magic, lcp.our_mru, lcp.peer_mru) == (MSCHAP_V2, 0, 1500, 1500)
    # With the magic rejected, our Echo packets carry magic 0.
    lcp.receive(packet("09 05 00 0c 00 00 00 00 70 69 6e 67"), 2.0)
    assert sent(lcp) == [packet("0a 05 00 0c 00 00 00 00 70 69 6e 67")]
    identifier = lcp.send_echo_request(2.0, b"x")
    assert sent(lcp) == [ControlPacket(Code.ECHO_REQUEST, identifier or 0, bytes(4) + b"x").encode()]
    lcp.receive(ControlPacket(Code.ECHO_REPLY, identifier or 0, bytes(4) + b"x").encode(), 2.1)
    assert lcp.take_events()[-1] == EchoReplyReceived(identifier or 0, b"x")


def test_softether_offers_pap_last() -> None:
    lcp = client(PAP)
    started(lcp)
    lcp.receive(packet("01 00 00 08 03 04 c2 27"), 0.1)
    assert sent(lcp) == [packet("03 00 00 08 03 04 c0 23")]
    lcp.receive(packet("01 01 00 09 03 05 c2 23 81"), 3.1)
    assert sent(lcp) == [packet("03 01 00 08 03 04 c0 23")]
    lcp.receive(packet("01 02 00 08 03 04 c0 23"), 6.1)
    assert sent(lcp) == [packet("02 02 00 08 03 04 c0 23")]


# ------------------------------------------------------------------------------- auth negotiation in memory


@pytest.mark.parametrize(
    ("offers", "accepts", "agreed"),
    [
        ((MSCHAP_V2, PAP), (MSCHAP_V2, PAP), MSCHAP_V2),
        ((EAP, MSCHAP_V2, PAP), (PAP, MSCHAP_V2), PAP),  # the server follows the client's suggestion
        ((MSCHAP_V2, PAP), (EAP, PAP), PAP),  # suggestion not allowed: the server moves on
        ((MSCHAP_V2, CHAP_MD5), (CHAP_MD5,), CHAP_MD5),
        ((EAP,), (AuthMethod.EAP_MD5,), EAP),  # one LCP value for both EAP methods
    ],
)
def test_auth_agreement(
    offers: tuple[AuthMethod, ...], accepts: tuple[AuthMethod, ...], agreed: AuthMethod
) -> None:
    wire = pair(server(*offers), client(*accepts))
    assert wire.a.state == wire.b.state == FsmState.OPENED
    assert isinstance(wire.a, Lcp) and isinstance(wire.b, Lcp)
    assert wire.a.auth_method == agreed
    assert wire.b.auth_method is not None
    assert wire.b.auth_method.lcp_value == agreed.lcp_value


def test_a_renegotiation_after_opened_starts_from_the_configured_offers() -> None:
    # The first negotiation moved the server from EAP to the client's PAP; a Configure-Request in Opened
    # starts over (RFC 1661 §4.1) from the server's configured first method, and agrees again.
    wire = pair(server(EAP, MSCHAP_V2, PAP), client(PAP, MSCHAP_V2))
    assert isinstance(wire.a, Lcp) and wire.a.auth_method == PAP
    wire.b.down(wire.now)
    wire.b.up(wire.now)
    wire.log.clear()
    wire.pump()
    assert wire.a.state == wire.b.state == FsmState.OPENED
    offers = [
        next(o.value for o in decode_options(p.data) if o.type == LcpOption.AUTH_PROTOCOL)
        for direction, p in wire.log
        if direction == "a>b" and p.code == Code.CONFIGURE_REQUEST
    ]
    assert offers == [EAP.lcp_value, PAP.lcp_value]
    assert wire.a.auth_method == PAP


def test_server_runs_out_of_methods() -> None:
    wire = pair(server(MSCHAP_V2), client(PAP))
    assert wire.a.state == FsmState.CLOSED
    assert wire.events_a[-1] == LayerFinished(
        Protocol.LCP, "peer rejected every authentication method we offer (mschapv2)", error=True
    )


def test_both_ends_out_of_methods() -> None:
    wire = pair(server(MSCHAP_V2, PAP), client(CHAP_MD5))
    assert wire.a.state == FsmState.CLOSED
    assert wire.events_a[-1] == LayerFinished(
        Protocol.LCP, "peer rejected every authentication method we offer (mschapv2, pap)", error=True
    )


def test_client_gives_up_after_max_failure_unacceptable_offers() -> None:
    lcp = client(PAP)
    started(lcp)
    offers = ["c2 27", "c2 23 81", "c2 23 05", "c2 27", "c2 23 81"]
    for identifier, offer in enumerate(offers):
        auth = Option(LcpOption.AUTH_PROTOCOL, bytes.fromhex(offer))
        lcp.receive(ControlPacket(Code.CONFIGURE_REQUEST, identifier, auth.encode()).encode(), identifier)
        assert sent(lcp) == [ControlPacket(Code.CONFIGURE_NAK, identifier, packet("03 04 c0 23")).encode()]
    lcp.receive(ControlPacket(Code.CONFIGURE_REQUEST, 9, packet("03 04 c2 27")).encode(), 9.0)
    (terminate,) = [ControlPacket.decode(p) for p in sent(lcp)]
    assert terminate.code == Code.TERMINATE_REQUEST
    assert (
        terminate.data
        == b"server offers only eap-mschapv2, mschapv2, chap authentication; we accept only pap"
    )


def test_client_without_methods_fails_at_once() -> None:
    lcp = client()
    started(lcp)
    lcp.receive(packet("01 01 00 08 03 04 c0 23"), 0.1)
    assert lcp.state == FsmState.CLOSING


def test_client_rejecting_auth_fails_the_server() -> None:
    lcp = server(MSCHAP_V2, PAP)
    request = ControlPacket.decode(started(lcp)[0])
    auth = next(o for o in decode_options(request.data) if o.type == LcpOption.AUTH_PROTOCOL)
    lcp.receive(ControlPacket(Code.CONFIGURE_REJECT, request.identifier, auth.encode()).encode(), 0.1)
    assert lcp.state == FsmState.CLOSING
    (terminate,) = [ControlPacket.decode(p) for p in sent(lcp)]
    assert terminate.code == Code.TERMINATE_REQUEST
    assert terminate.data == b"peer rejected every authentication method we offer (mschapv2, pap)"


def test_server_naked_to_unknown_methods_tries_each_once_then_insists_once() -> None:
    lcp = server(MSCHAP_V2, PAP)
    offered = []
    for packet_bytes in started(lcp) * 4:
        request = ControlPacket.decode(packet_bytes if not offered else sent(lcp)[0])
        if request.code != Code.CONFIGURE_REQUEST:
            break
        auth = next(o for o in decode_options(request.data) if o.type == LcpOption.AUTH_PROTOCOL)
        offered.append(auth.value)
        nak = Option(LcpOption.AUTH_PROTOCOL, bytes.fromhex("c2 23 80"))  # MS-CHAPv1: unsupported
        lcp.receive(ControlPacket(Code.CONFIGURE_NAK, request.identifier, nak.encode()).encode(), 0.1)
    # The first method comes once more: a client may Nak a method it would accept to ask for its favourite.
    assert offered == [MSCHAP_V2.lcp_value, PAP.lcp_value, MSCHAP_V2.lcp_value]
    assert lcp.state == FsmState.CLOSING


def test_server_without_methods_asks_for_no_auth() -> None:
    wire = pair(server(), client(PAP))
    assert wire.a.state == wire.b.state == FsmState.OPENED
    assert isinstance(wire.a, Lcp) and isinstance(wire.b, Lcp)
    assert wire.a.auth_method is wire.b.auth_method is None


def test_client_rejects_auth_option_in_server_role_request() -> None:
    lcp = server(MSCHAP_V2)
    started(lcp)
    lcp.receive(packet("01 07 00 08 03 04 c0 23"), 0.1)
    assert sent(lcp) == [packet("04 07 00 08 03 04 c0 23")]


# ------------------------------------------------------------------------------------------- magic, MRU


def test_two_pysstp_ends_use_magic_and_echo() -> None:
    wire = pair(server(MSCHAP_V2, magic="01020304"), client(MSCHAP_V2, magic="0a0b0c0d"))
    a, b = wire.a, wire.b
    assert isinstance(a, Lcp) and isinstance(b, Lcp)
    assert (a.magic, a.peer_magic, b.magic, b.peer_magic) == (0x01020304, 0x0A0B0C0D, 0x0A0B0C0D, 0x01020304)
    identifier = a.send_echo_request(wire.now, b"hello")
    wire.pump()
    assert wire.log[-1][1] == ControlPacket(
        Code.ECHO_REPLY, identifier or 0, bytes.fromhex("0a0b0c0d") + b"hello"
    )
    assert wire.events_a[-1] == EchoReplyReceived(identifier or 0, b"hello")


def test_equal_magic_numbers_are_detected() -> None:
    def first_then_seeded(seed: int) -> Callable[[int], bytes]:
        later = seeded_random(seed)
        draws = iter([bytes.fromhex("01020304")])
        return lambda n: next(draws, None) or later(n)

    a = Lcp(LcpConfig(role="server"), random_bytes=first_then_seeded(1))
    b = Lcp(LcpConfig(role="client"), random_bytes=first_then_seeded(2))
    assert a.request_options()[-1] == b.request_options()[-1] == Option(5, bytes.fromhex("01020304"))
    pair(a, b)
    assert isinstance(a, Lcp) and isinstance(b, Lcp)
    assert a.state == b.state == FsmState.OPENED
    assert a.magic != b.magic and a.magic != 0 and b.magic != 0
    assert (a.peer_magic, b.peer_magic) == (b.magic, a.magic)


def test_magic_zero_is_naked_and_own_echo_is_ignored() -> None:
    lcp = server(MSCHAP_V2, magic="01020304")
    started(lcp)
    lcp.receive(packet("01 09 00 0a 05 06 00 00 00 00"), 0.1)
    (nak,) = [ControlPacket.decode(p) for p in sent(lcp)]
    assert nak.code == Code.CONFIGURE_NAK
    (magic,) = decode_options(nak.data)
    assert magic.type == LcpOption.MAGIC_NUMBER and magic.value not in (bytes(4), bytes.fromhex("01020304"))


def test_peer_mru_bounds() -> None:
    lcp = server(MSCHAP_V2)
    started(lcp)
    lcp.receive(packet("01 01 00 08 01 04 00 64"), 0.1)  # MRU 100: below 576
    assert sent(lcp) == [packet("03 01 00 08 01 04 02 40")]
    lcp.receive(packet("01 02 00 08 01 04 05 78"), 0.2)  # MRU 1400: fine
    assert sent(lcp) == [packet("02 02 00 08 01 04 05 78")]
    assert lcp.peer_mru == 1400
    lcp.receive(packet("01 03 00 07 01 03 05"), 0.3)  # malformed MRU option: rejected verbatim
    assert sent(lcp) == [packet("04 03 00 07 01 03 05")]


def test_large_mru_between_pysstp_ends() -> None:
    big = {"mru": MAX_MRU, "max_peer_mru": MAX_MRU}
    wire = pair(server(MSCHAP_V2, **big), client(MSCHAP_V2, **big))
    assert isinstance(wire.a, Lcp) and isinstance(wire.b, Lcp)
    assert (wire.a.peer_mru, wire.a.our_mru, wire.b.peer_mru) == (MAX_MRU, MAX_MRU, MAX_MRU)


def test_mru_nak_and_reject_from_peer() -> None:
    lcp = client(MSCHAP_V2)
    request = ControlPacket.decode(started(lcp)[0])
    mru = Option(LcpOption.MRU, (1400).to_bytes(2, "big"))
    lcp.receive(ControlPacket(Code.CONFIGURE_NAK, request.identifier, mru.encode()).encode(), 0.1)
    request = ControlPacket.decode(sent(lcp)[0])
    assert decode_options(request.data)[0] == mru
    lcp.receive(ControlPacket(Code.CONFIGURE_REJECT, request.identifier, mru.encode()).encode(), 0.2)
    request = ControlPacket.decode(sent(lcp)[0])
    assert [o.type for o in decode_options(request.data)] == [LcpOption.MAGIC_NUMBER]
    lcp.receive(ControlPacket(Code.CONFIGURE_ACK, request.identifier, request.data).encode(), 0.3)
    assert lcp.our_mru == 1500


# --------------------------------------------------------------------------------------- other codes


def opened_server() -> Lcp:
    lcp = server(MSCHAP_V2)
    request = ControlPacket.decode(started(lcp)[0])
    lcp.receive(packet("01 01 00 04"), 0.1)
    lcp.receive(ControlPacket(Code.CONFIGURE_ACK, request.identifier, request.data).encode(), 0.1)
    sent(lcp)
    lcp.take_events()
    assert lcp.state == FsmState.OPENED
    return lcp


def test_quiet_codes() -> None:
    lcp = opened_server()
    lcp.receive(packet("0b 01 00 09 00 00 00 00 41"), 1.0)  # Discard-Request
    lcp.receive(packet("0d 02 00 0e 00 00 00 00 00 00 0e 10 68 69"), 1.0)  # Time-Remaining 3600 "hi"
    lcp.receive(packet("0a 09 00 08 00 00 00 00"), 1.0)  # Echo-Reply we never asked for: reported
    assert sent(lcp) == []
    assert lcp.take_events() == [TimeRemainingReceived(3600, "hi"), EchoReplyReceived(9, b"")]


def test_unknown_code_and_short_packets() -> None:
    lcp = opened_server()
    lcp.receive(packet("0e 01 00 04"), 1.0)
    assert sent(lcp) == [ControlPacket(Code.CODE_REJECT, 2, packet("0e 01 00 04")).encode()]
    for short in ("09 01 00 06 00 00", "0d 01 00 08 00 00 00 00", "08 01 00 05 80"):
        lcp.receive(packet(short), 1.0)
    assert lcp.discarded == 3
    assert sent(lcp) == []


def test_protocol_reject_both_ways() -> None:
    lcp = opened_server()
    assert lcp.protocol_reject(Protocol.IPV6CP, bytes(3000))
    (reject,) = sent(lcp)
    assert len(reject) == lcp.peer_mru == 1500
    assert reject[:6] == packet("08 02 05 dc 80 57")
    lcp.receive(packet("08 07 00 0a 80 57 01 01 00 04"), 1.0)
    assert lcp.take_events() == [ProtocolRejected(Protocol.IPV6CP)]
    assert lcp.state == FsmState.OPENED
    lcp.receive(packet("08 08 00 06 c0 21"), 1.0)  # LCP itself rejected: the link cannot work
    assert lcp.state == FsmState.STOPPING
    assert not lcp.protocol_reject(Protocol.IPV6CP, b"")


def test_echo_is_not_answered_when_closed() -> None:
    lcp = Lcp(LcpConfig(role=Role.CLIENT))
    lcp.up(0.0)
    lcp.receive(packet("09 01 00 08 00 00 00 00"), 0.0)
    assert sent(lcp) == []
    assert lcp.send_echo_request(0.0) is None


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        LcpConfig(role="client", mru=100)
    with pytest.raises(ValueError):
        LcpConfig(role="server", max_peer_mru=MAX_MRU + 1)
    with pytest.raises(ValueError):
        LcpConfig(role="router")  # type: ignore[arg-type]
    assert LcpConfig(role="server").role is Role.SERVER


@settings(max_examples=200)
@given(st.sampled_from(["client", "server"]), st.lists(st.binary(max_size=30), max_size=8), st.booleans())
def test_random_packets_never_raise(role: str, packets: list[bytes], opened: bool) -> None:
    lcp = Lcp(LcpConfig(role=role, auth_methods=(MSCHAP_V2, PAP)), random_bytes=seeded_random(1))  # type: ignore[arg-type]
    started(lcp)
    if opened:
        lcp.receive(packet("01 01 00 04"), 0.0)
    for data in packets:
        lcp.receive(data, 1.0)
        lcp.receive(data[:4] + encode_options([Option(3, data[4:10])]), 1.0)
    lcp.handle_timer(100.0)
    for data in sent(lcp):
        ControlPacket.decode(data)


def test_client_naks_an_acceptable_offer_once_to_ask_for_its_favourite() -> None:
    wire = pair(server(AuthMethod.EAP_MSCHAP_V2, MSCHAP_V2), client(MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2))
    assert isinstance(wire.a, Lcp) and isinstance(wire.b, Lcp)
    assert wire.a.auth_method is wire.b.auth_method is MSCHAP_V2


def test_client_settles_for_an_acceptable_method_when_the_server_insists() -> None:
    wire = pair(server(AuthMethod.EAP_MSCHAP_V2), client(MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2))
    assert isinstance(wire.a, Lcp) and isinstance(wire.b, Lcp)
    assert wire.a.auth_method is AuthMethod.EAP_MSCHAP_V2
    assert wire.b.auth_method is AuthMethod.EAP_MSCHAP_V2
