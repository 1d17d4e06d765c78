"""The local backend: today's checks of the user file, answered as questions (aaa/local.py)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from pysstp.aaa.backend import Authorization, CallContext
from pysstp.aaa.local import LocalBackend, StaticCredentials
from pysstp.aaa.userdb import UserDatabase
from pysstp.ppp.auth.keys import mschapv2_hlak
from pysstp.ppp.auth.mschapv2 import generate_nt_response, nt_password_hash
from pysstp.ppp.auth.verification import (
    CertificateProof,
    ChapMd5Proof,
    EapProof,
    MsChapV2Proof,
    PapProof,
    Verification,
)
from pysstp.ppp.constants import AuthMethod

CONTEXT = CallContext("0000000100000001", "192.0.2.1", "192.0.2.254", 1)
CHALLENGE = bytes(range(16))
PEER_CHALLENGE = bytes(range(16, 32))


@pytest.fixture
def db(tmp_path: Path) -> UserDatabase:
    db = UserDatabase(tmp_path / "users.toml", create=True)
    db.add(
        "alice",
        "alicepw",
        address="10.77.0.50",
        routes=["192.168.50.0/24"],
        max_sessions=2,
        rate_in=1_000_000,
        rate_out=0,
    )
    db.add("bob", "bobpw", enabled=False)
    return db


def mschapv2(name: str, password: str, method: AuthMethod = AuthMethod.MSCHAP_V2) -> Verification:
    nt_response = generate_nt_response(CHALLENGE, PEER_CHALLENGE, name, nt_password_hash(password))
    return Verification(method, name, MsChapV2Proof(1, CHALLENGE, PEER_CHALLENGE, nt_response))


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2])
def test_mschapv2_from_the_hash_gives_s_and_the_hlak(db: UserDatabase, method: AuthMethod) -> None:
    answer = asyncio.run(LocalBackend(db, db.entry).verify(mschapv2("alice", "alicepw", method), CONTEXT))
    verdict = answer.verdict
    assert verdict.success and verdict.user == "alice" and verdict.message.startswith("S=")
    nt_response = generate_nt_response(CHALLENGE, PEER_CHALLENGE, "alice", nt_password_hash("alicepw"))
    assert verdict.hlak == mschapv2_hlak(nt_password_hash("alicepw"), nt_response)
    assert answer.authorization == Authorization(
        address=IPv4Address("10.77.0.50"),
        routes=(IPv4Network("192.168.50.0/24"),),
        max_sessions=2,
        rate_in=1_000_000,
        rate_out=0,
    )


def test_wrong_password_and_unknown_user(db: UserDatabase) -> None:
    backend = LocalBackend(db, db.entry)
    wrong = backend.check(mschapv2("alice", "nope")).verdict
    assert (wrong.success, wrong.reason, wrong.error_code) == (False, "wrong password for user 'alice'", 691)
    unknown = backend.check(mschapv2("carol", "x")).verdict
    assert (unknown.success, unknown.user, unknown.reason) == (False, "carol", "unknown user 'carol'")
    assert backend.check(mschapv2("alice", "nope")).authorization == Authorization()


@pytest.mark.parametrize("sent", ["bob", "CORP\\bob"])
def test_a_disabled_user_is_named_as_such(db: UserDatabase, sent: str) -> None:
    verdict = LocalBackend(db, db.entry).check(mschapv2(sent, "bobpw")).verdict
    assert not verdict.success and verdict.reason == "user 'bob' is disabled"


def test_domain_names_fall_back_to_the_plain_user(db: UserDatabase) -> None:
    verdict = LocalBackend(db, db.entry).check(mschapv2("CORP\\alice", "alicepw")).verdict
    assert verdict.success and verdict.user == "alice"


def test_pap_from_the_hash(db: UserDatabase) -> None:
    backend = LocalBackend(db)
    assert backend.check(Verification(AuthMethod.PAP, "alice", PapProof("alicepw"))).verdict.success
    assert not backend.check(Verification(AuthMethod.PAP, "alice", PapProof("x"))).verdict.success


def test_md5_needs_a_plaintext(db: UserDatabase) -> None:
    proof = ChapMd5Proof(1, CHALLENGE, bytes(16))
    verdict = LocalBackend(db).check(Verification(AuthMethod.EAP_MD5, "alice", proof)).verdict
    assert (
        verdict.reason
        == "EAP-MD5 needs the plaintext password of user 'alice', and only its NT hash is stored"
    )
    plain = LocalBackend(StaticCredentials({"alice": "alicepw"}))
    assert plain.check(Verification(AuthMethod.CHAP_MD5, "alice", proof)).verdict.reason == (
        "wrong password for user 'alice'"
    )


def test_pass_through_is_not_for_the_local_backend(db: UserDatabase) -> None:
    verdict = LocalBackend(db).check(
        Verification(AuthMethod.EAP_TLS, "alice", EapProof(b"\x02\x01\x00\x05\x01"))
    )
    assert not verdict.verdict.success and "RADIUS" in verdict.verdict.reason


def test_certificates_ask_only_for_the_user(db: UserDatabase) -> None:
    backend = LocalBackend(db, db.entry)

    def ask(name: str, require: bool) -> tuple[bool, str]:
        answer = backend.check(Verification(AuthMethod.EAP_TLS, name, CertificateProof(b"der", require)))
        return answer.verdict.success, answer.verdict.reason

    assert ask("carol", False) == (True, "")  # the CA alone decides
    assert ask("carol", True) == (False, "certificate user 'carol' is not in the user database")
    assert ask("bob", True) == (False, "user 'bob' is disabled")
    assert ask("alice", True) == (True, "")
    certificate = backend.check(Verification(AuthMethod.EAP_TLS, "alice", CertificateProof(b"der")))
    assert certificate.authorization.address == IPv4Address("10.77.0.50")


def test_push_routes_and_domain_reach_the_authorization(db: UserDatabase) -> None:
    db.add("dave", "davepw", push_routes=["10.99.0.0/16"], domain="corp.example")
    answer = LocalBackend(db, db.entry).check(mschapv2("dave", "davepw"))
    assert answer.authorization.push_routes == (IPv4Network("10.99.0.0/16"),)
    assert answer.authorization.domain == "corp.example"
    assert answer.authorization.routes == ()
