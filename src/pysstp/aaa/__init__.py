"""Who may connect: the :class:`~pysstp.aaa.backend.AuthBackend` protocol and its backends.

The local user database (NT hashes only) answers through :class:`~pysstp.aaa.local.LocalBackend`; the
authenticators in :mod:`pysstp.ppp.auth` never see where a user came from (docs/architecture.md,
"Authentication").
"""

from pysstp.aaa.userdb import UserDatabase, UserEntry

__all__ = ["UserDatabase", "UserEntry"]
