"""Login back-off with a fake clock: slower answers per source and per user, refusal of a source."""

from __future__ import annotations

import asyncio

from pysstp.aaa.backend import Answer, CallContext
from pysstp.ppp.auth.verification import PapProof, Verdict, Verification
from pysstp.ppp.constants import AuthMethod
from pysstp.server.backoff import Backoff, BackoffBackend, Refusal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**options: float) -> tuple[Backoff, Clock]:
    clock = Clock()
    settings: dict[str, float] = {"base": 1.0, "maximum": 4.0, "source_limit": 10, "refusal": 600.0}
    settings.update(options)
    return Backoff(clock=clock, **settings), clock  # type: ignore[arg-type]


def test_the_delay_doubles_per_failure_from_a_source_up_to_the_maximum() -> None:
    backoff, _ = make()
    delays = []
    for _ in range(5):
        delays.append(backoff.delay("192.0.2.1", "alice"))
        backoff.failed("192.0.2.1", "alice")
    assert delays == [0.0, 1.0, 2.0, 4.0, 4.0]


def test_a_users_failures_slow_it_from_another_source_only_up_to_half_the_maximum() -> None:
    backoff, _ = make()
    for _ in range(8):
        backoff.failed("192.0.2.1", "alice")
    assert backoff.delay("192.0.2.1", "alice") == 4.0
    assert backoff.delay("198.51.100.2", "alice") == backoff.user_maximum == 2.0
    assert backoff.refused("198.51.100.2") is None
    assert backoff.delay("198.51.100.2", "bob") == 0.0


def test_an_unknown_user_name_counts_for_the_source_only() -> None:
    backoff, _ = make()
    backoff.failed("192.0.2.1", None)
    assert backoff.delay("192.0.2.1", "alice") == 1.0
    assert backoff.delay("198.51.100.2", "alice") == 0.0


def test_a_success_clears_its_source_and_its_user() -> None:
    backoff, _ = make()
    for _ in range(3):
        backoff.failed("192.0.2.1", "alice")
        backoff.failed("198.51.100.2", "bob")
    backoff.succeeded("192.0.2.1", "alice")
    assert backoff.delay("192.0.2.1", "alice") == 0.0
    assert backoff.delay("198.51.100.2", "bob") == 4.0


def test_a_source_that_keeps_failing_is_refused_for_a_while() -> None:
    backoff, clock = make(source_limit=3, refusal=600.0)
    assert backoff.failed("192.0.2.1", "alice") is None
    assert backoff.failed("192.0.2.1", "bob") is None
    assert backoff.failed("192.0.2.1", "carol") == Refusal(600.0, 3)
    clock.now += 100
    assert backoff.refused("192.0.2.1") == Refusal(500.0, 3)
    assert backoff.refused("198.51.100.2") is None
    clock.now += 500
    assert backoff.refused("192.0.2.1") is None
    assert backoff.delay("192.0.2.1", "alice") == 0.0  # forgotten with the refusal


def test_a_limit_of_zero_never_refuses() -> None:
    backoff, _ = make(source_limit=0)
    for _ in range(100):
        assert backoff.failed("192.0.2.1", "alice") is None
    assert backoff.refused("192.0.2.1") is None
    assert backoff.delay("192.0.2.1", "alice") == 4.0


def test_a_base_of_zero_turns_the_delay_off() -> None:
    backoff, _ = make(base=0.0)
    for _ in range(5):
        backoff.failed("192.0.2.1", "alice")
    assert backoff.delay("192.0.2.1", "alice") == 0.0


def test_many_failures_do_not_overflow_the_delay() -> None:
    backoff, _ = make(source_limit=0)
    for _ in range(2000):
        backoff.failed("192.0.2.1", "alice")
    assert backoff.delay("192.0.2.1", "alice") == 4.0


def test_old_failures_are_forgotten_so_the_table_stays_small() -> None:
    backoff, clock = make(refusal=60.0)
    for n in range(1000):
        backoff.failed("192.0.2.1", f"guess{n}")
    clock.now += 61
    backoff.failed("198.51.100.2", "alice")
    assert backoff.delay("192.0.2.1", "guess1") == 0.0
    assert len(backoff._records) == 2  # the new source and user; the guesses are gone


def test_an_ipv6_source_counts_as_its_slash_64() -> None:
    backoff, _ = make(source_limit=2)
    backoff.failed("2001:db8::1", "alice")
    assert backoff.failed("2001:db8::ffff:2", "bob") is not None
    assert backoff.refused("2001:db8::3") is not None
    assert backoff.refused("2001:db8:0:1::1") is None
    assert backoff.delay("2001:db8:0:1::1", "carol") == 0.0
    assert backoff.delay("::ffff:192.0.2.1", "dave") == backoff.delay("192.0.2.1", "dave") == 0.0
    backoff.failed("::ffff:192.0.2.1", "dave")
    assert backoff.delay("192.0.2.1", "erin") == 1.0
    backoff.failed("fe80::1%eth0", "frank")
    assert backoff.delay("fe80::2", "grace") == 1.0


# -- the wrapper around a backend -------------------------------------------------------------------


class Scripted:
    """A backend that answers from a list of verdicts."""

    name = "scripted"

    def __init__(self, *verdicts: Verdict) -> None:
        self.verdicts = list(verdicts)
        self.asked: list[Verification] = []
        self.finished_calls: list[str] = []

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        self.asked.append(question)
        return Answer(self.verdicts.pop(0))

    def finished(self, context: CallContext) -> None:
        self.finished_calls.append(context.session_id)


def wrapped(*verdicts: Verdict) -> tuple[BackoffBackend, Scripted, Backoff, list[float]]:
    slept: list[float] = []
    backoff, clock = make()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    inner = Scripted(*verdicts)
    return BackoffBackend(inner, backoff, sleep), inner, backoff, slept


def context(number: int, source: str = "192.0.2.1") -> CallContext:
    return CallContext(f"{number:016X}", source, "192.0.2.254", number)


QUESTION = Verification(AuthMethod.PAP, "alice", PapProof("x"))
FAILED = Verdict(False, "alice", reason="wrong password for user 'alice'")


def test_the_wrapper_counts_failures_and_delays_the_next_login() -> None:
    backend, inner, backoff, slept = wrapped(FAILED, FAILED, Verdict(True, "alice"))
    for number in (1, 2, 3):
        asyncio.run(backend.verify(QUESTION, context(number)))
        backend.finished(context(number))
    assert slept == [1.0, 2.0]  # the first login had no failures behind it
    assert backoff.delay("192.0.2.1", "alice") == 0.0  # the success cleared source and user
    assert inner.finished_calls == [f"{n:016X}" for n in (1, 2, 3)] and backend.name == "scripted"


def test_only_the_first_question_of_a_call_waits() -> None:
    more = Verdict(False, "alice", eap=b"request", more=True)
    backend, _inner, backoff, slept = wrapped(more, more, FAILED)
    backoff.failed("192.0.2.1", "alice")
    for _ in range(3):
        asyncio.run(backend.verify(QUESTION, context(1)))
    assert slept == [1.0]
    assert backoff.delay("192.0.2.1", None) == 2.0  # counted once, at the final verdict


def test_a_call_that_ends_before_its_verdict_counts_as_failed() -> None:
    backend, _inner, backoff, _slept = wrapped(Verdict(False, "alice", eap=b"request", more=True))
    asyncio.run(backend.verify(QUESTION, context(1)))
    backend.finished(context(1))
    assert backoff.delay("192.0.2.1", "alice") == 1.0
    backend.finished(context(2))  # a call that never asked costs nothing
    assert backoff.delay("192.0.2.1", "alice") == 1.0


def test_a_question_asked_during_the_delay_waits_for_what_is_left_of_it() -> None:
    # A peer that renegotiates LCP while its first question waits asks again in the same call; that
    # answer must not leave before the delay either (else one guess per call skips the back-off).
    backend, inner, backoff, slept = wrapped(FAILED)
    backoff.failed("192.0.2.1", "alice")
    released = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await released.wait()

    backend._sleep = sleep

    async def scenario() -> None:
        first = asyncio.create_task(backend.verify(QUESTION, context(1)))
        await asyncio.sleep(0)  # the first question is in its delay
        second = asyncio.create_task(backend.verify(QUESTION, context(1)))
        first.cancel()  # the server drops the question the renegotiation made stale
        await asyncio.sleep(0)
        assert not second.done() and inner.asked == []
        released.set()
        await second

    asyncio.run(scenario())
    assert slept == [1.0, 1.0] and inner.asked == [QUESTION]


def test_a_success_clears_only_the_user_it_proves() -> None:
    # A guesser with an account of their own asks about the victim, starts LCP over and logs in as
    # themselves: the victim's failures, counted from other sources, must stay.
    backend, _inner, backoff, slept = wrapped(Verdict(True, "mallory"))
    backoff.failed("198.51.100.7", "victim")
    released = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await released.wait()

    backend._sleep = sleep

    async def scenario() -> None:
        victim = Verification(AuthMethod.PAP, "victim", PapProof("guess"))
        first = asyncio.create_task(backend.verify(victim, context(1)))
        await asyncio.sleep(0)
        first.cancel()
        second = asyncio.create_task(
            backend.verify(Verification(AuthMethod.PAP, "mallory", PapProof("x")), context(1))
        )
        released.set()
        await second

    asyncio.run(scenario())
    assert backoff.delay("203.0.113.1", "victim") == 1.0


def test_a_new_exchange_after_a_verdict_waits_and_counts_again() -> None:
    # EAP-MSCHAPv2: the guesser's own login is decided before the peer acknowledges it; LCP started
    # over then begins a second exchange in the same call, about the victim.
    victim_failed = Verdict(False, "victim", reason="wrong password for user 'victim'")
    backend, _inner, backoff, slept = wrapped(Verdict(True, "mallory"), victim_failed)
    backoff.failed("198.51.100.7", "victim")
    asyncio.run(backend.verify(Verification(AuthMethod.EAP_MSCHAP_V2, "mallory", PapProof("x")), context(1)))
    asyncio.run(backend.verify(Verification(AuthMethod.EAP_MSCHAP_V2, "victim", PapProof("y")), context(1)))
    assert slept == [1.0]  # the victim's failure from elsewhere slows the second exchange
    assert backoff.delay("203.0.113.1", "victim") == 2.0  # and its failure is counted


def test_a_decided_login_leaves_no_record_for_the_rest_of_the_call() -> None:
    # A gateway holds many calls for hours: what the wrapper knew of a login goes with its verdict.
    backend, _inner, _backoff, _slept = wrapped(Verdict(True, "alice"))
    asyncio.run(backend.verify(QUESTION, context(1)))
    assert backend._calls == {}
    backend.finished(context(1))
