"""CHAP (RFC 1994): the shared packet codec and CHAP-MD5 in both roles."""

from __future__ import annotations

import pytest
from hypothesis import given

from pysstp.aaa.local import CredentialStore, StaticCredentials
from pysstp.errors import AuthError
from pysstp.ppp.auth.chap import (
    ChapMd5Authenticator,
    ChapMd5Peer,
    ChapPacket,
    chap_md5_response,
    decode_value_name,
    encode_value_name,
)
from pysstp.ppp.auth.keys import ZERO_HLAK
from pysstp.ppp.constants import AuthMethod, ChapCode, Protocol
from pysstp.ppp.events import Authenticated, AuthenticationFailed

from helpers.auth_wire import (
    CLIENT,
    SERVER,
    Conversation,
    HashOnly,
    answer_questions,
    any_packets,
    drop_nth,
    feed_garbage,
    method_conversation,
    seeded_random,
)

USERS = StaticCredentials({"alice": "alicepw"})


def conversation(
    user: str, password: str, credentials: CredentialStore = USERS, **kwargs: object
) -> Conversation:
    return method_conversation(AuthMethod.CHAP_MD5, user, password, credentials, name="vpn.example", **kwargs)


def test_codec() -> None:
    challenge = ChapPacket.with_value(ChapCode.CHALLENGE, 9, bytes(range(16)), "vpn")
    wire = challenge.encode()
    assert wire[:5] == bytes([1, 9, 0, 4 + 1 + 16 + 3, 16])
    decoded = ChapPacket.decode(wire + b"\0pad")
    assert decoded == challenge
    assert decode_value_name(decoded.data) == (bytes(range(16)), "vpn")
    assert encode_value_name(b"", "") == b"\0"
    for bad in (b"", b"\x01\x01\x00", b"\x01\x01\x00\x03", b"\x05\x01\x00\x04", b"\x01\x01\x00\x10abc"):
        with pytest.raises(AuthError):
            ChapPacket.decode(bad)
    with pytest.raises(AuthError):
        decode_value_name(b"\x05abc")
    with pytest.raises(AuthError):
        decode_value_name(b"")


def test_success() -> None:
    talk = conversation("alice", "alicepw").run()
    server, client = talk.succeeded()
    assert server == Authenticated("alice", AuthMethod.CHAP_MD5, ZERO_HLAK, "Access granted")
    assert client == Authenticated("alice", AuthMethod.CHAP_MD5, ZERO_HLAK, "Access granted")
    challenge = ChapPacket.decode(talk.sent_by(SERVER)[0])
    response = ChapPacket.decode(talk.sent_by(CLIENT)[0])
    value, name = decode_value_name(response.data)
    assert name == "alice"
    assert value == chap_md5_response(challenge.identifier, b"alicepw", decode_value_name(challenge.data)[0])
    assert decode_value_name(challenge.data)[1] == "vpn.example"
    assert ChapPacket.decode(talk.sent_by(SERVER)[1]).identifier == response.identifier


def test_wrong_password() -> None:
    server, client = conversation("alice", "nope").run().failed()
    assert server == AuthenticationFailed("alice", AuthMethod.CHAP_MD5, "wrong password for user 'alice'")
    assert client.reason == "server rejected the user name or password (CHAP Failure): Access denied"


def test_unknown_user() -> None:
    server, _ = conversation("bob", "x").run().failed()
    assert server.reason == "unknown user 'bob'" and server.user == "bob"


def test_domain_user() -> None:
    server, client = conversation("CORP\\alice", "alicepw").run().succeeded()
    assert (server.user, client.user) == ("alice", "CORP\\alice")


def test_needs_a_plaintext_password() -> None:
    server, _ = conversation("alice", "alicepw", HashOnly()).run().failed()
    assert (
        server.reason
        == "CHAP-MD5 needs the plaintext password of user 'alice', and only its NT hash is stored"
    )


def test_lost_challenge_is_retransmitted() -> None:
    talk = conversation("alice", "alicepw", drop=drop_nth(SERVER, 0, 1, 2)).run()
    talk.succeeded()
    assert talk.now == pytest.approx(9.0)


def test_lost_response_is_retransmitted_by_the_challenge() -> None:
    talk = conversation("alice", "alicepw", drop=drop_nth(CLIENT, 0)).run()
    talk.succeeded()
    assert talk.lost[0] == (CLIENT, talk.sent_by(CLIENT)[0])


def test_duplicate_response_after_success_gets_success_again() -> None:
    server = ChapMd5Authenticator(random_bytes=seeded_random(5))
    peer = ChapMd5Peer("alice", "alicepw")
    server.start(0.0)
    [(_, challenge)] = server.take_outgoing()
    peer.receive(challenge, 0.1)
    [(_, response)] = peer.take_outgoing()
    server.receive(response, 0.2)
    assert len(answer_questions(server, USERS, 0.2)) == 1
    [(_, success)] = server.take_outgoing()
    server.receive(response, 0.3)
    assert server.take_outgoing() == [(Protocol.CHAP, success)]
    assert server.take_events() == []
    assert server.next_deadline() is None


def test_response_with_another_identifier_is_ignored() -> None:
    server = ChapMd5Authenticator(random_bytes=seeded_random(5))
    server.start(0.0)
    [(_, challenge)] = server.take_outgoing()
    packet = ChapPacket.decode(challenge)
    wrong = ChapPacket.with_value(ChapCode.RESPONSE, (packet.identifier + 1) % 256, bytes(16), "alice")
    server.receive(wrong.encode(), 0.1)
    assert server.take_outgoing() == [] and server.take_events() == [] and server.discarded == 1


def test_authenticator_gives_up_after_ten_challenges() -> None:
    talk = conversation("alice", "alicepw", drop=lambda who, index, packet: who == SERVER).run()
    server = talk.server_result
    assert server == AuthenticationFailed(None, AuthMethod.CHAP_MD5, "peer did not answer 10 challenges")
    assert len(talk.lost) == 10
    assert talk.now == pytest.approx(30.0)
    client = talk.client_result
    assert (
        isinstance(client, AuthenticationFailed)
        and client.reason == "server sent no CHAP Challenge within 30 s"
    )


def test_lost_success_makes_the_peer_give_up() -> None:
    talk = conversation("alice", "alicepw", drop=drop_nth(SERVER, 1)).run()
    assert isinstance(talk.server_result, Authenticated)
    client = talk.client_result
    assert isinstance(client, AuthenticationFailed)
    assert client.reason == "server did not answer our CHAP Response within 30 s"


def test_peer_answers_a_rechallenge_after_success() -> None:
    talk = conversation("alice", "alicepw").run()
    talk.succeeded()
    rechallenge = ChapPacket.with_value(ChapCode.CHALLENGE, 77, b"x" * 16, "vpn").encode()
    talk.client.receive(rechallenge, talk.now)
    [(_, response)] = talk.client.take_outgoing()
    assert ChapPacket.decode(response).identifier == 77
    assert talk.client.take_events() == []


@given(any_packets())
def test_garbage_never_raises(packets: list[bytes]) -> None:
    server = ChapMd5Authenticator(random_bytes=seeded_random(3))
    server.start(0.0)
    feed_garbage(server, packets)
    peer = ChapMd5Peer("alice", "alicepw")
    peer.start(0.0)
    feed_garbage(peer, packets)
