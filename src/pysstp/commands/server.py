"""``pysstp server``: run the SSTP server on TLS and one TUN device."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import datetime
import email.utils
import errno
import logging
import os
import resource
import signal
import socket
import ssl
import struct
import sys
from collections.abc import Callable, Iterable
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network, ip_address, ip_network
from operator import attrgetter
from pathlib import Path

from pysstp.aaa.backend import AuthBackend
from pysstp.aaa.dae import DaeServer
from pysstp.aaa.local import LocalBackend
from pysstp.aaa.pki import read_certificates, read_crls, read_identity
from pysstp.aaa.radius import (
    NasIdentity,
    RadiusAccounting,
    RadiusBackend,
    RadiusClient,
    RadiusServer,
    read_secret,
)
from pysstp.aaa.userdb import UserDatabase
from pysstp.errors import ConfigError, SystemSetupError
from pysstp.link import ServerConfig, ip_mtu
from pysstp.logsetup import setup_logging
from pysstp.net.caps import CAP_NET_ADMIN, has_capability
from pysstp.net.changes import ChangeJournal, NetworkChanges, undo_journal
from pysstp.net.ifname import check_ifname
from pysstp.net.iproute import (
    add_route,
    delete_route,
    link_exists,
    list_addresses,
    make_route,
    set_link,
)
from pysstp.ppp.auth.eap_tls import EapTlsServerSettings
from pysstp.ppp.ipv6cp import link_local_address
from pysstp.runtime import freeze_start_up_objects
from pysstp.server.accounting import SessionAccounting
from pysstp.server.app import Limits, SstpServerApp
from pysstp.server.backoff import Backoff
from pysstp.server.config import (
    HELP_EPILOG,
    Ipv6Settings,
    ServerSettings,
    add_arguments,
    load,
    settings_from_args,
)
from pysstp.server.control import ControlServer
from pysstp.server.dae import dae_clients, start_dae
from pysstp.server.ipv6 import SERVER_INTERFACE_ID, interface_address
from pysstp.server.listener import peer_text
from pysstp.server.pool import AddressPool
from pysstp.sstp.http import page_response, redirect_response

log = logging.getLogger("pysstp.server")

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the size from which allocations get their own mapping."""
MMAP_THRESHOLD = 128 * 1024

SO_NETNS_COOKIE = 71
"""asm-generic/socket.h: the socket option that reads the cookie of the socket's network namespace."""

USERS_RELOAD_INTERVAL = 2.0
"""Seconds between checks of the user database file for edits made by `pysstp user`."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pysstp server``."""
    parser = subparsers.add_parser(
        "server",
        help="run an SSTP server (Windows, RouterOS, sstpc and pysstp clients can dial it)",
        description="Run the SSTP server: TLS on port 443, PPP in user space, one TUN device for all calls.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    actions = parser.add_argument_group("instead of serving").add_mutually_exclusive_group()
    actions.add_argument(
        "--check",
        action="store_true",
        help="check the settings, files and certificates, say what is wrong or 'configuration OK', exit",
    )
    actions.add_argument(
        "--cleanup",
        action="store_true",
        help="undo what a server on this TUN left on the system when it was killed (from its state file)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the settings, set the system up, serve until SIGTERM/SIGINT, put everything back."""
    if args.cleanup:
        return cleanup(args)
    settings = settings_from_args(args)
    setup_logging(settings.log.level, settings.log.format)
    if args.check:
        return check(settings)
    if not has_capability(CAP_NET_ADMIN):
        raise SystemSetupError(
            "pysstp server needs root or CAP_NET_ADMIN (TUN device, addresses, routes); run it as root "
            "or from the systemd unit in contrib/pysstp-server.service"
        )
    return_large_buffers_to_the_system()
    raise_file_limit()
    freeze_start_up_objects()
    return asyncio.run(serve(settings, reread=lambda: settings_from_args(args)))


def raise_file_limit() -> None:
    """Take the hard limit on open files: each session holds a socket, and the usual soft limit (1024)
    would stop the server short of its default ``max_sessions`` (1000) plus listeners, TUN and logs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)


def return_large_buffers_to_the_system() -> None:
    """Keep buffers of 128 KiB and more in mappings of their own, returned to the system when freed.

    Each TLS handshake in progress holds a 256 KiB buffer (see
    :func:`pysstp.connection.adapt_tls_transport`). glibc would otherwise raise its threshold after
    the first one is freed and serve the next ones from the heap, where a burst of connections leaves
    megabytes resident for good. Setting the threshold explicitly stops that adjustment; reads on
    established calls stay below it (:data:`pysstp.connection.TLS_READ_SIZE`). Other C libraries are
    left as they are.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present only in glibc, whose parameter numbers these are
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def check(settings: ServerSettings) -> int:
    """``--check``: read every file the settings name and check the certificates, changing nothing;
    print one line per problem (exit 1) or "configuration OK"."""
    problems: list[str] = []
    steps: list[Callable[[], object]] = [
        lambda: load_tls(settings),
        lambda: problems.extend(
            fixed_address_problems(
                user_database(settings), AddressPool(settings.pool.network, settings.pool.server_address)
            )
        ),
        lambda: radius_servers(settings),
        lambda: load_eap_tls(settings),
        lambda: not_sstp_response(settings),
        lambda: dae_clients(settings.dae),
    ]
    for step in steps:
        try:
            step()
        except (ConfigError, SystemSetupError) as exc:
            problems.append(str(exc))
    problems += certificate_dates(settings, datetime.datetime.now(datetime.UTC))
    for problem in problems:
        print(f"pysstp: {problem}", file=sys.stderr)
    if not problems:
        print("configuration OK")
    return 1 if problems else 0


def certificate_dates(settings: ServerSettings, now: datetime.datetime) -> list[str]:
    """A line for each certificate the server uses or trusts that is expired or not yet valid, and for
    each CRL past its next update (OpenSSL then refuses every certificate of that CA)."""
    tls, eap = settings.tls, settings.eap_tls
    named: list[tuple[str, Path]] = [("tls.cert", p) for p in (tls.cert,) if p is not None]
    named += [("eap_tls.cert", p) for p in (eap.cert,) if p is not None]
    named += [("tls.client_ca", p) for p in tls.client_ca if tls.verify_client_certificate != "none"]
    named += [("eap_tls.ca", p) for p in eap.ca]
    problems = []
    for key, path in named:
        try:
            certificates = read_certificates(path)
        except ConfigError:
            continue  # already reported by the step that loads it
        for certificate in certificates:
            subject = certificate.subject.rfc4514_string() or "(no subject)"
            after, before = certificate.not_valid_after_utc, certificate.not_valid_before_utc
            if after < now:
                problems.append(f"{key} {path}: the certificate {subject} expired on {after:%Y-%m-%d}")
            elif before > now:
                problems.append(
                    f"{key} {path}: the certificate {subject} is not valid yet ({before:%Y-%m-%d})"
                )
    crls = [("tls.client_crl", p) for p in tls.client_crl if tls.verify_client_certificate != "none"]
    for key, path in crls + [("eap_tls.crl", p) for p in eap.crl]:
        try:
            lists = read_crls(path)
        except ConfigError:
            continue
        for crl in lists:
            if crl.next_update_utc is not None and crl.next_update_utc < now:
                problems.append(
                    f"{key} {path}: the CRL of {crl.issuer.rfc4514_string()} expired on "
                    f"{crl.next_update_utc:%Y-%m-%d}; issue a new one (pysstp pki crl)"
                )
    return problems


def state_file(state_dir: Path, tun_name: str) -> Path:
    """The state file of the server on ``tun_name``: ``<state_dir>/<tun_name>.json``. Sysctls, nftables
    tables and interface names belong to a network namespace, so a server in another namespace than
    PID 1's (``ip netns exec``) writes ``<tun_name>@<namespace id>.json`` instead."""
    try:
        host = os.stat("/proc/1/ns/net").st_ino
    except OSError:  # not ours to read without root; the name stays the same from start to start
        host = None
    if os.stat("/proc/self/ns/net").st_ino == host:
        return state_dir / f"{tun_name}.json"
    return state_dir / f"{tun_name}@{namespace_id()}.json"


def namespace_id() -> int:
    """This network namespace's cookie, which the kernel never gives another namespace while the system
    runs (Linux 5.14 and later); else its inode number, which a namespace made after this one is gone may
    get again (a state file left behind in the old one would then be undone in the new one)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            cookie: int = struct.unpack("Q", probe.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]
        except OSError:
            return os.stat("/proc/self/ns/net").st_ino
    return cookie


def cleanup(args: argparse.Namespace) -> int:
    """``--cleanup``: undo what a killed server on this TUN recorded in its state file."""
    # Only the TUN name and the state directory matter here, so a configuration that would not start
    # (say, its certificate is gone) can still be cleaned up after.
    values = load(args.config) if args.config is not None else {}
    defaults = ServerSettings()
    tun_name: str = args.tun_name or values.get("tun_name", defaults.tun_name)
    check_ifname(tun_name, template=True)
    state_dir = Path(args.state_dir) if args.state_dir else values.get("state_dir", defaults.state_dir)
    path = state_file(state_dir, tun_name)
    if not path.exists():
        print(f"nothing to clean up: no state file {path}")
        return 0
    journal = ChangeJournal.open(path)
    try:
        undone = undo_journal(journal)
    finally:
        left = journal.read()
        journal.close(remove=not left)
    if left:
        raise SystemSetupError(f"could not undo everything; what is left is in {path}")
    print(f"undone: {', '.join(undone)}" if undone else f"nothing to clean up in {path}")
    return 0


async def serve(settings: ServerSettings, reread: Callable[[], ServerSettings] | None = None) -> int:
    """Everything between start-up checks and exit; every system change is undone on the way out.
    ``reread`` reads the settings again (server.toml and the same flags) for SIGHUP."""
    context, certificate_der = load_tls(settings)
    users = user_database(settings)
    pool = AddressPool(settings.pool.network, settings.pool.server_address)
    check_fixed_addresses(users, pool)
    journal = ChangeJournal.open(state_file(settings.state_dir, settings.tun_name))
    try:
        undone = undo_journal(journal)
        if undone:
            log.warning("undid what a server on %s left behind: %s", settings.tun_name, ", ".join(undone))
        return await serve_with(
            settings, reread, context, certificate_der, users, pool, NetworkChanges(journal)
        )
    finally:
        journal.close(remove=not journal.read())


async def serve_with(
    settings: ServerSettings,
    reread: Callable[[], ServerSettings] | None,
    context: ssl.SSLContext,
    certificate_der: bytes,
    users: UserDatabase,
    pool: AddressPool,
    changes: NetworkChanges,
) -> int:
    """Set the system up through ``changes``, serve until a signal, undo it all."""
    app: SstpServerApp | None = None
    control: ControlServer | None = None
    dae: DaeServer | None = None
    radius = RadiusClient(radius_servers(settings)) if settings.radius.servers else None
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
        app = SstpServerApp(
            ssl_context=context,
            link_config=link_config(settings, certificate_der),
            backend=backend,
            pool=pool,
            pools=named_pools(settings),
            tun=tun,
            dns=settings.pool.dns,
            server_address=settings.pool.server_address,
            limits=limits(settings),
            idle_timeout=settings.limits.idle_timeout,
            backoff=tune_backoff(Backoff(), settings),
            kernel_routes=TunRoutes(tun.name),
            ipv6_prefix=settings.ipv6.prefix,
            tun_mtu=tun_mtu,
            require_client_certificate=settings.tls.verify_client_certificate == "require",
            accounting=accounting,
        )
        try:
            bound = await app.listen(settings.listen, settings.port)
        except OSError as exc:
            raise listen_error(settings, exc) from None
        dae = await start_dae(app, settings.dae)
        control = ControlServer(app, settings.control_socket, dae=dae, radius=radius)
        await control.start()
        if accounting is not None:
            await accounting.accounting.start()
        log.info(
            "listening on %s; tunnel %s %s/%d; %s backend, %d users",
            ", ".join(map(peer_text, bound)),
            tun.name,
            settings.pool.server_address,
            settings.pool.network.prefixlen,
            app.backend.name,
            len(users),
        )
        await wait_for_signals(app, Reloader(app, users, pool, settings, reread))
        return 0
    finally:
        if dae is not None:
            dae.close()
        if app is not None:
            await app.shutdown()
        if control is not None:
            await control.stop()
        if accounting is not None:
            await accounting.accounting.stop()
        if radius is not None:
            await radius.close()
        changes.undo()


def link_config(settings: ServerSettings, certificate_der: bytes) -> ServerConfig:
    """What every new call's link is configured with (at start, and again after each reload)."""
    return ServerConfig(
        certificate_der=certificate_der,
        auth_methods=settings.auth_methods,
        hash_protocols=settings.tls.hash_protocols,
        mru=settings.mru,
        max_peer_mru=settings.max_peer_mru,
        ipv6=settings.ipv6.enabled,
        ipv6_interface_id=SERVER_INTERFACE_ID,
        hello_interval=settings.keepalive,
        negotiation_timeout=settings.limits.negotiation_timeout,
        handshake_timeout=settings.limits.handshake_timeout,
        http_date=lambda: email.utils.formatdate(usegmt=True),
        not_sstp_response=not_sstp_response(settings),
        eap_tls=load_eap_tls(settings),
        eap_mode=settings.eap_mode,
    )


def user_database(settings: ServerSettings) -> UserDatabase:
    """The users file; with RADIUS deciding logins it may be missing (it can still fix addresses)."""
    return UserDatabase(settings.users, create=settings.backend == "radius")


def auth_backend(settings: ServerSettings, users: UserDatabase, radius: RadiusClient | None) -> AuthBackend:
    """The backend that decides logins (``backend``); the server puts the login back-off around it."""
    if settings.backend == "radius":
        assert radius is not None  # validate() insists on servers
        return RadiusBackend(radius, nas_identity(settings))
    return LocalBackend(users, users.entry)


def nas_identity(settings: ServerSettings) -> NasIdentity:
    """How the server names itself to RADIUS."""
    return NasIdentity(settings.radius.nas_identifier, settings.radius.nas_address)


def radius_accounting(settings: ServerSettings, radius: RadiusClient | None) -> SessionAccounting | None:
    """RADIUS accounting of the sessions, when there are RADIUS servers and it is not turned off."""
    if radius is None or not settings.radius.accounting:
        return None
    records = RadiusAccounting(radius, nas_identity(settings), spool=settings.radius.accounting_spool)
    return SessionAccounting(records, settings.radius.interim_interval)


def radius_servers(settings: ServerSettings) -> list[RadiusServer]:
    """The ``[radius]`` servers with their secrets read; priority as set, else the order of the list."""
    radius = settings.radius
    servers = []
    for rank, entry in enumerate(radius.servers):
        secret_file = entry.secret_file or radius.secret_file
        assert secret_file is not None  # validate() refuses a server without a secret
        servers.append(
            RadiusServer(
                entry.address,
                read_secret(secret_file),
                port=entry.port,
                accounting_port=entry.accounting_port or entry.port + 1,
                priority=entry.priority if entry.priority is not None else rank,
                timeout=entry.timeout if entry.timeout is not None else radius.timeout,
                retries=entry.retries if entry.retries is not None else radius.retries,
                dead_time=entry.dead_time if entry.dead_time is not None else radius.dead_time,
            )
        )
    return servers


def limits(settings: ServerSettings) -> Limits:
    """The app's admission limits (at start, and again after each reload)."""
    return Limits(
        max_sessions=settings.limits.max_sessions,
        max_sessions_per_user=settings.limits.max_sessions_per_user,
        max_negotiating=settings.limits.max_handshakes,
        connections_per_source_per_minute=settings.limits.connections_per_source_per_minute,
        on_limit=settings.limits.on_limit,
    )


def tune_backoff(backoff: Backoff, settings: ServerSettings) -> Backoff:
    """Set the login back-off from the settings (at start, and again after each reload, which keeps the
    failure counts)."""
    backoff.base = settings.limits.login_delay
    backoff.maximum = settings.limits.max_login_delay
    backoff.source_limit = settings.limits.max_login_failures_per_source
    backoff.refusal = settings.limits.login_refusal
    return backoff


RESTART_SETTINGS = (
    "listen",
    "port",
    "tun_name",
    "pool.network",
    "pool.server_address",
    "pools",
    "ipv6",
    "mru",
    "max_peer_mru",
    "forwarding.mode",
    "forwarding.egress",
    "forwarding.mss_clamp",
    "control_socket",
    "backend",
    "eap_mode",
    "radius.servers",
    "radius.secret_file",
    "radius.timeout",
    "radius.retries",
    "radius.dead_time",
    "radius.nas_identifier",
    "radius.nas_address",
    "radius.accounting",
    "radius.interim_interval",
    "radius.accounting_spool",
    "dae.listen",
    "dae.port",
    "dae.clients",
)
"""Settings (server.toml keys) that only a restart applies: they shape the TUN device, its addresses and
routes, the nftables rules, the sockets (the Dynamic Authorization clients' secrets are read with their
socket), and who decides logins (the backend, its RADIUS servers and
their secrets, and the EAP mode that goes with them). SIGHUP applies every other one, because a reload
builds the TLS context, the link settings, the limits, the login back-off and the logging from the new
settings exactly as start-up does."""


class Reloader:
    """SIGHUP: read server.toml (with the same flags), the users file and the certificates again, check
    all of it, and only then apply it; a problem anywhere keeps everything that runs."""

    def __init__(
        self,
        app: SstpServerApp,
        users: UserDatabase,
        pool: AddressPool,
        settings: ServerSettings,
        reread: Callable[[], ServerSettings] | None,
    ) -> None:
        self.app = app
        self.users = users
        self.pool = pool
        self.started = settings
        """What the restart-only settings are, for as long as the process runs."""
        self.settings = settings
        """What the reloadable settings are now."""
        self.reread = reread

    def reload(self) -> None:
        """Reload, or log one line per problem found and keep the running configuration."""
        try:
            read = self.reread() if self.reread is not None else self.settings
        except ConfigError as exc:
            log.error("reload: %s; keeping the running configuration", exc)
            return
        # New calls must match the TUN and the routes: they keep the restart-only values that run.
        settings = keep_settings(read, self.started, RESTART_SETTINGS)
        problems: list[str] = []
        users = tls = config = None
        try:
            users = user_database(settings)
        except ConfigError as exc:
            problems.append(str(exc))
        try:
            tls = load_tls(settings)
        except (ConfigError, OSError, ssl.SSLError) as exc:
            problems.append(str(exc))
        if tls is not None:
            try:
                config = link_config(settings, tls[1])
            except ConfigError as exc:
                problems.append(str(exc))
        if users is None or tls is None or config is None:
            for problem in problems:
                log.error("reload: %s", problem)
            log.error("reload failed; keeping the running configuration")
            return
        self.users.take_over(users)
        check_fixed_addresses(self.users, self.pool)
        self.app.reconfigure(
            ssl_context=tls[0],
            link_config=config,
            dns=settings.pool.dns,
            limits=limits(settings),
            idle_timeout=settings.limits.idle_timeout,
            require_client_certificate=settings.tls.verify_client_certificate == "require",
        )
        tune_backoff(self.app.backoff, settings)
        if settings.log != self.settings.log:
            setup_logging(settings.log.level, settings.log.format)
        for key in RESTART_SETTINGS:
            if attrgetter(key)(read) != attrgetter(key)(self.started):
                log.warning("reload: %s changed; restart to apply", key)
        changed = [
            key
            for key in setting_keys(settings)
            if attrgetter(key)(settings) != attrgetter(key)(self.settings)
        ]
        self.settings = settings
        log.info(
            "reloaded users (%d), the certificates and the CRLs%s",
            len(self.users),
            f"; changed: {', '.join(changed)}" if changed else "",
        )


def keep_settings(settings: ServerSettings, source: ServerSettings, keys: Iterable[str]) -> ServerSettings:
    """``settings`` with the values of ``keys`` (dotted, ``pool.network``) taken from ``source``."""
    for key in keys:
        section, _, name = key.rpartition(".")
        if section:
            value = dataclasses.replace(getattr(settings, section), **{name: attrgetter(key)(source)})
            settings = dataclasses.replace(settings, **{section: value})
        else:
            settings = dataclasses.replace(settings, **{name: getattr(source, name)})
    return settings


def setting_keys(settings: object, prefix: str = "") -> list[str]:
    """The dotted keys of every setting in ``settings`` (``pool.dns``); ``ipv6`` is one setting."""
    keys: list[str] = []
    for item in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, Ipv6Settings):
            keys += setting_keys(value, f"{prefix}{item.name}.")
        else:
            keys.append(prefix + item.name)
    return keys


async def wait_for_signals(app: SstpServerApp, reloader: Reloader) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads (see :class:`Reloader`); edits to users apply live."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    users = reloader.users
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reloader.reload)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), USERS_RELOAD_INTERVAL)
            except TimeoutError:
                if users.reload_if_changed():
                    log.info("user database changed on disk: %d users", len(users))
                    check_fixed_addresses(users, reloader.pool)
        log.info("shutting down: disconnecting %d session(s)", len(app.connections))
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)


def check_fixed_addresses(users: UserDatabase, pool: AddressPool) -> None:
    """One warning per user whose fixed address the server cannot route into the tunnel; such a user is
    refused at each login (the user file itself stays in force, so nobody else is locked out)."""
    for problem in fixed_address_problems(users, pool):
        log.warning("%s", problem)


def fixed_address_problems(users: UserDatabase, pool: AddressPool) -> list[str]:
    """A line for each user whose fixed address the server cannot route into the tunnel."""
    return [
        f"user {entry.name!r} gets no session: its fixed address {problem}"
        for entry in users.entries()
        if entry.address is not None and (problem := pool.fixed_refusal(entry.address)) is not None
    ]


def named_pools(settings: ServerSettings) -> dict[str, AddressPool]:
    """The ``[pools.NAME]`` pools by name, for RADIUS Framed-Pool."""
    return {named.name: AddressPool(named.network, settings.pool.server_address) for named in settings.pools}


def check_host(settings: ServerSettings) -> None:
    """Refuse, before anything is changed, a pool that overlaps a network this host already has (the
    TUN would take an address the host uses, and the host's routes would compete with the tunnel's) and,
    in NAT mode, an egress interface the host does not have."""
    pool = settings.pool
    for info in list_addresses():
        networks = [info.address.network]
        if info.peer is not None:
            networks.append(ip_network(f"{info.peer}/{info.address.network.prefixlen}"))
        for network in networks:
            if network.version != 4:
                continue
            if network.overlaps(pool.network) or pool.server_address in network:
                raise SystemSetupError(
                    f"pool {pool.network} (server {pool.server_address}) overlaps {network} on "
                    f"{info.ifname}, a network this host already has; choose a pool.network no "
                    "interface uses (see ip addr)"
                )
            for named in settings.pools:
                if network.overlaps(named.network):
                    raise SystemSetupError(
                        f"pools.{named.name} {named.network} overlaps {network} on {info.ifname}, a "
                        "network this host already has; choose a network no interface uses (see ip addr)"
                    )
    egress = settings.forwarding.egress
    if settings.forwarding.mode == "nat" and egress is not None and not link_exists(egress):
        raise SystemSetupError(
            f"forwarding.egress: this host has no interface {egress} (see ip link); "
            "name the one that leads to the clients' destinations"
        )


def listen_error(settings: ServerSettings, exc: OSError) -> SystemSetupError:
    """The one line for a listening socket the kernel refused, with the likely cause."""
    port = settings.port
    if exc.errno == errno.EADDRNOTAVAIL:
        host = {str(a.address.ip) for a in list_addresses()}
        missing = [a for a in settings.listen if a not in host and not ip_address(a).is_unspecified]
        return SystemSetupError(
            f"cannot listen on {', '.join(missing or settings.listen)} port {port}: no interface of this "
            "host has that address (see ip addr); listen on one it has, or on 0.0.0.0 and ::"
        )
    if exc.errno == errno.EACCES and port < 1024:
        return SystemSetupError(
            f"cannot listen on port {port}: ports below 1024 need root or CAP_NET_BIND_SERVICE"
        )
    if exc.errno == errno.EADDRINUSE:
        return SystemSetupError(f"cannot listen on port {port}: it is in use; is another server using it?")
    return SystemSetupError(f"cannot listen on port {port}: {exc.strerror or exc}")


def setup_ipv6(changes: NetworkChanges, ifname: str, prefix: IPv6Network | None) -> None:
    """IPv6 on the TUN: the server's link-local address, ``<prefix>::1`` (whose /64 route sends the
    clients' addresses into the TUN), and forwarding between the tunnel and the other interfaces."""
    # New devices start with IPv6 off where net.ipv6.conf.default.disable_ipv6=1 (hardened hosts, some
    # containers); the addresses below cannot be added then.
    changes.set_sysctl(f"net/ipv6/conf/{ifname}/disable_ipv6", 0)
    changes.add_address(ifname, IPv6Interface(f"{link_local_address(SERVER_INTERFACE_ID)}/64"))
    if prefix is not None:
        changes.add_address(ifname, IPv6Interface(f"{interface_address(prefix, SERVER_INTERFACE_ID)}/64"))
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


def not_sstp_response(settings: ServerSettings) -> bytes | None:
    """What browsers and scanners get: a redirect, a static page, or (None) the plain 404/501."""
    if settings.http.redirect is not None:
        return redirect_response(settings.http.redirect)
    if settings.http.page is not None:
        try:
            return page_response(settings.http.page.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read the page {settings.http.page}: {exc.strerror}") from None
    return None


def load_tls(settings: ServerSettings) -> tuple[ssl.SSLContext, bytes]:
    """The server's TLS context and the DER of its leaf certificate (the crypto binding hashes it)."""
    tls = settings.tls
    if tls.cert is None or tls.key is None:
        raise ConfigError("a certificate and its key are needed: --cert FULLCHAIN.pem --key KEY.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    context.set_ciphers(tls.cipher_list)
    # SSTP clients do not resume TLS sessions (every call binds to a fresh handshake), so the two
    # TLS 1.3 session tickets OpenSSL sends after each handshake are work and bytes for nothing.
    context.num_tickets = 0
    der = load_certificate(context, tls.cert, tls.key)
    load_client_verification(context, settings)
    return context, der


# "require" only requests in TLS; SstpServerApp refuses a call without one, and logs why.
_CLIENT_CERTIFICATE_MODES = {
    "none": ssl.CERT_NONE,
    "request": ssl.CERT_OPTIONAL,
    "require": ssl.CERT_OPTIONAL,
}


def load_client_verification(context: ssl.SSLContext, settings: ServerSettings) -> None:
    """Ask for TLS client certificates as ``tls.verify_client_certificate`` says, trusting
    ``tls.client_ca`` and checking ``tls.client_crl``."""
    tls = settings.tls
    context.verify_mode = _CLIENT_CERTIFICATE_MODES[tls.verify_client_certificate]
    if tls.verify_client_certificate == "none":
        return
    for path, reader in [(p, read_certificates) for p in tls.client_ca] + [
        (p, read_crls) for p in tls.client_crl
    ]:
        reader(path)  # a clear error for a missing or damaged file, before OpenSSL's terse one
        try:
            context.load_verify_locations(cafile=path)
        except ssl.SSLError as exc:
            raise ConfigError(f"{path}: OpenSSL cannot use it: {exc.reason or exc}") from None
    if tls.client_crl:
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def load_eap_tls(settings: ServerSettings) -> EapTlsServerSettings | None:
    """EAP-TLS certificates, CAs and CRLs read from their files (``None`` when no CA is configured)."""
    eap = settings.eap_tls
    if not eap.ca:
        return None
    cert, key = (eap.cert, eap.key) if eap.cert is not None else (settings.tls.cert, settings.tls.key)
    assert cert is not None and key is not None  # validate() insists on the HTTPS certificate
    try:
        return EapTlsServerSettings(
            identity=read_identity(cert, key),
            trusted_cas=tuple(c for path in eap.ca for c in read_certificates(path, "CA file")),
            crls=tuple(crl for path in eap.crl for crl in read_crls(path)),
            identity_source=eap.identity,
            require_known_user=eap.require_user,
            fragment_size=eap.fragment_size,
            max_version=eap.max_version,
        )
    except ValueError as exc:
        raise ConfigError(f"EAP-TLS: {exc}") from None


def load_certificate(context: ssl.SSLContext, cert: Path, key: Path) -> bytes:
    """Load the chain and key into ``context``; return the leaf's DER (the crypto binding hashes it)."""
    for path in (cert, key):
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror.lower() if exc.strerror else exc}"
            ) from None
    try:
        context.load_cert_chain(cert, key)
        pem = cert.read_text()
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot use certificate {cert} with key {key}: {exc}") from None
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN CERTIFICATE-----") : end])
