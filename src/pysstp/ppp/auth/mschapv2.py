"""MS-CHAPv2 (RFC 2759): the crypto, and the text and value formats that ride in CHAP and EAP packets.

Everything here is a pure function of its arguments. The state machines that send these values live in
:mod:`pysstp.ppp.auth.chap` (MS-CHAPv2 inside CHAP) and :mod:`pysstp.ppp.auth.eap` (inside EAP); both use the
one core in :mod:`pysstp.ppp.auth.mschapv2_core`.

MD4 and DES come from pycryptodome: ``hashlib.new("md4")`` is missing on OpenSSL 3 builds.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from Crypto.Cipher import DES
from Crypto.Hash import MD4

from pysstp.errors import AuthError
from pysstp.ppp.constants import (
    MSCHAPV2_CHALLENGE_SIZE,
    MSCHAPV2_RESPONSE_SIZE,
    MSCHAPV2_VERSION,
    MsChapV2Error,
)

PEER_CHALLENGE_SIZE = 16
NT_RESPONSE_SIZE = 24
RESERVED_SIZE = 8
CHALLENGE_HASH_SIZE = 8
AUTHENTICATOR_RESPONSE_PREFIX = "S="
AUTHENTICATOR_RESPONSE_LENGTH = len(AUTHENTICATOR_RESPONSE_PREFIX) + 2 * hashlib.sha1().digest_size
"""``S=`` and 40 hex digits."""

_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"
_DES_KEY_PIECE = 7
_DES_BLOCK = 8
_PADDED_HASH_SIZE = 3 * _DES_KEY_PIECE


# -- RFC 2759 §8 ------------------------------------------------------------------------------------


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash: MD4 of the password in UTF-16LE, without a terminator (RFC 2759 §8.3)."""
    return bytes(MD4.new(password.encode("utf-16-le")).digest())


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash: MD4 of the NT hash (RFC 2759 §8.4)."""
    return bytes(MD4.new(password_hash).digest())


def strip_domain(username: str) -> str:
    """The user name without any ``DOMAIN\\`` prefix: everything through the last backslash goes."""
    return username.rpartition("\\")[2]


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: str) -> bytes:
    """ChallengeHash (RFC 2759 §8.2); the user name loses its domain, as pppd and Windows do."""
    digest = hashlib.sha1(peer_challenge + authenticator_challenge + strip_domain(username).encode())
    return digest.digest()[:CHALLENGE_HASH_SIZE]


def _des_key(piece: bytes) -> bytes:
    """Spread 56 key bits over 8 bytes, 7 bits each, MSB first; the low (parity) bit is ignored by DES."""
    bits = int.from_bytes(piece, "big")
    return bytes(((bits >> (_DES_KEY_PIECE * (_DES_BLOCK - 1 - i))) & 0x7F) << 1 for i in range(_DES_BLOCK))


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse (RFC 2759 §8.5): three DES encryptions of the 8-byte challenge."""
    padded = password_hash.ljust(_PADDED_HASH_SIZE, b"\0")
    return b"".join(
        DES.new(_des_key(padded[i : i + _DES_KEY_PIECE]), DES.MODE_ECB).encrypt(challenge)
        for i in range(0, _PADDED_HASH_SIZE, _DES_KEY_PIECE)
    )


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, username: str, password_hash: bytes
) -> bytes:
    """GenerateNTResponse (RFC 2759 §8.1), from the NT hash so that a server never needs the plaintext."""
    return challenge_response(
        challenge_hash(peer_challenge, authenticator_challenge, username), password_hash
    )


def generate_authenticator_response(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str,
) -> str:
    """GenerateAuthenticatorResponse (RFC 2759 §8.7): ``"S="`` and 40 uppercase hex digits."""
    digest = hashlib.sha1(hash_nt_password_hash(password_hash) + nt_response + _MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + challenge + _MAGIC2).digest()
    return AUTHENTICATOR_RESPONSE_PREFIX + digest.hex().upper()


def check_authenticator_response(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str,
    received: str,
) -> bool:
    """CheckAuthenticatorResponse (RFC 2759 §8.8): the first 42 characters, any case, constant time.

    ``received`` may be the whole Success message; text after the ``S=`` value is not part of the check.
    """
    expected = generate_authenticator_response(
        password_hash, nt_response, peer_challenge, authenticator_challenge, username
    )
    candidate = received[:AUTHENTICATOR_RESPONSE_LENGTH].upper()
    return hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))


# -- the Response value (RFC 2759 §4) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MsChapV2Response:
    """The 49-byte Value of an MS-CHAPv2 Response packet (RFC 2759 §4)."""

    peer_challenge: bytes
    nt_response: bytes
    flags: int = 0

    def encode(self) -> bytes:
        """The Value bytes: PeerChallenge, 8 reserved zeros, NT-Response, Flags."""
        return self.peer_challenge + bytes(RESERVED_SIZE) + self.nt_response + bytes([self.flags])

    @classmethod
    def decode(cls, value: bytes) -> MsChapV2Response:
        """Parse a Response Value; the reserved bytes are ignored, as Windows does."""
        if len(value) != MSCHAPV2_RESPONSE_SIZE:
            raise AuthError(f"MS-CHAPv2 Response value is {len(value)} bytes, not {MSCHAPV2_RESPONSE_SIZE}")
        nt_start = PEER_CHALLENGE_SIZE + RESERVED_SIZE
        nt_end = nt_start + NT_RESPONSE_SIZE
        return cls(value[:PEER_CHALLENGE_SIZE], value[nt_start:nt_end], value[nt_end])


# -- Success and Failure messages (RFC 2759 §5, §6) -----------------------------------------------


def format_success(authenticator_response: str, message: str) -> str:
    """Success message text: ``S=<40 hex> M=<message>``."""
    return f"{authenticator_response} M={message}"


def success_text(received: str) -> str:
    """The ``M=`` text of a Success message, or "" (SoftEther sends the ``S=`` value alone)."""
    _, sep, text = received.partition("M=")
    return text if sep else ""


def format_failure(error: int, challenge: bytes, message: str) -> str:
    """Failure message text: ``E=<code> R=0 C=<32 hex> V=3 M=<message>`` (no retry is offered)."""
    return f"E={int(error)} R=0 C={challenge.hex().upper()} V={MSCHAPV2_VERSION} M={message}"


@dataclass(frozen=True, slots=True)
class MsChapV2Failure:
    """The fields of a Failure message; any of them may be missing (SoftEther omits M=, accel-ppp C=)."""

    error: int | None = None
    retry: bool | None = None
    challenge: bytes | None = None
    version: int | None = None
    message: str = ""


def parse_failure(text: str) -> MsChapV2Failure:
    """Parse ``E= R= C= V= M=`` in any order; a field with a bad value counts as missing.

    ``M=`` takes the rest of the text (it may contain spaces), so it is cut off first.
    """
    head, sep, message = text.partition("M=")
    if sep and head and not head[-1].isspace():
        # "M=" inside another field's value cannot start the message.
        head, message = text, ""
    fields: dict[str, str] = {}
    for token in head.split():
        key, eq, value = token.partition("=")
        if eq and len(key) == 1:
            fields.setdefault(key.upper(), value)
    challenge = _hex_or_none(fields.get("C"))
    return MsChapV2Failure(
        error=_int_or_none(fields.get("E")),
        retry=None if (r := _int_or_none(fields.get("R"))) is None else r != 0,
        challenge=challenge if challenge is not None and len(challenge) == MSCHAPV2_CHALLENGE_SIZE else None,
        version=_int_or_none(fields.get("V")),
        message=message.strip(),
    )


def describe_error(error: int | None) -> str:
    """A human-readable reason for a Failure's E= code, with the code itself."""
    if error is None:
        return "server refused authentication (no error code)"
    try:
        known = MsChapV2Error(error)
    except ValueError:
        return f"server refused authentication (E={error})"
    return f"{_ERROR_TEXT[known]} (E={error})"


_ERROR_TEXT = {
    MsChapV2Error.AUTH_INTERNAL: "the server could not check the login",
    MsChapV2Error.RESTRICTED_LOGON_HOURS: "logon not allowed at this time",
    MsChapV2Error.ACCT_DISABLED: "account disabled",
    MsChapV2Error.PASSWD_EXPIRED: "password expired",
    MsChapV2Error.NO_DIALIN_PERMISSION: "no dial-in permission",
    MsChapV2Error.AUTHENTICATION_FAILURE: "wrong user name or password",
    MsChapV2Error.CHANGING_PASSWORD: "error changing password",
}


def _int_or_none(value: str | None) -> int | None:
    if value is None or not value.isdecimal() or not value.isascii():
        return None
    return int(value)


def _hex_or_none(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None
