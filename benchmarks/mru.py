"""Large MRU: TCP throughput through a pysstp tunnel with the standard MRU (1500) and the largest (4091).

Both ends are pysstp: ``pysstp server`` in one network namespace, ``pysstp connect`` in another, joined
by a veth pair; iperf3 runs through the tunnel in both directions. Python's cost is per packet, so
packets of about 4 KB instead of 1.5 KB should carry more per second; this measures how much.

Run alone: ``python -m benchmarks.mru [--quick]`` (root, iperf3).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.netns import command_line, cpu_seconds, report

from helpers.connect_process import PYSSTP
from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, create_pair, netns_unavailable, remove_pair, wait_for_text
from helpers.server_process import add_user, start_server

MRUS = (1500, 4091)
SERVER_IP, CLIENT_IP = "10.202.0.1", "10.202.0.2"
TUNNEL_SERVER_IP = "10.97.0.1"
PORT = 8443
USER, PASSWORD = "bench", "bench-password"


def _iperf(client: Namespace, seconds: int, reverse: bool) -> dict[str, float]:
    """One iperf3 TCP run from the client namespace to the server's tunnel address."""
    args = ["iperf3", "-c", TUNNEL_SERVER_IP, "-t", str(seconds), "-J", *(["-R"] if reverse else [])]
    report = json.loads(client.run(*args, timeout=seconds + 30).stdout)
    end = report["end"]
    return {
        "mbps": end["sum_received"]["bits_per_second"] / 1e6,
        "retransmits": float(end["sum_sent"].get("retransmits", 0)),
    }


def _measure(mru: int, quick: bool, work: Path, cert: Path, key: Path, users: Path) -> dict[str, Any]:
    seconds, repeats = (3, 1) if quick else (8, 3)
    pair = create_pair(f"m{mru}-{os.getpid()}", SERVER_IP, CLIENT_IP)
    server_ns, client_ns = pair.server, pair.client
    try:
        server = start_server(
            server_ns, work / "server.log",
            "--cert", str(cert), "--key", str(key), "--users", str(users),
            "--listen", SERVER_IP, "--port", str(PORT), "--pool", "10.97.0.0/24",
            "--tun-name", "sstpm0", "--control-socket", str(work / f"ctl-{mru}.sock"),
            "--mru", str(mru), "--max-peer-mru", str(mru), "--ipv6", "off", timeout=30,
        )  # fmt: skip
        secret = work / "client.pw"
        secret.write_text(PASSWORD + "\n")
        log = work / f"client-{mru}.log"
        client = client_ns.start(
            [
                PYSSTP, "connect", f"{SERVER_IP}:{PORT}", "--user", USER, "--password-file", str(secret),
                "--ca-file", str(cert), "--sni", "sstp.test", "--ifname", "sstpm1", "--no-ipv6",
                "--mru", str(mru),
            ],
            log,
        )  # fmt: skip
        wait_for_text(log, "connected: ", 30, client)
        mtu = int(client_ns.run("cat", "/sys/class/net/sstpm1/mtu").stdout)
        iperf_server = server_ns.start(["iperf3", "-s", "-B", TUNNEL_SERVER_IP], work / f"iperf-{mru}.log")
        time.sleep(0.5)
        results: dict[str, Any] = {"mru": mru, "tunnel_mtu": mtu}
        for direction, reverse in (("client_to_server", False), ("server_to_client", True)):
            runs = []
            for _ in range(repeats):
                before = cpu_seconds(server.pid), cpu_seconds(client.pid), time.monotonic()
                run = _iperf(client_ns, seconds, reverse)
                elapsed = time.monotonic() - before[2]
                run["server_cpu_percent"] = (cpu_seconds(server.pid) - before[0]) / elapsed * 100
                run["client_cpu_percent"] = (cpu_seconds(client.pid) - before[1]) / elapsed * 100
                # Throughput alone hides the gain when something else (the shared cores) is the limit.
                run["server_cpu_per_gbps"] = run["server_cpu_percent"] / (run["mbps"] / 1000)
                runs.append(run)
            results[direction] = {
                "mbps_median": round(statistics.median(r["mbps"] for r in runs), 1),
                "mbps_runs": [round(r["mbps"], 1) for r in runs],
                "retransmits_median": statistics.median(r["retransmits"] for r in runs),
                "server_cpu_percent": round(statistics.median(r["server_cpu_percent"] for r in runs), 1),
                "client_cpu_percent": round(statistics.median(r["client_cpu_percent"] for r in runs), 1),
                "server_cpu_per_gbps": round(statistics.median(r["server_cpu_per_gbps"] for r in runs), 1),
            }
        iperf_server.terminate()
        return results
    finally:
        remove_pair(pair)


def run_mru(quick: bool) -> dict[str, Any]:
    """iperf3 TCP through a pysstp-to-pysstp tunnel at MRU 1500 and 4091; JSON-able results with the gain."""
    why = netns_unavailable() or (None if shutil.which("iperf3") else "needs iperf3")
    if why is not None:
        return {"skipped": why}
    with tempfile.TemporaryDirectory(prefix="pysstp-mru-") as tmp:
        work = Path(tmp)
        cert, key, _ = make_certificate(work)
        users = work / "users.toml"
        add_user(users, USER, PASSWORD)
        runs = [_measure(mru, quick, work, cert, key, users) for mru in MRUS]
    standard, large = runs
    directions = ("client_to_server", "server_to_client")
    gain = {d: round(large[d]["mbps_median"] / standard[d]["mbps_median"], 2) for d in directions}
    server_cpu_per_bit = {
        d: round(large[d]["server_cpu_per_gbps"] / standard[d]["server_cpu_per_gbps"], 2) for d in directions
    }
    return {"quick": quick, "runs": runs, "gain": gain, "server_cpu_per_bit": server_cpu_per_bit}


def mru_markdown(results: dict[str, Any]) -> str:
    """A report section: throughput each way at each MRU, and the gain of the large one."""
    lines = ["## Large MRU between pysstp ends", ""]
    if results.get("skipped"):
        return "\n".join([*lines, f"Skipped: {results['skipped']}.", ""])
    lines += [
        "iperf3 TCP through the tunnel, `pysstp server --mru M --max-peer-mru M` and `pysstp connect "
        "--mru M` in two namespaces on the same 2-vCPU machine (median of "
        f"{len(results['runs'][0]['client_to_server']['mbps_runs'])} run(s); noisy, shared machine).",
        "",
        "| MRU | tunnel MTU | client → server (Mbit/s) | server → client (Mbit/s) "
        "| server CPU (%) | server CPU per Gbit/s (% of a core) | client CPU (%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        up, down = run["client_to_server"], run["server_to_client"]
        lines.append(
            f"| {run['mru']} | {run['tunnel_mtu']} | {up['mbps_median']} | {down['mbps_median']} "
            f"| {up['server_cpu_percent']} / {down['server_cpu_percent']} "
            f"| {up['server_cpu_per_gbps']} / {down['server_cpu_per_gbps']} "
            f"| {up['client_cpu_percent']} / {down['client_cpu_percent']} |"
        )
    gain, cpu = results["gain"], results["server_cpu_per_bit"]
    lines += [
        "",
        f"MRU 4091 against 1500: throughput x{gain['client_to_server']} client → server and "
        f"x{gain['server_to_client']} server → client; the server's CPU per bit x{cpu['client_to_server']} "
        f"and x{cpu['server_to_client']}. CPU columns: client → server / server → client.",
    ]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.mru``: run the comparison and print the report."""
    args = command_line(__doc__ or "", "one 3-second run per direction").parse_args(argv)
    return report(run_mru(args.quick), mru_markdown, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
