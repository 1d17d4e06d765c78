"""Aggregate: TCP throughput of 8 clients at once through one ``pysstp server``, and what it costs the server.

``pysstp server`` runs in one network namespace; each of the 8 clients is ``pysstp connect`` in a namespace
of its own, joined to the server's by a veth pair. An iperf3 server per client listens on the server's
tunnel address (one port each); the 8 iperf3 clients run at the same time, each through its own tunnel,
client → server and then server → client. Measured: the sum of what the receivers counted, and the
server's CPU seconds (its processes summed, workers included) per Gbit moved. Each worker count and event
loop asked for gets a fresh server.

On a 2-core machine the 8 clients, their iperf3s and the kernel compete with the server for the same two
cores, so the aggregate is a floor and the server's CPU per Gbit is the figure to compare; with workers,
more server cores help only where there are cores to spare.

Run alone: ``python -m benchmarks.aggregate [--quick] [--clients 8] [--workers 1,2] [--loops asyncio]``
(root, iperf3).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.netns import command_line, event_loop, report, tree_cpu_seconds, warn_if_busy

from helpers.connect_process import PYSSTP
from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, delete_namespace, join, netns_unavailable, wait_for_text
from helpers.server_process import add_user, start_server

CLIENTS = 8
TUNNEL_SERVER_IP = "10.98.0.1"
POOL = "10.98.0.0/24"
PORT = 8443
IPERF_BASE_PORT = 5301
USER, PASSWORD = "bench", "bench-password"


def _link_addresses(number: int) -> tuple[str, str]:
    """The server's and the client's end of client ``number``'s veth."""
    return f"10.211.{number}.1", f"10.211.{number}.2"


def _iperf_all(clients: list[Namespace], seconds: int, reverse: bool) -> list[float]:
    """Every client's iperf3 at once, each to its own iperf3 server port; Mbit/s each receiver counted."""
    runs = []
    for number, ns in enumerate(clients):
        command = [
            "ip", "netns", "exec", ns.name, "iperf3", "-c", TUNNEL_SERVER_IP,
            "-p", str(IPERF_BASE_PORT + number), "-t", str(seconds), "-J", *(["-R"] if reverse else []),
        ]  # fmt: skip
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    rates = []
    for run in runs:
        out, _ = run.communicate(timeout=seconds + 60)
        report = json.loads(out or "{}")
        if "end" not in report:
            raise RuntimeError(f"iperf3 through the tunnel failed: {report.get('error', 'no report')}")
        rates.append(report["end"]["sum_received"]["bits_per_second"] / 1e6)
    return rates


def _measure(
    count: int, workers: int, loop: str, quick: bool, work: Path, cert: Path, key: Path, users: Path
) -> dict[str, Any]:
    seconds = 3 if quick else 10
    tag = f"a{os.getpid() % 10000}{workers}"
    server_ns = Namespace(f"pysstp-{tag}s")
    clients = [Namespace(f"pysstp-{tag}c{n}") for n in range(count)]
    load_before = warn_if_busy(f"aggregate of {count} client(s)")
    try:
        server_ns.add()
        for number, ns in enumerate(clients):
            ns.add()
            server_ip, client_ip = _link_addresses(number)
            join(server_ns, f"va{tag}{number}"[:15], server_ip, ns, f"vb{tag}{number}"[:15], client_ip)
        with event_loop(loop):
            server = start_server(
                server_ns, work / f"server-{tag}.log",
                "--cert", str(cert), "--key", str(key), "--users", str(users),
                "--listen", "0.0.0.0", "--port", str(PORT), "--pool", POOL, "--ipv6", "off",
                "--tun-name", "sstpa0", "--control-socket", str(work / f"ctl-{tag}.sock"),
                *(["--workers", str(workers)] if workers != 1 else []), timeout=30,
            )  # fmt: skip
            secret = work / "client.pw"
            secret.write_text(PASSWORD + "\n")
            for number, ns in enumerate(clients):
                log = work / f"client-{tag}-{number}.log"
                process = ns.start(
                    [
                        PYSSTP, "connect", f"{_link_addresses(number)[0]}:{PORT}", "--user", USER,
                        "--password-file", str(secret), "--ca-file", str(cert), "--sni", "sstp.test",
                        "--ifname", "sstpa1", "--no-ipv6",
                    ],
                    log,
                )  # fmt: skip
                wait_for_text(log, "connected: ", 60, process)
        for number in range(count):
            server_ns.start(
                ["iperf3", "-s", "-B", TUNNEL_SERVER_IP, "-p", str(IPERF_BASE_PORT + number)],
                work / f"iperf-{tag}-{number}.log",
            )
        time.sleep(1.0)
        results: dict[str, Any] = {
            "clients": count,
            "workers": workers,
            "loop": loop,
            "seconds": seconds,
            "load_before": load_before,
        }
        for direction, reverse in (("client_to_server", False), ("server_to_client", True)):
            cpu_before, began = tree_cpu_seconds(server.pid), time.monotonic()
            rates = _iperf_all(clients, seconds, reverse)
            elapsed = time.monotonic() - began
            server_cpu = tree_cpu_seconds(server.pid) - cpu_before
            total = sum(rates)
            gbit = total / 1000 * seconds
            results[direction] = {
                "gbps": round(total / 1000, 3),
                "per_client_mbps": [round(rate, 1) for rate in rates],
                "server_cores": round(server_cpu / elapsed, 2),
                # Per Gbit moved (iperf3's own seconds): steadier than throughput on a shared machine.
                "server_cpu_s_per_gbit": round(server_cpu / gbit, 3) if gbit else None,
            }
        results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        return results
    finally:
        for ns in (*clients, server_ns):
            delete_namespace(ns)


def run_aggregate(
    quick: bool,
    clients: int = CLIENTS,
    workers: tuple[int, ...] = (1,),
    loops: tuple[str, ...] = ("asyncio",),
) -> dict[str, Any]:
    """``clients`` tunnels at once through one server, for each worker count and event loop; JSON-able."""
    why = netns_unavailable() or (None if shutil.which("iperf3") else "needs iperf3")
    if why is not None:
        return {"clients": clients, "skipped": why}
    with tempfile.TemporaryDirectory(prefix="pysstp-aggregate-") as tmp:
        work = Path(tmp)
        cert, key, _ = make_certificate(work)
        users = work / "users.toml"
        add_user(users, USER, PASSWORD)
        runs = [
            _measure(clients, count, loop, quick, work, cert, key, users)
            for count in workers
            for loop in loops
        ]
    return {"quick": quick, "cpus": os.cpu_count(), "runs": runs}


def markdown(results: dict[str, Any]) -> str:
    """A report section: the aggregate each way and the server's CPU per Gbit, per run."""
    runs = results.get("runs") or [{"clients": results.get("clients", CLIENTS)}]
    count = runs[0]["clients"]
    lines = [f"## Aggregate: {count} client{'s' if count != 1 else ''} through one server", ""]
    if results.get("skipped"):
        return "\n".join([*lines, f"Skipped: {results['skipped']}.", ""])
    lines += [
        f"{runs[0]['clients']} `pysstp connect` clients, each in its own namespace, run iperf3 TCP at the "
        f"same time ({runs[0]['seconds']} s) through one `pysstp server`, client → server then server → "
        f"client. Server CPU is its processes summed (workers included), in cores and in CPU seconds per "
        f"Gbit moved. Everything shares this machine's {results['cpus']} cores: the clients, their iperf3s "
        "and the kernel take most of them, so the aggregate is what is left for the server, not what it "
        "could move alone; CPU seconds per Gbit is the figure to compare between runs and machines.",
        "",
        "| workers | loop | client → server (Gbit/s) | server cores | server CPU s per Gbit "
        "| server → client (Gbit/s) | server cores | server CPU s per Gbit | load before / after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        up, down = run["client_to_server"], run["server_to_client"]
        lines.append(
            f"| {run['workers']} | {run['loop']} | {up['gbps']} | {up['server_cores']} "
            f"| {up['server_cpu_s_per_gbit']} | {down['gbps']} | {down['server_cores']} "
            f"| {down['server_cpu_s_per_gbit']} | {run['load_before']} / {run['load_after']} |"
        )
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.aggregate``: run the scenario and print the report."""
    parser = command_line(__doc__ or "", "3 s per direction")
    parser.add_argument("--clients", type=int, default=CLIENTS, help=f"clients at once (default {CLIENTS})")
    parser.add_argument("--workers", default="1", help="the server's worker counts, comma-separated")
    parser.add_argument("--loops", default="asyncio", help="event loops: asyncio, uvloop (comma-separated)")
    args = parser.parse_args(argv)
    workers = tuple(int(n) for n in args.workers.split(","))
    results = run_aggregate(args.quick, args.clients, workers, tuple(args.loops.split(",")))
    return report(results, markdown, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
