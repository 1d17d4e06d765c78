"""Admission: which calls the server takes on, decided from counts alone (no sockets, no clock of its
own: the caller passes the time).

A new connection is refused when the server holds ``max_sessions`` calls, when ``max_negotiating`` calls
are still coming up, or when its source connected too often in the last minute. A user beyond their
session limit is refused, or their oldest sessions make way (``on_limit``). The login back-off
(``server/backoff.py``) is asked before any of this.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from pysstp.server.backoff import _source_key
from pysstp.server.stats import FailureReason

S = TypeVar("S")

OnLimit = Literal["deny", "replace"]
"""What a login beyond a user's session limit does: refused, or the user's oldest session ends for it."""

SOURCE_WINDOW = 60.0
"""Seconds over which connections per source are counted (``connections_per_source_per_minute``)."""


@dataclass(frozen=True)
class Limits:
    """Per-server admission limits; 0 means unlimited."""

    max_sessions: int = 1000
    max_sessions_per_user: int = 0
    max_negotiating: int = 256
    connections_per_source_per_minute: int = 60
    on_limit: OnLimit = "deny"
    """What happens when a user's session limit is reached (``max_sessions_per_user`` or the user's own)."""


class Admission:
    """The server's limits, applied to new connections and to users' logins."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._recent: dict[str, deque[float]] = {}
        """Connection times per source (an IPv6 source by its /64, as the login back-off counts it),
        ordered by each source's latest connection, so that sources gone quiet are forgotten from the
        front: a server open to the internet sees more sources than it may remember."""

    def admit(
        self, source: str, sessions: int, negotiating: int, now: float
    ) -> tuple[FailureReason, str] | None:
        """Why a new connection from ``source`` must be refused, with the server holding ``sessions``
        calls of which ``negotiating`` are not up yet; ``None`` to take it (and count it for its source).
        ``now`` is monotonic seconds."""
        limits = self.limits
        if limits.max_sessions and sessions >= limits.max_sessions:
            return FailureReason.SESSION_LIMIT, f"session limit reached ({limits.max_sessions})"
        if limits.max_negotiating and negotiating >= limits.max_negotiating:
            return FailureReason.NEGOTIATING_LIMIT, f"too many calls negotiating at once ({negotiating})"
        per_minute = limits.connections_per_source_per_minute
        if per_minute:
            cutoff = now - SOURCE_WINDOW
            self._forget_before(cutoff)
            key = _source_key(source)
            recent = self._recent.pop(key, None) or deque()
            while recent and recent[0] < cutoff:
                recent.popleft()
            if len(recent) >= per_minute:
                self._recent[key] = recent
                return FailureReason.SOURCE_RATE, f"more than {per_minute} connections a minute from {source}"
            recent.append(now)
            self._recent[key] = recent  # (re)inserted last: the dict stays ordered by latest connection
        return None

    def _forget_before(self, cutoff: float) -> None:
        """Drop the sources whose latest connection is older than ``cutoff``."""
        recent = self._recent
        while recent:
            key = next(iter(recent))
            if recent[key][-1] >= cutoff:
                return
            del recent[key]

    def for_user(self, user: str, own_limit: int | None, others: Sequence[S]) -> str | Sequence[S]:
        """A login of ``user``, who holds the sessions ``others`` (oldest first): why it is refused, or the
        sessions that must end for it (none when the user is within the limit). ``own_limit`` is the
        backend's limit for this user, which overrides ``max_sessions_per_user``."""
        limit = own_limit or self.limits.max_sessions_per_user
        if not limit or len(others) < limit:
            return ()
        if self.limits.on_limit == "deny":
            return f"user {user!r} already has {len(others)} session(s), the limit"
        return others[: len(others) - limit + 1]
