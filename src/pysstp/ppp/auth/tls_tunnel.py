"""TLS inside EAP, as EAP-TLS (RFC 5216) and PEAP (MS-PEAP) both carry it, sans-I/O.

TLS runs in a pyOpenSSL ``Connection`` over memory BIOs (:class:`TlsConnection`): records go in and out as
bytes and nothing touches a socket or a file (certificates, keys, CAs and CRLs arrive already loaded). The
standard ``ssl`` module cannot export keying material, which the MSK needs.

EAP carries the TLS records in fragments (:class:`EapTlsData`): a fragment with the MORE_FRAGMENTS flag
is acknowledged by an empty packet of the other side before the next one comes (RFC 5216 §2.1.5).
:class:`TlsFraming` does that for one side, the same for both methods; PEAP adds only its version number in
the low bits of the Flags octet (MS-PEAP 2.2.2), which EAP-TLS keeps zero.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from OpenSSL import SSL, crypto

from pysstp.certnames import certificate_matches, subject_alt_names
from pysstp.errors import AuthError
from pysstp.ppp.auth.verification import Verdict

DEFAULT_FRAGMENT_SIZE = 1398
"""TLS bytes per EAP packet: fits a 1500-byte MRU with the EAP and EAP-TLS headers (as hostapd)."""
MIN_FRAGMENT_SIZE = 64
MAX_TLS_MESSAGE = 64 * 1024
"""Largest TLS flight we reassemble: certificate chains are a few kB; more is a peer flooding us."""

_LENGTH_FIELD = struct.Struct("!I")
TLS13 = "TLSv1.3"
"""OpenSSL's name of TLS 1.3, as :attr:`TlsConnection.version` gives it."""
PEER_ALERT = "the other end sent TLS alert"
"""How :class:`TlsFailure` reasons begin when the other side refused the handshake."""
_ALERT_PREFIX = re.compile(r"^(sslv3|tlsv1|tlsv13|tls) alert ")
Established = TypeVar("Established")
"""What a method makes of an established tunnel (EAP-TLS: the accepted certificate)."""


PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)
"""Key types a TLS certificate of ours may have (what OpenSSL signs handshakes with)."""


class EapTlsFlags(enum.IntFlag):
    """The Flags octet of EAP-TLS (RFC 5216 §3.1) and PEAP (MS-PEAP 2.2.2, with the version below)."""

    LENGTH_INCLUDED = 0x80
    MORE_FRAGMENTS = 0x40
    START = 0x20


NO_FLAGS = EapTlsFlags(0)
_KNOWN_FLAGS = EapTlsFlags.LENGTH_INCLUDED | EapTlsFlags.MORE_FRAGMENTS | EapTlsFlags.START
VERSION_MASK = 0x07
"""PEAP's version number in the Flags octet (MS-PEAP 2.2.2); reserved, and zero, in EAP-TLS."""


class TlsVersion(enum.Enum):
    """The TLS versions a tunnel may run (older ones are not offered)."""

    TLS1_2 = "1.2"
    TLS1_3 = "1.3"

    @property
    def openssl(self) -> int:
        """OpenSSL's protocol version number."""
        return SSL.TLS1_2_VERSION if self is TlsVersion.TLS1_2 else SSL.TLS1_3_VERSION


@dataclass(frozen=True)
class TlsIdentity:
    """A certificate, its private key and the intermediate certificates to send with it."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if self.certificate.public_key() != self.private_key.public_key():
            raise ValueError(f"the private key does not belong to {subject_text(self.certificate)}")


# -- codec ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EapTlsData:
    """EAP-TLS/PEAP Type-Data: Flags (with PEAP's version), the TLS Message Length when LENGTH_INCLUDED,
    and a fragment of TLS data.

    LENGTH_INCLUDED is never kept in ``flags``: ``message_length`` being set says it. Reserved flag bits
    are dropped on decoding (RFC 5216 §3.1: ignored on receipt).
    """

    flags: EapTlsFlags = NO_FLAGS
    message_length: int | None = None
    fragment: bytes = b""
    version: int = 0

    def encode(self) -> bytes:
        """Type-Data bytes; LENGTH_INCLUDED is set exactly when ``message_length`` is given."""
        flags = (self.flags & ~EapTlsFlags.LENGTH_INCLUDED) | (self.version & VERSION_MASK)
        if self.message_length is None:
            return bytes([flags]) + self.fragment
        flags |= EapTlsFlags.LENGTH_INCLUDED
        return bytes([flags]) + _LENGTH_FIELD.pack(self.message_length) + self.fragment

    @classmethod
    def decode(cls, data: bytes) -> EapTlsData:
        """Parse Type-Data."""
        if not data:
            raise AuthError("EAP-TLS packet without a Flags octet")
        flags = EapTlsFlags(data[0] & _KNOWN_FLAGS)
        version = data[0] & VERSION_MASK
        if not flags & EapTlsFlags.LENGTH_INCLUDED:
            return cls(flags, None, data[1:], version)
        flags &= ~EapTlsFlags.LENGTH_INCLUDED
        if len(data) < 1 + _LENGTH_FIELD.size:
            raise AuthError("EAP-TLS packet with LENGTH_INCLUDED is too short for TLS Message Length")
        (length,) = _LENGTH_FIELD.unpack_from(data, 1)
        return cls(flags, length, data[1 + _LENGTH_FIELD.size :], version)

    @property
    def is_ack(self) -> bool:
        """An empty packet without flags: acknowledges a fragment, or the server's last flight."""
        return not self.flags and not self.fragment


@dataclass(frozen=True, slots=True)
class Flight:
    """A whole TLS flight of the other side, reassembled from its fragments."""

    data: bytes


class TlsFraming:
    """One side's fragmentation (RFC 5216 §2.1.5): cuts our flights into fragments of at most
    ``fragment_size`` TLS bytes, joins the other side's, and acknowledges in both directions.

    ``version`` goes into every packet's Flags octet (PEAP's version; 0 for EAP-TLS).
    """

    def __init__(self, fragment_size: int, version: int = 0) -> None:
        self.fragment_size = fragment_size
        self.version = version
        self._rest = b""
        self._first = False
        self._total = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._expected: int | None = None

    @property
    def ack(self) -> bytes:
        """Type-Data of an acknowledgement (an empty packet without flags)."""
        return EapTlsData(version=self.version).encode()

    @property
    def sending(self) -> bool:
        """More fragments of our flight follow the ones handed out (the next packet must be an ACK)."""
        return bool(self._rest)

    def send(self, flight: bytes) -> bytes:
        """Type-Data of the first fragment of ``flight`` (the rest go out as the other side acks)."""
        self._rest, self._first, self._total = flight, True, len(flight)
        return self._next()

    def receive(self, data: EapTlsData) -> bytes | Flight:
        """Take the other side's packet: the Type-Data to answer with at once (our next fragment, or the
        ACK of one of theirs), or the :class:`Flight` it completed. Raises :class:`AuthError` for data
        where an ACK belongs and for fragments that disagree with their announced length."""
        if self._rest:
            if not data.is_ack:
                raise AuthError("EAP-TLS data came where the acknowledgement of our fragment belongs")
            return self._next()
        flight = self._reassemble(data)
        return self.ack if flight is None else Flight(flight)

    def _next(self) -> bytes:
        piece, self._rest = self._rest[: self.fragment_size], self._rest[self.fragment_size :]
        flags = EapTlsFlags.MORE_FRAGMENTS if self._rest else NO_FLAGS
        length = self._total if self._first else None
        self._first = False
        return EapTlsData(flags, length, piece, self.version).encode()

    def _reassemble(self, data: EapTlsData) -> bytes | None:
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


def subject_text(certificate: x509.Certificate) -> str:
    """A certificate's subject for a log line."""
    return certificate.subject.rfc4514_string() or "(empty subject)"


class TlsConnection:
    """One TLS connection over memory BIOs, with the reason of the first verification failure.

    ``identity``: our certificate (a server always has one; a PEAP peer has none). ``trusted_cas``: what
    the other side's certificate must chain to; a server without them asks for no client certificate
    (PEAP), with them it insists on one (EAP-TLS). ``server_name``: the name the server's certificate
    must carry (peer only; ``None``: any).
    """

    def __init__(
        self,
        *,
        server: bool,
        identity: TlsIdentity | None,
        trusted_cas: tuple[x509.Certificate, ...],
        min_version: TlsVersion,
        max_version: TlsVersion,
        crls: tuple[x509.CertificateRevocationList, ...] = (),
        server_name: str | None = None,
    ) -> None:
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(min_version.openssl)
        context.set_max_proto_version(max_version.openssl)
        if identity is not None:
            context.use_certificate(identity.certificate)
            context.use_privatekey(identity.private_key)
            for intermediate in identity.chain:
                context.add_extra_chain_cert(intermediate)
            context.check_privatekey()
        store = context.get_cert_store()
        assert store is not None  # a fresh context always has one
        for ca in trusted_cas:
            store.add_cert(crypto.X509.from_cryptography(ca))
        for crl in crls:
            store.add_crl(crl)
        if crls:
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK)
        if server and not trusted_cas:
            context.set_verify(SSL.VERIFY_NONE)
        else:
            mode = SSL.VERIFY_PEER | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if server else 0)
            context.set_verify(mode, self._verify)
        self._server_name = server_name
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
            self._note(f"{what} ({subject_text(certificate)})")
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
        """Application data received so far."""
        received = b""
        while True:
            try:
                received += self.connection.recv(MAX_TLS_MESSAGE)
            except (SSL.WantReadError, SSL.ZeroReturnError):
                return received
            except SSL.Error as exc:
                raise TlsFailure(self._describe(exc), self.take_output()) from None

    def write(self, data: bytes) -> None:
        """Send application data; a failure is a :class:`TlsFailure`."""
        try:
            self.connection.sendall(data)
        except SSL.Error as exc:
            raise TlsFailure(self._describe(exc), self.take_output()) from None

    def seal(self, data: bytes) -> bytes:
        """The TLS records that carry ``data`` (application data of an established tunnel)."""
        self.write(data)
        return self.take_output()

    def open(self, records: bytes) -> bytes:
        """The application data in ``records`` (a whole flight of the other side; an empty one, such as
        an acknowledgement where data belongs, carries none)."""
        if records:
            self.connection.bio_write(records)
        return self.read()

    def take_output(self) -> bytes:
        """What TLS wants sent."""
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
                return f"{PEER_ALERT} {alert!r}"
        return ", ".join(reasons) or "TLS handshake failed"

    @property
    def version(self) -> str:
        """The negotiated TLS version's name (``TLSv1.2``, ``TLSv1.3``)."""
        return self.connection.get_protocol_version_name()

    def export(self, label: bytes, size: int, context: bytes | None = None) -> bytes:
        """Keying material of the finished handshake (RFC 5705; for TLS 1.2 without a context this is
        ``PRF(master_secret, label, client_random || server_random)``, RFC 5216 §2.3)."""
        return self.connection.export_keying_material(label, size, context)


class TlsFailure(Exception):
    """The TLS handshake failed: why, and the alert (possibly empty) to send to the other end."""

    def __init__(self, reason: str, alert: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.alert = alert


# -- the handshake inside EAP, both roles ------------------------------------------------------------


class _ServerStage(enum.Enum):
    HANDSHAKE = "handshake"
    FINAL_ACK = "final-ack"
    ALERT_ACK = "alert-ack"
    TUNNEL = "tunnel"


class TunnelServer(Generic[Established]):
    """The authenticator's half of a TLS handshake inside EAP: Start, then :meth:`handle` each Response's
    Type-Data until the peer acknowledged our last flight; then the method takes over
    (:meth:`_established`, and :meth:`_tunnel_flight` for what comes through the tunnel).

    :meth:`handle` returns the Type-Data of the next Request, the refusal :class:`Verdict` that ends EAP,
    or what the method makes of the established tunnel. ``identity`` is the name the peer gave in EAP
    Identity (the refusals name it).
    """

    method_name: ClassVar[str]

    def __init__(self, tls: TlsConnection, fragment_size: int, identity: str, version: int = 0) -> None:
        self.tls = tls
        self.framing = TlsFraming(fragment_size, version)
        self.identity = identity
        self._stage = _ServerStage.HANDSHAKE
        self._failure = ""

    def start(self) -> bytes:
        """Type-Data of the Start request."""
        return EapTlsData(EapTlsFlags.START, version=self.framing.version).encode()

    def handle(self, type_data: bytes) -> bytes | Verdict | Established:
        """Take one Response's Type-Data (may raise :class:`AuthError` when it is malformed)."""
        data = EapTlsData.decode(type_data)
        refusal = self._check(data)
        if refusal is not None:
            return self.refuse(refusal)
        received = self.framing.receive(data)
        if isinstance(received, bytes):
            return received
        if self._stage is _ServerStage.ALERT_ACK:
            return self.refuse(self._failure)
        if self._stage is _ServerStage.FINAL_ACK:
            if not data.is_ack:
                return self.refuse("peer answered our last TLS flight with data, not an acknowledgement")
            self._stage = _ServerStage.TUNNEL
            return self._established()
        if self._stage is _ServerStage.TUNNEL:
            return self._tunnel_flight(received.data)
        try:
            out = self.tls.advance(received.data)
            if self.tls.handshake_done:
                out += self._after_handshake()
        except TlsFailure as failure:
            return self._alert(failure)
        if self.tls.handshake_done:
            self._stage = _ServerStage.FINAL_ACK
        if not out:
            return self.refuse("TLS handshake stalled: nothing to send and not finished")
        return self.framing.send(out)

    def refuse(self, reason: str, user: str | None = None) -> Verdict:
        """The refusal that ends EAP."""
        return Verdict(False, user or self.identity, "", reason=reason)

    def _alert(self, failure: TlsFailure) -> bytes | Verdict:
        name = self.method_name
        if self.tls.verify_failure is not None:
            reason = f"client certificate refused: {failure.reason}"
        elif failure.reason.startswith(PEER_ALERT):
            reason = f"peer ended the {name} handshake: it {failure.reason.removeprefix('the other end ')}"
        else:
            reason = f"{name} handshake failed: {failure.reason}"
        if not failure.alert:
            return self.refuse(reason)
        self._failure = reason
        self._stage = _ServerStage.ALERT_ACK
        return self.framing.send(failure.alert)

    # -- for the methods ---------------------------------------------------------------------------

    def _check(self, data: EapTlsData) -> str | None:
        """Why a Response cannot be taken (PEAP: a version we do not speak), or ``None``."""
        return None

    def _after_handshake(self) -> bytes:
        """Records to send with our last handshake flight (TLS 1.3 EAP-TLS: the commitment message)."""
        return b""

    def _established(self) -> bytes | Verdict | Established:
        raise NotImplementedError

    def _tunnel_flight(self, records: bytes) -> bytes | Verdict | Established:
        """A flight of the peer after the handshake; methods that carry nothing in the tunnel refuse it."""
        return self.refuse(f"peer sent {self.method_name} data after the handshake was over")


class TunnelPeer:
    """The peer's half of a TLS handshake inside EAP: :meth:`handle` each Request's Type-Data, answer
    with what it returns. The method makes the connection when Start arrives (:meth:`_connect`) and
    learns when the handshake is over (:meth:`_handshake_finished`); once it sets ``tunnel_open``, the
    server's flights go to :meth:`_tunnel_flight`. :attr:`failure` says why the handshake failed.
    """

    method_name: ClassVar[str]
    alert_meaning: ClassVar[str]
    """What the server's TLS alert tells the user (EAP-TLS: that our certificate was refused)."""

    def __init__(self, fragment_size: int, version: int = 0) -> None:
        self.tls: TlsConnection | None = None
        self.framing = TlsFraming(fragment_size, version)
        self.tunnel_open = False
        self.failure: str | None = None

    @property
    def started(self) -> bool:
        """The server sent Start: the method is running."""
        return self.tls is not None

    def handle(self, type_data: bytes) -> bytes | None:
        """Type-Data of our Response, or ``None`` to stay silent (may raise :class:`AuthError`)."""
        data = EapTlsData.decode(type_data)
        name = self.method_name
        if data.flags & EapTlsFlags.START:
            if self.tls is not None:
                raise AuthError(f"{name} Start in the middle of a handshake")
            return self._begin(data)
        if self.tls is None:
            raise AuthError(f"{name} data before Start")
        received = self.framing.receive(data)
        if isinstance(received, bytes):
            return received
        tls = self.tls
        if self.tunnel_open:
            return self._tunnel_flight(tls, received.data)
        try:
            out = tls.advance(received.data)
            if tls.handshake_done:
                self._handshake_finished(tls)
        except TlsFailure as failure:
            self._note_failure(failure, tls)
            return self.framing.send(failure.alert) if failure.alert else self.framing.ack
        return self.framing.send(out) if out else self.framing.ack

    def _begin(self, data: EapTlsData) -> bytes | None:
        self.tls = self._connect(data)
        try:
            hello = self.tls.advance(b"")
        except TlsFailure as failure:
            self.failure = f"{self.method_name} could not start: {failure.reason}"
            return None if not failure.alert else self.framing.send(failure.alert)
        return self.framing.send(hello)

    def _note_failure(self, failure: TlsFailure, tls: TlsConnection) -> None:
        name = self.method_name
        if tls.verify_failure is not None:
            self.failure = f"server's EAP certificate refused: {failure.reason}"
        elif failure.reason.startswith(PEER_ALERT):
            self.failure = f"{self.alert_meaning}: {failure.reason.removeprefix('the other end ')}"
        else:
            self.failure = f"{name} handshake failed: {failure.reason}"

    # -- for the methods ---------------------------------------------------------------------------

    def _connect(self, start: EapTlsData) -> TlsConnection:
        raise NotImplementedError

    def _handshake_finished(self, tls: TlsConnection) -> None:
        raise NotImplementedError

    def _tunnel_flight(self, tls: TlsConnection, records: bytes) -> bytes | None:
        raise NotImplementedError
