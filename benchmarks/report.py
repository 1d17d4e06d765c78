"""Turn the runs into medians, in-run ratios, target verdicts and docs/benchmarks.md."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Run = dict[str, dict[str, float]]
"""One run: for each path (veth, relay, pysstp, softether), its figures by metric name."""


@dataclass(frozen=True)
class Metric:
    """A figure the report shows, and whether a bigger value is better (for ratios)."""

    key: str
    label: str
    higher_is_better: bool = True


METRICS = (
    Metric("tcp_up_1_mbps", "TCP 1 stream, client → server (Mbit/s)"),
    Metric("tcp_down_1_mbps", "TCP 1 stream, server → client (Mbit/s)"),
    Metric("tcp_up_4_mbps", "TCP 4 streams, client → server (Mbit/s)"),
    Metric("tcp_down_4_mbps", "TCP 4 streams, server → client (Mbit/s)"),
    Metric("udp1372_pps", "UDP 1372 B, highest rate at ≤1 % loss (packets/s)"),
    Metric("udp1372_mbps", "  same, payload Mbit/s"),
    Metric("udp1372_flood_pps", "UDP 1372 B flood, received (packets/s)"),
    Metric("udp64_pps", "UDP 64 B flood, received (packets/s)"),
    Metric("ping_idle_p50_ms", "ping RTT idle, p50 (ms)", higher_is_better=False),
    Metric("ping_idle_p99_ms", "ping RTT idle, p99 (ms)", higher_is_better=False),
    Metric("ping_loaded_p50_ms", "ping RTT under TCP load, p50 (ms)", higher_is_better=False),
    Metric("ping_loaded_p99_ms", "ping RTT under TCP load, p99 (ms)", higher_is_better=False),
    Metric("ping_added_p50_ms", "load adds to p50 RTT (ms)", higher_is_better=False),
)
PATHS = ("veth", "relay", "pysstp", "softether")
COMPARISONS = (("pysstp", "relay"), ("pysstp", "softether"), ("relay", "veth"))


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of the finite values (NaN-free), with how many there were."""
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {
        "median": round(statistics.median(finite), 3),
        "min": round(min(finite), 3),
        "max": round(max(finite), 3),
        "n": len(finite),
    }


def summarise(runs: Sequence[Run]) -> dict[str, dict[str, dict[str, float]]]:
    """Per path and metric (CPU figures included): median, min and max over the runs."""
    keys: dict[str, set[str]] = {}
    for run in runs:
        for path, figures in run.items():
            keys.setdefault(path, set()).update(k for k, v in figures.items() if isinstance(v, int | float))
    return {
        path: {key: spread([run.get(path, {}).get(key, math.nan) for run in runs]) for key in sorted(names)}
        for path, names in keys.items()
    }


def ratios(runs: Sequence[Run]) -> dict[str, dict[str, dict[str, float]]]:
    """For each comparison (e.g. pysstp/relay), the ratio of each metric inside each run, summarised."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for a, b in COMPARISONS:
        per_metric: dict[str, dict[str, float]] = {}
        for metric in METRICS:
            if not metric.higher_is_better:
                continue
            values = []
            for run in runs:
                x, y = run.get(a, {}).get(metric.key), run.get(b, {}).get(metric.key)
                if isinstance(x, int | float) and isinstance(y, int | float) and y:
                    values.append(x / y)
            if values:
                per_metric[metric.key] = spread(values)
        if per_metric:
            out[f"{a}/{b}"] = per_metric
    return out


def verdicts(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]],
    ratio: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> list[dict[str, object]]:
    """The issue's targets, each with the measured value and whether it is met (nothing asserted)."""
    vs_relay = ratio.get("pysstp/relay", {})
    vs_softether = ratio.get("pysstp/softether", {})
    added = summary.get("pysstp", {}).get("ping_added_p50_ms", {}).get("median", math.nan)
    rows: list[dict[str, object]] = []

    def add(name: str, value: float, goal: float, at_least: bool, unit: str) -> None:
        met = (value >= goal if at_least else value <= goal) if math.isfinite(value) else None
        rows.append({"target": name, "value": value, "goal": goal, "unit": unit, "met": met})

    for key, name in (
        ("tcp_up_1_mbps", "TCP 1 stream client → server vs relay"),
        ("tcp_down_1_mbps", "TCP 1 stream server → client vs relay"),
        ("udp1372_pps", "UDP 1372 B at ≤1 % loss vs relay"),
    ):
        add(name, vs_relay.get(key, {}).get("median", math.nan), 0.9, True, "x")
    add("p50 RTT added by a saturating TCP flow", added, 20.0, False, "ms")
    for key, name in (
        ("tcp_up_1_mbps", "TCP 1 stream client → server vs SoftEther"),
        ("tcp_down_1_mbps", "TCP 1 stream server → client vs SoftEther"),
    ):
        add(name, vs_softether.get(key, {}).get("median", math.nan), 1.0, True, "x")
    return rows


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _cell(figure: Mapping[str, float] | None) -> str:
    if not figure or not figure.get("n"):
        return "—"
    if figure["n"] == 1:
        return _fmt(figure["median"])
    return f"**{_fmt(figure['median'])}** ({_fmt(figure['min'])}-{_fmt(figure['max'])})"


def markdown(results: Mapping[str, object], sections: str, notes: str) -> str:
    """docs/benchmarks.md from the results (the same dict as docs/benchmarks.json), then ``sections``
    (the scale and large-MRU reports) and ``notes``."""
    meta = results["meta"]
    summary = results["summary"]
    ratio = results["ratios"]
    assert isinstance(meta, dict) and isinstance(summary, dict) and isinstance(ratio, dict)
    paths = [p for p in PATHS if p in summary]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (benchmarks/run.py); the raw figures of every run are in"
        " [benchmarks.json](benchmarks.json). Each cell is the **median** of the runs with (min-max).",
        "",
        f"Runs: {meta['runs']}, {meta['seconds']} s per TCP figure{' (quick mode)' if meta['quick'] else ''}."
        f" Machine: {meta['cpus']} CPUs, kernel {meta['kernel']}, Python {meta['python']},"
        f" load average before {meta['load_before']}, after {meta.get('load_after', '?')}."
        f" Taken {meta['date']}.",
        "",
        "Paths: **veth** is the namespaces' veth pair without a tunnel (the physical ceiling); **relay** is"
        " benchmarks/relay.py, a bare Python TUN → TLS → TUN relay with SSTP framing and no PPP or SSTP"
        " control (the practical ceiling of the approach); **pysstp** is `pysstp connect` against"
        " `pysstp server`; **softether** is the same `pysstp connect` against a SoftEther 5.01 server"
        " (tests/helpers/softether.py) whose hub is bridged to a veth where iperf3 listens.",
        "",
    ]
    skipped = meta.get("skipped") or {}
    assert isinstance(skipped, dict)
    for path, reason in skipped.items():
        lines.append(f"*{path}: not run ({reason}).*")
    if skipped:
        lines.append("")
    lines += ["## Figures", "", "| figure | " + " | ".join(paths) + " |", "|---" * (len(paths) + 1) + "|"]
    for metric in METRICS:
        cells = [_cell(summary[p].get(metric.key)) for p in paths]
        lines.append(f"| {metric.label} | " + " | ".join(cells) + " |")
    lines += ["", "### CPU of each tunnel process (cores, during each TCP figure)", ""]
    cpu_rows = sorted({k for p in paths for k in summary[p] if k.startswith("cpu_")})
    tunnel_paths = [p for p in paths if p != "veth"]
    lines += [
        "| process, figure | " + " | ".join(tunnel_paths) + " |",
        "|---" * (len(tunnel_paths) + 1) + "|",
    ]
    for key in cpu_rows:
        label = key.removeprefix("cpu_").replace("_", " ", 1)
        lines.append(f"| {label} | " + " | ".join(_cell(summary[p].get(key)) for p in tunnel_paths) + " |")
    lines += ["", "### CPU seconds per Gbit/s moved (each tunnel process, each TCP figure)", ""]
    lines += [
        "| process, figure | " + " | ".join(tunnel_paths) + " |",
        "|---" * (len(tunnel_paths) + 1) + "|",
    ]
    for key in sorted({k for p in paths for k in summary[p] if k.startswith("cost_")}):
        label = key.removeprefix("cost_").replace("_", " ", 1)
        lines.append(f"| {label} | " + " | ".join(_cell(summary[p].get(key)) for p in tunnel_paths) + " |")
    lines += ["", "## Ratios (inside each run, then the median over runs)", ""]
    comparisons = list(ratio)
    lines += ["| figure | " + " | ".join(comparisons) + " |", "|---" * (len(comparisons) + 1) + "|"]
    for metric in METRICS:
        if metric.higher_is_better:
            cells = [_cell(ratio[c].get(metric.key)) for c in comparisons]
            lines.append(f"| {metric.label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Targets (reported, not asserted)",
        "",
        "| target | measured | goal | met |",
        "|---|---|---|---|",
    ]
    for row in results["verdicts"]:  # type: ignore[attr-defined]
        met = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        sign = "≤" if row["unit"] == "ms" else "≥"
        measured, goal = f"{_fmt(row['value'])} {row['unit']}", f"{sign} {row['goal']} {row['unit']}"
        lines.append(f"| {row['target']} | {measured} | {goal} | {met} |")
    profile = results.get("profile")
    if isinstance(profile, dict) and profile:
        lines += ["", "## Profile (py-spy, self time of the hottest functions during one TCP run)", ""]
        for process, top in profile.items():
            lines += [f"**{process}**", "", "| share | function |", "|---|---|"]
            lines += [f"| {share:.1f} % | `{name}` |" for name, share in top]
            lines.append("")
    lines += ["", sections.strip(), ""]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    return "\n".join(lines)
