"""A backend that runs EAP itself, as a RADIUS server does (RFC 3579): pysstp's own local EAP server,
answered by the local backend, on the far side of an EAP pass-through authenticator."""

from __future__ import annotations

from dataclasses import replace

from pysstp.aaa.backend import Answer, CallContext
from pysstp.aaa.local import CredentialStore
from pysstp.ppp.auth.eap import EapAuthenticator, EapPacket
from pysstp.ppp.auth.peap import PeapServerSettings
from pysstp.ppp.auth.verification import EapProof, Verdict, Verification
from pysstp.ppp.constants import AuthMethod
from pysstp.ppp.events import Authenticated

from helpers.auth_wire import answer_questions, seeded_random


class EapFarEnd:
    """Runs one local EAP server per call; each :class:`EapProof` is one EAP Response for it."""

    name = "far-end"

    def __init__(
        self,
        credentials: CredentialStore,
        methods: tuple[AuthMethod, ...] = (AuthMethod.EAP_MSCHAP_V2, AuthMethod.EAP_MD5),
        peap: PeapServerSettings | None = None,
    ) -> None:
        self.credentials = credentials
        self.methods = methods
        self.peap = peap
        self.servers: dict[str, EapAuthenticator] = {}
        self.seen: list[EapPacket] = []
        self.finished_calls: list[str] = []

    def check(self, question: Verification, call: str = "call") -> Verdict:
        """The far end's answer to one EAP Response."""
        proof = question.proof
        assert isinstance(proof, EapProof), question
        packet = EapPacket.decode(proof.packet)
        self.seen.append(packet)
        server = self.servers.get(call)
        if server is None:
            server = self.servers[call] = EapAuthenticator(
                eap_methods=self.methods, random_bytes=seeded_random(9), peap=self.peap
            )
            server.start(0.0)
            [(_, request)] = server.take_outgoing()
            # The pass-through authenticator asked for the identity itself; the far end goes on from that
            # exchange as if it had asked (RFC 3579 §2.1).
            packet = replace(packet, identifier=EapPacket.decode(request).identifier)
        server.receive(packet.encode(), 0.0)
        results = answer_questions(server, self.credentials, 0.0)
        [(_, out)] = server.take_outgoing()
        if not results:
            return Verdict(False, question.user, eap=out, more=True)
        [result] = results
        if isinstance(result, Authenticated):
            return Verdict(True, result.user, result.message, hlak=result.hlak, eap=out)
        return Verdict(False, result.user or question.user, reason=result.reason, eap=out)

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        """The :class:`~pysstp.aaa.backend.AuthBackend` face: one far-end EAP server per call."""
        return Answer(self.check(question, context.session_id))

    def finished(self, context: CallContext) -> None:
        """Forget the call's EAP server."""
        self.servers.pop(context.session_id, None)
        self.finished_calls.append(context.session_id)
