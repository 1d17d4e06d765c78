"""What the worker processes share, kept by the supervisor: one address space over all pools, which
worker's session holds each address, and how many sessions each user has across all workers.

With ``workers = N`` every worker runs its own calls, but an address must not be given twice and a
user's session limit counts sessions everywhere. Workers ask here (over their
:class:`~pysstp.server.workerchannel.Channel`) once a login has its verdict, before the link is answered;
the answer is an address, or why not. A worker that dies loses its leases all at once, so its addresses
are free again while the other workers' sessions keep theirs (docs/scaling.md, "Workers").

Pure logic, with the single server's own rules: the address authority's pools
(:class:`~pysstp.server.addresses.AddressAuthority`) and admission's per-user limit
(:meth:`~pysstp.server.admission.Admission.for_user`). The supervisor feeds it the workers' requests and
carries its answers back.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from ipaddress import IPv4Address

from pysstp.aaa.backend import Authorization
from pysstp.server.addresses import AddressAuthority, Pool
from pysstp.server.admission import Admission, Limits

_QUIET = logging.LoggerAdapter(logging.getLogger("pysstp.server"))
"""For the authority's IPv6 notes, which never come: each worker checks its sessions' prefixes."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker asks for an address for one session of ``user``: ``fixed`` is the backend's address for
    the user, ``pool`` the named pool it picked (RADIUS Framed-Pool), ``own_limit`` the backend's session
    limit for the user (the user file's ``max_sessions``), which overrides ``max_sessions_per_user``."""

    user: str
    fixed: IPv4Address | None = None
    pool: str | None = None
    own_limit: int | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """An address held by a session of worker ``worker``; ``number`` names the lease (an address may be
    leased again, to a newer session of the same user on the same worker, before the older one is
    gone)."""

    number: int
    worker: int
    user: str
    address: IPv4Address
    pool: Pool
    """The pool it goes back to."""


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
    """Leases of the addresses ``addresses`` hands out (the server's pools), per worker and per user,
    with the users' session limits of ``limits``."""

    def __init__(self, addresses: AddressAuthority, limits: Limits) -> None:
        self.addresses = addresses
        self.admission = Admission(limits)
        """The users' session limits (``admit`` is each worker's, for its own calls)."""
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
        others = list(self._by_user.get(claim.user, {}).values())
        decision = self.admission.for_user(claim.user, claim.own_limit, others)
        if isinstance(decision, str):
            return Refused(decision)
        # The oldest go, and at once: the new session may take over their fixed address.
        for lease in decision:
            self._drop(lease)
        reservation = self.addresses.reserve_now(
            claim.user,
            Authorization(address=claim.fixed, pool=claim.pool),
            prefix_taken=lambda _prefix: False,
            log=_QUIET,
            peer=f"worker {worker}",
        )
        if isinstance(reservation, str):
            return Refused(reservation)
        lease = Lease(next(self._numbers), worker, claim.user, reservation.address, reservation.pool)
        self._leases[lease.number] = lease
        self._by_user.setdefault(claim.user, {})[lease.number] = lease
        return Granted(lease, tuple(decision))

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

    def _drop(self, lease: Lease) -> None:
        del self._leases[lease.number]
        mine = self._by_user[lease.user]
        del mine[lease.number]
        if not mine:
            del self._by_user[lease.user]
        self.addresses.release(lease.address, lease.pool)
