"""One figure each: iperf3 TCP and UDP, ping RTT percentiles, and the CPU a process used meanwhile."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from helpers.namespaces import Namespace

IPERF_PORT = 5201
UDP_PAYLOAD = 1372
"""1372 bytes of UDP payload make 1400-byte IP packets, the tunnel MTU of the baseline."""
SMALL_PAYLOAD = 64
MAX_LOSS = 1.0
"""Percent: the highest UDP rate counts only while loss stays at or below this."""
_TICKS = os.sysconf("SC_CLK_TCK")
_PING_TIME = re.compile(r"time=([\d.]+) ms")


@dataclass
class Target:
    """Somewhere to send traffic: from ``sender`` to ``address`` (where ``receiver`` runs iperf3)."""

    name: str
    sender: Namespace
    receiver: Namespace
    address: str
    processes: dict[str, int] = field(default_factory=dict)
    """The tunnel's processes by role, for their CPU use (empty for plain veth)."""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@contextmanager
def cpu_use(processes: dict[str, int], into: dict[str, float]) -> Iterator[None]:
    """Fill ``into`` with the cores (CPU seconds per wall second) each process used inside the block."""
    start = {role: cpu_seconds(pid) for role, pid in processes.items()}
    began = time.monotonic()
    yield
    wall = time.monotonic() - began
    for role, pid in processes.items():
        into[role] = round((cpu_seconds(pid) - start[role]) / wall, 3)


SERVER_BUSY_WAIT = 30.0
"""Seconds a client waits for iperf3's server to finish the previous test."""


def iperf3(target: Target, seconds: int, *extra: str) -> dict[str, object]:
    """Run an iperf3 client from the target's sender and return its JSON report.

    iperf3's server takes one test at a time and, on a loaded machine, may still be closing the last
    one when the next client arrives ("the server is busy running a test"): that client waits for it.
    """
    args = ["iperf3", "-c", target.address, "-p", str(IPERF_PORT), "-t", str(seconds), "-J", *extra]
    deadline = time.monotonic() + SERVER_BUSY_WAIT
    while True:
        result = subprocess.run(
            ["ip", "netns", "exec", target.sender.name, *args],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        )
        report: dict[str, object] = json.loads(result.stdout or "{}")
        if "server is busy" not in str(report.get("error", "")) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if result.returncode != 0 or "error" in report:
        raise RuntimeError(f"iperf3 {' '.join(extra)} to {target.name}: {report.get('error', result.stderr)}")
    return report


def tcp(target: Target, seconds: int, streams: int, reverse: bool) -> float:
    """TCP goodput in Mbit/s, as the receiver counted it."""
    extra = ["-P", str(streams)] + (["-R"] if reverse else [])
    end = iperf3(target, seconds, *extra)["end"]
    assert isinstance(end, dict)
    return round(end["sum_received"]["bits_per_second"] / 1e6, 1)


@dataclass(frozen=True)
class UdpResult:
    """What the receiver saw of one UDP run."""

    offered_bps: int
    received_pps: float
    loss_percent: float


def udp(target: Target, seconds: int, payload: int, bits_per_second: int) -> UdpResult:
    """UDP from sender to receiver at ``bits_per_second`` (0: as fast as iperf3 can send)."""
    report = iperf3(target, seconds, "-u", "-l", str(payload), "-b", str(bits_per_second))
    end = report["end"]
    assert isinstance(end, dict)
    total = end["sum"]
    received = total["packets"] - total["lost_packets"]
    return UdpResult(bits_per_second, round(received / total["seconds"]), round(total["lost_percent"], 2))


def udp_best_rate(target: Target, seconds: int, steps: int = 7) -> dict[str, float]:
    """The highest rate of 1372-byte datagrams that gets through with at most 1 % loss.

    A flood gives the rate the path delivers when overloaded; offered rates step down from there until
    the loss is low enough (the flood itself counts if its loss already is); at most ``steps`` of them."""
    flood = udp(target, seconds, UDP_PAYLOAD, 0)
    if flood.loss_percent <= MAX_LOSS:
        best = flood
    else:
        best = UdpResult(0, 0.0, 100.0)
        for fraction in (1.0, 0.85, 0.7, 0.55, 0.4, 0.25, 0.1)[:steps]:
            rate = int(flood.received_pps * fraction * UDP_PAYLOAD * 8)
            trial = udp(target, seconds, UDP_PAYLOAD, rate)
            if trial.loss_percent <= MAX_LOSS:
                best = trial
                break
    return {
        "udp1372_pps": best.received_pps,
        "udp1372_mbps": round(best.received_pps * UDP_PAYLOAD * 8 / 1e6, 1),
        "udp1372_loss": best.loss_percent,
        "udp1372_flood_pps": flood.received_pps,
    }


def ping(namespace: Namespace, address: str, count: int, interval: float = 0.02) -> list[float]:
    """Round-trip times in ms of ``count`` pings (lost ones are missing)."""
    result = subprocess.run(
        ["ip", "netns", "exec", namespace.name, "ping", "-n", "-c", str(count), "-i", str(interval), address],
        capture_output=True,
        text=True,
        timeout=count * interval + 30,
        check=False,
    )
    return [float(m) for m in _PING_TIME.findall(result.stdout)]


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 (nearest rank) of ``samples``; NaN when there are none."""
    if not samples:
        return float("nan"), float("nan")
    ordered = sorted(samples)
    return round(statistics.median(ordered), 3), round(nearest_rank(ordered, 0.99), 3)


def nearest_rank(ordered: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0.95 for p95) of the sorted, non-empty ``ordered``, by nearest rank."""
    return ordered[min(len(ordered) - 1, round(fraction * len(ordered)))]


def ping_under_load(target: Target, seconds: int) -> list[float]:
    """RTTs while one TCP stream saturates the tunnel from sender to receiver."""
    load = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            target.sender.name,
            "iperf3",
            "-c",
            target.address,
            "-p",
            str(IPERF_PORT),
            "-t",
            str(seconds + 2),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        return ping(target.sender, target.address, count=int(seconds / 0.02))
    finally:
        try:
            load.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()
