"""One in-memory PKI for the EAP-TLS and client-certificate tests: made once, shared by every test."""

from __future__ import annotations

import datetime
import functools
import hmac
from dataclasses import dataclass

from cryptography import x509

from pysstp.aaa.pki import Issued, issue_server, issue_user, make_ca, make_crl
from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings, EapTlsServerSettings
from pysstp.ppp.auth.tls_tunnel import TlsIdentity, TlsVersion


@dataclass(frozen=True)
class Lab:
    """A trusted CA with its server and users, and a second CA nobody trusts."""

    ca: Issued
    other_ca: Issued
    server: Issued
    rogue_server: Issued
    alice: Issued
    revoked: Issued
    expired: Issued
    stranger: Issued
    wrong_purpose: Issued
    crl: x509.CertificateRevocationList


@functools.cache
def lab() -> Lab:
    """The shared lab (ECDSA keys: a few milliseconds to make)."""
    ca = make_ca("pysstp test CA")
    other_ca = make_ca("someone else's CA")
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=400)
    revoked = issue_user(ca, "bob")
    return Lab(
        ca=ca,
        other_ca=other_ca,
        server=issue_server(ca, "vpn.example.test"),
        rogue_server=issue_server(other_ca, "vpn.example.test"),
        alice=issue_user(ca, "alice", email="alice@example.test", upn="alice@corp.example.test"),
        revoked=revoked,
        expired=issue_user(ca, "carol", days=30, start=long_ago),
        stranger=issue_user(other_ca, "mallory"),
        wrong_purpose=issue_server(ca, "dave"),
        crl=make_crl(ca, [revoked.certificate.serial_number]),
    )


def identity(issued: Issued) -> TlsIdentity:
    """A certificate with its key, as the TLS layer takes it."""
    return TlsIdentity(issued.certificate, issued.key)


def server_settings(**overrides: object) -> EapTlsServerSettings:
    """The server's EAP-TLS settings: lab server certificate, lab CA, lab CRL."""
    the_lab = lab()
    settings: dict[str, object] = {
        "identity": identity(the_lab.server),
        "trusted_cas": (the_lab.ca.certificate,),
        "crls": (the_lab.crl,),
    }
    settings.update(overrides)
    return EapTlsServerSettings(**settings)  # type: ignore[arg-type]


def peer_settings(user: Issued | None = None, **overrides: object) -> EapTlsPeerSettings:
    """A peer's EAP-TLS settings: ``user``'s certificate (alice by default), trusting the lab CA."""
    the_lab = lab()
    settings: dict[str, object] = {
        "identity": identity(user or the_lab.alice),
        "trusted_cas": (the_lab.ca.certificate,),
    }
    settings.update(overrides)
    return EapTlsPeerSettings(**settings)  # type: ignore[arg-type]


VERSIONS = (TlsVersion.TLS1_2, TlsVersion.TLS1_3)


def p_hash(digest: str, secret: bytes, seed: bytes, size: int) -> bytes:
    """RFC 5246 §5 P_hash, written out independently of OpenSSL, to check the keys the TLS-based EAP
    methods export."""
    out, a = b"", seed
    while len(out) < size:
        a = hmac.new(secret, a, digest).digest()
        out += hmac.new(secret, a + seed, digest).digest()
    return out[:size]
