"""pysstp's RADIUS backend against a real FreeRADIUS 3.2 (Debian's) in a namespace of its own.

PAP, CHAP-MD5 and MS-CHAPv2 as the server's PPP authenticators would ask; EAP-MSCHAPv2 and EAP-TLS passed
through (RFC 3579), driven by pysstp's own EAP peer machine through the Access-Challenge loop; failover
from a stopped server to the next. The HLAKs are checked against the local computation.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius.backend import RadiusBackend
from pysstp.aaa.radius.client import RadiusClient
from pysstp.aaa.radius.request import NasIdentity
from pysstp.aaa.radius.server import RadiusServer
from pysstp.ppp.auth.chap import chap_md5_response
from pysstp.ppp.auth.eap import EapPeer
from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings
from pysstp.ppp.auth.keys import ZERO_HLAK, mschapv2_hlak
from pysstp.ppp.auth.mschapv2 import generate_authenticator_response, generate_nt_response, nt_password_hash
from pysstp.ppp.auth.verification import ChapMd5Proof, MsChapV2Proof, PapProof, Verification
from pysstp.ppp.constants import AuthMethod
from pysstp.ppp.events import Authenticated, AuthenticationFailed

from helpers import certlab
from helpers.freeradius import SECRET, FreeRadius, RadiusHost, RadiusUser, radius_host, second_radius_host
from helpers.radius_eap import run_eap

__all__ = ["radius_host", "second_radius_host"]  # fixtures

ALICE = RadiusUser(
    "alice",
    "alice-password",
    reply=(
        "Framed-IP-Address = 10.9.0.7",
        'Framed-Route = "192.168.50.0/24 0.0.0.0 1"',
        "Session-Timeout = 600",
        "Idle-Timeout = 300",
        "Acct-Interim-Interval = 60",
        "Class = 0x636c6173732d61",
        "MS-Primary-DNS-Server = 10.9.0.1",
        "MS-Secondary-DNS-Server = 10.9.0.2",
        "Framed-MTU = 1400",
        'Reply-Message = "welcome"',
        "Framed-Pool = ignored-when-an-address-is-given",
    ),
)
"""A user with a Cleartext-Password and a reply of every attribute pysstp honours."""
BOB = RadiusUser("bob", "bob-password", nt_only=True)
"""A user the server knows only by NT hash."""
USERS = (ALICE, BOB, RadiusUser("alice-tls", "unused"))
CONTEXT = CallContext("sess-0001", "198.51.100.7", "203.0.113.1", 7)
NAS = NasIdentity("pysstp-test", IPv4Address("192.0.2.1"))


def backend_for(
    *servers: FreeRadius, timeout: float = 3.0, retries: int = 2, dead_time: float = 30.0
) -> RadiusBackend:
    """A backend whose servers are ``servers`` in this priority order."""
    client = RadiusClient(
        [
            RadiusServer(
                server.address,
                SECRET,
                port=server.port,
                priority=rank,
                timeout=timeout,
                retries=retries,
                dead_time=dead_time,
            )
            for rank, server in enumerate(servers)
        ]
    )
    return RadiusBackend(client, NAS)


@pytest.fixture
async def freeradius(radius_host: RadiusHost, tmp_path: Path) -> FreeRadius:
    """One FreeRADIUS with :data:`USERS`."""
    return radius_host.freeradius(tmp_path / "raddb", USERS)


@pytest.fixture
async def backend(freeradius: FreeRadius) -> AsyncIterator[RadiusBackend]:
    """The backend with that one server."""
    radius = backend_for(freeradius)
    yield radius
    await radius.client.close()


async def test_pap_accept_carries_the_authorization(backend: RadiusBackend, freeradius: FreeRadius) -> None:
    answer = await backend.verify(Verification(AuthMethod.PAP, "alice", PapProof("alice-password")), CONTEXT)
    assert answer.verdict.success, freeradius.describe()
    assert answer.verdict.hlak == ZERO_HLAK
    auth = answer.authorization
    assert auth.address == IPv4Address("10.9.0.7")
    assert auth.routes == (IPv4Network("192.168.50.0/24"),)
    assert (auth.session_timeout, auth.idle_timeout, auth.interim_interval) == (600, 300, 60)
    assert auth.classes == (b"class-a",)
    assert auth.dns == (IPv4Address("10.9.0.1"), IPv4Address("10.9.0.2"))
    assert auth.mtu == 1400
    assert auth.reply_message == "welcome"
    assert auth.pool == "ignored-when-an-address-is-given"


async def test_pap_wrong_password_is_rejected(backend: RadiusBackend, freeradius: FreeRadius) -> None:
    answer = await backend.verify(Verification(AuthMethod.PAP, "alice", PapProof("wrong")), CONTEXT)
    assert not answer.verdict.success
    assert "rejected 'alice'" in answer.verdict.reason
    # The request named the NAS and the call as RFC 2865 §5 asks.
    trace = freeradius.describe()
    for line in (
        'NAS-Identifier = "pysstp-test"',
        "NAS-IP-Address = 192.0.2.1",
        "NAS-Port = 7",
        "NAS-Port-Type = Virtual",
        "Service-Type = Framed-User",
        "Framed-Protocol = PPP",
        'Calling-Station-Id = "198.51.100.7"',
        'Called-Station-Id = "203.0.113.1"',
        'Acct-Session-Id = "sess-0001"',
        "Message-Authenticator = ",
    ):
        assert line in trace


async def test_chap_md5_accept(backend: RadiusBackend, freeradius: FreeRadius) -> None:
    challenge = os.urandom(16)
    response = chap_md5_response(9, b"alice-password", challenge)
    proof = ChapMd5Proof(9, challenge, response)
    answer = await backend.verify(Verification(AuthMethod.CHAP_MD5, "alice", proof), CONTEXT)
    assert answer.verdict.success, freeradius.describe()


def mschapv2_proof(user: str, password: str) -> MsChapV2Proof:
    """What the MS-CHAPv2 authenticator would hand over for a peer that knows ``password``."""
    authenticator_challenge, peer_challenge = os.urandom(16), os.urandom(16)
    nt_response = generate_nt_response(
        authenticator_challenge, peer_challenge, user, nt_password_hash(password)
    )
    return MsChapV2Proof(5, authenticator_challenge, peer_challenge, nt_response)


@pytest.mark.parametrize("user", [ALICE, BOB], ids=["cleartext", "nt-hash"])
async def test_mschapv2_accept_gives_the_local_hlak_and_s_value(
    backend: RadiusBackend, freeradius: FreeRadius, user: RadiusUser
) -> None:
    proof = mschapv2_proof(user.name, user.password)
    answer = await backend.verify(Verification(AuthMethod.MSCHAP_V2, user.name, proof), CONTEXT)
    verdict = answer.verdict
    assert verdict.success, freeradius.describe()
    password_hash = nt_password_hash(user.password)
    expected_s = generate_authenticator_response(
        password_hash, proof.nt_response, proof.peer_challenge, proof.authenticator_challenge, user.name
    )
    assert verdict.message.startswith(expected_s)
    assert verdict.hlak == mschapv2_hlak(password_hash, proof.nt_response)


async def test_mschapv2_wrong_password_says_e691(backend: RadiusBackend, freeradius: FreeRadius) -> None:
    proof = mschapv2_proof("bob", "not-bobs-password")
    answer = await backend.verify(Verification(AuthMethod.MSCHAP_V2, "bob", proof), CONTEXT)
    assert not answer.verdict.success
    assert answer.verdict.error_code == 691
    assert answer.verdict.message.startswith("E=691")


async def test_eap_mschapv2_through_the_challenge_loop(
    backend: RadiusBackend, freeradius: FreeRadius
) -> None:
    peer = EapPeer("bob", "bob-password", eap_methods=(AuthMethod.EAP_MSCHAP_V2,))
    answers, result = await run_eap(backend, peer, "bob", AuthMethod.EAP_MSCHAP_V2, CONTEXT)
    assert isinstance(result, Authenticated), (result, freeradius.describe())
    assert all(a.verdict.more for a in answers[:-1])
    final = answers[-1].verdict
    assert final.success and not final.more
    assert final.hlak == result.hlak != ZERO_HLAK


async def test_eap_mschapv2_wrong_password(backend: RadiusBackend, freeradius: FreeRadius) -> None:
    peer = EapPeer("bob", "wrong", eap_methods=(AuthMethod.EAP_MSCHAP_V2,))
    answers, result = await run_eap(backend, peer, "bob", AuthMethod.EAP_MSCHAP_V2, CONTEXT)
    assert isinstance(result, AuthenticationFailed)
    assert result.error_code == 691
    assert not answers[-1].verdict.success


async def test_eap_tls_through_the_challenge_loop(backend: RadiusBackend, freeradius: FreeRadius) -> None:
    settings: EapTlsPeerSettings = certlab.peer_settings()
    peer = EapPeer("alice-tls", "", eap_methods=(AuthMethod.EAP_TLS,), eap_tls=settings)
    answers, result = await run_eap(backend, peer, "alice-tls", AuthMethod.EAP_TLS, CONTEXT)
    assert isinstance(result, Authenticated), (result, freeradius.describe())
    assert answers[-1].verdict.success
    assert answers[-1].verdict.hlak == result.hlak != ZERO_HLAK


async def test_failover_to_the_second_server(
    radius_host: RadiusHost, second_radius_host: RadiusHost, tmp_path: Path
) -> None:
    first = radius_host.freeradius(tmp_path / "first", USERS)
    second = second_radius_host.freeradius(tmp_path / "second", USERS)
    first.stop()
    backend = backend_for(first, second, timeout=0.5, retries=1, dead_time=60)
    try:
        ask = Verification(AuthMethod.PAP, "alice", PapProof("alice-password"))
        assert (await backend.verify(ask, CONTEXT)).verdict.success
        status = backend.client.status()
        assert [s.alive for s in status] == [False, True]
        # While the first is dead, the second is asked first.
        assert (await backend.verify(ask, CONTEXT)).verdict.success
    finally:
        await backend.client.close()


async def test_all_servers_down_is_a_clear_refusal(radius_host: RadiusHost, tmp_path: Path) -> None:
    server = radius_host.freeradius(tmp_path / "raddb", USERS)
    server.stop()
    backend = backend_for(server, timeout=0.3, retries=0)
    try:
        proof = mschapv2_proof("bob", "bob-password")
        verdict = (await backend.verify(Verification(AuthMethod.MSCHAP_V2, "bob", proof), CONTEXT)).verdict
    finally:
        await backend.client.close()
    assert not verdict.success
    assert "no RADIUS server answered" in verdict.reason
    assert verdict.message.startswith("E=645")


def test_radclient_accounting_lands_in_the_detail_file(radius_host: RadiusHost, tmp_path: Path) -> None:
    server = radius_host.freeradius(tmp_path / "raddb", USERS)
    output = radius_host.radclient(
        server, 'Acct-Status-Type = Start\nAcct-Session-Id = "radclient-1"\nUser-Name = "alice"\n', "acct"
    )
    assert "Accounting-Response" in output, output
    assert "radclient-1" in server.detail.read_text()
