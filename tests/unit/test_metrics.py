"""The metrics rendered from hand-built snapshots: exact series and values, several workers, RADIUS added
up over the workers, and the Grafana dashboard naming only series the collector exports."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pysstp import __version__
from pysstp.aaa.radius.client import DURATION_BUCKETS, RadiusServerStats
from pysstp.server.metrics import exposition
from pysstp.server.stats import DropCause, FailureReason, ServerStats, SessionStats

DASHBOARD = Path(__file__).parents[2] / "contrib" / "grafana-pysstp.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(snapshots: list[ServerStats]) -> Samples:
    """Every sample of the exposition, by name and labels (parsed back with prometheus-client's parser)."""
    text = exposition(snapshots).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def session(auth: str | None, *, up: bool = True) -> SessionStats:
    return SessionStats(session_id="s", peer="192.0.2.1:5000", started=0.0, up=up, auth=auth)


def radius(
    server: str, access: int, accounting: int, timeouts: int, durations: list[int], total: float
) -> RadiusServerStats:
    return RadiusServerStats(
        server, {"access": access, "accounting": accounting}, timeouts, tuple(durations), total
    )


WORKER_0 = ServerStats(
    worker=0,
    pid=100,
    started=1.0,
    sessions=(session("mschapv2"), session("mschapv2"), session("eap-tls"), session(None, up=False)),
    negotiating=1,
    connects=7,
    failures={"authentication": 3, "tls_handshake": 1},
    bytes_in=1000,
    bytes_out=2000,
    packets_in=10,
    packets_out=20,
    drops={"spoofed_source": 2},
    rss_bytes=50_000_000,
    cpu_seconds=1.5,
    radius=(
        radius("10.0.0.1:1812", 5, 2, 1, [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0.02),
        radius("10.0.0.2:1812", 0, 0, 0, [0] * 12, 0.0),
    ),
)
WORKER_1 = ServerStats(
    worker=1,
    pid=101,
    started=1.0,
    sessions=(session("pap"),),
    connects=2,
    failures={"address": 1},
    bytes_in=5,
    bytes_out=6,
    packets_in=1,
    packets_out=2,
    drops={"queue_full": 4},
    rss_bytes=40_000_000,
    cpu_seconds=0.25,
    draining=True,
    radius=(radius("10.0.0.1:1812", 1, 0, 2, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 12.0),),
)


def test_each_worker_has_its_own_series() -> None:
    result = samples([WORKER_0, WORKER_1])
    assert result[key("pysstp_sessions", auth_method="mschapv2", worker="0")] == 2
    assert result[key("pysstp_sessions", auth_method="eap-tls", worker="0")] == 1
    assert result[key("pysstp_sessions", auth_method="pap", worker="0")] == 0
    assert result[key("pysstp_sessions", auth_method="pap", worker="1")] == 1
    assert result[key("pysstp_handshakes_in_progress", worker="0")] == 1
    assert result[key("pysstp_handshakes_in_progress", worker="1")] == 0
    assert result[key("pysstp_connects_total", worker="0")] == 7
    assert result[key("pysstp_connects_total", worker="1")] == 2
    assert result[key("pysstp_call_failures_total", reason="authentication", worker="0")] == 3
    assert result[key("pysstp_call_failures_total", reason="tls_handshake", worker="0")] == 1
    assert result[key("pysstp_call_failures_total", reason="address", worker="1")] == 1
    assert result[key("pysstp_bytes_total", direction="in", worker="0")] == 1000
    assert result[key("pysstp_bytes_total", direction="out", worker="0")] == 2000
    assert result[key("pysstp_bytes_total", direction="out", worker="1")] == 6
    assert result[key("pysstp_packets_total", direction="in", worker="0")] == 10
    assert result[key("pysstp_packets_total", direction="out", worker="1")] == 2
    assert result[key("pysstp_dropped_packets_total", cause="spoofed_source", worker="0")] == 2
    assert result[key("pysstp_dropped_packets_total", cause="queue_full", worker="1")] == 4
    assert result[key("pysstp_process_resident_memory_bytes", worker="1")] == 40_000_000
    assert result[key("pysstp_process_cpu_seconds_total", worker="0")] == 1.5
    assert result[key("pysstp_draining")] == 1
    assert result[key("pysstp_build_info", version=__version__, python=platform.python_version())] == 1


def test_every_reason_cause_and_method_is_there_from_the_start() -> None:
    result = samples([ServerStats(worker=3, pid=1, started=0.0)])
    for reason in FailureReason:
        assert result[key("pysstp_call_failures_total", reason=reason.value, worker="3")] == 0
    for cause in DropCause:
        assert result[key("pysstp_dropped_packets_total", cause=cause.value, worker="3")] == 0
    assert result[key("pysstp_sessions", auth_method="mschapv2", worker="3")] == 0
    assert result[key("pysstp_draining")] == 0
    assert not any(name.startswith("pysstp_radius") for name, _ in result)


def test_a_session_without_a_method_and_an_unknown_reason_still_show() -> None:
    stats = ServerStats(worker=0, pid=1, started=0.0, sessions=(session(None),), failures={"new_reason": 1})
    result = samples([stats])
    assert result[key("pysstp_sessions", auth_method="none", worker="0")] == 1
    assert result[key("pysstp_call_failures_total", reason="new_reason", worker="0")] == 1


def test_radius_counts_add_up_over_the_workers() -> None:
    result = samples([WORKER_0, WORKER_1])
    first, second = "10.0.0.1:1812", "10.0.0.2:1812"
    assert result[key("pysstp_radius_requests_total", server=first, kind="access")] == 6
    assert result[key("pysstp_radius_requests_total", server=first, kind="accounting")] == 2
    assert result[key("pysstp_radius_requests_total", server=second, kind="access")] == 0
    assert result[key("pysstp_radius_timeouts_total", server=first)] == 3
    assert result[key("pysstp_radius_timeouts_total", server=second)] == 0
    histogram = "pysstp_radius_request_duration_seconds"
    assert result[key(f"{histogram}_bucket", server=first, le="0.005")] == 1
    assert result[key(f"{histogram}_bucket", server=first, le="0.01")] == 3
    assert result[key(f"{histogram}_bucket", server=first, le="10.0")] == 3
    assert result[key(f"{histogram}_bucket", server=first, le="+Inf")] == 4
    assert result[key(f"{histogram}_count", server=first)] == 4
    assert result[key(f"{histogram}_sum", server=first)] == 12.02
    assert result[key(f"{histogram}_count", server=second)] == 0
    assert len([k for k in result if k[0] == f"{histogram}_bucket" and ("server", first) in k[1]]) == (
        len(DURATION_BUCKETS) + 1
    )


def test_a_snapshot_with_radius_survives_json() -> None:
    assert ServerStats.from_json(json.loads(json.dumps(WORKER_0.to_json()))) == WORKER_0


def exported_names() -> set[str]:
    """Every sample name the collector can export (counters with _total, the histogram's parts)."""
    return {name for name, _ in samples([WORKER_0, WORKER_1])}


def queries(node: object) -> Iterator[str]:
    """Every PromQL text in a Grafana dashboard: panel targets' ``expr`` and variables' ``query``."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name in ("expr", "query") and isinstance(value, str):
                yield value
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def test_the_dashboard_uses_only_exported_series() -> None:
    used = {
        name
        for query in queries(json.loads(DASHBOARD.read_text()))
        for name in re.findall(r"\bpysstp_[a-z_]+\b", query)
    }
    exported = {name for name, _ in samples([WORKER_0, WORKER_1])}
    assert used <= exported, sorted(used - exported)
    # ... and shows every one of them.
    family = re.compile(r"_(bucket|count|sum)$")
    assert {family.sub("", name) for name in used} == {family.sub("", name) for name in exported}
