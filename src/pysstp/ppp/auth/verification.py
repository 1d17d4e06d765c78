"""The question a PPP authenticator asks about a login, to be answered later (docs/architecture.md,
"Authentication").

An authenticator does not check a proof itself: it emits a :class:`Verification` as an event and goes on
when the link is given the answer. What answers (the local user file, RADIUS, a test) lives above the
sans-I/O core (:mod:`pysstp.aaa.backend`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pysstp.ppp.constants import AuthMethod
from pysstp.ppp.events import PppEvent


@dataclass(frozen=True, slots=True)
class PapProof:
    """PAP's Authenticate-Request password (RFC 1334 §2.2.1)."""

    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChapMd5Proof:
    """CHAP-MD5: the challenge we sent and the peer's Response value (RFC 1994 §4.1)."""

    identifier: int
    challenge: bytes
    response: bytes


@dataclass(frozen=True, slots=True)
class MsChapV2Proof:
    """MS-CHAPv2, in CHAP or in EAP: our AuthenticatorChallenge and the peer's Response (RFC 2759 §4)."""

    identifier: int
    authenticator_challenge: bytes
    peer_challenge: bytes
    nt_response: bytes
    flags: int = 0


@dataclass(frozen=True, slots=True)
class EapProof:
    """One EAP Response from the peer, to be answered by an EAP server elsewhere (RFC 3579 pass-through)."""

    packet: bytes


@dataclass(frozen=True, slots=True)
class CertificateProof:
    """EAP-TLS: the client certificate already verified against the CAs in the core (RFC 5216); the
    question is only whether the user it names may log in, and with what authorization.

    ``certificate`` is the DER of the client's certificate; ``require_user``: the name must be a known,
    enabled user (``eap_tls.require_user``), else the CA alone decides and the user file (if it knows the
    name) only adds the authorization.
    """

    certificate: bytes = field(repr=False)
    require_user: bool = False


Proof = PapProof | ChapMd5Proof | MsChapV2Proof | EapProof | CertificateProof


@dataclass(frozen=True, slots=True)
class Verification(PppEvent):
    """An authenticator asks whether ``proof`` proves ``user`` (the name as the peer sent it)."""

    method: AuthMethod
    user: str
    proof: Proof


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to a :class:`Verification`, as the authenticator takes it.

    ``success`` with ``hlak`` (32 bytes; zeros only for methods without keys: PAP, CHAP-MD5, EAP-MD5) ends
    the method; ``message`` is the text for the peer (MS-CHAPv2's ``S=...`` or ``E=... M=...``, PAP's or
    CHAP's message); ``reason`` is for our log only; ``error_code`` is the MS-CHAP error (691, 648, ...).
    For EAP pass-through, ``eap`` is the next EAP packet for the peer (a Request while ``more``, else the
    final Success or Failure that goes with ``success``).
    """

    success: bool
    user: str
    message: str = ""
    hlak: bytes = field(default=b"", repr=False)
    reason: str = ""
    error_code: int | None = None
    eap: bytes | None = None
    more: bool = False
