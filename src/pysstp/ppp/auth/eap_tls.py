"""EAP-TLS (RFC 5216; RFC 9190 for TLS 1.3), both roles, sans-I/O.

The TLS connection, the Type-Data codec, the fragmentation and the handshake's course are the tunnel
PEAP shares (:mod:`pysstp.ppp.auth.tls_tunnel`). The authenticator drives (Start, then its flights), the
peer answers. The exchange ends with an empty Response that acknowledges the server's last flight (TLS 1.2:
its Finished; TLS 1.3: its one-byte commitment message), then EAP-Success; or with a TLS alert, its
acknowledgement and EAP-Failure.

MSK (RFC 5216 §2.3 / RFC 9190 §2.3): TLS 1.2 ``PRF(master_secret, "client EAP encryption",
client_random || server_random)``, which is the RFC 5705 exporter without context; TLS 1.3 the exporter
with label ``EXPORTER_EAP_TLS_Key_Material`` and context 0x0D. The HLAK is MSK[0:32] (docs/eap-tls.md).
"""

from __future__ import annotations

import enum
from dataclasses import KW_ONLY, dataclass, field
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from pysstp.ppp.auth.keys import EAP_MSK_SIZE, hlak_from_key_material
from pysstp.ppp.auth.tls_tunnel import (
    DEFAULT_FRAGMENT_SIZE,
    MIN_FRAGMENT_SIZE,
    TLS13,
    EapTlsData,
    TlsConnection,
    TlsIdentity,
    TlsVersion,
    TunnelPeer,
    TunnelServer,
    subject_text,
)
from pysstp.ppp.auth.verification import Verdict
from pysstp.ppp.constants import EapType

_TLS12_MSK_LABEL = b"client EAP encryption"
_TLS13_MSK_LABEL = b"EXPORTER_EAP_TLS_Key_Material"
_TLS13_MSK_CONTEXT = bytes([EapType.TLS])
_KEY_MATERIAL_SIZE = 128
"""MSK ‖ EMSK, 64 bytes each."""
COMMITMENT_MESSAGE = b"\x00"
"""RFC 9190 §2.5: the TLS 1.3 server's application data that says the handshake is over."""
UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
"""Microsoft's User Principal Name (the smart-card logon name) as an otherName SAN."""
_ASN1_UTF8_STRING = 0x0C


class IdentitySource(enum.Enum):
    """Where the server reads the user's name from the client certificate."""

    COMMON_NAME = "cn"
    SAN_EMAIL = "san-email"
    SAN_UPN = "san-upn"
    SAN_DNS = "san-dns"


@dataclass(frozen=True)
class _EapTlsSettings:
    """What both roles configure: our certificate, the CAs the other side's certificate must chain to,
    TLS bytes per EAP packet and the TLS versions."""

    identity: TlsIdentity
    trusted_cas: tuple[x509.Certificate, ...]
    _: KW_ONLY
    fragment_size: int = DEFAULT_FRAGMENT_SIZE
    min_version: TlsVersion = TlsVersion.TLS1_2
    max_version: TlsVersion = TlsVersion.TLS1_3

    _checked: ClassVar[str]
    """Whose certificate the CAs check, for the error message."""

    def __post_init__(self) -> None:
        if not self.trusted_cas:
            raise ValueError(f"EAP-TLS needs at least one CA to check {self._checked} against")
        if self.fragment_size < MIN_FRAGMENT_SIZE:
            raise ValueError(f"EAP-TLS fragment size {self.fragment_size} is below {MIN_FRAGMENT_SIZE}")


@dataclass(frozen=True)
class EapTlsServerSettings(_EapTlsSettings):
    """The authenticator's side: also the CRLs, where the user name is read, and whether it must be known.

    ``require_known_user``: the name taken from the certificate must also be a known, enabled user of the
    authentication backend (an administrator can then disable one user without revoking the
    certificate); otherwise the CA alone decides. Either way the backend is asked (a
    :class:`~pysstp.ppp.auth.verification.CertificateProof`), for the user's authorization.
    """

    _: KW_ONLY
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    identity_source: IdentitySource = IdentitySource.COMMON_NAME
    require_known_user: bool = False

    _checked: ClassVar[str] = "client certificates"


@dataclass(frozen=True)
class EapTlsPeerSettings(_EapTlsSettings):
    """The peer's side: also the name the server's EAP certificate must carry (``None``: any)."""

    _: KW_ONLY
    server_name: str | None = None

    _checked: ClassVar[str] = "the server's certificate"


def eap_tls_msk(tls: TlsConnection) -> bytes:
    """The EAP-TLS MSK of the finished handshake (64 bytes)."""
    if tls.version == TLS13:
        material = tls.export(_TLS13_MSK_LABEL, _KEY_MATERIAL_SIZE, _TLS13_MSK_CONTEXT)
    else:
        material = tls.export(_TLS12_MSK_LABEL, _KEY_MATERIAL_SIZE)
    return material[:EAP_MSK_SIZE]


def _connection(settings: EapTlsServerSettings | EapTlsPeerSettings) -> TlsConnection:
    server = isinstance(settings, EapTlsServerSettings)
    return TlsConnection(
        server=server,
        identity=settings.identity,
        trusted_cas=settings.trusted_cas,
        min_version=settings.min_version,
        max_version=settings.max_version,
        crls=settings.crls if isinstance(settings, EapTlsServerSettings) else (),
        server_name=settings.server_name if isinstance(settings, EapTlsPeerSettings) else None,
    )


def certificate_identity(certificate: x509.Certificate, source: IdentitySource) -> str | None:
    """The user name the certificate carries in ``source``, or ``None`` when it has none."""
    if source is IdentitySource.COMMON_NAME:
        names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        return names[0] if names else None
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    if source is IdentitySource.SAN_EMAIL:
        values = san.get_values_for_type(x509.RFC822Name)
    elif source is IdentitySource.SAN_DNS:
        values = san.get_values_for_type(x509.DNSName)
    else:
        values = [
            upn
            for other in san.get_values_for_type(x509.OtherName)
            if other.type_id == UPN_OID and (upn := _utf8_string(other.value)) is not None
        ]
    return values[0] if values else None


def _utf8_string(der: bytes) -> str | None:
    """The text of a DER UTF8String (short or one/two-byte long length form)."""
    if len(der) < 2 or der[0] != _ASN1_UTF8_STRING:
        return None
    length, start = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    raw = der[start : start + length]
    return raw.decode("utf-8", "replace") if len(raw) == length else None


# -- authenticator ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsAccepted:
    """The handshake is over and the certificate verified: who it names, and the keys."""

    user: str
    certificate: bytes = field(repr=False)
    """The client certificate's DER."""
    hlak: bytes = field(repr=False)
    version: str


class EapTlsServer(TunnelServer[TlsAccepted]):
    """The authenticator's EAP-TLS method: :meth:`start`, then :meth:`handle` each Response's Type-Data.

    :meth:`handle` returns the Type-Data of the next Request, the refusal :class:`Verdict` that ends EAP,
    or :class:`TlsAccepted` once the certificate is verified (the authenticator then asks whether that
    user may log in). ``identity`` is the name the peer gave in EAP Identity (for log lines only: the
    certificate decides).
    """

    method_name = "EAP-TLS"

    def __init__(self, settings: EapTlsServerSettings, identity: str) -> None:
        super().__init__(_connection(settings), settings.fragment_size, identity)
        self.settings = settings

    def _after_handshake(self) -> bytes:
        if self.tls.version != TLS13:
            return b""
        self.tls.write(COMMITMENT_MESSAGE)
        return self.tls.take_output()

    def _established(self) -> TlsAccepted | Verdict:
        certificate = self.tls.connection.get_peer_certificate(as_cryptography=True)
        assert certificate is not None  # VERIFY_FAIL_IF_NO_PEER_CERT: no handshake without one
        source = self.settings.identity_source
        name = certificate_identity(certificate, source)
        if name is None:
            return self.refuse(
                f"client certificate ({subject_text(certificate)}) has no {source.value} to name the user"
            )
        der = certificate.public_bytes(serialization.Encoding.DER)
        return TlsAccepted(name, der, hlak_from_key_material(eap_tls_msk(self.tls)), self.tls.version)


# -- peer -------------------------------------------------------------------------------------------


class EapTlsPeer(TunnelPeer):
    """The peer's EAP-TLS method: :meth:`handle` each Request's Type-Data, answer with what it returns.

    After EAP-Success, :attr:`hlak` is set only if the server proved itself: its certificate verified and
    its last flight (TLS 1.2 Finished, TLS 1.3 commitment message) received. :attr:`failure` says why not.
    """

    method_name = "EAP-TLS"
    alert_meaning = "server refused our certificate"

    def __init__(self, settings: EapTlsPeerSettings) -> None:
        super().__init__(settings.fragment_size)
        self.settings = settings
        self.hlak: bytes | None = None
        self.version = ""

    def _connect(self, start: EapTlsData) -> TlsConnection:
        return _connection(self.settings)

    def _handshake_finished(self, tls: TlsConnection) -> None:
        """The server is proven by its Finished (TLS 1.2) or by the commitment message after it (1.3)."""
        self.version = tls.version
        if self.hlak is not None:
            return
        if tls.version != TLS13 or COMMITMENT_MESSAGE in tls.read():
            self.hlak = hlak_from_key_material(eap_tls_msk(tls))
