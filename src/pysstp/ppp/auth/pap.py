"""PAP (RFC 1334 §2): the peer sends name and password in the clear, the authenticator says Ack or Nak.

Inside SSTP the password is protected by TLS. The authenticator asks its backend about the password (a
:class:`~pysstp.ppp.auth.verification.PapProof`); the local backend checks it against the stored NT hash,
so PAP works for users whose plaintext is not kept. PAP derives no keys: the HLAK is zeros.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from pysstp.errors import AuthError
from pysstp.ppp.auth.base import (
    AUTH_WAIT_TIMEOUT,
    FAILURE_MESSAGE,
    SUCCESS_MESSAGE,
    Authenticator,
    AuthPeer,
    decode_name,
    encode_text,
    register_authenticator,
    register_peer,
)
from pysstp.ppp.auth.keys import ZERO_HLAK
from pysstp.ppp.auth.verification import PapProof, Verdict, Verification
from pysstp.ppp.constants import MAX_AUTH_TRANSMITS, AuthMethod, PapCode, Protocol
from pysstp.ppp.packet import join_packet, split_packet
from pysstp.randomness import RandomBytes

_MAX_FIELD = 0xFF


@dataclass(frozen=True, slots=True)
class PapPacket:
    """A PAP packet; ``fields`` are the length-prefixed strings (PeerID and Password, or Message)."""

    code: PapCode
    identifier: int
    fields: tuple[bytes, ...]

    def encode(self) -> bytes:
        """Wire bytes: Code, Identifier, Length, then each field as length byte + bytes."""
        body = b"".join(bytes([len(field)]) + field for field in self.fields)
        return join_packet(self.code, self.identifier, body)

    @classmethod
    def decode(cls, packet: bytes) -> PapPacket:
        """Parse a packet; bytes past Length are padding and ignored (RFC 1334 §2.2)."""
        code, identifier, body = split_packet(packet, "PAP", AuthError)
        try:
            pap_code = PapCode(code)
        except ValueError:
            raise AuthError(f"unknown PAP code {code}") from None
        wanted = 2 if pap_code is PapCode.AUTHENTICATE_REQUEST else 1
        fields: list[bytes] = []
        offset = 0
        for _ in range(wanted):
            if offset >= len(body):
                if pap_code is not PapCode.AUTHENTICATE_REQUEST:
                    # An Ack/Nak without even the Msg-Length byte: some servers send that; it means "".
                    fields.append(b"")
                    break
                raise AuthError("PAP Authenticate-Request is missing a field")
            size = body[offset]
            if offset + 1 + size > len(body):
                raise AuthError("PAP field runs past the end of the packet")
            fields.append(body[offset + 1 : offset + 1 + size])
            offset += 1 + size
        return cls(pap_code, identifier, tuple(fields))


def _check_field(value: bytes, what: str) -> bytes:
    if len(value) > _MAX_FIELD:
        raise ValueError(f"PAP {what} is longer than {_MAX_FIELD} bytes")
    return value


class PapAuthenticator(Authenticator):
    """Server side of PAP: waits for an Authenticate-Request, asks about it, answers Ack or Nak.

    Retransmitted requests while the question is open are ignored (the answer will come); after the
    decision they get the same answer again (the first one may be lost).
    """

    __slots__ = ("_answer", "_identifier")

    protocol = Protocol.PAP
    method = AuthMethod.PAP

    def __init__(self, *, name: str = "pysstp", random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__(name=name, random_bytes=random_bytes)
        self._answer: PapPacket | None = None
        self._identifier: int | None = None

    def _receive(self, packet: bytes, now: float) -> None:
        pap = PapPacket.decode(packet)
        if pap.code is not PapCode.AUTHENTICATE_REQUEST:
            self.discarded += 1
        elif self._answer is not None:
            self._send(PapPacket(self._answer.code, pap.identifier, self._answer.fields).encode())
        elif self.pending is None and not self.finished:
            peer_id, password = pap.fields
            self._identifier = pap.identifier
            # A password that is not UTF-8 cannot match a stored one; U+FFFD keeps it wrong.
            proof = PapProof(password.decode("utf-8", "replace"))
            self._ask(self.method, decode_name(peer_id), proof, now)

    def _on_verdict(self, question: Verification, verdict: Verdict, now: float) -> None:
        code = PapCode.AUTHENTICATE_ACK if verdict.success else PapCode.AUTHENTICATE_NAK
        text = verdict.message or (SUCCESS_MESSAGE if verdict.success else FAILURE_MESSAGE)
        assert self._identifier is not None  # set with the question
        self._answer = PapPacket(code, self._identifier, (encode_text(text)[:_MAX_FIELD],))
        self._send(self._answer.encode())
        self._finish_with(replace(verdict, message=text), keyed=False)

    def _give_up(self, now: float) -> None:
        self._fail(None, f"peer sent no PAP Authenticate-Request within {AUTH_WAIT_TIMEOUT:.0f} s")


class PapPeer(AuthPeer):
    """Client side of PAP: sends Authenticate-Request every Timer.AUTH_RESTART until Ack or Nak."""

    __slots__ = ("_identifier",)

    protocol = Protocol.PAP
    method = AuthMethod.PAP

    def __init__(self, username: str, password: str, *, random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__(username, password, random_bytes=random_bytes)
        self._identifier: int | None = None

    def start(self, now: float) -> None:
        """Send the Authenticate-Request (PAP is the one method where the peer speaks first)."""
        self._identifier = self._random_identifier()
        fields = (
            _check_field(encode_text(self.username), "user name"),
            _check_field(encode_text(self.password), "password"),
        )
        request = PapPacket(PapCode.AUTHENTICATE_REQUEST, self._identifier, fields)
        self._send_request(request.encode(), now)

    def _receive(self, packet: bytes, now: float) -> None:
        pap = PapPacket.decode(packet)
        if (
            self.finished
            or pap.code is PapCode.AUTHENTICATE_REQUEST
            or self._identifier is None
            or pap.identifier != self._identifier
        ):
            self.discarded += 1
            return
        message = decode_name(pap.fields[0])
        if pap.code is PapCode.AUTHENTICATE_ACK:
            self._succeed(self.username, ZERO_HLAK, message)
        else:
            reason = "server rejected the user name or password (PAP Authenticate-Nak)"
            self._fail(self.username, f"{reason}: {message}" if message else reason)

    def _give_up(self, now: float) -> None:
        self._fail(self.username, f"server did not answer {MAX_AUTH_TRANSMITS} PAP Authenticate-Requests")


register_authenticator(
    AuthMethod.PAP, lambda options: PapAuthenticator(name=options.name, random_bytes=options.random_bytes)
)
register_peer(
    AuthMethod.PAP,
    lambda options: PapPeer(options.username, options.password, random_bytes=options.random_bytes),
)
