"""Scale: how many idle sessions one ``pysstp server`` process holds, how fast they connect, what each costs.

The server is the real ``pysstp server`` in a network namespace of its own, listening on the namespace's
loopback, with its TUN device there. The load generator is one asyncio process in the same namespace that
dials N calls with pysstp's own client link over TLS (MS-CHAPv2 and crypto binding, no TUN). Measured per
N: the connect rate, the login latency (dial to LinkUp), the server's resident memory before and after
(VmRSS) and so per session, and the server's CPU share over an idle window in which every call exchanges
SSTP echoes (Hello) at a short interval. :func:`dialled` and :func:`connect_figures`, the connect part, are
also benchmarks/radius.py's, with other server options.

Targets (reported as ratios, never asserted): 1000 concurrent idle sessions in one process, at most
64 KiB of RSS per session, and at least 100 new sessions per second.

Run alone: ``python -m benchmarks.scale [--quick] [N ...]`` (root).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import ROOT
from benchmarks.measure import nearest_rank
from benchmarks.netns import command_line, cpu_seconds, report, rss_kib

from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, delete_namespace, netns_unavailable, stop_process
from helpers.server_process import add_user, start_server

TARGET_SESSIONS = 1000
TARGET_KIB_PER_SESSION = 64
TARGET_CONNECT_RATE = 100.0
DEFAULT_SIZES = [100, 500, 1000]
PORT = 8443
USER, PASSWORD = "bench", "bench-password"
CONCURRENCY = 64
"""Calls the generator has in negotiation at once (the server admits up to 256 by default)."""


# -- the load generator (runs as its own process inside the namespace) --------------------------------


async def generate(cafile: str, count: int, concurrency: int, hello: float) -> None:
    """Dial ``count`` calls, report on stdout, hold them until stdin says so, then close them in order."""
    # Imported here: the parent (the runner) does not need the client stack.
    from pysstp.client.dial import ConnectError, dial
    from pysstp.connection import LinkConnection
    from pysstp.link import CallEvent, ClientConfig, LinkDown, LinkUp
    from pysstp.ppp.constants import AuthMethod

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context(cafile=cafile)
    config = ClientConfig(
        host="sstp.test",
        username=USER,
        password=PASSWORD,
        auth_methods=(AuthMethod.MSCHAP_V2,),
        hello_interval=hello,
    )
    connections: list[LinkConnection] = []
    failures: list[str] = []
    latencies: list[float] = []
    lost = 0
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal lost
        up: asyncio.Future[None] = loop.create_future()

        def on_event(_connection: LinkConnection, event: CallEvent) -> None:
            nonlocal lost
            if isinstance(event, LinkUp) and not up.done():
                up.set_result(None)
            elif isinstance(event, LinkDown):
                if up.done():
                    lost += 1
                else:
                    up.set_exception(ConnectError(event.reason))

        async with gate:
            began = time.perf_counter()
            try:
                connection = await dial(
                    config, "127.0.0.1", PORT, context, deliver=lambda _c, _p: None, on_event=on_event
                )
                await asyncio.wait_for(up, 30)
            except (ConnectError, OSError, TimeoutError) as exc:
                failures.append(str(exc) or type(exc).__name__)
                return
            latencies.append(time.perf_counter() - began)
            connections.append(connection)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    seconds = time.perf_counter() - start
    report = {
        "up": len(connections),
        "failures": len(failures),
        "seconds": seconds,
        "why": failures[:3],
        "latency_ms": [round(latency * 1000, 2) for latency in latencies],
    }
    print(json.dumps(report), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    # Counted before our own hang-ups, which end every call too.
    lost_while_idle = lost
    for connection in connections:
        connection.close("benchmark over")
    deadline = time.monotonic() + 10
    while any(not c.closed for c in connections) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    print(json.dumps({"lost_while_idle": lost_while_idle}), flush=True)


# -- the runner ------------------------------------------------------------------------------------


def _pool(size: int) -> str:
    """An address pool with room for ``size`` clients and the server (/22 for 1000)."""
    return f"10.96.0.0/{min(24, 32 - (size + 2).bit_length())}"


@dataclass
class Dialled:
    """The calls of :func:`dialled`, up: what the generator reported (``up``, ``failures``, ``seconds``,
    ``why``, ``latency_ms``), the server's CPU seconds spent connecting them and its RSS before."""

    server: subprocess.Popen[str]
    generator: subprocess.Popen[str]
    report: dict[str, Any]
    server_cpu: float
    rss_before_kib: int
    closing: dict[str, Any] = field(default_factory=dict)
    """The generator's last line (``lost_while_idle``), once the calls are closed."""


@contextmanager
def dialled(
    ns: Namespace,
    size: int,
    work: Path,
    cert: Path,
    key: Path,
    server_args: Sequence[str],
    *,
    hello: float,
    concurrency: int = CONCURRENCY,
    tag: str = "",
) -> Iterator[Dialled]:
    """Start ``pysstp server`` in ``ns`` on its loopback with ``server_args`` added (the user database or
    backend), dial ``size`` calls to it from a load generator in ``ns``, ``concurrency`` negotiating at once,
    and hand both over while the calls are up; then hang up (filling ``closing``) and stop the server."""
    tag = tag or str(size)
    server = start_server(
        ns, work / f"server-{tag}.log",
        "--cert", str(cert), "--key", str(key),
        "--listen", "127.0.0.1", "--port", str(PORT), "--pool", _pool(size),
        "--tun-name", "sstpb0", "--control-socket", str(work / f"ctl-{tag}.sock"),
        "--max-sessions", str(size + 16), "--connections-per-source-per-minute", "0",
        "--keepalive", str(hello), "--no-mss-clamp", *server_args, timeout=30,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        rss_before = rss_kib(server.pid)
        cpu_before = cpu_seconds(server.pid)
        generator = ns.start(
            [
                sys.executable, "-m", "benchmarks.scale", "--generate",
                "--cafile", str(cert), "--concurrency", str(concurrency), "--hello", str(hello), str(size),
            ],
            None,
            cwd=ROOT,  # where ``python -m benchmarks.scale`` finds this package
        )  # fmt: skip
        assert generator.stdout is not None and generator.stdin is not None
        line = generator.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator for N={size} died (exit {generator.wait()})")
        calls = Dialled(server, generator, json.loads(line), cpu_seconds(server.pid) - cpu_before, rss_before)
        yield calls
        generator.stdin.write("close\n")
        generator.stdin.flush()
        calls.closing = json.loads(generator.stdout.readline() or "{}")
        generator.wait(30)
    finally:
        stop_process(server)


def connect_figures(size: int, calls: Dialled) -> dict[str, Any]:
    """The connect figures of :func:`dialled`'s calls: rate, failures, the server's CPU per call and the
    login latency (dial to LinkUp) percentiles."""
    connected = calls.report
    up, seconds = connected["up"], connected["seconds"]
    latency = sorted(connected["latency_ms"])
    return {
        "sessions": size,
        "up": up,
        "failures": connected["failures"],
        "failure_examples": connected["why"],
        "connect_seconds": round(seconds, 3),
        "connect_rate": round(up / seconds, 1) if seconds else 0.0,
        "server_cpu_ms_per_connect": round(calls.server_cpu * 1000 / up, 2) if up else None,
        # What one core could accept if the server had it to itself: the generator (as much Python work
        # per call as the server) and the other users of this machine share the same cores.
        "server_capacity_per_core": round(up / calls.server_cpu, 1) if up and calls.server_cpu else None,
        "login_p50_ms": round(nearest_rank(latency, 0.5), 1) if latency else None,
        "login_p95_ms": round(nearest_rank(latency, 0.95), 1) if latency else None,
    }


def _measure(size: int, quick: bool, work: Path, cert: Path, key: Path, users: Path) -> dict[str, Any]:
    hello = 2.0 if quick else 5.0
    window = 4.0 if quick else 10.0
    ns = Namespace(f"pysstp-bs{size}-{os.getpid()}")
    try:
        ns.add()
        with dialled(ns, size, work, cert, key, ("--users", str(users)), hello=hello) as calls:
            time.sleep(1.0)  # let the last calls' set-up garbage go before measuring
            rss_after = rss_kib(calls.server.pid)
            server_cpu, generator_cpu = cpu_seconds(calls.server.pid), cpu_seconds(calls.generator.pid)
            started = time.monotonic()
            time.sleep(window)
            elapsed = time.monotonic() - started
            idle_cpu = (cpu_seconds(calls.server.pid) - server_cpu) / elapsed * 100
            generator_idle_cpu = (cpu_seconds(calls.generator.pid) - generator_cpu) / elapsed * 100
    finally:
        delete_namespace(ns)
    figures = connect_figures(size, calls)
    up, rss_before = figures["up"], calls.rss_before_kib
    return figures | {
        "lost_while_idle": calls.closing.get("lost_while_idle"),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_session": round((rss_after - rss_before) / up, 1) if up else None,
        "idle_window_s": round(elapsed, 1),
        "hello_interval_s": hello,
        "idle_cpu_percent": round(idle_cpu, 2),
        "generator_idle_cpu_percent": round(generator_idle_cpu, 2),
    }


def run_scale(sizes: list[int], quick: bool) -> dict[str, Any]:
    """Measure each N in ``sizes`` with a fresh server; JSON-able results (``skipped`` says why not)."""
    why = netns_unavailable()
    if why is not None:
        return {"skipped": why, "runs": []}
    runs = []
    with tempfile.TemporaryDirectory(prefix="pysstp-scale-") as tmp:
        work = Path(tmp)
        cert, key, _ = make_certificate(work)
        users = work / "users.toml"
        add_user(users, USER, PASSWORD)
        for size in sizes:
            runs.append(_measure(size, quick, work, cert, key, users))
    return {
        "quick": quick,
        "certificate": "ECDSA P-256",
        "concurrency": CONCURRENCY,
        "runs": runs,
        "targets": _targets(runs),
    }


def _targets(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Measured / target for each target (1.0 or more meets it), from the largest run."""
    if not runs:
        return {}
    largest = max(runs, key=lambda r: r["sessions"])
    kib = largest["kib_per_session"]
    capacity = largest["server_capacity_per_core"]
    return {
        "sessions": {"target": TARGET_SESSIONS, "measured": largest["up"]},
        "kib_per_session": {"target": TARGET_KIB_PER_SESSION, "measured": kib},
        "connect_rate": {"target": TARGET_CONNECT_RATE, "measured": largest["connect_rate"]},
        "server_capacity": {"target": TARGET_CONNECT_RATE, "measured": capacity},
        "ratios": {
            "sessions": round(largest["up"] / TARGET_SESSIONS, 2),
            # Lower is better for memory, so the ratio is target over measured.
            "kib_per_session": round(TARGET_KIB_PER_SESSION / kib, 2) if kib and kib > 0 else None,
            "connect_rate": round(largest["connect_rate"] / TARGET_CONNECT_RATE, 2),
            "server_capacity": round(capacity / TARGET_CONNECT_RATE, 2) if capacity else None,
        },
    }


def markdown(results: dict[str, Any]) -> str:
    """A report section: one row per N, then the targets with their ratios."""
    lines = ["## Scale: idle sessions in one server process", ""]
    if results.get("skipped"):
        return "\n".join([*lines, f"Skipped: {results['skipped']}.", ""])
    lines += [
        "One `pysstp server` process (ECDSA P-256 certificate) and one asyncio load generator on the same "
        f"2-vCPU machine, {results['concurrency']} calls negotiating at once, MS-CHAPv2 with crypto "
        "binding. Idle CPU is the server's share of one core while every call exchanges SSTP Hellos "
        "at the interval shown. Server capacity is calls accepted per second of the server's own CPU: "
        "the generator does as much Python work per call as the server and shares the same two cores "
        "(with other jobs), so the connect rate is lower. Numbers are noisy (shared machine).",
        "",
        "| N | up | failures | connect rate (sessions/s) | server CPU per connect (ms) "
        "| server capacity (sessions/s per core) | RSS before (MiB) | RSS after (MiB) "
        "| RSS per session (KiB) | idle CPU (%) | Hello every (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        lines.append(
            f"| {run['sessions']} | {run['up']} | {run['failures']} | {run['connect_rate']} "
            f"| {run['server_cpu_ms_per_connect']} | {run['server_capacity_per_core']} "
            f"| {run['rss_before_kib'] / 1024:.1f} "
            f"| {run['rss_after_kib'] / 1024:.1f} | {run['kib_per_session']} | {run['idle_cpu_percent']} "
            f"| {run['hello_interval_s']:g} |"
        )
    targets = results.get("targets")
    if targets:
        ratios = targets["ratios"]
        lines += [
            "",
            "| target | measured (largest N) | ratio (≥ 1 meets it) |",
            "|---|---|---|",
            f"| ≥ {TARGET_SESSIONS} concurrent sessions | {targets['sessions']['measured']} "
            f"| {ratios['sessions']} |",
            f"| ≤ {TARGET_KIB_PER_SESSION} KiB RSS per session | {targets['kib_per_session']['measured']} "
            f"| {ratios['kib_per_session']} |",
            f"| ≥ {TARGET_CONNECT_RATE:g} sessions/s | {targets['connect_rate']['measured']} "
            f"| {ratios['connect_rate']} |",
            f"| ≥ {TARGET_CONNECT_RATE:g} sessions/s, server CPU only | "
            f"{targets['server_capacity']['measured']} | {ratios['server_capacity']} |",
        ]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.scale``: run the benchmark and print the report (or, internally, be the
    load generator)."""
    parser = command_line(__doc__ or "", "shorter idle window and Hello interval")
    parser.add_argument("sizes", nargs="*", type=int, help=f"session counts (default {DEFAULT_SIZES})")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cafile", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help=argparse.SUPPRESS)
    parser.add_argument("--hello", type=float, default=5.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:
        asyncio.run(generate(args.cafile, args.sizes[0], args.concurrency, args.hello))
        return 0
    return report(run_scale(args.sizes or DEFAULT_SIZES, args.quick), markdown, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
