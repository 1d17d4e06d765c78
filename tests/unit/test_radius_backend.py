"""RadiusBackend's answers that need no RADIUS server: EAP-TLS run locally (a CertificateProof)."""

from __future__ import annotations

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius import NasIdentity, RadiusBackend, RadiusClient, RadiusServer
from pysstp.ppp.auth.verification import CertificateProof, Verification
from pysstp.ppp.constants import AuthMethod

CONTEXT = CallContext("sess-1", "198.51.100.7", "203.0.113.1", 1)


def backend() -> RadiusBackend:
    # TEST-NET-1: never contacted, a certificate login does not ask RADIUS.
    return RadiusBackend(RadiusClient([RadiusServer("192.0.2.99", b"s")]), NasIdentity("n"))


async def test_a_certificate_the_ca_vouched_for_is_accepted() -> None:
    question = Verification(AuthMethod.EAP_TLS, "alice", CertificateProof(b"der", require_user=False))
    verdict = (await backend().verify(question, CONTEXT)).verdict
    assert verdict.success and verdict.user == "alice"


async def test_require_user_cannot_be_asked_of_radius() -> None:
    question = Verification(AuthMethod.EAP_TLS, "alice", CertificateProof(b"der", require_user=True))
    verdict = (await backend().verify(question, CONTEXT)).verdict
    assert not verdict.success
    assert "run EAP-TLS in the RADIUS server" in verdict.reason
