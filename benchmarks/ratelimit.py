"""Rate limits: what a session limited each way (``--rate-in``/``--rate-out``) gets through iperf3.

``pysstp server --rate-in R --rate-out R`` in one network namespace, ``pysstp connect`` in another;
iperf3 TCP through the tunnel each way, one stream and four. The policer drops what is beyond the rate,
so TCP settles a little below it; the figures say how far below, how many packets it dropped, and what
the server's CPU did meanwhile. Whether the unlimited path still runs at full speed is the main bench's
pysstp/relay ratio (``benchmarks.run``), which this does not repeat.

Run alone: ``python -m benchmarks.ratelimit [--quick] [--rate 100M]`` (root, iperf3).
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

SERVER_IP, CLIENT_IP = "10.203.0.1", "10.203.0.2"
TUNNEL_SERVER_IP = "10.96.0.1"
PORT = 8443
USER, PASSWORD = "bench", "bench-password"


def _iperf(client: Namespace, seconds: int, streams: int, reverse: bool) -> dict[str, float]:
    args = ["iperf3", "-c", TUNNEL_SERVER_IP, "-t", str(seconds), "-P", str(streams), "-J"]
    end = json.loads(client.run(*args, *(["-R"] if reverse else []), timeout=seconds + 30).stdout)["end"]
    return {
        "mbps": end["sum_received"]["bits_per_second"] / 1e6,
        "retransmits": float(end["sum_sent"].get("retransmits", 0)),
    }


def _rate_drops(server: Namespace, control: Path) -> int:
    status = server.run(PYSSTP, "status", "--socket", str(control), "--json").stdout
    return int(json.loads(status)["server"]["drops"]["rate_limit"])


def run_ratelimit(quick: bool, rate: str) -> dict[str, Any]:
    """iperf3 through a session limited to ``rate`` each way; JSON-able results."""
    why = netns_unavailable() or (None if shutil.which("iperf3") else "needs iperf3")
    if why is not None:
        return {"skipped": why}
    seconds, repeats = (3, 1) if quick else (8, 3)
    with tempfile.TemporaryDirectory(prefix="pysstp-ratelimit-") as tmp:
        work = Path(tmp)
        cert, key, _ = make_certificate(work)
        users = work / "users.toml"
        add_user(users, USER, PASSWORD)
        control = work / "ctl.sock"
        pair = create_pair(f"r{os.getpid() % 100000}", SERVER_IP, CLIENT_IP)
        try:
            server = start_server(
                pair.server, work / "server.log",
                "--cert", str(cert), "--key", str(key), "--users", str(users),
                "--listen", SERVER_IP, "--port", str(PORT), "--pool", "10.96.0.0/24",
                "--tun-name", "sstprl0", "--control-socket", str(control), "--ipv6", "off",
                "--rate-in", rate, "--rate-out", rate, timeout=30,
            )  # fmt: skip
            secret = work / "client.pw"
            secret.write_text(PASSWORD + "\n")
            log = work / "client.log"
            client = pair.client.start(
                [
                    PYSSTP, "connect", f"{SERVER_IP}:{PORT}", "--user", USER, "--password-file", str(secret),
                    "--ca-file", str(cert), "--sni", "sstp.test", "--ifname", "sstprl1", "--no-ipv6",
                ],
                log,
            )  # fmt: skip
            wait_for_text(log, "connected: ", 30, client)
            iperf_log = work / "iperf3.log"
            pair.server.start(["iperf3", "-s", "-B", TUNNEL_SERVER_IP, "--forceflush"], iperf_log)
            wait_for_text(iperf_log, "Server listening")
            results: dict[str, Any] = {"quick": quick, "rate": rate, "seconds": seconds}
            for streams in (1, 4):
                for direction, reverse in (("client_to_server", False), ("server_to_client", True)):
                    runs = []
                    for _ in range(repeats):
                        dropped, cpu, began = (
                            _rate_drops(pair.server, control),
                            cpu_seconds(server.pid),
                            time.monotonic(),
                        )
                        run = _iperf(pair.client, seconds, streams, reverse)
                        run["server_cpu_percent"] = (
                            (cpu_seconds(server.pid) - cpu) / (time.monotonic() - began) * 100
                        )
                        run["rate_drops"] = _rate_drops(pair.server, control) - dropped
                        runs.append(run)
                    results[f"{direction}_{streams}"] = {
                        key: round(statistics.median(r[key] for r in runs), 1) for key in runs[0]
                    }
        finally:
            remove_pair(pair)
    return results


def ratelimit_markdown(results: dict[str, Any]) -> str:
    """A report section: throughput each way of a limited session, with its drops and server CPU."""
    lines = ["## Rate limits", ""]
    if results.get("skipped"):
        return "\n".join([*lines, f"Skipped: {results['skipped']}.", ""])
    lines += [
        f"iperf3 TCP for {results['seconds']} s through a session limited to {results['rate']}bit/s each "
        "way (`--rate-in`/`--rate-out`).",
        "",
        "| direction | streams | Mbit/s | retransmits | rate_limit drops | server CPU (%) |",
        "|---|---|---|---|---|---|",
    ]
    for key, run in results.items():
        if isinstance(run, dict):
            direction, _, streams = key.rpartition("_")
            lines.append(
                f"| {direction.replace('_', ' ')} | {streams} | {run['mbps']} | {run['retransmits']:g} "
                f"| {run['rate_drops']:g} | {run['server_cpu_percent']} |"
            )
    return "\n".join([*lines, ""])


def main() -> int:
    """``python -m benchmarks.ratelimit``."""
    parser = command_line(__doc__ or "", "one 3 s run per figure instead of three of 8 s")
    parser.add_argument("--rate", default="100M", help="the limit each way (default 100M)")
    args = parser.parse_args()
    return report(run_ratelimit(args.quick, args.rate), ratelimit_markdown, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
