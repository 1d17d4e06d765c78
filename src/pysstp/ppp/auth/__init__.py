"""PPP authentication: PAP, CHAP-MD5, MS-CHAPv2 and EAP (Identity, MD5-Challenge, MS-CHAPv2, TLS, PEAP), both
roles.

The session builds machines with :func:`make_authenticator` (server) and :func:`make_peer` (client). An
authenticator asks :class:`Verification` questions and takes each :class:`Verdict` through
:meth:`Authenticator.answer`; every machine ends with one :class:`~pysstp.ppp.events.Authenticated` (with
the HLAK for the SSTP crypto binding) or :class:`~pysstp.ppp.events.AuthenticationFailed`.

Importing this package registers every method (each module registers its own machines).
"""

from pysstp.ppp.auth import chap, eap, pap  # noqa: F401  (they register themselves)
from pysstp.ppp.auth.base import (
    Authenticator,
    AuthMachine,
    AuthPeer,
    EapMode,
    make_authenticator,
    make_peer,
    register_authenticator,
    register_peer,
)
from pysstp.ppp.auth.keys import ZERO_HLAK
from pysstp.ppp.auth.verification import (
    CertificateProof,
    ChapMd5Proof,
    EapProof,
    MsChapV2Proof,
    PapProof,
    Proof,
    Verdict,
    Verification,
)

__all__ = [
    "ZERO_HLAK",
    "AuthMachine",
    "AuthPeer",
    "Authenticator",
    "CertificateProof",
    "ChapMd5Proof",
    "EapMode",
    "EapProof",
    "MsChapV2Proof",
    "PapProof",
    "Proof",
    "Verdict",
    "Verification",
    "make_authenticator",
    "make_peer",
    "register_authenticator",
    "register_peer",
]
