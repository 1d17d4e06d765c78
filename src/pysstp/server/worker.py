"""One worker process of ``workers = N`` (docs/scaling.md, "Workers"): ``python -m pysstp.server.worker FD``.

The supervisor starts it with one end of a socketpair (FD) and the listening sockets, and sends the
settings over that line. The worker then runs the normal server on a TUN of its own,
``<tun_name>-<index>``, holding the server's tunnel address as a /32. What must be the same on every
worker goes through the supervisor: each session's address comes from the coordinator (and its session
limit is counted there), and every failed or successful login is told to the other workers, whose
back-off then counts it too. Each address a session holds is routed into this worker's TUN while it is
held, so the kernel delivers the session's packets here and forwards between the workers' TUNs.

SIGTERM (from the supervisor) ends the worker as SIGTERM ends a single server; so does the line to the
supervisor closing, which the kernel does however the supervisor ends (SIGKILL, a crash): a worker
never outlives its supervisor with its TUN, routes and sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import sys
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any

from pysstp.aaa.backend import Authorization
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.commands.server import raise_file_limit, return_large_buffers_to_the_system
from pysstp.errors import PysstpError
from pysstp.link import ip_mtu
from pysstp.logsetup import setup_logging
from pysstp.net.changes import ChangeJournal, NetworkChanges, undo_journal
from pysstp.net.iproute import add_route, delete_route, make_route, replace_route, set_link
from pysstp.runtime import freeze_start_up_objects, run_event_loop
from pysstp.server.addresses import AddressAuthority, Pool, Reservation
from pysstp.server.app import SstpServerApp
from pysstp.server.backoff import Backoff, Refusal
from pysstp.server.build import (
    auth_backend,
    load_tls,
    named_pools,
    radius_accounting,
    radius_client,
    tune_backoff,
    user_database,
)
from pysstp.server.config import ServerSettings
from pysstp.server.control import ControlServer
from pysstp.server.dae import ServerSessions, act_on_request
from pysstp.server.drain import Drain
from pysstp.server.notify import Notifier
from pysstp.server.pool import AddressPool
from pysstp.server.reload import Reloader
from pysstp.server.service import (
    TunRoutes,
    reload_and_notify,
    server_app,
    setup_ipv6,
    stop_radius,
    wait_for_changes,
)
from pysstp.server.session import CALL_NUMBERS
from pysstp.server.signals import Signals
from pysstp.server.statefile import state_file
from pysstp.server.supervisor import decode_settings, worker_tun_name
from pysstp.server.workerchannel import Channel, ChannelClosed, Message, pack

log = logging.getLogger("pysstp.server")


@dataclasses.dataclass
class SharedBackoff(Backoff):
    """The login back-off of one worker, kept the same as every other worker's: each failure and success
    counted here is told to the others (through the supervisor), and theirs are counted here
    (:meth:`replay`). So a source refused after failing on one worker is refused by all, and each checks
    that at accept without asking anybody."""

    channel: Channel | None = None

    def failed(self, source: str, user: str | None) -> Refusal | None:
        """Count a failed login here and on every other worker."""
        if self.channel is not None:
            self.channel.tell({"op": "login", "failed": True, "source": source, "user": user})
        return super().failed(source, user)

    def succeeded(self, source: str, user: str | None) -> None:
        """Clear the source and the user here and on every other worker."""
        if self.channel is not None:
            self.channel.tell({"op": "login", "failed": False, "source": source, "user": user})
        super().succeeded(source, user)

    def replay(self, message: Message) -> None:
        """Count a login another worker decided."""
        if message["failed"]:
            super().failed(message["source"], message["user"])
        else:
            super().succeeded(message["source"], message["user"])


class WorkerRoutes(TunRoutes):
    """The routes into this worker's TUN: each session address it holds (IPv4, and the global IPv6
    address from the server's prefix) as a host route (so the kernel sends that address here), and what
    :class:`TunRoutes` adds. A session's MTU route is that same host route with an MTU, so it replaces
    it, and its removal puts the plain host route back."""

    def __init__(self, ifname: str) -> None:
        super().__init__(ifname)
        self.held: set[IPv4Network | IPv6Network] = set()

    def hold(self, address: IPv4Address | IPv6Address) -> None:
        """Route ``address`` here while a session holds it (refused by the kernel when another worker's
        session holds it: the route exists into that worker's TUN)."""
        network = ip_network(address)
        add_route(make_route(network, ifname=self.ifname))
        self.held.add(network)

    def let_go(self, address: IPv4Address | IPv6Address) -> None:
        """The session is gone: so is its address's route."""
        network = ip_network(address)
        self.held.discard(network)
        delete_route(make_route(network, ifname=self.ifname), missing_ok=True)

    def add(self, network: IPv4Network | IPv6Network, mtu: int | None = None) -> None:
        """Route ``network`` here (with ``mtu``): a held address's route is changed, not added twice."""
        if network in self.held:
            replace_route(make_route(network, ifname=self.ifname, mtu=mtu))
        else:
            super().add(network, mtu)

    def remove(self, network: IPv4Network | IPv6Network) -> None:
        """Remove that route; for a held address, keep it without the MTU."""
        if network in self.held:
            replace_route(make_route(network, ifname=self.ifname))
        else:
            super().remove(network)


class CoordinatedAuthority(AddressAuthority):
    """The address authority of one worker: addresses come from the coordinator in the supervisor, with
    the user's session limit applied over all workers, and are routed into this worker's TUN."""

    def __init__(
        self,
        pool: Pool,
        pools: Mapping[str, Pool],
        *,
        server_address: IPv4Address,
        dns: tuple[IPv4Address, ...] = (),
        ipv6: bool = False,
        ipv6_prefix: IPv6Network | None = None,
        channel: Channel,
        routes: WorkerRoutes,
    ) -> None:
        super().__init__(
            pool, pools, server_address=server_address, dns=dns, ipv6=ipv6, ipv6_prefix=ipv6_prefix
        )
        self.channel = channel
        self.routes = routes
        self._leases: dict[IPv4Address, list[int]] = {}
        """Lease numbers by address, oldest first: a newer session of the same user may get the address
        of an older one it replaces (on_limit = replace) before the older one has let go of it."""

    async def reserve(
        self,
        user: str,
        authorization: Authorization,
        *,
        prefix_taken: Callable[[IPv6Network], bool],
        log: logging.LoggerAdapter[logging.Logger],
        peer: str,
    ) -> Reservation | str:
        """Ask the coordinator; route what it gives into this worker's TUN."""
        asking = asyncio.ensure_future(
            self.channel.ask(
                {
                    "op": "reserve",
                    "user": user,
                    "fixed": str(authorization.address) if authorization.address else None,
                    "pool": authorization.pool,
                    "max_sessions": authorization.max_sessions,
                }
            )
        )
        try:
            answer = await asyncio.shield(asking)
        except asyncio.CancelledError:
            # The call ended while the coordinator was choosing: whatever it leased then is nobody's.
            asking.add_done_callback(self._release_late)
            raise
        if "refused" in answer:
            return str(answer["refused"])
        address, number = IPv4Address(answer["address"]), int(answer["lease"])
        numbers = self._leases.setdefault(address, [])
        numbers.append(number)
        if len(numbers) == 1:
            try:
                self.routes.hold(address)
            except PysstpError as exc:
                self.release(address, self.pool)
                return f"cannot route {address} to this worker: {exc}"
        return self._reservation(user, authorization, address, self.pool, prefix_taken, log, peer)

    def _release_late(self, asking: asyncio.Future[Message]) -> None:
        """Give back a lease that arrived after its call had gone."""
        if asking.cancelled() or asking.exception() is not None:
            return
        answer = asking.result()
        if "lease" in answer:
            self.channel.tell({"op": "release", "lease": int(answer["lease"])})

    def release(self, address: IPv4Address, pool: Any) -> None:
        """Give the address back to the coordinator and stop routing it here."""
        numbers = self._leases.get(address)
        if not numbers:
            return
        number = numbers.pop(0)
        if not numbers:
            del self._leases[address]
            with contextlib.suppress(PysstpError):
                self.routes.let_go(address)
        self.channel.tell({"op": "release", "lease": number})


class WorkerProcess:
    """The worker's side of the line: the supervisor's messages, and what this worker tells it."""

    def __init__(self, sock: socket.socket) -> None:
        self.channel = Channel(sock, self.handle)
        self.start: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.settings: ServerSettings | None = None
        self.app: SstpServerApp | None = None
        self.control: ControlServer | None = None
        self.reloader: Reloader | None = None
        self.backoff: SharedBackoff | None = None
        self.index = 0
        self.stop = asyncio.Event()
        """Set by SIGTERM/SIGINT, by the end of a drain, and by the supervisor going away."""

    async def handle(self, message: Message) -> Message | None:
        """The supervisor's start, control requests, Dynamic Authorization, replaced sessions, logins and
        reloads; anything else (the watchdog's ping) is answered with ``{}``, from this loop."""
        op = message.get("op")
        if op == "start":
            if not self.start.done():
                self.start.set_result(message)
        elif op == "control":
            if self.control is None:
                return {"ok": False, "error": "this worker is still starting"}
            return await self.control.answer(json.dumps(message["request"]).encode(), message["who"])
        elif op == "snapshot":
            if self.app is None or self.control is None:
                return {}
            return {"stats": pack(self.app.snapshot(self.index, sessions=False))}
        elif op == "dae":
            if self.app is None:
                return {"sessions": []}
            return await act_on_request(ServerSessions(self.app), message)
        elif op == "replace":
            self.replace(IPv4Address(message["address"]))
        elif op == "login":
            if self.backoff is not None:
                self.backoff.replay(message)
        elif op == "reload":
            self.settings = worker_settings(decode_settings(message["settings"]), self.index)
            if self.reloader is not None:
                self.reloader.reload()
        return None

    def replace(self, address: IPv4Address) -> None:
        """End the session holding ``address``: a newer one of its user took its place on another
        worker, or here (on_limit = replace)."""
        if self.app is None:
            return
        for connection in list(self.app.connections):
            if connection.info.address == address:
                connection.log.info(
                    "%s: session %s of user %r ends for a newer one (on_limit = replace)",
                    connection.peer,
                    connection.info.session_id,
                    connection.info.user,
                    extra={"event": "replaced"},
                )
                connection.end("replaced by a newer session of the same user", TerminateCause.ADMIN_RESET)
                self.app.forget(connection)

    def supervisor_gone(self, _task: object) -> None:
        """The line to the supervisor has closed: stop as on SIGTERM (during start-up: once started, as
        :class:`Signals` does), telling the sessions goodbye and undoing this worker's changes; before
        the start message, there is nothing to start."""
        if not self.start.done():
            self.start.set_exception(ChannelClosed("the supervisor has gone away before the start"))
        elif not self.stop.is_set():
            log.warning("the supervisor has gone away: shutting down")
            self.stop.set()

    def reread(self) -> ServerSettings:
        """What a reload applies: the settings the supervisor read last."""
        assert self.settings is not None
        return self.settings


def worker_settings(settings: ServerSettings, index: int) -> ServerSettings:
    """A worker's own view of the settings: its TUN, and its own accounting spool file."""
    radius = settings.radius
    if radius.accounting_spool is not None:
        spool = radius.accounting_spool.with_name(f"{radius.accounting_spool.name}.{index}")
        radius = dataclasses.replace(radius, accounting_spool=spool)
    return dataclasses.replace(settings, tun_name=worker_tun_name(settings.tun_name, index), radius=radius)


async def work(sock: socket.socket) -> int:
    """Run one worker: wait for the supervisor's settings, serve until SIGTERM or until the supervisor
    is gone, undo what it changed."""
    worker = WorkerProcess(sock)
    await worker.channel.open()
    serving = asyncio.get_running_loop().create_task(worker.channel.serve())
    # The supervisor gone (the line closed) while serving: stop as on SIGTERM.
    serving.add_done_callback(worker.supervisor_gone)
    try:
        start = await worker.start
    except ChannelClosed:
        return 1
    index = worker.index = int(start["index"])
    CALL_NUMBERS.worker = index
    settings = worker_settings(decode_settings(start["settings"]), index)
    worker.settings = settings
    setup_logging(settings.log.level, settings.log.format)
    for handler in logging.getLogger().handlers:
        handler.addFilter(WorkerLogName(index))
    listeners = [socket.socket(fileno=fd) for fd in start["listeners"]]
    try:
        # As for a single server (service.serve): no signal ends the process between a change and its
        # undo.
        with Signals(worker.stop) as signals:
            return await serve_worker(worker, settings, listeners, signals)
    except PysstpError as exc:
        # The supervisor says it, once: at start as its own error, later in its restart's log line.
        worker.channel.tell({"op": "failed", "error": str(exc)})
        return 1
    finally:
        for sock_ in listeners:
            sock_.close()


class WorkerLogName(logging.Filter):
    """Names the worker in each log line (``pysstp.server[1]``)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.suffix = f"[{index}]"

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the suffix to the logger's name once."""
        if not record.name.endswith(self.suffix):
            record.name += self.suffix
        return True


async def serve_worker(
    worker: WorkerProcess, settings: ServerSettings, listeners: list[socket.socket], signals: Signals
) -> int:
    """The server on this worker's TUN with the supervisor's sockets; every change undone on the way
    out."""
    context, certificate_hashes = load_tls(settings)
    users = user_database(settings)
    pool = AddressPool(settings.pool.network, settings.pool.server_address)
    journal = ChangeJournal.open(state_file(settings.state_dir, settings.tun_name))
    undo_journal(journal)  # the supervisor undoes a dead worker's journal; this is for a lost race
    changes = NetworkChanges(journal)
    app: SstpServerApp | None = None
    radius = radius_client(settings)
    accounting = radius_accounting(settings, radius)
    drain: Drain | None = None
    try:
        tun_mtu = ip_mtu(min(settings.mru, settings.max_peer_mru))
        tun = changes.open_tun(settings.tun_name, mtu=tun_mtu)
        # The server's address on every worker's TUN: the host's own, whichever TUN a packet came in by.
        changes.add_address(tun.name, IPv4Interface(f"{settings.pool.server_address}/32"))
        if settings.ipv6.enabled:
            # No /64 into this TUN: each session's address is routed to the worker that holds it, the
            # rest of the prefix is the supervisor's unreachable route.
            setup_ipv6(changes, tun.name, settings.ipv6.prefix, on_link=False)
        set_link(tun.name, up=True)
        routes = WorkerRoutes(tun.name)
        worker.backoff = SharedBackoff(channel=worker.channel)
        tune_backoff(worker.backoff, settings)
        app = server_app(
            settings,
            context=context,
            certificate_hashes=certificate_hashes,
            backend=auth_backend(settings, users, radius),
            pool=pool,
            tun=tun,
            tun_mtu=tun_mtu,
            backoff=worker.backoff,
            kernel_routes=routes,
            accounting=accounting,
            radius=radius,
            addresses=CoordinatedAuthority(
                pool,
                named_pools(settings),
                server_address=settings.pool.server_address,
                dns=settings.pool.dns,
                ipv6=settings.ipv6.enabled,
                ipv6_prefix=settings.ipv6.prefix,
                channel=worker.channel,
                routes=routes,
            ),
        )
        worker.app = app
        await app.listen((), settings.port)
        for listener in listeners:
            app.listener.adopt(listener)
        stop = worker.stop
        notifier = Notifier()  # the supervisor speaks to systemd for all workers
        worker.reloader = Reloader(app, users, pool, settings, worker.reread)
        reloader = worker.reloader
        drain = Drain(app, lambda: reloader.settings.limits.drain_timeout, stop.set, notifier)
        worker.control = ControlServer(app, settings.control_socket, radius=radius, drain=drain.start)
        if accounting is not None:
            await accounting.accounting.start()
        log.info("worker ready on %s", tun.name)
        worker.channel.tell({"op": "ready"})
        signals.serving(
            reload=lambda: reload_and_notify(reloader, notifier, f"worker on {tun.name}"),
            drain=lambda: drain.start("SIGUSR2"),
        )
        await wait_for_changes(app, reloader, stop, notifier)
        return 0
    finally:
        if drain is not None:
            drain.cancel()
        if app is not None:
            await app.shutdown()
        await stop_radius(accounting, radius)
        changes.undo()
        journal.close(remove=not journal.read())


def main(argv: list[str]) -> int:
    """``python -m pysstp.server.worker FD``: started by the supervisor, never by hand."""
    if len(argv) != 2 or not argv[1].isdigit():
        print("pysstp: the worker is started by `pysstp server` with workers > 1", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(argv[1]))
    return_large_buffers_to_the_system()
    raise_file_limit()
    freeze_start_up_objects()
    return run_event_loop(work(sock))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
