"""The control socket's connections, of a single server and of the supervisor of workers: a request line
beyond the reader's limit closes that connection quietly (no traceback in the server's log)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any, cast

from pysstp.server.config import ServerSettings
from pysstp.server.control import ControlServer, request, session_rows
from pysstp.server.signals import Signals
from pysstp.server.stats import ServerStats, SessionStats
from pysstp.server.supervisor import Supervisor


class Writer:
    """Stands in for the connection's StreamWriter."""

    closed = False

    def close(self) -> None:
        self.closed = True


def oversized() -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=64 * 1024)
    reader.feed_data(b"x" * 100_000 + b"\n")
    reader.feed_eof()
    return reader


async def test_a_single_servers_control_socket_closes_an_oversized_request(tmp_path: Path) -> None:
    control = ControlServer(cast(Any, None), tmp_path / "ctl.sock")
    writer = Writer()
    await control._serve(oversized(), cast(Any, writer))
    assert writer.closed


async def test_the_supervisors_control_socket_closes_an_oversized_request() -> None:
    settings = dataclasses.replace(ServerSettings(), workers=2)
    supervisor = Supervisor(settings, None, [], cast(Any, None), Signals())
    writer = Writer()
    await supervisor._serve_control(oversized(), cast(Any, writer))
    assert writer.closed


async def test_an_answer_of_many_sessions_reaches_the_asker(tmp_path: Path) -> None:
    """``pysstp status`` reads an answer far longer than asyncio's 64 KiB line default."""
    rows = [{"user": f"user{n}", "address": f"10.0.{n // 256}.{n % 256}"} for n in range(20_000)]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(json.dumps({"ok": True, "sessions": rows}).encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, path=str(tmp_path / "ctl.sock"))
    async with server:
        answer = await request(tmp_path / "ctl.sock", {"command": "status"}, timeout=60)
    assert answer["sessions"] == rows


def test_a_status_of_100000_sessions_has_every_row_in_the_status_shape() -> None:
    sessions = tuple(
        SessionStats(
            session_id=f"s{i}",
            peer=f"192.0.2.{i % 250}:{1024 + i % 60000}",
            started=1_700_000_000.0 + i,
            up=True,
            user=f"user{i}",
            ipv6=("2001:db8::1",),
            routes=("198.51.100.0/24",),
            classes=("ab",),
            bytes_in=i,
            worker=3,
        )
        for i in range(100_000)
    )
    stats = ServerStats(worker=3, pid=1, started=1_700_000_000.0, sessions=sessions)

    rows = json.loads(json.dumps(session_rows(stats)))

    assert len(rows) == 100_000
    wanted = [f.name for f in dataclasses.fields(SessionStats) if f.name != "worker"] + ["uptime"]
    assert all(list(row) == wanted for row in rows)
    assert [row["session_id"] for row in rows] == [f"s{i}" for i in range(100_000)]
    assert rows[99_999]["bytes_in"] == 99_999
    assert rows[5]["ipv6"] == ["2001:db8::1"] and rows[5]["classes"] == ["ab"]
