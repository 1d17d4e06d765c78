"""PEAP version 0 with inner EAP-MSCHAPv2, as Windows runs it (MS-PEAP), both roles, sans-I/O.

The outer handshake is the TLS tunnel EAP-TLS uses too (:mod:`pysstp.ppp.auth.tls_tunnel`), with PEAP's
version (0) in the Flags octet and no client certificate. Through the tunnel runs inner EAP in PEAPv0's
form: the inner packets of the method go without their EAP header (Type and Type-Data only; the outer
header's Code and Identifier stand for theirs), except the Extensions packets (type 33), which keep it
(MS-PEAP 2.2.7, 2.2.8). The server asks Identity, then runs EAP-MSCHAPv2 (its inner proof goes to the
backend as any EAP-MSCHAPv2 proof does); after the peer acknowledged the MS-CHAPv2 Success or Failure
request, an Extensions Request carries the Result TLV and, on success, the Crypto-Binding TLV; the peer
answers with its own, and outer EAP-Success or EAP-Failure ends the method.

Crypto binding (MS-PEAP 3.1.5.5): the Compound MAC is HMAC-SHA1 keyed with the CMK over the 60-byte
Crypto-Binding TLV (MAC zeroed) and the EAP type 25; the CMK and IPMK come from the Tunnel Key (the outer
TLS key material) and the inner method's ISK (:func:`~pysstp.ppp.auth.keys.peap_compound_keys`). Both
sides check the other's MAC; the server insists on the binding. The MSK is the Compound Session Key's
first 64 bytes (:func:`~pysstp.ppp.auth.keys.peap_msk`), and the HLAK its first 32 (docs/peap.md).

MS-PEAP's keys come from the TLS 1.2 PRF, so the tunnel runs TLS 1.2.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass, field, replace

from cryptography import x509

from pysstp.errors import AuthError
from pysstp.ppp.auth.base import encode_text, with_keys
from pysstp.ppp.auth.chap import decode_value_name, encode_value_name
from pysstp.ppp.auth.eap_mschapv2 import EapMsChapV2Data, EapMsChapV2Peer
from pysstp.ppp.auth.eap_packet import EapPacket
from pysstp.ppp.auth.keys import (
    EAP_MSK_SIZE,
    PEAP_TUNNEL_KEY_LABEL,
    PEAP_TUNNEL_KEY_SIZE,
    eap_mschapv2_msk,
    hlak_from_key_material,
    peap_compound_keys,
    peap_msk,
)
from pysstp.ppp.auth.mschapv2_core import MUTUAL_AUTHENTICATION_FAILED, MsChapV2Client, MsChapV2Server
from pysstp.ppp.auth.tls_tunnel import (
    DEFAULT_FRAGMENT_SIZE,
    MIN_FRAGMENT_SIZE,
    EapTlsData,
    TlsConnection,
    TlsFailure,
    TlsIdentity,
    TlsVersion,
    TunnelPeer,
    TunnelServer,
)
from pysstp.ppp.auth.verification import MsChapV2Proof, Verdict
from pysstp.ppp.constants import EapCode, EapType, MsChapV2OpCode
from pysstp.randomness import RandomBytes

PEAP_VERSION = 0
"""The one PEAP version we speak (Windows' PEAPv0, MS-PEAP 2.2.2)."""
INNER_METHOD = EapType.MSCHAP_V2
"""The one inner method we run."""
_TLS_VERSION = TlsVersion.TLS1_2

_EAP_HEADER_SIZE = 4
_TLV_HEADER = struct.Struct("!HH")
_TLV_MANDATORY = 0x8000
_TLV_TYPE_MASK = 0x3FFF
_RESULT_SIZE = 2
NONCE_SIZE = 32
COMPOUND_MAC_SIZE = 20
_BINDING_HEAD = struct.Struct("!BBBB")
_BINDING_SIZE = _BINDING_HEAD.size + NONCE_SIZE + COMPOUND_MAC_SIZE
"""56: the Crypto-Binding TLV's Value (MS-PEAP 2.2.8.1.1)."""


class TlvType(enum.IntEnum):
    """TLVs of the Extensions method that PEAPv0 uses (MS-PEAP 2.2.8)."""

    RESULT = 3
    CRYPTO_BINDING = 12


class ResultStatus(enum.IntEnum):
    """The Result TLV's Status (MS-PEAP 2.2.8.1.2)."""

    SUCCESS = 1
    FAILURE = 2


class BindingSubType(enum.IntEnum):
    """The Crypto-Binding TLV's SubType."""

    REQUEST = 0
    RESPONSE = 1


class TlvError(AuthError):
    """A malformed or unexpected PEAP TLV."""


# -- TLV codec --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CryptoBinding:
    """The Crypto-Binding TLV (MS-PEAP 2.2.8.1.1)."""

    subtype: BindingSubType
    nonce: bytes = field(repr=False)
    compound_mac: bytes = field(default=bytes(COMPOUND_MAC_SIZE), repr=False)
    version: int = PEAP_VERSION
    received_version: int = PEAP_VERSION

    def encode(self) -> bytes:
        """The whole TLV (60 bytes); its M bit is 0, as MS-PEAP requires."""
        value = (
            _BINDING_HEAD.pack(0, self.version, self.received_version, self.subtype)
            + self.nonce
            + self.compound_mac
        )
        return _TLV_HEADER.pack(TlvType.CRYPTO_BINDING, len(value)) + value

    @classmethod
    def decode(cls, value: bytes) -> CryptoBinding:
        """Parse the TLV's Value."""
        if len(value) != _BINDING_SIZE:
            raise TlvError(f"Crypto-Binding TLV of {len(value)} bytes, not {_BINDING_SIZE}")
        _reserved, version, received_version, subtype = _BINDING_HEAD.unpack_from(value)
        try:
            kind = BindingSubType(subtype)
        except ValueError:
            raise TlvError(f"Crypto-Binding TLV with unknown SubType {subtype}") from None
        nonce_end = _BINDING_HEAD.size + NONCE_SIZE
        return cls(kind, value[_BINDING_HEAD.size : nonce_end], value[nonce_end:], version, received_version)

    def signed(self, cmk: bytes) -> CryptoBinding:
        """This TLV with its Compound MAC: HMAC-SHA1(CMK, TLV with the MAC zeroed | 25) (MS-PEAP 3.1.5.5.1;
        PEAPv0 has no outer TLVs to add)."""
        blank = replace(self, compound_mac=bytes(COMPOUND_MAC_SIZE)).encode()
        mac = hmac.new(cmk, blank + bytes([EapType.PEAP]), hashlib.sha1).digest()
        return replace(self, compound_mac=mac)


@dataclass(frozen=True, slots=True)
class Extensions:
    """The Type-Data of an Extensions packet (type 33): the Result TLV, and the Crypto-Binding TLV."""

    result: ResultStatus
    binding: CryptoBinding | None = None

    def encode(self) -> bytes:
        """Result TLV (mandatory), then the Crypto-Binding TLV if any."""
        result = _TLV_HEADER.pack(_TLV_MANDATORY | TlvType.RESULT, _RESULT_SIZE) + struct.pack(
            "!H", self.result
        )
        return result + (self.binding.encode() if self.binding is not None else b"")

    @classmethod
    def decode(cls, data: bytes) -> Extensions:
        """Parse the TLVs; unknown optional TLVs are skipped, unknown mandatory ones refused (MS-PEAP
        2.2.8). Raises only :class:`TlvError`."""
        result: ResultStatus | None = None
        binding: CryptoBinding | None = None
        offset = 0
        while offset < len(data):
            if len(data) - offset < _TLV_HEADER.size:
                raise TlvError(f"{len(data) - offset} bytes after the last TLV, too few for a TLV header")
            raw_type, length = _TLV_HEADER.unpack_from(data, offset)
            start = offset + _TLV_HEADER.size
            value, offset = data[start : start + length], start + length
            if len(value) != length:
                raise TlvError(f"TLV of {length} bytes announced, {len(value)} present")
            tlv_type = raw_type & _TLV_TYPE_MASK
            if tlv_type == TlvType.RESULT:
                if result is not None:
                    raise TlvError("two Result TLVs")
                result = _result(value)
            elif tlv_type == TlvType.CRYPTO_BINDING:
                if binding is not None:
                    raise TlvError("two Crypto-Binding TLVs")
                binding = CryptoBinding.decode(value)
            elif raw_type & _TLV_MANDATORY:
                raise TlvError(f"mandatory TLV of unknown type {tlv_type}")
        if result is None:
            raise TlvError("Extensions packet without a Result TLV")
        return cls(result, binding)


def _result(value: bytes) -> ResultStatus:
    if len(value) != _RESULT_SIZE:
        raise TlvError(f"Result TLV of {len(value)} bytes, not {_RESULT_SIZE}")
    status = int.from_bytes(value, "big")
    try:
        return ResultStatus(status)
    except ValueError:
        raise TlvError(f"Result TLV with unknown Status {status}") from None


# -- PEAPv0's inner EAP -----------------------------------------------------------------------------


_UNCOMPRESSED = (EapType.EXTENSIONS, EapType.EXPANDED, EapType.IDENTITY)
"""Inner types sent with their EAP header: the Extensions method, the Capabilities Negotiation and SoH
methods (vendor types; MS-PEAP 3.1.5.6), and Identity as FreeRADIUS sends it."""


def inner_packet(data: bytes, code: EapCode) -> EapPacket:
    """The inner EAP packet in ``data`` (decrypted): whole when it carries its own header (see
    :data:`_UNCOMPRESSED`), else Type and Type-Data only (MS-PEAP 3.1.5.6)."""
    if (
        len(data) > _EAP_HEADER_SIZE
        and data[0] == code
        and int.from_bytes(data[2:4], "big") == len(data)
        and data[_EAP_HEADER_SIZE] in _UNCOMPRESSED
    ):
        return EapPacket.decode(data)
    if not data:
        raise AuthError("empty inner EAP packet in the PEAP tunnel")
    return EapPacket(code, 0, data[0], data[1:])


def _method_data(eap_type: int, data: bytes) -> bytes:
    """An inner method packet as PEAPv0 sends it: without the EAP header."""
    return bytes([eap_type]) + data


# -- settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeapServerSettings:
    """The authenticator's side: the certificate the outer TLS shows (no client certificate is asked)."""

    identity: TlsIdentity
    fragment_size: int = DEFAULT_FRAGMENT_SIZE

    def __post_init__(self) -> None:
        if self.fragment_size < MIN_FRAGMENT_SIZE:
            raise ValueError(f"PEAP fragment size {self.fragment_size} is below {MIN_FRAGMENT_SIZE}")


@dataclass(frozen=True)
class PeapPeerSettings:
    """The peer's side: the CAs the server's certificate must chain to, and the name it must carry
    (``None``: any)."""

    trusted_cas: tuple[x509.Certificate, ...]
    server_name: str | None = None
    fragment_size: int = DEFAULT_FRAGMENT_SIZE

    def __post_init__(self) -> None:
        if not self.trusted_cas:
            raise ValueError("PEAP needs at least one CA to check the server's certificate against")


@dataclass(frozen=True, slots=True)
class _TunnelKeys:
    """What the Crypto-Binding TLV and the MSK come from, once the inner method's keys are known."""

    ipmk: bytes = field(repr=False)
    cmk: bytes = field(repr=False)

    @classmethod
    def derive(cls, tls: TlsConnection, inner_session_key: bytes) -> _TunnelKeys:
        tunnel_key = tls.export(PEAP_TUNNEL_KEY_LABEL, PEAP_TUNNEL_KEY_SIZE)
        ipmk, cmk = peap_compound_keys(tunnel_key, inner_session_key)
        return cls(ipmk, cmk)

    @property
    def hlak(self) -> bytes:
        return hlak_from_key_material(peap_msk(self.ipmk))


# -- authenticator ----------------------------------------------------------------------------------


class _Stage(enum.Enum):
    INNER_IDENTITY = "inner-identity"
    INNER_METHOD = "inner-method"
    ASKING = "asking"
    INNER_RESULT = "inner-result"
    EXTENSIONS = "extensions"


@dataclass(frozen=True, slots=True)
class PeapQuestion:
    """The inner EAP-MSCHAPv2 Response arrived: the backend must check it for ``user``."""

    user: str
    proof: MsChapV2Proof


class PeapServer(TunnelServer[PeapQuestion]):
    """The authenticator's PEAP method: :meth:`start`, then :meth:`respond` to each Response's Type-Data
    and :meth:`answer` the :class:`PeapQuestion` it asks.

    Both give the Type-Data of the next Request or the :class:`Verdict` that ends EAP (a success carries
    the HLAK). ``identifier`` is the one the next Request will carry (MS-CHAPv2-ID follows it, as in
    plain EAP-MSCHAPv2; the Extensions packet's header takes it).
    """

    method_name = "PEAP"

    def __init__(
        self, settings: PeapServerSettings, identity: str, name: str, random_bytes: RandomBytes
    ) -> None:
        tls = TlsConnection(
            server=True,
            identity=settings.identity,
            trusted_cas=(),
            min_version=_TLS_VERSION,
            max_version=_TLS_VERSION,
        )
        super().__init__(tls, settings.fragment_size, identity, PEAP_VERSION)
        self._name = name
        self._random_bytes = random_bytes
        self._inner = _Stage.INNER_IDENTITY
        self._identifier = 0
        self._mschapv2: MsChapV2Server | None = None
        self._ms_id = 0
        self._verdict: Verdict | None = None
        self._keys: _TunnelKeys | None = None
        self._nonce = b""

    def respond(self, type_data: bytes, identifier: int) -> bytes | Verdict | PeapQuestion:
        """Take one Response's Type-Data (may raise :class:`AuthError` when it is malformed)."""
        self._identifier = identifier
        return self.handle(type_data)

    def answer(self, verdict: Verdict, identifier: int) -> bytes:
        """The backend's verdict on the inner proof: the MS-CHAPv2 Success or Failure request."""
        assert self._mschapv2 is not None  # asked only after the Challenge
        self._identifier = identifier
        verdict = self._mschapv2.complete(with_keys(verdict, keyed=True))
        self._verdict = verdict
        self._inner = _Stage.INNER_RESULT
        opcode = MsChapV2OpCode.SUCCESS if verdict.success else MsChapV2OpCode.FAILURE
        data = EapMsChapV2Data(opcode, self._ms_id, encode_text(verdict.message)).encode()
        return self._seal(_method_data(INNER_METHOD, data))

    def _check(self, data: EapTlsData) -> str | None:
        if data.version != PEAP_VERSION:
            return f"peer speaks PEAP version {data.version}; pysstp speaks PEAPv0 only"
        return None

    def _seal(self, inner: bytes) -> bytes:
        return self.framing.send(self.tls.seal(inner))

    def _established(self) -> bytes | Verdict:
        return self._seal(_method_data(EapType.IDENTITY, b""))

    def _tunnel_flight(self, records: bytes) -> bytes | Verdict | PeapQuestion:
        try:
            inner = inner_packet(self.tls.open(records), EapCode.RESPONSE)
        except TlsFailure as failure:
            return self.refuse(f"PEAP tunnel failed: {failure.reason}")
        except AuthError as exc:
            return self.refuse(f"peer sent a malformed inner EAP packet in PEAP ({exc})")
        if inner.type == EapType.NAK and self._inner is _Stage.INNER_METHOD:
            asked = ", ".join(str(t) for t in inner.data) or "nothing"
            return self.refuse(f"peer refused EAP-MSCHAPv2 inside PEAP (it asked for EAP types {asked})")
        try:
            if self._inner is _Stage.INNER_IDENTITY and inner.type == EapType.IDENTITY:
                return self._challenge()
            if self._inner is _Stage.INNER_METHOD and inner.type == INNER_METHOD:
                return self._on_response(EapMsChapV2Data.decode(inner.data))
            if self._inner is _Stage.INNER_RESULT and inner.type == INNER_METHOD:
                return self._on_acknowledgement(EapMsChapV2Data.decode(inner.data))
            if self._inner is _Stage.EXTENSIONS and inner.type == EapType.EXTENSIONS:
                return self._on_extensions(Extensions.decode(inner.data))
        except TlvError as exc:
            return self.refuse(f"peer sent a malformed PEAP TLV ({exc})")
        except AuthError as exc:
            return self.refuse(f"peer sent a malformed inner EAP-MSCHAPv2 packet in PEAP ({exc})")
        return self.refuse(f"peer sent inner EAP type {inner.type} in PEAP where {self._inner.value} belongs")

    def _challenge(self) -> bytes:
        """The inner EAP-MSCHAPv2 Challenge. The inner Identity is not used: the Response's Name is the
        one its NT-Response is computed with (RFC 2759 §8), so that is the user the backend checks."""
        self._mschapv2 = MsChapV2Server(self._random_bytes)
        self._ms_id = self._identifier
        payload = encode_value_name(self._mschapv2.challenge, self._name)
        self._inner = _Stage.INNER_METHOD
        data = EapMsChapV2Data(MsChapV2OpCode.CHALLENGE, self._ms_id, payload).encode()
        return self._seal(_method_data(INNER_METHOD, data))

    def _on_response(self, ms: EapMsChapV2Data) -> bytes | Verdict | PeapQuestion:
        assert self._mschapv2 is not None  # made with the Challenge
        if ms.opcode != MsChapV2OpCode.RESPONSE or ms.ms_id is None:
            return self.refuse(f"peer answered the inner MS-CHAPv2 Challenge with OpCode {ms.opcode}")
        value, name = decode_value_name(ms.payload)
        self._ms_id = ms.ms_id
        proof = self._mschapv2.proof(ms.ms_id, value)
        if isinstance(proof, Verdict):
            return self.answer(replace(proof, user=name), self._identifier)
        self._inner = _Stage.ASKING
        return PeapQuestion(name, proof)

    def _on_acknowledgement(self, ms: EapMsChapV2Data) -> bytes | Verdict:
        verdict = self._verdict
        assert verdict is not None  # set with the Success/Failure request
        expected = MsChapV2OpCode.SUCCESS if verdict.success else MsChapV2OpCode.FAILURE
        if ms.opcode != expected:
            return self.refuse(
                f"peer answered the inner MS-CHAPv2 {expected.name.title()} with OpCode {ms.opcode}",
                verdict.user,
            )
        self._inner = _Stage.EXTENSIONS
        if not verdict.success:
            return self._seal(self._extensions(Extensions(ResultStatus.FAILURE)))
        self._keys = _TunnelKeys.derive(self.tls, verdict.hlak)
        self._nonce = self._random_bytes(NONCE_SIZE)
        binding = CryptoBinding(BindingSubType.REQUEST, self._nonce).signed(self._keys.cmk)
        return self._seal(self._extensions(Extensions(ResultStatus.SUCCESS, binding)))

    def _extensions(self, extensions: Extensions) -> bytes:
        return EapPacket(EapCode.REQUEST, self._identifier, EapType.EXTENSIONS, extensions.encode()).encode()

    def _on_extensions(self, extensions: Extensions) -> Verdict:
        verdict = self._verdict
        assert verdict is not None  # the Extensions request follows the inner result
        if not verdict.success:
            return verdict
        user = verdict.user
        binding = extensions.binding
        if extensions.result is not ResultStatus.SUCCESS:
            reason = "peer answered with a Result TLV Failure: it did not accept our Crypto-Binding TLV"
            return self.refuse(reason, user)
        if binding is None:
            return self.refuse(
                "peer sent no Crypto-Binding TLV; PEAP without crypto binding is refused", user
            )
        assert self._keys is not None  # derived with the request
        problem = _binding_problem(binding, BindingSubType.RESPONSE, self._keys.cmk)
        if problem is None and binding.nonce != self._nonce:
            problem = "its nonce is not the one we sent"
        if problem is not None:
            return self.refuse(f"peer's Crypto-Binding TLV is wrong: {problem}", user)
        message = f"PEAP with EAP-MSCHAPv2 ({self.tls.version})"
        return Verdict(True, user, message, hlak=self._keys.hlak)


def _binding_problem(binding: CryptoBinding, subtype: BindingSubType, cmk: bytes) -> str | None:
    """Why a received Crypto-Binding TLV does not hold (MS-PEAP 3.2.5.3, 3.3.5.3), or ``None``."""
    if binding.subtype is not subtype:
        return f"SubType {binding.subtype.name.title()} where {subtype.name.title()} belongs"
    if binding.version != PEAP_VERSION or binding.received_version != PEAP_VERSION:
        return f"version {binding.version}/{binding.received_version}, not PEAPv0"
    if not hmac.compare_digest(binding.signed(cmk).compound_mac, binding.compound_mac):
        return "its Compound MAC does not match (not the same TLS tunnel and inner keys: a relay?)"
    return None


# -- peer -------------------------------------------------------------------------------------------


class PeapPeer(TunnelPeer):
    """The peer's PEAP method: :meth:`handle` each Request's Type-Data, answer with what it returns.

    :attr:`hlak` is set once the server proved itself three times: its certificate verified in the
    outer TLS, its S= value in the inner MS-CHAPv2, and its Crypto-Binding TLV (when it sends one;
    without it, MS-PEAP 3.1.5.7's keys of the outer TLS alone). :attr:`abort` names a reason to give up
    at once (the server failed one of those checks); :meth:`refusal` says why an EAP-Failure came.
    """

    method_name = "PEAP"
    alert_meaning = "server refused the PEAP handshake"

    def __init__(
        self, settings: PeapPeerSettings, username: str, password: str, random_bytes: RandomBytes
    ) -> None:
        super().__init__(settings.fragment_size, PEAP_VERSION)
        self.settings = settings
        self._mschapv2 = EapMsChapV2Peer(MsChapV2Client(username, password, random_bytes, eap_mschapv2_msk))
        self._username = username
        self.hlak: bytes | None = None
        self.version = ""
        self.abort: str | None = None
        self._refused: list[int] = []
        self._result_failure = False

    def _connect(self, start: EapTlsData) -> TlsConnection:
        # The server offers its highest version; we answer with ours (0), which every server speaks.
        return TlsConnection(
            server=False,
            identity=None,
            trusted_cas=self.settings.trusted_cas,
            min_version=_TLS_VERSION,
            max_version=_TLS_VERSION,
            server_name=self.settings.server_name,
        )

    def _handshake_finished(self, tls: TlsConnection) -> None:
        self.version = tls.version
        self.tunnel_open = True

    def _tunnel_flight(self, tls: TlsConnection, records: bytes) -> bytes | None:
        try:
            inner = inner_packet(tls.open(records), EapCode.REQUEST)
            answer = self._answer(inner, tls)
        except TlsFailure as failure:
            self.abort = f"PEAP tunnel failed: {failure.reason}"
            return None
        except TlvError as exc:
            self.abort = f"server sent a malformed PEAP TLV ({exc})"
            return None
        if answer is None:
            return None
        return self.framing.send(tls.seal(answer))

    def _answer(self, inner: EapPacket, tls: TlsConnection) -> bytes | None:
        """The inner Response (as PEAPv0 sends it), or ``None`` (then :attr:`abort` may say why)."""
        match inner.type:
            case EapType.IDENTITY:
                return _method_data(EapType.IDENTITY, encode_text(self._username))
            case EapType.MSCHAP_V2:
                data = self._mschapv2.answer(EapMsChapV2Data.decode(inner.data))
                if self._mschapv2.mutual_failure:
                    self.abort = MUTUAL_AUTHENTICATION_FAILED
                return None if data is None else _method_data(INNER_METHOD, data)
            case EapType.EXTENSIONS:
                extensions = self._on_extensions(Extensions.decode(inner.data), tls)
                return EapPacket(
                    EapCode.RESPONSE, inner.identifier, EapType.EXTENSIONS, extensions.encode()
                ).encode()
            case _:
                assert inner.type is not None  # requests always carry a Type
                if inner.type != EapType.EXPANDED:
                    # MS-PEAP's Capabilities Negotiation (a vendor type) is optional: the server goes on
                    # without it after our Nak (3.3.5.4.5), so it is no reason for a failure.
                    self._refused.append(inner.type)
                return _method_data(EapType.NAK, bytes([INNER_METHOD]))

    def _on_extensions(self, extensions: Extensions, tls: TlsConnection) -> Extensions:
        if extensions.result is ResultStatus.FAILURE:
            self._result_failure = True
            return Extensions(ResultStatus.FAILURE)
        if self._mschapv2.success is None:
            self.abort = "server announced PEAP success without proving it knows the password (no S= value)"
            return Extensions(ResultStatus.FAILURE)
        binding = extensions.binding
        if binding is None:
            # MS-PEAP 3.1.5.7: a server without crypto binding; the keys are the outer TLS's alone.
            self.hlak = hlak_from_key_material(tls.export(PEAP_TUNNEL_KEY_LABEL, EAP_MSK_SIZE))
            return Extensions(ResultStatus.SUCCESS)
        keys = _TunnelKeys.derive(tls, self._mschapv2.client.hlak)
        problem = _binding_problem(binding, BindingSubType.REQUEST, keys.cmk)
        if problem is not None:
            self.abort = f"server's Crypto-Binding TLV is wrong: {problem}"
            return Extensions(ResultStatus.FAILURE)
        self.hlak = keys.hlak
        response = CryptoBinding(BindingSubType.RESPONSE, binding.nonce).signed(keys.cmk)
        return Extensions(ResultStatus.SUCCESS, response)

    @property
    def inner_success(self) -> str | None:
        """The server's M= text, once its S= value was right."""
        return self._mschapv2.success

    def refusal(self) -> str:
        """Why the server ended PEAP with EAP-Failure, as far as we can tell."""
        if self.failure is not None:
            return self.failure
        if self._mschapv2.failure is not None:
            return self._mschapv2.failure[0]
        if self._refused:
            names = ", ".join(str(t) for t in dict.fromkeys(self._refused))
            return f"server asked for EAP type {names} inside PEAP; we run only EAP-MSCHAPv2 there"
        if self._mschapv2.success is not None and not self._result_failure:
            return "server refused our Crypto-Binding TLV or PEAP result (EAP-Failure)"
        if self.tunnel_open:
            return "server refused the PEAP authentication (EAP-Failure)"
        return "server refused the PEAP handshake (EAP-Failure)"

    @property
    def error_code(self) -> int | None:
        """The MS-CHAPv2 E= code of the inner failure, if there was one."""
        return self._mschapv2.failure[1] if self._mschapv2.failure is not None else None
