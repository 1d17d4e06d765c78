"""PAP (RFC 1334): codec, authenticator against peer in memory, loss, give-up, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given

from pysstp.aaa.local import CredentialStore, StaticCredentials
from pysstp.errors import AuthError
from pysstp.ppp.auth.keys import ZERO_HLAK
from pysstp.ppp.auth.pap import PapAuthenticator, PapPacket, PapPeer
from pysstp.ppp.constants import AuthMethod, PapCode, Protocol
from pysstp.ppp.events import Authenticated, AuthenticationFailed

from helpers.auth_wire import (
    CLIENT,
    SERVER,
    Conversation,
    HashOnly,
    any_packets,
    drop_nth,
    feed_garbage,
    method_conversation,
    seeded_random,
)

USERS = StaticCredentials({"alice": "alicepw", "bob": "bobpw"})


def conversation(
    user: str, password: str, credentials: CredentialStore = USERS, **kwargs: object
) -> Conversation:
    return method_conversation(AuthMethod.PAP, user, password, credentials, name="pysstp", **kwargs)


def test_codec_round_trip_and_padding() -> None:
    request = PapPacket(PapCode.AUTHENTICATE_REQUEST, 7, (b"user", b"pass"))
    assert PapPacket.decode(request.encode() + b"\0\0") == request
    assert PapPacket.decode(bytes.fromhex("02010004")) == PapPacket(PapCode.AUTHENTICATE_ACK, 1, (b"",))
    for bad in (
        b"",
        b"\x01\x01\x00",
        b"\x01\x01\x00\x09\x04user",
        b"\x09\x01\x00\x04",
        b"\x01\x01\x00\x05\x00",
    ):
        with pytest.raises(AuthError):
            PapPacket.decode(bad)


def test_success_with_zero_hlak() -> None:
    talk = conversation("alice", "alicepw").run()
    server, client = talk.succeeded()
    assert server == Authenticated("alice", AuthMethod.PAP, ZERO_HLAK, "Access granted")
    assert client == Authenticated("alice", AuthMethod.PAP, ZERO_HLAK, "Access granted")
    assert isinstance(talk.server, PapAuthenticator) and talk.server.protocol == Protocol.PAP


def test_hash_only_store_is_enough() -> None:
    talk = conversation("alice", "alicepw", HashOnly()).run()
    talk.succeeded()


def test_wrong_password() -> None:
    server, client = conversation("alice", "wrong").run().failed()
    assert server == AuthenticationFailed("alice", AuthMethod.PAP, "wrong password for user 'alice'")
    assert client.reason == "server rejected the user name or password (PAP Authenticate-Nak): Access denied"


def test_unknown_user() -> None:
    server, client = conversation("carol", "x").run().failed()
    assert server.reason == "unknown user 'carol'"
    assert client.user == "carol"


def test_domain_user() -> None:
    server, client = conversation("CORP\\bob", "bobpw").run().succeeded()
    assert server.user == "bob"
    assert client.user == "CORP\\bob"


def test_lost_request_is_retransmitted() -> None:
    talk = conversation("alice", "alicepw", drop=drop_nth(CLIENT, 0, 1)).run()
    talk.succeeded()
    assert talk.now == pytest.approx(6.0)
    assert len(talk.lost) == 2


def test_lost_ack_is_answered_again() -> None:
    talk = conversation("alice", "alicepw", drop=drop_nth(SERVER, 0)).run()
    talk.succeeded()
    assert talk.sent_by(CLIENT)[0] == talk.sent_by(CLIENT)[1]  # same request, same identifier


def test_peer_gives_up_after_max_transmits() -> None:
    talk = conversation("alice", "alicepw", drop=lambda who, index, packet: who == CLIENT).run()
    client = talk.client_result
    assert isinstance(client, AuthenticationFailed)
    assert client.reason == "server did not answer 10 PAP Authenticate-Requests"
    assert len(talk.lost) == 10
    server = talk.server_result
    assert (
        isinstance(server, AuthenticationFailed)
        and server.reason == "peer sent no PAP Authenticate-Request within 30 s"
    )


def test_peer_ignores_replies_with_another_identifier() -> None:
    peer = PapPeer("alice", "pw", random_bytes=lambda n: b"\x05")
    peer.start(0.0)
    peer.receive(PapPacket(PapCode.AUTHENTICATE_ACK, 6, (b"",)).encode(), 0.1)
    assert peer.take_events() == [] and peer.discarded == 1
    peer.receive(PapPacket(PapCode.AUTHENTICATE_NAK, 5, (b"no",)).encode(), 0.2)
    [event] = peer.take_events()
    assert isinstance(event, AuthenticationFailed) and event.reason.endswith(": no")
    assert peer.next_deadline() is None


def test_too_long_password_is_refused_locally() -> None:
    with pytest.raises(ValueError):
        PapPeer("alice", "x" * 256).start(0.0)


@given(any_packets())
def test_garbage_never_raises(packets: list[bytes]) -> None:
    server = PapAuthenticator(random_bytes=seeded_random(3))
    server.start(0.0)
    feed_garbage(server, packets)
    peer = PapPeer("alice", "alicepw", random_bytes=seeded_random(4))
    peer.start(0.0)
    feed_garbage(peer, packets)
