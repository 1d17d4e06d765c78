"""The session table: which session an address belongs to, and which networks are routed behind which
client. Pure bookkeeping (no sockets, no kernel, no event loop), generic in what a session is.

IPv4 addresses (4 bytes) and IPv6 addresses (16 bytes) share one dict, so the data path looks a packet's
destination up with the bytes it already has. Networks behind clients (site-to-site routes, a session's
own Framed-IPv6-Prefix) are few and searched in order when the dict has no answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Generic, TypeVar

from pysstp.server import ipv6

S = TypeVar("S")
"""A session, whatever the caller keeps per call."""

Network = IPv4Network | IPv6Network


def routed_from(routes: tuple[Network, ...], source: bytes) -> bool:
    """Whether ``source`` (4 or 16 bytes) lies in one of ``routes``, the networks behind a client."""
    if not routes:
        return False
    address = ipaddress.ip_address(source)
    return any(address in network for network in routes if network.version == address.version)


class SessionTable(Generic[S]):
    """Address bytes → session, and the networks routed behind sessions."""

    def __init__(self) -> None:
        self.by_address: dict[bytes, S] = {}
        """Each session's own addresses: its IPv4 address, its IPv6 link-local and global ones."""
        self.by_network: list[tuple[Network, S]] = []
        """Networks behind clients, first added first searched."""

    def add_address(self, key: bytes, session: S) -> None:
        """Route ``key`` (an IPv4 address, packed) to ``session``."""
        self.by_address[key] = session

    def remove_address(self, key: bytes, session: S) -> None:
        """Forget ``key`` if it still belongs to ``session`` (a newer session may hold it by now)."""
        if self.by_address.get(key) is session:
            del self.by_address[key]

    def claim(self, keys: Iterable[bytes], session: S) -> bool:
        """Route all of ``keys`` to ``session``, or none of them when any belongs to a session already:
        first come, first served, so a client cannot take over another session's addresses."""
        keys = tuple(keys)
        if any(key in self.by_address for key in keys):
            return False
        for key in keys:
            self.by_address[key] = session
        return True

    def release(self, keys: Iterable[bytes]) -> None:
        """Forget ``keys`` (claimed with :meth:`claim`)."""
        for key in keys:
            del self.by_address[key]

    def is_routed(self, network: Network) -> bool:
        """Whether exactly ``network`` is routed behind some session."""
        return any(network == routed for routed, _ in self.by_network)

    def overlaps(self, network: Network, besides: S) -> bool:
        """Whether ``network`` overlaps a network routed behind a session other than ``besides``."""
        return any(routed.overlaps(network) and owner is not besides for routed, owner in self.by_network)

    def add_network(self, network: Network, session: S) -> None:
        """Route ``network`` to ``session`` (the caller checked :meth:`is_routed`)."""
        self.by_network.append((network, session))

    def remove_networks(self, session: S) -> list[Network]:
        """Forget every network behind ``session``; return them."""
        removed = [network for network, owner in self.by_network if owner is session]
        if removed:
            self.by_network = [(n, s) for n, s in self.by_network if s is not session]
        return removed

    def route_to_network(self, address: IPv4Address | IPv6Address) -> S | None:
        """The session whose networks hold ``address``."""
        for network, owner in self.by_network:
            if network.version == address.version and address in network:
                return owner
        return None

    def route_ipv6(self, packet: bytes) -> S | None:
        """The session for an IPv6 packet's destination; ``None`` for anything that is not IPv6."""
        if not ipv6.is_ipv6(packet):
            return None
        destination = packet[ipv6.DESTINATION]
        session = self.by_address.get(destination)
        if session is not None or not self.by_network:
            return session
        return self.route_to_network(IPv6Address(destination))
