"""The server's session table: addresses, networks behind clients, first-come IPv6 keys, the source
check."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from hypothesis import given
from hypothesis import strategies as st

from pysstp.server.sessions import SessionTable, routed_from

A, B = "alice", "bob"
SITE = IPv4Network("192.168.50.0/24")
PREFIX = IPv6Network("2001:db8:1:2::/64")


def ipv6_packet(destination: IPv6Address) -> bytes:
    return bytes([0x60]) + bytes(23) + destination.packed


def test_an_address_routes_to_its_session_until_removed() -> None:
    table: SessionTable[str] = SessionTable()
    table.add_address(IPv4Address("10.77.0.2").packed, A)
    assert table.by_address[IPv4Address("10.77.0.2").packed] == A
    table.remove_address(IPv4Address("10.77.0.2").packed, A)
    assert not table.by_address


def test_removing_leaves_an_address_that_a_newer_session_holds() -> None:
    table: SessionTable[str] = SessionTable()
    key = IPv4Address("10.77.0.2").packed
    table.add_address(key, A)
    table.add_address(key, B)  # replaced (on_limit = replace) before the old one said goodbye
    table.remove_address(key, A)
    assert table.by_address[key] == B


def test_ipv6_keys_are_first_come_first_served() -> None:
    table: SessionTable[str] = SessionTable()
    first = (IPv6Address("fe80::1").packed, IPv6Address("2001:db8:1:2::1").packed)
    assert table.claim(first, A)
    assert not table.claim((IPv6Address("fe80::9").packed, first[1]), B)
    assert IPv6Address("fe80::9").packed not in table.by_address  # all or nothing
    table.release(first)
    assert not table.by_address


def test_networks_route_by_version_and_leave_with_their_session() -> None:
    table: SessionTable[str] = SessionTable()
    table.add_network(SITE, A)
    table.add_network(PREFIX, B)
    assert table.is_routed(SITE) and not table.is_routed(IPv4Network("192.168.51.0/24"))
    assert table.route_to_network(IPv4Address("192.168.50.9")) == A
    assert table.route_to_network(IPv6Address("2001:db8:1:2::5")) == B
    assert table.route_to_network(IPv4Address("192.168.51.9")) is None
    assert table.remove_networks(A) == [SITE]
    assert table.route_to_network(IPv4Address("192.168.50.9")) is None
    assert table.remove_networks(A) == []


def test_overlap_ignores_the_asking_session() -> None:
    table: SessionTable[str] = SessionTable()
    table.add_network(PREFIX, A)
    assert table.overlaps(PREFIX, besides=B)
    assert not table.overlaps(PREFIX, besides=A)
    assert not table.overlaps(IPv6Network("2001:db8:1:3::/64"), besides=B)


def test_ipv6_route_lookup() -> None:
    table: SessionTable[str] = SessionTable()
    table.claim((IPv6Address("fe80::1").packed,), A)
    assert table.route_ipv6(ipv6_packet(IPv6Address("fe80::1"))) == A
    assert table.route_ipv6(ipv6_packet(IPv6Address("2001:db8:1:2::7"))) is None
    table.add_network(PREFIX, B)
    assert table.route_ipv6(ipv6_packet(IPv6Address("2001:db8:1:2::7"))) == B
    assert table.route_ipv6(b"\x45" + bytes(39)) is None  # IPv4 is not looked up here


addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: ip_address(n)),
    st.integers(0, 2**128 - 1).map(lambda n: IPv6Address(n)),
)


@given(address=addresses, prefix=st.integers(0, 32), other=addresses)
def test_the_source_check_is_membership_in_the_client_networks(
    address: IPv4Address | IPv6Address, prefix: int, other: IPv4Address | IPv6Address
) -> None:
    network = ip_network(f"{address}/{prefix if address.version == 4 else prefix * 4}", strict=False)
    assert routed_from((network,), address.packed)
    assert routed_from((network,), other.packed) == (other.version == address.version and other in network)
    assert not routed_from((), address.packed)


@given(
    st.lists(
        st.tuples(st.sampled_from([A, B, "carol"]), st.integers(0, 7)),
        max_size=30,
    )
)
def test_claims_never_take_over_an_address(claims: list[tuple[str, int]]) -> None:
    table: SessionTable[str] = SessionTable()
    owners: dict[bytes, str] = {}
    for session, host in claims:
        key = IPv6Address(f"fe80::{host}").packed
        if table.claim((key,), session):
            assert key not in owners
            owners[key] = session
    assert table.by_address == owners
