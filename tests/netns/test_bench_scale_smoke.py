"""The scale and aggregate benchmarks run end to end with a few sessions (needs root); no speed is asserted
here."""

from __future__ import annotations

import pytest

from benchmarks import aggregate, scale
from benchmarks.scale import markdown, run_scale

from helpers.namespaces import skip_unless_netns


@pytest.mark.slow
def test_scale_benchmark_quick_run_reports_every_figure() -> None:
    skip_unless_netns()
    results = run_scale([20], quick=True)
    (run,) = results["runs"]
    assert run["up"] == 20, run
    assert run["failures"] == 0, run
    for key in (
        "connect_rate",
        "server_cpu_ms_per_connect",
        "server_capacity_per_core",
        "rss_before_kib",
        "rss_after_kib",
        "kib_per_session",
        "idle_cpu_percent",
    ):
        assert run[key] is not None, key
    assert set(results["targets"]["ratios"]) == {
        "sessions",
        "kib_per_session",
        "connect_rate",
        "server_capacity",
    }
    assert run["loop_name"] == "asyncio" and run["workers"] == 1
    report = markdown(results)
    assert "| 20 | 1 | asyncio | 20 | 0 |" in report


@pytest.mark.slow
def test_scale_spreads_the_calls_over_generators_with_their_own_source_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    skip_unless_netns()
    monkeypatch.setattr(scale, "CALLS_PER_GENERATOR", 10)
    results = run_scale([25], quick=True, goals=scale.LARGE_GOALS, title=scale.LARGE_TITLE)
    (run,) = results["runs"]
    assert run["generators"] == 3 and run["up"] == 25 and run["failures"] == 0, run
    report = markdown(results)
    assert report.startswith(f"## {scale.LARGE_TITLE}")
    assert "≤ 24 KiB RSS per session" in report


@pytest.mark.slow
def test_aggregate_benchmark_quick_run_reports_both_directions() -> None:
    skip_unless_netns()
    results = aggregate.run_aggregate(quick=True, clients=2)
    if results.get("skipped"):
        pytest.skip(results["skipped"])
    (run,) = results["runs"]
    for direction in ("client_to_server", "server_to_client"):
        figures = run[direction]
        assert len(figures["per_client_mbps"]) == 2 and all(r > 0 for r in figures["per_client_mbps"])
        assert figures["server_cpu_s_per_gbit"] is not None
    assert "## Aggregate: 2 clients through one server" in aggregate.markdown(results)
