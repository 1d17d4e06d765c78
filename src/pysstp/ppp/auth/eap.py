"""EAP (RFC 3748) over PPP with the methods pysstp speaks: Identity, Notification, Legacy-Nak, MD5-Challenge
(RFC 3748 §5.4), EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2), EAP-TLS (:mod:`.eap_tls`) and PEAP
(:mod:`.peap`).

The authenticator drives EAP: it sends Requests and retransmits them; the peer only answers, and resends
its last Response when a Request is repeated. EAP-MSCHAPv2 uses the same MS-CHAPv2 core as plain CHAP
(:mod:`pysstp.ppp.auth.mschapv2_core`); its HLAK is MSK[0:32], the same bytes as plain MS-CHAPv2.

The authenticator runs in one of two modes (:data:`~pysstp.ppp.auth.base.EapMode`). ``local``: the
methods run here and ask for their inner proofs (EAP-MD5's and EAP-MSCHAPv2's Responses, PEAP's inner
EAP-MSCHAPv2 Response, the name in an EAP-TLS certificate) at the moment they arrive. ``pass-through``
(RFC 3579 §3): after Identity, every EAP Response is a question with the packet as it came
(:class:`~pysstp.ppp.auth.verification.EapProof`), and the answer's ``eap`` packet goes to the peer: a
Request while ``more``, else the final Success or Failure.
"""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import replace

from pysstp.errors import AuthError
from pysstp.ppp.auth.base import (
    AUTH_WAIT_TIMEOUT,
    EAP_METHODS,
    SUCCESS_MESSAGE,
    Authenticator,
    AuthenticatorOptions,
    AuthPeer,
    EapMode,
    PeerOptions,
    decode_name,
    encode_text,
    register_authenticator,
    register_peer,
    with_keys,
)
from pysstp.ppp.auth.chap import chap_md5_response, decode_value_name, encode_value_name
from pysstp.ppp.auth.eap_mschapv2 import EapMsChapV2Data, EapMsChapV2Peer
from pysstp.ppp.auth.eap_packet import EapPacket
from pysstp.ppp.auth.eap_tls import (
    EapTlsPeer,
    EapTlsPeerSettings,
    EapTlsServer,
    EapTlsServerSettings,
    TlsAccepted,
)
from pysstp.ppp.auth.keys import ZERO_HLAK, eap_mschapv2_msk, hlak_from_key_material
from pysstp.ppp.auth.mschapv2_core import MUTUAL_AUTHENTICATION_FAILED, MsChapV2Client, MsChapV2Server
from pysstp.ppp.auth.peap import PeapPeer, PeapPeerSettings, PeapQuestion, PeapServer, PeapServerSettings
from pysstp.ppp.auth.verification import (
    CertificateProof,
    ChapMd5Proof,
    EapProof,
    Verdict,
    Verification,
)
from pysstp.ppp.constants import (
    CHAP_CHALLENGE_SIZE,
    MAX_AUTH_TRANSMITS,
    AuthMethod,
    EapCode,
    EapType,
    MsChapV2OpCode,
    Protocol,
)
from pysstp.randomness import RandomBytes

_TYPE_SIZE = 1
_MS_HEADER = struct.Struct("!BBH")
_IDENTIFIER_MODULO = 0x100
_NAK_NONE = 0
"""A Legacy-Nak listing only type 0: the peer wants no method at all (RFC 3748 §5.3.1)."""

EAP_TYPE_OF = {
    AuthMethod.EAP_MSCHAP_V2: EapType.MSCHAP_V2,
    AuthMethod.EAP_MD5: EapType.MD5_CHALLENGE,
    AuthMethod.EAP_TLS: EapType.TLS,
    AuthMethod.PEAP: EapType.PEAP,
}
"""The EAP Type that runs each of our EAP methods."""
_METHOD_OF = {int(eap_type): method for method, eap_type in EAP_TYPE_OF.items()}

_TYPE_NAMES = {
    EapType.IDENTITY: "Identity",
    EapType.NOTIFICATION: "Notification",
    EapType.NAK: "Legacy-Nak",
    EapType.MD5_CHALLENGE: "EAP-MD5",
    EapType.TLS: "EAP-TLS",
    EapType.TTLS: "EAP-TTLS",
    EapType.PEAP: "PEAP",
    EapType.MSCHAP_V2: "EAP-MSCHAPv2",
}
_PLANNED_TYPES = frozenset({EapType.TTLS})
"""Types we will support one day: the reason then says "not supported yet"."""


def eap_type_name(eap_type: int) -> str:
    """A readable name for an EAP Type number."""
    try:
        return _TYPE_NAMES[EapType(eap_type)]
    except (ValueError, KeyError):
        return f"EAP type {eap_type}"


def _eap_mschapv2_hlak(password_hash: bytes, nt_response: bytes) -> bytes:
    return hlak_from_key_material(eap_mschapv2_msk(password_hash, nt_response))


# -- codec ------------------------------------------------------------------------------------------


# -- authenticator ----------------------------------------------------------------------------------


class _Stage(enum.Enum):
    IDENTITY = "identity"
    METHOD = "method"
    MSCHAPV2_RESULT = "mschapv2-result"
    PASS_THROUGH = "pass-through"
    DONE = "done"


class EapAuthenticator(Authenticator):
    """Server side of EAP: Identity, then the first of ``eap_methods`` the peer accepts (``local``), or
    whatever the backend runs (``pass-through``).

    A Legacy-Nak to the method request switches to the next acceptable method in ``eap_methods`` order.
    The MS-CHAPv2 outcome travels in a Success/Failure Request that the peer acknowledges before the
    final EAP-Success/EAP-Failure (draft-kamath §2), so that the peer can check our S= value first.
    """

    __slots__ = (
        "_answering",
        "_final",
        "_identifier",
        "_keyed",
        "_md5_challenge",
        "_ms_id",
        "_mschapv2",
        "_peap",
        "_stage",
        "_tls",
        "_tls_accepted",
        "_tried",
        "_verdict",
        "eap_methods",
        "eap_mode",
        "eap_tls",
        "identity",
        "method",
        "peap",
    )

    protocol = Protocol.EAP

    def __init__(
        self,
        *,
        name: str = "pysstp",
        eap_methods: tuple[AuthMethod, ...] = EAP_METHODS,
        eap_tls: EapTlsServerSettings | None = None,
        eap_mode: EapMode = "local",
        random_bytes: RandomBytes = os.urandom,
        peap: PeapServerSettings | None = None,
    ) -> None:
        super().__init__(name=name, random_bytes=random_bytes)
        if not eap_methods:
            raise ValueError("EAP needs at least one method")
        for method in eap_methods:
            if method not in EAP_TYPE_OF:
                raise ValueError(f"{method!r} does not run inside EAP")
        if AuthMethod.EAP_TLS in eap_methods and eap_tls is None and eap_mode == "local":
            raise ValueError("EAP-TLS needs its certificate settings")
        if AuthMethod.PEAP in eap_methods and peap is None and eap_mode == "local":
            raise ValueError("PEAP needs its certificate settings")
        self.eap_methods = eap_methods
        self.eap_tls = eap_tls
        self.peap = peap
        self.eap_mode: EapMode = eap_mode
        self.method = eap_methods[0]
        self.identity: str | None = None
        """The name the peer gave in its Identity Response."""
        self._stage = _Stage.IDENTITY
        self._identifier = 0
        self._answering = 0
        """Identifier of the Response the open question came with (the final packet copies it)."""
        self._tried: set[AuthMethod] = set()
        self._md5_challenge = b""
        self._mschapv2: MsChapV2Server | None = None
        self._ms_id = 0
        self._tls: EapTlsServer | None = None
        self._tls_accepted: TlsAccepted | None = None
        self._peap: PeapServer | None = None
        self._verdict: Verdict | None = None
        self._final: EapPacket | None = None
        self._keyed = self.method is not AuthMethod.EAP_MD5
        """Whether the method that runs derives keys (a success then needs the HLAK)."""

    def start(self, now: float) -> None:
        """Send Request/Identity (retransmitted until answered)."""
        self._identifier = self._random_identifier()
        self._send_request(EapPacket(EapCode.REQUEST, self._identifier, EapType.IDENTITY).encode(), now)

    def _request(self, eap_type: EapType, data: bytes, now: float) -> None:
        self._identifier = (self._identifier + 1) % _IDENTIFIER_MODULO
        self._send_request(EapPacket(EapCode.REQUEST, self._identifier, eap_type, data).encode(), now)

    def _receive(self, packet: bytes, now: float) -> None:
        eap = EapPacket.decode(packet)
        if eap.code is not EapCode.RESPONSE:
            self.discarded += 1
        elif self._stage is _Stage.DONE:
            # The peer repeated its last Response: our EAP-Success/Failure was lost (RFC 3748 §4.2).
            if self._final is not None and eap.identifier == self._final.identifier:
                self._send(self._final.encode())
            else:
                self.discarded += 1
        elif eap.identifier != self._identifier:
            self.discarded += 1  # RFC 3748 §4.1: a Response must match the outstanding Request
        elif self.pending is not None:
            pass  # a repetition while the backend decides: the answer will come
        elif self._stage is _Stage.IDENTITY and eap.type == EapType.IDENTITY:
            self.identity = decode_name(eap.data)
            if self.eap_mode == "pass-through":
                self._stage = _Stage.PASS_THROUGH
                self._pass(eap, now)
            else:
                self._begin(self.eap_methods[0], now)
        elif self._stage is _Stage.PASS_THROUGH:
            self._pass(eap, now)
        elif self._stage is _Stage.METHOD and eap.type == EapType.NAK:
            self._on_nak(eap, now)
        elif self._stage is not _Stage.IDENTITY and eap.type == EAP_TYPE_OF[self.method]:
            if self.method is AuthMethod.EAP_MD5:
                self._on_md5_response(eap, now)
            elif self.method is AuthMethod.EAP_TLS:
                self._on_tls_response(eap, now)
            elif self.method is AuthMethod.PEAP:
                self._on_peap_response(eap, now)
            else:
                self._on_mschapv2_response(eap, now)
        else:
            self.discarded += 1

    def _ask_about(
        self, eap: EapPacket, user: str, proof: CertificateProof | ChapMd5Proof | EapProof, now: float
    ) -> None:
        self._answering = eap.identifier
        self._ask(self.method, user, proof, now)

    def _begin(self, method: AuthMethod, now: float) -> None:
        self.method = method
        self._keyed = method is not AuthMethod.EAP_MD5
        self._tried.add(method)
        self._stage = _Stage.METHOD
        if method is AuthMethod.EAP_MD5:
            self._md5_challenge = self._random_bytes(CHAP_CHALLENGE_SIZE)
            self._request(EapType.MD5_CHALLENGE, encode_value_name(self._md5_challenge, self.name), now)
        elif method is AuthMethod.EAP_TLS:
            assert self.eap_tls is not None  # checked in __init__
            self._tls = EapTlsServer(self.eap_tls, self.identity or "")
            self._request(EapType.TLS, self._tls.start(), now)
        elif method is AuthMethod.PEAP:
            assert self.peap is not None  # checked in __init__
            self._peap = PeapServer(self.peap, self.identity or "", self.name, self._random_bytes)
            self._request(EapType.PEAP, self._peap.start(), now)
        else:
            self._mschapv2 = MsChapV2Server(self._random_bytes)
            payload = encode_value_name(self._mschapv2.challenge, self.name)
            # MS-CHAPv2-ID follows the EAP Identifier, as Windows and hostapd do.
            ms_id = (self._identifier + 1) % _IDENTIFIER_MODULO
            data = EapMsChapV2Data(MsChapV2OpCode.CHALLENGE, ms_id, payload).encode()
            self._request(EapType.MSCHAP_V2, data, now)

    def _on_nak(self, eap: EapPacket, now: float) -> None:
        wanted = list(eap.data)
        for method in self.eap_methods:
            if method not in self._tried and EAP_TYPE_OF[method] in wanted:
                self._begin(method, now)
                return
        offered = ", ".join(eap_type_name(EAP_TYPE_OF[m]) for m in self.eap_methods)
        desired = [t for t in wanted if t != _NAK_NONE]
        if desired:
            asked = ", ".join(eap_type_name(t) for t in desired)
            reason = f"peer accepts none of the EAP methods offered ({offered}); it asked for {asked}"
        else:
            reason = f"peer accepts none of the EAP methods offered ({offered})"
        self._conclude(eap.identifier, Verdict(False, self.identity or "", "", reason=reason))

    def _on_md5_response(self, eap: EapPacket, now: float) -> None:
        value, _name = decode_value_name(eap.data)
        # RFC 3748 §5.4: EAP-MD5 authenticates the Identity; the optional Name field is not trusted.
        proof = ChapMd5Proof(eap.identifier, self._md5_challenge, value)
        self._ask_about(eap, self.identity or "", proof, now)

    def _on_tls_response(self, eap: EapPacket, now: float) -> None:
        assert self._tls is not None  # made by _begin together with the Start request
        answer = self._tls.handle(eap.data)
        if isinstance(answer, Verdict):
            self._conclude(eap.identifier, answer)
        elif isinstance(answer, TlsAccepted):
            self._tls_accepted = answer
            assert self.eap_tls is not None
            proof = CertificateProof(answer.certificate, self.eap_tls.require_known_user)
            self._ask_about(eap, answer.user, proof, now)
        else:
            self._request(EapType.TLS, answer, now)

    def _on_peap_response(self, eap: EapPacket, now: float) -> None:
        assert self._peap is not None  # made by _begin together with the Start request
        answer = self._peap.respond(eap.data, (self._identifier + 1) % _IDENTIFIER_MODULO)
        if isinstance(answer, Verdict):
            self._conclude(eap.identifier, answer)
        elif isinstance(answer, PeapQuestion):
            # The inner EAP-MSCHAPv2 proof, asked as any EAP-MSCHAPv2 proof is (MS-PEAP 3.3.5.2).
            self._answering = eap.identifier
            self._ask(self.method, answer.user, answer.proof, now)
        else:
            self._request(EapType.PEAP, answer, now)

    def _on_mschapv2_response(self, eap: EapPacket, now: float) -> None:
        ms = EapMsChapV2Data.decode(eap.data)
        if self._stage is _Stage.METHOD and ms.opcode == MsChapV2OpCode.RESPONSE and ms.ms_id is not None:
            assert self._mschapv2 is not None  # made by _begin together with the Challenge
            value, name = decode_value_name(ms.payload)
            self._ms_id = ms.ms_id
            self._answering = eap.identifier
            proof = self._mschapv2.proof(ms.ms_id, value)
            if isinstance(proof, Verdict):
                self._mschapv2_result(replace(proof, user=name), now)
            else:
                self._ask(self.method, name, proof, now)
        elif self._stage is _Stage.MSCHAPV2_RESULT and self._verdict is not None:
            expected = MsChapV2OpCode.SUCCESS if self._verdict.success else MsChapV2OpCode.FAILURE
            if ms.opcode != expected:
                self.discarded += 1
                return
            self._conclude(eap.identifier, self._verdict)
        else:
            self.discarded += 1

    def _mschapv2_result(self, verdict: Verdict, now: float) -> None:
        """Send the MS-CHAPv2 Success/Failure request the peer acknowledges before the final packet."""
        assert self._mschapv2 is not None
        verdict = self._mschapv2.complete(with_keys(verdict, keyed=True))
        self._verdict = verdict
        self._stage = _Stage.MSCHAPV2_RESULT
        opcode = MsChapV2OpCode.SUCCESS if verdict.success else MsChapV2OpCode.FAILURE
        data = EapMsChapV2Data(opcode, self._ms_id, encode_text(verdict.message)).encode()
        self._request(EapType.MSCHAP_V2, data, now)

    def _pass(self, eap: EapPacket, now: float) -> None:
        self._ask_about(eap, self.identity or "", EapProof(eap.encode()), now)

    def _on_verdict(self, question: Verification, verdict: Verdict, now: float) -> None:
        if self._stage is _Stage.PASS_THROUGH:
            self._on_passed_verdict(verdict, now)
        elif self.method is AuthMethod.EAP_MSCHAP_V2:
            self._mschapv2_result(verdict, now)
        elif self.method is AuthMethod.PEAP and self._peap is not None:
            answer = self._peap.answer(verdict, (self._identifier + 1) % _IDENTIFIER_MODULO)
            self._request(EapType.PEAP, answer, now)
        elif self.method is AuthMethod.EAP_TLS and self._tls_accepted is not None:
            accepted = self._tls_accepted
            if verdict.success:
                verdict = Verdict(
                    True, verdict.user or accepted.user, f"EAP-TLS ({accepted.version})", hlak=accepted.hlak
                )
            self._conclude(self._answering, verdict)
        else:
            if verdict.success and not verdict.message:
                verdict = replace(verdict, message=SUCCESS_MESSAGE)
            self._conclude(self._answering, verdict)

    def _on_passed_verdict(self, verdict: Verdict, now: float) -> None:
        """The backend's EAP packet goes to the peer as it is (RFC 3579 §2.6)."""
        user = verdict.user or self.identity or ""
        packet: EapPacket | None = None
        if verdict.eap is not None:
            try:
                packet = EapPacket.decode(verdict.eap)
            except AuthError as exc:
                reason = f"the authentication backend sent a malformed EAP packet ({exc})"
                self._conclude(self._answering, Verdict(False, user, reason=reason))
                return
        if verdict.more:
            if packet is None or packet.code is not EapCode.REQUEST:
                reason = "the authentication backend went on without an EAP Request for the peer"
                self._conclude(self._answering, Verdict(False, user, reason=reason))
                return
            assert packet.type is not None  # a decoded Request always has one
            self.method = _METHOD_OF.get(packet.type, self.method)
            if packet.type > EapType.NAK:
                # A method of the backend's (RFC 3748 §5), maybe one we do not run ourselves (PEAP):
                # only EAP-MD5 has no keys.
                self._keyed = packet.type != EapType.MD5_CHALLENGE
            self._identifier = packet.identifier
            self._send_request(verdict.eap or b"", now)
            return
        final = packet if packet is not None and packet.code in (EapCode.SUCCESS, EapCode.FAILURE) else None
        self._conclude(self._answering, verdict, final)

    def _conclude(self, identifier: int, verdict: Verdict, final: EapPacket | None = None) -> None:
        """Send EAP-Success/Failure with the identifier of the Response it answers (RFC 3748 §4.2)."""
        self._stage = _Stage.DONE
        self._stop_retransmission()
        if final is None or (final.code is EapCode.SUCCESS) != verdict.success:
            final = EapPacket(EapCode.SUCCESS if verdict.success else EapCode.FAILURE, identifier)
        self._final = final
        self._send(final.encode())
        if not verdict.success and not verdict.user:
            verdict = replace(verdict, user=self.identity or "")
        self._finish_with(verdict, keyed=self._keyed)

    def _give_up(self, now: float) -> None:
        if self._stage is _Stage.IDENTITY:
            self._fail(None, f"peer did not answer {MAX_AUTH_TRANSMITS} EAP Identity requests")
        elif self._stage is _Stage.MSCHAPV2_RESULT and self._verdict is not None:
            if self._verdict.success:
                reason = (
                    f"peer did not acknowledge EAP-MSCHAPv2 success after {MAX_AUTH_TRANSMITS} requests "
                    "(did it reject our S= value?)"
                )
                self._fail(self._verdict.user, reason)
            else:
                self._fail(self._verdict.user, self._verdict.reason, self._verdict.error_code)
        elif self._stage is _Stage.PASS_THROUGH:
            self._fail(self.identity, f"peer did not answer {MAX_AUTH_TRANSMITS} EAP requests")
        else:
            label = eap_type_name(EAP_TYPE_OF[self.method])
            self._fail(self.identity, f"peer did not answer {MAX_AUTH_TRANSMITS} {label} challenges")


# -- peer -------------------------------------------------------------------------------------------


class EapPeer(AuthPeer):
    """Client side of EAP: answers Identity, Notification, EAP-MD5 and EAP-MSCHAPv2; Naks anything else.

    The final EAP-Success is believed only after a method succeeded on our side (for EAP-MSCHAPv2: the
    server's S= value checked). Its Identifier is not checked: some servers do not copy it, and our own
    state already says whether success is earned.
    """

    __slots__ = (
        "_answered_identity",
        "_last_request",
        "_last_response",
        "_md5_answered",
        "_mschapv2",
        "_notifications",
        "_peap",
        "_refused",
        "_tls",
        "eap_methods",
        "method",
    )

    protocol = Protocol.EAP

    def __init__(
        self,
        username: str,
        password: str,
        *,
        eap_methods: tuple[AuthMethod, ...] = EAP_METHODS,
        eap_tls: EapTlsPeerSettings | None = None,
        random_bytes: RandomBytes = os.urandom,
        peap: PeapPeerSettings | None = None,
    ) -> None:
        super().__init__(username, password, random_bytes=random_bytes)
        if not eap_methods or any(method not in EAP_TYPE_OF for method in eap_methods):
            raise ValueError(f"not a tuple of EAP methods: {eap_methods!r}")
        if eap_tls is None:
            eap_methods = tuple(m for m in eap_methods if m is not AuthMethod.EAP_TLS) or EAP_METHODS
        if peap is None:
            eap_methods = tuple(m for m in eap_methods if m is not AuthMethod.PEAP) or EAP_METHODS
        self.eap_methods = eap_methods
        self._tls = EapTlsPeer(eap_tls) if eap_tls is not None else None
        self._peap = PeapPeer(peap, username, password, random_bytes) if peap is not None else None
        self.method = eap_methods[0]
        self._mschapv2 = EapMsChapV2Peer(MsChapV2Client(username, password, random_bytes, _eap_mschapv2_hlak))
        self._last_request: bytes | None = None
        self._last_response: bytes | None = None
        self._answered_identity = False
        self._md5_answered = False
        self._refused: list[int] = []
        self._notifications: list[str] = []

    def _receive(self, packet: bytes, now: float) -> None:
        eap = EapPacket.decode(packet)
        if eap.code is EapCode.REQUEST:
            request = eap.encode()
            if request == self._last_request and self._last_response is not None:
                # RFC 3748 §4.1: a repeated Request gets the original Response, without reprocessing.
                self._send(self._last_response)
                return
            if self.finished:
                self.discarded += 1
                return
            answer = self._answer(eap)
            if answer is None:
                return
            response = EapPacket(EapCode.RESPONSE, eap.identifier, *answer).encode()
            self._last_request, self._last_response = request, response
            self._send(response)
            self._rearm_wait(now)
            if self._mschapv2.failure is not None:
                # The EAP-Failure that follows the acknowledged Failure-Request adds nothing, and may be lost.
                reason, error_code = self._mschapv2.failure
                self._fail(self.username, reason, error_code, method=AuthMethod.EAP_MSCHAP_V2)
        elif eap.code is EapCode.SUCCESS and not self.finished:
            self._on_eap_success()
        elif eap.code is EapCode.FAILURE and not self.finished:
            self._on_eap_failure()
        else:
            self.discarded += 1

    def _answer(self, eap: EapPacket) -> tuple[int, bytes] | None:
        """Type and Type-Data of our Response, or ``None`` to send nothing."""
        match eap.type:
            case EapType.IDENTITY:
                self._answered_identity = True
                return EapType.IDENTITY, encode_text(self.username)
            case EapType.NOTIFICATION:
                self._notifications.append(decode_name(eap.data))
                return EapType.NOTIFICATION, b""
            case EapType.NAK:
                self.discarded += 1  # only ever a Response
                return None
            case EapType.MD5_CHALLENGE if AuthMethod.EAP_MD5 in self.eap_methods:
                challenge, _server_name = decode_value_name(eap.data)
                self.method = AuthMethod.EAP_MD5
                self._md5_answered = True
                value = chap_md5_response(eap.identifier, encode_text(self.password), challenge)
                return EapType.MD5_CHALLENGE, encode_value_name(value, self.username)
            case EapType.TLS if self._tls is not None:
                self.method = AuthMethod.EAP_TLS
                tls_data = self._tls.handle(eap.data)
                return None if tls_data is None else (EapType.TLS, tls_data)
            case EapType.PEAP if self._peap is not None:
                self.method = AuthMethod.PEAP
                peap_data = self._peap.handle(eap.data)
                if self._peap.abort is not None:
                    # A bad Crypto-Binding TLV still gets its Result TLV Failure, so that the server
                    # learns why (MS-PEAP 3.2.5.3).
                    self._fail(self.username, self._peap.abort)
                return None if peap_data is None else (EapType.PEAP, peap_data)
            case EapType.MSCHAP_V2 if AuthMethod.EAP_MSCHAP_V2 in self.eap_methods:
                data = self._answer_mschapv2(EapMsChapV2Data.decode(eap.data))
                return None if data is None else (EapType.MSCHAP_V2, data)
            case _:
                assert eap.type is not None  # requests always carry a Type
                self._refused.append(eap.type)
                return EapType.NAK, bytes(EAP_TYPE_OF[method] for method in self.eap_methods)

    def _answer_mschapv2(self, ms: EapMsChapV2Data) -> bytes | None:
        data = self._mschapv2.answer(ms)
        if self._mschapv2.mutual_failure:
            self._fail(self.username, MUTUAL_AUTHENTICATION_FAILED, method=AuthMethod.EAP_MSCHAP_V2)
        elif ms.opcode == MsChapV2OpCode.CHALLENGE:
            self.method = AuthMethod.EAP_MSCHAP_V2
        elif data is None:
            self.discarded += 1
        return data

    def _on_eap_success(self) -> None:
        if self._peap is not None and self._peap.started:
            if self._peap.hlak is not None:
                message = self._peap.inner_success or f"PEAP ({self._peap.version})"
                self._succeed(self.username, self._peap.hlak, message, AuthMethod.PEAP)
            else:
                reason = (
                    self._peap.failure or "server sent EAP-Success before the inner method of PEAP was over"
                )
                self._fail(self.username, reason, method=AuthMethod.PEAP)
        elif self._tls is not None and self._tls.started:
            if self._tls.hlak is not None:
                message = f"EAP-TLS ({self._tls.version})"
                self._succeed(self.username, self._tls.hlak, message, AuthMethod.EAP_TLS)
            else:
                reason = self._tls.failure or "server sent EAP-Success before the TLS handshake was over"
                self._fail(self.username, reason, method=AuthMethod.EAP_TLS)
        elif self._mschapv2.success is not None:
            self._succeed(
                self.username, self._mschapv2.client.hlak, self._mschapv2.success, AuthMethod.EAP_MSCHAP_V2
            )
        elif self._md5_answered:
            self._succeed(self.username, ZERO_HLAK, method=AuthMethod.EAP_MD5)
        elif self._mschapv2.client.answered:
            self._fail(
                self.username,
                "server sent EAP-Success without proving it knows the password (no EAP-MSCHAPv2 Success "
                "request)",
            )
        else:
            self._fail(self.username, "server sent EAP-Success without running an authentication method")

    def _on_eap_failure(self) -> None:
        error_code: int | None = None
        if self._peap is not None and self._peap.started:
            reason, error_code = self._peap.refusal(), self._peap.error_code
        elif self._tls is not None and self._tls.started:
            reason = self._tls.failure or "server refused the EAP-TLS authentication (EAP-Failure)"
        elif EapType.TLS in self._refused and len(set(self._refused)) == 1:
            reason = "server asked for EAP-TLS, and no client certificate is configured"
        elif EapType.PEAP in self._refused and len(set(self._refused)) == 1:
            reason = "server asked for PEAP, which this client runs only with --auth peap"
        elif self._refused:
            names = ", ".join(dict.fromkeys(eap_type_name(t) for t in self._refused))
            planned = all(t in _PLANNED_TYPES for t in self._refused)
            reason = f"server asked for {names}, which is not supported{' yet' if planned else ''}"
        elif self._md5_answered or self._mschapv2.client.answered:
            reason = f"server rejected the user name or password ({eap_type_name(EAP_TYPE_OF[self.method])})"
        elif self._answered_identity:
            reason = f"server rejected identity {self.username!r} (EAP-Failure)"
        else:
            reason = "server refused authentication (EAP-Failure)"
        if self._notifications:
            reason += "; server says " + "; ".join(repr(text) for text in self._notifications)
        self._fail(self.username, reason, error_code)

    def _give_up(self, now: float) -> None:
        if self._last_response is None:
            self._fail(self.username, f"server sent no EAP request within {AUTH_WAIT_TIMEOUT:.0f} s")
        else:
            self._fail(
                self.username, f"server did not finish EAP authentication within {AUTH_WAIT_TIMEOUT:.0f} s"
            )


def _authenticator(options: AuthenticatorOptions) -> Authenticator:
    return EapAuthenticator(
        name=options.name,
        eap_methods=options.eap_methods,
        eap_tls=options.eap_tls,
        eap_mode=options.eap_mode,
        random_bytes=options.random_bytes,
        peap=options.peap,
    )


def _peer(options: PeerOptions) -> AuthPeer:
    if options.method is AuthMethod.PEAP:
        # Asked for PEAP, the client sends its password proof only through the tunnel whose certificate
        # it checked: plain EAP-MSCHAPv2 (or EAP-MD5) is Naked.
        return EapPeer(
            options.username,
            options.password,
            eap_methods=(AuthMethod.PEAP,),
            random_bytes=options.random_bytes,
            peap=options.peap,
        )
    methods: tuple[AuthMethod, ...] = EAP_METHODS
    if options.eap_tls is not None:
        methods = (*methods, AuthMethod.EAP_TLS)
    if options.peap is not None:
        methods = (*methods, AuthMethod.PEAP)
    order = (options.method, *(m for m in methods if m is not options.method))
    return EapPeer(
        options.username,
        options.password,
        eap_methods=order,
        eap_tls=options.eap_tls,
        random_bytes=options.random_bytes,
        peap=options.peap,
    )


for _method in EAP_TYPE_OF:
    register_authenticator(_method, _authenticator)
    register_peer(_method, _peer)
