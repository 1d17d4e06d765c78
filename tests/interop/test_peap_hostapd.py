"""pysstp's PEAP peer against hostapd's PEAP server (Debian's hostapd as a RADIUS server, in a namespace),
through pysstp's RADIUS backend the way the server's EAP pass-through drives it.

hostapd is the independent check of the crypto binding: it sends MS-PEAP's Crypto-Binding TLV, which our
peer must verify, checks the one our peer answers with, and returns MS-MPPE keys derived from the Compound
Session Key, which must be the HLAK our peer derived (the SSTP crypto binding would fail otherwise).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius.backend import RadiusBackend
from pysstp.aaa.radius.client import RadiusClient
from pysstp.aaa.radius.request import NasIdentity
from pysstp.aaa.radius.server import RadiusServer
from pysstp.ppp.auth.eap import EapPeer
from pysstp.ppp.auth.keys import ZERO_HLAK
from pysstp.ppp.auth.peap import PeapPeerSettings
from pysstp.ppp.constants import AuthMethod
from pysstp.ppp.events import Authenticated, AuthenticationFailed

from helpers import certlab
from helpers.freeradius import SECRET, RadiusHost, radius_host
from helpers.hostapd import Hostapd, skip_unless_hostapd, start_hostapd
from helpers.radius_eap import run_eap

__all__ = ["radius_host"]  # fixture

USERS = (("peap-user", "peap-password"),)
CONTEXT = CallContext("sess-0001", "198.51.100.7", "203.0.113.1", 7)
NAS = NasIdentity("pysstp-test", IPv4Address("192.0.2.1"))


@pytest.fixture
def hostapd(radius_host: RadiusHost, tmp_path: Path) -> Iterator[Hostapd]:
    skip_unless_hostapd()
    server = start_hostapd(radius_host, tmp_path / "hostapd", USERS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def backend(hostapd: Hostapd) -> AsyncIterator[RadiusBackend]:
    client = RadiusClient([RadiusServer(hostapd.address, SECRET, port=hostapd.port)])
    yield RadiusBackend(client, NAS)
    await client.close()


def peer(password: str) -> EapPeer:
    settings = PeapPeerSettings((certlab.lab().ca.certificate,), "vpn.example.test")
    return EapPeer("peap-user", password, eap_methods=(AuthMethod.PEAP,), peap=settings)


async def test_peap_with_crypto_binding_against_hostapd(backend: RadiusBackend, hostapd: Hostapd) -> None:
    answers, result = await run_eap(backend, peer("peap-password"), "peap-user", AuthMethod.PEAP, CONTEXT)
    assert isinstance(result, Authenticated), (result, hostapd.describe())
    log = hostapd.describe()
    assert "EAP-PEAP: Valid cryptobinding TLV received" in log  # hostapd checked our Compound MAC
    final = answers[-1].verdict
    assert final.success
    assert final.hlak == result.hlak != ZERO_HLAK  # hostapd's MS-MPPE keys are our PEAP MSK's


async def test_peap_wrong_password_against_hostapd(backend: RadiusBackend) -> None:
    answers, result = await run_eap(backend, peer("wrong"), "peap-user", AuthMethod.PEAP, CONTEXT)
    assert isinstance(result, AuthenticationFailed)
    assert result.error_code == 691
    assert not answers[-1].verdict.success
