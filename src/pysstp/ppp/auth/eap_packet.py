"""The EAP packet (RFC 3748 §4): the codec every EAP method and the PEAP tunnel share."""

from __future__ import annotations

from dataclasses import dataclass

from pysstp.errors import AuthError
from pysstp.ppp.constants import EapCode
from pysstp.ppp.packet import join_packet, split_packet

_TYPE_SIZE = 1


@dataclass(frozen=True, slots=True)
class EapPacket:
    """An EAP packet. Requests and Responses have a ``type`` and ``data`` (Type-Data); Success and
    Failure have neither."""

    code: EapCode
    identifier: int
    type: int | None = None
    data: bytes = b""

    def encode(self) -> bytes:
        """Wire bytes: Code, Identifier, Length, then Type and Type-Data for a Request/Response."""
        body = b"" if self.type is None else bytes([self.type]) + self.data
        return join_packet(self.code, self.identifier, body)

    @classmethod
    def decode(cls, packet: bytes) -> EapPacket:
        """Parse a packet; bytes past Length are PPP padding and ignored."""
        code, identifier, body = split_packet(packet, "EAP", AuthError)
        try:
            eap_code = EapCode(code)
        except ValueError:
            raise AuthError(f"unknown EAP code {code}") from None
        if eap_code in (EapCode.SUCCESS, EapCode.FAILURE):
            return cls(eap_code, identifier)
        if len(body) < _TYPE_SIZE:
            raise AuthError(f"EAP {eap_code.name} without a Type")
        return cls(eap_code, identifier, body[0], body[_TYPE_SIZE:])
