"""EAP-TLS (RFC 5216; RFC 9190 for TLS 1.3), both roles, sans-I/O.

TLS runs in a pyOpenSSL ``Connection`` over memory BIOs: handshake records go in and out as bytes and
nothing touches a socket or a file (certificates, keys, CAs and CRLs arrive already loaded). The standard
``ssl`` module cannot export keying material, which the MSK needs.

EAP carries the TLS records in fragments (:class:`EapTlsData`): a fragment with the MORE_FRAGMENTS flag is
acknowledged by an empty packet of the other side before the next one comes. The authenticator drives
(Start, then its flights), the peer answers. The exchange ends with an empty Response that acknowledges
the server's last flight (TLS 1.2: its Finished; TLS 1.3: its one-byte commitment message), then
EAP-Success; or with a TLS alert, its acknowledgement and EAP-Failure.

MSK (RFC 5216 §2.3 / RFC 9190 §2.3): TLS 1.2 ``PRF(master_secret, "client EAP encryption",
client_random || server_random)``, which is the RFC 5705 exporter without context; TLS 1.3 the exporter
with label ``EXPORTER_EAP_TLS_Key_Material`` and context 0x0D. The HLAK is MSK[0:32] (docs/eap-tls.md).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import KW_ONLY, dataclass, field
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from pysstp.certnames import certificate_matches, subject_alt_names
from pysstp.errors import AuthError
from pysstp.ppp.auth.keys import EAP_MSK_SIZE, hlak_from_key_material
from pysstp.ppp.auth.verification import Verdict
from pysstp.ppp.constants import EapType

DEFAULT_FRAGMENT_SIZE = 1398
"""TLS bytes per EAP packet: fits a 1500-byte MRU with the EAP and EAP-TLS headers (as hostapd)."""
MIN_FRAGMENT_SIZE = 64
MAX_TLS_MESSAGE = 64 * 1024
"""Largest TLS flight we reassemble: certificate chains are a few kB; more is a peer flooding us."""

_LENGTH_FIELD = struct.Struct("!I")
_TLS12_MSK_LABEL = b"client EAP encryption"
_TLS13_MSK_LABEL = b"EXPORTER_EAP_TLS_Key_Material"
_TLS13_MSK_CONTEXT = bytes([EapType.TLS])
_KEY_MATERIAL_SIZE = 128
"""MSK ‖ EMSK, 64 bytes each."""
COMMITMENT_MESSAGE = b"\x00"
"""RFC 9190 §2.5: the TLS 1.3 server's application data that says the handshake is over."""
_TLS13 = "TLSv1.3"
UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
"""Microsoft's User Principal Name (the smart-card logon name) as an otherName SAN."""
_ASN1_UTF8_STRING = 0x0C
_PEER_ALERT = "the other end sent TLS alert"
_ALERT_PREFIX = re.compile(r"^(sslv3|tlsv1|tlsv13|tls) alert ")


PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)
"""Key types a TLS certificate of ours may have (what OpenSSL signs handshakes with)."""


class EapTlsFlags(enum.IntFlag):
    """The EAP-TLS Flags octet (RFC 5216 §3.1)."""

    LENGTH_INCLUDED = 0x80
    MORE_FRAGMENTS = 0x40
    START = 0x20


NO_FLAGS = EapTlsFlags(0)
_KNOWN_FLAGS = EapTlsFlags.LENGTH_INCLUDED | EapTlsFlags.MORE_FRAGMENTS | EapTlsFlags.START


class TlsVersion(enum.Enum):
    """The TLS versions EAP-TLS may run (older ones are not offered)."""

    TLS1_2 = "1.2"
    TLS1_3 = "1.3"

    @property
    def openssl(self) -> int:
        """OpenSSL's protocol version number."""
        return SSL.TLS1_2_VERSION if self is TlsVersion.TLS1_2 else SSL.TLS1_3_VERSION


class IdentitySource(enum.Enum):
    """Where the server reads the user's name from the client certificate."""

    COMMON_NAME = "cn"
    SAN_EMAIL = "san-email"
    SAN_UPN = "san-upn"
    SAN_DNS = "san-dns"


@dataclass(frozen=True)
class TlsIdentity:
    """A certificate, its private key and the intermediate certificates to send with it."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if self.certificate.public_key() != self.private_key.public_key():
            raise ValueError(f"the private key does not belong to {_subject_text(self.certificate)}")


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


# -- codec ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EapTlsData:
    """EAP-TLS Type-Data: Flags, the TLS Message Length when LENGTH_INCLUDED, and a fragment of TLS data.

    LENGTH_INCLUDED is never kept in ``flags``: ``message_length`` being set says it. Reserved flag bits
    are dropped on decoding (RFC 5216 §3.1: ignored on receipt).
    """

    flags: EapTlsFlags = NO_FLAGS
    message_length: int | None = None
    fragment: bytes = b""

    def encode(self) -> bytes:
        """Type-Data bytes; LENGTH_INCLUDED is set exactly when ``message_length`` is given."""
        if self.message_length is None:
            return bytes([self.flags & ~EapTlsFlags.LENGTH_INCLUDED]) + self.fragment
        flags = self.flags | EapTlsFlags.LENGTH_INCLUDED
        return bytes([flags]) + _LENGTH_FIELD.pack(self.message_length) + self.fragment

    @classmethod
    def decode(cls, data: bytes) -> EapTlsData:
        """Parse Type-Data."""
        if not data:
            raise AuthError("EAP-TLS packet without a Flags octet")
        flags = EapTlsFlags(data[0] & _KNOWN_FLAGS)
        if not flags & EapTlsFlags.LENGTH_INCLUDED:
            return cls(flags, None, data[1:])
        flags &= ~EapTlsFlags.LENGTH_INCLUDED
        if len(data) < 1 + _LENGTH_FIELD.size:
            raise AuthError("EAP-TLS packet with LENGTH_INCLUDED is too short for TLS Message Length")
        (length,) = _LENGTH_FIELD.unpack_from(data, 1)
        return cls(flags, length, data[1 + _LENGTH_FIELD.size :])

    @property
    def is_ack(self) -> bool:
        """An empty packet without flags: acknowledges a fragment, or the server's last flight."""
        return not self.flags and not self.fragment


ACK = EapTlsData()


class _Fragmenter:
    """Cuts one outgoing TLS flight into EAP-TLS fragments of at most ``size`` bytes of TLS data."""

    def __init__(self, message: bytes, size: int) -> None:
        self._rest = message
        self._size = size
        self._first = True
        self._total = len(message)

    @property
    def pending(self) -> bool:
        """More fragments follow the ones already handed out (the next packet must be an ACK)."""
        return bool(self._rest)

    def next(self) -> EapTlsData:
        piece, self._rest = self._rest[: self._size], self._rest[self._size :]
        flags = EapTlsFlags.MORE_FRAGMENTS if self._rest else NO_FLAGS
        length = self._total if self._first else None
        self._first = False
        return EapTlsData(flags, length, piece)


class _Reassembler:
    """Joins incoming fragments into one TLS flight, checking the announced TLS Message Length."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._expected: int | None = None

    def add(self, data: EapTlsData) -> bytes | None:
        """The whole flight once its last fragment arrived, else ``None`` (acknowledge and wait)."""
        if not self._parts and data.message_length is not None:
            if data.message_length > MAX_TLS_MESSAGE:
                raise AuthError(f"EAP-TLS message of {data.message_length} bytes is too long")
            self._expected = data.message_length
        self._parts.append(data.fragment)
        self._size += len(data.fragment)
        if self._size > (self._expected if self._expected is not None else MAX_TLS_MESSAGE):
            expected, self._expected, self._parts, self._size = self._expected, None, [], 0
            raise AuthError(f"EAP-TLS fragments exceed the announced length ({expected} bytes)")
        if data.flags & EapTlsFlags.MORE_FRAGMENTS:
            return None
        message = b"".join(self._parts)
        expected, self._expected, self._parts, self._size = self._expected, None, [], 0
        if expected is not None and len(message) != expected:
            raise AuthError(f"EAP-TLS message of {len(message)} bytes, {expected} announced")
        return message


# -- TLS over memory BIOs ---------------------------------------------------------------------------

_VERIFY_ERRORS = {
    SSL.X509VerificationCodes.ERR_CERT_REVOKED: "certificate revoked",
    SSL.X509VerificationCodes.ERR_CERT_HAS_EXPIRED: "certificate has expired",
    SSL.X509VerificationCodes.ERR_CERT_NOT_YET_VALID: "certificate is not yet valid",
    SSL.X509VerificationCodes.ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "not signed by a trusted CA",
    SSL.X509VerificationCodes.ERR_UNABLE_TO_GET_ISSUER_CERT: "not signed by a trusted CA",
    SSL.X509VerificationCodes.ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: "not signed by a trusted CA",
    SSL.X509VerificationCodes.ERR_DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed certificate, not a trusted CA's",
    SSL.X509VerificationCodes.ERR_SELF_SIGNED_CERT_IN_CHAIN: "chain ends in a CA that is not trusted",
    SSL.X509VerificationCodes.ERR_CERT_SIGNATURE_FAILURE: "certificate signature is invalid",
    SSL.X509VerificationCodes.ERR_INVALID_PURPOSE: "certificate not issued for this purpose "
    "(key usage or extended key usage)",
    SSL.X509VerificationCodes.ERR_INVALID_CA: "an issuer in the chain is not a CA",
    SSL.X509VerificationCodes.ERR_UNABLE_TO_GET_CRL: "no CRL for the issuing CA",
    SSL.X509VerificationCodes.ERR_CRL_HAS_EXPIRED: "the CRL has expired",
    SSL.X509VerificationCodes.ERR_CRL_NOT_YET_VALID: "the CRL is not yet valid",
    SSL.X509VerificationCodes.ERR_CRL_SIGNATURE_FAILURE: "the CRL signature is invalid",
}


def _subject_text(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


class _Tls:
    """One TLS connection over memory BIOs, with the reason of the first verification failure."""

    def __init__(self, settings: EapTlsServerSettings | EapTlsPeerSettings) -> None:
        server = isinstance(settings, EapTlsServerSettings)
        crls = settings.crls if isinstance(settings, EapTlsServerSettings) else ()
        identity = settings.identity
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(settings.min_version.openssl)
        context.set_max_proto_version(settings.max_version.openssl)
        context.use_certificate(identity.certificate)
        context.use_privatekey(identity.private_key)
        for intermediate in identity.chain:
            context.add_extra_chain_cert(intermediate)
        context.check_privatekey()
        store = context.get_cert_store()
        assert store is not None  # a fresh context always has one
        for ca in settings.trusted_cas:
            store.add_cert(crypto.X509.from_cryptography(ca))
        for crl in crls:
            store.add_crl(crl)
        if crls:
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK)
        mode = SSL.VERIFY_PEER | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if server else 0)
        context.set_verify(mode, self._verify)
        self._server_name = settings.server_name if isinstance(settings, EapTlsPeerSettings) else None
        self.verify_failure: str | None = None
        self.connection = SSL.Connection(context, None)
        if server:
            self.connection.set_accept_state()
        else:
            self.connection.set_connect_state()
        self.handshake_done = False

    def _verify(self, _conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        certificate = cert.to_cryptography()
        if not ok:
            what = _VERIFY_ERRORS.get(errno, f"X.509 verification error {errno}")
            self._note(f"{what} ({_subject_text(certificate)})")
            return False
        if (
            depth == 0
            and self._server_name is not None
            and not certificate_matches(certificate, self._server_name)
        ):
            dns_names, addresses = subject_alt_names(certificate)
            shown = ", ".join(dns_names + addresses) or "no name"
            self._note(f"certificate is not for {self._server_name!r} (it names {shown})")
            return False
        return True

    def _note(self, reason: str) -> None:
        if self.verify_failure is None:
            self.verify_failure = reason

    def advance(self, incoming: bytes) -> bytes:
        """Feed a flight, run the handshake as far as it goes, return what TLS wants sent.

        Raises :class:`TlsFailure` (with the alert to send, if any) when the handshake fails.
        """
        if incoming:
            self.connection.bio_write(incoming)
        if not self.handshake_done:
            try:
                self.connection.do_handshake()
                self.handshake_done = True
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                raise TlsFailure(self._describe(exc), self.take_output()) from None
        return self.take_output()

    def read(self) -> bytes:
        """Application data received so far (TLS 1.3: the commitment message)."""
        received = b""
        while True:
            try:
                received += self.connection.recv(MAX_TLS_MESSAGE)
            except (SSL.WantReadError, SSL.ZeroReturnError):
                return received
            except SSL.Error as exc:
                raise TlsFailure(self._describe(exc), self.take_output()) from None

    def write(self, data: bytes) -> None:
        """Send application data (TLS 1.3: the commitment message); a failure is a :class:`TlsFailure`."""
        try:
            self.connection.sendall(data)
        except SSL.Error as exc:
            raise TlsFailure(self._describe(exc), self.take_output()) from None

    def take_output(self) -> bytes:
        out = b""
        while True:
            try:
                out += self.connection.bio_read(MAX_TLS_MESSAGE)
            except SSL.WantReadError:
                return out

    def _describe(self, exc: SSL.Error) -> str:
        if self.verify_failure is not None:
            return self.verify_failure
        # OpenSSL's error queue as (library, function, reason) tuples; SysCallError carries other args.
        queue = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
        reasons = [str(entry[2]) for entry in queue if isinstance(entry, tuple) and len(entry) == 3]
        for reason in reasons:
            alert = _ALERT_PREFIX.sub("", reason)
            if alert != reason:
                return f"{_PEER_ALERT} {alert!r}"
        return ", ".join(reasons) or "TLS handshake failed"

    @property
    def version(self) -> str:
        return self.connection.get_protocol_version_name()

    def msk(self) -> bytes:
        """The EAP-TLS MSK of the finished handshake (64 bytes)."""
        if self.version == _TLS13:
            material = self.connection.export_keying_material(
                _TLS13_MSK_LABEL, _KEY_MATERIAL_SIZE, _TLS13_MSK_CONTEXT
            )
        else:
            material = self.connection.export_keying_material(_TLS12_MSK_LABEL, _KEY_MATERIAL_SIZE)
        return material[:EAP_MSK_SIZE]


class TlsFailure(Exception):
    """The TLS handshake failed: why, and the alert (possibly empty) to send to the other end."""

    def __init__(self, reason: str, alert: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.alert = alert


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


class _ServerStage(enum.Enum):
    HANDSHAKE = "handshake"
    FINAL_ACK = "final-ack"
    ALERT_ACK = "alert-ack"


@dataclass(frozen=True, slots=True)
class TlsAccepted:
    """The handshake is over and the certificate verified: who it names, and the keys."""

    user: str
    certificate: bytes = field(repr=False)
    """The client certificate's DER."""
    hlak: bytes = field(repr=False)
    version: str


class EapTlsServer:
    """The authenticator's EAP-TLS method: :meth:`start`, then :meth:`handle` each Response's Type-Data.

    :meth:`handle` returns the Type-Data of the next Request, the refusal :class:`Verdict` that ends EAP,
    or :class:`TlsAccepted` once the certificate is verified (the authenticator then asks whether that
    user may log in). ``identity`` is the name the peer gave in EAP Identity (for log lines only: the
    certificate decides).
    """

    def __init__(self, settings: EapTlsServerSettings, identity: str) -> None:
        self.settings = settings
        self._identity = identity
        self._tls = _Tls(settings)
        self._stage = _ServerStage.HANDSHAKE
        self._outgoing: _Fragmenter | None = None
        self._incoming = _Reassembler()
        self._failure = ""

    def start(self) -> bytes:
        """Type-Data of the EAP-TLS Start request."""
        return EapTlsData(EapTlsFlags.START).encode()

    def handle(self, type_data: bytes) -> bytes | Verdict | TlsAccepted:
        """Take one Response's Type-Data (may raise :class:`AuthError` when it is malformed)."""
        data = EapTlsData.decode(type_data)
        if self._outgoing is not None and self._outgoing.pending:
            if not data.is_ack:
                raise AuthError("EAP-TLS peer sent data instead of acknowledging our fragment")
            return self._outgoing.next().encode()
        if self._stage is _ServerStage.ALERT_ACK:
            return self._refuse(self._failure)
        if self._stage is _ServerStage.FINAL_ACK:
            if not data.is_ack:
                return self._refuse("peer answered our last TLS flight with data, not an acknowledgement")
            return self._accept()
        message = self._incoming.add(data)
        if message is None:
            return ACK.encode()
        try:
            out = self._tls.advance(message)
            if self._tls.handshake_done and self._tls.version == _TLS13:
                self._tls.write(COMMITMENT_MESSAGE)
                out += self._tls.take_output()
        except TlsFailure as failure:
            return self._alert(failure)
        if self._tls.handshake_done:
            self._stage = _ServerStage.FINAL_ACK
        if not out:
            return self._refuse("TLS handshake stalled: nothing to send and not finished")
        return self._send(out)

    def _send(self, flight: bytes) -> bytes:
        self._outgoing = _Fragmenter(flight, self.settings.fragment_size)
        return self._outgoing.next().encode()

    def _alert(self, failure: TlsFailure) -> bytes | Verdict:
        if self._tls.verify_failure is not None:
            reason = f"client certificate refused: {failure.reason}"
        elif failure.reason.startswith(_PEER_ALERT):
            reason = f"peer ended the EAP-TLS handshake: it {failure.reason.removeprefix('the other end ')}"
        else:
            reason = f"EAP-TLS handshake failed: {failure.reason}"
        if not failure.alert:
            return self._refuse(reason)
        self._failure = reason
        self._stage = _ServerStage.ALERT_ACK
        return self._send(failure.alert)

    def _accept(self) -> TlsAccepted | Verdict:
        certificate = self._tls.connection.get_peer_certificate(as_cryptography=True)
        assert certificate is not None  # VERIFY_FAIL_IF_NO_PEER_CERT: no handshake without one
        source = self.settings.identity_source
        name = certificate_identity(certificate, source)
        if name is None:
            return self._refuse(
                f"client certificate ({_subject_text(certificate)}) has no {source.value} to name the user"
            )
        der = certificate.public_bytes(serialization.Encoding.DER)
        return TlsAccepted(name, der, hlak_from_key_material(self._tls.msk()), self._tls.version)

    def _refuse(self, reason: str, user: str | None = None) -> Verdict:
        return Verdict(False, user or self._identity, "", reason=reason)


# -- peer -------------------------------------------------------------------------------------------


class EapTlsPeer:
    """The peer's EAP-TLS method: :meth:`handle` each Request's Type-Data, answer with what it returns.

    After EAP-Success, :attr:`hlak` is set only if the server proved itself: its certificate verified and
    its last flight (TLS 1.2 Finished, TLS 1.3 commitment message) received. :attr:`failure` says why not.
    """

    def __init__(self, settings: EapTlsPeerSettings) -> None:
        self.settings = settings
        self._tls: _Tls | None = None
        self._outgoing: _Fragmenter | None = None
        self._incoming = _Reassembler()
        self.hlak: bytes | None = None
        self.version = ""
        self.failure: str | None = None

    @property
    def started(self) -> bool:
        """The server sent Start: EAP-TLS is running."""
        return self._tls is not None

    def handle(self, type_data: bytes) -> bytes | None:
        """Type-Data of our Response, or ``None`` to stay silent (may raise :class:`AuthError`)."""
        data = EapTlsData.decode(type_data)
        if data.flags & EapTlsFlags.START:
            if self._tls is not None:
                raise AuthError("EAP-TLS Start in the middle of a handshake")
            return self._begin()
        if self._tls is None:
            raise AuthError("EAP-TLS data before Start")
        if self._outgoing is not None and self._outgoing.pending:
            if not data.is_ack:
                raise AuthError("EAP-TLS server sent data instead of acknowledging our fragment")
            return self._outgoing.next().encode()
        message = self._incoming.add(data)
        if message is None:
            return ACK.encode()
        tls = self._tls
        try:
            out = tls.advance(message)
            if tls.handshake_done:
                self._check_finished(tls)
        except TlsFailure as failure:
            self._note_failure(failure, tls)
            return self._send(failure.alert) if failure.alert else ACK.encode()
        return self._send(out) if out else ACK.encode()

    def _begin(self) -> bytes | None:
        self._tls = _Tls(self.settings)
        try:
            hello = self._tls.advance(b"")
        except TlsFailure as failure:
            self.failure = f"EAP-TLS could not start: {failure.reason}"
            return None if not failure.alert else self._send(failure.alert)
        return self._send(hello)

    def _check_finished(self, tls: _Tls) -> None:
        """The server is proven by its Finished (TLS 1.2) or by the commitment message after it (1.3)."""
        self.version = tls.version
        if self.hlak is not None:
            return
        if tls.version != _TLS13 or COMMITMENT_MESSAGE in tls.read():
            self.hlak = hlak_from_key_material(tls.msk())

    def _note_failure(self, failure: TlsFailure, tls: _Tls) -> None:
        if tls.verify_failure is not None:
            self.failure = f"server's EAP certificate refused: {failure.reason}"
        elif failure.reason.startswith(_PEER_ALERT):
            self.failure = f"server refused our certificate: {failure.reason.removeprefix('the other end ')}"
        else:
            self.failure = f"EAP-TLS handshake failed: {failure.reason}"

    def _send(self, flight: bytes) -> bytes:
        self._outgoing = _Fragmenter(flight, self.settings.fragment_size)
        return self._outgoing.next().encode()
