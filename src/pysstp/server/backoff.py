"""Back-off after failed logins, per user name and per source address.

After ``threshold`` failures in a row, a key is locked for ``base`` seconds, doubling with each further
failure up to ``maximum``; a success clears it. A locked source cannot connect; a locked user cannot
authenticate (the server answers as for a wrong password, so a guesser learns nothing). Locking a user
is a trade-off: someone guessing can keep a real user out for ``maximum`` seconds at a time, which is
why the lock is short and grows only while failures go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pysstp.ppp.auth.base import CredentialStore


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0


@dataclass
class Backoff:
    """Failure counts and lock deadlines for arbitrary keys (user names, source addresses)."""

    threshold: int = 5
    base: float = 2.0
    maximum: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _records: dict[str, _Record] = field(default_factory=dict)

    def failed(self, key: str) -> None:
        """Count a failure; lock the key once the threshold is reached."""
        record = self._records.setdefault(key, _Record())
        record.failures += 1
        excess = record.failures - self.threshold
        if excess >= 0:
            record.locked_until = self.clock() + min(self.base * 2**excess, self.maximum)

    def succeeded(self, key: str) -> None:
        """A success clears the key."""
        self._records.pop(key, None)

    def locked_for(self, key: str) -> float:
        """Seconds the key stays locked (0 when it is not)."""
        record = self._records.get(key)
        return max(0.0, record.locked_until - self.clock()) if record is not None else 0.0


class GuardedCredentials:
    """A credential store that knows no locked user, so their logins fail like wrong passwords."""

    def __init__(self, store: CredentialStore, backoff: Backoff) -> None:
        self.store = store
        self.backoff = backoff

    def nt_hash(self, user: str) -> bytes | None:
        """The stored NT hash, unless the user is locked."""
        return None if self.backoff.locked_for(f"user:{user}") else self.store.nt_hash(user)

    def password(self, user: str) -> str | None:
        """The stored plaintext (if any), unless the user is locked."""
        return None if self.backoff.locked_for(f"user:{user}") else self.store.password(user)
