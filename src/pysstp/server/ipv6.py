"""IPv6 for the server's sessions: router advertisements (RFC 4861) and the header fields routing needs.

Each session is a point-to-point PPP link on which the server is the router. Once IPv6CP is up the server
announces the configured /64 in a Router Advertisement (on-link and autonomous, so the client forms
``<prefix>::<its interface identifier>`` by SLAAC, RFC 4862), with the pushed DNS servers, search domain
and IPv6 routes (:mod:`pysstp.nd`), repeats it every :data:`RA_INTERVAL`, and answers Router
Solicitations. Pure functions on bytes: no sockets, no clock.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from ipaddress import IPv6Address, IPv6Network

from pysstp import nd
from pysstp.ppp.constants import INTERFACE_IDENTIFIER_SIZE
from pysstp.udp import internet_checksum

HEADER_LEN = 40
SOURCE = slice(8, 24)
"""Where an IPv6 packet's source address lies (a slice, so the data path cuts it without a call)."""
DESTINATION = slice(24, 40)
NEXT_HEADER_ICMPV6 = 58
ND_HOP_LIMIT = 255
"""Neighbour Discovery messages are sent, and accepted only, with hop limit 255: proof they were not
forwarded from another link (RFC 4861 §6.1)."""

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
OPTION_PREFIX_INFORMATION = nd.OPTION_PREFIX_INFORMATION
OPTION_MTU = 5
PREFIX_FLAG_ON_LINK = nd.PREFIX_FLAG_ON_LINK
PREFIX_FLAG_AUTONOMOUS = nd.PREFIX_FLAG_AUTONOMOUS
SLAAC_PREFIX_LEN = nd.SLAAC_PREFIX_LEN

ALL_NODES = IPv6Address("ff02::1")

INITIAL_RA_DELAY = 0.5
"""Seconds from IPv6CP up to the first advertisement. Packets that arrive together with the news that
IPv6CP is open reach a client before it has set up its end (a TUN without addresses drops them); RFC 4861
§6.2.4 delays initial advertisements too."""
RA_INTERVAL = 600.0
"""Seconds between unsolicited advertisements (RFC 4861 MaxRtrAdvInterval default)."""
ROUTER_LIFETIME = 1800
"""Seconds a client keeps the server as its IPv6 default router: 3 x the interval (AdvDefaultLifetime)."""
PREFIX_VALID_LIFETIME = 30 * 24 * 3600
PREFIX_PREFERRED_LIFETIME = 7 * 24 * 3600
"""RFC 4861 defaults (AdvValidLifetime, AdvPreferredLifetime); the periodic adverts keep them fresh."""

SERVER_INTERFACE_ID = bytes(INTERFACE_IDENTIFIER_SIZE - 1) + b"\x01"
"""The server's interface identifier on the shared TUN: fe80::1 and ``<prefix>::1``. No session may
claim it, or the server's own addresses would be routed into that session."""


def interface_address(prefix: IPv6Network, interface_id: bytes) -> IPv6Address:
    """``prefix`` (a /64) + the 8-byte interface identifier."""
    return IPv6Address(prefix.network_address.packed[:INTERFACE_IDENTIFIER_SIZE] + interface_id)


def is_ipv6(packet: bytes | memoryview) -> bool:
    """Whether ``packet`` is long enough to be IPv6 and says it is."""
    return len(packet) >= HEADER_LEN and packet[0] >> 4 == 6


def _pseudo_header(source: bytes, destination: bytes, length: int) -> bytes:
    """What ICMPv6 checksums cover besides the message itself (RFC 8200 §8.1)."""
    return source + destination + struct.pack("!I3xB", length, NEXT_HEADER_ICMPV6)


def router_advertisement(
    prefix: IPv6Network | None,
    *,
    source: IPv6Address,
    mtu: int,
    destination: IPv6Address = ALL_NODES,
    dns: Sequence[IPv6Address] = (),
    domains: Sequence[str] = (),
    routes: Sequence[IPv6Network] = (),
) -> bytes:
    """A complete IPv6 packet: a Router Advertisement from ``source`` (the server's link-local address on
    that link) announcing ``prefix`` for SLAAC (and the server as default router), the link's MTU, and the
    pushed DNS servers, search domains (RFC 8106) and routes (RFC 4191). Without a prefix the server is not
    a default router (router lifetime 0): the advertisement only carries the options."""
    options = _prefix_option(prefix) if prefix is not None else b""
    options += struct.pack("!BBHI", OPTION_MTU, 1, 0, mtu)
    # RFC 8106 §5.1: lifetimes of at least 3 x MaxRtrAdvInterval, so one lost advertisement changes nothing.
    if dns:
        options += nd.rdnss(dns, ROUTER_LIFETIME)
    if domains:
        options += nd.dnssl(domains, ROUTER_LIFETIME)
    for route in routes:
        options += nd.route_information(route, ROUTER_LIFETIME)
    # Current hop limit 0 (unspecified: the client keeps its own), no M/O flags (no DHCPv6), reachable
    # time and retransmit timer 0 (unspecified).
    lifetime = ROUTER_LIFETIME if prefix is not None else 0
    body = struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, 0, 0, lifetime, 0, 0)
    message = body + options
    checksum = internet_checksum(_pseudo_header(source.packed, destination.packed, len(message)) + message)
    message = message[:2] + checksum.to_bytes(2, "big") + message[4:]
    header = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(message),
        NEXT_HEADER_ICMPV6,
        ND_HOP_LIMIT,
        source.packed,
        destination.packed,
    )
    return header + message


def _prefix_option(prefix: IPv6Network) -> bytes:
    if prefix.prefixlen != SLAAC_PREFIX_LEN:
        raise ValueError(f"SLAAC needs a /64 prefix, not /{prefix.prefixlen}")
    return struct.pack(
        "!BBBBIII16s",
        OPTION_PREFIX_INFORMATION,
        4,  # length in units of 8 bytes
        SLAAC_PREFIX_LEN,
        PREFIX_FLAG_ON_LINK | PREFIX_FLAG_AUTONOMOUS,
        PREFIX_VALID_LIFETIME,
        PREFIX_PREFERRED_LIFETIME,
        0,
        prefix.network_address.packed,
    )


def is_router_solicitation(packet: bytes | memoryview) -> bool:
    """Whether ``packet`` (known to be IPv6) is a valid Router Solicitation (RFC 4861 §6.1.1)."""
    if (
        len(packet) < HEADER_LEN + 8
        or packet[6] != NEXT_HEADER_ICMPV6
        or packet[7] != ND_HOP_LIMIT
        or packet[HEADER_LEN] != ROUTER_SOLICITATION
        or packet[HEADER_LEN + 1] != 0
    ):
        return False
    data = bytes(packet)
    message = data[HEADER_LEN : HEADER_LEN + int.from_bytes(data[4:6], "big")]
    # Summed with the checksum field in place, a correct message leaves nothing: the complement is zero.
    return internet_checksum(_pseudo_header(data[SOURCE], data[DESTINATION], len(message)) + message) == 0
