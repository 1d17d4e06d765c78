"""The RADIUS benchmark runs end to end with a few sessions through a real FreeRADIUS (needs root and
FreeRADIUS); no speed is asserted here."""

from __future__ import annotations

from benchmarks.radius import markdown, run_radius

from helpers.freeradius import skip_unless_freeradius


def test_radius_benchmark_quick_run_reports_both_backends() -> None:
    skip_unless_freeradius()
    results = run_radius([5], quick=True)
    local, through_radius = results["runs"]
    assert (local["backend"], through_radius["backend"]) == ("local", "radius")
    for run in (local, through_radius, *results["one_at_a_time"].values()):
        assert run["failures"] == 0, run
        assert run["up"] == run["calls"] == run["sessions"], run
        for key in ("connect_rate", "server_cpu_ms_per_connect", "login_p50_ms", "login_p95_ms"):
            assert run[key] is not None, (run["backend"], key)
    # Every RADIUS login was FreeRADIUS's decision, not the local user database's.
    assert through_radius["freeradius_logins_ok"] == 5
    assert results["one_at_a_time"]["radius"]["freeradius_logins_ok"] == 10
    assert "freeradius_cpu_ms_per_connect" in through_radius
    assert set(results["targets"]["ratios"]) == {"connect_rate", "server_capacity", "radius_over_local"}
    report = markdown(results)
    assert "| 5 | local | 5 | 0 |" in report
    assert "| 5 | radius | 5 | 0 |" in report
    assert "One call at a time (10 logins each in 1 round(s))" in report
