"""Random bytes from the network never make a link raise; at worst the call ends."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_link import CONNECT_REQUEST, WINDOWS_HTTP

from helpers.conversation import Conversation

chunks = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8)


def sstp_packets() -> st.SearchStrategy[bytes]:
    """Well-delineated SSTP packets with random contents, so the fuzzing reaches the PPP layers."""

    def build(control: bool, body: bytes) -> bytes:
        length = len(body) + 4
        return bytes((0x10, int(control), length >> 8, length & 0xFF)) + body

    return st.builds(build, st.booleans(), st.binary(min_size=4, max_size=200))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(chunks)
def test_server_link_survives_random_bytes(data: list[bytes]) -> None:
    server = Conversation.make().server
    for i, chunk in enumerate(data):
        server.receive_data(chunk, float(i))
        server.data_to_send()
        server.take_events()
        server.handle_timer(float(i) + 100)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(sstp_packets(), min_size=1, max_size=12))
def test_server_link_survives_random_packets_after_the_handshake(packets: list[bytes]) -> None:
    server = Conversation.make().server
    server.receive_data(WINDOWS_HTTP + CONNECT_REQUEST, 0.0)
    for i, packet in enumerate(packets):
        server.receive_data(
            b"\x10\x00\x00\x10\xff\x03\xc0\x21\x01\x01\x00\x08\x01\x04\x05\xdc" + packet, float(i)
        )
        server.data_to_send()
        server.take_events()
        server.handle_timer(float(i) * 5)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(sstp_packets(), min_size=1, max_size=12))
def test_client_link_survives_random_packets(packets: list[bytes]) -> None:
    conv = Conversation.make()
    client = conv.client
    client.start(0.0)
    client.receive_data(b"HTTP/1.1 200 OK\r\n\r\n", 0.0)
    ack = bytes.fromhex("10 01 00 30 00 02 00 01 00 04 00 28 00 00 00 03") + bytes(32)
    client.receive_data(ack, 0.0)
    for i, packet in enumerate(packets):
        client.receive_data(packet, float(i))
        client.data_to_send()
        client.take_events()
        client.handle_timer(float(i) * 5)


def test_connected_links_survive_garbage_in_both_directions() -> None:
    conv = Conversation.make()
    conv.start()
    for junk in (
        b"\x10\x00\x00\x06\xff\x03",
        b"\x10\x00\x00\x08\x00\x21\x45\x00",
        b"\x10\x01\x00\x08\x00\x63\x00\x00",
    ):
        conv.server.receive_data(junk, conv.now)
        conv.client.receive_data(junk, conv.now)
        conv.pump()
