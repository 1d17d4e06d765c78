"""The client's side of the operating system: TUN device, address, routes and DNS, and the data path.

Built on the first :class:`~pysstp.link.LinkUp` and kept across reconnects, so with ``--default-route``
traffic has nowhere to go but the (possibly dead) TUN while the client dials again: nothing leaks out of
the real interface. Every change goes through one :class:`~pysstp.net.changes.NetworkChanges`, which the
caller undoes at the end.

``--default-route`` installs 0.0.0.0/1 and 128.0.0.0/1 through the TUN rather than replacing the default
route: together they cover everything, they win over any default route by being longer prefixes, and the
user's own default route is never touched, so there is nothing to restore if pysstp is killed with
SIGKILL (the TUN vanishes with the process, and its routes with it). Before that, a host route to the
server is pinned through the gateway in use, so the tunnel's own packets do not enter the tunnel.

What the server pushes (its DHCPINFORM answer's routes and domain, its router advertisements' DNS
servers and search domains: docs/client.md) goes into a second ``NetworkChanges``, taken back when each
call ends, so a reconnect starts from the user's own settings.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
import subprocess
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, ip_address
from pathlib import Path

from pysstp.client.advertisements import AdvertisementListener
from pysstp.client.inform import InformExchange
from pysstp.client.live import Counters
from pysstp.client.settings import ClientSettings
from pysstp.connection import LinkConnection
from pysstp.dhcp import Configuration
from pysstp.errors import PysstpError, SystemSetupError
from pysstp.link import Ipv4Up, Ipv6Up, LinkUp
from pysstp.nd import Advertised
from pysstp.net.changes import NetworkChanges
from pysstp.net.iproute import list_addresses, route_to, set_link
from pysstp.net.tun import TunDevice
from pysstp.ppp.constants import Protocol
from pysstp.ppp.ipv6cp import link_local_address

log = logging.getLogger("pysstp.client")

TUN_BATCH = 64
"""Packets read from the TUN per wake-up: enough to coalesce TLS writes, few enough to stay fair."""
DEFAULT_ROUTES = (IPv4Network("0.0.0.0/1"), IPv4Network("128.0.0.0/1"))
RESOLV_CONF = Path("/etc/resolv.conf")
RESOLVED_RUNTIME = Path("/run/systemd/resolve")
# Lines of the old resolv.conf worth keeping: search domains and resolver options are not the server's.
_KEPT_RESOLV_KEYWORDS = ("search", "domain", "options")


class Tunnel:
    """TUN, address, routes and DNS for one ``pysstp connect``; moves IP packets between the TUN and the
    current call."""

    def __init__(self, settings: ClientSettings, changes: NetworkChanges) -> None:
        self.settings = settings
        self.changes = changes
        self.tun: TunDevice | None = None
        self.connection: LinkConnection | None = None
        self.drops = 0
        # Totals for the live line; kept as plain ints on the data path, read once a second.
        self.bytes_in = self.bytes_out = self.packets_in = self.packets_out = 0
        self._address: tuple[IPv4Address, IPv4Address] | None = None
        self._link_local: IPv6Address | None = None
        self._pinned: set[str] = set()
        self._reading = False
        self._server_ip: str | None = None
        self._dns_servers: tuple[IPv4Address, ...] = ()
        self._resolv_conf: str | None = None
        """The resolv.conf pysstp found (when it writes its own), to build the next version from."""
        self._exchange: InformExchange | None = None
        self._answered: asyncio.Future[Configuration] | None = None
        self._dhcp_domain = ""
        self._advertised = Advertised()
        """The RDNSS and DNSSL of the server's last router advertisement."""
        self._pushed_dns: tuple[tuple[str, ...], tuple[IPv6Address, ...]] = ((), ())
        """The search domains and IPv6 name servers applied now."""
        self._listener: AdvertisementListener | None = None
        self._pushed = NetworkChanges()
        """What the server's DHCPINFORM answer changed (routes, search domain): undone when the call ends,
        so a reconnect starts clean."""
        changes.record("routes and search domain from the server", self._pushed.undo)

    # -- bring-up ----------------------------------------------------------------------------------

    def pin_server(self, server_ip: str) -> None:
        """Keep ``server_ip`` (the server, or the proxy) reachable outside the tunnel: with
        ``--default-route``, pin the route the kernel uses now. Call before :meth:`apply` installs the
        tunnel's routes."""
        self._server_ip = server_ip
        if not self.settings.default_route or server_ip in self._pinned:
            return
        current = route_to(server_ip)
        if current.ifname == self.settings.ifname:
            raise SystemSetupError(
                f"the route to the server {server_ip} already goes through {current.ifname}; "
                "cannot pin it outside the tunnel"
            )
        try:
            self.changes.add_route(current.destination, ifname=current.ifname, gateway=current.gateway)
        except SystemSetupError as exc:
            # Someone (a previous pysstp, the admin) already pinned it; it stays theirs.
            if getattr(exc.__cause__, "code", None) != errno.EEXIST:
                raise
        self._pinned.add(server_ip)
        log.info(
            "route: kept the server %s reachable via %s", server_ip, _via(current.gateway, current.ifname)
        )

    def apply(self, up: LinkUp) -> None:
        """Make the system match a call that just came up (first call: everything; reconnect: what
        changed). IPv4 and IPv6 addresses follow with :meth:`network_up`, since either may open first."""
        if self.tun is None:
            self.tun = self.changes.open_tun(self.settings.ifname, mtu=up.mtu)
            if self.settings.ipv6:
                self._prepare_ipv6(self.tun.name)
            if up.local_address is not None and up.peer_address is not None:
                self._set_address(up.local_address, up.peer_address)
            set_link(self.tun.name, up=True)
            for network in (*self.settings.routes, *(DEFAULT_ROUTES if self.settings.default_route else ())):
                self.changes.add_route(network, ifname=self.tun.name)
                log.info("route: %s via %s", network, self.tun.name)
            if self.settings.dns:
                self._apply_dns(up.dns_servers)
            self._start_reading()
            return
        set_link(self.tun.name, mtu=up.mtu)
        if up.local_address is not None and up.peer_address is not None:
            self._set_address(up.local_address, up.peer_address)

    def network_up(self, event: Ipv4Up | Ipv6Up) -> None:
        """IPCP or IPv6CP opened (before or after :meth:`apply`): give the TUN that protocol's address."""
        if self.tun is None:
            return  # apply() takes IPv4 from LinkUp; the app calls again for IPv6 once the TUN exists
        if isinstance(event, Ipv4Up):
            self._set_address(event.local_address, event.peer_address)
            return
        address = link_local_address(event.local_interface_id)
        if address == self._link_local:
            return
        # Added after the link is up: the kernel then solicits the server's router advertisement at once.
        self.changes.add_address(self.tun.name, IPv6Interface(f"{address}/64"))
        self._link_local = address
        log.info("IPv6: %s on %s; the address from the router advertisement follows", address, self.tun.name)

    def network_down(self, protocol: Protocol) -> None:
        """IPCP or IPv6CP closed or was rejected (before or after :meth:`apply`): nothing to change here,
        what the call set up stays until it ends."""

    def _prepare_ipv6(self, ifname: str) -> None:
        """Per-device IPv6 settings, before the link goes up (they vanish with the device)."""
        conf = f"net/ipv6/conf/{ifname}"
        # No kernel-made link-local (random, or none at all on a TUN): the server routes only addresses
        # built from the IPv6CP interface identifier, and SLAAC inherits the identifier from the link-local.
        self.changes.set_sysctl(f"{conf}/addr_gen_mode", 1)
        # IPv6CP already made the identifier unique on this link; DAD would only delay the first packet.
        self.changes.set_sysctl(f"{conf}/accept_dad", 0)
        # Take the advertisement even on a host that forwards (a router's accept_ra=1 ignores it).
        self.changes.set_sysctl(f"{conf}/accept_ra", 2)
        # The advertisement's default route only when asked for, as with IPv4's --default-route.
        self.changes.set_sysctl(f"{conf}/accept_ra_defrtr", int(self.settings.default_route))
        if self.settings.server_routes:
            # Route Information options (RFC 4191) of any prefix length: the server's pushed IPv6 routes.
            self.changes.set_sysctl(f"{conf}/accept_ra_rt_info_max_plen", 128)
            if self.settings.dns:
                # The kernel leaves RDNSS and DNSSL to user space.
                self._listener = AdvertisementListener(ifname, self._advertisement)
                self._listener.open()

    def ipv6_address(self) -> IPv6Address | None:
        """The TUN's global IPv6 address (formed by the kernel from the advertisement), else its
        link-local one, else ``None``."""
        if self.tun is None or self._link_local is None:
            return None
        for info in list_addresses(self.tun.name):
            if isinstance(info.address, IPv6Interface) and not info.address.ip.is_link_local:
                return info.address.ip
        return self._link_local

    def _set_address(self, local: IPv4Address, peer: IPv4Address) -> None:
        assert self.tun is not None
        if self._address == (local, peer):
            return
        # Routes through the device stay; only the address moves.
        self.changes.add_address(self.tun.name, IPv4Interface(f"{local}/32"), peer=peer)
        self._address = (local, peer)

    def _apply_dns(self, servers: Sequence[IPv4Address]) -> None:
        assert self.tun is not None
        if not servers:
            log.warning("DNS: the server offered no DNS servers; --dns has nothing to apply")
            return
        self._dns_servers = tuple(servers)
        resolvectl = _resolvectl_command()
        if resolvectl is not None:
            self._resolvectl(resolvectl, "dns", self.tun.name, *map(str, servers))
            if self.settings.default_route:
                self._resolvectl(resolvectl, "domain", self.tun.name, *self._routing_domains())
            name = self.tun.name
            self.changes.record(
                f"systemd-resolved DNS on {name}", lambda: self._resolvectl(resolvectl, "revert", name)
            )
            log.info("DNS: %s on %s (systemd-resolved)", ", ".join(map(str, servers)), name)
            return
        self._resolv_conf = _read_text(RESOLV_CONF)
        self.changes.replace_file(RESOLV_CONF, resolv_conf(servers, self._resolv_conf, self.tun.name))
        log.info("DNS: %s in %s", ", ".join(map(str, servers)), RESOLV_CONF)

    def _routing_domains(self) -> tuple[str, ...]:
        # "~." makes this link the one for every domain, as the routes make it for every address.
        return ("~.",) if self.settings.default_route else ()

    def _apply_pushed_dns(self) -> None:
        """Add the server's search domains (DHCP option 15, DNSSL) and IPv6 name servers (RDNSS) to what
        ``--dns`` applied, when they changed; the call's end takes them back."""
        assert self.tun is not None
        domains = tuple(dict.fromkeys(d for d in (self._dhcp_domain, *self._advertised.domains) if d))
        dns6 = self._advertised.dns
        if not self.settings.dns or (domains, dns6) == self._pushed_dns:
            return
        self._pushed_dns = (domains, dns6)
        name = self.tun.name
        servers: tuple[IPv4Address | IPv6Address, ...] = (*self._dns_servers, *dns6)
        resolvectl = _resolvectl_command()
        if resolvectl is not None:
            self._resolvectl(resolvectl, "dns", name, *map(str, servers))
            self._resolvectl(resolvectl, "domain", name, *domains, *self._routing_domains())
            base = self._dns_servers

            def back() -> None:
                if base:
                    self._resolvectl(resolvectl, "dns", name, *map(str, base))
                    # An empty name clears the list; none at all would only show it.
                    self._resolvectl(resolvectl, "domain", name, *(self._routing_domains() or ("",)))
                else:
                    self._resolvectl(resolvectl, "revert", name)

            self._pushed.record(f"DNS from the server on {name}", back)
            where = f"{name} (systemd-resolved)"
        else:
            if self._resolv_conf is None:
                self._resolv_conf = _read_text(RESOLV_CONF)
            self._pushed.replace_file(
                RESOLV_CONF, resolv_conf(servers, self._resolv_conf, name, search=domains)
            )
            where = str(RESOLV_CONF)
        log.info(
            "DNS: %s from the server in %s",
            ", ".join([*(f"search {d}" for d in domains), *map(str, dns6)]) or "nothing more",
            where,
        )

    def _advertisement(self, options: Advertised) -> None:
        """A router advertisement from the server: its DNS servers and search domains (RFC 8106)."""
        if options.dns == self._advertised.dns and options.domains == self._advertised.domains:
            return
        self._advertised = options
        try:
            self._apply_pushed_dns()
        except PysstpError as exc:
            log.warning("DNS: could not apply the server's router advertisement: %s", exc)

    # -- what the server pushes --------------------------------------------------------------------

    def expect(self, exchange: InformExchange) -> asyncio.Future[Configuration]:
        """Watch the packets from the server for the answer to ``exchange`` until it comes (the future)
        or :meth:`stop_expecting`."""
        self._exchange = exchange
        self._answered = asyncio.get_running_loop().create_future()
        return self._answered

    def stop_expecting(self) -> None:
        """The exchange is over: the data path goes back to writing everything to the TUN unseen."""
        self._exchange = None
        self._answered = None

    def _take_answer(self, packets: list[memoryview]) -> list[memoryview]:
        """The packets without the DHCP answer, which settles the waiting exchange."""
        exchange, answered = self._exchange, self._answered
        assert exchange is not None and answered is not None
        rest = []
        for packet in packets:
            if exchange.is_candidate(packet):
                configuration = exchange.answer(packet)
                if configuration is not None:
                    if not answered.done():
                        answered.set_result(configuration)
                    continue
            rest.append(packet)
        return rest

    def apply_pushed(self, configuration: Configuration) -> None:
        """Take the server's classless routes (not those ``--route`` covers, which win, nor one that
        would carry the tunnel's own packets) and, with ``--dns``, its DNS suffix."""
        assert self.tun is not None
        server = ip_address(self._server_ip) if self._server_ip is not None else None
        for route in configuration.routes:
            network = route.network
            if network.prefixlen == 0:
                log.info("route: the server pushes a default route; only --default-route sends everything")
                continue
            if any(network.overlaps(own) for own in self.settings.routes if own.version == 4):
                log.info("route: %s from the server overlaps a --route, which wins; not added", network)
                continue
            if server is not None and server in network:
                log.warning("route: %s from the server holds the server itself; not added", network)
                continue
            self._pushed.add_route(network, ifname=self.tun.name)
            log.info("route: %s via %s (from the server)", network, self.tun.name)
        self._dhcp_domain = configuration.domain
        self._apply_pushed_dns()

    def withdraw_pushed(self) -> None:
        """The call ended: take back what the server's answer and advertisements changed."""
        self._pushed.undo()
        self._dhcp_domain = ""
        self._advertised = Advertised()
        self._pushed_dns = ((), ())

    @staticmethod
    def _resolvectl(command: str, *args: str) -> None:
        result = subprocess.run([command, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemSetupError(f"resolvectl {' '.join(args)} failed: {result.stderr.strip()}")

    # -- data path ---------------------------------------------------------------------------------

    def attach(self, connection: LinkConnection | None) -> None:
        """Packets from the TUN go to ``connection`` from now on (``None``: dropped, while reconnecting)."""
        self.connection = connection

    def deliver(self, connection: LinkConnection, packets: list[memoryview]) -> None:
        """IP packets from the server (one TLS read): into the kernel."""
        if self._exchange is not None:
            packets = self._take_answer(packets)
        if self.tun is not None:
            self.tun.write_batch(packets)
            self.bytes_in += sum(map(len, packets))
            self.packets_in += len(packets)

    def set_backpressure(self, paused: bool) -> None:
        """TLS is backed up (stop reading the TUN: its queue fills, then the kernel drops) or drained."""
        if paused:
            self._stop_reading()
        else:
            self._start_reading()

    def _start_reading(self) -> None:
        if self.tun is not None and not self._reading:
            asyncio.get_running_loop().add_reader(self.tun.fd, self._on_readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self.tun is not None and self._reading:
            asyncio.get_running_loop().remove_reader(self.tun.fd)
            self._reading = False

    def _on_readable(self) -> None:
        assert self.tun is not None
        packets = self.tun.read_batch(TUN_BATCH)
        connection = self.connection
        if connection is None:
            self.drops += len(packets)
        else:
            connection.send_ip_batch(packets)
            self.packets_out += len(packets)
            self.bytes_out += sum(map(len, packets))

    def counters(self) -> Counters:
        """Traffic through the tunnel so far (all calls)."""
        return Counters(self.bytes_in, self.bytes_out, self.packets_in, self.packets_out)

    def close(self) -> None:
        """Stop the data path (the TUN itself goes with the changes' undo)."""
        if self._listener is not None:
            self._listener.close()
        self._stop_reading()
        self.connection = None


def resolv_conf(
    servers: Sequence[IPv4Address | IPv6Address], old: str, ifname: str, search: Sequence[str] = ()
) -> str:
    """The resolv.conf to write: the server's name servers, with the old file's search and options; the
    server's ``search`` domains go first on the one search line (the resolver reads only the last)."""
    kept = [
        line for line in old.splitlines() if line.split()[:1] and line.split()[0] in _KEPT_RESOLV_KEYWORDS
    ]
    lines = [f"# written by pysstp connect for {ifname}; put back when it exits"]
    lines += [f"nameserver {server}" for server in servers]
    if search:
        old_domains = [
            word for line in kept if line.split()[0] in ("search", "domain") for word in line.split()[1:]
        ]
        kept = [line for line in kept if line.split()[0] not in ("search", "domain")]
        domains = list(dict.fromkeys([*search, *old_domains]))
        lines.append("search " + " ".join(domains))
    return "\n".join(lines + kept) + "\n"


def _resolvectl_command() -> str | None:
    """resolvectl, when systemd-resolved runs; ``None`` means resolv.conf."""
    resolvectl = shutil.which("resolvectl")
    return resolvectl if RESOLVED_RUNTIME.is_dir() and resolvectl is not None else None


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def _via(gateway: object, ifname: str | None) -> str:
    return f"{gateway} dev {ifname}" if gateway is not None else f"dev {ifname}"
