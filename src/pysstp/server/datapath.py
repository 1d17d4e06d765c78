"""The server's data path: IP packets between the one shared TUN device and the sessions.

Packets the kernel routes into the TUN are read in batches and handed to the session that owns the
destination address (a dict lookup); packets from a session come in one batch per TLS read and are
written to the TUN after checking that their source address belongs to it. Both directions run once per
packet at full rate (``make bench``): the common case stays inline, without a call per packet.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from pysstp.connection import LinkConnection
from pysstp.server import ipv6
from pysstp.server.session import ServerConnection
from pysstp.server.sessions import SessionTable, routed_from

TUN_BATCH = 64
"""Packets read from the TUN per wake-up: enough to coalesce writes, few enough to stay fair."""


class Tun(Protocol):
    """What the server needs of the TUN device."""

    @property
    def fd(self) -> int: ...

    def read_batch(self, limit: int) -> list[bytes]: ...

    def write_batch(self, packets: list[memoryview]) -> None: ...


Advertise = Callable[[ServerConnection, IPv6Address], None]
"""Sends a session a router advertisement to a destination (``SessionRouting.advertise``)."""


class DataPath:
    """Moves packets between the TUN and the sessions of a :class:`SessionTable`."""

    def __init__(self, tun: Tun, table: SessionTable[ServerConnection], advertise: Advertise) -> None:
        self.tun = tun
        self.table = table
        self.advertise = advertise
        """Answers a session's Router Solicitation: on each session's link the server is the router."""
        self.tun_drops = 0
        """Packets read from the TUN that no session holds the destination of."""
        self.spoofed = 0
        """Packets from sessions dropped because their source is not the session's (or they are not IP)."""

    def deliver(self, connection: LinkConnection, packets: list[memoryview]) -> None:
        """IP packets from a session: to the TUN, those whose source belongs to that session."""
        assert isinstance(connection, ServerConnection)
        own = connection.address_key or b""
        accepted: list[memoryview] = []
        accept = accepted.append
        for packet in packets:
            if len(packet) >= 20 and packet[0] >> 4 == 4:
                # Compared as a view: making bytes of it costs as much again, and is needed only when it
                # differs.
                if packet[12:16] != own and not routed_from(connection.info.routes, bytes(packet[12:16])):
                    self.spoofed += 1
                    continue
            elif not self._accept_ipv6(connection, packet):
                continue
            accept(packet)
        self.tun.write_batch(accepted)

    def _accept_ipv6(self, connection: ServerConnection, packet: memoryview) -> bool:
        """Whether a packet from a session that is not IPv4 may go to the TUN: only IPv6 from one of the
        session's addresses or networks. Router Solicitations are answered here instead."""
        if not ipv6.is_ipv6(packet):
            self.spoofed += 1
            return False
        source = bytes(packet[ipv6.SOURCE])
        if ipv6.is_router_solicitation(packet):
            # RFC 4861 §6.2.6: answer a specified source directly; one that has no address yet via all-nodes.
            self.advertise(
                connection, IPv6Address(source) if source in connection.ipv6_keys else ipv6.ALL_NODES
            )
            return False
        if source in connection.ipv6_keys or routed_from(connection.info.routes, source):
            return True
        self.spoofed += 1
        return False

    def on_tun_readable(self) -> None:
        """The TUN has packets: read a batch and send each session its share in one batch."""
        table = self.table
        by_address = table.by_address
        batches: dict[ServerConnection, list[bytes]] = {}
        for packet in self.tun.read_batch(TUN_BATCH):
            if len(packet) >= 20 and packet[0] >> 4 == 4:
                # IPv4 to a session's own address, looked up here without a call per packet.
                connection = by_address.get(packet[16:20])
                if connection is None and table.by_network:
                    connection = table.route_to_network(IPv4Address(packet[16:20]))
            else:
                connection = table.route_ipv6(packet)
            if connection is None:
                self.tun_drops += 1
                continue
            batch = batches.get(connection)
            if batch is None:
                batches[connection] = [packet]
            else:
                batch.append(packet)
        for connection, packets in batches.items():
            connection.send_ip_batch(packets)
