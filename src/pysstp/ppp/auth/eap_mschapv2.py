"""EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2): its Type-Data codec and the peer's half, shared by
EAP-MSCHAPv2 itself (:mod:`pysstp.ppp.auth.eap`) and the inner method of PEAP (:mod:`pysstp.ppp.auth.peap`).

The MS-CHAPv2 values are the ones plain CHAP carries (:mod:`pysstp.ppp.auth.mschapv2_core`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pysstp.errors import AuthError
from pysstp.ppp.auth.base import decode_name
from pysstp.ppp.auth.chap import decode_value_name, encode_value_name
from pysstp.ppp.auth.mschapv2_core import MsChapV2Client
from pysstp.ppp.constants import MsChapV2OpCode

_MS_HEADER = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class EapMsChapV2Data:
    """EAP-MSCHAPv2 Type-Data: OpCode, MS-CHAPv2-ID, MS-Length and the payload.

    The peer's answers to Success and Failure are the OpCode alone (``ms_id`` is then ``None``).
    """

    opcode: int
    ms_id: int | None = None
    payload: bytes = b""

    def encode(self) -> bytes:
        """Type-Data bytes; MS-Length counts from the OpCode on (= EAP Length - 5)."""
        if self.ms_id is None:
            return bytes([self.opcode])
        return _MS_HEADER.pack(self.opcode, self.ms_id, _MS_HEADER.size + len(self.payload)) + self.payload

    @classmethod
    def decode(cls, data: bytes) -> EapMsChapV2Data:
        """Parse Type-Data, insisting that MS-Length agrees with the EAP Length."""
        if len(data) == 1:
            return cls(data[0])
        if len(data) < _MS_HEADER.size:
            raise AuthError(f"EAP-MSCHAPv2 data of {len(data)} bytes is shorter than its header")
        opcode, ms_id, ms_length = _MS_HEADER.unpack_from(data)
        if ms_length != len(data):
            raise AuthError(
                f"EAP-MSCHAPv2 MS-Length {ms_length} disagrees with EAP Length ({len(data)} bytes)"
            )
        return cls(opcode, ms_id, data[_MS_HEADER.size :])


class EapMsChapV2Peer:
    """The peer's EAP-MSCHAPv2 exchange: answers the Challenge, checks the server's S= value in the
    Success request and acknowledges it, acknowledges a Failure request.

    After :meth:`answer`: :attr:`success` holds the server's M= text once S= proved the server knows the
    password; :attr:`failure` the reason and E= code of a Failure request; :attr:`mutual_failure` says the
    S= value was wrong (no answer is sent then).
    """

    def __init__(self, client: MsChapV2Client) -> None:
        self.client = client
        self.success: str | None = None
        self.failure: tuple[str, int | None] | None = None
        self.mutual_failure = False

    def answer(self, ms: EapMsChapV2Data) -> bytes | None:
        """Type-Data of our answer, or ``None`` for a request that gets none (may raise
        :class:`AuthError` for a request without MS-CHAPv2-ID and MS-Length)."""
        if ms.ms_id is None:
            raise AuthError("EAP-MSCHAPv2 request without MS-CHAPv2-ID and MS-Length")
        if ms.opcode == MsChapV2OpCode.CHALLENGE:
            challenge, _server_name = decode_value_name(ms.payload)
            value = self.client.respond(challenge)
            payload = encode_value_name(value, self.client.username)
            return EapMsChapV2Data(MsChapV2OpCode.RESPONSE, ms.ms_id, payload).encode()
        if ms.opcode == MsChapV2OpCode.SUCCESS and self.client.answered:
            message = decode_name(ms.payload)
            if not self.client.check_success(message):
                self.mutual_failure = True
                return None
            self.success = self.client.success_message(message)
            return EapMsChapV2Data(MsChapV2OpCode.SUCCESS).encode()
        if ms.opcode == MsChapV2OpCode.FAILURE and self.client.answered:
            self.failure = self.client.failure_reason(decode_name(ms.payload))
            return EapMsChapV2Data(MsChapV2OpCode.FAILURE).encode()
        return None
