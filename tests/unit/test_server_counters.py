"""The server's counters: each failed call counted once, ended sessions' traffic kept, drops by cause."""

from __future__ import annotations

from typing import Any

from pysstp.server.counters import ServerCounters
from pysstp.server.stats import FailureReason


class Call:
    """Stands in for a ServerConnection: what the counters read of one."""

    def __init__(self, bytes_in: int = 0, drops: int = 0, dropped_ip: int = 0) -> None:
        self.failure: FailureReason | None = None
        self.counts = {
            "bytes_in": bytes_in,
            "bytes_out": 0,
            "packets_in": 0,
            "packets_out": 0,
            "drops": drops,
            "dropped_ip": dropped_ip,
        }

    def traffic(self) -> dict[str, int]:
        return self.counts


def snapshot(counters: ServerCounters, **counts: int) -> Any:
    """A snapshot with no session up."""
    values = {"negotiating": 0, "handshake_failures": 0, "spoofed": 0, "no_session": 0, **counts}
    return counters.snapshot(worker=0, live=[], backend="local", **values)


def test_a_call_fails_once_by_the_first_reason() -> None:
    counters = ServerCounters()
    call: Any = Call()
    counters.failed(call, FailureReason.AUTHENTICATION)
    counters.failed(call, FailureReason.PROTOCOL)  # the same call ending afterwards
    other: Any = Call()
    counters.failed(other, FailureReason.SOURCE_RATE)
    stats = snapshot(counters, handshake_failures=2)
    assert stats.failures == {"authentication": 1, "source_rate": 1, "tls_handshake": 2}


def test_ended_sessions_stay_in_the_totals_and_drops_have_their_causes() -> None:
    counters = ServerCounters()
    ended: Any = Call(bytes_in=1000, drops=3, dropped_ip=2)
    counters.ended(ended)
    stats = snapshot(counters, spoofed=4, no_session=5)
    assert stats.bytes_in == 1000
    assert stats.drops == {"queue_full": 3, "spoofed_source": 4, "no_session": 5, "before_binding": 2}
    assert stats.rss_bytes > 0 and stats.cpu_seconds > 0 and stats.sessions == ()
