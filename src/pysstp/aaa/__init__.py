"""Who may connect: the local user database (NT hashes only); RADIUS may join it later.

Everything here implements :class:`pysstp.ppp.auth.base.CredentialStore`, so the authenticators never know
where a user came from.
"""

from pysstp.aaa.userdb import UserDatabase, UserEntry

__all__ = ["UserDatabase", "UserEntry"]
