"""The plugin's tunnel: pysstp owns the TUN device and its data path, NetworkManager everything else.

:class:`ReportingTunnel` is :class:`~pysstp.client.tunnel.Tunnel` with the system changes left out: it opens
the TUN with the call's MTU and sets it up, and instead of adding the address, routes and DNS it reports the
call to NetworkManager (:mod:`pysstp.nm.report`), which applies them. Never both, or the two would fight
over the routing table and the resolver.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from pysstp.client.settings import ClientSettings
from pysstp.client.tunnel import Tunnel
from pysstp.link import Ipv4Up, Ipv6Up, LinkUp
from pysstp.net.changes import NetworkChanges
from pysstp.net.iproute import set_link

log = logging.getLogger("pysstp.nm")

IFNAME_PREFIX = "sstp"


def free_ifname(prefix: str = IFNAME_PREFIX) -> str:
    """The first ``sstpN`` that names no device yet (``pysstp connect`` may hold ``sstp0``)."""
    taken = {name for _, name in socket.if_nameindex()}
    return next(f"{prefix}{n}" for n in range(len(taken) + 1) if f"{prefix}{n}" not in taken)


class ReportingTunnel(Tunnel):
    """A :class:`Tunnel` that reports instead of applying: ``on_up(up, ifname)`` gets each call that came
    up, once its TUN exists."""

    def __init__(
        self, settings: ClientSettings, changes: NetworkChanges, on_up: Callable[[LinkUp, str], None]
    ) -> None:
        super().__init__(settings, changes)
        self.on_up = on_up

    def pin_server(self, server_ip: str) -> None:
        """Nothing: NetworkManager adds the route to the gateway that the report names."""

    def apply(self, up: LinkUp) -> None:
        """Open the TUN (first call) and report the call."""
        if self.tun is None:
            self.tun = self.changes.open_tun(self.settings.ifname, mtu=up.mtu)
            set_link(self.tun.name, up=True)
            self._start_reading()
        self.on_up(up, self.tun.name)

    def network_up(self, event: Ipv4Up | Ipv6Up) -> None:
        """Nothing: the report of :meth:`apply` has the IPv4 address (the plugin carries no IPv6)."""
