"""The server's address pool: order of hand-out, exhaustion, fixed addresses, and random sequences."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pysstp.errors import ConfigError
from pysstp.server.pool import AddressPool

NET = IPv4Network("10.0.0.0/29")
SERVER = IPv4Address("10.0.0.1")


def addr(last: int) -> IPv4Address:
    return IPv4Address(f"10.0.0.{last}")


def test_hands_out_lowest_first_and_never_special_addresses() -> None:
    pool = AddressPool(NET, SERVER)
    assert pool.size == pool.free_count == 5
    got = [pool.allocate(f"u{i}") for i in range(5)]
    assert got == [addr(i) for i in range(2, 7)]
    assert pool.allocate("late") is None
    assert pool.free_count == 0
    assert pool.in_use() == {addr(i): f"u{i - 2}" for i in range(2, 7)}


def test_released_addresses_rest_until_fresh_ones_are_used() -> None:
    pool = AddressPool(NET, SERVER)
    for user in "abc":
        pool.allocate(user)
    pool.release(addr(2))
    assert pool.free_count == 3
    assert pool.allocate("d") == addr(5)
    assert pool.allocate("e") == addr(6)
    pool.release(addr(4))
    pool.release(addr(3))
    # Oldest release first.
    assert [pool.allocate(u) for u in "fgh"] == [addr(2), addr(4), addr(3)]
    assert pool.allocate("i") is None


def test_release_of_a_free_address_does_nothing() -> None:
    pool = AddressPool(NET, SERVER)
    pool.allocate("a")
    pool.release(addr(2))
    pool.release(addr(2))
    pool.release(IPv4Address("192.0.2.1"))
    assert pool.free_count == 5
    assert [pool.allocate(u) for u in "abcdef"][-1] is None


def test_server_address_outside_the_pool_leaves_every_host_to_clients() -> None:
    pool = AddressPool(NET, IPv4Address("192.168.1.1"))
    assert pool.size == 6
    assert [pool.allocate(u) for u in "abcdef"] == [addr(i) for i in range(1, 7)]


def test_reserved_addresses_are_only_handed_out_on_request() -> None:
    pool = AddressPool(NET, SERVER, reserved=[addr(3), IPv4Address("192.0.2.9")])
    assert pool.size == 4
    assert [pool.allocate(u) for u in "abcd"] == [addr(2), addr(4), addr(5), addr(6)]
    assert pool.allocate("e") is None
    assert pool.allocate("bob", fixed=addr(3)) == addr(3)
    pool.release(addr(3))
    assert pool.allocate("e") is None


def test_fixed_addresses() -> None:
    pool = AddressPool(NET, SERVER)
    assert pool.allocate("bob", fixed=addr(3)) == addr(3)
    assert pool.free_count == 4
    assert pool.allocate("eve", fixed=addr(3)) is None
    # Outside the pool: honoured, not counted, never handed out to others after release.
    outside = IPv4Address("172.16.0.5")
    assert pool.allocate("carol", fixed=outside) == outside
    assert pool.free_count == 4
    for special in (SERVER, NET.network_address, NET.broadcast_address):
        assert pool.allocate("eve", fixed=special) is None
    # The scan skips the fixed address it meets.
    assert [pool.allocate(u) for u in "abcd"] == [addr(2), addr(4), addr(5), addr(6)]
    assert pool.allocate("e") is None
    pool.release(outside)
    assert pool.allocate("e") is None
    pool.release(addr(3))
    assert pool.allocate("e") == addr(3)


def test_fixed_address_released_before_the_scan_reaches_it_is_handed_out_once() -> None:
    pool = AddressPool(NET, SERVER)
    pool.allocate("bob", fixed=addr(5))
    pool.release(addr(5))
    got = [pool.allocate(u) for u in "abcdef"]
    assert got == [addr(2), addr(3), addr(4), addr(5), addr(6), None]


def test_queue_stays_bounded_when_a_fixed_user_reconnects() -> None:
    pool = AddressPool(NET, SERVER)
    for user in "abcde":
        pool.allocate(user)
    pool.release(addr(4))
    for _ in range(100):
        assert pool.allocate("bob", fixed=addr(4)) == addr(4)
        pool.release(addr(4))
    assert len(pool._released) == 1
    assert pool.allocate("x") == addr(4)
    assert pool.allocate("y") is None


def test_a_slash_8_costs_nothing_up_front() -> None:
    pool = AddressPool(IPv4Network("10.0.0.0/8"), IPv4Address("10.0.0.1"))
    assert pool.size == 2**24 - 3
    assert pool.allocate("a") == IPv4Address("10.0.0.2")


@pytest.mark.parametrize(
    ("network", "server", "message"),
    [
        ("10.0.0.0/31", "10.0.0.1", "too small"),
        ("10.0.0.4/32", "10.0.0.1", "too small"),
        ("10.0.0.0/29", "10.0.0.7", "broadcast address"),
        ("10.0.0.0/29", "10.0.0.0", "network address"),
    ],
)
def test_impossible_pools(network: str, server: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AddressPool(IPv4Network(network), IPv4Address(server))


def test_pool_emptied_by_server_and_reserved_addresses() -> None:
    with pytest.raises(ConfigError, match="no address left"):
        AddressPool(IPv4Network("10.0.0.0/30"), IPv4Address("10.0.0.1"), reserved=[IPv4Address("10.0.0.2")])


# Small pool with a reserved host; fixed requests may name anything in 10.0.0.0/28 (pool and beyond).
MACHINE_NET = IPv4Network("10.0.0.0/29")
MACHINE_RESERVED = IPv4Address("10.0.0.4")
ANY_ADDRESS = st.integers(0, 15).map(lambda n: IPv4Address(f"10.0.0.{n}"))


class PoolMachine(RuleBasedStateMachine):
    """Random allocate/release sequences against a model of who holds what."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = AddressPool(MACHINE_NET, SERVER, reserved=[MACHINE_RESERVED])
        self.held: dict[IPv4Address, str] = {}
        self.count = 0

    def _dynamic_held(self) -> int:
        return sum(1 for a in self.held if a in MACHINE_NET and a not in (SERVER, MACHINE_RESERVED))

    @rule()
    def allocate(self) -> None:
        self.count += 1
        free_before = self.pool.free_count
        got = self.pool.allocate(f"u{self.count}")
        if got is None:
            assert free_before == 0
            return
        assert got not in self.held
        assert got in MACHINE_NET
        assert got not in (
            SERVER,
            MACHINE_RESERVED,
            MACHINE_NET.network_address,
            MACHINE_NET.broadcast_address,
        )
        self.held[got] = f"u{self.count}"

    @rule(fixed=ANY_ADDRESS)
    def allocate_fixed(self, fixed: IPv4Address) -> None:
        self.count += 1
        got = self.pool.allocate(f"u{self.count}", fixed=fixed)
        refused = (SERVER, MACHINE_NET.network_address, MACHINE_NET.broadcast_address)
        if fixed in self.held or fixed in refused:
            assert got is None
        else:
            assert got == fixed
            self.held[fixed] = f"u{self.count}"

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release_held(self, data: st.DataObject) -> None:
        address = data.draw(st.sampled_from(sorted(self.held)))
        self.pool.release(address)
        del self.held[address]

    @rule(address=ANY_ADDRESS)
    def release_any(self, address: IPv4Address) -> None:
        self.pool.release(address)
        self.held.pop(address, None)

    @invariant()
    def matches_model(self) -> None:
        assert self.pool.in_use() == self.held
        assert self.pool.free_count == self.pool.size - self._dynamic_held()
        assert len(self.pool._released) <= self.pool.size


TestPoolMachine = PoolMachine.TestCase
