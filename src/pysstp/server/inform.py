"""The server's DHCPINFORM responder: split-tunnel routes, DNS suffix and name servers for Windows clients.

After IPCP, Windows' VPN client sends a DHCPINFORM through the tunnel (MS-DHCPE 2.2.6.1) and takes its
split-tunnel routes (options 121/249) and DNS suffix (option 15) from the DHCPACK; RRAS answers through
its DHCP relay. pysstp answers itself, per session, so the packet never reaches the TUN: the data path
hands over only UDP packets from a session to the broadcast address or to the server's tunnel address
(docs/server.md, "Routes and domain for Windows clients"), and :func:`respond` decides the rest. Pure
functions on bytes, no sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Generic, Protocol, TypeVar

from pysstp import dhcp, udp
from pysstp.errors import ProtocolError

log = logging.getLogger("pysstp.server")


class NotAnswered(ProtocolError):
    """A DHCP packet to the server that it drops: malformed, not a DHCPINFORM, or not from the session's
    own address."""


@dataclass(frozen=True, slots=True)
class Push:
    """What the server pushes besides IPCP's address and name servers (the ``[push]`` settings): routes
    into the tunnel (IPv4 ones by DHCP, IPv6 ones in router advertisements), the DNS suffix (DHCP option
    15, DNSSL), WINS servers (option 44) and IPv6 name servers (RDNSS)."""

    routes: tuple[IPv4Network | IPv6Network, ...] = ()
    domain: str = ""
    wins: tuple[IPv4Address, ...] = ()
    ipv6_dns: tuple[IPv6Address, ...] = ()

    def for_user(self, routes: tuple[IPv4Network | IPv6Network, ...], domain: str) -> Push:
        """This push with a user's own routes and domain (user database, RADIUS) where they are set."""
        return replace(self, routes=routes or self.routes, domain=domain or self.domain)

    @property
    def ipv4_routes(self) -> tuple[IPv4Network, ...]:
        """The IPv4 networks among :attr:`routes`."""
        return tuple(n for n in self.routes if isinstance(n, IPv4Network))

    @property
    def ipv6_routes(self) -> tuple[IPv6Network, ...]:
        """The IPv6 networks among :attr:`routes`."""
        return tuple(n for n in self.routes if isinstance(n, IPv6Network))


@dataclass(frozen=True, slots=True)
class Session:
    """What the answer to one session depends on."""

    address: IPv4Address
    """The session's own address (IPCP)."""
    server_address: IPv4Address
    """The server's tunnel address: option 54, and the router of the pushed routes."""
    network: IPv4Network
    """The pool the address came from: option 1."""
    dns: Sequence[IPv4Address]
    push: Push


def respond(packet: bytes | memoryview, session: Session) -> bytes | None:
    """The answer (a whole IPv4 packet to the client's port 68) to a UDP ``packet`` from a session to the
    broadcast or the server's address; ``None`` if it is not for the DHCP server port (it goes on to the
    TUN). Raises :class:`NotAnswered` (or the codec's errors) when the packet is for the DHCP server but is
    not answered."""
    if udp.destination_port(packet) != dhcp.SERVER_PORT:
        return None
    datagram = udp.parse(packet)
    if datagram.source != session.address or datagram.source_port != dhcp.CLIENT_PORT:
        raise NotAnswered(
            f"from {datagram.source}:{datagram.source_port}, not the session's own address and port 68"
        )
    inform = dhcp.parse(datagram.payload)
    if inform.op != dhcp.BOOTREQUEST or inform.message_type is not dhcp.MessageType.INFORM:
        kind = inform.message_type.name if inform.message_type is not None else "no message type"
        raise NotAnswered(f"DHCP {kind}; only DHCPINFORM is answered")
    if inform.ciaddr != session.address:
        raise NotAnswered(f"DHCPINFORM for {inform.ciaddr}, not the session's address")
    push = session.push
    configuration = dhcp.Configuration(
        server=session.server_address,
        netmask=session.network.netmask,
        dns=tuple(session.dns),
        domain=push.domain,
        wins=push.wins,
        routes=tuple(dhcp.ClasslessRoute(n, session.server_address) for n in push.ipv4_routes),
    )
    reply = dhcp.build(dhcp.ack(inform, configuration))
    # RFC 2131 §4.3.5: the DHCPACK to a DHCPINFORM goes to ciaddr, unicast.
    return udp.build(
        udp.Datagram(session.server_address, session.address, dhcp.SERVER_PORT, dhcp.CLIENT_PORT, reply)
    )


class Caller(Protocol):
    """What the responder needs of a session's connection."""

    @property
    def peer(self) -> str: ...

    def send_ip_batch(self, packets: list[bytes]) -> None: ...


C = TypeVar("C", bound=Caller)


class Responder(Generic[C]):
    """Answers DHCPINFORMs for one server and counts what it drops.

    The data path calls :meth:`take` only for UDP from a session to one of :attr:`targets` (compared as
    views of the destination address): all other traffic pays one protocol compare and nothing more.
    """

    def __init__(self, server_address: IPv4Address, session_of: Callable[[C], Session | None]) -> None:
        self.targets = (udp.BROADCAST.packed, server_address.packed)
        """Destinations of a DHCPINFORM: the limited broadcast (Windows) or the server's tunnel address."""
        self.last_octets = frozenset(target[3] for target in self.targets)
        """Their last octets: what the data path compares first."""
        self.session_of = session_of
        """The answer's inputs for a connection; ``None`` while it has no IPv4 address."""
        self.dropped = 0
        """DHCP packets to the server that were not answered (``DropCause.DHCP``)."""

    def take(self, connection: C, packet: memoryview) -> bool:
        """Answer or drop a packet for the DHCP server port (``True``); ``False`` for any other packet,
        which goes on to the TUN."""
        session = self.session_of(connection)
        if session is None:
            return False
        try:
            reply = respond(packet, session)
        except ProtocolError as exc:
            self.dropped += 1
            log.info("%s: DHCP packet dropped: %s", connection.peer, exc)
            return True
        if reply is None:
            return False
        connection.send_ip_batch([reply])
        return True
