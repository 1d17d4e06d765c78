"""MS-CHAPv2 inside CHAP (RFC 2759), both roles: keys, failures, mutual authentication, real-server bytes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given

from pysstp.aaa.local import CredentialStore, StaticCredentials
from pysstp.ppp.auth import make_authenticator, make_peer
from pysstp.ppp.auth.chap import ChapPacket, MsChapV2Authenticator, MsChapV2Peer, decode_value_name
from pysstp.ppp.auth.keys import mschapv2_hlak
from pysstp.ppp.auth.mschapv2 import MsChapV2Response, nt_password_hash
from pysstp.ppp.constants import AuthMethod, ChapCode, Protocol
from pysstp.ppp.events import Authenticated, AuthenticationFailed
from test_auth_vectors import (
    AUTH_CHALLENGE,
    AUTHENTICATOR_RESPONSE,
    CLIENT_RECEIVE,
    CLIENT_SEND,
    PASSWORD,
    PEER_CHALLENGE,
    USER,
)

from helpers.auth_wire import (
    CLIENT,
    SERVER,
    Conversation,
    HashOnly,
    answer_questions,
    any_packets,
    drop_nth,
    feed_garbage,
    fixed_bytes,
    method_conversation,
    seeded_random,
)

USERS = StaticCredentials({"alice": "alicepw", USER: PASSWORD})


def conversation(
    user: str, password: str, credentials: CredentialStore = USERS, **kwargs: object
) -> Conversation:
    return method_conversation(AuthMethod.MSCHAP_V2, user, password, credentials, name="vm", **kwargs)


def hlak_of(talk: Conversation, user: str, password: str) -> bytes:
    response = ChapPacket.decode(talk.sent_by(CLIENT)[-1])
    value, _ = decode_value_name(response.data)
    return mschapv2_hlak(nt_password_hash(password), MsChapV2Response.decode(value).nt_response)


def test_success_same_hlak_on_both_sides() -> None:
    talk = conversation("alice", "alicepw").run()
    server, client = talk.succeeded()
    assert server.hlak == client.hlak == hlak_of(talk, "alice", "alicepw")
    assert server.hlak != bytes(32) and len(server.hlak) == 32
    assert (server.method, client.method) == (AuthMethod.MSCHAP_V2, AuthMethod.MSCHAP_V2)
    assert client.message == "Access granted"
    success = ChapPacket.decode(talk.sent_by(SERVER)[-1])
    assert success.code is ChapCode.SUCCESS
    assert success.identifier == ChapPacket.decode(talk.sent_by(CLIENT)[-1]).identifier
    assert re.fullmatch(rb"S=[0-9A-F]{40} M=Access granted", success.data)


def test_rfc_vector_end_to_end_gives_reference_v4_hlak() -> None:
    server = MsChapV2Authenticator(random_bytes=fixed_bytes(b"\x01", AUTH_CHALLENGE))
    client = MsChapV2Peer(USER, PASSWORD, random_bytes=fixed_bytes(PEER_CHALLENGE))
    talk = Conversation(server, client, USERS).run()
    server_event, client_event = talk.succeeded()
    assert server_event.hlak == client_event.hlak == CLIENT_SEND + CLIENT_RECEIVE
    assert ChapPacket.decode(talk.sent_by(SERVER)[-1]).data.startswith(AUTHENTICATOR_RESPONSE.encode())


def test_hash_only_store() -> None:
    conversation("alice", "alicepw", HashOnly()).run().succeeded()


def test_wrong_password_is_e691_on_both_sides() -> None:
    talk = conversation("alice", "wrong").run()
    server, client = talk.failed()
    assert server == AuthenticationFailed(
        "alice", AuthMethod.MSCHAP_V2, "wrong password for user 'alice' (E=691)", 691
    )
    assert client.error_code == 691
    assert client.reason == "wrong user name or password (E=691); server says 'Access denied'"
    failure = ChapPacket.decode(talk.sent_by(SERVER)[-1])
    assert failure.code is ChapCode.FAILURE
    assert re.fullmatch(rb"E=691 R=0 C=[0-9A-F]{32} V=3 M=Access denied", failure.data)


def test_unknown_user() -> None:
    server, client = conversation("mallory", "x").run().failed()
    assert server.reason == "unknown user 'mallory' (E=691)"
    assert (server.user, server.error_code, client.error_code) == ("mallory", 691, 691)


def test_domain_user() -> None:
    talk = conversation("CORP\\alice", "alicepw").run()
    server, client = talk.succeeded()
    assert (server.user, client.user) == ("alice", "CORP\\alice")
    _, name = decode_value_name(ChapPacket.decode(talk.sent_by(CLIENT)[0]).data)
    assert name == "CORP\\alice"  # kept as typed in the Name field, stripped only for the hash
    assert server.hlak == client.hlak


def test_domain_user_known_with_its_domain() -> None:
    users = StaticCredentials({"CORP\\alice": "corppw", "alice": "otherpw"})
    server = make_authenticator(AuthMethod.MSCHAP_V2, random_bytes=seeded_random(1))
    client = make_peer(AuthMethod.MSCHAP_V2, "CORP\\alice", "corppw", random_bytes=seeded_random(2))
    server_event, _ = Conversation(server, client, users).run().succeeded()
    assert server_event.user == "CORP\\alice"


class FakeServer:
    """Sends a Challenge and then whatever Success/Failure text the test wants (a malicious or odd server)."""

    def __init__(self, reply_code: ChapCode, text: bytes, challenge: bytes = AUTH_CHALLENGE) -> None:
        self.peer = MsChapV2Peer(USER, PASSWORD, random_bytes=fixed_bytes(PEER_CHALLENGE))
        self.peer.start(0.0)
        self.peer.receive(ChapPacket.with_value(ChapCode.CHALLENGE, 2, challenge, "vm").encode(), 0.0)
        [(protocol, response)] = self.peer.take_outgoing()
        assert protocol == Protocol.CHAP
        self.response = ChapPacket.decode(response)
        self.peer.receive(ChapPacket(reply_code, self.response.identifier, text).encode(), 0.1)

    def result(self) -> Authenticated | AuthenticationFailed:
        [event] = self.peer.take_events()
        return event


def test_bad_s_value_from_a_malicious_server() -> None:
    event = FakeServer(ChapCode.SUCCESS, b"S=" + b"0" * 40 + b" M=trust me").result()
    assert event == AuthenticationFailed(
        USER, AuthMethod.MSCHAP_V2, "server failed mutual authentication (bad S= value)"
    )


def test_success_without_s_value_fails() -> None:
    event = FakeServer(ChapCode.SUCCESS, b"M=welcome").result()
    assert isinstance(event, AuthenticationFailed) and "mutual authentication" in event.reason


def test_softether_success_without_message() -> None:
    # SoftEther sends the bare S= value; lowercase hex must pass too.
    event = FakeServer(ChapCode.SUCCESS, AUTHENTICATOR_RESPONSE.lower().encode()).result()
    assert event == Authenticated(USER, AuthMethod.MSCHAP_V2, CLIENT_SEND + CLIENT_RECEIVE, "")


def test_softether_failure() -> None:
    event = FakeServer(ChapCode.FAILURE, b"E=691 R=0 C=2c9811f529ab44d8ed45b535ee8cdf07 V=3").result()
    assert event == AuthenticationFailed(
        USER, AuthMethod.MSCHAP_V2, "wrong user name or password (E=691)", 691
    )


def test_accel_ppp_failure_without_challenge() -> None:
    event = FakeServer(ChapCode.FAILURE, b"E=691 R=0 V=3 M=Authentication failed").result()
    assert isinstance(event, AuthenticationFailed)
    assert event.reason == "wrong user name or password (E=691); server says 'Authentication failed'"


def test_other_error_codes() -> None:
    event = FakeServer(ChapCode.FAILURE, b"E=649 R=0 V=3").result()
    assert isinstance(event, AuthenticationFailed)
    assert (event.reason, event.error_code) == ("no dial-in permission (E=649)", 649)


def test_success_with_another_identifier_is_ignored() -> None:
    peer = MsChapV2Peer(USER, PASSWORD, random_bytes=fixed_bytes(PEER_CHALLENGE))
    peer.receive(ChapPacket.with_value(ChapCode.CHALLENGE, 2, AUTH_CHALLENGE, "vm").encode(), 0.0)
    peer.receive(ChapPacket.with_message(ChapCode.SUCCESS, 3, AUTHENTICATOR_RESPONSE).encode(), 0.0)
    assert peer.take_events() == [] and peer.discarded == 1


def test_lost_response_and_retransmission() -> None:
    talk = conversation("alice", "alicepw", drop=drop_nth(CLIENT, 0, 1)).run()
    talk.succeeded()
    assert talk.lost[0][1] == talk.lost[1][1] == talk.sent_by(CLIENT)[0]
    assert talk.now == pytest.approx(6.0)


def test_crossing_challenge_and_response() -> None:
    """Response 1 is delayed past the retransmitted Challenge; the server answers it, the copy is ignored."""
    server = MsChapV2Authenticator(random_bytes=seeded_random(1))
    peer = MsChapV2Peer("alice", "alicepw", random_bytes=seeded_random(2))
    server.start(0.0)
    [(_, challenge)] = server.take_outgoing()
    peer.receive(challenge, 2.9)
    [(_, response1)] = peer.take_outgoing()
    server.handle_timer(3.0)
    [(_, challenge_again)] = server.take_outgoing()
    assert challenge_again == challenge
    server.receive(response1, 3.1)
    [server_event] = answer_questions(server, USERS, 3.1)
    peer.receive(challenge_again, 3.1)
    [(_, response2)] = peer.take_outgoing()
    assert response2 == response1
    server.receive(response2, 3.2)
    outgoing = server.take_outgoing()
    assert len(outgoing) == 2 and outgoing[0] == outgoing[1]  # the duplicate gets the same Success
    for _, packet in outgoing:
        peer.receive(packet, 3.3)
    assert server.take_events() == []
    [peer_event] = peer.take_events()
    assert isinstance(server_event, Authenticated) and isinstance(peer_event, Authenticated)
    assert server_event.hlak == peer_event.hlak


def test_give_up() -> None:
    talk = conversation("alice", "alicepw", drop=lambda who, index, packet: who == SERVER).run()
    assert talk.server_result == AuthenticationFailed(
        None, AuthMethod.MSCHAP_V2, "peer did not answer 10 challenges"
    )


def test_wrong_value_size_is_a_failure() -> None:
    server = MsChapV2Authenticator(random_bytes=seeded_random(1))
    server.start(0.0)
    [(_, challenge)] = server.take_outgoing()
    identifier = ChapPacket.decode(challenge).identifier
    server.receive(ChapPacket.with_value(ChapCode.RESPONSE, identifier, bytes(16), "alice").encode(), 0.1)
    [event] = server.take_events()  # refused without asking anyone
    assert isinstance(event, AuthenticationFailed) and event.reason.startswith(
        "peer sent a 16-byte MS-CHAPv2 Response"
    )


@given(any_packets())
def test_garbage_never_raises(packets: list[bytes]) -> None:
    server = MsChapV2Authenticator(random_bytes=seeded_random(3))
    server.start(0.0)
    feed_garbage(server, packets)
    peer = MsChapV2Peer("alice", "alicepw", random_bytes=seeded_random(4))
    peer.start(0.0)
    feed_garbage(peer, packets)
