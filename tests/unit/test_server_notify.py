"""sd_notify without libsystemd: datagrams to a real Unix datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysstp.server.notify import Notifier, socket_address


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket and the ``$NOTIFY_SOCKET`` value that names it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    value = str(tmp_path / "notify") if request.param == "path" else f"@pysstp-test-notify-{os.getpid()}"
    sock.bind(socket_address(value))
    sock.settimeout(10)
    yield sock, value
    sock.close()


def messages(sock: socket.socket, count: int) -> list[str]:
    return [sock.recv(4096).decode() for _ in range(count)]


def test_no_notify_socket_means_no_messages() -> None:
    notifier = Notifier.from_environment({})
    assert notifier.address is None and notifier.watchdog_interval == 0
    notifier.ready("listening")  # nothing to send to, nothing raised
    notifier.close()


def test_the_environment_is_taken_so_that_started_processes_do_not_notify(
    manager: tuple[socket.socket, str],
) -> None:
    sock, value = manager
    environ = {"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid()), "X": "1"}
    notifier = Notifier.from_environment(environ)
    assert environ == {"X": "1"}
    assert notifier.watchdog_interval == 1.5
    notifier.ready("listening on 192.0.2.1:443")
    with notifier.reloading("listening on 192.0.2.1:443"):
        pass
    notifier.stopping("draining: 2 session(s) left", within=303)
    notifier.close()
    ready, reloading, ready_again, stopping = messages(sock, 4)
    assert ready == "READY=1\nSTATUS=listening on 192.0.2.1:443"
    assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=") and reloading.endswith("\nSTATUS=reloading")
    assert ready_again == ready
    assert stopping == "STOPPING=1\nSTATUS=draining: 2 session(s) left\nEXTEND_TIMEOUT_USEC=303000000"


def test_another_processs_watchdog_is_not_ours(manager: tuple[socket.socket, str]) -> None:
    _sock, value = manager
    notifier = Notifier.from_environment(
        {"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    )
    assert notifier.address is not None and notifier.watchdog_interval == 0


def test_a_socket_form_it_does_not_speak_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    assert Notifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"}).address is None
    assert "not a Unix socket" in caplog.text


def test_a_manager_that_went_away_costs_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    notifier.ready("listening")
    notifier.stopping("shutting down")
    notifier.close()
    assert caplog.text.count("cannot notify systemd") == 1


async def test_the_watchdog_is_a_timer_of_the_running_loop(manager: tuple[socket.socket, str]) -> None:
    sock, value = manager
    sock.setblocking(False)
    notifier = Notifier(socket_address(value), watchdog_usec=20_000)
    notifier.start_watchdog()
    loop = asyncio.get_running_loop()
    received = [await asyncio.wait_for(loop.sock_recv(sock, 4096), 10) for _ in range(3)]
    notifier.close()
    assert received == [b"WATCHDOG=1"] * 3


async def test_the_watchdog_is_silent_while_the_check_says_no(manager: tuple[socket.socket, str]) -> None:
    """The supervisor's check: WATCHDOG=1 only while every worker answers."""
    sock, value = manager
    sock.setblocking(False)
    notifier = Notifier(socket_address(value), watchdog_usec=20_000)
    answers = [False, False, True]
    asked: list[float] = []

    async def alive(within: float) -> bool:
        asked.append(within)
        return answers.pop(0) if answers else True

    notifier.start_watchdog(alive)
    loop = asyncio.get_running_loop()
    assert await asyncio.wait_for(loop.sock_recv(sock, 4096), 10) == b"WATCHDOG=1"
    notifier.close()
    # The first message came from the first yes: the two noes before it sent nothing.
    assert answers == []
    assert set(asked) == {0.005}  # half the interval
