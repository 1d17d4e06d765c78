"""The coordinator of the workers: one address space, per-user limits across workers, a worker's death."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pysstp.server.addresses import AddressAuthority
from pysstp.server.admission import Limits
from pysstp.server.coordinator import Claim, Coordinator, Granted, Lease, Refused
from pysstp.server.pool import AddressPool

SERVER = IPv4Address("10.77.0.1")


def coordinator(network: str = "10.77.0.0/29", limits: Limits | None = None, **named: str) -> Coordinator:
    authority = AddressAuthority(
        AddressPool(IPv4Network(network), SERVER),
        {name: AddressPool(IPv4Network(net), SERVER) for name, net in named.items()},
        server_address=SERVER,
    )
    return Coordinator(authority, limits or Limits())


def granted(answer: Granted | Refused) -> Lease:
    assert isinstance(answer, Granted), answer
    return answer.lease


def test_workers_share_one_address_space() -> None:
    shared = coordinator()
    first = granted(shared.reserve(0, Claim("alice")))
    second = granted(shared.reserve(1, Claim("bob")))
    assert (first.address, second.address) == (IPv4Address("10.77.0.2"), IPv4Address("10.77.0.3"))
    assert (first.worker, second.worker) == (0, 1)


def test_only_the_worker_holding_a_lease_releases_it() -> None:
    shared = coordinator()
    lease = granted(shared.reserve(0, Claim("alice")))
    assert shared.release(1, lease.number) is None
    assert shared.release(0, lease.number) == lease
    assert shared.release(0, lease.number) is None


def test_no_worker_is_refused_while_any_address_is_free() -> None:
    shared = coordinator("10.77.0.0/29")  # .2 to .6: five addresses
    leases = [granted(shared.reserve(number % 2, Claim(f"user{number}"))) for number in range(5)]
    assert shared.reserve(0, Claim("late")) == Refused("no IPv4 address left in the pool for user 'late'")
    shared.release(1, leases[1].number)
    assert granted(shared.reserve(0, Claim("late"))).address == IPv4Address("10.77.0.3")


def test_the_user_limit_counts_sessions_on_every_worker() -> None:
    shared = coordinator(limits=Limits(max_sessions_per_user=2))
    granted(shared.reserve(0, Claim("alice")))
    granted(shared.reserve(1, Claim("alice")))
    assert shared.reserve(1, Claim("alice")) == Refused("user 'alice' already has 2 session(s), the limit")
    assert shared.sessions_of("alice") == 2
    # The backend's own limit for the user wins over the server's.
    granted(shared.reserve(1, Claim("alice", own_limit=3)))


def test_replace_takes_the_oldest_session_wherever_it_runs() -> None:
    shared = coordinator(limits=Limits(on_limit="replace"))
    old = granted(shared.reserve(1, Claim("alice", fixed=IPv4Address("10.77.0.5"))))
    answer = shared.reserve(0, Claim("alice", fixed=IPv4Address("10.77.0.5"), own_limit=1))
    assert isinstance(answer, Granted)
    assert answer.replaced == (old,)
    assert answer.lease.address == IPv4Address("10.77.0.5")
    # Its worker ends it later, and releases a lease that is gone: the new one keeps the address.
    assert shared.release(1, old.number) is None
    assert shared.leases() == [answer.lease]


def test_fixed_addresses_and_named_pools() -> None:
    shared = coordinator(staff="10.88.0.0/29")
    assert granted(shared.reserve(0, Claim("a", pool="staff"))).address == IPv4Address("10.88.0.1")
    fixed = granted(shared.reserve(1, Claim("b", fixed=IPv4Address("10.88.0.6"))))
    assert (fixed.address, fixed.pool) == (IPv4Address("10.88.0.6"), shared.addresses.pools["staff"])
    assert shared.reserve(0, Claim("c", fixed=IPv4Address("10.88.0.6"))) == Refused(
        "the fixed address 10.88.0.6 of user 'c' is in use"
    )
    assert shared.reserve(0, Claim("d", fixed=SERVER)) == Refused(
        "fixed address 10.77.0.1 is the server's own tunnel address (user 'd')"
    )
    refused = shared.reserve(0, Claim("e", pool="guests"))
    assert isinstance(refused, Refused)
    assert refused.reason.startswith("pool 'guests' of user 'e' is not in the config (named pools: staff)")
    shared.release(1, fixed.number)
    assert granted(shared.reserve(0, Claim("f", fixed=IPv4Address("10.88.0.6")))).worker == 0


def test_a_dead_workers_addresses_are_free_and_the_others_keep_theirs() -> None:
    shared = coordinator()
    kept = granted(shared.reserve(0, Claim("alice")))
    lost = [granted(shared.reserve(1, Claim("bob"))) for _ in range(2)]
    assert shared.worker_gone(1) == lost
    assert shared.leases() == [kept]
    assert shared.sessions_of("bob") == 0
    assert shared.addresses.pool.free_count == shared.addresses.pool.size - 1


@given(st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=60))
def test_released_addresses_come_back(steps: list[tuple[int, bool]]) -> None:
    shared = coordinator("10.77.0.0/28")
    for worker, release in steps:
        leases = shared.leases()
        if release and leases:
            shared.release(leases[0].worker, leases[0].number)
        else:
            shared.reserve(worker, Claim("u"))
    pool = shared.addresses.pool
    assert pool.free_count + len(shared.leases()) == pool.size


class Workers(RuleBasedStateMachine):
    """Three workers claim, release and die in any order: addresses never collide, the pool never
    refuses while it has room, no user exceeds a limit, and a dead worker's addresses all come back."""

    LIMIT = 2

    def __init__(self) -> None:
        super().__init__()
        self.shared = coordinator("10.77.0.0/28", extra="10.88.0.0/30")

    @rule(
        worker=st.integers(0, 2),
        user=st.sampled_from(["alice", "bob", "carol"]),
        pool=st.sampled_from([None, "extra"]),
        fixed=st.sampled_from([None, IPv4Address("10.77.0.9"), IPv4Address("10.88.0.2")]),
        limited=st.sampled_from(["no", "deny", "replace"]),
    )
    def claim(
        self, worker: int, user: str, pool: str | None, fixed: IPv4Address | None, limited: str
    ) -> None:
        before = self.shared.sessions_of(user)
        chosen = self.shared.addresses.pool if pool is None else self.shared.addresses.pools[pool]
        room = chosen.free_count
        self.shared.admission.limits = Limits(on_limit="replace" if limited == "replace" else "deny")
        claim = Claim(user, fixed=fixed, pool=pool, own_limit=None if limited == "no" else self.LIMIT)
        answer = self.shared.reserve(worker, claim)
        if isinstance(answer, Refused):
            if answer.reason.startswith("no IPv4 address left"):
                assert room == 0
            if "the limit" in answer.reason:
                assert limited == "deny" and before >= self.LIMIT
        elif limited != "no":
            assert self.shared.sessions_of(user) <= self.LIMIT

    @precondition(lambda self: bool(self.shared.leases()))
    @rule(pick=st.integers(0, 100))
    def release(self, pick: int) -> None:
        leases = self.shared.leases()
        lease = leases[pick % len(leases)]
        assert self.shared.release(lease.worker, lease.number) == lease
        assert self.shared.release(lease.worker, lease.number) is None

    @rule(worker=st.integers(0, 2))
    def worker_dies(self, worker: int) -> None:
        self.shared.worker_gone(worker)
        assert all(lease.worker != worker for lease in self.shared.leases())

    @invariant()
    def addresses_are_unique_and_counted(self) -> None:
        leases = self.shared.leases()
        addresses = [lease.address for lease in leases]
        assert len(addresses) == len(set(addresses))
        authority = self.shared.addresses
        for pool in (authority.pool, *authority.pools.values()):
            held = {lease.address for lease in leases if lease.pool is pool}
            assert set(pool.in_use()) == held
        assert sum(self.shared.sessions_of(u) for u in ("alice", "bob", "carol")) == len(leases)


Workers.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestWorkers = Workers.TestCase
