"""The server's counters: each failed call counted once, ended sessions' traffic kept, drops by cause."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from pysstp.server.counters import ServerCounters
from pysstp.server.session import SessionInfo
from pysstp.server.stats import FailureReason, ServerStats


class Call:
    """Stands in for a ServerConnection: what the counters read of one."""

    def __init__(
        self,
        bytes_in: int = 0,
        drops: int = 0,
        dropped_ip: int = 0,
        rate_drops: int = 0,
        *,
        auth: str | None = None,
        up: bool = True,
    ) -> None:
        self.failure: FailureReason | None = None
        self.info = SessionInfo(peer="192.0.2.1:5000", started=0.0, auth_method=auth)
        self.link = SimpleNamespace(is_up=up, dropped_ip=dropped_ip)
        self.counts = {
            "bytes_in": bytes_in,
            "bytes_out": 0,
            "packets_in": 0,
            "packets_out": 0,
            "drops": drops,
            "dropped_ip": dropped_ip,
            "rate_drops": rate_drops,
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
    ended: Any = Call(bytes_in=1000, drops=3, dropped_ip=2, rate_drops=6)
    counters.ended(ended)
    stats = snapshot(counters, spoofed=4, no_session=5, dhcp=7)
    assert stats.bytes_in == 1000
    assert stats.drops == {
        "queue_full": 3,
        "spoofed_source": 4,
        "no_session": 5,
        "before_binding": 2,
        "rate_limit": 6,
        "dhcp": 7,
    }
    assert stats.rss_bytes > 0 and stats.cpu_seconds > 0 and stats.sessions == ()


def test_the_metrics_snapshot_counts_sessions_by_method_without_listing_them() -> None:
    counters = ServerCounters()
    counters.ended(Call(bytes_in=1000))
    live: list[Any] = [
        Call(5, auth="mschapv2"),
        Call(7, 1, auth="mschapv2"),
        Call(),
        Call(auth="pap", up=False),
    ]
    values = {"negotiating": 0, "handshake_failures": 0, "spoofed": 0, "no_session": 0}
    stats = counters.snapshot(worker=0, live=live, backend="local", sessions=False, **values)
    assert stats.sessions == ()
    assert stats.up_by_auth == {"mschapv2": 2, "none": 1}
    assert ServerStats.from_json(json.loads(json.dumps(stats.to_json()))) == stats
    assert (stats.bytes_in, stats.drops["queue_full"]) == (1012, 1)
