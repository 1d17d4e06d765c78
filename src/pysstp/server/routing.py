"""Per-session routing: the kernel routes a session brings (networks behind the client, host routes with
its smaller MTU), its IPv6 addresses in the session table, and the router advertisements on its link.

The session table (``server/sessions.py``) is the server's own view; this module keeps the kernel's in
step with it. A route the kernel refuses is logged and left out: it costs that session the route, never
the call.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Protocol

from pysstp.errors import PysstpError
from pysstp.link import Ipv6Up
from pysstp.ppp.ipv6cp import link_local_address
from pysstp.server import ipv6
from pysstp.server.session import ServerConnection
from pysstp.server.sessions import SessionTable


class KernelRoutes(Protocol):
    """Routes into the TUN added and removed per session: networks behind a client (site-to-site), and
    host routes that give a session a smaller MTU than the TUN's."""

    def add(self, network: IPv4Network | IPv6Network, mtu: int | None = None) -> None: ...

    def remove(self, network: IPv4Network | IPv6Network) -> None: ...


class SessionRouting:
    """Adds and removes the routes of each session, and speaks for the server as its IPv6 router."""

    def __init__(
        self, table: SessionTable[ServerConnection], kernel_routes: KernelRoutes | None, tun_mtu: int
    ) -> None:
        self.table = table
        self.kernel_routes = kernel_routes
        self.tun_mtu = tun_mtu
        """The TUN device's MTU: the largest MTU any session may have (see :meth:`limit_path_mtu`)."""

    def up(self, connection: ServerConnection) -> None:
        """The call is up: route its IPv4 address, with its MTU, and the networks behind it."""
        if connection.address_key is not None:
            self.table.add_address(connection.address_key, connection)
        if connection.info.address is not None:
            self.limit_path_mtu(connection, [connection.info.address])
        for network in connection.info.routes:
            self._add_site_route(connection, network)

    def down(self, connection: ServerConnection) -> None:
        """Take the session's IPv6 addresses and networks out of the table and its routes out of the kernel
        (idempotent; its IPv4 address is the server's to release)."""
        self.ipv6_down(connection)
        self._remove_mtu_routes(connection, (4,))
        for network in self.table.remove_networks(connection):
            self._remove_route(connection, network)

    def _remove_route(self, connection: ServerConnection, network: IPv4Network | IPv6Network) -> None:
        """Remove a route added for ``connection``; a failure is logged, not raised."""
        if self.kernel_routes is None:
            return
        try:
            self.kernel_routes.remove(network)
        except PysstpError as exc:
            connection.log.warning("%s: could not remove route %s: %s", connection.peer, network, exc)

    def _add_site_route(self, connection: ServerConnection, network: IPv4Network | IPv6Network) -> None:
        """Route a network behind the client into the tunnel while the client is connected."""
        if self.table.is_routed(network):
            connection.log.warning(
                "%s: %s is already routed to another session; not adding it", connection.peer, network
            )
            return
        if self.kernel_routes is not None:
            try:
                self.kernel_routes.add(network)
            except PysstpError as exc:
                connection.log.warning(
                    "%s: could not route %s into the tunnel: %s", connection.peer, network, exc
                )
                return
        self.table.add_network(network, connection)
        connection.log.info(
            "%s: routing %s to user %r",
            connection.peer,
            network,
            connection.info.user,
            extra={"event": "route"},
        )

    # -- IPv6 --------------------------------------------------------------------------------------

    def ipv6_up(self, connection: ServerConnection, event: Ipv6Up) -> bool:
        """IPv6CP is open: route the client's addresses into the session; whether they are routed (the
        caller then schedules the first router advertisement)."""
        self.ipv6_down(connection)  # IPv6CP was renegotiated: the identifiers may have changed
        peer_iid = event.peer_interface_id
        if not any(peer_iid) or peer_iid == ipv6.SERVER_INTERFACE_ID:
            connection.log.warning(
                "%s: unusable IPv6 interface identifier %s; no IPv6", connection.peer, peer_iid.hex()
            )
            return False
        addresses = [link_local_address(peer_iid)]
        if connection.ipv6_prefix is not None:
            addresses.append(ipv6.interface_address(connection.ipv6_prefix, peer_iid))
        keys = tuple(address.packed for address in addresses)
        if not self.table.claim(keys, connection):
            connection.log.warning(
                "%s: IPv6 address %s belongs to another session; no IPv6", connection.peer, addresses[0]
            )
            return False
        connection.ipv6_keys = keys
        connection.router_address = link_local_address(event.local_interface_id)
        self.limit_path_mtu(connection, addresses)
        connection.log.info(
            "%s: IPv6 up: %s", connection.peer, ", ".join(map(str, addresses)), extra={"event": "ipv6_up"}
        )
        return True

    def ipv6_down(self, connection: ServerConnection) -> None:
        """Take the session's IPv6 addresses out of the table (idempotent)."""
        self.table.release(connection.ipv6_keys)
        connection.ipv6_keys = ()
        connection.router_address = None
        self._remove_mtu_routes(connection, (6,))

    def advertise(self, connection: ServerConnection, destination: IPv6Address = ipv6.ALL_NODES) -> None:
        """Send the session a router advertisement for the prefix (none in link-local-only mode)."""
        if connection.ipv6_prefix is None or connection.router_address is None:
            return
        advertisement = ipv6.router_advertisement(
            connection.ipv6_prefix,
            source=connection.router_address,
            mtu=connection.mtu,
            destination=destination,
        )
        connection.send_ip_batch([advertisement])

    # -- per-session MTU ---------------------------------------------------------------------------

    def limit_path_mtu(
        self, connection: ServerConnection, addresses: Iterable[IPv4Address | IPv6Address]
    ) -> None:
        """Give a session whose MTU is below the TUN's host routes with its own MTU.

        The TUN is as large as the largest MRU a client may get (``max-peer-mru``), so with large MRUs
        allowed, a client that negotiated less needs its own limit: the kernel then fragments, or refuses
        with ICMP "fragmentation needed"/"packet too big", what is routed to it, local sockets size their
        segments for it, and the nftables MSS clamp ("rt mtu") clamps to it.
        """
        mtu = connection.mtu
        if self.kernel_routes is None or mtu >= self.tun_mtu:
            return
        for address in addresses:
            network = ipaddress.ip_network(address)
            try:
                self.kernel_routes.add(network, mtu=mtu)
            except PysstpError as exc:
                connection.log.warning(
                    "%s: could not limit the MTU to %s to %d: %s", connection.peer, network, mtu, exc
                )
                continue
            connection.mtu_routes += (network,)

    def _remove_mtu_routes(self, connection: ServerConnection, versions: tuple[int, ...]) -> None:
        """Remove the session's MTU routes of these IP versions (idempotent)."""
        for network in connection.mtu_routes:
            if network.version in versions:
                self._remove_route(connection, network)
        connection.mtu_routes = tuple(n for n in connection.mtu_routes if n.version not in versions)
