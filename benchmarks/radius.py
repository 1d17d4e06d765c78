"""RADIUS: how fast ``pysstp server --backend radius`` connects calls through FreeRADIUS, and the login
latency RADIUS adds, beside the local backend in the same run.

Both backends go through :mod:`benchmarks.scale`'s connect measurement (:func:`~benchmarks.scale.dialled`:
the server in a namespace of its own, one asyncio load generator there dialling MS-CHAPv2 calls with crypto
binding). For RADIUS, FreeRADIUS 3.2 runs in a namespace behind the server's with the tests' generated
configuration (tests/helpers/freeradius.py) as deployed, ``freeradius -f`` with its thread pool rather than
the tests' single-threaded ``-X``; the user has an NT-Password, and accounting is on (Start and Stop into
its detail file), as a deployment would run it. For each N the local backend goes first, then RADIUS, so
both see the same machine. Login latency is dial to LinkUp as the client sees it, under the load of the N
calls and, apart from that, one call at a time (what RADIUS adds to a login on an idle server).

Target (reported as a ratio, never asserted): at least 300 sessions/s end to end through RADIUS.

Run alone: ``python -m benchmarks.radius [--quick] [N ...]`` (root, FreeRADIUS).
"""

from __future__ import annotations

import datetime
import os
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.netns import command_line, cpu_seconds, report
from benchmarks.scale import CONCURRENCY, PASSWORD, USER, connect_figures, dialled

from helpers.freeradius import (
    FREERADIUS,
    SECRET,
    FreeRadius,
    RadiusUser,
    freeradius_unavailable,
    radius_host_behind,
)
from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, delete_namespace
from helpers.server_process import add_user

TARGET_CONNECT_RATE = 300.0
DEFAULT_SIZES = [300, 1000]
QUICK_SIZES = [10]
ROUNDS = 3
"""Each backend is measured this many times at each N, alternating which goes first."""
ONE_AT_A_TIME = 50
"""Logins dialled one after the other for the unloaded latency (10 in quick mode)."""
HELLO = 5.0
BACKENDS = ("local", "radius")


def _version() -> str:
    """FreeRADIUS's version line (``radiusd: FreeRADIUS Version 3.2.1, ...``), shortened."""
    result = subprocess.run([FREERADIUS, "-v"], capture_output=True, text=True, timeout=30, check=False)
    first = (result.stdout or result.stderr).splitlines()[:1]
    return first[0].split(",")[0].removeprefix("radiusd: ") if first else "unknown"


@dataclass
class _Bench:
    """What every measurement shares: the server's namespace, the work directory and certificate, the
    server options of each backend, and the FreeRADIUS behind it."""

    ns: Namespace
    work: Path
    certificate: tuple[Path, Path]
    backends: dict[str, list[str]]
    freeradius: FreeRadius

    def once(self, name: str, size: int, concurrency: int, number: int) -> dict[str, Any]:
        """One backend's connect figures for ``size`` calls; for RADIUS also FreeRADIUS's CPU per call and
        the logins it accepted (its log's ``Login OK`` lines, written before it sends the Access-Accept)."""
        process = self.freeradius.process
        assert process is not None
        radius_before = cpu_seconds(process.pid)
        accepted_before = _logins_ok(self.freeradius)
        cert, key = self.certificate
        tag = f"{name}-{size}-{concurrency}-{number}"
        args = self.backends[name]
        with dialled(
            self.ns, size, self.work, cert, key, args, hello=HELLO, concurrency=concurrency, tag=tag
        ) as calls:
            radius_cpu = cpu_seconds(process.pid) - radius_before
        figures = connect_figures(size, calls)
        if name == "radius":
            figures["freeradius_logins_ok"] = _logins_ok(self.freeradius) - accepted_before
            if figures["up"]:
                figures["freeradius_cpu_ms_per_connect"] = round(radius_cpu * 1000 / figures["up"], 2)
        return figures

    def rounds(self, size: int, concurrency: int, rounds: int) -> list[dict[str, Any]]:
        """Each backend ``rounds`` times, which one goes first alternating (on this shared machine the
        first of a pair came out faster or slower by chance), merged per backend."""
        measured: dict[str, list[dict[str, Any]]] = {name: [] for name in BACKENDS}
        for number in range(rounds):
            for name in BACKENDS if number % 2 == 0 else BACKENDS[::-1]:
                measured[name].append(self.once(name, size, concurrency, number))
        return [_merge(name, size, concurrency, measured[name]) for name in BACKENDS]


MEDIANS = (
    "connect_rate",
    "server_cpu_ms_per_connect",
    "server_capacity_per_core",
    "freeradius_cpu_ms_per_connect",
    "login_p50_ms",
    "login_p95_ms",
)
"""Figures given as the median of the rounds."""


def _merge(backend: str, size: int, concurrency: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One backend's rounds at one N: the calls summed, the figures of :data:`MEDIANS` as medians (the
    connect rate with its min and max), each round kept under ``rounds``."""
    merged: dict[str, Any] = {
        "backend": backend,
        "sessions": size,
        "concurrency": concurrency,
        "calls": size * len(rounds),
        "up": sum(run["up"] for run in rounds),
        "failures": sum(run["failures"] for run in rounds),
        "failure_examples": [why for run in rounds for why in run["failure_examples"]][:3],
    }
    for key in MEDIANS:
        values = [run[key] for run in rounds if run.get(key) is not None]
        if values:
            merged[key] = round(statistics.median(values), 2)
        elif key in rounds[0]:
            merged[key] = None
    rates = [run["connect_rate"] for run in rounds]
    merged["connect_rate_min"], merged["connect_rate_max"] = min(rates), max(rates)
    if backend == "radius":
        merged["freeradius_logins_ok"] = sum(run["freeradius_logins_ok"] for run in rounds)
    merged["rounds"] = rounds
    return merged


def _load() -> str:
    """The load averages, as the main report shows them: other jobs on the machine show there."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _logins_ok(freeradius: FreeRadius) -> int:
    """How many logins FreeRADIUS has accepted so far (``log { auth = yes }`` logs each)."""
    return freeradius.log.read_text(errors="replace").count("Login OK")


def run_radius(sizes: list[int], quick: bool) -> dict[str, Any]:
    """For each N in ``sizes`` both backends (:data:`ROUNDS` rounds each, 1 in quick mode), then both
    one call at a time. JSON-able results (``skipped`` says why not)."""
    why = freeradius_unavailable()
    if why is not None:
        return {"skipped": why, "runs": []}
    rounds = 1 if quick else ROUNDS
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="pysstp-radius-") as tmp:
        work = Path(tmp)
        cert, key, _der = make_certificate(work)
        users = work / "users.toml"
        add_user(users, USER, PASSWORD)
        secret = work / "radius.secret"
        secret.write_bytes(SECRET + b"\n")
        secret.chmod(0o600)
        ns = Namespace(f"pysstp-br-{os.getpid()}")
        try:
            ns.add()
            with radius_host_behind(ns) as host:
                freeradius = host.freeradius(
                    work / "raddb", [RadiusUser(USER, PASSWORD, nt_only=True)], debug=False
                )
                radius_args = [
                    "--backend", "radius", "--radius-server", f"{freeradius.address}:{freeradius.port}",
                    "--radius-secret-file", str(secret),
                    "--radius-accounting-spool", str(work / "accounting.spool"),
                ]  # fmt: skip
                backends = {"local": ["--users", str(users)], "radius": radius_args}
                bench = _Bench(ns, work, (cert, key), backends, freeradius)
                runs = [run for size in sizes for run in bench.rounds(size, CONCURRENCY, rounds)]
                one_at_a_time = 10 if quick else ONE_AT_A_TIME
                alone = {run["backend"]: run for run in bench.rounds(one_at_a_time, 1, rounds)}
        finally:
            delete_namespace(ns)
    return {
        "quick": quick,
        "date": started,
        "load_before": load_before,
        "load_after": _load(),
        "freeradius": _version(),
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "runs": runs,
        "one_at_a_time": alone,
        "targets": _targets(runs),
    }


def _targets(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The connect rate through RADIUS at the largest N against the target, end to end and per core of
    the server's own CPU (the load generator and other jobs share the cores), and against local's."""
    radius = [run for run in runs if run["backend"] == "radius"]
    if not radius:
        return {}
    largest = max(radius, key=lambda run: run["sessions"])
    local = next(run for run in runs if run["backend"] == "local" and run["sessions"] == largest["sessions"])
    rate, capacity = largest["connect_rate"], largest["server_capacity_per_core"]
    return {
        "connect_rate": {"target": TARGET_CONNECT_RATE, "measured": rate},
        "server_capacity": {"target": TARGET_CONNECT_RATE, "measured": capacity},
        "ratios": {
            "connect_rate": round(rate / TARGET_CONNECT_RATE, 2),
            "server_capacity": round(capacity / TARGET_CONNECT_RATE, 2) if capacity else None,
            "radius_over_local": round(rate / local["connect_rate"], 2) if local["connect_rate"] else None,
        },
    }


def _cell(value: object) -> str:
    return "—" if value is None else str(value)


def markdown(results: dict[str, Any]) -> str:
    """A report section: per N local and RADIUS side by side, the latency one call at a time, the target."""
    lines = ["## RADIUS: connect rate and login latency through FreeRADIUS", ""]
    if results.get("skipped"):
        return "\n".join([*lines, f"Skipped: {results['skipped']}.", ""])
    lines += [
        "`pysstp server` with the local backend, then with `--backend radius` against "
        f"{results['freeradius']} (`freeradius -f`, its thread pool, the tests' generated configuration, "
        "accounting on) in a namespace behind the server's; one asyncio load generator, "
        f"{results['concurrency']} calls negotiating at once, MS-CHAPv2 with crypto binding, all on the "
        f"same 2-vCPU machine. Each backend {results['rounds']} time(s) at each N, which goes first "
        "alternating; figures are the median of those rounds, up and failures their sum. Login is dial "
        "to LinkUp as the client sees it; under load it includes the wait behind the other calls. "
        f"Taken {results['date']}, load average before {results['load_before']}, after "
        f"{results['load_after']}; numbers are noisy (shared machine).",
        "",
        "| N | backend | up | failures | connect rate (sessions/s) | server CPU per connect (ms) "
        "| FreeRADIUS CPU per connect (ms) | login p50 (ms) | login p95 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        rate = f"{run['connect_rate']}"
        if len(run["rounds"]) > 1:
            rate += f" ({run['connect_rate_min']}-{run['connect_rate_max']})"
        lines.append(
            f"| {run['sessions']} | {run['backend']} | {run['up']} | {run['failures']} "
            f"| {rate} | {_cell(run['server_cpu_ms_per_connect'])} "
            f"| {_cell(run.get('freeradius_cpu_ms_per_connect'))} | {_cell(run['login_p50_ms'])} "
            f"| {_cell(run['login_p95_ms'])} |"
        )
    alone = results["one_at_a_time"]
    local, radius = alone["local"], alone["radius"]
    added = (
        round(radius["login_p50_ms"] - local["login_p50_ms"], 1)
        if radius["login_p50_ms"] is not None and local["login_p50_ms"] is not None
        else None
    )
    lines += [
        "",
        f"One call at a time ({local['sessions']} logins each in {len(local['rounds'])} round(s)): "
        "login p50 / p95 local "
        f"{_cell(local['login_p50_ms'])} / {_cell(local['login_p95_ms'])} ms, RADIUS "
        f"{_cell(radius['login_p50_ms'])} / {_cell(radius['login_p95_ms'])} ms: RADIUS adds "
        f"{_cell(added)} ms at p50.",
    ]
    targets = results.get("targets")
    if targets:
        ratios = targets["ratios"]
        lines += [
            "",
            "| target | measured (largest N) | ratio (≥ 1 meets it) |",
            "|---|---|---|",
            f"| ≥ {TARGET_CONNECT_RATE:g} sessions/s through RADIUS | {targets['connect_rate']['measured']} "
            f"| {ratios['connect_rate']} |",
            f"| ≥ {TARGET_CONNECT_RATE:g} sessions/s through RADIUS, server CPU only (sessions/s per core) "
            f"| {_cell(targets['server_capacity']['measured'])} | {_cell(ratios['server_capacity'])} |",
            "",
            f"RADIUS against local, connect rate at the largest N: x{_cell(ratios['radius_over_local'])}.",
        ]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.radius``: run the benchmark and print the report."""
    parser = command_line(__doc__ or "", f"N = {QUICK_SIZES} and 10 logins one at a time")
    parser.add_argument("sizes", nargs="*", type=int, help=f"session counts (default {DEFAULT_SIZES})")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    return report(run_radius(sizes, args.quick), markdown, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
