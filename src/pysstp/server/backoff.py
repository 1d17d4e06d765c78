"""Back-off after failed logins: slower answers per source address and per user name, and a refusal
for a source that keeps failing.

A failed login never refuses the right password: it only makes the next answers slower. The delay of an
answer is computed before the attempt is counted, from the failures so far: ``base`` seconds after the
first failure, doubling with each further one. The part that comes from the source address grows up to
``maximum``; the part that comes from the user name, whoever sent the failures, stops at half of that
(:attr:`Backoff.user_maximum`). So someone guessing a user's password from one address slows that
user's logins from another address a little and never locks them out. Both caps stay far below the
30 s a PPP peer waits for an answer (RFC 1661 §4.6: a 3 s restart timer, 10 transmissions), so a real
client does not give up because of the delay.

An IPv6 source counts as its /64, as in OpenSSH (``PerSourceNetBlockSize``): one host usually holds a
whole /64 and could otherwise give every guess an address of its own.

Only a source address that keeps failing, ``source_limit`` times, is refused outright for ``refusal``
seconds (as OpenSSH's ``PerSourcePenalties`` do). A success clears the source's count and the user's.
A key's failures are forgotten ``refusal`` seconds after its last one, so the table holds only recent
guessers however many names they try.

:class:`BackoffBackend` applies all of this to any authentication backend: it wraps it (docs/server.md,
"Failed logins").
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pysstp.aaa.backend import Answer, AuthBackend, CallContext
from pysstp.ppp.auth.verification import Verification

log = logging.getLogger("pysstp.server")

IPV6_BLOCK = 64
"""Prefix length under which IPv6 sources count as one."""


@dataclass
class _Record:
    failures: int
    last: float
    """When the last failure was counted."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A source is refused for ``seconds`` more after ``failures`` failed logins."""

    seconds: float
    failures: int


@dataclass
class Backoff:
    """Failed-login counts per source address and per user name, and what they cost the next login."""

    base: float = 1.0
    maximum: float = 4.0
    source_limit: int = 30
    """Failures from one source after which it is refused; 0: never refused."""
    refusal: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _records: dict[str, _Record] = field(default_factory=dict)
    """Keyed ``source:ADDRESS`` (``source:NETWORK/64`` for IPv6) and ``user:NAME``, the least recently
    failed first."""

    @property
    def user_maximum(self) -> float:
        """The most that one user name's failures add to a login's delay."""
        return self.maximum / 2

    def delay(self, source: str, user: str | None) -> float:
        """Seconds to hold the answer to a login from ``source`` as ``user``, from the failures so far."""
        delay = self._delay(self._failures(_source_key(source)), self.maximum)
        if user is not None:
            delay = max(delay, self._delay(self._failures(f"user:{user}"), self.user_maximum))
        return delay

    def failed(self, source: str, user: str | None) -> Refusal | None:
        """Count a failed login; the refusal of ``source`` when this failure starts one."""
        now = self.clock()
        self._forget_before(now - self.refusal)
        failures = self._count(_source_key(source), now)
        if user is not None:
            self._count(f"user:{user}", now)
        if self.source_limit and failures >= self.source_limit:
            return Refusal(self.refusal, failures)
        return None

    def succeeded(self, source: str, user: str | None) -> None:
        """A successful login clears its source and its user."""
        self._records.pop(_source_key(source), None)
        if user is not None:
            self._records.pop(f"user:{user}", None)

    def refused(self, source: str) -> Refusal | None:
        """Whether ``source`` is refused now, and for how long still."""
        record = self._records.get(_source_key(source))
        if record is None or not self.source_limit or record.failures < self.source_limit:
            return None
        left = record.last + self.refusal - self.clock()
        return Refusal(left, record.failures) if left > 0 else None

    def _delay(self, failures: int, cap: float) -> float:
        # The exponent stops growing long after any cap is reached; 2.0 ** 1024 would overflow.
        return min(self.base * 2.0 ** min(failures - 1, 64), cap) if failures else 0.0

    def _failures(self, key: str) -> int:
        record = self._records.get(key)
        if record is None or record.last <= self.clock() - self.refusal:
            return 0
        return record.failures

    def _count(self, key: str, now: float) -> int:
        record = self._records.pop(key, None) or _Record(0, now)
        record.failures += 1
        record.last = now
        self._records[key] = record  # (re)inserted last: the dict stays ordered by last failure
        return record.failures

    def _forget_before(self, cutoff: float) -> None:
        records = self._records
        while records:
            key = next(iter(records))
            if records[key].last > cutoff:
                return
            del records[key]


def _source_key(source: str) -> str:
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return f"source:{source}"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client of a dual-stack socket
    if isinstance(address, ipaddress.IPv6Address):
        return f"source:{ipaddress.IPv6Network((int(address), IPV6_BLOCK), strict=False)}"
    return f"source:{address}"


@dataclass
class _Attempt:
    """What the wrapper knows of one call's login."""

    source: str
    user: str | None = None
    """The user the call last asked about."""
    asked: bool = False
    decided: bool = False
    until: float = 0.0
    """When the delay of the call's first question ends (:attr:`Backoff.clock` time)."""


class BackoffBackend:
    """The login back-off around any :class:`~pysstp.aaa.backend.AuthBackend`.

    The first question of a call sets the delay its source and user earned (:meth:`Backoff.delay`); no
    question of the call reaches the inner backend before it has passed, so the answer to a login after
    failed ones leaves late, success or failure alike, and its timing tells a guesser nothing; only that
    call waits. A final verdict is
    counted: a failure with :meth:`Backoff.failed`, a success clears with :meth:`Backoff.succeeded`; a
    question after it starts a new exchange, which waits and counts again. A
    call that ends after it asked and before a final verdict (a guesser hanging up as soon as an inner
    verdict shows through EAP pass-through, or during the delay) counts as a failure.
    """

    def __init__(
        self,
        inner: AuthBackend,
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.backoff = backoff
        self._sleep = sleep
        self.name = inner.name
        self._calls: dict[str, _Attempt] = {}

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        """Wait out the delay (first question of a call), ask the inner backend, count the verdict."""
        attempt = self._calls.get(context.session_id)
        if attempt is None or attempt.decided:
            # After a final verdict, a question starts a new exchange (LCP started over, e.g. before
            # EAP-MSCHAPv2's success was acknowledged): it waits and counts like a first one.
            attempt = self._calls[context.session_id] = _Attempt(context.calling_station)
        attempt.user = question.user
        if not attempt.asked:
            attempt.asked = True
            delay = self.backoff.delay(attempt.source, question.user)
            attempt.until = self.backoff.clock() + delay
            if delay:
                log.info(
                    "%s: answering the login of %r in %.1f s", context.calling_station, question.user, delay
                )
        # Every question waits out what is left: a peer that renegotiates LCP during the delay asks
        # again in the same call, and that answer must not leave early either.
        left = attempt.until - self.backoff.clock()
        if left > 0:
            await self._sleep(left)
        answer = await self.inner.verify(question, context)
        verdict = answer.verdict
        if not verdict.more and not attempt.decided:
            attempt.decided = True
            # Decided: a later question starts a new attempt anyway, so the record need not live as
            # long as the call (a gateway holds many calls, docs/scaling.md).
            if self._calls.get(context.session_id) is attempt:
                del self._calls[context.session_id]
            if verdict.success:
                # Only the names this success proves: the call may have asked about others first (a
                # peer that starts LCP over), whose failures from elsewhere must stay counted.
                for name in {question.user, verdict.user}:
                    self.backoff.succeeded(attempt.source, name)
            else:
                self._failed(attempt.source, verdict.user or question.user)
        return answer

    def finished(self, context: CallContext) -> None:
        """Count a login abandoned before its verdict; let the inner backend forget the call."""
        attempt = self._calls.pop(context.session_id, None)
        if attempt is not None and attempt.asked and not attempt.decided:
            self._failed(attempt.source, attempt.user)
        self.inner.finished(context)

    def _failed(self, source: str, user: str | None) -> None:
        refusal = self.backoff.failed(source, user)
        if refusal is not None:
            log.warning(
                "%s refused for %.0f s after %d failed logins", source, refusal.seconds, refusal.failures
            )
