"""Router advertisement options (pysstp.nd): RDNSS and DNSSL (RFC 8106), Route Information (RFC 4191), in
the server's advertisements and as the client reads them."""

from __future__ import annotations

import contextlib
import struct
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp import nd
from pysstp.nd import Advertised, NdError
from pysstp.server import ipv6
from pysstp.udp import internet_checksum

PREFIX = IPv6Network("2001:db8:77::/64")
ROUTER = IPv6Address("fe80::1")
DNS = (IPv6Address("2001:db8::53"), IPv6Address("2001:db8::54"))
ROUTES = (IPv6Network("2001:db8:99::/48"), IPv6Network("2001:db8:aa:bb:cc::/80"), IPv6Network("::/0"))


def options(packet: bytes) -> dict[int, list[bytes]]:
    """The advertisement's options by type, each as its whole bytes."""
    found: dict[int, list[bytes]] = {}
    position = 40 + 16
    while position < len(packet):
        kind, units = packet[position], packet[position + 1]
        found.setdefault(kind, []).append(packet[position : position + units * 8])
        position += units * 8
    return found


def test_option_byte_images() -> None:
    # RFC 8106 §5.1: type 25, length 1 + 2 per address, reserved, lifetime, addresses.
    assert nd.rdnss(DNS[:1], 1800) == bytes.fromhex("19 03 0000 00000708") + DNS[0].packed
    # §5.2: names in DNS wire format, padded to 8 bytes: 8 + 14 ("corp.example") + 2 padding = 3 units.
    assert nd.dnssl(["corp.example"], 1800) == (
        bytes.fromhex("1f 03 0000 00000708") + b"\x04corp\x07example\x00" + b"\x00\x00"
    )
    # RFC 4191 §2.3: type 24, length 1/2/3 by prefix length, prefix length, flags (medium), lifetime.
    assert nd.route_information(IPv6Network("::/0"), 1800) == bytes.fromhex("18 01 00 00 00000708")
    assert nd.route_information(ROUTES[0], 1800) == bytes.fromhex("18 02 30 00 00000708 20010db8 00990000")
    assert (
        nd.route_information(ROUTES[1], 60)
        == bytes.fromhex("18 03 50 00 0000003c") + ROUTES[1].network_address.packed
    )


def test_advertisement_carries_and_reads_back_the_options() -> None:
    packet = ipv6.router_advertisement(
        PREFIX, source=ROUTER, mtu=1400, dns=DNS, domains=["corp.example", "lab.example"], routes=ROUTES
    )
    found = options(packet)
    assert set(found) == {3, 5, 24, 25, 31}
    assert len(found[24]) == 3
    assert (
        internet_checksum(ipv6._pseudo_header(packet[8:24], packet[24:40], len(packet) - 40) + packet[40:])
        == 0
    )
    assert nd.read_options(packet[40:]) == Advertised(DNS, ("corp.example", "lab.example"), ROUTES, PREFIX)


def test_advertisement_without_a_prefix_is_not_a_default_router() -> None:
    packet = ipv6.router_advertisement(None, source=ROUTER, mtu=1400, routes=ROUTES[:1])
    assert struct.unpack_from("!H", packet, 40 + 6)[0] == 0
    assert set(options(packet)) == {5, 24}
    assert nd.read_options(packet[40:]) == Advertised(routes=ROUTES[:1])


def test_the_plain_advertisement_is_unchanged() -> None:
    packet = ipv6.router_advertisement(PREFIX, source=ROUTER, mtu=1400)
    assert set(options(packet)) == {3, 5}
    assert nd.read_options(packet[40:]) == Advertised(prefix=PREFIX)


def test_zero_lifetimes_withdraw() -> None:
    body = nd.rdnss(DNS, 0) + nd.dnssl(["corp.example"], 0) + nd.route_information(ROUTES[0], 0)
    assert nd.read_options(_wrap(body)[40:]) == Advertised()


def _wrap(body: bytes) -> bytes:
    message = bytes((134, 0)) + bytes(14) + body
    return (
        struct.pack("!IHBB16s16s", 6 << 28, len(message), 58, 255, ROUTER.packed, ipv6.ALL_NODES.packed)
        + message
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (bytes.fromhex("19 00 0000 00000708"), "does not fit"),
        (bytes.fromhex("19 04 0000 00000708") + bytes(16), "does not fit"),
        (bytes.fromhex("19 01 0000 00000708"), "without a whole address"),
        (bytes.fromhex("1f 01 0000 00000708"), "without a name"),
        (bytes.fromhex("1f 02 0000 00000708 40 636f7270 000000"), "malformed name"),
        (bytes.fromhex("1f 02 0000 00000708 03 636f72 03 78797a"), "unterminated name"),
        (bytes.fromhex("1f 02 0000 00000708 02 fffe 00 000000 00"), "not ASCII"),
        (bytes.fromhex("18 01 30 00 00000708"), "for a /48"),
        (bytes.fromhex("18 02 81 00 00000708") + bytes(8), "for a /129"),
    ],
)
def test_malformed_options(body: bytes, reason: str) -> None:
    with pytest.raises(NdError, match=reason):
        nd.read_options(_wrap(body)[40:])


@given(
    st.lists(st.builds(IPv6Address, st.integers(0, 2**128 - 1)), max_size=4),
    st.lists(st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,3}", fullmatch=True), max_size=3),
    st.lists(
        st.builds(
            lambda a, n: IPv6Network((a, n), strict=False), st.integers(0, 2**128 - 1), st.integers(0, 128)
        ),
        max_size=4,
    ),
)
def test_round_trip(dns: list[IPv6Address], domains: list[str], routes: list[IPv6Network]) -> None:
    packet = ipv6.router_advertisement(
        PREFIX, source=ROUTER, mtu=1400, dns=dns, domains=domains, routes=routes
    )
    assert nd.read_options(packet[40:]) == Advertised(tuple(dns), tuple(domains), tuple(routes), PREFIX)


@given(st.binary(max_size=200))
def test_reader_raises_only_its_own_error(body: bytes) -> None:
    with contextlib.suppress(NdError):
        nd.read_options(_wrap(body)[40:])
