"""CHAP (RFC 1994): the packet codec and the two machines shared by CHAP-MD5 and MS-CHAPv2 (RFC 2759).

The exchange is the same for both algorithms: the authenticator sends a Challenge (retransmitted until
answered), the peer a Response, the authenticator Success or Failure with the Response's identifier.
Only how a Response is computed and judged differs, and that is all a subclass supplies.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace

from pysstp.errors import AuthError
from pysstp.ppp.auth.base import (
    AUTH_WAIT_TIMEOUT,
    FAILURE_MESSAGE,
    SUCCESS_MESSAGE,
    Authenticator,
    AuthenticatorFactory,
    AuthPeer,
    PeerFactory,
    decode_name,
    encode_text,
    register_authenticator,
    register_peer,
    with_keys,
)
from pysstp.ppp.auth.keys import ZERO_HLAK, mschapv2_hlak
from pysstp.ppp.auth.mschapv2_core import MUTUAL_AUTHENTICATION_FAILED, MsChapV2Client, MsChapV2Server
from pysstp.ppp.auth.verification import ChapMd5Proof, Proof, Verdict, Verification
from pysstp.ppp.constants import CHAP_CHALLENGE_SIZE, MAX_AUTH_TRANSMITS, AuthMethod, ChapCode, Protocol
from pysstp.ppp.packet import join_packet, split_packet
from pysstp.randomness import RandomBytes

_MAX_VALUE_SIZE = 0xFF


# -- codec ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChapPacket:
    """A CHAP packet: Code, Identifier and the data after the Length field."""

    code: ChapCode
    identifier: int
    data: bytes

    def encode(self) -> bytes:
        """Wire bytes: Code, Identifier, Length, data."""
        return join_packet(self.code, self.identifier, self.data)

    @classmethod
    def decode(cls, packet: bytes) -> ChapPacket:
        """Parse a packet; bytes past Length are padding and ignored (RFC 1994 §4)."""
        code, identifier, data = split_packet(packet, "CHAP", AuthError)
        try:
            chap_code = ChapCode(code)
        except ValueError:
            raise AuthError(f"unknown CHAP code {code}") from None
        return cls(chap_code, identifier, data)

    @classmethod
    def with_value(cls, code: ChapCode, identifier: int, value: bytes, name: str) -> ChapPacket:
        """A Challenge or Response: Value-Size, Value, Name."""
        return cls(code, identifier, encode_value_name(value, name))

    @classmethod
    def with_message(cls, code: ChapCode, identifier: int, message: str) -> ChapPacket:
        """A Success or Failure carrying a text message."""
        return cls(code, identifier, encode_text(message))


def encode_value_name(value: bytes, name: str) -> bytes:
    """Value-Size, Value and Name, the body of a Challenge or Response (also of EAP-MD5 and EAP-MSCHAPv2)."""
    if len(value) > _MAX_VALUE_SIZE:
        raise ValueError(f"CHAP value of {len(value)} bytes does not fit Value-Size")
    return bytes([len(value)]) + value + encode_text(name)


def decode_value_name(data: bytes) -> tuple[bytes, str]:
    """Split Value-Size, Value and Name."""
    if not data:
        raise AuthError("CHAP Challenge/Response without a Value-Size")
    size = data[0]
    if 1 + size > len(data):
        raise AuthError(f"CHAP Value-Size {size} runs past the end of the packet")
    return data[1 : 1 + size], decode_name(data[1 + size :])


def chap_md5_response(identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """The CHAP-MD5 Response value: MD5(Identifier ‖ secret ‖ challenge) (RFC 1994 §4.1)."""
    return hashlib.md5(bytes([identifier]) + secret + challenge).digest()


# -- the two machines -------------------------------------------------------------------------------


class ChapAuthenticator(Authenticator):
    """Server side of CHAP; subclasses supply the challenge, the question a Response asks and the text
    of the answer.

    A duplicate Response after the decision gets the same Success/Failure again (RFC 1994 §4.2: the
    first one may have been lost); while the question is open, duplicates are ignored.
    """

    __slots__ = ("_answer", "_challenge", "_identifier")

    protocol = Protocol.CHAP
    _keyed = False
    """Whether the method derives keys (a success then needs the HLAK)."""

    def __init__(self, *, name: str = "pysstp", random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__(name=name, random_bytes=random_bytes)
        self._identifier: int | None = None
        self._challenge = b""
        self._answer: bytes | None = None

    def start(self, now: float) -> None:
        """Send the Challenge; it is retransmitted every Timer.AUTH_RESTART until a Response comes."""
        self._identifier = self._random_identifier()
        self._challenge = self._new_challenge()
        challenge = ChapPacket.with_value(ChapCode.CHALLENGE, self._identifier, self._challenge, self.name)
        self._send_request(challenge.encode(), now)

    def _receive(self, packet: bytes, now: float) -> None:
        chap = ChapPacket.decode(packet)
        if (
            chap.code is not ChapCode.RESPONSE
            or self._identifier is None
            or chap.identifier != self._identifier
        ):
            # Responses to an old challenge, and anything a peer has no business sending.
            self.discarded += 1
            return
        if self._answer is not None:
            self._send(self._answer)
            return
        if self.pending is not None or self.finished:
            return
        value, name = decode_value_name(chap.data)
        proof = self._proof(chap.identifier, value)
        if isinstance(proof, Verdict):
            self._stop_retransmission()
            self._conclude(replace(proof, user=name))
        else:
            self._ask(self.method, name, proof, now)

    def _on_verdict(self, question: Verification, verdict: Verdict, now: float) -> None:
        self._conclude(verdict)

    def _conclude(self, verdict: Verdict) -> None:
        assert self._identifier is not None  # a Response was taken only after start()
        verdict = self._complete(with_keys(verdict, keyed=self._keyed))
        code = ChapCode.SUCCESS if verdict.success else ChapCode.FAILURE
        self._answer = ChapPacket.with_message(code, self._identifier, verdict.message).encode()
        self._send(self._answer)
        self._finish_with(verdict, keyed=self._keyed)

    def _give_up(self, now: float) -> None:
        self._fail(None, f"peer did not answer {MAX_AUTH_TRANSMITS} challenges")

    def _new_challenge(self) -> bytes:
        raise NotImplementedError

    def _proof(self, identifier: int, value: bytes) -> Proof | Verdict:
        """The question a Response's Value asks, or the refusal of a malformed one."""
        raise NotImplementedError

    def _complete(self, verdict: Verdict) -> Verdict:
        """The verdict with the Success/Failure text the method sends when the backend gave none."""
        if verdict.message:
            return verdict
        return replace(verdict, message=SUCCESS_MESSAGE if verdict.success else FAILURE_MESSAGE)


class ChapPeer(AuthPeer):
    """Client side of CHAP; subclasses supply the Response value and judge Success/Failure.

    Challenges are answered even after success, because RFC 1994 lets the authenticator re-challenge.
    """

    __slots__ = ("_response_identifier",)

    protocol = Protocol.CHAP

    def __init__(self, username: str, password: str, *, random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__(username, password, random_bytes=random_bytes)
        self._response_identifier: int | None = None

    def _receive(self, packet: bytes, now: float) -> None:
        chap = ChapPacket.decode(packet)
        if chap.code is ChapCode.CHALLENGE:
            value, _server_name = decode_value_name(chap.data)
            answer = self._answer(chap.identifier, value)
            self._response_identifier = chap.identifier
            self._send(
                ChapPacket.with_value(ChapCode.RESPONSE, chap.identifier, answer, self.username).encode()
            )
            self._rearm_wait(now)
        elif (
            chap.code in (ChapCode.SUCCESS, ChapCode.FAILURE)
            and not self.finished
            and chap.identifier == self._response_identifier
        ):
            message = decode_name(chap.data)
            if chap.code is ChapCode.SUCCESS:
                self._on_success(message)
            else:
                self._on_failure(message)
        else:
            self.discarded += 1

    def _give_up(self, now: float) -> None:
        if self._response_identifier is None:
            self._fail(self.username, f"server sent no CHAP Challenge within {AUTH_WAIT_TIMEOUT:.0f} s")
        else:
            self._fail(
                self.username, f"server did not answer our CHAP Response within {AUTH_WAIT_TIMEOUT:.0f} s"
            )

    def _answer(self, identifier: int, challenge: bytes) -> bytes:
        raise NotImplementedError

    def _on_success(self, message: str) -> None:
        raise NotImplementedError

    def _on_failure(self, message: str) -> None:
        raise NotImplementedError


# -- CHAP-MD5 ---------------------------------------------------------------------------------------


class ChapMd5Authenticator(ChapAuthenticator):
    """CHAP with MD5 (algorithm 5): whoever answers needs the user's plaintext password."""

    __slots__ = ()

    method = AuthMethod.CHAP_MD5

    def _new_challenge(self) -> bytes:
        return self._random_bytes(CHAP_CHALLENGE_SIZE)

    def _proof(self, identifier: int, value: bytes) -> Proof | Verdict:
        return ChapMd5Proof(identifier, self._challenge, value)


class ChapMd5Peer(ChapPeer):
    """CHAP-MD5 peer; it has no way to check the server, and no keys (HLAK zeros)."""

    __slots__ = ()

    method = AuthMethod.CHAP_MD5

    def _answer(self, identifier: int, challenge: bytes) -> bytes:
        return chap_md5_response(identifier, encode_text(self.password), challenge)

    def _on_success(self, message: str) -> None:
        self._succeed(self.username, ZERO_HLAK, message)

    def _on_failure(self, message: str) -> None:
        reason = "server rejected the user name or password (CHAP Failure)"
        self._fail(self.username, f"{reason}: {message}" if message else reason)


# -- MS-CHAPv2 (algorithm 0x81) ---------------------------------------------------------------------


class MsChapV2Authenticator(ChapAuthenticator):
    """MS-CHAPv2 authenticator: asks about the NT-Response, sends the backend's S= or E= answer."""

    __slots__ = ("_core",)

    method = AuthMethod.MSCHAP_V2
    _keyed = True

    def __init__(self, *, name: str = "pysstp", random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__(name=name, random_bytes=random_bytes)
        self._core: MsChapV2Server | None = None

    def _new_challenge(self) -> bytes:
        self._core = MsChapV2Server(self._random_bytes)
        return self._core.challenge

    def _proof(self, identifier: int, value: bytes) -> Proof | Verdict:
        assert self._core is not None  # _receive only asks after start() made the challenge
        return self._core.proof(identifier, value)

    def _complete(self, verdict: Verdict) -> Verdict:
        assert self._core is not None
        return self._core.complete(verdict)


class MsChapV2Peer(ChapPeer):
    """MS-CHAPv2 peer: succeeds only when the server's S= value proves it knows the password too."""

    __slots__ = ("_core",)

    method = AuthMethod.MSCHAP_V2

    def __init__(self, username: str, password: str, *, random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__(username, password, random_bytes=random_bytes)
        self._core = MsChapV2Client(username, password, random_bytes, mschapv2_hlak)

    def _answer(self, identifier: int, challenge: bytes) -> bytes:
        return self._core.respond(challenge)

    def _on_success(self, message: str) -> None:
        if self._core.check_success(message):
            self._succeed(self.username, self._core.hlak, self._core.success_message(message))
        else:
            self._fail(self.username, MUTUAL_AUTHENTICATION_FAILED)

    def _on_failure(self, message: str) -> None:
        reason, error_code = self._core.failure_reason(message)
        self._fail(self.username, reason, error_code)


def _authenticator(cls: type[ChapAuthenticator]) -> AuthenticatorFactory:
    return lambda options: cls(name=options.name, random_bytes=options.random_bytes)


def _peer(cls: type[ChapPeer]) -> PeerFactory:
    return lambda options: cls(options.username, options.password, random_bytes=options.random_bytes)


register_authenticator(AuthMethod.CHAP_MD5, _authenticator(ChapMd5Authenticator))
register_authenticator(AuthMethod.MSCHAP_V2, _authenticator(MsChapV2Authenticator))
register_peer(AuthMethod.CHAP_MD5, _peer(ChapMd5Peer))
register_peer(AuthMethod.MSCHAP_V2, _peer(MsChapV2Peer))
