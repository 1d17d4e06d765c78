"""How worker processes should share the listening port: one socket inherited by all, or one
SO_REUSEPORT socket per worker (docs/scaling.md, "Workers").

Each worker is an asyncio process that accepts from its socket(s) and completes the TLS handshake as
the server's listener does (``loop.sock_accept`` then ``connect_accepted_socket``), then closes the
connection. Client processes open TLS connections as fast as they can, a fixed number in flight each.
Reported per way of sharing: handshakes per second overall, and how they fell to the workers.

Run: ``python -m benchmarks.listen_sharing [--workers 2] [--seconds 5]`` (no root needed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.loopback import make_certificate

IN_FLIGHT = 32
"""Connections each client process has open at once."""
CLIENTS = 2


async def accept(fds: list[int], cert: str, key: str) -> None:
    """A worker: accept TLS on the inherited sockets until SIGTERM, then print how many."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    done = 0
    pending: set[asyncio.Task[None]] = set()

    async def handshake(conn: socket.socket) -> None:
        nonlocal done
        try:
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, conn, ssl=context)
        except OSError:
            return
        done += 1
        transport.close()

    async def accept_loop(listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except BlockingIOError:  # another worker took it (one socket shared by all)
                continue
            task = loop.create_task(handshake(conn))
            pending.add(task)
            task.add_done_callback(pending.discard)

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [loop.create_task(accept_loop(socket.socket(fileno=fd))) for fd in fds]
    await stop.wait()
    for task in tasks:
        task.cancel()
    print(done, flush=True)


async def dial(port: int, cafile: str, seconds: float) -> None:
    """A client: TLS connections to the port, ``IN_FLIGHT`` at once, for ``seconds``."""
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    deadline = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            except OSError:
                continue
            writer.close()

    await asyncio.gather(*(one() for _ in range(IN_FLIGHT)))


def measure(way: str, workers: int, seconds: float, cert: Path, key: Path) -> dict[str, object]:
    """Start ``workers`` acceptors sharing a port the ``way`` given, dial for ``seconds``, count."""
    owned: list[socket.socket] = []
    if way == "shared":
        owned.append(socket.create_server(("127.0.0.1", 0), backlog=100))
        port = owned[0].getsockname()[1]
        per_worker = [[owned[0]] for _ in range(workers)]
    else:
        first = socket.create_server(("127.0.0.1", 0), backlog=100, reuse_port=True)
        port = first.getsockname()[1]
        owned = [first] + [
            socket.create_server(("127.0.0.1", port), backlog=100, reuse_port=True)
            for _ in range(workers - 1)
        ]
        per_worker = [[sock] for sock in owned]
    for sock in owned:
        sock.setblocking(False)
    itself = [sys.executable, "-m", "benchmarks.listen_sharing", "--cert", str(cert)]
    acceptors = [
        subprocess.Popen(
            [*itself, "--key", str(key), "--accept", *(str(s.fileno()) for s in socks)],
            pass_fds=[s.fileno() for s in socks],
            stdout=subprocess.PIPE,
            text=True,
        )
        for socks in per_worker
    ]
    time.sleep(1.0)  # the acceptors import and start their loops
    clients = [
        subprocess.Popen([*itself, "--dial", str(port), "--seconds", str(seconds)]) for _ in range(CLIENTS)
    ]
    for client in clients:
        client.wait()
    counts = []
    for acceptor in acceptors:
        acceptor.send_signal(signal.SIGTERM)
        out, _ = acceptor.communicate()
        counts.append(int(out.strip() or 0))
    for sock in owned:
        sock.close()
    return {"way": way, "per_second": round(sum(counts) / seconds), "per_worker": counts}


def main() -> None:
    """Measure both ways, or run as one acceptor or client (internal flags)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--accept", nargs="+", type=int)
    parser.add_argument("--dial", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    if args.accept:
        asyncio.run(accept(args.accept, args.cert, args.key))
        return
    if args.dial:
        asyncio.run(dial(args.dial, args.cert, args.seconds))
        return
    with tempfile.TemporaryDirectory() as work:
        cert, key, _ = make_certificate(Path(work))
        results = [measure(way, args.workers, args.seconds, cert, key) for way in ("shared", "reuseport") * 2]
    print(json.dumps({"workers": args.workers, "cpus": os.cpu_count(), "runs": results}, indent=1))


if __name__ == "__main__":
    main()
