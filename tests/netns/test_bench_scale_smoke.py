"""The scale benchmark runs end to end with a few sessions (needs root); no speed is asserted here."""

from __future__ import annotations

import pytest

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
    report = markdown(results)
    assert "| 20 | 20 | 0 |" in report
