"""What the worker processes share, kept by the supervisor: one address space over all pools, which
worker's session holds each address, and how many sessions each user has across all workers.

With ``workers = N`` every worker runs its own calls, but an address must not be given twice and a
user's session limit counts sessions everywhere. Workers ask here (over their
:class:`~pysstp.server.workerchannel.Channel`) once a login has its verdict, before the link is answered;
the answer is an address, or why not. A worker that dies loses its leases all at once, so its addresses
are free again while the other workers' sessions keep theirs (docs/scaling.md, "Workers").

Pure logic: the supervisor feeds it the workers' requests and carries its answers back.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from pysstp.server.pool import AddressPool

OnLimit = Literal["deny", "replace"]
"""What a login beyond a user's session limit does (``limits.on_limit``)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker asks for an address for one session of ``user``.

    ``fixed`` is the backend's address for the user, ``pool`` the named pool it picked (RADIUS
    Framed-Pool); ``limit`` is the user's session limit (0: none) and ``on_limit`` what a session beyond
    it does.
    """

    user: str
    fixed: IPv4Address | None = None
    pool: str | None = None
    limit: int = 0
    on_limit: OnLimit = "deny"


@dataclass(frozen=True, slots=True)
class Lease:
    """An address held by a session of worker ``worker``; ``number`` names the lease (an address may be
    leased again, to a newer session of the same user on the same worker, before the older one is
    gone)."""

    number: int
    worker: int
    user: str
    address: IPv4Address
    pool: str | None
    """The named pool it came from; ``None`` for the default pool."""


@dataclass(frozen=True, slots=True)
class Granted:
    """The claim's address; ``replaced`` are the user's older sessions it ends (``on_limit =
    "replace"``), whose addresses are already free: their workers must end them."""

    lease: Lease
    replaced: tuple[Lease, ...] = ()


@dataclass(frozen=True, slots=True)
class Refused:
    """Why the claim gets no address (the peer reads it in LCP Terminate-Request: the cause first)."""

    reason: str


class Coordinator:
    """Leases of addresses from the default ``pool`` and the named ``pools``, per worker and per user."""

    def __init__(self, pool: AddressPool, pools: Mapping[str, AddressPool] | None = None) -> None:
        self.pool = pool
        self.pools = dict(pools or {})
        self._numbers = itertools.count(1)
        self._leases: dict[int, Lease] = {}
        self._by_user: dict[str, dict[int, Lease]] = {}
        """Each user's leases, oldest first (dicts keep insertion order)."""

    def leases(self) -> list[Lease]:
        """Every lease held now, oldest first."""
        return list(self._leases.values())

    def sessions_of(self, user: str) -> int:
        """How many sessions ``user`` holds on all workers."""
        return len(self._by_user.get(user, ()))

    def reserve(self, worker: int, claim: Claim) -> Granted | Refused:
        """An address for a session of ``worker``, or why not."""
        replaced: tuple[Lease, ...] = ()
        others = list(self._by_user.get(claim.user, {}).values())
        if claim.limit and len(others) >= claim.limit:
            if claim.on_limit == "deny":
                return Refused(f"user {claim.user!r} already has {len(others)} session(s), the limit")
            # The oldest go, and at once: the new session may take over their fixed address.
            replaced = tuple(others[: len(others) - claim.limit + 1])
            for lease in replaced:
                self._drop(lease)
        picked = self._pick_pool(claim)
        if isinstance(picked, Refused):
            return picked
        name, pool = picked
        address = pool.allocate(claim.user, claim.fixed)
        if address is None:
            if claim.fixed is not None:
                return Refused(f"the fixed address {claim.fixed} of user {claim.user!r} is in use")
            where = "the pool" if name is None else f"pool {name!r}"
            return Refused(f"no IPv4 address left in {where} for user {claim.user!r}")
        lease = Lease(next(self._numbers), worker, claim.user, address, name)
        self._leases[lease.number] = lease
        self._by_user.setdefault(claim.user, {})[lease.number] = lease
        return Granted(lease, replaced)

    def release(self, worker: int, number: int) -> Lease | None:
        """A session of ``worker`` has ended: the address of its lease is free again. Releasing twice,
        a lease another session replaced, or another worker's lease does nothing."""
        lease = self._leases.get(number)
        if lease is None or lease.worker != worker:
            return None
        self._drop(lease)
        return lease

    def worker_gone(self, worker: int) -> list[Lease]:
        """A worker has died: every address its sessions held is free again; return those leases."""
        gone = [lease for lease in self._leases.values() if lease.worker == worker]
        for lease in gone:
            self._drop(lease)
        return gone

    def _pick_pool(self, claim: Claim) -> tuple[str | None, AddressPool] | Refused:
        """The pool the claim's address comes from: the one holding its fixed address, else the named
        pool it picked, else the default pool."""
        fixed = claim.fixed
        if fixed is not None:
            # A fixed address is taken from the pool whose network holds it, whatever Framed-Pool says.
            found = next(((n, p) for n, p in self.pools.items() if fixed in p.network), None)
            name, pool = found if found is not None else (None, self.pool)
            problem = pool.fixed_refusal(fixed)
            if problem is not None:
                return Refused(f"fixed address {problem} (user {claim.user!r})")
            return name, pool
        if claim.pool is None:
            return None, self.pool
        named = self.pools.get(claim.pool)
        if named is None:
            known = ", ".join(sorted(self.pools)) or "none"
            return Refused(
                f"pool {claim.pool!r} of user {claim.user!r} is not in the config (named pools: {known}); "
                f"add [pools.{claim.pool}] or correct Framed-Pool"
            )
        return claim.pool, named

    def _drop(self, lease: Lease) -> None:
        del self._leases[lease.number]
        mine = self._by_user[lease.user]
        del mine[lease.number]
        if not mine:
            del self._by_user[lease.user]
        pool = self.pool if lease.pool is None else self.pools[lease.pool]
        pool.release(lease.address)
