"""The local backend: logins checked against the user file (or, for tests and the demo, an in-memory store).

It answers the authenticators' questions (docs/architecture.md, "Authentication") from a
:class:`CredentialStore`: PAP, MS-CHAPv2 and EAP-MSCHAPv2's inner MS-CHAPv2 from the NT hash alone;
CHAP-MD5 and EAP-MD5 only where a plaintext is kept (:class:`StaticCredentials`; the user file keeps none).
A ``DOMAIN\\user`` name that is not known as sent is tried as ``user``. The user file's entry gives the
:class:`~pysstp.aaa.backend.Authorization` (fixed address, routes, session limit) and says why a known
user is refused (disabled) in the log, while the peer hears the same as for a wrong password.

The checks are synchronous (:meth:`LocalBackend.check`); :meth:`LocalBackend.verify` is the
:class:`~pysstp.aaa.backend.AuthBackend` face of them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Protocol

from pysstp.aaa.backend import Answer, Authorization, CallContext
from pysstp.aaa.userdb import UserEntry
from pysstp.ppp.auth.base import SUCCESS_MESSAGE, encode_text
from pysstp.ppp.auth.chap import chap_md5_response
from pysstp.ppp.auth.keys import eap_mschapv2_msk, hlak_from_key_material, mschapv2_hlak
from pysstp.ppp.auth.mschapv2 import (
    format_success,
    generate_authenticator_response,
    generate_nt_response,
    nt_password_hash,
)
from pysstp.ppp.auth.verification import (
    CertificateProof,
    ChapMd5Proof,
    EapProof,
    MsChapV2Proof,
    PapProof,
    Verdict,
    Verification,
)
from pysstp.ppp.constants import AuthMethod, MsChapV2Error

UserLookup = Callable[[str], UserEntry | None]
"""The user file's entry of a name (exact), enabled or not."""


class CredentialStore(Protocol):
    """Where the local backend looks users up.

    ``nt_hash`` is what a server normally keeps (MD4 of the UTF-16LE password): it suffices for PAP,
    MS-CHAPv2 and EAP-MSCHAPv2. ``password`` returns a plaintext only where the administrator keeps one;
    CHAP-MD5 and EAP-MD5 cannot work without it.
    """

    def nt_hash(self, user: str) -> bytes | None:
        """The user's NT password hash, or ``None`` for an unknown (or disabled) user."""
        ...

    def password(self, user: str) -> str | None:
        """The user's plaintext password, or ``None`` (unknown user, or only a hash is stored)."""
        ...


class StaticCredentials:
    """An in-memory :class:`CredentialStore` built from ``{user: password}`` (tests and the demo)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._passwords = dict(users)
        self._hashes = {user: nt_password_hash(password) for user, password in users.items()}

    def nt_hash(self, user: str) -> bytes | None:
        """The NT hash computed when the store was built."""
        return self._hashes.get(user)

    def password(self, user: str) -> str | None:
        """The plaintext the store was built with."""
        return self._passwords.get(user)


def name_candidates(name: str) -> tuple[str, ...]:
    """The names a sent user name may be stored under, in order: as sent, then the part after the last
    backslash of a ``DOMAIN\\user`` name."""
    if "\\" in name:
        return (name, name.rpartition("\\")[2])
    return (name,)


def lookup_user(credentials: CredentialStore, name: str) -> str | None:
    """The name under which ``credentials`` knows the user who sent ``name``, or ``None``.

    The name as sent wins; if it is unknown and carries a ``DOMAIN\\`` prefix, the part after the last
    backslash is tried (Windows sends ``DOMAIN\\user`` when the user typed it so).
    """
    for candidate in name_candidates(name):
        if credentials.nt_hash(candidate) is not None or credentials.password(candidate) is not None:
            return candidate
    return None


def stored_nt_hash(credentials: CredentialStore, user: str) -> bytes | None:
    """The NT hash of a known user; derived from the plaintext if that is all the store keeps."""
    stored = credentials.nt_hash(user)
    if stored is None and (password := credentials.password(user)) is not None:
        stored = nt_password_hash(password)
    return stored


class LocalBackend:
    """The :class:`~pysstp.aaa.backend.AuthBackend` of the local user file (``backend = "local"``).

    ``users`` gives the user file's entries (for the authorization and the "disabled" reason); without
    it every known user gets the server's defaults.
    """

    name = "local"

    def __init__(self, credentials: CredentialStore, users: UserLookup | None = None) -> None:
        self.credentials = credentials
        self.users = users

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        """Answer at once: the local checks never wait."""
        return self.check(question)

    def finished(self, context: CallContext) -> None:
        """Nothing is kept per call."""

    def check(self, question: Verification) -> Answer:
        """The answer to one question."""
        proof = question.proof
        name = question.user
        if isinstance(proof, EapProof):
            reason = "EAP pass-through needs a backend that runs EAP (RADIUS); the local backend does not"
            return Answer(Verdict(False, name, reason=reason))
        if isinstance(proof, CertificateProof):
            return self._certificate(name, proof)
        user = lookup_user(self.credentials, name)
        if user is None:
            return Answer(Verdict(False, name, reason=self._unknown(name)))
        if isinstance(proof, ChapMd5Proof):
            verdict = self._md5(user, proof, question.method)
        elif isinstance(proof, PapProof):
            verdict = self._pap(user, proof)
        else:
            verdict = self._mschapv2(user, name, proof, question.method)
        return Answer(verdict, self._authorization(user) if verdict.success else Authorization())

    def _pap(self, user: str, proof: PapProof) -> Verdict:
        stored = stored_nt_hash(self.credentials, user)
        offered = nt_password_hash(proof.password)
        if stored is None or not hmac.compare_digest(offered, stored):
            return Verdict(False, user, reason=f"wrong password for user {user!r}")
        return Verdict(True, user)

    def _md5(self, user: str, proof: ChapMd5Proof, method: AuthMethod) -> Verdict:
        password = self.credentials.password(user)
        if password is None:
            label = "EAP-MD5" if method is AuthMethod.EAP_MD5 else "CHAP-MD5"
            reason = f"{label} needs the plaintext password of user {user!r}, and only its NT hash is stored"
            return Verdict(False, user, reason=reason)
        expected = chap_md5_response(proof.identifier, encode_text(password), proof.challenge)
        if not hmac.compare_digest(expected, proof.response):
            return Verdict(False, user, reason=f"wrong password for user {user!r}")
        return Verdict(True, user)

    def _mschapv2(self, user: str, sent: str, proof: MsChapV2Proof, method: AuthMethod) -> Verdict:
        """RFC 2759 §8: the hash uses the name the way the peer sent it (maybe ``DOMAIN\\user``)."""
        error = MsChapV2Error.AUTHENTICATION_FAILURE
        password_hash = stored_nt_hash(self.credentials, user)
        if password_hash is None:
            return Verdict(False, user, reason=f"no password hash stored for user {user!r}", error_code=error)
        challenge = proof.authenticator_challenge
        expected = generate_nt_response(challenge, proof.peer_challenge, sent, password_hash)
        if not hmac.compare_digest(expected, proof.nt_response):
            return Verdict(False, user, reason=f"wrong password for user {user!r}", error_code=error)
        authenticator_response = generate_authenticator_response(
            password_hash, proof.nt_response, proof.peer_challenge, challenge, sent
        )
        if method is AuthMethod.EAP_MSCHAP_V2:
            hlak = hlak_from_key_material(eap_mschapv2_msk(password_hash, proof.nt_response))
        else:
            hlak = mschapv2_hlak(password_hash, proof.nt_response)
        return Verdict(True, user, format_success(authenticator_response, SUCCESS_MESSAGE), hlak=hlak)

    def _certificate(self, name: str, proof: CertificateProof) -> Answer:
        """The CA already vouched for the name; the user file decides only when it must know the user."""
        user = lookup_user(self.credentials, name)
        if user is None:
            if proof.require_user:
                reason = self._unknown(name, f"certificate user {name!r} is not in the user database")
                return Answer(Verdict(False, name, reason=reason))
            return Answer(Verdict(True, name))
        return Answer(Verdict(True, user), self._authorization(user))

    def _unknown(self, name: str, otherwise: str | None = None) -> str:
        """Why ``name`` is refused: a disabled user is named as such in the log (the store answers for
        it as for an unknown one, so the peer learns nothing)."""
        if self.users is not None:
            for candidate in name_candidates(name):
                entry = self.users(candidate)
                if entry is not None and not entry.enabled:
                    return f"user {candidate!r} is disabled"
        return otherwise or f"unknown user {name!r}"

    def _authorization(self, user: str) -> Authorization:
        entry = self.users(user) if self.users is not None else None
        if entry is None:
            return Authorization()
        return Authorization(
            address=entry.address,
            routes=entry.routes,
            max_sessions=entry.max_sessions,
            push_routes=entry.push_routes,
            domain=entry.domain,
            rate_in=entry.rate_in,
            rate_out=entry.rate_out,
        )
