"""The client's DHCPINFORM: after IPCP, ask the server for its split-tunnel routes and DNS suffix the way
Windows does (MS-DHCPE 2.2.6.1), through the tunnel.

The request goes into the call as an IP packet; the answer comes back on the data path, where
:class:`~pysstp.client.tunnel.Tunnel` hands packets to :meth:`InformExchange.answer` only while an
exchange waits (so the data path pays nothing otherwise). A server that never answers costs a few
seconds of a background task, never a delay of the call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from ipaddress import IPv4Address

from pysstp import dhcp, udp
from pysstp.errors import ProtocolError

log = logging.getLogger("pysstp.client")

ATTEMPTS = 3
"""DHCPINFORMs sent before giving up."""
ANSWER_WAIT = 2.0
"""Seconds to wait for each answer (RFC 2131 §4.1 starts retransmission at 4 s on a LAN; a tunnel whose
server answers itself is faster, and the whole exchange stays short)."""
HOST_NAME = "pysstp"
"""Option 12 of the request: servers log it."""


def hardware_address() -> bytes:
    """A random, locally administered unicast MAC for chaddr and the client identifier: a TUN has none,
    and Windows' WAN miniport sends one of this kind too."""
    first = (secrets.randbits(8) & 0xFC) | 0x02
    return bytes((first,)) + secrets.token_bytes(5)


class InformExchange:
    """One DHCPINFORM and the recognition of its DHCPACK (sans-I/O: bytes in, bytes out)."""

    def __init__(self, local: IPv4Address, xid: int | None = None, mac: bytes | None = None) -> None:
        self.local = local
        self.xid = secrets.randbits(32) if xid is None else xid
        self.mac = mac or hardware_address()

    def request(self) -> bytes:
        """The DHCPINFORM as an IPv4 packet from the client's address to the limited broadcast, as Windows
        sends it."""
        message = dhcp.windows_inform(self.xid, self.local, self.mac, HOST_NAME)
        return udp.build(
            udp.Datagram(self.local, udp.BROADCAST, dhcp.CLIENT_PORT, dhcp.SERVER_PORT, dhcp.build(message))
        )

    def is_candidate(self, packet: bytes | memoryview) -> bool:
        """Whether ``packet`` may be the answer: IPv4 UDP to the client's address, port 68 (cheap)."""
        return (
            len(packet) >= udp.IPV4_HEADER_LEN + udp.UDP_HEADER_LEN
            and packet[0] >> 4 == 4
            and packet[9] == udp.PROTOCOL_UDP
            and packet[16:20] == self.local.packed
            and udp.destination_port(packet) == dhcp.CLIENT_PORT
        )

    def answer(self, packet: bytes | memoryview) -> dhcp.Configuration | None:
        """The configuration in a candidate packet if it is the DHCPACK to this request; ``None`` for
        anything else (a malformed or foreign answer is logged)."""
        try:
            datagram = udp.parse(packet)
            if datagram.source_port != dhcp.SERVER_PORT:
                return None
            message = dhcp.parse(datagram.payload)
            if message.xid != self.xid or message.chaddr[:6] != self.mac:
                return None
            return dhcp.configuration(message)
        except ProtocolError as exc:
            log.info("DHCP: ignored an answer from the server: %s", exc)
            return None


async def ask(
    exchange: InformExchange,
    send: Callable[[bytes], None],
    answered: asyncio.Future[dhcp.Configuration],
) -> dhcp.Configuration | None:
    """Send the DHCPINFORM up to :data:`ATTEMPTS` times until ``answered`` (set by whoever sees the
    answer) is done; ``None`` when the server never answers."""
    for _ in range(ATTEMPTS):
        send(exchange.request())
        try:
            return await asyncio.wait_for(asyncio.shield(answered), ANSWER_WAIT)
        except TimeoutError:
            continue
    log.info(
        "DHCP: the server did not answer DHCPINFORM (%d tries); no routes or search domain from it",
        ATTEMPTS,
    )
    return None
