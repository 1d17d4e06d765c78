"""Certificates for certificate logins: a small CA (CA, server and user certificates, a CRL) and the
readers that turn PEM files into the loaded objects the TLS layers take.

The CA is enough for a test lab or a small site (``pysstp pki``); a real deployment may use its own PKI
instead, as long as user certificates carry the clientAuth extended key usage and the name the server
reads. Keys are ECDSA P-256, which Windows, OpenSSL and every current TLS stack accept. The readers raise
:class:`~pysstp.errors.ConfigError` with one line that names the file.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pysstp.errors import ConfigError
from pysstp.ppp.auth.eap_tls import UPN_OID
from pysstp.ppp.auth.tls_tunnel import PrivateKey, TlsIdentity

CA_DAYS = 3650
SERVER_DAYS = 825
"""The longest lifetime Apple and browsers accept for a server certificate."""
USER_DAYS = 365
CRL_DAYS = 30
_BACKDATE = datetime.timedelta(minutes=5)
"""Certificates start a little in the past, so a peer whose clock lags a bit accepts them."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)

    def certificate_pem(self) -> bytes:
        """The certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, passphrase: bytes | None = None) -> bytes:
        """The private key in PKCS#8 PEM, encrypted when a passphrase is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, start: datetime.datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _BACKDATE)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _key_usage(*, sign_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certificates,
        crl_sign=sign_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(name: str, *, days: int = CA_DAYS, start: datetime.datetime | None = None) -> Issued:
    """A self-signed root CA that may sign end certificates and CRLs (no intermediates)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        _builder(name, subject, key, start or _now(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certificates=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def _issue(
    ca: Issued,
    name: str,
    purpose: x509.ObjectIdentifier,
    alt_names: Iterable[x509.GeneralName],
    days: int,
    start: datetime.datetime | None,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(name, ca.certificate.subject, key, start or _now(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    names = list(alt_names)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def issue_server(
    ca: Issued, name: str, *, days: int = SERVER_DAYS, start: datetime.datetime | None = None
) -> Issued:
    """A server certificate (serverAuth) for a host name or an IP address, named in CN and SAN."""
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    return _issue(ca, name, ExtendedKeyUsageOID.SERVER_AUTH, [alt], days, start)


def issue_user(
    ca: Issued,
    name: str,
    *,
    email: str | None = None,
    upn: str | None = None,
    days: int = USER_DAYS,
    start: datetime.datetime | None = None,
) -> Issued:
    """A user certificate (clientAuth) with the user name as CN, and optionally an e-mail or UPN SAN."""
    alt: list[x509.GeneralName] = []
    if email:
        alt.append(x509.RFC822Name(email))
    if upn:
        alt.append(x509.OtherName(UPN_OID, _der_utf8_string(upn)))
    return _issue(ca, name, ExtendedKeyUsageOID.CLIENT_AUTH, alt, days, start)


def _der_utf8_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) < 0x80:
        return bytes([0x0C, len(raw)]) + raw
    size = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + raw


def make_crl(
    ca: Issued,
    revoked: Iterable[int] = (),
    *,
    days: int = CRL_DAYS,
    start: datetime.datetime | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by ``ca`` that revokes the certificates with serial numbers ``revoked`` (valid
    ``days`` from ``start``)."""
    when = start or _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(when - _BACKDATE)
        .next_update(when + datetime.timedelta(days=days))
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when - _BACKDATE).build()
        )
    return builder.sign(ca.key, hashes.SHA256())


# -- reading PEM files ------------------------------------------------------------------------------


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None


def read_certificates(path: Path, what: str = "certificate file") -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM file (at least one)."""
    try:
        certificates = tuple(x509.load_pem_x509_certificates(_read(path, what)))
    except ValueError:
        raise ConfigError(f"{path}: not a PEM {what} (expected -----BEGIN CERTIFICATE-----)") from None
    return certificates


def read_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """A PEM private key, decrypted with ``passphrase`` when it is encrypted."""
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, passphrase)
    except TypeError:
        if passphrase is None:
            raise ConfigError(f"{path}: the private key is encrypted; give its passphrase") from None
        raise ConfigError(f"{path}: the private key is not encrypted, but a passphrase was given") from None
    except ValueError:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise ConfigError(f"{path}: wrong passphrase for the private key") from None
        raise ConfigError(f"{path}: not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path}: {type(key).__name__} keys cannot sign TLS handshakes; use RSA or ECDSA")
    return key


def read_identity(cert: Path, key: Path, passphrase: bytes | None = None) -> TlsIdentity:
    """A certificate file (leaf first, then its intermediates) with its private key file."""
    leaf, *chain = read_certificates(cert)
    try:
        return TlsIdentity(leaf, read_private_key(key, passphrase), tuple(chain))
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc} ({cert})") from None


def read_crls(path: Path) -> tuple[x509.CertificateRevocationList, ...]:
    """Every CRL in a PEM file."""
    data = _read(path, "CRL file")
    marker = b"-----BEGIN X509 CRL-----"
    blocks = [marker + block for block in data.split(marker)[1:]]
    if not blocks:
        raise ConfigError(f"{path}: not a PEM CRL file (expected {marker.decode()})")
    try:
        return tuple(x509.load_pem_x509_crl(block) for block in blocks)
    except ValueError:
        raise ConfigError(f"{path}: a CRL in the file is damaged") from None
