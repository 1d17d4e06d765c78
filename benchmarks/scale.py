"""Scale: how many idle sessions one ``pysstp server`` holds, how fast they connect, what each costs.

The server is the real ``pysstp server`` in a network namespace of its own, listening on the namespace's
loopback, with its TUN device there. The load generators are asyncio processes in the same namespace (one
per :data:`CALLS_PER_GENERATOR` calls, each bound to a loopback source address of its own: one address has
only about 64,000 ports) that dial N calls with pysstp's own client link over TLS (MS-CHAPv2 and crypto
binding, no TUN). Measured per N: the connect rate, the login latency (dial to LinkUp), the server's
resident memory before and after (VmRSS) and so per session, and the server's CPU share over an idle
window in which every call exchanges SSTP echoes (Hello). :func:`dialled` and :func:`connect_figures`, the
connect part, are also benchmarks/radius.py's, with other server options.

Targets (reported as ratios, never asserted): up to 1,000 sessions, the first scale issue's (64 KiB per
session, 100 sessions/s); above, issue 13's "a gateway for thousands" (100,000 sessions, at most 24 KiB
each, 600 sessions/s per core of server CPU).

Run alone: ``python -m benchmarks.scale [--quick] [--hello S] [--workers 1,2] [N ...]`` (root). 100,000
calls take about 10 minutes and 8 GiB of memory (server and generators) on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import ROOT
from benchmarks.measure import nearest_rank
from benchmarks.netns import (
    command_line,
    cpu_seconds,
    event_loop,
    report,
    tree_cpu_seconds,
    tree_rss_kib,
    warn_if_busy,
)

from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, delete_namespace, netns_unavailable, stop_process
from helpers.server_process import add_user, start_server

if TYPE_CHECKING:
    from pysstp.connection import LinkConnection
    from pysstp.link import CallEvent


@dataclass(frozen=True)
class Goals:
    """The targets a scale run is held against (reported, never asserted)."""

    sessions: int
    kib_per_session: float
    connect_rate: float
    """End to end, generators included."""
    capacity_per_core: float
    """Calls per second of the server's own CPU."""


SMALL_GOALS = Goals(sessions=1000, kib_per_session=64, connect_rate=100.0, capacity_per_core=100.0)
LARGE_GOALS = Goals(sessions=100_000, kib_per_session=24, connect_rate=100.0, capacity_per_core=600.0)
TITLE = "Scale: idle sessions in one server"
LARGE_TITLE = "Scale: 100,000 idle sessions"
DEFAULT_SIZES = [100, 500, 1000]
LARGE_SIZE = 100_000
PORT = 8443
SERVER_HOST = "127.0.0.1"
USER, PASSWORD = "bench", "bench-password"
CONCURRENCY = 64
"""Calls the generators have in negotiation at once, in all (the server admits up to 256 by default)."""
CALLS_PER_GENERATOR = 10_000
"""Calls one load-generator process dials (from one source address)."""
FILE_RESERVE = 256
"""Open files a process needs besides one socket per call (listeners, TUN, logs, the event loop)."""
CALL_TIMEOUT = 60.0
"""Seconds one call may take to come up; a busy machine with 100,000 calls is slow."""
IP_BIND_ADDRESS_NO_PORT = 24
"""``linux/in.h``: bind() takes the address only; connect() picks the port (not in :mod:`socket`)."""


def goals_for(largest: int) -> Goals:
    """The targets of a run whose largest N is ``largest``."""
    return LARGE_GOALS if largest > SMALL_GOALS.sessions else SMALL_GOALS


# -- the load generator (runs as its own processes inside the namespace) ------------------------------


async def generate(cafile: str, count: int, concurrency: int, hello: float, port: int, source: str) -> None:
    """Dial ``count`` calls from ``source`` (a loopback address), report on stdout, hold them until stdin
    says so, then close them in order."""
    # Imported here: the parent (the runner) does not need the client stack.
    from pysstp.client.dial import ClientConnection, ConnectError
    from pysstp.link import ClientConfig, ClientLink, LinkDown, LinkUp
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

    async def open_call(on_event: Callable[[LinkConnection, CallEvent], None]) -> LinkConnection:
        # Bound before connecting, so that each generator has a source address (and its ports) of its
        # own; the port is picked at connect time (IP_BIND_ADDRESS_NO_PORT), per destination.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
            await loop.sock_connect(sock, (SERVER_HOST, port))
            _, connection = await loop.create_connection(
                lambda: ClientConnection(
                    ClientLink(config), deliver=lambda _c, _p: None, on_event=on_event, tls_name=config.host
                ),
                sock=sock,
                ssl=context,
                server_hostname=config.host,
                ssl_handshake_timeout=CALL_TIMEOUT,
            )
        except BaseException:
            sock.close()
            raise
        return connection

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
                connection = await open_call(on_event)
                await asyncio.wait_for(up, CALL_TIMEOUT)
            except (ConnectError, OSError, ssl.SSLError, TimeoutError) as exc:
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
    deadline = time.monotonic() + 10 + count / 1000
    while any(not c.closed for c in connections) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    print(json.dumps({"lost_while_idle": lost_while_idle}), flush=True)


# -- the runner ------------------------------------------------------------------------------------


def _pool(size: int) -> str:
    """An address pool with room for ``size`` clients and the server (/22 for 1000)."""
    return f"10.96.0.0/{min(24, 32 - (size + 2).bit_length())}"


def generators_for(size: int) -> int:
    """How many load-generator processes dial ``size`` calls: one per :data:`CALLS_PER_GENERATOR`, and
    none with more calls than the open-file limit lets a process hold."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    per_generator = min(CALLS_PER_GENERATOR, hard - FILE_RESERVE)
    return max(1, -(-size // per_generator))


def file_limit_for(size: int) -> int:
    """Open files a process needs to hold ``size`` calls: a socket each, and room for the rest."""
    return size + FILE_RESERVE


def sessions_that_fit(size: int, workers: int = 1) -> int:
    """``size``, or fewer when the server's processes could not open that many files (each worker holds
    the sockets of its own calls): raise the hard open-file limit that this process's children (the
    server, the generators) inherit, which root may do up to ``fs.nr_open``, but only with
    CAP_SYS_RESOURCE (a container may lack it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = file_limit_for(-(-size // workers))
    if hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, needed))
        except (ValueError, OSError):
            return min(size, workers * (hard - FILE_RESERVE))
    return size


def workers_to_fit(size: int) -> int:
    """The fewest server workers among which ``size`` calls fit under this machine's hard open-file
    limit (a tenth spare, since the kernel spreads calls over the workers only about evenly)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return 1
    per_worker = (hard - FILE_RESERVE) * 9 // 10
    return max(1, -(-size // per_worker))


@dataclass
class Dialled:
    """The calls of :func:`dialled`, up: what the generators reported together (``up``, ``failures``,
    ``seconds``, ``why``, ``latency_ms``), the server's CPU seconds spent connecting them and its RSS
    before (the server's processes summed: with workers, the workers too)."""

    server: subprocess.Popen[str]
    generators: list[subprocess.Popen[str]]
    report: dict[str, Any]
    server_cpu: float
    rss_before_kib: int
    loop_name: str = "?"
    """The event loop the server says it runs (its log)."""
    closing: dict[str, Any] = field(default_factory=dict)
    """The generators' last lines summed (``lost_while_idle``), once the calls are closed."""

    def server_rss_kib(self) -> int:
        """Resident memory of the server's processes now, in KiB."""
        return tree_rss_kib(self.server.pid)

    def server_cpu_seconds(self) -> float:
        """CPU seconds the server's processes have used so far."""
        return tree_cpu_seconds(self.server.pid)

    def generator_cpu_seconds(self) -> float:
        """CPU seconds the generators have used so far."""
        return sum(cpu_seconds(generator.pid) for generator in self.generators)


def loop_in_log(log: Path) -> str:
    """The event loop a ``pysstp server`` log names (``event loop NAME`` at the end of its listening
    line), or ``?``."""
    found = re.search(r"; event loop (.+)", log.read_text(errors="replace"))
    return found.group(1).strip() if found else "?"


def _merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The generators' connect reports as one: calls summed, the slowest generator's time (they start
    together), every latency."""
    return {
        "up": sum(r["up"] for r in reports),
        "failures": sum(r["failures"] for r in reports),
        "seconds": max(r["seconds"] for r in reports),
        "why": [why for r in reports for why in r["why"]][:3],
        "latency_ms": [ms for r in reports for ms in r["latency_ms"]],
    }


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
    workers: int = 1,
    loop: str = "asyncio",
) -> Iterator[Dialled]:
    """Start ``pysstp server`` in ``ns`` on its loopback with ``server_args`` added (the user database or
    backend; ``--workers`` when ``workers`` is not 1), on the event loop ``loop``, dial ``size`` calls to
    it from load generators in ``ns`` (one per :data:`CALLS_PER_GENERATOR` calls, each from a loopback
    address of its own), ``concurrency`` negotiating at once in all, and hand everything over while the
    calls are up; then hang up (filling ``closing``) and stop the server."""
    tag = tag or str(size)
    count = generators_for(size)
    # One source address has the ports of this range only (28,000 by default): widen it for this
    # namespace alone.
    ns.run("sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535")
    with event_loop(loop):
        server = start_server(
        ns, work / f"server-{tag}.log",
        "--cert", str(cert), "--key", str(key),
        "--listen", SERVER_HOST, "--port", str(PORT), "--pool", _pool(size),
        "--tun-name", "sstpb0", "--control-socket", str(work / f"ctl-{tag}.sock"),
        "--max-sessions", str(size + 16), "--connections-per-source-per-minute", "0",
        "--keepalive", str(hello), "--no-mss-clamp",
        *(["--workers", str(workers)] if workers != 1 else []), *server_args, timeout=30,
        )  # fmt: skip
    generators: list[subprocess.Popen[str]] = []
    try:
        time.sleep(0.5)
        rss_before = tree_rss_kib(server.pid)
        cpu_before = tree_cpu_seconds(server.pid)
        shares = [size // count + (1 if n < size % count else 0) for n in range(count)]
        for number, share in enumerate(shares):
            command = [
                sys.executable, "-m", "benchmarks.scale", "--generate", "--cafile", str(cert),
                "--concurrency", str(max(1, concurrency // count)), "--hello", str(hello),
                "--port", str(PORT), "--source", f"127.0.0.{2 + number}", str(share),
            ]  # fmt: skip
            # From the checkout, where ``python -m benchmarks.scale`` finds this package.
            generators.append(ns.start(command, None, cwd=ROOT))
        reports = []
        for generator in generators:
            assert generator.stdout is not None
            line = generator.stdout.readline()
            if not line:
                raise RuntimeError(f"a load generator for N={size} died (exit {generator.wait()})")
            reports.append(json.loads(line))
        server_cpu = tree_cpu_seconds(server.pid) - cpu_before
        calls = Dialled(server, generators, _merge_reports(reports), server_cpu, rss_before)
        # With workers the supervisor's listening line does not name the workers' loop: the one asked for.
        found = loop_in_log(work / f"server-{tag}.log")
        calls.loop_name = loop if found == "?" else found
        yield calls
        for generator in generators:
            assert generator.stdin is not None
            generator.stdin.write("close\n")
            generator.stdin.flush()
        lost = 0
        for generator in generators:
            assert generator.stdout is not None
            lost += json.loads(generator.stdout.readline() or "{}").get("lost_while_idle", 0)
            generator.wait(30 + size / 1000)
        calls.closing = {"lost_while_idle": lost}
    finally:
        for generator in generators:
            stop_process(generator)
        stop_process(server, timeout=10 + size / 1000)


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


def _measure(
    size: int,
    hello: float,
    quick: bool,
    workers: int,
    loop: str,
    work: Path,
    cert: Path,
    key: Path,
    users: Path,
) -> dict[str, Any]:
    asked = size
    size = sessions_that_fit(size, workers)
    if size < asked:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        print(
            f"scale N={asked}: a process here may open only {limit} files, so {workers} server process(es) "
            f"hold {size}; for {asked} run as root with CAP_SYS_RESOURCE, or raise the hard limit first "
            f"(ulimit -Hn {file_limit_for(asked)}) where that is allowed",
            file=sys.stderr,
        )
    # A window of at least one Hello interval, so that every call's Hello falls inside it.
    window = 4.0 if quick else max(10.0, hello)
    ns = Namespace(f"pysstp-bs{size}-{os.getpid()}")
    load_before = warn_if_busy(f"scale N={size}")
    try:
        ns.add()
        server_args = ("--users", str(users))
        with dialled(
            ns, size, work, cert, key, server_args, hello=hello, workers=workers, loop=loop
        ) as calls:
            time.sleep(1.0 + size / 10000)  # let the last calls' set-up garbage go before measuring
            rss_after = calls.server_rss_kib()
            server_cpu, generator_cpu = calls.server_cpu_seconds(), calls.generator_cpu_seconds()
            started = time.monotonic()
            time.sleep(window)
            elapsed = time.monotonic() - started
            idle_cpu = (calls.server_cpu_seconds() - server_cpu) / elapsed * 100
            generator_idle_cpu = (calls.generator_cpu_seconds() - generator_cpu) / elapsed * 100
    finally:
        delete_namespace(ns)
    figures = connect_figures(size, calls)
    up, rss_before = figures["up"], calls.rss_before_kib
    return figures | {
        "asked": asked,
        "file_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "workers": workers,
        "loop": loop,
        "loop_name": calls.loop_name,
        "generators": len(calls.generators),
        "lost_while_idle": calls.closing.get("lost_while_idle"),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_session": round((rss_after - rss_before) / up, 1) if up else None,
        "idle_window_s": round(elapsed, 1),
        "hello_interval_s": hello,
        "idle_cpu_percent": round(idle_cpu, 2),
        "generator_idle_cpu_percent": round(generator_idle_cpu, 2),
        "load_before": load_before,
        "load_after": _load(),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_scale(
    sizes: list[int],
    quick: bool,
    hello: float | None = None,
    workers: Sequence[int] = (1,),
    goals: Goals = SMALL_GOALS,
    title: str = TITLE,
    loops: Sequence[str] = ("asyncio",),
) -> dict[str, Any]:
    """Measure each N in ``sizes`` with a fresh server for each worker count in ``workers``, every call
    sending Hellos every ``hello`` seconds (default 2 s quick, else 5 s); JSON-able results (``skipped``
    says why not)."""
    why = netns_unavailable()
    if why is not None:
        return {"title": title, "skipped": why, "runs": []}
    hello = hello if hello is not None else (2.0 if quick else 5.0)
    runs = []
    with tempfile.TemporaryDirectory(prefix="pysstp-scale-") as tmp:
        work = Path(tmp)
        cert, key, _ = make_certificate(work)
        users = work / "users.toml"
        add_user(users, USER, PASSWORD)
        for size in sizes:
            for count in workers:
                for loop in loops:
                    runs.append(_measure(size, hello, quick, count, loop, work, cert, key, users))
    return {
        "title": title,
        "quick": quick,
        "certificate": "ECDSA P-256",
        "concurrency": CONCURRENCY,
        "calls_per_generator": CALLS_PER_GENERATOR,
        "cpus": os.cpu_count(),
        "runs": runs,
        "targets": _targets(runs, goals),
    }


def _targets(runs: list[dict[str, Any]], goals: Goals) -> dict[str, Any]:
    """Measured / target for each target (1.0 or more meets it), from the largest run."""
    if not runs:
        return {}
    largest = max(runs, key=lambda r: (r["sessions"], -r["workers"]))
    kib = largest["kib_per_session"]
    capacity = largest["server_capacity_per_core"]
    return {
        "sessions": {"target": goals.sessions, "measured": largest["up"]},
        "kib_per_session": {"target": goals.kib_per_session, "measured": kib},
        "connect_rate": {"target": goals.connect_rate, "measured": largest["connect_rate"]},
        "server_capacity": {"target": goals.capacity_per_core, "measured": capacity},
        "ratios": {
            "sessions": round(largest["up"] / goals.sessions, 2),
            # Lower is better for memory, so the ratio is target over measured.
            "kib_per_session": round(goals.kib_per_session / kib, 2) if kib and kib > 0 else None,
            "connect_rate": round(largest["connect_rate"] / goals.connect_rate, 2),
            "server_capacity": round(capacity / goals.capacity_per_core, 2) if capacity else None,
        },
    }


def markdown(results: dict[str, Any]) -> str:
    """A report section: one row per N and worker count, then the targets with their ratios."""
    lines = [f"## {results.get('title', TITLE)}", ""]
    if results.get("skipped"):
        return "\n".join([*lines, f"Skipped: {results['skipped']}.", ""])
    lines += [
        "`pysstp server` (ECDSA P-256 certificate) and asyncio load generators (one process per "
        f"{results['calls_per_generator']:,} calls, each from a loopback address of its own) on the same "
        f"{results['cpus']}-vCPU machine, {results['concurrency']} calls negotiating at once in all, "
        "MS-CHAPv2 with crypto binding. RSS and CPU are the server's processes summed (with workers, "
        "the workers too). Idle CPU is the server's share of one core while every call exchanges SSTP "
        "Hellos at the interval shown. Server capacity is calls accepted per second of the server's own "
        "CPU: the generators do as much Python work per call as the server and share the same cores "
        "(with other jobs), so the connect rate is lower; on a quiet machine with the generators on "
        "other cores the connect rate approaches the capacity (times the workers). Load averages are "
        "before / after each run; numbers taken under load are noisy.",
        "",
        "| N | workers | loop | up | failures | connect rate (sessions/s) | server CPU per connect (ms) "
        "| server capacity (sessions/s per core) | RSS before (MiB) | RSS after (MiB) "
        "| RSS per session (KiB) | idle CPU (%) | Hello every (s) | load before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        lines.append(
            f"| {run['sessions']:,} | {run.get('workers', 1)} | {run.get('loop_name', '?')} "
            f"| {run['up']:,} | {run['failures']} "
            f"| {run['connect_rate']} | {run['server_cpu_ms_per_connect']} "
            f"| {run['server_capacity_per_core']} "
            f"| {run['rss_before_kib'] / 1024:.1f} | {run['rss_after_kib'] / 1024:.1f} "
            f"| {run['kib_per_session']} | {run['idle_cpu_percent']} | {run['hello_interval_s']:g} "
            f"| {run.get('load_before', '?')} / {run.get('load_after', '?')} |"
        )
    for run in results["runs"]:
        if run.get("asked", run["sessions"]) > run["sessions"]:
            lines += [
                "",
                f"N = {run['asked']:,} was asked, but no process here may open more than "
                f"{run['file_limit']:,} files (the hard RLIMIT_NOFILE, which only CAP_SYS_RESOURCE could "
                f"raise), so one server held {run['sessions']:,}. At the RSS per session measured, "
                f"{run['asked']:,} would take about "
                f"{(run['kib_per_session'] or 0) * run['asked'] / 1024 / 1024:.1f} GiB.",
            ]
    targets = results.get("targets")
    if targets:
        ratios = targets["ratios"]
        lines += [
            "",
            "| target | measured (largest N) | ratio (≥ 1 meets it) |",
            "|---|---|---|",
            f"| ≥ {targets['sessions']['target']:,} concurrent sessions "
            f"| {targets['sessions']['measured']:,} | {ratios['sessions']} |",
            f"| ≤ {targets['kib_per_session']['target']} KiB RSS per session "
            f"| {targets['kib_per_session']['measured']} | {ratios['kib_per_session']} |",
            f"| ≥ {targets['connect_rate']['target']:g} sessions/s | {targets['connect_rate']['measured']} "
            f"| {ratios['connect_rate']} |",
            f"| ≥ {targets['server_capacity']['target']:g} sessions/s per core of server CPU | "
            f"{targets['server_capacity']['measured']} | {ratios['server_capacity']} |",
        ]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.scale``: run the benchmark and print the report (or, internally, be a load
    generator)."""
    parser = command_line(__doc__ or "", "shorter idle window and Hello interval")
    parser.add_argument("sizes", nargs="*", type=int, help=f"session counts (default {DEFAULT_SIZES})")
    parser.add_argument(
        "--hello", type=float, help="Hello interval of every call, seconds (default 2 quick, else 5)"
    )
    parser.add_argument(
        "--workers", default="1", help="the server's worker counts to measure, comma-separated (default 1)"
    )
    parser.add_argument(
        "--loops",
        default="asyncio",
        help="the server's event loops to measure: asyncio, uvloop (comma-separated)",
    )
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cafile", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=PORT, help=argparse.SUPPRESS)
    parser.add_argument("--source", default=SERVER_HOST, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:
        calls = args.sizes[0]
        asyncio.run(generate(args.cafile, calls, args.concurrency, args.hello, args.port, args.source))
        return 0
    sizes = args.sizes or DEFAULT_SIZES
    workers = [int(n) for n in args.workers.split(",")]
    loops = args.loops.split(",")
    results = run_scale(sizes, args.quick, args.hello, workers, goals_for(max(sizes)), loops=loops)
    return report(results, markdown, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
