"""Admission: session and negotiating limits, connections per source, users' session limits."""

from __future__ import annotations

from pysstp.server.admission import SOURCE_WINDOW, Admission, Limits
from pysstp.server.stats import FailureReason


def test_a_connection_within_the_limits_is_admitted() -> None:
    assert Admission(Limits()).admit("192.0.2.1", sessions=0, negotiating=0, now=0.0) is None


def test_the_session_limit_comes_first() -> None:
    admission = Admission(Limits(max_sessions=2, max_negotiating=1))
    assert admission.admit("192.0.2.1", 2, 1, 0.0) == (
        FailureReason.SESSION_LIMIT,
        "session limit reached (2)",
    )


def test_too_many_negotiating() -> None:
    admission = Admission(Limits(max_negotiating=3))
    assert admission.admit("192.0.2.1", 5, 3, 0.0) == (
        FailureReason.NEGOTIATING_LIMIT,
        "too many calls negotiating at once (3)",
    )


def test_zero_is_unlimited() -> None:
    admission = Admission(Limits(max_sessions=0, max_negotiating=0, connections_per_source_per_minute=0))
    assert all(admission.admit("192.0.2.1", 10**6, 10**6, 0.0) is None for _ in range(100))


def test_connections_per_source_count_over_a_sliding_minute() -> None:
    admission = Admission(Limits(connections_per_source_per_minute=2))
    assert admission.admit("192.0.2.1", 0, 0, 0.0) is None
    assert admission.admit("192.0.2.1", 0, 0, 1.0) is None
    refusal = admission.admit("192.0.2.1", 0, 0, 2.0)
    assert refusal == (FailureReason.SOURCE_RATE, "more than 2 connections a minute from 192.0.2.1")
    assert admission.admit("192.0.2.2", 0, 0, 2.0) is None  # another source has its own count
    assert admission.admit("192.0.2.1", 0, 0, SOURCE_WINDOW + 0.5) is None  # the first one aged out


def test_a_refused_connection_does_not_count_for_its_source() -> None:
    admission = Admission(Limits(max_sessions=1, connections_per_source_per_minute=1))
    assert admission.admit("192.0.2.1", 1, 0, 0.0) is not None
    assert admission.admit("192.0.2.1", 0, 0, 0.0) is None


def test_a_user_within_the_limit_replaces_nobody() -> None:
    admission = Admission(Limits(max_sessions_per_user=2))
    assert admission.for_user("alice", None, ["s1"]) == ()
    assert Admission(Limits()).for_user("alice", None, ["s1"] * 50) == ()


def test_deny_refuses_a_user_at_the_limit() -> None:
    admission = Admission(Limits(max_sessions_per_user=1))
    assert admission.for_user("alice", None, ["s1"]) == "user 'alice' already has 1 session(s), the limit"


def test_the_users_own_limit_overrides_the_servers() -> None:
    admission = Admission(Limits(max_sessions_per_user=1))
    assert admission.for_user("alice", 3, ["s1", "s2"]) == ()
    assert isinstance(admission.for_user("alice", 2, ["s1", "s2"]), str)


def test_replace_ends_the_oldest_sessions_to_make_room() -> None:
    admission = Admission(Limits(max_sessions_per_user=2, on_limit="replace"))
    assert admission.for_user("alice", None, ["oldest", "older", "old"]) == ["oldest", "older"]
    assert admission.for_user("alice", None, ["oldest", "old"]) == ["oldest"]


def test_an_ipv6_source_counts_by_its_64_as_the_back_off_does() -> None:
    """Every IPv6 host has a /64 to pick source addresses from: counted apart, each would be a new source."""
    admission = Admission(Limits(connections_per_source_per_minute=2))
    assert admission.admit("2001:db8::1", 0, 0, 0.0) is None
    assert admission.admit("2001:db8::ffff:2", 0, 0, 1.0) is None
    refusal = admission.admit("2001:db8::3", 0, 0, 2.0)
    assert refusal == (FailureReason.SOURCE_RATE, "more than 2 connections a minute from 2001:db8::3")
    assert admission.admit("2001:db8:0:1::1", 0, 0, 2.0) is None  # the next /64 is another source


def test_an_ipv4_mapped_source_is_its_ipv4_address() -> None:
    admission = Admission(Limits(connections_per_source_per_minute=1))
    assert admission.admit("192.0.2.1", 0, 0, 0.0) is None
    assert admission.admit("::ffff:192.0.2.1", 0, 0, 1.0) is not None


def test_sources_gone_quiet_are_forgotten() -> None:
    """A port open to the internet sees endless sources; only the last minute's are remembered."""
    admission = Admission(Limits(connections_per_source_per_minute=5))
    for n in range(1000):
        assert admission.admit(f"10.{n // 256}.{n % 256}.1", 0, 0, n * 0.1) is None
    assert admission.admit("192.0.2.1", 0, 0, 100.0 + SOURCE_WINDOW) is None
    assert len(admission._recent) == 1
