"""Client link against server link, in memory with a fake clock: every auth method and failure path."""

from __future__ import annotations

import pytest

from pysstp.link import ABORTED_AFTER_BINDING, LinkDown, LinkUp, frame_ip_packets, ip_payload
from pysstp.ppp.constants import AuthMethod, Code, Protocol
from pysstp.ppp.events import AuthenticationFailed
from pysstp.ppp.packet import ControlPacket
from pysstp.ppp.session import ServerNetwork
from pysstp.sstp.constants import HashProtocol
from pysstp.sstp.packets import EchoRequest, encode_control

from helpers.conversation import (
    DNS,
    SERVER_ADDRESS,
    Conversation,
    client_config,
    ipv4_packet,
    pool_network_for_user,
    server_config,
)

ALL_METHODS = [
    AuthMethod.PAP,
    AuthMethod.CHAP_MD5,
    AuthMethod.MSCHAP_V2,
    AuthMethod.EAP_MSCHAP_V2,
    AuthMethod.EAP_MD5,
]


def up(conv: Conversation, side: str) -> LinkUp:
    found = conv.events(side, LinkUp)
    assert len(found) == 1, f"{side} not up: {conv.client_events if side == 'client' else conv.server_events}"
    event = found[0]
    assert isinstance(event, LinkUp)
    return event


def connect(conv: Conversation) -> tuple[LinkUp, LinkUp]:
    conv.start()
    return up(conv, "client"), up(conv, "server")


def exchange_ip(conv: Conversation) -> None:
    """IP packets pass both ways once the link is up."""
    client_addr = up(conv, "client").local_address
    assert client_addr is not None
    to_server = ipv4_packet(client_addr, SERVER_ADDRESS, b"ping from client")
    to_client = ipv4_packet(SERVER_ADDRESS, client_addr, b"pong from server")
    assert conv.client.send_ip(to_server)
    assert conv.server.send_ip(to_client)
    conv.pump()
    assert conv.server_ip == [to_server]
    assert conv.client_ip == [to_client]


@pytest.mark.parametrize("method", ALL_METHODS, ids=lambda m: m.value)
def test_every_auth_method_brings_the_call_up(method: AuthMethod) -> None:
    conv = Conversation.make(client_config(auth_methods=(method,)), server_config(auth_methods=(method,)))
    client_up, server_up = connect(conv)
    assert client_up.auth_method is method
    assert server_up.auth_method is method
    assert server_up.user == "alice"
    assert client_up.local_address == server_up.peer_address
    assert client_up.peer_address == SERVER_ADDRESS
    assert client_up.dns_servers == DNS
    assert client_up.hash_protocol is HashProtocol.SHA256
    assert server_up.hash_protocol is HashProtocol.SHA256
    exchange_ip(conv)


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2])
def test_both_sides_derive_the_same_hlak_from_mschapv2(method: AuthMethod) -> None:
    conv = Conversation.make(client_config(auth_methods=(method,)), server_config(auth_methods=(method,)))
    connect(conv)
    assert conv.hlak("client") == conv.hlak("server")
    assert conv.hlak("client") != bytes(32)


def test_sha1_only_server_gets_a_sha1_binding() -> None:
    conv = Conversation.make(server=server_config(hash_protocols=HashProtocol.SHA1))
    client_up, server_up = connect(conv)
    assert client_up.hash_protocol is HashProtocol.SHA1
    assert server_up.hash_protocol is HashProtocol.SHA1


def test_domain_user_name_works_with_mschapv2() -> None:
    conv = Conversation.make(client_config(username="CORP\\alice"))
    _, server_up = connect(conv)
    assert server_up.user == "alice"


def test_server_follows_the_clients_auth_preference() -> None:
    conv = Conversation.make(
        client_config(auth_methods=(AuthMethod.PAP,)),
        server_config(auth_methods=(AuthMethod.MSCHAP_V2, AuthMethod.PAP)),
    )
    client_up, _ = connect(conv)
    assert client_up.auth_method is AuthMethod.PAP


@pytest.mark.parametrize("method", [AuthMethod.PAP, AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2])
def test_wrong_password_ends_both_sides_with_the_reason(method: AuthMethod) -> None:
    conv = Conversation.make(
        client_config(password="wrong", auth_methods=(method,)), server_config(auth_methods=(method,))
    )
    conv.start()
    conv.advance(10)
    assert not conv.events("client", LinkUp)
    for side in ("client", "server"):
        assert conv.events(side, AuthenticationFailed), side
        down = conv.down(side)
        assert down.error
        assert "authentication failed" in down.reason
    if method is not AuthMethod.PAP:
        assert "691" in conv.down("client").reason


def test_peer_rejects_every_auth_method() -> None:
    conv = Conversation.make(
        client_config(auth_methods=(AuthMethod.PAP,)), server_config(auth_methods=(AuthMethod.MSCHAP_V2,))
    )
    conv.start()
    conv.advance(60)
    assert not conv.events("server", LinkUp)
    assert "authentication" in conv.down("client").reason or "authentication" in conv.down("server").reason
    assert conv.down("server").error


def _corrupt_call_connected(offset: int) -> object:
    def corrupt(data: bytes) -> bytes:
        start = data.find(b"\x10\x01\x00\x70\x00\x04")
        if start < 0:
            return data
        buf = bytearray(data)
        buf[start + offset] ^= 0x01
        return bytes(buf)

    return corrupt


@pytest.mark.parametrize(
    ("offset", "word"), [(16, "nonce"), (48, "certificate"), (80, "mac")], ids=["nonce", "cert", "mac"]
)
def test_bad_crypto_binding_is_aborted_by_the_server(offset: int, word: str) -> None:
    conv = Conversation.make()
    conv.to_server = _corrupt_call_connected(offset)  # type: ignore[assignment]
    conv.start()
    conv.advance(10)
    assert not conv.events("server", LinkUp)
    server_down = conv.down("server")
    assert server_down.error
    assert "crypto binding" in server_down.reason
    assert word in server_down.reason.lower()
    client_down = conv.down("client")
    assert client_down.error
    # The client is told why a server aborts at this point (sorz's sstpd says only "invalid frame").
    assert client_down.reason.endswith(ABORTED_AFTER_BINDING), client_down.reason


def test_wrong_certificate_seen_by_the_client_fails_the_binding() -> None:
    conv = Conversation.make()
    conv.client.set_server_certificate(b"a different certificate, as a man in the middle would show")
    conv.start()
    conv.advance(10)
    assert "crypto binding" in conv.down("server").reason


def test_client_disconnect_is_orderly_on_both_sides() -> None:
    conv = Conversation.make()
    connect(conv)
    conv.client.close(conv.now)
    conv.pump()
    conv.advance(10)
    assert not conv.down("client").error
    assert not conv.down("server").error
    assert conv.client.is_closed and conv.server.is_closed


@pytest.mark.parametrize("side", ["client", "server"])
def test_lcp_started_over_after_authentication_ends_the_call(side: str) -> None:
    # Authenticating again would change the HLAK after the crypto binding, give the server a second
    # address for the call and a login nothing counts: the call ends instead, without raising.
    assigned: list[str] = []
    pool = pool_network_for_user()

    def network_for_user(user: str) -> ServerNetwork | str:
        assigned.append(user)
        return pool(user)

    conv = Conversation.make(network_for_user=network_for_user)
    connect(conv)
    link = conv.client if side == "client" else conv.server
    request = ControlPacket(Code.CONFIGURE_REQUEST, 99).encode()
    link.session.receive_packet(Protocol.LCP, request, conv.now)
    conv.pump()
    conv.advance(10)
    assert "started LCP negotiation over" in conv.down(side).reason
    assert conv.client.is_closed and conv.server.is_closed
    assert assigned == ["alice"]


def test_server_disconnect_is_orderly_on_both_sides() -> None:
    conv = Conversation.make()
    connect(conv)
    conv.server.close(conv.now, "closed by the administrator")
    conv.advance(10)
    assert conv.down("server").reason == "closed by the administrator"
    assert not conv.down("client").error
    assert conv.client.is_closed and conv.server.is_closed


def test_http_response_never_comes() -> None:
    conv = Conversation.make()
    conv.cut = True
    conv.start()
    conv.advance(59)
    assert not conv.client.is_closed
    conv.advance(2)
    assert conv.down("client").error


def test_server_never_answers_after_http() -> None:
    conv = Conversation.make()
    sent = {"http": False}

    def only_http(data: bytes) -> bytes:
        if not sent["http"]:
            sent["http"] = True
            return data
        return b""

    conv.to_client = only_http
    conv.start()
    conv.advance(200)
    assert conv.down("client").error
    assert conv.down("server").error


def test_silent_peer_after_connect_is_detected_by_hello() -> None:
    conv = Conversation.make()
    connect(conv)
    conv.cut = True
    conv.advance(119)
    assert not conv.client.is_closed
    conv.advance(2)
    assert conv.down("client").error
    assert conv.down("server").error


def test_server_never_sees_call_connected_times_out() -> None:
    conv = Conversation.make()

    def drop_call_connected(data: bytes) -> bytes:
        return data.replace(b"\x10\x01\x00\x70\x00\x04", b"\x10\x01\x00\x70\x00\x08")

    conv.to_server = drop_call_connected
    conv.start()
    assert not conv.events("server", LinkUp)
    conv.advance(61)
    assert conv.down("server").error


def test_ip_is_not_passed_before_the_call_is_up() -> None:
    conv = Conversation.make()
    assert not conv.client.send_ip(ipv4_packet(SERVER_ADDRESS, SERVER_ADDRESS, b"too early"))


def test_fast_path_helpers_match_the_link_framing() -> None:
    packet = ipv4_packet(SERVER_ADDRESS, SERVER_ADDRESS, b"x" * 100)
    framed = frame_ip_packets([packet])
    assert framed[:8] == bytes((0x10, 0x00, 0x00, len(packet) + 8, 0xFF, 0x03, 0x00, 0x21))
    assert bytes(ip_payload(framed) or b"") == packet
    assert ip_payload(b"\x10\x01\x00\x08\x00\x08\x00\x00") is None


def test_fast_path_packet_is_accepted_by_the_peer_link() -> None:
    conv = Conversation.make()
    client_up, _ = connect(conv)
    assert client_up.local_address is not None
    packet = ipv4_packet(client_up.local_address, SERVER_ADDRESS, b"fast")
    conv.server.receive_data(frame_ip_packets([packet]), conv.now)
    assert conv.server.take_ip_packets() == [packet]


def test_split_packets_continues_the_stream_the_link_was_cutting() -> None:
    conv = Conversation.make()
    client_up, _ = connect(conv)
    assert client_up.local_address is not None
    packet = ipv4_packet(client_up.local_address, SERVER_ADDRESS, b"fast")
    framed = frame_ip_packets([packet])
    echo = encode_control(EchoRequest())
    conv.server.receive_data(framed[:10], conv.now)  # the last read before the shell takes over
    ips, others = conv.server.split_packets(framed[10:] + echo + framed)
    assert [bytes(ip) for ip in ips] == [packet, packet]
    assert others == [(1, echo)]


def test_http_done_once_the_request_is_answered() -> None:
    conv = Conversation.make()
    assert not conv.client.http_done and not conv.server.http_done
    connect(conv)
    assert conv.client.http_done and conv.server.http_done


def test_server_link_ends_without_a_request_at_the_handshake_timeout() -> None:
    conv = Conversation.make(server=server_config(handshake_timeout=10.0))
    conv.server.start(conv.now)
    conv.advance(9.9)
    assert not conv.server.is_closed
    conv.advance(0.1)
    assert conv.down("server") == LinkDown("no SSTP request within 10 s", True)
    assert not conv.server.http_done


def test_ipv6cp_comes_up_when_both_want_it() -> None:
    conv = Conversation.make(client_config(ipv6=True), server_config(ipv6=True))
    connect(conv)
    assert conv.client.session.ipv6_up and conv.server.session.ipv6_up


def test_ipv6cp_is_protocol_rejected_when_the_server_has_no_ipv6() -> None:
    conv = Conversation.make(client_config(ipv6=True), server_config(ipv6=False))
    client_up, _ = connect(conv)
    assert client_up.local_address is not None
    assert not conv.client.session.ipv6_up


def test_pool_exhausted_refuses_clearly() -> None:
    conv = Conversation.make(network_for_user=lambda user: "no IPv4 address left in the pool")
    conv.start()
    conv.advance(10)
    assert "pool" in conv.down("server").reason
    assert conv.down("client").error or conv.client.is_closed
    assert isinstance(conv.down("client"), LinkDown)


WINDOWS_HTTP = (
    b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"
    b"SSTPCORRELATIONID: {48B82435-099A-4158-A987-052E7570CFAA}\r\n"
    b"Content-Length: 18446744073709551615\r\nHost: vyos.io\r\n\r\n"
)
CONNECT_REQUEST = bytes.fromhex("10 01 00 0E 00 01 00 01 00 01 00 06 00 01")
WINDOWS_LCP_REQUEST = bytes.fromhex(
    "10 00 00 1D FF 03 C0 21 01 00 00 15 01 04 0F FB 05 06 34 5F 64 CA 07 02 08 02 0D 03 06"
)


def lcp_replies(data: bytes) -> list[bytes]:
    """The LCP packets (code onwards) inside the SSTP data packets of ``data``."""
    out, i = [], 0
    while i + 4 <= len(data):
        length = int.from_bytes(data[i + 2 : i + 4], "big") & 0xFFF
        packet = data[i : i + length]
        if packet[1] == 0 and packet[4:8] == b"\xff\x03\xc0\x21":
            out.append(packet[8:])
        i += length
    return out


def test_windows_first_lcp_request_is_negotiated_down() -> None:
    server = Conversation.make().server
    server.receive_data(WINDOWS_HTTP + CONNECT_REQUEST, 0.0)
    assert server.data_to_send().startswith(b"HTTP/1.1 200 OK\r\n")
    server.receive_data(WINDOWS_LCP_REQUEST, 0.0)
    replies = [p for p in lcp_replies(server.data_to_send()) if p[0] in (3, 4)]
    # Reject PFC, ACFC and Callback first (RFC 1661: Reject takes precedence over Nak) ...
    assert replies[0] == bytes.fromhex("04 00 00 0B 07 02 08 02 0D 03 06")
    # ... then Windows asks again with MRU 4091 and Magic, and the MRU is Nak'ed down to 1500.
    server.receive_data(
        bytes.fromhex("10 00 00 16 FF 03 C0 21 01 01 00 0E 01 04 0F FB 05 06 34 5F 64 CA"), 0.1
    )
    nak = [p for p in lcp_replies(server.data_to_send()) if p[0] == 3]
    assert nak == [bytes.fromhex("03 01 00 08 01 04 05 DC")]
    server.receive_data(
        bytes.fromhex("10 00 00 16 FF 03 C0 21 01 02 00 0E 01 04 05 DC 05 06 34 5F 64 CA"), 0.2
    )
    ack = [p for p in lcp_replies(server.data_to_send()) if p[0] == 2]
    assert ack == [bytes.fromhex("02 02 00 0E 01 04 05 DC 05 06 34 5F 64 CA")]


def test_windows_identification_packets_do_not_kill_the_link() -> None:
    conv = Conversation.make()
    connect(conv)
    ident = b"\x0c\x05\x00\x12\x00\x00\x00\x00MSRASV5.20"
    frame = b"\xff\x03\xc0\x21" + ident
    conv.server.receive_data(bytes((0x10, 0, 0, 4 + len(frame))) + frame, conv.now)
    conv.pump()
    assert not conv.server.is_closed
    assert not lcp_replies(conv.server.data_to_send())


def _without_lcp_echo_replies(data: bytes) -> bytes:
    kept, i = [], 0
    while i + 4 <= len(data):
        length = int.from_bytes(data[i + 2 : i + 4], "big") & 0xFFF
        packet = data[i : i + length]
        if packet[4:9] != b"\xff\x03\xc0\x21\x0a":
            kept.append(packet)
        i += length
    return b"".join(kept)


def test_lcp_echo_keepalive_detects_a_peer_whose_ppp_is_dead() -> None:
    conv = Conversation.make(client_config(lcp_echo_interval=5.0))
    connect(conv)
    conv.advance(30)
    assert not conv.client.is_closed  # the server answers LCP echoes
    conv.to_client = _without_lcp_echo_replies
    conv.advance(40)
    down = conv.down("client")
    assert down.error
    assert "LCP Echo-Request" in down.reason


@pytest.mark.parametrize("protocol", ["12 34", "00 00", "c0 20"])
def test_frame_with_an_invalid_protocol_number_is_protocol_rejected(protocol: str) -> None:
    # RFC 1661 §2: a protocol number with an even low octet is treated as an unrecognized protocol.
    conv = Conversation.make()
    connect(conv)
    frame = b"\xff\x03" + bytes.fromhex(protocol) + b"payload"
    conv.server.receive_data(bytes((0x10, 0, 0, 4 + len(frame))) + frame, conv.now)
    rejects = [p for p in lcp_replies(conv.server.data_to_send()) if p[0] == 8]
    assert len(rejects) == 1
    assert rejects[0][4:] == bytes.fromhex(protocol) + b"payload"
    conv.pump()
    assert not conv.server.is_closed
