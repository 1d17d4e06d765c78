"""EAP (RFC 3748) with Identity, Notification, Legacy-Nak, EAP-MD5 and EAP-MSCHAPv2, both roles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp.aaa.local import StaticCredentials
from pysstp.errors import AuthError
from pysstp.ppp.auth import make_authenticator, make_peer
from pysstp.ppp.auth.chap import decode_value_name, encode_value_name
from pysstp.ppp.auth.eap import EapAuthenticator, EapMsChapV2Data, EapPacket, EapPeer
from pysstp.ppp.auth.keys import ZERO_HLAK, mschapv2_hlak
from pysstp.ppp.auth.mschapv2 import MsChapV2Response, nt_password_hash
from pysstp.ppp.constants import AuthMethod, EapCode, EapType, MsChapV2OpCode, Protocol
from pysstp.ppp.events import Authenticated, AuthenticationFailed, AuthEvent
from test_auth_vectors import AUTH_CHALLENGE, CLIENT_RECEIVE, CLIENT_SEND, PASSWORD, PEER_CHALLENGE, USER

from helpers.auth_wire import (
    CLIENT,
    SERVER,
    Conversation,
    answer_questions,
    any_packets,
    drop_nth,
    feed_garbage,
    fixed_bytes,
    framed_packets,
    seeded_random,
)

USERS = StaticCredentials({"alice": "alicepw", USER: PASSWORD})
BOTH = (AuthMethod.EAP_MSCHAP_V2, AuthMethod.EAP_MD5)


def conversation(
    user: str,
    password: str,
    *,
    server_methods: tuple[AuthMethod, ...] = BOTH,
    client_methods: tuple[AuthMethod, ...] = BOTH,
    **kwargs: object,
) -> Conversation:
    server = EapAuthenticator(name="vm", eap_methods=server_methods, random_bytes=seeded_random(1))
    client = EapPeer(user, password, eap_methods=client_methods, random_bytes=seeded_random(2))
    return Conversation(server, client, USERS, **kwargs)  # type: ignore[arg-type]


def decoded(talk: Conversation, sender: str) -> list[EapPacket]:
    return [EapPacket.decode(packet) for packet in talk.sent_by(sender)]


def test_codec() -> None:
    request = EapPacket(EapCode.REQUEST, 3, EapType.IDENTITY)
    assert request.encode() == bytes.fromhex("0103000501")
    assert EapPacket.decode(request.encode() + b"\0\0") == request
    assert EapPacket.decode(bytes.fromhex("03070004")) == EapPacket(EapCode.SUCCESS, 7)
    for bad in (b"", b"\x01\x01\x00\x04", b"\x05\x01\x00\x04", b"\x01\x01\x00\x09abc", b"\x01\x01\x00\x03"):
        with pytest.raises(AuthError):
            EapPacket.decode(bad)
    ms = EapMsChapV2Data(MsChapV2OpCode.CHALLENGE, 9, b"\x10" + bytes(16) + b"vm")
    wire = ms.encode()
    assert wire[:4] == bytes([1, 9, 0, len(wire)])
    assert EapMsChapV2Data.decode(wire) == ms
    assert EapMsChapV2Data.decode(b"\x03") == EapMsChapV2Data(MsChapV2OpCode.SUCCESS)
    with pytest.raises(AuthError, match="MS-Length"):
        EapMsChapV2Data.decode(wire[:3] + bytes([len(wire) + 1]) + wire[4:])
    with pytest.raises(AuthError):
        EapMsChapV2Data.decode(b"\x01\x02")


def test_mschapv2_success_sequence_and_hlak() -> None:
    talk = conversation("alice", "alicepw").run()
    server, client = talk.succeeded()
    assert server.method is client.method is AuthMethod.EAP_MSCHAP_V2
    assert server.user == client.user == "alice"
    server_packets, client_packets = decoded(talk, SERVER), decoded(talk, CLIENT)
    assert [(p.code, p.type) for p in server_packets] == [
        (EapCode.REQUEST, EapType.IDENTITY),
        (EapCode.REQUEST, EapType.MSCHAP_V2),
        (EapCode.REQUEST, EapType.MSCHAP_V2),
        (EapCode.SUCCESS, None),
    ]
    assert [(p.code, p.type) for p in client_packets] == [(EapCode.RESPONSE, t) for t in (1, 26, 26)]
    # every Response copies its Request's identifier; EAP-Success copies the last Response's
    for request, response in zip(server_packets, client_packets, strict=False):
        assert request.identifier == response.identifier
    assert server_packets[3].identifier == client_packets[2].identifier
    assert client_packets[0].data == b"alice"
    assert client_packets[2].data == bytes([MsChapV2OpCode.SUCCESS])
    success_request = EapMsChapV2Data.decode(server_packets[2].data)
    response = EapMsChapV2Data.decode(client_packets[1].data)
    assert success_request.opcode == MsChapV2OpCode.SUCCESS and success_request.ms_id == response.ms_id
    value, name = decode_value_name(response.payload)
    assert name == "alice"
    # HLAK = MSK[0:32] = the same bytes plain MS-CHAPv2 would give
    expected = mschapv2_hlak(nt_password_hash("alicepw"), MsChapV2Response.decode(value).nt_response)
    assert server.hlak == client.hlak == expected


def test_rfc_vector_through_eap_gives_reference_v4_hlak() -> None:
    server = EapAuthenticator(random_bytes=fixed_bytes(b"\x10", AUTH_CHALLENGE))
    client = EapPeer(USER, PASSWORD, random_bytes=fixed_bytes(PEER_CHALLENGE))
    server_event, client_event = Conversation(server, client, USERS).run().succeeded()
    assert server_event.hlak == client_event.hlak == CLIENT_SEND + CLIENT_RECEIVE


def test_md5_success() -> None:
    server = make_authenticator(AuthMethod.EAP_MD5, random_bytes=seeded_random(1))
    client = make_peer(AuthMethod.EAP_MSCHAP_V2, "alice", "alicepw", random_bytes=seeded_random(2))
    server_event, client_event = Conversation(server, client, USERS).run().succeeded()
    assert server_event == Authenticated("alice", AuthMethod.EAP_MD5, ZERO_HLAK, "Access granted")
    assert client_event == Authenticated("alice", AuthMethod.EAP_MD5, ZERO_HLAK, "")


def test_mschapv2_wrong_password() -> None:
    talk = conversation("alice", "bad").run()
    server, client = talk.failed()
    assert (server.error_code, client.error_code) == (691, 691)
    assert server.reason == "wrong password for user 'alice' (E=691)"
    assert client.reason == "wrong user name or password (E=691); server says 'Access denied'"
    server_packets, client_packets = decoded(talk, SERVER), decoded(talk, CLIENT)
    assert EapMsChapV2Data.decode(server_packets[2].data).opcode == MsChapV2OpCode.FAILURE
    assert client_packets[2].data == bytes([MsChapV2OpCode.FAILURE])
    assert server_packets[3] == EapPacket(EapCode.FAILURE, client_packets[2].identifier)


def test_md5_wrong_password() -> None:
    server, client = conversation("alice", "bad", server_methods=(AuthMethod.EAP_MD5,)).run().failed()
    assert server.reason == "wrong password for user 'alice'"
    assert client.reason == "server rejected the user name or password (EAP-MD5)"


def test_unknown_user() -> None:
    server, client = conversation("nobody", "x").run().failed()
    assert server.reason == "unknown user 'nobody' (E=691)"
    assert client.error_code == 691


def test_domain_user() -> None:
    server, client = conversation("CORP\\alice", "alicepw").run().succeeded()
    assert (server.user, client.user) == ("alice", "CORP\\alice")
    assert server.hlak == client.hlak


def test_nak_to_md5_switches_to_mschapv2() -> None:
    talk = conversation(
        "alice",
        "alicepw",
        server_methods=(AuthMethod.EAP_MD5, AuthMethod.EAP_MSCHAP_V2),
        client_methods=(AuthMethod.EAP_MSCHAP_V2,),
    ).run()
    server, client = talk.succeeded()
    assert server.method is client.method is AuthMethod.EAP_MSCHAP_V2
    nak = decoded(talk, CLIENT)[1]
    assert (nak.type, nak.data) == (EapType.NAK, bytes([EapType.MSCHAP_V2]))


def test_nak_to_mschapv2_switches_to_md5() -> None:
    talk = conversation("alice", "alicepw", client_methods=(AuthMethod.EAP_MD5,)).run()
    server, client = talk.succeeded()
    assert server.method is client.method is AuthMethod.EAP_MD5
    assert server.hlak == client.hlak == ZERO_HLAK


def test_nak_with_nothing_acceptable() -> None:
    talk = conversation(
        "alice", "alicepw", server_methods=(AuthMethod.EAP_MSCHAP_V2,), client_methods=(AuthMethod.EAP_MD5,)
    ).run()
    server, client = talk.failed()
    assert (
        server.reason == "peer accepts none of the EAP methods offered (EAP-MSCHAPv2); it asked for EAP-MD5"
    )
    assert client.reason == "server asked for EAP-MSCHAPv2, which is not supported"
    assert decoded(talk, SERVER)[-1].code is EapCode.FAILURE


class ScriptedServer:
    """A hand-driven EAP server: send a Request, look at the peer's Response."""

    def __init__(self, user: str = USER, password: str = PASSWORD, **kwargs: object) -> None:
        self.peer = EapPeer(user, password, random_bytes=fixed_bytes(PEER_CHALLENGE), **kwargs)  # type: ignore[arg-type]
        self.peer.start(0.0)

    def send(self, packet: EapPacket | bytes) -> list[EapPacket]:
        self.peer.receive(packet if isinstance(packet, bytes) else packet.encode(), 1.0)
        out = self.peer.take_outgoing()
        assert all(protocol == Protocol.EAP for protocol, _ in out)
        return [EapPacket.decode(p) for _, p in out]

    def events(self) -> list[Authenticated | AuthenticationFailed]:
        return self.peer.take_events()

    def challenge(self, identifier: int = 5) -> EapPacket:
        payload = encode_value_name(AUTH_CHALLENGE, "vm")
        data = EapMsChapV2Data(MsChapV2OpCode.CHALLENGE, identifier, payload).encode()
        [response] = self.send(EapPacket(EapCode.REQUEST, identifier, EapType.MSCHAP_V2, data))
        return response


def test_server_insisting_on_eap_tls() -> None:
    server = ScriptedServer()
    assert server.send(EapPacket(EapCode.REQUEST, 1, EapType.IDENTITY))[0].data == USER.encode()
    for identifier in (2, 3):
        [nak] = server.send(EapPacket(EapCode.REQUEST, identifier, EapType.TLS, b"\x20"))
        assert nak == EapPacket(EapCode.RESPONSE, identifier, EapType.NAK, bytes([26, 4]))
    assert server.send(EapPacket(EapCode.FAILURE, 3)) == []
    [event] = server.events()
    assert event == AuthenticationFailed(
        USER, AuthMethod.EAP_MSCHAP_V2, "server asked for EAP-TLS, and no client certificate is configured"
    )


def test_peap_then_failure_with_notification() -> None:
    server = ScriptedServer(eap_methods=(AuthMethod.EAP_MD5, AuthMethod.EAP_MSCHAP_V2))
    [nak] = server.send(EapPacket(EapCode.REQUEST, 1, EapType.PEAP, b"\x20"))
    assert nak.data == bytes([4, 26])
    [answer] = server.send(EapPacket(EapCode.REQUEST, 2, EapType.NOTIFICATION, b"use PEAP"))
    assert answer == EapPacket(EapCode.RESPONSE, 2, EapType.NOTIFICATION, b"")
    server.send(EapPacket(EapCode.FAILURE, 2))
    [event] = server.events()
    assert isinstance(event, AuthenticationFailed)
    assert (
        event.reason
        == "server asked for PEAP, which this client runs only with --auth peap; server says 'use PEAP'"
    )


def test_bad_s_value_in_success_request() -> None:
    server = ScriptedServer()
    response = server.challenge()
    assert EapMsChapV2Data.decode(response.data).opcode == MsChapV2OpCode.RESPONSE
    data = EapMsChapV2Data(MsChapV2OpCode.SUCCESS, 5, b"S=" + b"1" * 40 + b" M=hi").encode()
    assert server.send(EapPacket(EapCode.REQUEST, 6, EapType.MSCHAP_V2, data)) == []
    [event] = server.events()
    assert event == AuthenticationFailed(
        USER, AuthMethod.EAP_MSCHAP_V2, "server failed mutual authentication (bad S= value)"
    )
    assert server.send(EapPacket(EapCode.SUCCESS, 6)) == [] and server.events() == []


def test_eap_success_without_success_request_is_refused() -> None:
    server = ScriptedServer()
    server.challenge()
    server.send(EapPacket(EapCode.SUCCESS, 5))
    [event] = server.events()
    assert isinstance(event, AuthenticationFailed) and "without proving it knows the password" in event.reason


def test_eap_success_before_any_method_is_refused() -> None:
    server = ScriptedServer()
    server.send(EapPacket(EapCode.REQUEST, 1, EapType.IDENTITY))
    server.send(EapPacket(EapCode.SUCCESS, 1))
    [event] = server.events()
    assert isinstance(event, AuthenticationFailed)
    assert event.reason == "server sent EAP-Success without running an authentication method"


def test_ms_length_mismatch_is_discarded() -> None:
    server = ScriptedServer()
    payload = encode_value_name(AUTH_CHALLENGE, "vm")
    data = bytearray(EapMsChapV2Data(MsChapV2OpCode.CHALLENGE, 5, payload).encode())
    data[3] += 1
    assert server.send(EapPacket(EapCode.REQUEST, 5, EapType.MSCHAP_V2, bytes(data))) == []
    assert server.peer.discarded == 1


def test_repeated_request_gets_the_original_response() -> None:
    server = ScriptedServer()
    first = server.challenge(identifier=9)
    assert server.challenge(identifier=9) == first


def test_lost_identity_request_and_lost_response() -> None:
    talk = conversation(
        "alice", "alicepw", drop=lambda who, index, packet: (who, index) in {(SERVER, 0), (CLIENT, 1)}
    )
    talk.run()
    talk.succeeded()
    assert talk.now == pytest.approx(6.0)


def test_lost_success_acknowledgement() -> None:
    talk = conversation("alice", "alicepw", drop=drop_nth(CLIENT, 2)).run()
    talk.succeeded()
    # the Success-Request was sent again and answered from the cache
    assert decoded(talk, SERVER)[2] == decoded(talk, SERVER)[3]


def test_lost_eap_success_is_resent_for_a_duplicate_response() -> None:
    talk = conversation("alice", "alicepw", drop=drop_nth(SERVER, 3))
    talk.start()
    assert isinstance(talk.server_events[0], Authenticated) and talk.client_events == []
    last_response = talk.sent_by(CLIENT)[-1]
    talk.server.receive(last_response, talk.now)
    assert talk.server.take_events() == []
    [(_, final)] = talk.server.take_outgoing()
    assert EapPacket.decode(final) == EapPacket(EapCode.SUCCESS, EapPacket.decode(last_response).identifier)


def test_server_gives_up() -> None:
    talk = conversation("alice", "alicepw", drop=lambda who, index, packet: who == SERVER).run()
    assert talk.server_result == AuthenticationFailed(
        None, AuthMethod.EAP_MSCHAP_V2, "peer did not answer 10 EAP Identity requests"
    )
    client = talk.client_result
    assert (
        isinstance(client, AuthenticationFailed) and client.reason == "server sent no EAP request within 30 s"
    )


def test_server_gives_up_on_the_method() -> None:
    talk = conversation("alice", "alicepw", drop=lambda who, index, packet: who == CLIENT and index > 0).run()
    server = talk.server_result
    assert server == AuthenticationFailed(
        "alice", AuthMethod.EAP_MSCHAP_V2, "peer did not answer 10 EAP-MSCHAPv2 challenges"
    )


def test_factory_orders_methods() -> None:
    server = make_authenticator(AuthMethod.EAP_MD5, eap_methods=BOTH)
    assert isinstance(server, EapAuthenticator) and server.eap_methods == (
        AuthMethod.EAP_MD5,
        AuthMethod.EAP_MSCHAP_V2,
    )
    with pytest.raises(ValueError):
        EapAuthenticator(eap_methods=(AuthMethod.PAP,))


@given(any_packets())
def test_garbage_never_raises(packets: list[bytes]) -> None:
    server = EapAuthenticator(random_bytes=seeded_random(3))
    server.start(0.0)
    feed_garbage(server, packets)
    peer = EapPeer("alice", "alicepw", random_bytes=seeded_random(4))
    peer.start(0.0)
    feed_garbage(peer, packets)


def _eap_request(eap_type: int, body: bytes, identifier: int) -> bytes:
    return EapPacket(EapCode.REQUEST, identifier, eap_type, body).encode()


@given(
    st.lists(
        st.builds(
            _eap_request,
            st.sampled_from([1, 2, 3, 4, 13, 26, 99]),
            st.one_of(st.binary(max_size=60), framed_packets(range(1, 8))),
            st.integers(0, 255),
        ),
        max_size=10,
    )
)
def test_typed_garbage_never_raises(packets: list[bytes]) -> None:
    peer = EapPeer("alice", "alicepw", random_bytes=seeded_random(4))
    feed_garbage(peer, packets)
    server = EapAuthenticator(random_bytes=seeded_random(3))
    server.start(0.0)
    feed_garbage(server, [bytes([2]) + p[1:] for p in packets])


ALL_METHODS = (
    AuthMethod.PAP,
    AuthMethod.CHAP_MD5,
    AuthMethod.MSCHAP_V2,
    AuthMethod.EAP_MSCHAP_V2,
    AuthMethod.EAP_MD5,
)


@given(
    st.sampled_from(ALL_METHODS),
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 80), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_conversations_never_raise(method: AuthMethod, mutations: list[tuple[int, int, int]]) -> None:
    """Real packets with a byte changed reach each machine in the state where the real one would arrive."""
    wanted = {index: (position, value) for index, position, value in mutations}
    counter = {"n": 0}

    def mutate(packet: bytes) -> bytes:
        index = counter["n"]
        counter["n"] += 1
        if index not in wanted:
            return packet
        position, value = wanted[index]
        if position >= len(packet):
            return packet[: position % (len(packet) + 1)]
        return packet[:position] + bytes([value]) + packet[position + 1 :]

    server = make_authenticator(method, random_bytes=seeded_random(7))
    client = make_peer(method, "alice", "alicepw", random_bytes=seeded_random(8))
    server.start(0.0)
    client.start(0.0)
    results: list[AuthEvent] = []
    for step in range(12):
        for source, target in ((server, client), (client, server)):
            for _, packet in source.take_outgoing():
                target.receive(mutate(packet), float(step))
        results += answer_questions(server, USERS, float(step))
        for machine in (server, client):
            deadline = machine.next_deadline()
            if deadline is not None:
                machine.handle_timer(deadline)
    results += answer_questions(server, USERS, 12.0)
    assert len(results) <= 1
    assert len(client.take_events()) <= 1
