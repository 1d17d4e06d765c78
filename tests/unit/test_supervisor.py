"""The supervisor's pure parts: worker TUN names, how many workers, merged control answers, settings
handed to a worker."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from pysstp.errors import SystemSetupError
from pysstp.net.changes import ChangeJournal
from pysstp.server import supervisor as supervisor_module
from pysstp.server.addresses import AddressAuthority
from pysstp.server.admission import Limits
from pysstp.server.app import SHUTDOWN_GRACE
from pysstp.server.config import ServerSettings
from pysstp.server.coordinator import Claim, Coordinator, Granted
from pysstp.server.notify import Notifier
from pysstp.server.pool import AddressPool
from pysstp.server.signals import Signals
from pysstp.server.statefile import state_file
from pysstp.server.stats import ServerStats
from pysstp.server.supervisor import (
    ANSWER_TIMEOUT,
    Supervisor,
    Worker,
    answer_timeout,
    decode_settings,
    merge_answers,
    undo_left_behind,
    worker_count,
    worker_tun_name,
    worker_tun_pattern,
)
from pysstp.server.workerchannel import Channel, Handler, Message, pack

SERVER = IPv4Address("10.77.0.1")
POOL = IPv4Network("10.77.0.0/29")


def test_worker_tun_names_fit_the_kernel_and_share_a_prefix() -> None:
    assert [worker_tun_name("sstp0", i) for i in (0, 1, 63)] == ["sstp0-0", "sstp0-1", "sstp0-63"]
    assert worker_tun_pattern("sstp0") == "sstp0-*"
    assert worker_tun_name("a-very-long-tun", 63) == "a-very-long--63"
    assert worker_tun_name("a-very-long-tun", 0) == "a-very-long--0"
    assert worker_tun_name("sstp%d", 2) == "sstp-2"
    assert worker_tun_pattern("a-very-long-tun") == "a-very-long--*"


def test_auto_is_one_worker_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert worker_count(dataclasses.replace(ServerSettings(), workers="auto")) == 8
    assert worker_count(dataclasses.replace(ServerSettings(), workers=3)) == 3
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert worker_count(dataclasses.replace(ServerSettings(), workers="auto")) == 1


def test_settings_reach_a_worker_unchanged() -> None:
    settings = dataclasses.replace(ServerSettings(), workers=2, users=Path("/etc/pysstp/users.toml"))
    assert decode_settings(pack(settings)) == settings


def test_status_answers_are_joined_and_counted() -> None:
    first = {
        "ok": True,
        "backend": "local",
        "sessions": [{"user": "b", "started": 2.0, "worker": 0}],
        "server": {"worker": 0, "pid": 10, "connects": 3, "failures": {"authentication": 1}},
        "kicked": 1,
        "draining": False,
    }
    second = {
        "ok": True,
        "backend": "local",
        "sessions": [{"user": "a", "started": 1.0, "worker": 1}],
        "server": {"worker": 1, "pid": 11, "connects": 4, "failures": {"authentication": 2, "address": 1}},
        "kicked": 0,
        "draining": False,
    }
    merged = merge_answers([first, second])
    assert [row["user"] for row in merged["sessions"]] == ["a", "b"]  # by start, whichever worker
    assert merged["server"] == {
        "worker": 0,
        "pid": 10,
        "connects": 7,
        "failures": {"authentication": 3, "address": 1},
    }
    assert (merged["kicked"], merged["backend"], merged["draining"]) == (1, "local", False)


def test_an_error_from_any_worker_is_the_answer() -> None:
    error = {"ok": False, "error": "kick needs a 'target' (user name or address)"}
    assert merge_answers([{"ok": True, "kicked": 0}, error]) == error
    assert merge_answers([]) == {"ok": False, "error": "no worker is running"}


async def served_channel(sock: socket.socket, handle: Handler, tasks: list[asyncio.Task[None]]) -> Channel:
    channel = Channel(sock, handle)
    await channel.open()
    tasks.append(asyncio.create_task(channel.serve()))
    return channel


@pytest.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[None]]]:
    """The tasks a test's channels are served by (see :func:`served_channel`), cancelled at its end."""
    started: list[asyncio.Task[None]] = []
    yield started
    for task in started:
        task.cancel()
    await asyncio.gather(*started, return_exceptions=True)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[socket.socket]:
    """systemd's end of NOTIFY_SOCKET, bound at ``tmp_path / "notify"``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.settimeout(10)
        yield sock


def close_lines(supervisor: Supervisor) -> None:
    """Close the supervisor's end of every worker's line."""
    for worker in supervisor.workers:
        assert worker.channel is not None
        worker.channel.close()


async def running_supervisor(
    count: int, tasks: list[asyncio.Task[None]]
) -> tuple[Supervisor, list[socket.socket]]:
    """A supervisor whose ``count`` workers have started, with the worker ends of their lines."""
    shared = Coordinator(AddressAuthority(AddressPool(POOL, SERVER), {}, server_address=SERVER), Limits())
    supervisor = Supervisor(dataclasses.replace(ServerSettings(), workers=count), None, [], shared, Signals())
    ends: list[socket.socket] = []
    for worker in supervisor.workers:
        ours, theirs = socket.socketpair()
        ends.append(theirs)
        worker.channel = await served_channel(ours, functools.partial(supervisor._handle, worker), tasks)
        worker.ready = asyncio.get_running_loop().create_future()
        worker.ready.set_result(None)
    return supervisor, ends


async def test_a_worker_that_does_not_answer_is_left_out(
    monkeypatch: pytest.MonkeyPatch, tasks: list[asyncio.Task[None]]
) -> None:
    monkeypatch.setattr(supervisor_module, "ANSWER_TIMEOUT", 0.2)
    monkeypatch.setattr(supervisor_module, "STATUS_TIMEOUT", 0.2)
    supervisor, (answering, silent) = await running_supervisor(2, tasks)

    async def worker_zero(message: Message) -> Message | None:
        if message["op"] == "snapshot":
            return {"stats": pack(ServerStats(worker=0, pid=1, started=0.0))}
        return {"ok": True, "sessions": [{"started": 1.0}]}

    await served_channel(answering, worker_zero, tasks)
    # Worker 1 never reads its line (its loop is stuck): status and the scrape still get worker 0's.
    answer = await asyncio.wait_for(supervisor.answer(b'{"command": "status"}'), 60)
    assert answer == {"ok": True, "sessions": [{"started": 1.0, "worker": 0}]}
    assert [stats.worker for stats in await asyncio.wait_for(supervisor.snapshots(), 60)] == [0]
    close_lines(supervisor)
    silent.close()


async def test_the_watchdog_check_needs_every_running_worker_to_answer(
    tasks: list[asyncio.Task[None]], caplog: pytest.LogCaptureFixture
) -> None:
    supervisor, (answering, stuck) = await running_supervisor(2, tasks)
    await served_channel(answering, lambda _message: asyncio.sleep(0, None), tasks)
    # Worker 1's loop is stuck (it never reads its line): systemd must not hear WATCHDOG=1.
    assert not await asyncio.wait_for(supervisor.workers_answer(0.2), 60)
    assert "worker(s) 1 did not answer within 0.2 s: no WATCHDOG=1 to systemd this time" in caplog.text
    unstuck = await served_channel(stuck, lambda _message: asyncio.sleep(0, None), tasks)
    assert await asyncio.wait_for(supervisor.workers_answer(60), 120)
    # A worker that has died is the supervisor's to start again, not a reason to stop the watchdog.
    unstuck.close()
    await asyncio.wait_for(tasks[1], 60)  # the supervisor has read the end of worker 1's line
    assert await asyncio.wait_for(supervisor.workers_answer(60), 120)
    close_lines(supervisor)


async def test_a_worker_hung_at_start_is_killed(
    monkeypatch: pytest.MonkeyPatch, tasks: list[asyncio.Task[None]]
) -> None:
    monkeypatch.setattr(supervisor_module, "START_TIMEOUT", 0.2)
    supervisor, _ = await running_supervisor(1, tasks)
    worker = supervisor.workers[0]
    worker.ready = asyncio.get_running_loop().create_future()
    worker.process = await asyncio.create_subprocess_exec("sleep", "600")
    with pytest.raises(SystemSetupError, match="did not start within"):
        await asyncio.wait_for(supervisor._wait_ready(worker), 60)
    # Not left running beside the one the restart starts next.
    assert worker.process.returncode is not None


async def test_the_end_of_a_replaced_process_frees_nothing_of_its_successor(
    tmp_path: Path, tasks: list[asyncio.Task[None]]
) -> None:
    supervisor, _ = await running_supervisor(1, tasks)
    supervisor.settings = dataclasses.replace(supervisor.settings, state_dir=tmp_path)
    worker = supervisor.workers[0]
    worker.delay = 3600.0
    lease = supervisor.coordinator.reserve(0, Claim("alice"))
    assert isinstance(lease, Granted)
    # A process a restart gave up on ends after its successor has started and taken a lease.
    replaced = await asyncio.create_subprocess_exec("true")
    worker.process = await asyncio.create_subprocess_exec("sleep", "600")
    await asyncio.wait_for(supervisor._watch(worker, replaced), 60)
    assert supervisor.coordinator.leases() == [lease.lease]
    assert worker.channel is not None and not worker.channel.closed
    worker.process.kill()
    await worker.process.wait()
    worker.channel.close()


async def test_a_dead_workers_last_request_leases_nothing(tasks: list[asyncio.Task[None]]) -> None:
    supervisor, _ = await running_supervisor(1, tasks)
    worker = supervisor.workers[0]
    assert worker.channel is not None
    # The worker's process has ended (its line is closed, its leases freed); a request it sent just
    # before is handled only now.
    worker.channel.close()
    supervisor.coordinator.worker_gone(0)
    answer = await supervisor._handle(worker, {"op": "reserve", "user": "alice"})
    assert answer is not None and "refused" in answer
    assert supervisor.coordinator.leases() == []


async def test_a_drain_extends_systemds_stop_timeout_to_the_drains_deadline(
    tmp_path: Path, tasks: list[asyncio.Task[None]], manager: socket.socket
) -> None:
    supervisor, ends = await running_supervisor(1, tasks)
    supervisor.settings = dataclasses.replace(
        supervisor.settings, limits=dataclasses.replace(supervisor.settings.limits, drain_timeout=600.0)
    )
    supervisor.notifier = Notifier(str(tmp_path / "notify"))

    async def draining(message: Message) -> Message | None:
        return {"ok": True, "sessions": 0, "started": True}

    await served_channel(ends[0], draining, tasks)
    assert (await asyncio.wait_for(supervisor.drain("SIGUSR2"), 60))["ok"]
    fields = manager.recv(4096).decode().split("\n")
    # STOPPING=1 starts TimeoutStopSec= (90 s by default), which would kill a drain of 600 s.
    assert "STOPPING=1" in fields
    assert f"EXTEND_TIMEOUT_USEC={round((600.0 + SHUTDOWN_GRACE) * 1_000_000)}" in fields
    supervisor.notifier.close()
    close_lines(supervisor)


async def test_a_worker_back_while_a_drain_began_drains_too(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tasks: list[asyncio.Task[None]],
) -> None:
    supervisor, _ = await running_supervisor(1, tasks)
    supervisor.settings = dataclasses.replace(supervisor.settings, state_dir=tmp_path)
    worker = supervisor.workers[0]
    worker.delay = 0.0
    worker.process = await asyncio.create_subprocess_exec("true")
    asked: list[Message] = []

    async def restarted(message: Message) -> Message | None:
        asked.append(message)
        return {"ok": True, "sessions": 0, "started": True}

    async def start(worker: Worker) -> None:
        ours, theirs = socket.socketpair()
        worker.channel = await served_channel(ours, functools.partial(supervisor._handle, worker), tasks)
        await served_channel(theirs, restarted, tasks)

    async def ready(worker: Worker) -> None:
        supervisor.draining = True  # the drain's fan-out went out while this worker was starting

    monkeypatch.setattr(supervisor, "_start", start)
    monkeypatch.setattr(supervisor, "_wait_ready", ready)
    await asyncio.wait_for(supervisor._watch(worker, worker.process), 60)
    assert [message["request"] for message in asked] == [{"command": "drain"}]
    assert worker.channel is not None
    worker.channel.close()


async def test_a_drain_with_every_worker_dead_ends_the_supervisor(tasks: list[asyncio.Task[None]]) -> None:
    supervisor, _ = await running_supervisor(2, tasks)
    for worker in supervisor.workers:
        assert worker.channel is not None
        worker.channel.close()  # both died; their restarts wait
        worker.process = await asyncio.create_subprocess_exec("true")
        await worker.process.wait()
    await asyncio.wait_for(supervisor.drain("SIGUSR2"), 60)
    assert supervisor._stop.is_set()


def test_a_killed_supervisors_sysctls_get_the_hosts_values_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: dict[str, str] = {}
    monkeypatch.setattr("pysstp.net.changes.sysctl_path", lambda key: tmp_path)
    monkeypatch.setattr("pysstp.net.changes.write_sysctl", lambda key, value: written.update({key: value}))
    settings = dataclasses.replace(ServerSettings(), state_dir=tmp_path)
    forwarding = "net.ipv6.conf.all.forwarding"
    # The supervisor set it first (the host had 0), then a worker set it again (and found 1).
    journal = ChangeJournal.open(state_file(tmp_path, settings.tun_name))
    journal.write([{"kind": "sysctl", "key": forwarding, "previous": "0"}])
    worker = ChangeJournal.open(state_file(tmp_path, worker_tun_name(settings.tun_name, 0)))
    worker.write([{"kind": "sysctl", "key": forwarding, "previous": "1"}])
    worker.close(remove=False)
    assert undo_left_behind(settings, journal) == [f"sysctl {forwarding}=1", f"sysctl {forwarding}=0"]
    assert written == {forwarding: "0"}
    journal.close(remove=True)


def test_the_next_start_waits_for_a_worker_of_the_killed_supervisor_still_ending(tmp_path: Path) -> None:
    settings = dataclasses.replace(ServerSettings(), state_dir=tmp_path)
    journal = ChangeJournal.open(state_file(tmp_path, settings.tun_name))
    # Worker 1 of the killed supervisor is still saying goodbye to its calls: it holds its journal, and
    # lets go of it (removed: everything undone) when it has ended.
    ending = ChangeJournal.open(state_file(tmp_path, worker_tun_name(settings.tun_name, 1)))
    ending.write([{"kind": "tun", "name": "sstp0-1"}])
    ended = threading.Event()

    def end() -> None:
        ending.write([])
        ending.close(remove=True)
        ended.set()

    threading.Timer(0.2, end).start()
    assert undo_left_behind(settings, journal) == []
    assert ended.is_set()
    assert list(tmp_path.iterdir()) == [state_file(tmp_path, settings.tun_name)]
    journal.close(remove=True)


async def test_a_reload_is_framed_by_reloading_and_ready_for_systemd(
    tmp_path: Path, tasks: list[asyncio.Task[None]], manager: socket.socket
) -> None:
    supervisor, _ = await running_supervisor(1, tasks)
    supervisor.notifier = Notifier(str(tmp_path / "notify"))
    supervisor.listening = "listening on 0.0.0.0:443"
    supervisor.reload()
    assert manager.recv(4096).decode().startswith("RELOADING=1\n")
    assert manager.recv(4096).decode() == "READY=1\nSTATUS=listening on 0.0.0.0:443"
    supervisor.notifier.close()
    close_lines(supervisor)


async def test_a_worker_that_cannot_be_started_leaks_no_line(
    monkeypatch: pytest.MonkeyPatch, tasks: list[asyncio.Task[None]]
) -> None:
    supervisor, _ = await running_supervisor(1, tasks)
    pairs: list[tuple[socket.socket, socket.socket]] = []
    real = socket.socketpair

    def socketpair() -> tuple[socket.socket, socket.socket]:
        pairs.append(real())
        return pairs[-1]

    async def cannot_fork(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr("socket.socketpair", socketpair)
    monkeypatch.setattr("asyncio.create_subprocess_exec", cannot_fork)
    with pytest.raises(OSError):
        await supervisor._start(supervisor.workers[0])
    assert [sock.fileno() for sock in pairs[0]] == [-1, -1]


async def test_signals_in_start_up_and_shutdown_do_not_end_the_supervisor_early(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pysstp.server")
    shared = Coordinator(AddressAuthority(AddressPool(POOL, SERVER), {}, server_address=SERVER), Limits())
    ended: list[int] = []

    async def start(worker: Worker) -> None:
        pass

    async def wait_ready(worker: Worker) -> None:
        # Python's default action for SIGTERM would end the process here, with the host half set up.
        if worker.index == 0:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(supervisor._stop.wait(), 60)

    async def end(worker: Worker) -> None:
        if worker.index == 0:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(6000):
                if "SIGHUP ignored" in caplog.text:
                    break
                await asyncio.sleep(0.01)
        ended.append(worker.index)

    async def nothing() -> None:
        pass

    with Signals() as signals:
        settings = dataclasses.replace(ServerSettings(), workers=2)
        supervisor = Supervisor(settings, None, [], shared, signals)
        monkeypatch.setattr(supervisor, "_start", start)
        monkeypatch.setattr(supervisor, "_wait_ready", wait_ready)
        monkeypatch.setattr(supervisor, "_end", end)
        monkeypatch.setattr(supervisor, "_open_control", nothing)
        await asyncio.wait_for(supervisor.run(), 60)
    assert sorted(ended) == [0, 1]
    assert "SIGTERM during start-up: shutting down once started" in caplog.text
    assert "SIGHUP ignored: shutting down" in caplog.text


def test_a_workers_status_answer_has_more_time_than_a_ping() -> None:
    # A status lists every session (100,000 of them take seconds); the other commands keep the short
    # timeout the watchdog's pings rely on.
    assert answer_timeout({"command": "status"}) >= 60 > ANSWER_TIMEOUT
    assert answer_timeout({"command": "drain"}) == ANSWER_TIMEOUT
