"""EAP pass-through (RFC 3579): the backend runs EAP, the link only carries its packets; here the far
end is pysstp's own local EAP server, in memory."""

from __future__ import annotations

import pytest

from pysstp.aaa.local import StaticCredentials
from pysstp.link import AuthenticationFailed, LinkUp, Verdict, Verification
from pysstp.ppp.auth.eap import EapAuthenticator, EapPacket
from pysstp.ppp.auth.verification import EapProof
from pysstp.ppp.constants import AuthMethod, EapCode, EapType

from helpers.auth_wire import seeded_random
from helpers.conversation import Conversation, client_config, server_config
from helpers.eap_far_end import EapFarEnd

USERS = StaticCredentials({"alice": "alicepw"})
PASSWORD_METHODS = [AuthMethod.EAP_MSCHAP_V2, AuthMethod.EAP_MD5]


def passed_call(method: AuthMethod, far_end: EapFarEnd, password: str = "alicepw") -> Conversation:
    return Conversation.make(
        client_config(auth_methods=(method,), password=password),
        server_config(auth_methods=(method,), eap_mode="pass-through"),
        answerer=far_end.check,
    )


@pytest.mark.parametrize("method", PASSWORD_METHODS, ids=lambda m: m.value)
def test_the_call_comes_up_with_the_far_ends_keys(method: AuthMethod) -> None:
    far_end = EapFarEnd(USERS, methods=(method,))
    conv = passed_call(method, far_end)
    conv.start()
    server_up = conv.events("server", LinkUp)
    assert server_up and conv.events("client", LinkUp)  # the crypto binding held: the HLAK is the far end's
    assert conv.hlak("client") == conv.hlak("server")
    if method is AuthMethod.EAP_MSCHAP_V2:
        assert conv.hlak("server") != bytes(32)
    up = server_up[0]
    assert isinstance(up, LinkUp) and up.user == "alice" and up.auth_method is method
    # Every Response went to the far end, from the Identity on, and every question was an EapProof.
    assert far_end.seen[0].type == EapType.IDENTITY
    assert all(isinstance(q.proof, EapProof) and q.user == "alice" for q in conv.questions)
    assert len(conv.questions) == len(far_end.seen) >= 2


@pytest.mark.parametrize("method", PASSWORD_METHODS, ids=lambda m: m.value)
def test_the_far_ends_refusal_ends_the_call(method: AuthMethod) -> None:
    conv = passed_call(method, EapFarEnd(USERS, methods=(method,)), password="wrong")
    conv.start()
    [failed] = conv.events("server", AuthenticationFailed)
    assert isinstance(failed, AuthenticationFailed) and "wrong password for user 'alice'" in failed.reason
    assert not conv.events("server", LinkUp) and conv.events("client", AuthenticationFailed)


def test_a_slow_far_end_still_works() -> None:
    conv = passed_call(AuthMethod.EAP_MSCHAP_V2, EapFarEnd(USERS))
    conv.answer_delay = 7.0
    conv.start()
    conv.advance(60)
    assert conv.events("server", LinkUp) and conv.events("client", LinkUp)


def machine() -> EapAuthenticator:
    server = EapAuthenticator(eap_mode="pass-through", random_bytes=seeded_random(1))
    server.start(0.0)
    [(_, identity)] = server.take_outgoing()
    request = EapPacket.decode(identity)
    server.receive(EapPacket(EapCode.RESPONSE, request.identifier, EapType.IDENTITY, b"alice").encode(), 0.0)
    [question] = server.take_events()
    assert isinstance(question, Verification) and question.user == "alice"
    return server


def test_a_backend_that_goes_on_without_a_request_refuses_the_login() -> None:
    server = machine()
    server.answer(Verdict(False, "alice", more=True), 0.0)
    [(_, final)] = server.take_outgoing()
    assert EapPacket.decode(final).code is EapCode.FAILURE
    [failed] = server.take_events()
    assert isinstance(failed, AuthenticationFailed) and "without an EAP Request" in failed.reason


def test_a_malformed_packet_from_the_backend_refuses_the_login() -> None:
    server = machine()
    server.answer(Verdict(False, "alice", eap=b"\x01", more=True), 0.0)
    [failed] = server.take_events()
    assert isinstance(failed, AuthenticationFailed) and "malformed EAP packet" in failed.reason


def test_a_final_packet_that_contradicts_the_verdict_is_not_sent() -> None:
    server = machine()
    success = EapPacket(EapCode.SUCCESS, 7).encode()
    server.answer(Verdict(False, "alice", reason="no", eap=success), 0.0)
    [(_, final)] = server.take_outgoing()
    assert EapPacket.decode(final).code is EapCode.FAILURE


def test_a_keyed_method_after_eap_md5_is_not_bound_with_zeros() -> None:
    # FreeRADIUS proposes EAP-MD5 first (its default_eap_type); the peer Naks it for PEAP, a method
    # with keys that we do not run ourselves. A success without keys must still be refused.
    server = machine()
    md5 = EapPacket(EapCode.REQUEST, 2, EapType.MD5_CHALLENGE, b"\x10" + bytes(16))
    server.answer(Verdict(False, "alice", eap=md5.encode(), more=True), 0.0)
    server.take_outgoing()
    server.receive(EapPacket(EapCode.RESPONSE, 2, EapType.NAK, bytes([EapType.PEAP])).encode(), 0.0)
    [_question] = server.take_events()
    peap = EapPacket(EapCode.REQUEST, 3, EapType.PEAP, b"\x20")
    server.answer(Verdict(False, "alice", eap=peap.encode(), more=True), 0.0)
    server.receive(EapPacket(EapCode.RESPONSE, 3, EapType.PEAP, b"\x00").encode(), 0.0)
    [_question] = server.take_events()
    server.answer(Verdict(True, "alice", eap=EapPacket(EapCode.SUCCESS, 3).encode()), 0.0)
    [failed] = server.take_events()
    assert isinstance(failed, AuthenticationFailed) and "without the keys" in failed.reason
