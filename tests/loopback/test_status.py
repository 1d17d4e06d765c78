"""``pysstp status``: finding the server's control socket, a table that fits the terminal, complete JSON."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pysstp.cli import main
from pysstp.commands.status import COLUMNS, format_table
from pysstp.server.admission import Limits
from pysstp.server.control import ControlServer

from helpers.loopback import Bench, start_bench

TIMEOUT = 10

SESSION: dict[str, Any] = {
    "session_id": "5EED0001000000A7",
    "user": "CORP\\alice.longname",
    "backend": "local",
    "address": "10.77.0.200",
    "ipv6": [],
    "peer": "[2001:db8:1234:5678::1]:51234",
    "up": True,
    "started": 1_700_000_000.0,
    "uptime": 123456.7,
    "mtu": 1396,
    "bytes_in": 123_456_789_012,
    "bytes_out": 98_765_432_109,
    "rate_in": 123_456_789,
    "rate_out": 98_765_432,
    "packets_in": 1,
    "packets_out": 2,
    "drops": 12345,
    "rate_drops": 0,
    "limit_in": 0,
    "limit_out": 0,
    "auth": "eap-mschapv2",
    "hash": "SHA256",
    "tls": "TLSv1.3 TLS_CHACHA20_POLY1305_SHA256",
    "routes": [],
    "classes": [],
}


def header(table: str) -> str:
    return table.splitlines()[0]


def test_a_wide_terminal_shows_every_column() -> None:
    table = format_table([SESSION], width=200)
    assert header(table).split("  ")[0] == "USER"
    assert all(name in header(table) for name in COLUMNS)
    assert "TLS_CHACHA20_POLY1305_SHA256" in table


@pytest.mark.parametrize("width", [120, 100, 80, 60])
def test_the_table_fits_the_terminal_and_keeps_who_and_where(width: int) -> None:
    table = format_table([SESSION, {**SESSION, "user": "bob", "tls": None}], width=width)
    assert max(len(line) for line in table.splitlines()) <= width, table
    assert "CORP\\alice.longname" in table and "10.77.0.200" in table


def test_columns_go_least_needed_first() -> None:
    ipv4 = {**SESSION, "peer": "203.0.113.7:51122", "user": "alice"}
    at_80 = header(format_table([ipv4], width=80)).split()
    assert at_80 == ["USER", "ADDRESS", "PEER", "UPTIME", "IN", "OUT"]
    at_125 = format_table([ipv4], width=125)
    assert "TLSv1.3" in at_125 and "CHACHA20" not in at_125  # the cipher goes before the version


def test_several_workers_get_a_worker_column_after_the_address() -> None:
    rows = [{**SESSION, "worker": 0}, {**SESSION, "user": "bob", "worker": 1}]
    table = format_table(rows, width=200)
    assert header(table).split()[:3] == ["USER", "ADDRESS", "WORKER"]
    assert [line.split()[2] for line in table.splitlines()[1:]] == ["0", "1"]
    # Narrower, it goes after the drops and before the byte counts.
    assert header(format_table(rows, width=110)).split()[:3] == ["USER", "ADDRESS", "PEER"]
    assert "WORKER" not in header(format_table([SESSION], width=200))  # one process: no column


def test_a_terminal_too_narrow_for_any_table_still_gets_user_and_address() -> None:
    table = format_table([SESSION], width=10)
    assert header(table).split() == ["USER", "ADDRESS"]


async def test_config_finds_the_socket_and_json_has_every_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench: Bench = await start_bench(tmp_path)
    control = ControlServer(bench.app, tmp_path / "run" / "ctl.sock")
    await control.start()
    config = tmp_path / "server.toml"
    config.write_text('control_socket = "run/ctl.sock"\n')  # relative to the file, as the server reads it
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        assert await asyncio.to_thread(main, ["status", "--config", str(config), "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)["sessions"]
        assert set(row) == set(SESSION)
        assert row["user"] == "alice" and row["mtu"] > 0 and row["started"] > 0
        assert row["backend"] == "local" and re.fullmatch("[0-9A-F]{16}", row["session_id"])
        monkeypatch.setenv("COLUMNS", "70")
        assert await asyncio.to_thread(main, ["status", "--config", str(config)]) == 0
        table = capsys.readouterr().out
        assert "alice" in table and max(map(len, table.splitlines())) <= 70
        assert table.splitlines()[0] == "logins decided by: local"
    finally:
        await control.stop()
        await bench.app.shutdown()
        bench.tun.close()


def test_config_without_a_running_server_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'control_socket = "{tmp_path / "none.sock"}"\n')
    assert main(["status", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"pysstp: no pysstp server is listening on {tmp_path / 'none.sock'} "
        "(is it running? is --socket or --config right?)\n"
    )


async def answer_once(path: Path, reply: bytes) -> asyncio.AbstractServer:
    """A Unix socket at ``path`` that answers every request with ``reply`` and hangs up."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(reply)
        await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(serve, path=str(path))


@pytest.mark.parametrize("reply", [b"", b"<html>\n", b"[1, 2]\n"])
async def test_something_else_on_the_socket_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reply: bytes
) -> None:
    path = tmp_path / "other.sock"
    server = await answer_once(path, reply)
    try:
        assert await asyncio.to_thread(main, ["status", "--socket", str(path)]) == 1
    finally:
        server.close()
        await server.wait_closed()
    assert capsys.readouterr().err == f"pysstp: {path} did not answer as a pysstp server does\n"


def test_a_socket_path_too_long_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ("a" * 120)
    assert main(["status", "--socket", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pysstp: cannot use {path} as the control socket: ") and err.count("\n") == 1


async def test_status_counts_connects_failures_and_traffic_of_ended_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench: Bench = await start_bench(tmp_path)
    control = ControlServer(bench.app, tmp_path / "ctl.sock")
    await control.start()
    try:
        wrong = await bench.connect(password="wrong")
        await asyncio.wait_for(wrong.down.wait(), TIMEOUT)
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        assert client.connection is not None
        client.connection.close("done")
        await asyncio.wait_for(client.down.wait(), TIMEOUT)

        async def ended() -> None:
            while bench.app.connections:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(ended(), TIMEOUT)
        server = (await control.answer(b'{"command": "status"}'))["server"]
        assert (server["connects"], server["failures"]) == (1, {"authentication": 1})
        assert server["bytes_in"] > 0 and server["packets_in"] == 0  # the control packets are counted
        assert set(server["drops"]) == {
            "queue_full",
            "spoofed_source",
            "no_session",
            "before_binding",
            "rate_limit",
            "dhcp",
        }
        assert server["rss_bytes"] > 0 and server["cpu_seconds"] > 0 and server["negotiating"] == 0
        assert "sessions" not in server
        assert await asyncio.to_thread(main, ["status", "--socket", str(control.path), "--json"]) == 0
        full = json.loads(capsys.readouterr().out)
        assert full["sessions"] == [] and full["server"]["connects"] == 1
    finally:
        await control.stop()
        await bench.app.shutdown()
        bench.tun.close()


async def test_a_refusal_is_counted_once_by_its_reason(tmp_path: Path) -> None:
    bench: Bench = await start_bench(tmp_path, limits=Limits(max_sessions_per_user=1))
    try:
        first = await bench.connect()
        await asyncio.wait_for(first.up.wait(), TIMEOUT)
        second = await bench.connect()
        await asyncio.wait_for(second.down.wait(), TIMEOUT)
        stats = bench.app.snapshot()
        assert stats.failures == {"address": 1} and stats.connects == 1
        assert [s.user for s in stats.sessions] == ["alice"]
    finally:
        await bench.app.shutdown()
        bench.tun.close()
