"""The server on this host: set the system up (TUN, addresses, routes, sysctls, nftables), serve until
SIGTERM/SIGINT, reload on SIGHUP, and undo every change on the way out."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

from pysstp.aaa.backend import AuthBackend
from pysstp.aaa.dae import DaeServer
from pysstp.aaa.radius import RadiusClient
from pysstp.aaa.userdb import UserDatabase
from pysstp.link import ip_mtu
from pysstp.net.changes import ChangeJournal, NetworkChanges, undo_journal
from pysstp.net.iproute import add_route, delete_route, make_route, set_link
from pysstp.net.tun import TunDevice
from pysstp.ppp.ipv6cp import link_local_address
from pysstp.runtime import loop_name
from pysstp.server.accounting import SessionAccounting
from pysstp.server.addresses import AddressAuthority
from pysstp.server.app import SstpServerApp
from pysstp.server.backoff import Backoff
from pysstp.server.build import (
    auth_backend,
    limits,
    link_config,
    load_tls,
    named_pools,
    radius_accounting,
    radius_client,
    tune_backoff,
    user_database,
)
from pysstp.server.check import check_fixed_addresses, check_host, listen_error
from pysstp.server.config import ServerSettings
from pysstp.server.control import ControlServer
from pysstp.server.dae import ServerSessions, start_dae
from pysstp.server.drain import Drain
from pysstp.server.ipv6 import SERVER_INTERFACE_ID, interface_address
from pysstp.server.listener import peer_text
from pysstp.server.metrics import MetricsServer, Snapshots, start_metrics
from pysstp.server.notify import Notifier
from pysstp.server.pool import AddressPool
from pysstp.server.reload import Reloader
from pysstp.server.signals import Signals
from pysstp.server.statefile import state_file
from pysstp.server.stats import ServerStats
from pysstp.server.supervisor import supervise, worker_count
from pysstp.sstp.constants import HashProtocol

log = logging.getLogger("pysstp.server")

USERS_RELOAD_INTERVAL = 2.0
"""Seconds between checks of the user database file for edits made by `pysstp user`."""


async def serve(settings: ServerSettings, reread: Callable[[], ServerSettings] | None = None) -> int:
    """Everything between start-up checks and exit; every system change is undone on the way out.
    ``reread`` reads the settings again (server.toml and the same flags) for SIGHUP. With several
    workers, this process is their supervisor (:mod:`pysstp.server.supervisor`)."""
    if worker_count(settings) > 1:
        return await supervise(settings, reread)
    with Signals() as signals:
        context, certificate_hashes = load_tls(settings)
        users = user_database(settings)
        pool = AddressPool(settings.pool.network, settings.pool.server_address)
        check_fixed_addresses(users, pool)
        journal = ChangeJournal.open(state_file(settings.state_dir, settings.tun_name))
        try:
            undone = undo_journal(journal)
            if undone:
                log.warning("undid what a server on %s left behind: %s", settings.tun_name, ", ".join(undone))
            return await serve_with(
                settings, reread, signals, context, certificate_hashes, users, pool, NetworkChanges(journal)
            )
        finally:
            journal.close(remove=not journal.read())


async def serve_with(
    settings: ServerSettings,
    reread: Callable[[], ServerSettings] | None,
    signals: Signals,
    context: ssl.SSLContext | None,
    certificate_hashes: Mapping[HashProtocol, bytes],
    users: UserDatabase,
    pool: AddressPool,
    changes: NetworkChanges,
) -> int:
    """Set the system up through ``changes``, serve until a signal or the end of a drain, undo it all."""
    notifier = Notifier.from_environment()
    app: SstpServerApp | None = None
    drain: Drain | None = None
    control: ControlServer | None = None
    dae: DaeServer | None = None
    metrics: MetricsServer | None = None
    radius = radius_client(settings)
    backend = auth_backend(settings, users, radius)
    accounting = radius_accounting(settings, radius)
    try:
        check_host(settings)
        # Sized for the largest MRU a session may get; sessions below it get routes with their own MTU.
        tun_mtu = ip_mtu(min(settings.mru, settings.max_peer_mru))
        tun = changes.open_tun(settings.tun_name, mtu=tun_mtu)
        pool_settings = settings.pool
        own = IPv4Interface(f"{pool_settings.server_address}/{pool_settings.network.prefixlen}")
        if pool_settings.server_address in pool_settings.network:
            changes.add_address(tun.name, own)
        else:
            # Point to point with the pool as the peer network: the kernel then routes the pool, not the
            # server address's own network, into the TUN.
            changes.add_address(tun.name, own, peer=pool_settings.network.network_address)
        if settings.ipv6.enabled:
            setup_ipv6(changes, tun.name, settings.ipv6.prefix)
        set_link(tun.name, up=True)
        # Routes need the link up.
        for named in settings.pools:
            changes.add_route(named.network, ifname=tun.name)
        changes.set_sysctl("net.ipv4.ip_forward", 1)
        if settings.forwarding.mode == "nat" or settings.forwarding.mss_clamp:
            changes.install_nat(
                tun.name,
                source=settings.pool.network if settings.forwarding.mode == "nat" else None,
                egress=settings.forwarding.egress,
                mss="route" if settings.forwarding.mss_clamp else None,
            )
        app = server_app(
            settings,
            context=context,
            certificate_hashes=certificate_hashes,
            backend=backend,
            pool=pool,
            tun=tun,
            tun_mtu=tun_mtu,
            backoff=tune_backoff(Backoff(), settings),
            kernel_routes=TunRoutes(tun.name),
            accounting=accounting,
            radius=radius,
        )
        try:
            bound = await app.listen(settings.listen, settings.port)
        except OSError as exc:
            raise listen_error(settings, exc) from None
        dae = await start_dae(ServerSessions(app), settings.dae)
        metrics = await start_metrics(settings.metrics.listen, snapshots(app), lambda: app.draining)
        reloader = Reloader(app, users, pool, settings, reread)
        drain = Drain(app, lambda: reloader.settings.limits.drain_timeout, signals.stop.set, notifier)
        control = ControlServer(app, settings.control_socket, dae=dae, radius=radius, drain=drain.start)
        await control.start()
        if accounting is not None:
            await accounting.accounting.start()
        listening = f"listening on {', '.join(map(peer_text, bound))}"
        log.info(
            "%s; tunnel %s %s/%d; %s backend, %d users; event loop %s",
            listening,
            tun.name,
            settings.pool.server_address,
            settings.pool.network.prefixlen,
            app.backend.name,
            len(users),
            loop_name(asyncio.get_running_loop()),
        )
        notifier.ready(listening)
        notifier.start_watchdog()
        signals.serving(
            reload=lambda: reload_and_notify(reloader, notifier, listening),
            drain=lambda: drain.start("SIGUSR2"),
        )
        await wait_for_changes(app, reloader, signals.stop, notifier)
        return 0
    finally:
        # From here on SIGTERM/SIGINT/SIGHUP/SIGUSR2 are only logged (see Signals): the undo below runs
        # to its end.
        signals.stop.set()
        if drain is not None:
            drain.cancel()
        if metrics is not None:
            await metrics.stop()
        if dae is not None:
            dae.close()
        if app is not None:
            await app.shutdown()
        if control is not None:
            await control.stop()
        await stop_radius(accounting, radius)
        changes.undo()
        notifier.close()


async def stop_radius(accounting: SessionAccounting | None, radius: RadiusClient | None) -> None:
    """Stop the sessions' accounting, then the RADIUS client it sends its last records through."""
    if accounting is not None:
        await accounting.accounting.stop()
    if radius is not None:
        await radius.close()


def server_app(
    settings: ServerSettings,
    *,
    context: ssl.SSLContext | None,
    certificate_hashes: Mapping[HashProtocol, bytes],
    backend: AuthBackend,
    pool: AddressPool,
    tun: TunDevice,
    tun_mtu: int,
    backoff: Backoff,
    kernel_routes: TunRoutes,
    accounting: SessionAccounting | None,
    radius: RadiusClient | None,
    addresses: AddressAuthority | None = None,
) -> SstpServerApp:
    """The app as the settings make it, on ``tun``: one server's, or one worker's
    (:mod:`pysstp.server.worker`)."""
    return SstpServerApp(
        ssl_context=context,
        link_config=link_config(settings, certificate_hashes),
        backend=backend,
        pool=pool,
        pools=named_pools(settings),
        tun=tun,
        dns=settings.pool.dns,
        server_address=settings.pool.server_address,
        limits=limits(settings),
        idle_timeout=settings.limits.idle_timeout,
        backoff=backoff,
        kernel_routes=kernel_routes,
        ipv6_prefix=settings.ipv6.prefix,
        tun_mtu=tun_mtu,
        require_client_certificate=settings.tls.verify_client_certificate == "require",
        accounting=accounting,
        proxy_sources=settings.proxy_sources if settings.proxy_protocol else None,
        radius=radius,
        addresses=addresses,
        push=settings.push,
    )


async def wait_for_changes(
    app: SstpServerApp, reloader: Reloader, stop: asyncio.Event, notifier: Notifier
) -> None:
    """Run until ``stop`` is set (SIGTERM/SIGINT or the end of a drain, see :class:`Signals`); edits to
    the user database apply live."""
    users = reloader.users
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), USERS_RELOAD_INTERVAL)
        except TimeoutError:
            if users.reload_if_changed():
                log.info("user database changed on disk: %d users", len(users))
                check_fixed_addresses(users, reloader.pool)
    log.info("shutting down: disconnecting %d session(s)", len(app.connections))
    notifier.stopping("shutting down")


def reload_and_notify(reloader: Reloader, notifier: Notifier, status: str) -> None:
    """SIGHUP: reload between RELOADING=1 and READY=1 to systemd; a draining server (which has told
    systemd it is stopping) only reloads."""
    if reloader.app.draining:
        reloader.reload()
        return
    with notifier.reloading(status):
        reloader.reload()


def snapshots(app: SstpServerApp) -> Snapshots:
    """This process's snapshot, for the metrics (which need the counts, not the list of sessions)."""

    async def take() -> list[ServerStats]:
        return [app.snapshot(sessions=False)]

    return take


def setup_ipv6(
    changes: NetworkChanges, ifname: str, prefix: IPv6Network | None, *, on_link: bool = True
) -> None:
    """IPv6 on the TUN: the server's link-local address, ``<prefix>::1`` (whose /64 route sends the
    clients' addresses into the TUN; without ``on_link`` a /128, and each session's address is routed
    here on its own: a worker's :meth:`TunRoutes.hold`), and forwarding between the tunnel and the other
    interfaces."""
    # New devices start with IPv6 off where net.ipv6.conf.default.disable_ipv6=1 (hardened hosts, some
    # containers); the addresses below cannot be added then.
    changes.set_sysctl(f"net/ipv6/conf/{ifname}/disable_ipv6", 0)
    changes.add_address(ifname, IPv6Interface(f"{link_local_address(SERVER_INTERFACE_ID)}/64"))
    if prefix is not None:
        length = prefix.prefixlen if on_link else prefix.max_prefixlen
        changes.add_address(
            ifname, IPv6Interface(f"{interface_address(prefix, SERVER_INTERFACE_ID)}/{length}")
        )
    changes.set_sysctl("net.ipv6.conf.all.forwarding", 1)


class TunRoutes:
    """Kernel routes into the server's TUN for networks behind clients (site-to-site) and for sessions
    with an MTU below the TUN's."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname

    def add(self, network: IPv4Network | IPv6Network, mtu: int | None = None) -> None:
        """Route ``network`` into the TUN, with packets of at most ``mtu`` bytes if given."""
        add_route(make_route(network, ifname=self.ifname, mtu=mtu))

    def remove(self, network: IPv4Network | IPv6Network) -> None:
        """Remove that route again (it is gone anyway once the TUN closes)."""
        delete_route(make_route(network, ifname=self.ifname), missing_ok=True)

    def hold(self, address: IPv4Address | IPv6Address) -> None:
        """Nothing to do: the TUN's own routes (the pool's, the prefix's /64) cover a session's address."""

    def let_go(self, address: IPv4Address | IPv6Address) -> None:
        """Nothing to do (:meth:`hold`)."""
