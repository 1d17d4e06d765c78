"""The server's local control socket: ``pysstp status`` lists sessions and kicks them.

One JSON object per line each way over a Unix socket that only root (or the socket's group) can open:
``{"command": "status"}`` → ``{"ok": true, "sessions": [...], "server": {...}, "dae": {...} | null}``
(``server``: the process's counters, :class:`~pysstp.server.stats.ServerStats` without its sessions;
the sessions' rates are measured over the :data:`RATE_WINDOW` after the request, see :func:`measure_rates`);
``{"command": "kick", "target": "alice" | "10.77.0.5"}`` → ``{"ok": true, "kicked": n}``;
``{"command": "drain"}`` → ``{"ok": true, "started": bool, "sessions": n}`` (see :mod:`pysstp.server.drain`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from pysstp.aaa.dae import DaeServer
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.aaa.radius.client import RadiusClient
from pysstp.server.app import SstpServerApp
from pysstp.server.counters import Rates
from pysstp.server.session import ServerConnection
from pysstp.server.stats import ServerStats, SessionStats
from pysstp.server.workerchannel import MESSAGE_LIMIT

log = logging.getLogger("pysstp.control")

MAX_REQUEST = 4096
RATE_WINDOW = 1.0
"""Seconds between the two samples of the sessions' byte counters that a status answer's rates come from."""


async def measure_rates(
    app: SstpServerApp, window: float = RATE_WINDOW, clock: Callable[[], float] = time.monotonic
) -> Rates:
    """Each session's bit rates in and out over the next ``window`` seconds: its byte counters are read
    now and after the window. Measured only when a status is asked, so that a server nobody asks spends
    nothing on rates; a session that came or went within the window has none."""
    start = clock()
    first = {connection: (connection.bytes_in, connection.bytes_out) for connection in app.connections}
    await asyncio.sleep(window)
    elapsed = clock() - start
    rates: dict[ServerConnection, tuple[float, float]] = {}
    if elapsed > 0:
        for connection in app.connections:
            counted = first.get(connection)
            if counted is not None:
                rates[connection] = (
                    (connection.bytes_in - counted[0]) * 8 / elapsed,
                    (connection.bytes_out - counted[1]) * 8 / elapsed,
                )
    return rates


STATUS_TIMEOUT = 120.0
"""Seconds a status request may take, for the client and for each worker's answer: a status of 100,000
sessions is tens of MB of JSON that take seconds to build, send and read on a loaded machine
(docs/scaling.md), unlike the other commands, which answer at once."""

_ROW_FIELDS = tuple(f.name for f in fields(SessionStats) if f.name != "worker")
"""A status row's keys in order: the session's fields, but the worker (one process: it is the server's,
in "server")."""


def session_rows(stats: ServerStats) -> list[dict[str, Any]]:
    """One dict per session of a snapshot: everything ``pysstp status --json`` prints (rates in bit/s,
    ``started`` in seconds since the epoch); the table shows what fits of it."""
    now = time.time()
    # Direct field reads: dataclasses.asdict deep-copies every value and took most of a status
    # answer's time with 100,000 sessions (docs/scaling.md).
    rows = []
    for session in stats.sessions:
        row = {name: getattr(session, name) for name in _ROW_FIELDS}
        row.update(
            started=round(session.started, 1),
            uptime=round(now - session.started, 1),
            ipv6=list(session.ipv6),
            routes=list(session.routes),
            classes=list(session.classes),
        )
        rows.append(row)
    return rows


def kick(app: SstpServerApp, target: str) -> int:
    """Disconnect (in order) every session whose user or address is ``target``; return how many."""
    victims: list[ServerConnection] = [
        c for c in app.connections if target in (c.info.user, str(c.info.address) if c.info.address else None)
    ]
    for connection in victims:
        connection.log.info(
            "%s: kicked by the administrator (%s)", connection.peer, target, extra={"event": "kicked"}
        )
        connection.end("disconnected by the administrator", TerminateCause.ADMIN_RESET)
    return len(victims)


class ControlServer:
    """Serves the control protocol on a Unix socket for one :class:`SstpServerApp`."""

    def __init__(
        self,
        app: SstpServerApp,
        path: Path,
        *,
        dae: DaeServer | None = None,
        radius: RadiusClient | None = None,
        drain: Callable[[str], bool] | None = None,
    ) -> None:
        self.app = app
        self.drain = drain
        """Starts a drain, given who asked; False when one is already on (``None``: cannot drain)."""
        self.path = path
        self.dae = dae
        """The Dynamic Authorization listener, whose state ``status`` reports (``None``: off)."""
        self.radius = radius
        """The RADIUS servers' client, whose servers' states ``status`` shows."""
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Create the socket (mode 0660; its directory 0750), replacing a stale one."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        if self.path.is_socket():
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o660)

    async def stop(self) -> None:
        """Close the socket and remove its file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            who = asker(writer.get_extra_info("socket"))
            writer.write(json.dumps(await self.answer(line[:MAX_REQUEST], who)).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):  # ValueError: a line beyond the reader's limit
            pass
        finally:
            writer.close()

    async def answer(self, line: bytes, who: str = "the control socket") -> dict[str, Any]:
        """The reply to one request line from ``who`` (for the log); a status takes
        :data:`RATE_WINDOW` to measure the rates."""
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, TypeError, KeyError):
            return {"ok": False, "error": "request must be a JSON object with a 'command'"}
        if command == "status":
            stats = self.app.snapshot(rates=await measure_rates(self.app))
            server = stats.to_json()
            del server["sessions"]
            answer: dict[str, Any] = {
                "ok": True,
                "sessions": session_rows(stats),
                "server": server,
                "backend": self.app.backend.name,
                "dae": self.dae.state() if self.dae is not None else None,
                "draining": self.app.draining,
            }
            if self.radius is not None:
                answer["radius"] = [
                    {"server": state.name, "alive": state.alive, "dead_for": round(state.dead_for, 1)}
                    for state in self.radius.status()
                ]
            return answer
        if command == "kick":
            target = request.get("target")
            if not isinstance(target, str) or not target:
                return {"ok": False, "error": "kick needs a 'target' (user name or address)"}
            return {"ok": True, "kicked": kick(self.app, target)}
        if command == "drain" and self.drain is not None:
            return {"ok": True, "started": self.drain(who), "sessions": len(self.app.connections)}
        return {"ok": False, "error": f"unknown command {command!r}"}


def asker(sock: Any) -> str:
    """Who is on the other end of a control connection (asyncio's socket of it, or ``None``): its user
    and process, from the kernel (SO_PEERCRED, unix(7))."""
    try:
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return "the control socket"
    pid, uid, _gid = struct.unpack("3i", credentials)
    return f"the control socket (uid {uid}, pid {pid})"


REQUEST_TIMEOUT = 5.0
"""Seconds any other control request may take: they answer at once."""


async def request(path: Path, message: dict[str, Any], timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
    """Send one request to a running server's control socket and return its answer."""
    # An answer is one line; a status carries every session (about 600 bytes each), far beyond
    # asyncio's 64 KiB default, and the server is trusted as far as a worker is (workerchannel).
    connecting = asyncio.open_unix_connection(str(path), limit=MESSAGE_LIMIT)
    reader, writer = await asyncio.wait_for(connecting, timeout)
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(reader.readline(), timeout))
        return answer
    finally:
        writer.close()
