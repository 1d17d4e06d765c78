"""The authentication seam: authenticators ask a Verification, the link takes the Verdict later
(docs/architecture.md, "Authentication"); the method registry."""

from __future__ import annotations

import ast
import inspect
from dataclasses import replace

import pytest

from pysstp.aaa.local import LocalBackend, StaticCredentials
from pysstp.link import AuthenticationFailed, LinkDown, LinkUp, Verdict, Verification
from pysstp.ppp.auth import base, make_authenticator, make_peer, register_authenticator
from pysstp.ppp.auth.base import ANSWER_TIMEOUT, AuthenticatorOptions
from pysstp.ppp.auth.pap import PapAuthenticator
from pysstp.ppp.auth.verification import ChapMd5Proof, MsChapV2Proof, PapProof
from pysstp.ppp.constants import AuthMethod, Code, Protocol, Timer
from pysstp.ppp.packet import ControlPacket

from helpers.auth_wire import CLIENT, SERVER, method_conversation
from helpers.conversation import Conversation, client_config, local_answers, server_config

USERS = StaticCredentials({"alice": "alicepw"})
ANSWERED_METHODS = [
    AuthMethod.PAP,
    AuthMethod.CHAP_MD5,
    AuthMethod.MSCHAP_V2,
    AuthMethod.EAP_MSCHAP_V2,
    AuthMethod.EAP_MD5,
]


def call(method: AuthMethod, **options: object) -> Conversation:
    return Conversation.make(
        client_config(auth_methods=(method,)),
        server_config(auth_methods=(method,)),
        **options,  # type: ignore[arg-type]
    )


# -- what is asked ----------------------------------------------------------------------------------


def test_each_method_asks_one_question_with_its_proof() -> None:
    proofs = {}
    for method in ANSWERED_METHODS:
        talk = method_conversation(method, "CORP\\alice", "alicepw", USERS).run()
        talk.succeeded()
        [question] = talk.questions
        assert question.method is method and question.user == "CORP\\alice"
        proofs[method] = question.proof
    assert proofs[AuthMethod.PAP] == PapProof("alicepw")
    for method in (AuthMethod.CHAP_MD5, AuthMethod.EAP_MD5):
        proof = proofs[method]
        assert isinstance(proof, ChapMd5Proof) and len(proof.challenge) == 16 and len(proof.response) == 16
    for method in (AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2):
        proof = proofs[method]
        assert isinstance(proof, MsChapV2Proof)
        assert len(proof.authenticator_challenge) == len(proof.peer_challenge) == 16
        assert len(proof.nt_response) == 24


def test_eap_asks_only_about_the_inner_proof_and_only_once_it_arrives() -> None:
    talk = method_conversation(AuthMethod.EAP_MSCHAP_V2, "alice", "alicepw", USERS, answer_delay=5.0)
    talk.start()
    [question] = talk.questions
    assert isinstance(question.proof, MsChapV2Proof)
    # Identity, Challenge and the peer's Response went by; the MS-CHAPv2 result waits for the answer.
    assert len(talk.sent_by(SERVER)) == 2 and len(talk.sent_by(CLIENT)) == 2
    assert talk.server_events == []


# -- slow and missing answers -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ANSWERED_METHODS, ids=lambda m: m.value)
def test_a_slow_answer_still_brings_the_call_up(method: AuthMethod) -> None:
    conv = call(method, answer_delay=4 * Timer.AUTH_RESTART)
    conv.start()
    assert conv.questions and not conv.events("server", LinkUp)
    conv.advance(20)
    assert conv.events("server", LinkUp) and conv.events("client", LinkUp)
    assert conv.hlak("client") == conv.hlak("server")


@pytest.mark.parametrize("method", ANSWERED_METHODS, ids=lambda m: m.value)
def test_while_waiting_the_authenticator_sends_nothing(method: AuthMethod) -> None:
    talk = method_conversation(method, "alice", "alicepw", USERS, answer_delay=ANSWER_TIMEOUT - 1)
    talk.start()
    sent = len(talk.sent_by(SERVER))
    talk.advance(ANSWER_TIMEOUT - 2)
    assert len(talk.sent_by(SERVER)) == sent and not talk.server_events
    talk.advance(1)
    talk.run()
    talk.succeeded()


def test_no_answer_fails_the_login_at_the_answer_timeout() -> None:
    conv = call(AuthMethod.MSCHAP_V2, answerer=lambda question: pytest.fail("nobody should answer"))
    conv.answer_delay = 10 * ANSWER_TIMEOUT
    conv.start()
    conv.advance(ANSWER_TIMEOUT + 1)
    [failed] = conv.events("server", AuthenticationFailed)
    assert isinstance(failed, AuthenticationFailed)
    assert failed.reason == f"the authentication backend did not answer within {ANSWER_TIMEOUT:.0f} s"
    assert failed.user == "alice"
    assert conv.down("server").error


def test_an_answer_nobody_waits_for_is_ignored() -> None:
    server = PapAuthenticator()
    server.answer(Verdict(True, "alice"), 0.0)
    assert server.take_events() == [] and server.take_outgoing() == [] and not server.finished
    conv = call(AuthMethod.PAP)
    conv.start()
    conv.server.answer(conv.now, conv.questions[0], Verdict(False, "alice", reason="late"))
    assert conv.events("server", LinkUp) and not conv.events("server", AuthenticationFailed)


def test_an_lcp_renegotiation_leaves_the_old_questions_answer_unused() -> None:
    # The first question's answer carries the S= value and keys of the first challenge; applied to the
    # exchange the renegotiation started, the client would see a bad S= value.
    conv = call(AuthMethod.MSCHAP_V2, answer_delay=2 * Timer.AUTH_RESTART)
    conv.start()
    [first] = conv.questions
    conv.server.session.receive_packet(
        Protocol.LCP, ControlPacket(Code.CONFIGURE_REQUEST, 99).encode(), conv.now
    )
    conv.advance(2 * Timer.AUTH_RESTART - 0.5)  # LCP opens again and the new Challenge is answered
    assert len(conv.questions) == 2 and conv.questions[1] != first
    conv.advance(4 * Timer.AUTH_RESTART)
    assert conv.events("server", LinkUp) and conv.events("client", LinkUp)
    assert not conv.events("client", AuthenticationFailed)


# -- what the answer carries ------------------------------------------------------------------------


def test_the_backends_ms_chap_error_reaches_the_client() -> None:
    def expired(question: Verification) -> Verdict:
        return Verdict(False, question.user, reason="password expired", error_code=648)

    conv = call(AuthMethod.MSCHAP_V2, answerer=expired)
    conv.start()
    [server] = conv.events("server", AuthenticationFailed)
    [client] = conv.events("client", AuthenticationFailed)
    assert isinstance(server, AuthenticationFailed) and isinstance(client, AuthenticationFailed)
    assert (server.reason, server.error_code) == ("password expired (E=648)", 648)
    assert client.error_code == 648


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2])
def test_a_success_without_keys_is_refused_for_a_method_with_keys(method: AuthMethod) -> None:
    answer = local_answers(USERS)
    conv = call(method, answerer=lambda question: replace(answer(question), hlak=b""))
    conv.start()
    [failed] = conv.events("server", AuthenticationFailed)
    assert isinstance(failed, AuthenticationFailed) and "without the keys" in failed.reason
    assert not conv.events("server", LinkUp)
    [client] = conv.events("client", AuthenticationFailed)  # the peer is told no, not a Success first
    assert isinstance(client, AuthenticationFailed) and client.error_code == 691


def test_a_success_without_keys_is_fine_for_pap() -> None:
    conv = call(AuthMethod.PAP, answerer=lambda question: Verdict(True, "alice"))
    conv.start()
    assert conv.events("server", LinkUp) and conv.hlak("server") == bytes(32)


def test_the_backend_names_the_user_of_the_session() -> None:
    backend = LocalBackend(StaticCredentials({"alice": "alicepw"}))
    conv = Conversation.make(
        client_config(username="CORP\\alice"), answerer=lambda question: backend.check(question).verdict
    )
    conv.start()
    up = conv.events("server", LinkUp)[0]
    assert isinstance(up, LinkUp) and up.user == "alice"
    assert not conv.events("server", LinkDown)


# -- the registry -----------------------------------------------------------------------------------


def test_base_imports_no_method() -> None:
    tree = ast.parse(inspect.getsource(base))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not imported & {"pysstp.ppp.auth.pap", "pysstp.ppp.auth.chap", "pysstp.ppp.auth.eap"}


def test_a_registered_factory_builds_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[AuthenticatorOptions] = []

    def factory(options: AuthenticatorOptions) -> PapAuthenticator:
        built.append(options)
        return PapAuthenticator(name=options.name)

    monkeypatch.setitem(base._AUTHENTICATORS, AuthMethod.PAP, base._AUTHENTICATORS[AuthMethod.PAP])
    register_authenticator(AuthMethod.PAP, factory)
    machine = make_authenticator(AuthMethod.PAP, name="vpn")
    assert isinstance(machine, PapAuthenticator) and machine.name == "vpn"
    assert [options.method for options in built] == [AuthMethod.PAP]


def test_an_unregistered_method_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(base._AUTHENTICATORS, AuthMethod.PAP)
    monkeypatch.delitem(base._PEERS, AuthMethod.PAP)
    with pytest.raises(ValueError, match="no authenticator"):
        make_authenticator(AuthMethod.PAP)
    with pytest.raises(ValueError, match="no peer"):
        make_peer(AuthMethod.PAP, "alice", "alicepw")
