"""Random bytes from the network never make a link raise; at worst the call ends."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysstp.link import LinkDown, Verdict
from pysstp.ppp.auth.base import EAP_METHODS
from pysstp.ppp.auth.eap import EapPacket
from pysstp.ppp.constants import AuthMethod, EapCode
from test_link import CONNECT_REQUEST, WINDOWS_HTTP

from helpers.conversation import Conversation, client_config, server_config

ANSWERED = [AuthMethod.PAP, AuthMethod.CHAP_MD5, AuthMethod.MSCHAP_V2, *EAP_METHODS]


def eap_packets() -> st.SearchStrategy[bytes]:
    """Well-formed EAP packets of any code and type, as a backend passing EAP through sends them."""
    return st.builds(
        lambda code, identifier, eap_type, data: EapPacket(code, identifier, eap_type, data).encode(),
        st.sampled_from(list(EapCode)),
        st.integers(0, 255),
        st.integers(1, 30),
        st.binary(max_size=20),
    )


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


verdicts = st.builds(
    Verdict,
    success=st.booleans(),
    user=st.text(max_size=8),
    message=st.text(max_size=40),
    hlak=st.one_of(st.just(b""), st.binary(min_size=32, max_size=32), st.binary(max_size=40)),
    reason=st.text(max_size=8),
    error_code=st.one_of(st.none(), st.integers(0, 2**31)),
    eap=st.one_of(st.none(), st.binary(max_size=40), eap_packets()),
    more=st.booleans(),
)
"""Any answer a backend could give, well-formed or not."""

answers = st.lists(st.tuples(st.floats(0, 40), st.integers(0, 3), verdicts), max_size=6)
"""(seconds to wait, which question so far to answer, the answer)."""


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(ANSWERED), st.booleans(), answers)
def test_server_link_survives_any_answer_at_any_time(
    method: AuthMethod, pass_through: bool, script: list[tuple[float, int, Verdict]]
) -> None:
    mode = "pass-through" if pass_through and method in EAP_METHODS else "local"
    conv = Conversation.make(
        client_config(auth_methods=(method,)),
        server_config(auth_methods=(method,), eap_mode=mode),
        answerer=lambda question: pytest.fail("the script answers"),
        answer_delay=1e9,
    )
    conv.start()
    for wait, index, verdict in script:
        conv.advance(wait)
        if conv.questions:
            conv.server.answer(conv.now, conv.questions[index % len(conv.questions)], verdict)
        conv.pump()
        conv.events("server", LinkDown)
