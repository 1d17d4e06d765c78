"""``make bench``: every path measured in every run, figures as median (min-max), ratios inside each run.

    .venv/bin/python -m benchmarks.run                 # full: 3 runs, writes docs/benchmarks.{md,json}
    .venv/bin/python -m benchmarks.run --quick --out /tmp/b   # seconds per figure, 1 run (the CI smoke)

Needs root (network namespaces, TUN devices) and iperf3; SoftEther, FreeRADIUS and py-spy are used when
present.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import ROOT, aggregate, mru, radius, scale, tunnels
from benchmarks.measure import Target, cpu_use, percentiles, ping, ping_under_load, tcp, udp, udp_best_rate
from benchmarks.report import PATHS, markdown, ratios, summarise, verdicts
from pysstp.runtime import event_loops
from pysstp.sstp.constants import Timer

from helpers.connect_process import PYSSTP
from helpers.namespaces import create_pair, remove_pair
from helpers.softether import SoftEtherUnavailable

log = logging.getLogger("benchmarks")

SCALE_SIZES = [100, 500, 1000]
QUICK_SCALE_SIZES = [5]
QUICK_LARGE_SIZE = 40
"""The 100,000-session run in quick mode: the same machinery (several generators) on a few calls."""
PROFILED_SECONDS = 8
TOP_FUNCTIONS = 12


def measure(target: Target, quick: bool) -> dict[str, float]:
    """Every figure of one path, once."""
    seconds = 1 if quick else 5
    udp_seconds = 1 if quick else 3
    figures: dict[str, float] = {}
    for streams in (1, 4):
        for reverse in (False, True):
            key = f"tcp_{'down' if reverse else 'up'}_{streams}"
            cpu: dict[str, float] = {}
            with cpu_use(target.processes, cpu):
                figures[f"{key}_mbps"] = tcp(target, seconds, streams, reverse)
            figures.update({f"cpu_{role}_{key}": value for role, value in cpu.items()})
            # CPU seconds per Gbit moved: steadier than throughput on a shared machine.
            gbit = figures[f"{key}_mbps"] * seconds / 1000
            if gbit > 0:
                figures.update(
                    {f"cost_{role}_{key}": round(value * seconds / gbit, 3) for role, value in cpu.items()}
                )
    figures.update(udp_best_rate(target, udp_seconds, steps=2 if quick else 7))
    small = udp(target, udp_seconds, 64, 0)
    figures["udp64_pps"] = small.received_pps
    figures["udp64_loss"] = small.loss_percent
    idle = percentiles(ping(target.sender, target.address, count=25 if quick else 150))
    loaded = percentiles(ping_under_load(target, 2 if quick else seconds))
    figures["ping_idle_p50_ms"], figures["ping_idle_p99_ms"] = idle
    figures["ping_loaded_p50_ms"], figures["ping_loaded_p99_ms"] = loaded
    figures["ping_added_p50_ms"] = round(loaded[0] - idle[0], 3)
    return figures


def profile(target: Target, work: Path) -> dict[str, list[tuple[str, float]]]:
    """Sample each tunnel process with py-spy during one saturating TCP run; the hottest functions."""
    spy = shutil.which("py-spy") or str(Path(tunnels.PYTHON).with_name("py-spy"))
    if not Path(spy).exists():
        return {}
    recorders = {}
    for role, pid in target.processes.items():
        out = work / f"profile-{target.name}-{role}.txt"
        command = [spy, "record", "--format", "raw", "-r", "200", "-d", str(PROFILED_SECONDS), "-p", str(pid)]
        recorders[role, out] = subprocess.Popen(
            [*command, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    time.sleep(0.5)
    tcp(target, PROFILED_SECONDS - 2, 1, False)
    top: dict[str, list[tuple[str, float]]] = {}
    for (role, out), recorder in recorders.items():
        recorder.wait(PROFILED_SECONDS + 30)
        if out.exists():
            top[f"{target.name} {role}"] = hottest(out.read_text())
    return top


def hottest(raw: str) -> list[tuple[str, float]]:
    """Self time by function from py-spy's collapsed stacks (``frame;frame;... count`` per line)."""
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        if leaf.startswith("_worker (") and "concurrent/futures/thread.py" in leaf:
            # The event loop's idle executor thread (it resolved the server's name): blocked in a queue,
            # using no CPU (/proc shows 0), but py-spy counts it as active.
            continue
        # "function (path/file.py:line)": one entry per function, whatever the line.
        name, _, where = leaf.partition(" (")
        samples[f"{name} ({Path(where.rsplit(':', 1)[0]).name})"] += int(count)
    total = sum(samples.values()) or 1
    return [(name, round(100 * n / total, 1)) for name, n in samples.most_common(TOP_FUNCTIONS)]


def extra_sections(results: dict[str, Any]) -> str:
    """The scale, aggregate, RADIUS and large-MRU sections of the report (each says why when it was not
    run)."""
    absent = {"skipped": "not in this run"}
    return "\n".join(
        (
            scale.markdown(results.get("scale", absent)),
            scale.markdown(results.get("scale_large", absent | {"title": scale.LARGE_TITLE})),
            aggregate.markdown(results.get("single", absent | {"clients": 1})),
            aggregate.markdown(results.get("aggregate", absent)),
            radius.markdown(results.get("radius", absent)),
            mru.mru_markdown(results.get("mru", absent)),
        )
    )


def bench(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """Bring every path up, measure them all in each run, tear everything down."""
    tag = f"b{os.getpid() % 100000}"
    skipped: dict[str, str] = {}
    errors: list[str] = []
    runs: list[dict[str, dict[str, float]]] = []
    profiles: dict[str, list[tuple[str, float]]] = {}
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with contextlib.ExitStack() as stack:
        pair = create_pair(tag, "10.201.0.1", "10.201.0.2")
        stack.callback(remove_pair, pair)
        tunnels.start_iperf_server(pair.server, work)
        wanted = args.paths.split(",")
        targets = [tunnels.veth(pair)] if "veth" in wanted else []
        if "relay" in wanted:
            targets.append(tunnels.relay(pair, work, args.uvloop))
        if "pysstp" in wanted:
            targets.append(tunnels.pysstp(pair, work))
        if "softether" in wanted:
            try:
                targets.append(stack.enter_context(tunnels.softether(tag, work)))
            except SoftEtherUnavailable as exc:
                skipped["softether"] = str(exc)
        skipped.update({path: f"not in --paths {args.paths}" for path in PATHS if path not in wanted})
        for number in range(args.runs):
            run: dict[str, dict[str, float]] = {}
            for target in targets:
                log.info("run %d/%d: %s", number + 1, args.runs, target.name)
                try:
                    run[target.name] = measure(target, args.quick)
                except (RuntimeError, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
                    errors.append(f"run {number + 1}, {target.name}: {exc}")
                    log.warning("%s", errors[-1])
            runs.append(run)
        if args.profile:
            for target in targets:
                if target.processes:
                    profiles.update(profile(target, work))
    summary = summarise(runs)
    ratio = ratios(runs)
    meta = tunnels.environment() | {
        "date": started,
        "runs": args.runs,
        "quick": args.quick,
        "seconds": 1 if args.quick else 5,
        "relay_loop": "uvloop" if args.uvloop else "asyncio",
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "skipped": skipped,
        "errors": errors,
    }
    return {
        "meta": meta,
        "runs": runs,
        "summary": summary,
        "ratios": ratio,
        "verdicts": verdicts(summary, ratio),
        "profile": profiles,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module doc."""
    parser = argparse.ArgumentParser(description="pysstp data-path benchmark (needs root)")
    parser.add_argument("--quick", action="store_true", help="1-2 s per figure, for the CI smoke")
    parser.add_argument("--runs", type=int, default=3, help="runs of every figure (default 3)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks", help="writes OUT.md, OUT.json"
    )
    parser.add_argument("--paths", default=",".join(PATHS), help="which paths to measure (default: all)")
    parser.add_argument("--no-scale", dest="scale", action="store_false", help="skip benchmarks/scale.py")
    parser.add_argument(
        "--no-scale-large", dest="scale_large", action="store_false", help="skip the 100,000 sessions"
    )
    parser.add_argument(
        "--no-aggregate", dest="aggregate", action="store_false", help="skip benchmarks/aggregate.py"
    )
    parser.add_argument(
        "--workers",
        help="the server's worker counts for the large scale and aggregate runs (default: 1, "
        "and 2 where pysstp server has --workers)",
    )
    parser.add_argument(
        "--loops", help="event loops to compare (default: asyncio, and uvloop where it is installed)"
    )
    parser.add_argument("--no-radius", dest="radius", action="store_false", help="skip benchmarks/radius.py")
    parser.add_argument("--no-mru", dest="mru", action="store_false", help="skip benchmarks/mru.py")
    parser.add_argument("--profile", action="store_true", help="py-spy the tunnel processes afterwards")
    parser.add_argument("--uvloop", action="store_true", help="run the reference relay on uvloop")
    parser.add_argument("--notes", type=Path, help="a Markdown file appended to the report as Notes")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite OUT.md from OUT.json (and --notes)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.render and (os.geteuid() != 0 or shutil.which("iperf3") is None):
        parser.error("needs root and iperf3 ('make bench' installs it)")
    notes = args.notes.read_text() if args.notes else ""
    if args.render:
        results = json.loads(args.out.with_suffix(".json").read_text(), parse_constant=float)
    else:
        with tempfile.TemporaryDirectory(prefix="pysstp-bench-") as work:
            results = bench(args, Path(work))
        sizes = QUICK_SCALE_SIZES if args.quick else SCALE_SIZES
        workers = tuple(int(n) for n in (args.workers or default_workers()).split(","))
        loops = tuple((args.loops or ",".join(event_loops())).split(","))
        results["scale"] = (
            scale.run_scale(sizes, args.quick, loops=loops) if args.scale else {"skipped": "--no-scale"}
        )
        results["scale_large"] = (
            scale.run_scale(
                [QUICK_LARGE_SIZE if args.quick else scale.LARGE_SIZE],
                args.quick,
                hello=2.0 if args.quick else Timer.HELLO.value,
                workers=large_workers(workers, QUICK_LARGE_SIZE if args.quick else scale.LARGE_SIZE),
                goals=scale.LARGE_GOALS,
                title=scale.LARGE_TITLE,
            )
            if args.scale_large
            else {"skipped": "--no-scale-large"}
        )
        results["single"] = (
            aggregate.run_aggregate(args.quick, 1, (1,), loops)
            if args.aggregate
            else {"clients": 1, "skipped": "--no-aggregate"}
        )
        results["aggregate"] = (
            aggregate.run_aggregate(args.quick, aggregate.CLIENTS, workers, loops)
            if args.aggregate
            else {"skipped": "--no-aggregate"}
        )
        radius_sizes = radius.QUICK_SIZES if args.quick else radius.DEFAULT_SIZES
        results["radius"] = (
            radius.run_radius(radius_sizes, args.quick) if args.radius else {"skipped": "--no-radius"}
        )
        results["mru"] = mru.run_mru(args.quick) if args.mru else {"skipped": "--no-mru"}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(_json_safe(results), indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results, extra_sections(results), notes))
    log.info("wrote %s.md and %s.json", args.out, args.out)
    return 0


def default_workers() -> str:
    """``1,2`` where ``pysstp server`` takes ``--workers`` (issue 13's workers), else ``1``."""
    usage = subprocess.run([PYSSTP, "server", "--help"], capture_output=True, text=True, check=False).stdout
    return "1,2" if "--workers" in usage else "1"


def large_workers(workers: tuple[int, ...], size: int) -> tuple[int, ...]:
    """``workers``, and where none of them can hold ``size`` calls under the open-file limit (a container
    whose hard limit root may not raise), also the fewest that can, so that the 100,000 are measured;
    not where only one worker is asked (a server without ``--workers``)."""
    needed = scale.workers_to_fit(size)
    if max(workers) == 1 or max(workers) >= needed:
        return workers
    return (*workers, needed)


def _json_safe(value: object) -> object:
    """NaN (a figure that could not be taken) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
