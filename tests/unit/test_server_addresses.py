"""The address authority: default, named and fixed addresses, the Framed-IPv6-Prefix checks, and the
refusal texts the peer sees."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest

from pysstp.aaa.backend import Authorization
from pysstp.server.addresses import AddressAuthority, Reservation
from pysstp.server.pool import AddressPool

SERVER = IPv4Address("10.77.0.1")
OFFICE = IPv4Network("10.78.0.0/29")
PREFIX = IPv6Network("2001:db8:1:1::/64")
LOG = logging.LoggerAdapter(logging.getLogger("test"))


def authority(
    dns: tuple[IPv4Address, ...] = (), ipv6: bool = False, ipv6_prefix: IPv6Network | None = None
) -> AddressAuthority:
    pool = AddressPool(IPv4Network("10.77.0.0/29"), SERVER)
    office = AddressPool(OFFICE, IPv4Address("10.78.0.1"))
    return AddressAuthority(
        pool, {"office": office}, server_address=SERVER, dns=dns, ipv6=ipv6, ipv6_prefix=ipv6_prefix
    )


async def reserve(
    authority: AddressAuthority, authorization: Authorization, taken: bool = False
) -> Reservation | str:
    return await authority.reserve(
        "alice", authorization, prefix_taken=lambda _: taken, log=LOG, peer="192.0.2.1:1234"
    )


async def test_the_default_pool_and_dns() -> None:
    dns = (IPv4Address("192.0.2.53"),)
    reservation = await reserve(authority(dns=dns), Authorization())
    assert isinstance(reservation, Reservation)
    assert reservation.address == IPv4Address("10.77.0.2")
    assert (reservation.network.local_address, reservation.network.dns) == (SERVER, dns)


async def test_a_named_pool_and_a_missing_one() -> None:
    reservation = await reserve(authority(), Authorization(pool="office"))
    assert isinstance(reservation, Reservation) and reservation.address in OFFICE
    refusal = await reserve(authority(), Authorization(pool="lab"))
    assert refusal == (
        "pool 'lab' of user 'alice' is not in the config (named pools: office); add [pools.lab] or correct "
        "Framed-Pool"
    )


async def test_a_fixed_address_comes_from_the_pool_that_holds_it_once() -> None:
    addresses = authority()
    fixed = Authorization(address=IPv4Address("10.78.0.5"))
    reservation = await reserve(addresses, fixed)
    assert isinstance(reservation, Reservation) and reservation.pool is addresses.pools["office"]
    assert await reserve(addresses, fixed) == "the fixed address 10.78.0.5 of user 'alice' is in use"
    addresses.release(reservation.address, reservation.pool)
    assert isinstance(await reserve(addresses, fixed), Reservation)


async def test_an_empty_pool_says_which() -> None:
    addresses = authority()
    for _ in range(5):
        assert isinstance(await reserve(addresses, Authorization()), Reservation)
    assert await reserve(addresses, Authorization()) == "no IPv4 address left in the pool for user 'alice'"


@pytest.mark.parametrize(
    ("prefix", "taken", "expected"),
    [
        (IPv6Network("2001:db8:9::/64"), False, IPv6Network("2001:db8:9::/64")),
        (IPv6Network("2001:db8:9::/56"), False, None),  # not a /64: the server's prefix
        (PREFIX, False, None),  # the server's own
        (IPv6Network("2001:db8:9::/64"), True, "already routed"),
    ],
)
async def test_framed_ipv6_prefix(prefix: IPv6Network, taken: bool, expected: object) -> None:
    addresses = authority(ipv6=True, ipv6_prefix=PREFIX)
    result = await reserve(addresses, Authorization(ipv6_prefix=prefix), taken)
    if isinstance(expected, str):
        assert isinstance(result, str) and expected in result and result.endswith("(user 'alice')")
        pool = addresses.pool
        assert isinstance(pool, AddressPool) and not pool.in_use()  # given back
    else:
        assert isinstance(result, Reservation) and result.ipv6_prefix == expected


async def test_a_prefix_is_ignored_with_ipv6_off() -> None:
    result = await reserve(authority(), Authorization(ipv6_prefix=IPv6Network("2001:db8:9::/64")))
    assert isinstance(result, Reservation) and result.ipv6_prefix is None
