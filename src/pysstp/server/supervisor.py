"""``workers = N``: the supervisor process, which shares the host among N worker processes.

It makes the changes all workers share (forwarding sysctls, the nftables table whose rules match every
worker's TUN, an unreachable route for each pool so that an address no session holds never leaves by
the default route), binds the listening sockets once, and starts N workers (``python -m
pysstp.server.worker``) that inherit them. Each worker runs the normal server on a TUN of its own
(``<tun_name>-<index>``) and routes each of its sessions' addresses into it, so the kernel delivers a
session's packets to the worker that holds it. The supervisor keeps what must be shared in its
:class:`~pysstp.server.coordinator.Coordinator` and answers the control socket for all workers.

A worker that dies is started again after its addresses are freed and its journal undone; the other
workers' sessions never notice. SIGHUP reloads every worker; SIGTERM/SIGINT stops them all and undoes
everything (docs/scaling.md, "Workers").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any

from pysstp.aaa.dae import DaeServer
from pysstp.errors import ConfigError, SystemSetupError
from pysstp.net.changes import ChangeJournal, NetworkChanges, undo_journal
from pysstp.net.ifname import MAX_IFNAME_BYTES
from pysstp.server.addresses import AddressAuthority
from pysstp.server.app import SHUTDOWN_GRACE
from pysstp.server.build import limits, load_tls, named_pools, user_database
from pysstp.server.check import check_fixed_addresses, check_host, listen_error
from pysstp.server.config import MAX_WORKERS, ServerSettings
from pysstp.server.control import MAX_REQUEST, STATUS_TIMEOUT, asker
from pysstp.server.coordinator import Claim, Coordinator, Granted
from pysstp.server.dae import Ask, WorkerSessions, start_dae
from pysstp.server.listener import listening_sockets, peer_text
from pysstp.server.metrics import MetricsServer, start_metrics
from pysstp.server.notify import Notifier
from pysstp.server.pool import AddressPool
from pysstp.server.reload import RESTART_SETTINGS, keep_settings
from pysstp.server.signals import Signals
from pysstp.server.statefile import state_file
from pysstp.server.stats import ServerStats
from pysstp.server.workerchannel import Channel, Message, pack, unpack

log = logging.getLogger("pysstp.server")

START_TIMEOUT = 60.0
"""Seconds a worker has to say it is ready (TUN open, listening)."""
STOP_TIMEOUT = 10.0
"""Seconds a worker has after SIGTERM (it waits up to 3 s for its calls to say goodbye) before SIGKILL."""
RESTART_DELAY = 1.0
"""Seconds before a worker that died is started again; doubled while it keeps dying soon after a start,
up to :data:`MAX_RESTART_DELAY`."""
MAX_RESTART_DELAY = 30.0
STABLE_AFTER = 60.0
"""A worker that ran this long before dying is restarted after :data:`RESTART_DELAY` again."""
ANSWER_TIMEOUT = 3.0
"""Seconds a worker has to answer a control request (but a status, see :func:`answer_timeout`), a
scrape or a ping. One that does not (its loop stuck, the process stopped) is left out of the answer,
which then still reaches the client within its own timeout."""


def worker_count(settings: ServerSettings) -> int:
    """How many workers ``workers`` asks for (``auto``: one per core)."""
    if settings.workers == "auto":
        return max(1, min(os.cpu_count() or 1, MAX_WORKERS))
    return settings.workers


def worker_tun_name(tun_name: str, index: int) -> str:
    """Worker ``index``'s TUN: ``<tun_name>-<index>``, the name cut so that every worker's fits the
    kernel's limit with the same prefix (:func:`worker_tun_pattern` matches them all)."""
    room = MAX_IFNAME_BYTES - len(f"-{MAX_WORKERS - 1}")
    return tun_name.replace("%d", "").encode()[:room].decode(errors="ignore") + f"-{index}"


def worker_tun_pattern(tun_name: str) -> str:
    """An nftables interface name matching every worker's TUN (``sstp0-*``)."""
    return worker_tun_name(tun_name, 0)[:-1] + "*"


def decode_settings(text: str) -> ServerSettings:
    """Settings a worker got from the supervisor (:func:`~pysstp.server.workerchannel.pack`)."""
    settings = unpack(text)
    assert isinstance(settings, ServerSettings)
    return settings


async def supervise(settings: ServerSettings, reread: Callable[[], ServerSettings] | None) -> int:
    """Run the server as a supervisor of ``worker_count(settings)`` workers until SIGTERM/SIGINT;
    every change to the host is undone on the way out."""
    load_tls(settings)  # a bad certificate is one clear line now, not one per worker
    pool = AddressPool(settings.pool.network, settings.pool.server_address)
    check_fixed_addresses(user_database(settings), pool)
    # As for a single server (service.serve): no signal ends the process between a change and its undo.
    with Signals() as signals:
        return await supervise_with(settings, reread, pool, signals)


async def supervise_with(
    settings: ServerSettings,
    reread: Callable[[], ServerSettings] | None,
    pool: AddressPool,
    signals: Signals,
) -> int:
    """:func:`supervise` once the settings are checked, with ``signals`` handled."""
    journal = ChangeJournal.open(state_file(settings.state_dir, settings.tun_name))
    try:
        undone = undo_left_behind(settings, journal)
        if undone:
            log.warning("undid what a server on %s left behind: %s", settings.tun_name, ", ".join(undone))
        changes = NetworkChanges(journal)
        try:
            check_host(settings)
            share_host(changes, settings)
            sockets = bind(settings)
            try:
                authority = AddressAuthority(
                    pool, named_pools(settings), server_address=settings.pool.server_address
                )
                coordinator = Coordinator(authority, limits(settings))
                supervisor = Supervisor(settings, reread, sockets, coordinator, signals)
                await supervisor.run()
            finally:
                for sock in sockets:
                    sock.close()
        finally:
            changes.undo()
        return 0
    finally:
        journal.close(remove=not journal.read())


def undo_left_behind(settings: ServerSettings, journal: ChangeJournal) -> list[str]:
    """Undo what a killed supervisor (``journal``) and its workers recorded; return what was undone. The
    workers' journals go first, as their changes came after the supervisor's: a host-wide sysctl that a
    worker set again (IPv6 forwarding) holds the supervisor's value as its previous one, and the host's
    own value is the supervisor's to put back. A worker of the killed supervisor may still be ending
    (telling its calls goodbye, undoing its own changes): its journal is waited for as long as the
    supervisor would wait for it to stop."""
    undone: list[str] = []
    for index in range(MAX_WORKERS):
        undone += undo_worker_journal(settings, index, wait=STOP_TIMEOUT)
    return undone + undo_journal(journal)


def undo_worker_journal(settings: ServerSettings, index: int, *, wait: float = 0.0) -> list[str]:
    """Undo what a dead worker recorded (its TUN is gone with it; its sysctls are not); return what was
    undone. ``wait``: seconds to wait for a worker still ending to let go of its journal."""
    path = state_file(settings.state_dir, worker_tun_name(settings.tun_name, index))
    if not path.exists():
        return []
    journal = ChangeJournal.open(path, wait=wait)
    try:
        return undo_journal(journal)
    finally:
        journal.close(remove=not journal.read())


def share_host(changes: NetworkChanges, settings: ServerSettings) -> None:
    """What every worker's calls need of the host: forwarding (also between the workers' TUNs), the
    nftables table for all TUNs, and the pools and the IPv6 prefix answered as unreachable unless a
    session holds the address (its worker's host route is more specific)."""
    changes.set_sysctl("net.ipv4.ip_forward", 1)
    if settings.ipv6.enabled:
        changes.set_sysctl("net.ipv6.conf.all.forwarding", 1)
    networks: list[IPv4Network | IPv6Network] = [settings.pool.network]
    networks += [named.network for named in settings.pools]
    if settings.ipv6.prefix is not None:
        networks.append(settings.ipv6.prefix)
    for network in networks:
        changes.add_route(network, unreachable=True)
    if settings.forwarding.mode == "nat" or settings.forwarding.mss_clamp:
        changes.install_nat(
            worker_tun_pattern(settings.tun_name),
            source=settings.pool.network if settings.forwarding.mode == "nat" else None,
            egress=settings.forwarding.egress,
            mss="route" if settings.forwarding.mss_clamp else None,
        )


def bind(settings: ServerSettings) -> list[socket.socket]:
    """One listening socket per address of ``listen``, which every worker accepts from."""
    sockets: list[socket.socket] = []
    try:
        for host in settings.listen:
            infos = socket.getaddrinfo(host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            sockets += listening_sockets(infos)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise listen_error(settings, exc) from None
    return sockets


@dataclass
class Worker:
    """One worker process as the supervisor sees it."""

    index: int
    process: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    ready: asyncio.Future[None] | None = None
    error: str | None = None
    """What the worker said was wrong before it exited."""
    started: float = 0.0
    delay: float = RESTART_DELAY
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class Supervisor:
    """Starts the workers, restarts those that die, answers their questions and the control socket."""

    def __init__(
        self,
        settings: ServerSettings,
        reread: Callable[[], ServerSettings] | None,
        sockets: list[socket.socket],
        coordinator: Coordinator,
        signals: Signals,
    ) -> None:
        self.settings = settings
        self.started = settings
        """What the restart-only settings are, for as long as the process runs."""
        self.reread = reread
        self.sockets = sockets
        self.coordinator = coordinator
        self.workers = [Worker(index) for index in range(worker_count(settings))]
        self.stopping = False
        self.draining = False
        self.listening = ""
        """The status line systemd shows while the workers serve."""
        self.notifier = Notifier.from_environment()
        """systemd hears from the supervisor only (the workers' environment no longer names it)."""
        self.signals = signals
        self._stop = signals.stop
        """SIGTERM/SIGINT (also during start-up), the end of a drain."""
        self._control: asyncio.AbstractServer | None = None
        self._metrics: MetricsServer | None = None
        self._dae: DaeServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        """Start every worker, serve until SIGTERM/SIGINT or the end of a drain, stop them all."""
        try:
            for worker in self.workers:
                await self._start(worker)
            for worker in self.workers:
                await self._wait_ready(worker)
            await self._open_control()
            self._dae = await start_dae(WorkerSessions(self._askers), self.settings.dae)
            self._metrics = await start_metrics(
                self.settings.metrics.listen, self.snapshots, lambda: self.draining
            )
            listening = f"listening on {', '.join(peer_text(s.getsockname()) for s in self.sockets)}"
            self.listening = listening
            log.info(
                "%s; %d workers on %s; %s/%d",
                listening,
                len(self.workers),
                worker_tun_pattern(self.settings.tun_name),
                self.settings.pool.server_address,
                self.settings.pool.network.prefixlen,
            )
            self.notifier.ready(listening)
            self.notifier.start_watchdog(self.workers_answer)
            self.signals.serving(reload=self.reload, drain=lambda: self._background(self.drain("SIGUSR2")))
            await self._stop.wait()
            log.info("shutting down: stopping %d workers", len(self.workers))
            self.notifier.stopping("shutting down")
        finally:
            self._stop.set()  # from here on a signal is only logged (see Signals)
            self.stopping = True
            await self._close_control()
            if self._dae is not None:
                self._dae.close()
            if self._metrics is not None:
                await self._metrics.stop()
            await asyncio.gather(*(self._end(worker) for worker in self.workers))
            for task in list(self._tasks):
                task.cancel()
            self.notifier.close()

    # -- the workers' processes ----------------------------------------------------------------------

    async def _start(self, worker: Worker) -> None:
        ours, theirs = socket.socketpair()
        listeners = [sock.fileno() for sock in self.sockets]
        try:
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pysstp.server.worker",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(), *listeners),
                # Its own session: a Ctrl-C at the terminal reaches the supervisor, which stops the
                # workers in order, not every process at once.
                start_new_session=True,
            )
        except BaseException:
            ours.close()  # a restart tried again and again (out of memory, of processes) must not leak it
            raise
        finally:
            theirs.close()
        log.info("worker %d started (pid %d)", worker.index, worker.process.pid)
        worker.started = time.monotonic()
        worker.error = None
        worker.ready = asyncio.get_running_loop().create_future()
        worker.channel = Channel(ours, functools.partial(self._handle, worker))
        await worker.channel.open()
        worker.channel.tell(
            {
                "op": "start",
                "index": worker.index,
                "settings": pack(self.settings),
                "listeners": listeners,
            }
        )
        self._spawn(worker, worker.channel.serve())
        self._spawn(worker, self._watch(worker, worker.process))

    def _spawn(self, worker: Worker, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        worker.tasks.add(task)
        task.add_done_callback(worker.tasks.discard)

    async def _wait_ready(self, worker: Worker) -> None:
        """Wait until ``worker`` listens; raise :class:`SystemSetupError` with its reason if it exits."""
        assert worker.ready is not None and worker.process is not None
        exited: asyncio.Future[Any] = asyncio.ensure_future(worker.process.wait())
        ready: asyncio.Future[Any] = worker.ready
        try:
            await asyncio.wait({ready, exited}, timeout=START_TIMEOUT, return_when="FIRST_COMPLETED")
        finally:
            exited.cancel()
        if worker.ready.done():
            return
        if worker.process.returncode is not None:
            raise SystemSetupError(
                worker.error or f"worker {worker.index} exited ({worker.process.returncode}) while starting"
            )
        # Hung while starting: it must be gone before its journal is undone and another takes its place.
        with contextlib.suppress(ProcessLookupError):
            worker.process.kill()
        await worker.process.wait()
        raise SystemSetupError(f"worker {worker.index} did not start within {START_TIMEOUT:.0f} s")

    async def _watch(self, worker: Worker, process: asyncio.subprocess.Process) -> None:
        """When the worker's process ends outside a shutdown: free what it held, start it again."""
        code = await process.wait()
        if process is not worker.process:
            return  # a process that a restart has already replaced
        if worker.channel is not None:
            worker.channel.close()
        if self.stopping or worker.ready is None or not worker.ready.done():
            return  # stopping, or it never started: run() reports that
        if self.draining:
            self.coordinator.worker_gone(worker.index)
            self._end_drain_if_drained()
            return
        leases = self.coordinator.worker_gone(worker.index)
        undone = undo_worker_journal(self.settings, worker.index)
        if time.monotonic() - worker.started > STABLE_AFTER:
            worker.delay = RESTART_DELAY
        how = f"signal {-code}" if code < 0 else f"status {code}"
        log.warning(
            "worker %d (pid %d) ended with %s: %d session(s) lost and their addresses freed%s; "
            "starting it again in %.0f s",
            worker.index,
            process.pid,
            how,
            len(leases),
            f", undid {', '.join(undone)}" if undone else "",
            worker.delay,
        )
        while not self.stopping and not self.draining:
            await asyncio.sleep(worker.delay)
            worker.delay = min(worker.delay * 2, MAX_RESTART_DELAY)
            if self.stopping or self.draining:
                return
            try:
                await self._start(worker)
                await self._wait_ready(worker)
            except (OSError, SystemSetupError) as exc:
                undo_worker_journal(self.settings, worker.index)
                log.error(
                    "worker %d did not start again: %s; trying again in %.0f s",
                    worker.index,
                    exc,
                    worker.delay,
                )
                continue
            assert worker.process is not None
            log.info("worker %d is back (pid %d)", worker.index, worker.process.pid)
            if self.draining:
                # The drain began while it started, and its fan-out did not reach it.
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await self._ask_worker(worker, {"command": "drain"}, "the drain of the other workers")
            return

    def _background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end(self, worker: Worker) -> None:
        process = worker.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("worker %d did not stop within %.0f s; killing it", worker.index, STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for task in list(worker.tasks):
            task.cancel()
        await asyncio.gather(*worker.tasks, return_exceptions=True)
        for line in undo_worker_journal(self.settings, worker.index):
            log.warning("worker %d left %s behind; undone", worker.index, line)

    # -- the workers' questions ----------------------------------------------------------------------

    async def _handle(self, worker: Worker, message: Message) -> Message | None:
        op = message.get("op")
        if op == "reserve":
            return self._reserve(worker, message)
        if op == "release":
            self.coordinator.release(worker.index, message["lease"])
        elif op == "login":
            # The login back-off: every worker counts every failure, so each refuses on its own.
            for other in self._others(worker):
                other.tell(message)
        elif op == "ready":
            if worker.ready is not None and not worker.ready.done():
                worker.ready.set_result(None)
        elif op == "failed":
            worker.error = message.get("error")
        return None

    def _reserve(self, worker: Worker, message: Message) -> Message:
        if worker.channel is None or worker.channel.closed:
            # Read before the worker died, handled after its leases were freed: nobody would free this one.
            return {"refused": f"worker {worker.index} has ended"}
        claim = Claim(
            message["user"],
            fixed=IPv4Address(message["fixed"]) if message.get("fixed") else None,
            pool=message.get("pool"),
            own_limit=message.get("max_sessions"),
        )
        answer = self.coordinator.reserve(worker.index, claim)
        if not isinstance(answer, Granted):
            return {"refused": answer.reason}
        for lease in answer.replaced:
            holder = self.workers[lease.worker].channel
            if holder is not None:
                holder.tell({"op": "replace", "address": str(lease.address)})
        return {"address": str(answer.lease.address), "lease": answer.lease.number}

    def _others(self, worker: Worker) -> list[Channel]:
        return [
            w.channel
            for w in self.workers
            if w is not worker and w.channel is not None and not w.channel.closed
        ]

    # -- SIGHUP ----------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the settings again and hand them to every worker, which applies them as a single server
        does on SIGHUP (docs/server.md, "Reloading"); systemd hears RELOADING=1 and READY=1 around it,
        as from a single server (a draining supervisor has told it STOPPING=1, and only reloads)."""
        if self.draining:
            self._reload()
            return
        with self.notifier.reloading(self.listening):
            self._reload()

    def _reload(self) -> None:
        try:
            settings = self.reread() if self.reread is not None else self.settings
        except ConfigError as exc:
            log.error("reload: %s; keeping the running configuration", exc)
            return
        # The coordinator's limits follow; what needs a restart stays as it runs, in the workers too.
        self.settings = keep_settings(settings, self.started, RESTART_SETTINGS)
        self.coordinator.admission.limits = limits(self.settings)
        encoded = pack(settings)
        for worker in self.workers:
            if worker.channel is not None and not worker.channel.closed:
                worker.channel.tell({"op": "reload", "settings": encoded})

    async def snapshots(self) -> list[ServerStats]:
        """Every running worker's stats snapshot, for the metrics (each labelled with its worker)."""
        answers = await asyncio.gather(
            *(self._ask(w, {"op": "snapshot"}) for w in self._running()), return_exceptions=True
        )
        return [unpack(a["stats"]) for a in answers if isinstance(a, dict) and "stats" in a]

    # -- drain -----------------------------------------------------------------------------------------

    async def drain(self, by: str) -> dict[str, Any]:
        """Drain every worker (docs/scaling.md, "Drain and health"): the listening sockets close once the
        last worker has closed its copy, each worker exits when its calls have ended, and the supervisor
        when the last worker has. Dead workers are not started again meanwhile."""
        first = not self.draining
        if first:
            self.draining = True
            for sock in self.sockets:
                sock.close()
            # As a single server's drain does (server/drain.py): systemd's stop timeout, which STOPPING=1
            # starts, must not end the drain before the workers' own deadline does.
            self.notifier.stopping("draining", self.settings.limits.drain_timeout + SHUTDOWN_GRACE)
        merged = merge_answers(await self._fan_out({"command": "drain"}, by))
        if merged.get("ok"):
            merged["started"] = first
        # No worker left to end it (all of them dead, their restarts now called off).
        self._end_drain_if_drained()
        return merged

    def _end_drain_if_drained(self) -> None:
        """While draining: stop once every worker's process has ended."""
        if all(w.process is None or w.process.returncode is not None for w in self.workers):
            log.info("drained: every worker has ended")
            self._stop.set()

    # -- the control socket ----------------------------------------------------------------------------

    async def _open_control(self) -> None:
        path = self.settings.control_socket
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        if path.is_socket():
            path.unlink()
        self._control = await asyncio.start_unix_server(self._serve_control, path=str(path))
        os.chmod(path, 0o660)

    async def _close_control(self) -> None:
        if self._control is not None:
            self._control.close()
            await self._control.wait_closed()
            self.settings.control_socket.unlink(missing_ok=True)

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
        """The control protocol (:mod:`pysstp.server.control`) for all workers: the request goes to each,
        and their answers are merged (sessions carry their ``worker``, counts are added up)."""
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, TypeError, KeyError):
            return {"ok": False, "error": "request must be a JSON object with a 'command'"}
        if command == "drain":
            return await self.drain(who)
        answer = merge_answers(await self._fan_out(request, who))
        if answer.get("ok") and "dae" in answer:  # the listener is the supervisor's
            answer["dae"] = self._dae.state() if self._dae is not None else None
        return answer

    async def _fan_out(self, request: dict[str, Any], who: str) -> list[dict[str, Any]]:
        """Every running worker's answer to a control request (a worker that died meanwhile has nothing
        to show or kick, and is left out)."""
        running = self._running()
        answers = await asyncio.gather(
            *(self._ask_worker(w, request, who) for w in running), return_exceptions=True
        )
        replies: list[dict[str, Any]] = []
        for worker, answer in zip(running, answers, strict=True):
            if isinstance(answer, BaseException):
                continue
            if isinstance(answer.get("sessions"), list):
                for row in answer["sessions"]:
                    row["worker"] = worker.index
            replies.append(answer)
        return replies

    async def workers_answer(self, within: float) -> bool:
        """Whether every running worker answers a ping within ``within`` seconds: the watchdog's check,
        so that systemd hears ``WATCHDOG=1`` only while the supervisor's loop and every worker's loop
        run. A worker that has died (or dies meanwhile) is not waited for: the supervisor starts it
        again, and a worker that cannot be started is in the log, not a hang."""
        lines = {w.index: w.channel for w in self._running() if w.channel is not None}
        answers = await asyncio.gather(
            *(asyncio.wait_for(line.ask({"op": "ping"}), within) for line in lines.values()),
            return_exceptions=True,
        )
        silent = [index for index, a in zip(lines, answers, strict=True) if isinstance(a, TimeoutError)]
        if silent:
            log.warning(
                "worker(s) %s did not answer within %g s: no WATCHDOG=1 to systemd this time",
                ", ".join(map(str, silent)),
                within,
            )
        return not silent

    def _askers(self) -> list[Ask]:
        """A way to ask each running worker (Dynamic Authorization acts on every worker's sessions)."""
        return [w.channel.ask for w in self._running() if w.channel is not None]

    def _running(self) -> list[Worker]:
        """The workers that have started and are still there."""
        return [
            w
            for w in self.workers
            if w.channel is not None and not w.channel.closed and w.ready is not None and w.ready.done()
        ]

    async def _ask_worker(self, worker: Worker, request: dict[str, Any], who: str) -> dict[str, Any]:
        message = {"op": "control", "request": request, "who": who}
        return await self._ask(worker, message, answer_timeout(request))

    async def _ask(self, worker: Worker, message: Message, timeout: float | None = None) -> Message:
        """``worker``'s answer to ``message``, or :class:`TimeoutError` after ``timeout`` seconds
        (:data:`ANSWER_TIMEOUT` unless given)."""
        if timeout is None:
            timeout = ANSWER_TIMEOUT
        assert worker.channel is not None
        try:
            return await asyncio.wait_for(worker.channel.ask(message), timeout)
        except TimeoutError:
            log.warning(
                "worker %d did not answer within %.0f s; left out of this answer",
                worker.index,
                timeout,
            )
            raise


def answer_timeout(request: dict[str, Any]) -> float:
    """Seconds a worker has to answer the control ``request``: a status lists every session, which takes
    seconds with many of them, so it has :data:`~pysstp.server.control.STATUS_TIMEOUT`; every other
    request (and the pings the watchdog relies on) has the short :data:`ANSWER_TIMEOUT`."""
    return STATUS_TIMEOUT if request.get("command") == "status" else ANSWER_TIMEOUT


def merge_answers(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One control answer from the workers' answers: the first error if any, else their sessions joined
    (ordered by start) and their counts added up; anything else (backend, RADIUS servers) as the first
    worker said it, since every worker has the same."""
    if not answers:
        return {"ok": False, "error": "no worker is running"}
    failed = next((a for a in answers if not a.get("ok")), None)
    if failed is not None:
        return failed
    merged: dict[str, Any] = {}
    for answer in answers:
        merged = _merged(merged, answer)
    if isinstance(merged.get("sessions"), list):
        merged["sessions"].sort(key=lambda row: row.get("started", 0))
    return merged


def _merged(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """``mine`` with ``theirs`` added: sessions joined, counts (also nested, as the server's counters by
    reason) added up, anything else kept as it was first seen."""
    merged = dict(mine)
    for key, value in theirs.items():
        have = merged.get(key)
        if key not in merged:
            merged[key] = value
        elif key == "sessions" and isinstance(value, list) and isinstance(have, list):
            merged[key] = have + value
        elif isinstance(value, dict) and isinstance(have, dict):
            merged[key] = _merged(have, value)
        elif (
            isinstance(value, int)
            and isinstance(have, int)
            and not isinstance(value, bool)
            and key not in _IDENTITY
        ):
            merged[key] = have + value
    return merged


_IDENTITY = frozenset(("worker", "pid"))
"""Numbers in an answer that name a process rather than count something (the first worker's stay)."""
