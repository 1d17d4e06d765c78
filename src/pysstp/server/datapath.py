"""The server's data path: IP packets between the one shared TUN device and the sessions.

Packets the kernel routes into the TUN are read in batches and handed to the session that owns the
destination address (a dict lookup); packets from a session come in one batch per TLS read and are
written to the TUN after checking that their source address belongs to it. Both directions run once per
packet at full rate (``make bench``): the common case stays inline, without a call per packet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from pysstp.connection import LinkConnection
from pysstp.server import ipv6
from pysstp.server.inform import Responder
from pysstp.server.ratelimit import Packet, TokenBucket
from pysstp.server.session import ServerConnection
from pysstp.server.sessions import SessionTable, routed_from
from pysstp.udp import PROTOCOL_UDP

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

    def __init__(
        self,
        tun: Tun,
        table: SessionTable[ServerConnection],
        advertise: Advertise,
        inform: Responder[ServerConnection],
    ) -> None:
        self.tun = tun
        self.table = table
        self.advertise = advertise
        """Answers a session's Router Solicitation: on each session's link the server is the router."""
        self.inform = inform
        """Answers a session's DHCPINFORM (docs/server.md, "Routes and domain for clients")."""
        self.tun_drops = 0
        """Packets read from the TUN that no session holds the destination of."""
        self.spoofed = 0
        """Packets from sessions dropped because their source is not the session's (or they are not IP)."""

    def deliver(self, connection: LinkConnection, packets: list[memoryview]) -> None:
        """IP packets from a session: to the TUN, those whose source belongs to that session; a DHCPINFORM
        is answered here."""
        assert isinstance(connection, ServerConnection)
        own = connection.address_key or b""
        inform = self.inform
        targets, last_octets, udp_protocol = inform.targets, inform.last_octets, PROTOCOL_UDP
        accepted: list[memoryview] = []
        accept = accepted.append
        for packet in packets:
            if len(packet) >= 20 and packet[0] >> 4 == 4:
                # Compared as a view: making bytes of it costs as much again, and is needed only when it
                # differs.
                if packet[12:16] != own and not routed_from(connection.info.routes, bytes(packet[12:16])):
                    self.spoofed += 1
                    continue
                # Only UDP to the broadcast or the server's address is looked at further; the last octet
                # first, an int compare, since slicing the address costs more than the check's worth.
                if (
                    packet[9] == udp_protocol
                    and packet[19] in last_octets
                    and packet[16:20] in targets
                    and inform.take(connection, packet)
                ):
                    continue
            elif not self._accept_ipv6(connection, packet):
                continue
            accept(packet)
        # Checked once per batch: a session without a limit pays nothing more (docs/scaling.md).
        if connection.rate_in is not None:
            accepted = police(connection, connection.rate_in, accepted)
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
            if connection.rate_out is not None:
                packets = police(connection, connection.rate_out, packets)
                if not packets:
                    continue
            connection.send_ip_batch(packets)


def police(connection: ServerConnection, bucket: TokenBucket, packets: list[Packet]) -> list[Packet]:
    """The packets of one batch within the session's rate limit; the others are dropped and counted."""
    passed, dropped = bucket.police(packets, time.monotonic())
    connection.rate_drops += dropped
    return passed
