"""``pysstp status`` shows the RADIUS servers: up, or dead and tried last."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius import NasIdentity, RadiusClient, RadiusServer, RadiusUnavailable
from pysstp.aaa.radius.request import AccessRequest
from pysstp.cli import main
from pysstp.ppp.auth.verification import PapProof
from pysstp.server.control import ControlServer

from helpers.loopback import start_bench

CONTEXT = CallContext("s-1", "198.51.100.7", "203.0.113.1", 1)


def silent_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_status_shows_each_radius_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = silent_port(), silent_port()
    radius = RadiusClient(
        [
            RadiusServer("127.0.0.1", b"s", port=first, timeout=0.1, retries=0, dead_time=300, priority=0),
            RadiusServer("127.0.0.1", b"s", port=second, timeout=0.1, retries=0, dead_time=300, priority=1),
        ]
    )
    bench = await start_bench(tmp_path)
    control = ControlServer(bench.app, tmp_path / "ctl.sock", radius=radius)
    await control.start()
    try:
        status = (await control.answer(b'{"command": "status"}'))["radius"]
        assert [s["alive"] for s in status] == [True, True]
        with pytest.raises(RadiusUnavailable):
            await radius.send(AccessRequest(NasIdentity("n"), CONTEXT, "alice", PapProof("pw")).packet)
        assert await asyncio.to_thread(main, ["status", "--socket", str(tmp_path / "ctl.sock")]) == 0
        first_line = capsys.readouterr().out.splitlines()[0]
        assert first_line.startswith(f"RADIUS: 127.0.0.1:{first} dead (tried last for ")
        assert f"127.0.0.1:{second} dead" in first_line
    finally:
        await control.stop()
        await bench.app.shutdown()
        bench.tun.close()
        await radius.close()


async def test_the_snapshot_carries_each_radius_servers_counts(tmp_path: Path) -> None:
    port = silent_port()
    radius = RadiusClient([RadiusServer("127.0.0.1", b"s", port=port, timeout=0.1, retries=1)])
    bench = await start_bench(tmp_path, radius=radius)
    try:
        assert bench.app.snapshot().radius[0].requests == {}
        with pytest.raises(RadiusUnavailable):
            await radius.send(AccessRequest(NasIdentity("n"), CONTEXT, "alice", PapProof("pw")).packet)
        (server,) = bench.app.snapshot().radius
        assert (server.server, server.requests, server.timeouts) == (f"127.0.0.1:{port}", {"access": 1}, 1)
        control = ControlServer(bench.app, tmp_path / "ctl.sock", radius=radius)
        assert (await control.answer(b'{"command": "status"}'))["server"]["radius"][0]["timeouts"] == 1
    finally:
        await bench.app.shutdown()
        bench.tun.close()
        await radius.close()
