"""The RADIUS :class:`~pysstp.aaa.backend.AuthBackend`: each verification request becomes an
Access-Request, each reply a verdict and an authorization.

MS-CHAPv2 success needs the server's ``S=`` value (the client checks it) and MPPE keys for the crypto
binding; EAP runs in the server (RFC 3579 pass-through), the State of each call's exchange kept here until
the call is finished. An Accept without keys is refused for every method that has keys (docs/radius.md):
bringing such a call up with a zero HLAK would switch off the crypto binding's protection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pysstp.aaa.backend import Answer, CallContext
from pysstp.aaa.radius.client import RadiusClient, RadiusUnavailable
from pysstp.aaa.radius.reply import AccessReply
from pysstp.aaa.radius.request import AccessRequest, NasIdentity
from pysstp.ppp.auth.base import FAILURE_MESSAGE, SUCCESS_MESSAGE
from pysstp.ppp.auth.eap_packet import EapPacket
from pysstp.ppp.auth.keys import ZERO_HLAK
from pysstp.ppp.auth.mschapv2 import format_failure, parse_failure
from pysstp.ppp.auth.verification import (
    CertificateProof,
    ChapMd5Proof,
    EapProof,
    MsChapV2Proof,
    PapProof,
    Verdict,
    Verification,
)
from pysstp.ppp.constants import EapCode, EapType, MsChapV2Error

log = logging.getLogger("pysstp.radius")

_EAP_HEADER_SIZE = 4
"""Code, Identifier, Length (RFC 3748 §4); a Request or Response has its Type after it."""
_KEYLESS_EAP_TYPES = frozenset({EapType.IDENTITY, EapType.NOTIFICATION, EapType.NAK, EapType.MD5_CHALLENGE})
"""EAP types that derive no keys: an Accept after only these may come without MS-MPPE keys."""


@dataclass(slots=True)
class _EapCall:
    """The RADIUS side of one call's EAP exchange."""

    state: bytes | None = None
    keyed: bool = False
    """The peer answered a method that derives keys (anything but MD5-Challenge)."""


class RadiusBackend:
    """Answers verification requests with a RADIUS server (:class:`~pysstp.aaa.backend.AuthBackend`)."""

    name = "radius"

    def __init__(self, client: RadiusClient, nas: NasIdentity) -> None:
        self.client = client
        self.nas = nas
        self._eap: dict[str, _EapCall] = {}

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        """Ask the servers about ``question``; a refusal or an unreachable server is a ``False`` verdict."""
        proof = question.proof
        if isinstance(proof, CertificateProof):
            return self._certificate(question, proof)
        call: _EapCall | None = None
        if isinstance(proof, EapProof):
            call = self._eap.setdefault(context.session_id, _EapCall())
            eap_type = proof.packet[_EAP_HEADER_SIZE] if len(proof.packet) > _EAP_HEADER_SIZE else None
            if eap_type is not None and eap_type not in _KEYLESS_EAP_TYPES:
                call.keyed = True
        request = AccessRequest(self.nas, context, question.user, proof, call.state if call else None)
        try:
            server, packet = await self.client.send(request.packet)
        except RadiusUnavailable as error:
            log.warning("login of %r (session %s) refused: %s", question.user, context.session_id, error)
            self._eap.pop(context.session_id, None)
            return Answer(
                self._refusal(
                    question, str(error), "authentication service unavailable", MsChapV2Error.AUTH_INTERNAL
                )
            )
        reply = AccessReply(packet, server.name)
        if reply.reply_message:
            log.info("RADIUS server %s says to %r: %s", server.name, question.user, reply.reply_message)
        if call is not None:
            return self._eap_answer(question, context, call, reply)
        if not reply.accepted:
            return Answer(self._rejection(question, reply))
        return self._acceptance(question, reply)

    def finished(self, context: CallContext) -> None:
        """Forget the call's EAP State."""
        self._eap.pop(context.session_id, None)

    @staticmethod
    def _certificate(question: Verification, proof: CertificateProof) -> Answer:
        """EAP-TLS run here (``eap_mode = "local"``): the CA already decided. RADIUS cannot say whether a
        user is known without a proof to check, so ``require_user`` needs EAP-TLS in the RADIUS server
        (docs/radius.md, "Mixing")."""
        if proof.require_user:
            reason = (
                f"certificate user {question.user!r} cannot be looked up in RADIUS (eap_tls.require_user); "
                'run EAP-TLS in the RADIUS server (eap_mode = "pass-through") or turn require_user off'
            )
            log.error("%s", reason)
            return Answer(Verdict(False, question.user, reason=reason))
        return Answer(Verdict(True, question.user))

    # -- PAP, CHAP-MD5, MS-CHAPv2 --------------------------------------------------------------------

    def _acceptance(self, question: Verification, reply: AccessReply) -> Answer:
        authorization = reply.authorization()
        if not isinstance(question.proof, MsChapV2Proof):
            message = reply.reply_message or SUCCESS_MESSAGE
            verdict = Verdict(True, reply.user_name or question.user, message, ZERO_HLAK)
            return Answer(verdict, authorization)
        success = reply.mschap2_success
        hlak = reply.hlak()
        if success is None or hlak is None:
            missing = "MS-CHAP2-Success" if success is None else "MS-MPPE-Send-Key/Recv-Key"
            reason = f"RADIUS server {reply.server} accepted {question.user!r} without {missing}"
            log.error("%s: refused (docs/radius.md: the server must send it)", reason)
            return Answer(self._refusal(question, reason, FAILURE_MESSAGE))
        return Answer(Verdict(True, reply.user_name or question.user, success, hlak), authorization)

    def _rejection(self, question: Verification, reply: AccessReply) -> Verdict:
        reason = f"RADIUS server {reply.server} rejected {question.user!r}"
        if reply.reply_message:
            reason += f": {reply.reply_message}"
        proof = question.proof
        if isinstance(proof, MsChapV2Proof):
            text = reply.mschap_error
            if text is not None:
                return Verdict(
                    False, question.user, text, reason=reason, error_code=parse_failure(text).error
                )
        return self._refusal(question, reason, reply.reply_message or FAILURE_MESSAGE)

    @staticmethod
    def _refusal(
        question: Verification,
        reason: str,
        message: str,
        error: MsChapV2Error = MsChapV2Error.AUTHENTICATION_FAILURE,
    ) -> Verdict:
        """A ``False`` verdict in the method's words: MS-CHAPv2's Failure text with ``error``, EAP's
        Failure."""
        proof = question.proof
        match proof:
            case MsChapV2Proof():
                text = format_failure(error, proof.authenticator_challenge, message)
                return Verdict(False, question.user, text, reason=reason, error_code=int(error))
            case EapProof():
                return Verdict(False, question.user, message, reason=reason, eap=_eap_failure(proof.packet))
            case PapProof() | ChapMd5Proof() | CertificateProof():
                return Verdict(False, question.user, message, reason=reason)

    # -- EAP ---------------------------------------------------------------------------------------

    def _eap_answer(
        self, question: Verification, context: CallContext, call: _EapCall, reply: AccessReply
    ) -> Answer:
        eap = reply.eap_message
        if reply.challenged:
            call.state = reply.state
            if eap is None:
                reason = f"RADIUS server {reply.server} sent an Access-Challenge without EAP-Message"
                log.warning("%s for %r: refused", reason, question.user)
                self.finished(context)
                return Answer(self._refusal(question, reason, FAILURE_MESSAGE))
            return Answer(Verdict(False, question.user, eap=eap, more=True))
        self.finished(context)
        if not reply.accepted:
            return Answer(self._rejection(question, reply))
        hlak = reply.hlak()
        if hlak is None:
            if call.keyed:
                reason = f"RADIUS server {reply.server} accepted {question.user!r} without MS-MPPE keys"
                log.error("%s: refused, the crypto binding needs them (docs/radius.md)", reason)
                return Answer(self._refusal(question, reason, FAILURE_MESSAGE))
            hlak = ZERO_HLAK
        assert isinstance(question.proof, EapProof)
        success = eap if eap is not None else _eap_success(question.proof.packet)
        message = reply.reply_message or SUCCESS_MESSAGE
        user = reply.user_name or question.user  # the outer identity may be anonymous (PEAP, TTLS)
        return Answer(Verdict(True, user, message, hlak, eap=success), reply.authorization())


def _eap_failure(response: bytes) -> bytes:
    """An EAP-Failure for the peer whose Response was ``response`` (same Identifier, RFC 3748 §4.2)."""
    return EapPacket(EapCode.FAILURE, response[1] if len(response) > 1 else 0).encode()


def _eap_success(response: bytes) -> bytes:
    """An EAP-Success for the peer whose Response was ``response``: for servers that send none."""
    return EapPacket(EapCode.SUCCESS, response[1] if len(response) > 1 else 0).encode()
