"""Memory: where one idle session's bytes go in the server, by source line (tracemalloc).

An in-process server (``SstpServerApp`` with the tests' TUN stand-in, tests/helpers/loopback.py) on
127.0.0.1, and one load generator process (benchmarks/scale.py's) dialling N calls to it. Python's
allocations are traced from before the first call to when all are up and idle; the report gives the
growth per session by source line, largest first, with the process's RSS growth per session beside it
(RSS also counts OpenSSL's per-connection memory and the kernel's socket buffers are not in either).
No root needed.

Run: ``python -m benchmarks.memory [N] [--top K] [--group lineno|filename|traceback]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import tracemalloc
from ipaddress import IPv4Network
from pathlib import Path

from benchmarks import ROOT
from benchmarks.netns import rss_kib
from benchmarks.scale import CONCURRENCY, PASSWORD, USER
from pysstp.server.app import Limits

from helpers.loopback import start_bench

DEFAULT_SESSIONS = 1000
TOP = 25
HELLO = 60.0
"""The server's default Hello interval: no Hello while the snapshot is taken."""


async def measure(sessions: int, top: int, group: str) -> str:
    """Dial ``sessions`` calls to an in-process server and return the report."""
    with tempfile.TemporaryDirectory(prefix="pysstp-memory-") as tmp:
        bench = await start_bench(
            Path(tmp),
            users={USER: PASSWORD},
            limits=Limits(max_sessions=sessions + 16, connections_per_source_per_minute=0),
            pool=IPv4Network(f"10.96.0.0/{min(24, 32 - (sessions + 2).bit_length())}"),
        )
        try:
            gc.collect()
            tracemalloc.start(8 if group == "traceback" else 1)
            before = tracemalloc.take_snapshot()
            rss_before = rss_kib(os.getpid())
            generator = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.scale", "--generate", "--cafile", str(bench.cert_path),
                "--concurrency", str(CONCURRENCY), "--hello", str(HELLO), "--port", str(bench.port),
                str(sessions), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
            )  # fmt: skip
            assert generator.stdout is not None and generator.stdin is not None
            connected = json.loads(await generator.stdout.readline())
            await asyncio.sleep(1.0)
            gc.collect()
            after = tracemalloc.take_snapshot()
            rss_after = rss_kib(os.getpid())
            tracemalloc.stop()
            up = connected["up"]
            generator.stdin.write(b"close\n")
            await generator.stdin.drain()
            await generator.stdout.readline()
            await generator.wait()
        finally:
            await bench.app.shutdown()
            bench.tun.close()
    stats = after.compare_to(before, group)
    traced = sum(stat.size_diff for stat in stats)
    lines = [
        f"{up} of {sessions} calls up ({connected['failures']} failed); per session: "
        f"RSS {(rss_after - rss_before) / max(up, 1):.1f} KiB, traced by Python "
        f"{traced / 1024 / max(up, 1):.1f} KiB",
        "",
        "| bytes per session | blocks per session | where |",
        "|---|---|---|",
    ]
    for stat in stats[:top]:
        where = "; ".join(f"{Path(frame.filename).name}:{frame.lineno}" for frame in stat.traceback)
        lines.append(f"| {stat.size_diff / max(up, 1):.0f} | {stat.count_diff / max(up, 1):.2f} | {where} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.memory``: print where the server's memory per session goes."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sessions", nargs="?", type=int, default=DEFAULT_SESSIONS)
    parser.add_argument("--top", type=int, default=TOP, help=f"lines shown (default {TOP})")
    parser.add_argument("--group", choices=("lineno", "filename", "traceback"), default="lineno")
    args = parser.parse_args(argv)
    print(asyncio.run(measure(args.sessions, args.top, args.group)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
