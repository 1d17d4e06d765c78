"""An EAP peer machine driven against a RADIUS backend the way ``pysstp server``'s EAP pass-through drives
it (RFC 3579), for the tests against real RADIUS servers (FreeRADIUS, hostapd)."""

from __future__ import annotations

from pysstp.aaa.backend import Answer, AuthBackend, CallContext
from pysstp.ppp.auth.eap import EapPeer
from pysstp.ppp.auth.eap_packet import EapPacket
from pysstp.ppp.auth.verification import EapProof, Verification
from pysstp.ppp.constants import AuthMethod, EapCode, EapType
from pysstp.ppp.events import Authenticated, AuthenticationFailed


async def run_eap(
    backend: AuthBackend, peer: EapPeer, user: str, method: AuthMethod, context: CallContext
) -> tuple[list[Answer], Authenticated | AuthenticationFailed]:
    """Drive ``peer`` against the backend as the server's EAP pass-through would: Request/Identity
    from us, then every Response to RADIUS and every EAP packet from RADIUS to the peer."""
    now = 0.0
    peer.start(now)
    request = EapPacket(EapCode.REQUEST, 1, EapType.IDENTITY).encode()
    answers: list[Answer] = []
    for _ in range(64):
        peer.receive(request, now)
        events = peer.take_events()
        if events:
            assert isinstance(events[0], Authenticated | AuthenticationFailed)
            return answers, events[0]
        outgoing = peer.take_outgoing()
        assert len(outgoing) == 1, outgoing
        answer = await backend.verify(Verification(method, user, EapProof(outgoing[0][1])), context)
        answers.append(answer)
        assert answer.verdict.eap is not None, answer
        request = answer.verdict.eap
    raise AssertionError("the EAP exchange did not end in 64 round trips")
