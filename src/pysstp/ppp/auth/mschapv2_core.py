"""One MS-CHAPv2 exchange for each role, independent of its carrier.

Plain MS-CHAPv2 carries these values in CHAP packets (:mod:`pysstp.ppp.auth.chap`), EAP-MSCHAPv2 in EAP
Type-Data (:mod:`pysstp.ppp.auth.eap`); both drive the same :class:`MsChapV2Server` and
:class:`MsChapV2Client`, so the questions, the answers and the keys cannot drift apart. The server's half
only frames the question (:class:`~pysstp.ppp.auth.verification.MsChapV2Proof`): whoever answers it (the
local user file, RADIUS) checks the NT-Response and makes the S= value and the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pysstp.errors import AuthError
from pysstp.ppp.auth.base import FAILURE_MESSAGE
from pysstp.ppp.auth.mschapv2 import (
    PEER_CHALLENGE_SIZE,
    MsChapV2Response,
    check_authenticator_response,
    describe_error,
    format_failure,
    generate_nt_response,
    nt_password_hash,
    parse_failure,
    success_text,
)
from pysstp.ppp.auth.verification import MsChapV2Proof, Verdict
from pysstp.ppp.constants import MSCHAPV2_CHALLENGE_SIZE, MSCHAPV2_RESPONSE_SIZE, MsChapV2Error
from pysstp.randomness import RandomBytes

KeyDerivation = Callable[[bytes, bytes], bytes]
"""(NT hash, NT-Response) -> HLAK: plain MS-CHAPv2 and EAP-MSCHAPv2 name their keys differently."""


class MsChapV2Server:
    """The authenticator's half: a fresh AuthenticatorChallenge, the question a Response asks, and the
    Failure text when the answer brings none."""

    __slots__ = ("_random_bytes", "challenge")

    def __init__(self, random_bytes: RandomBytes) -> None:
        self._random_bytes = random_bytes
        self.challenge = random_bytes(MSCHAPV2_CHALLENGE_SIZE)
        """AuthenticatorChallenge, sent in the Challenge packet."""

    def proof(self, identifier: int, value: bytes) -> MsChapV2Proof | Verdict:
        """The question a Response's Value asks, or the refusal of a Value that is not 49 bytes."""
        if len(value) != MSCHAPV2_RESPONSE_SIZE:
            reason = f"peer sent a {len(value)}-byte MS-CHAPv2 Response, not 49"
            return self.complete(Verdict(False, "", reason=reason))
        response = MsChapV2Response.decode(value)
        return MsChapV2Proof(
            identifier, self.challenge, response.peer_challenge, response.nt_response, response.flags
        )

    def complete(self, verdict: Verdict) -> Verdict:
        """A failure with its E= code in the reason and, when the backend gave no text, ours."""
        if verdict.success:
            return verdict
        error = verdict.error_code or MsChapV2Error.AUTHENTICATION_FAILURE
        message = verdict.message
        if not message:
            # C= is a new challenge for a retry; we send R=0, but peers expect the field (Windows sends it).
            challenge = self._random_bytes(MSCHAPV2_CHALLENGE_SIZE)
            message = format_failure(error, challenge, FAILURE_MESSAGE)
        reason = verdict.reason or "refused by the authentication backend"
        return replace(verdict, message=message, reason=f"{reason} (E={int(error)})", error_code=error)


class MsChapV2Client:
    """The peer's half: answers a challenge, then checks the server's S= value (mutual authentication)."""

    __slots__ = ("_challenge", "_derive_hlak", "_password_hash", "_random_bytes", "_response", "username")

    def __init__(
        self, username: str, password: str, random_bytes: RandomBytes, derive_hlak: KeyDerivation
    ) -> None:
        self.username = username
        self._password_hash = nt_password_hash(password)
        self._random_bytes = random_bytes
        self._derive_hlak = derive_hlak
        self._challenge: bytes | None = None
        self._response: MsChapV2Response | None = None

    def respond(self, authenticator_challenge: bytes) -> bytes:
        """The 49-byte Response Value for a Challenge.

        A repeated challenge gets the same answer: if the server retransmitted its Challenge while our
        first Response was on its way, its S= value is computed from that first Response.
        """
        if len(authenticator_challenge) != MSCHAPV2_CHALLENGE_SIZE:
            raise AuthError(f"MS-CHAPv2 Challenge of {len(authenticator_challenge)} bytes, not 16")
        if self._response is None or authenticator_challenge != self._challenge:
            peer_challenge = self._random_bytes(PEER_CHALLENGE_SIZE)
            nt_response = generate_nt_response(
                authenticator_challenge, peer_challenge, self.username, self._password_hash
            )
            self._challenge = authenticator_challenge
            self._response = MsChapV2Response(peer_challenge, nt_response)
        return self._response.encode()

    @property
    def answered(self) -> bool:
        """True once a Response has been computed."""
        return self._response is not None

    def check_success(self, text: str) -> bool:
        """Does the Success message carry the S= value only a server that knows our password can make?"""
        if self._response is None or self._challenge is None:
            return False
        return check_authenticator_response(
            self._password_hash,
            self._response.nt_response,
            self._response.peer_challenge,
            self._challenge,
            self.username,
            text,
        )

    @property
    def hlak(self) -> bytes:
        """The key for the crypto binding; only meaningful after :meth:`check_success` passed."""
        if self._response is None:
            raise RuntimeError("no MS-CHAPv2 Response was sent yet")
        return self._derive_hlak(self._password_hash, self._response.nt_response)

    @staticmethod
    def success_message(text: str) -> str:
        """The server's M= text of a Success message."""
        return success_text(text)

    @staticmethod
    def failure_reason(text: str) -> tuple[str, int | None]:
        """Reason and E= code for a Failure message; the server's M= text is quoted when present."""
        failure = parse_failure(text)
        reason = describe_error(failure.error)
        if failure.message:
            reason = f"{reason}{SERVER_SAYS}{failure.message!r}"
        return reason, failure.error


SERVER_SAYS = "; server says "
"""Joins a failure's reason and the server's own M= text (:meth:`MsChapV2Client.failure_reason`)."""

MUTUAL_AUTHENTICATION_FAILED = "server failed mutual authentication (bad S= value)"
