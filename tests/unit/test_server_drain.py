"""Drain: who asked, waiting for the sessions, the deadline, a second request."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any, cast

import pytest

from pysstp.server.app import SstpServerApp
from pysstp.server.control import ControlServer, asker
from pysstp.server.drain import Drain
from pysstp.server.notify import Notifier


class FakeApp:
    """What a drain uses of :class:`SstpServerApp`."""

    def __init__(self, sessions: int) -> None:
        self.connections: set[object] = {object() for _ in range(sessions)}
        self.draining = False

    async def drain(self) -> None:
        self.draining = True


def drain_of(app: FakeApp, timeout: float, ended: asyncio.Event) -> Drain:
    return Drain(cast(SstpServerApp, app), lambda: timeout, ended.set, Notifier())


async def test_the_drain_ends_when_the_last_session_has(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    app, ended = FakeApp(2), asyncio.Event()
    drain = drain_of(app, 300, ended)
    assert drain.start("SIGUSR2")
    assert not drain.start("the control socket")  # a second request changes nothing
    async with asyncio.timeout(30):
        while "drain started" not in caplog.text:
            await asyncio.sleep(0.01)
    assert app.draining and not ended.is_set()
    app.connections.clear()
    await asyncio.wait_for(ended.wait(), 30)
    assert "drain started by SIGUSR2: accepting no new calls; 2 session(s) left" in caplog.text
    assert "already draining" in caplog.text
    assert "drained: no sessions left" in caplog.text


async def test_at_the_deadline_the_sessions_left_are_for_the_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    app, ended = FakeApp(1), asyncio.Event()
    drain_of(app, 0.05, ended).start("SIGUSR2")
    await asyncio.wait_for(ended.wait(), 30)
    assert app.connections  # the shutdown that follows disconnects it in order
    assert "drain deadline reached (0.05 s): disconnecting the 1 session(s) left" in caplog.text


async def test_a_cancelled_drain_never_ends_the_server() -> None:
    app, ended = FakeApp(1), asyncio.Event()
    drain = drain_of(app, 0.05, ended)
    drain.start("SIGUSR2")
    drain.cancel()
    await asyncio.sleep(0.2)
    assert not ended.is_set()


async def test_the_control_command_drains_and_names_the_asker(tmp_path: Path) -> None:
    app = FakeApp(3)
    asked: list[str] = []

    def start(by: str) -> bool:
        asked.append(by)
        return len(asked) == 1

    control = ControlServer(cast(SstpServerApp, app), tmp_path / "ctl.sock", drain=start)
    answer: dict[str, Any] = await control.answer(json.dumps({"command": "drain"}).encode(), "pysstp drain")
    assert answer == {"ok": True, "started": True, "sessions": 3}
    assert (await control.answer(b'{"command": "drain"}'))["started"] is False
    assert asked == ["pysstp drain", "the control socket"]


def test_the_asker_is_named_by_the_kernel() -> None:
    one, other = socket.socketpair(socket.AF_UNIX)
    with one, other:
        assert asker(one) == f"the control socket (uid {os.getuid()}, pid {os.getpid()})"
    assert asker(None) == "the control socket"
