"""The plugin's tunnel: pysstp owns the TUN device and its data path, NetworkManager everything else.

:class:`ReportingTunnel` is :class:`~pysstp.client.tunnel.Tunnel` with the system changes left out: it opens
the TUN with the call's MTU and sets it up, and instead of adding the addresses, routes and DNS it reports
the call to NetworkManager (:mod:`pysstp.nm.report`), which applies them. Never both, or the two would
fight over the routing table and the resolver.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from ipaddress import IPv4Network
from typing import Protocol as Interface

from pysstp.client.settings import ClientSettings
from pysstp.client.tunnel import Tunnel
from pysstp.connection import LinkConnection
from pysstp.dhcp import Configuration
from pysstp.link import Ipv4Up, Ipv6Up, LinkUp
from pysstp.nd import Advertised, NdError, read_options
from pysstp.net.changes import NetworkChanges
from pysstp.net.iproute import set_link
from pysstp.ppp.constants import Protocol
from pysstp.server.ipv6 import HEADER_LEN, ND_HOP_LIMIT, NEXT_HEADER_ICMPV6, ROUTER_ADVERTISEMENT

log = logging.getLogger("pysstp.nm")

IFNAME_PREFIX = "sstp"
IPV6CP_WAIT = 5.0
"""Seconds after the call is up that the first report waits for IPv6CP (both NCPs start together, so it
is normally open or rejected by then; one that never answers would keep NetworkManager waiting)."""
RA_WAIT = 3.0
"""Seconds after IPv6CP opened that the IPv6 report waits for the server's router advertisement (a
pysstp server sends its first half a second after IPv6CP is up)."""


class Report(Interface):
    """Where :class:`ReportingTunnel` sends what NetworkManager must apply."""

    def config(self, up: LinkUp, ifname: str, has_ip6: bool) -> None:
        """The call is up on ``ifname``: ``Config`` and ``Ip4Config``."""

    def ip6(self, ipv6: Ipv6Up, advertised: Advertised) -> None:
        """IPv6CP is open and the server's router advertisement read (empty: link-local only):
        ``Ip6Config``."""

    def pushed(self, routes: Sequence[IPv4Network], domains: Sequence[str]) -> None:
        """The server's DHCPINFORM answer: ``Ip4Config`` again, with its routes and search domain."""


def free_ifname(prefix: str = IFNAME_PREFIX) -> str:
    """The first ``sstpN`` that names no device yet (``pysstp connect`` may hold ``sstp0``)."""
    taken = {name for _, name in socket.if_nameindex()}
    return next(f"{prefix}{n}" for n in range(len(taken) + 1) if f"{prefix}{n}" not in taken)


class ReportingTunnel(Tunnel):
    """A :class:`Tunnel` that reports instead of applying, through ``report``.

    IPv4 and IPv6 open independently (either first, the other later or never), and NetworkManager must
    know in the ``Config`` signal whether an ``Ip6Config`` follows. So the first report waits until the
    call is up and IPv6CP has settled (opened, or rejected/failed, or :data:`IPV6CP_WAIT` passed), and the
    IPv6 report until the server's router advertisement has given the prefix (or :data:`RA_WAIT` passed:
    a server with link-local IPv6 only sends none).
    """

    def __init__(self, settings: ClientSettings, changes: NetworkChanges, report: Report) -> None:
        super().__init__(settings, changes)
        self.report = report
        self._up: LinkUp | None = None
        self._ipv6: Ipv6Up | None = None
        self._ipv6_settled = not settings.ipv6
        self._has_ip6: bool | None = None
        """What ``Config`` said (``None``: not sent yet)."""
        self._advertised = Advertised()
        self._watching = settings.ipv6
        """Whether packets from the server are still searched for a router advertisement."""
        self._ip6_reported = False
        self._timers: list[asyncio.TimerHandle] = []

    def pin_server(self, server_ip: str) -> None:
        """Nothing: NetworkManager adds the route to the gateway that the report names."""

    def apply(self, up: LinkUp) -> None:
        """Open the TUN (first call) and report the call."""
        if self.tun is None:
            self.tun = self.changes.open_tun(self.settings.ifname, mtu=up.mtu)
            if self.settings.ipv6:
                conf = f"net/ipv6/conf/{self.tun.name}"
                # NetworkManager applies the address reported; the kernel must not add its own (a random
                # link-local one on a TUN, which the server does not route) nor act on the server's
                # advertisements (an address and default route behind NetworkManager's back).
                self.changes.set_sysctl(f"{conf}/addr_gen_mode", 1)
                self.changes.set_sysctl(f"{conf}/accept_ra", 0)
            set_link(self.tun.name, up=True)
            self._start_reading()
        self._up = up
        if self._has_ip6 is None and not self._ipv6_settled:
            self._later(IPV6CP_WAIT, self._ipv6cp_given_up)
        self._report()

    def network_up(self, event: Ipv4Up | Ipv6Up) -> None:
        """IPv6CP opened: report it (IPv4 comes with :meth:`apply`'s report)."""
        if isinstance(event, Ipv6Up):
            self._ipv6 = event
            self._ipv6_settled = True
            self._report()

    def network_down(self, protocol: Protocol) -> None:
        """IPv6CP was rejected or failed: ``Config`` says there is no IPv6."""
        if protocol is Protocol.IPV6CP and self._ipv6 is None:
            self._ipv6_settled = True
            self._watching = False
            self._report()

    def apply_pushed(self, configuration: Configuration) -> None:
        """The routes and domain of the server's DHCPINFORM answer go to NetworkManager, which applies
        them with the rest (``ipv4.ignore-auto-routes`` and ``ipv4.ignore-auto-dns`` refuse them there);
        a pushed default route is left out, as ``pysstp connect`` leaves it out: ``never-default``
        decides that."""
        routes = []
        for route in configuration.routes:
            if route.network.prefixlen == 0:
                log.info("route: the server pushes a default route; never-default=no sends everything")
                continue
            routes.append(route.network)
        if routes or configuration.domain:
            self.report.pushed(routes, [configuration.domain] if configuration.domain else [])

    def deliver(self, connection: LinkConnection, packets: list[memoryview]) -> None:
        """As :class:`Tunnel`, and until the server's router advertisement came, look for it."""
        if self._watching:
            for packet in packets:
                advertised = _advertisement(packet)
                if advertised is not None:
                    self._advertised = advertised
                    self._watching = False
                    self._report()
                    break
        super().deliver(connection, packets)

    def close(self) -> None:
        """As :class:`Tunnel`, and no report any more."""
        for timer in self._timers:
            timer.cancel()
        super().close()

    def _report(self) -> None:
        if self.tun is None or self._up is None:
            return
        if self._has_ip6 is None:
            if not self._ipv6_settled:
                return
            self._has_ip6 = self._ipv6 is not None
            self.report.config(self._up, self.tun.name, self._has_ip6)
            if self._has_ip6 and self._watching:
                self._later(RA_WAIT, self._advertisement_given_up)
        if self._has_ip6 and self._ipv6 is not None and not self._ip6_reported and not self._watching:
            self._ip6_reported = True
            self.report.ip6(self._ipv6, self._advertised)

    def _ipv6cp_given_up(self) -> None:
        if not self._ipv6_settled:
            log.info("IPv6CP: not open after %g s; reporting IPv4 only", IPV6CP_WAIT)
            self._ipv6_settled = True
            self._watching = False
            self._report()

    def _advertisement_given_up(self) -> None:
        if self._watching:
            log.info("IPv6: no router advertisement with a prefix within %g s; link-local only", RA_WAIT)
            self._watching = False
            self._report()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(delay, callback))


def _advertisement(packet: memoryview) -> Advertised | None:
    """What a router advertisement from the server says; ``None`` for any other packet, or a malformed
    advertisement (RFC 4861 §6.1.2: ignored)."""
    if (
        len(packet) <= HEADER_LEN
        or packet[0] >> 4 != 6
        or packet[6] != NEXT_HEADER_ICMPV6
        or packet[7] != ND_HOP_LIMIT
        or packet[HEADER_LEN] != ROUTER_ADVERTISEMENT
    ):
        return None
    try:
        return read_options(packet[HEADER_LEN : HEADER_LEN + int.from_bytes(packet[4:6], "big")])
    except NdError as exc:
        log.info("IPv6: ignored a router advertisement: %s", exc)
        return None
