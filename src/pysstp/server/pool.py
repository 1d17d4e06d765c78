"""The server's IPv4 address pool: one address per session, handed out and taken back in O(1).

Addresses are handed out lowest first until every address of the pool has been used once; from then on
the pool takes released addresses in the order they came back. An address a client just left therefore
rests as long as possible before somebody else gets it, so late packets and stale routes on the far side
do not reach the wrong user.

The pool never builds a list of all its addresses: a counter walks the fresh ones, and only released
addresses sit in a queue. A /8 costs as little as a /29.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from pysstp.errors import ConfigError

SMALLEST_POOL_PREFIX = 30
"""A /30 holds the network address, the server, one client and the broadcast address."""


class AddressPool:
    """Tunnel addresses for sessions, keyed by address, remembering which user holds each one.

    ``reserved`` addresses are never handed out dynamically (for example the fixed addresses of the user
    database, so nobody takes them while their owner is offline); a fixed request may still name one.
    """

    def __init__(
        self, network: IPv4Network, server_address: IPv4Address, reserved: Iterable[IPv4Address] = ()
    ) -> None:
        if network.prefixlen > SMALLEST_POOL_PREFIX:
            raise ConfigError(
                f"address pool {network} is too small: the smallest pool is a /{SMALLEST_POOL_PREFIX}"
            )
        for special, name in ((network.network_address, "network"), (network.broadcast_address, "broadcast")):
            if server_address == special:
                raise ConfigError(f"server address {server_address} is the {name} address of pool {network}")
        self.network = network
        self.server_address = server_address
        self._excluded = frozenset((server_address, *reserved))
        self._first = int(network.network_address) + 1
        self._last = int(network.broadcast_address) - 1
        self._size = self._last - self._first + 1 - sum(1 for a in self._excluded if self._in_range(a))
        if self._size <= 0:
            raise ConfigError(f"address pool {network} has no address left once the server's is taken")
        self._free = self._size
        # Fresh scan: the lowest address of the range not looked at yet.
        self._next = self._first
        # Released addresses, oldest first; ``_queued`` mirrors the queue so that no address is queued
        # twice, which keeps the queue no longer than the pool.
        self._released: deque[IPv4Address] = deque()
        self._queued: set[IPv4Address] = set()
        self._in_use: dict[IPv4Address, str] = {}

    @property
    def size(self) -> int:
        """How many addresses the pool hands out dynamically (hosts minus server and reserved)."""
        return self._size

    @property
    def free_count(self) -> int:
        """How many of those are free now."""
        return self._free

    def in_use(self) -> dict[IPv4Address, str]:
        """Every address held by a session (fixed ones included) and its user; a copy."""
        return dict(self._in_use)

    def allocate(self, user: str, fixed: IPv4Address | None = None) -> IPv4Address | None:
        """Give ``user`` an address: ``fixed`` if given and free, else the next free one of the pool.

        ``fixed`` may lie outside the pool network. ``None`` means no address: the pool is exhausted, or
        ``fixed`` is held by another session, is the server's, or is the pool's network/broadcast address.
        """
        if fixed is not None:
            if fixed in self._in_use or fixed in (
                self.server_address,
                self.network.network_address,
                self.network.broadcast_address,
            ):
                return None
            return self._take(fixed, user)
        while self._next <= self._last:
            candidate = IPv4Address(self._next)
            self._next += 1
            # A fixed request may have taken an address the scan had not reached yet.
            if candidate not in self._excluded and candidate not in self._in_use:
                return self._take(candidate, user)
        while self._released:
            candidate = self._released.popleft()
            self._queued.discard(candidate)
            # Stale entry: a fixed request took it after it was released; it is queued again on release.
            if candidate not in self._in_use:
                return self._take(candidate, user)
        return None

    def fixed_refusal(self, address: IPv4Address) -> str | None:
        """Why ``address`` cannot be a user's fixed address, or ``None`` when it can.

        The kernel routes only the pool network into the TUN, so replies to an address outside it would
        leave by another interface; the server's own address and the network and broadcast addresses are
        never a client's.
        """
        if address == self.server_address:
            return f"{address} is the server's own tunnel address"
        if address not in self.network:
            return f"{address} is outside the pool {self.network}"
        if address in (self.network.network_address, self.network.broadcast_address):
            return f"{address} is the network or broadcast address of the pool {self.network}"
        return None

    def release(self, address: IPv4Address) -> None:
        """Take ``address`` back. Releasing an address that is not in use does nothing."""
        if self._in_use.pop(address, None) is None or not self._is_dynamic(address):
            return
        self._free += 1
        # An address the fresh scan has not reached (a fixed one taken early) is found by the scan later.
        if int(address) < self._next and address not in self._queued:
            self._released.append(address)
            self._queued.add(address)

    def _take(self, address: IPv4Address, user: str) -> IPv4Address:
        self._in_use[address] = user
        if self._is_dynamic(address):
            self._free -= 1
        return address

    def _in_range(self, address: IPv4Address) -> bool:
        return self._first <= int(address) <= self._last

    def _is_dynamic(self, address: IPv4Address) -> bool:
        """True for addresses the pool itself hands out (and counts in ``size``)."""
        return self._in_range(address) and address not in self._excluded
