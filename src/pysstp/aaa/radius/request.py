"""An Access-Request (RFC 2865 §4.1) for one login of one call, built through pyrad.

Every request names the NAS and the call (RFC 2865 §5, RFC 2869 §5.14) and carries the proof the PPP
authenticator received: PAP's password hidden per RFC 2865 §5.2, CHAP-MD5's response (§5.3, §5.40),
MS-CHAPv2's challenge and response (RFC 2548 §2.3.2), or the peer's EAP packet (RFC 3579 §3.1) with the
State of the exchange so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from pyrad import packet as radius_packet

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius.dictionary import radius_dictionary
from pysstp.aaa.radius.eap_message import split_eap_message
from pysstp.aaa.radius.server import RadiusServer
from pysstp.ppp.auth.verification import ChapMd5Proof, EapProof, MsChapV2Proof, PapProof, Proof

MSCHAP2_RESPONSE_RESERVED = bytes(8)
"""MS-CHAP2-Response: Ident, Flags, Peer-Challenge, 8 reserved zero bytes, Response (RFC 2548 §2.3.2)."""


@dataclass(frozen=True, slots=True)
class NasIdentity:
    """How pysstp names itself to RADIUS servers (NAS-Identifier and NAS-IP-Address or NAS-IPv6-Address)."""

    identifier: str
    address: IPv4Address | IPv6Address | None = None


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One Access-Request of the call ``context``: ``user`` as the peer named itself, and its ``proof``.

    ``state`` is the State of the previous Access-Challenge of an EAP exchange (RFC 2865 §5.24).
    """

    nas: NasIdentity
    context: CallContext
    user: str
    proof: Proof
    state: bytes | None = None

    def packet(self, server: RadiusServer) -> radius_packet.AuthPacket:
        """The request for ``server`` (its secret hides the password and signs the request); the client
        sets the Identifier."""
        request = radius_packet.AuthPacket(
            code=radius_packet.AccessRequest, id=0, secret=server.secret, dict=radius_dictionary()
        )
        # First, so the Request Authenticator exists before User-Password is hidden with it; pyrad
        # computes the Message-Authenticator when the packet is encoded (RFC 3579 §3.2).
        request.add_message_authenticator()
        request.AddAttribute("User-Name", self.user)
        self._add_call(request)
        match self.proof:
            case PapProof(password=password):
                request.AddAttribute("User-Password", request.PwCrypt(password))
            case ChapMd5Proof(identifier=identifier, challenge=challenge, response=response):
                request.AddAttribute("CHAP-Password", bytes([identifier]) + response)
                request.AddAttribute("CHAP-Challenge", challenge)
            case MsChapV2Proof() as proof:
                request.AddAttribute("MS-CHAP-Challenge", proof.authenticator_challenge)
                request.AddAttribute(
                    "MS-CHAP2-Response",
                    bytes([proof.identifier, proof.flags])
                    + proof.peer_challenge
                    + MSCHAP2_RESPONSE_RESERVED
                    + proof.nt_response,
                )
            case EapProof(packet=eap):
                for piece in split_eap_message(eap):
                    request.AddAttribute("EAP-Message", piece)
        if self.state is not None:
            request.AddAttribute("State", self.state)
        return request

    def _add_call(self, request: radius_packet.AuthPacket) -> None:
        nas = self.nas
        request.AddAttribute("NAS-Identifier", nas.identifier)
        if isinstance(nas.address, IPv4Address):
            request.AddAttribute("NAS-IP-Address", str(nas.address))
        elif isinstance(nas.address, IPv6Address):
            request.AddAttribute("NAS-IPv6-Address", str(nas.address))
        context = self.context
        request.AddAttribute("NAS-Port", context.nas_port)
        request.AddAttribute("NAS-Port-Type", "Virtual")
        request.AddAttribute("Service-Type", "Framed-User")
        request.AddAttribute("Framed-Protocol", "PPP")
        if context.calling_station:
            request.AddAttribute("Calling-Station-Id", context.calling_station)
        if context.called_station:
            request.AddAttribute("Called-Station-Id", context.called_station)
        request.AddAttribute("Acct-Session-Id", context.session_id)
