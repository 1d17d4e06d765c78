"""The benchmark harness in quick mode (1 s per figure, one run, no SoftEther): it must run end to end and
write the report and JSON with every figure; how fast anything is goes unchecked here. SoftEther is left
out to keep it short (its interop tests run it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.namespaces import skip_unless_netns

ROOT = Path(__file__).resolve().parents[2]
PATHS = ("veth", "relay", "pysstp")
FIGURES = (
    "tcp_up_1_mbps",
    "tcp_down_1_mbps",
    "tcp_up_4_mbps",
    "tcp_down_4_mbps",
    "udp1372_pps",
    "udp64_pps",
    "ping_idle_p50_ms",
    "ping_loaded_p99_ms",
)


@pytest.mark.slow
def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    skip_unless_netns()
    if shutil.which("iperf3") is None:
        pytest.skip("needs iperf3; 'make test' installs it")
    out = tmp_path / "bench"
    quick = [
        "--quick",
        "--runs",
        "1",
        "--paths",
        ",".join(PATHS),
        "--no-scale",
        "--no-scale-large",
        "--no-aggregate",
        "--no-radius",
        "--no-mru",
        "--out",
        str(out),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *quick],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(out.with_suffix(".json").read_text())
    assert set(results) >= {
        "meta",
        "runs",
        "summary",
        "ratios",
        "verdicts",
        "scale",
        "scale_large",
        "single",
        "aggregate",
        "radius",
        "mru",
    }
    assert results["meta"]["errors"] == []
    for path in PATHS:
        for figure in FIGURES:
            assert results["summary"][path][figure]["n"] == 1, (path, figure)
    assert results["summary"]["pysstp"]["cpu_server_tcp_up_1"]["n"] == 1
    assert "tcp_up_1_mbps" in results["ratios"]["pysstp/relay"]
    assert results["scale"] == {"skipped": "--no-scale"}
    assert results["scale_large"] == {"skipped": "--no-scale-large"}
    assert results["aggregate"] == {"skipped": "--no-aggregate"}
    assert results["radius"] == {"skipped": "--no-radius"}
    report = out.with_suffix(".md").read_text()
    assert "| TCP 1 stream, client → server (Mbit/s) |" in report
    assert "Skipped: --no-scale." in report
    assert "Skipped: --no-aggregate." in report
    assert "Skipped: --no-radius." in report
