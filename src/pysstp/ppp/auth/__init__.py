"""PPP authentication: PAP, CHAP-MD5, MS-CHAPv2 and EAP (Identity, MD5-Challenge, MS-CHAPv2), both roles.

The session builds machines with :func:`make_authenticator` (server) and :func:`make_peer` (client) and
waits for one :class:`~pysstp.ppp.events.Authenticated` (with the HLAK for the SSTP crypto binding) or
:class:`~pysstp.ppp.events.AuthenticationFailed`.
"""

from pysstp.ppp.auth.base import (
    Authenticator,
    AuthMachine,
    AuthPeer,
    CredentialStore,
    StaticCredentials,
    lookup_user,
    make_authenticator,
    make_peer,
)
from pysstp.ppp.auth.keys import ZERO_HLAK

__all__ = [
    "ZERO_HLAK",
    "AuthMachine",
    "AuthPeer",
    "Authenticator",
    "CredentialStore",
    "StaticCredentials",
    "lookup_user",
    "make_authenticator",
    "make_peer",
]
