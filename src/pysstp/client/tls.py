"""TLS for the client: the context, the checks that TLS itself cannot do, and what a refusal says.

Three modes, chosen by :class:`~pysstp.client.settings.TlsSettings`:

* default: the system CA store (or ``--ca-file``) and the host name, checked by OpenSSL;
* ``--pin-sha256``: OpenSSL checks nothing (``CERT_NONE``); after the handshake and before a single byte
  of SSTP is sent, the SHA-256 of the leaf certificate's DER must equal the pin. This is how a
  self-signed server is trusted without trusting anything else;
* ``--insecure``: nothing is checked (a warning says so).

With ``--no-sni`` OpenSSL cannot check the name (Python ties the name check to the SNI it sends), so the
name is checked here against the certificate's subjectAltName after the handshake.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from dataclasses import dataclass

from cryptography import x509

from pysstp.certnames import certificate_matches, subject_alt_names
from pysstp.client.login import ClientCertificate
from pysstp.client.settings import TlsSettings
from pysstp.errors import ConfigError


class CertificateRejected(Exception):
    """The server's certificate failed a check done after the handshake (pin or name); ``why`` says how."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def make_context(tls: TlsSettings, certificate: ClientCertificate | None = None) -> ssl.SSLContext:
    """The client context for these settings (see the module docstring), showing ``certificate`` (read
    from ``tls.cert`` and ``tls.key``) when the server asks for one."""
    if tls.pin_sha256 is not None or tls.insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        # With a cafile, create_default_context loads only that file, not the system store.
        try:
            context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        except ssl.SSLError:  # a subclass of OSError: first
            raise ConfigError(
                f"--ca-file {tls.ca_file}: no usable CA certificate in it (expected PEM: -----BEGIN "
                "CERTIFICATE-----)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"--ca-file {tls.ca_file}: cannot read: {exc.strerror}") from None
        context.check_hostname = not tls.no_sni
    context.minimum_version = tls.min_version
    if certificate is not None:
        # Sent only when the server asks (CertificateRequest); Windows' own client never does this.
        context.load_cert_chain(certificate.cert, certificate.key, certificate.passphrase)
    return context


_CLIENT_CERTIFICATE_ALERTS = {
    "SSLV3_ALERT_BAD_CERTIFICATE": "refused our TLS client certificate (bad certificate)",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "refused our TLS client certificate (wrong purpose)",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "refused our TLS client certificate: it is revoked",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "refused our TLS client certificate: it has expired",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "refused our TLS client certificate (certificate unknown)",
    "TLSV1_ALERT_UNKNOWN_CA": "refused our TLS client certificate: it does not trust its CA",
}
_NO_CERTIFICATE = "requires a TLS client certificate; give yours with --cert FILE --key FILE"


def client_certificate_refusal(exc: BaseException | None, tls: TlsSettings | None) -> str | None:
    """What a TLS alert from the server says about our client certificate, or ``None`` when it is about
    something else. TLS 1.2 servers answer a missing certificate with a bare handshake failure."""
    if not isinstance(exc, ssl.SSLError):
        return None
    has_certificate = tls is not None and tls.has_certificate
    if exc.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
        return _NO_CERTIFICATE
    if exc.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE" and not has_certificate:
        return f"ended the handshake (handshake failure); if it {_NO_CERTIFICATE}"
    return _CLIENT_CERTIFICATE_ALERTS.get(exc.reason or "") if has_certificate else None


def silent_refusal(tls: TlsSettings | None) -> str:
    """What a connection closed in or right after the TLS handshake, without an alert, may mean: Python
    servers (pysstp among them) send no alert when they refuse a client certificate."""
    if tls is not None and tls.has_certificate:
        return (
            "closed the connection in or right after the TLS handshake; it may have refused our TLS client "
            "certificate (revoked, expired, or from a CA it does not trust)"
        )
    # An HTTPS server that is not an SSTP server drops the SSTP request this way too: name both causes.
    return (
        "closed the connection in or right after the TLS handshake, with no TLS alert and no HTTP answer: "
        "either it is not an SSTP server (check the host and the port), or it is one that requires a TLS "
        "client certificate (give yours with --cert FILE --key FILE)"
    )


def inspect_context(tls: TlsSettings) -> ssl.SSLContext:
    """A context that accepts anything: only to fetch a certificate for an error message."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = tls.min_version
    return context


def check_certificate(tls: TlsSettings, name: str, der: bytes | None) -> None:
    """The checks after the handshake: the pin, or the name when no SNI was sent. Raises
    :class:`CertificateRejected`."""
    if tls.insecure:
        return
    if der is None:
        raise CertificateRejected("the server sent no certificate")
    if tls.pin_sha256 is not None:
        if not hmac.compare_digest(hashlib.sha256(der).digest(), tls.pin_sha256):
            raise CertificateRejected("its SHA-256 fingerprint is not the one given with --pin-sha256")
        return
    if tls.no_sni and not name_matches(der, name):
        raise CertificateRejected(f"it is not valid for the name {name!r}")


def name_matches(der: bytes, name: str) -> bool:
    """Whether the DER certificate's subjectAltName covers ``name`` (see :func:`certificate_matches`)."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return False
    return certificate_matches(certificate, name)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What a user needs to decide about a certificate."""

    subject: str
    issuer: str
    not_before: str
    not_after: str
    names: tuple[str, ...]
    sha256: str

    @classmethod
    def from_der(cls, der: bytes) -> CertificateInfo:
        """Read the fields out of a DER certificate."""
        cert = x509.load_der_x509_certificate(der)
        dns_names, addresses = subject_alt_names(cert)
        names = (*dns_names, *addresses)
        return cls(
            subject=cert.subject.rfc4514_string() or "(empty)",
            issuer=cert.issuer.rfc4514_string() or "(empty)",
            not_before=f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            not_after=f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
            names=names,
            sha256=hashlib.sha256(der).hexdigest(),
        )

    def describe(self) -> str:
        """Indented lines for an error message."""
        fingerprint = ":".join(self.sha256[i : i + 2] for i in range(0, len(self.sha256), 2)).upper()
        return "\n".join(
            (
                f"  subject:  {self.subject}",
                f"  issuer:   {self.issuer}",
                f"  names:    {', '.join(self.names) or '(none)'}",
                f"  valid:    {self.not_before} to {self.not_after}",
                f"  SHA-256:  {fingerprint}",
            )
        )


def refusal_message(target: str, why: str, der: bytes | None, tls: TlsSettings) -> str:
    """The error for a refused certificate: what is wrong, the certificate, and the flags that would
    accept it."""
    lines = [f"TLS: the certificate of {target} was refused: {why}"]
    if der is None:
        lines.append("  (the certificate could not be fetched for a closer look)")
        return "\n".join(lines)
    info = CertificateInfo.from_der(der)
    lines.append(info.describe())
    lines.append(
        "If you trust this certificate (compare the fingerprint with the server's own), accept it with:"
    )
    lines.append(f"  --pin-sha256 {info.sha256}")
    if tls.pin_sha256 is None and info.issuer != info.subject:
        lines.append("or trust its issuer with --ca-file ISSUER.pem")
    return "\n".join(lines)
