"""Router advertisement options that configure a client beyond SLAAC: DNS servers and search domains
(RDNSS and DNSSL, RFC 8106) and routes (Route Information, RFC 4191), written by the server and read by
the client, and the SLAAC prefix (Prefix Information, RFC 4861 §4.6.2), which the NetworkManager plugin
reads. Pure functions on bytes.

Linux applies Route Information options itself (``accept_ra_rt_info_max_plen``), but leaves RDNSS and
DNSSL to user space, so the client reads them from the advertisement (:func:`read_options`, fed by a raw
ICMPv6 socket: :mod:`pysstp.client.advertisements`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from pysstp.errors import ProtocolError

OPTION_PREFIX_INFORMATION = 3
PREFIX_FLAG_ON_LINK = 0x80
PREFIX_FLAG_AUTONOMOUS = 0x40
SLAAC_PREFIX_LEN = 64
OPTION_ROUTE_INFORMATION = 24
OPTION_RDNSS = 25
OPTION_DNSSL = 31
UNIT = 8
"""Neighbour Discovery option lengths count units of 8 bytes (RFC 4861 §4.6)."""
ROUTER_ADVERTISEMENT = 134
RA_HEADER_LEN = 16
"""Type, code, checksum, hop limit, flags, router lifetime, reachable time, retransmission timer."""
MAX_LABEL = 63


class NdError(ProtocolError):
    """A malformed router advertisement or option."""


@dataclass(frozen=True, slots=True)
class Advertised:
    """What a router advertisement's RDNSS, DNSSL and Route Information options say (those with lifetime
    0, which withdraw earlier ones, are left out), and the /64 its Prefix Information offers for SLAAC
    (the first with the autonomous flag and a valid lifetime, RFC 4862 §5.5.3; the kernel forms
    ``pysstp connect``'s address from it, the NetworkManager plugin reads it)."""

    dns: tuple[IPv6Address, ...] = ()
    domains: tuple[str, ...] = ()
    routes: tuple[IPv6Network, ...] = ()
    prefix: IPv6Network | None = None


def rdnss(servers: Sequence[IPv6Address], lifetime: int) -> bytes:
    """The RDNSS option (RFC 8106 §5.1)."""
    return struct.pack("!BBHI", OPTION_RDNSS, 1 + 2 * len(servers), 0, lifetime) + b"".join(
        server.packed for server in servers
    )


def dnssl(domains: Sequence[str], lifetime: int) -> bytes:
    """The DNSSL option (RFC 8106 §5.2): names in DNS wire format, zero-padded to a multiple of 8."""
    names = b"".join(_wire_name(domain) for domain in domains)
    names += bytes(-(len(names) + UNIT) % UNIT)
    return struct.pack("!BBHI", OPTION_DNSSL, (UNIT + len(names)) // UNIT, 0, lifetime) + names


def route_information(route: IPv6Network, lifetime: int) -> bytes:
    """A Route Information option (RFC 4191 §2.3), medium preference: the prefix in 0, 8 or 16 bytes."""
    significant = 0 if route.prefixlen == 0 else 8 if route.prefixlen <= 64 else 16
    return (
        struct.pack("!BBBBI", OPTION_ROUTE_INFORMATION, 1 + significant // UNIT, route.prefixlen, 0, lifetime)
        + route.network_address.packed[:significant]
    )


def _wire_name(domain: str) -> bytes:
    labels = [label.encode("ascii") for label in domain.rstrip(".").split(".")]
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def read_options(message: bytes | memoryview) -> Advertised:
    """The RDNSS, DNSSL and Route Information options of a router advertisement: the ICMPv6 message, as a
    raw ICMPv6 socket reads it (or an IPv6 packet from offset 40). Raises :class:`NdError` if it is not a
    router advertisement or its options are malformed."""
    data = bytes(message)
    if len(data) < RA_HEADER_LEN or data[0] != ROUTER_ADVERTISEMENT:
        raise NdError("not a router advertisement")
    end = len(data)
    position = RA_HEADER_LEN
    dns: list[IPv6Address] = []
    domains: list[str] = []
    routes: list[IPv6Network] = []
    prefix: IPv6Network | None = None
    while position + 2 <= end:
        kind, units = data[position], data[position + 1]
        if units == 0 or position + units * UNIT > end:
            raise NdError(f"option {kind} has length {units}: does not fit the advertisement")
        body = data[position : position + units * UNIT]
        position += units * UNIT
        if kind == OPTION_RDNSS:
            dns += _read_rdnss(body)
        elif kind == OPTION_DNSSL:
            domains += _read_dnssl(body)
        elif kind == OPTION_ROUTE_INFORMATION:
            route = _read_route(body)
            if route is not None:
                routes.append(route)
        elif kind == OPTION_PREFIX_INFORMATION and prefix is None:
            prefix = _read_prefix(body)
    return Advertised(tuple(dns), tuple(domains), tuple(routes), prefix)


def _read_prefix(body: bytes) -> IPv6Network | None:
    if len(body) != 32:
        raise NdError(f"Prefix Information option of {len(body)} bytes")
    if body[2] != SLAAC_PREFIX_LEN or not body[3] & PREFIX_FLAG_AUTONOMOUS or _lifetime(body) == 0:
        return None
    return IPv6Network((body[16:32], SLAAC_PREFIX_LEN), strict=False)


def _lifetime(body: bytes) -> int:
    return int.from_bytes(body[4:8], "big")


def _read_rdnss(body: bytes) -> Iterable[IPv6Address]:
    if len(body) < 24 or (len(body) - 8) % 16:
        raise NdError("RDNSS option without a whole address")
    if _lifetime(body) == 0:
        return ()
    return [IPv6Address(body[i : i + 16]) for i in range(8, len(body), 16)]


def _read_dnssl(body: bytes) -> Iterable[str]:
    if len(body) < 16:
        raise NdError("DNSSL option without a name")
    if _lifetime(body) == 0:
        return ()
    names: list[str] = []
    labels: list[str] = []
    data = body[8:]
    position = 0
    while position < len(data):
        length = data[position]
        position += 1
        if length == 0:
            if not labels:
                break  # the padding after the last name (RFC 8106 §5.2)
            names.append(".".join(labels))
            labels = []
            continue
        if length > MAX_LABEL or position + length > len(data):
            raise NdError("DNSSL option with a malformed name")
        try:
            labels.append(data[position : position + length].decode("ascii"))
        except UnicodeDecodeError:
            raise NdError("DNSSL option with a name that is not ASCII") from None
        position += length
    if labels:
        raise NdError("DNSSL option with an unterminated name")
    return names


def _read_route(body: bytes) -> IPv6Network | None:
    prefix_len = body[2]
    if (
        prefix_len > 128
        or len(body) > 24
        or (prefix_len > 64 and len(body) < 24)
        or (prefix_len > 0 and len(body) < 16)
    ):
        raise NdError(f"Route Information option of {len(body)} bytes for a /{prefix_len}")
    if _lifetime(body) == 0:
        return None
    prefix = (body[8:] + bytes(16))[:16]
    try:
        return IPv6Network((prefix, prefix_len))
    except ValueError:
        # RFC 4191 §2.3: bits beyond the prefix length are reserved and ignored.
        return IPv6Network((prefix, prefix_len), strict=False)
