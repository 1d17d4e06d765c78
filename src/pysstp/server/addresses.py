"""The address authority: which IPv4 address (and which IPv6 prefix) a session gets.

Addresses come from the default pool, from a named pool the backend picks (RADIUS Framed-Pool), or are
fixed by the backend (the user file's ``address``, RADIUS Framed-IP-Address). Reserving is a step of its
own, awaited once the backend has said yes and before the link goes on to IPCP, so that an authority
living elsewhere (a coordinator of several worker processes) can answer it; the local pools answer at
once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Protocol

from pysstp.aaa.backend import Authorization
from pysstp.link import ServerNetwork
from pysstp.server import ipv6


class Pool(Protocol):
    """What the server needs of an address pool."""

    network: IPv4Network

    def allocate(self, user: str, fixed: IPv4Address | None = None) -> IPv4Address | None: ...

    def release(self, address: IPv4Address) -> None: ...

    def fixed_refusal(self, address: IPv4Address) -> str | None: ...


@dataclass(frozen=True)
class Reservation:
    """The addresses one session holds until :meth:`AddressAuthority.release`."""

    address: IPv4Address
    pool: Pool
    """Where the address goes back to."""
    network: ServerNetwork
    """What IPCP offers: the server's address, the client's, DNS."""
    ipv6_prefix: IPv6Network | None = None
    """The session's own /64 (Framed-IPv6-Prefix); ``None`` for the server's."""


class AddressAuthority:
    """Hands out the sessions' addresses from the server's pools."""

    def __init__(
        self,
        pool: Pool,
        pools: Mapping[str, Pool],
        *,
        server_address: IPv4Address,
        dns: tuple[IPv4Address, ...] = (),
        ipv6: bool = False,
        ipv6_prefix: IPv6Network | None = None,
    ) -> None:
        self.pool = pool
        self.pools = dict(pools)
        """Named pools, picked by the backend (RADIUS Framed-Pool)."""
        self.server_address = server_address
        self.dns = dns
        self.ipv6 = ipv6
        """Whether IPv6CP runs at all (else a Framed-IPv6-Prefix is ignored)."""
        self.ipv6_prefix = ipv6_prefix
        """The server's /64, announced to every session without a prefix of its own."""

    async def reserve(
        self,
        user: str,
        authorization: Authorization,
        *,
        prefix_taken: Callable[[IPv6Network], bool],
        log: logging.LoggerAdapter[logging.Logger],
        peer: str,
    ) -> Reservation | str:
        """Reserve the addresses of a session of ``user`` that the backend accepted with
        ``authorization``, or say why there are none. ``prefix_taken`` tells whether a /64 is already
        routed to another session; ``log`` is the session's, ``peer`` its label in log lines."""
        return self.reserve_now(user, authorization, prefix_taken=prefix_taken, log=log, peer=peer)

    def reserve_now(
        self,
        user: str,
        authorization: Authorization,
        *,
        prefix_taken: Callable[[IPv6Network], bool],
        log: logging.LoggerAdapter[logging.Logger],
        peer: str,
    ) -> Reservation | str:
        """:meth:`reserve`, from the local pools."""
        fixed = authorization.address
        if fixed is not None:
            # A fixed address is taken from the pool whose network holds it, whatever Framed-Pool says.
            pool = next((p for p in self.pools.values() if fixed in p.network), self.pool)
            if (problem := pool.fixed_refusal(fixed)) is not None:
                # The peer sees the first 64 bytes (LCP Terminate-Request): what is wrong goes first.
                return f"fixed address {problem} (user {user!r})"
        elif authorization.pool is not None:
            named = self.pools.get(authorization.pool)
            if named is None:
                known = ", ".join(sorted(self.pools)) or "none"
                return (
                    f"pool {authorization.pool!r} of user {user!r} is not in the config (named pools: "
                    f"{known}); add [pools.{authorization.pool}] or correct Framed-Pool"
                )
            pool = named
        else:
            pool = self.pool
        address = pool.allocate(user, fixed)
        if address is None:
            if fixed is not None:
                return f"the fixed address {fixed} of user {user!r} is in use"
            where = "the pool" if authorization.pool is None else f"pool {authorization.pool!r}"
            return f"no IPv4 address left in {where} for user {user!r}"
        return self._reservation(user, authorization, address, pool, prefix_taken, log, peer)

    def release(self, address: IPv4Address, pool: Pool) -> None:
        """Give a session's address back to the pool it came from."""
        pool.release(address)

    def _reservation(
        self,
        user: str,
        authorization: Authorization,
        address: IPv4Address,
        pool: Pool,
        prefix_taken: Callable[[IPv6Network], bool],
        log: logging.LoggerAdapter[logging.Logger],
        peer: str,
    ) -> Reservation | str:
        """The reservation of ``address``, taken from ``pool``, with the session's IPv6 prefix; or why
        not, with the address released again."""
        ipv6_prefix = self._own_ipv6_prefix(authorization.ipv6_prefix, prefix_taken, log, peer)
        if isinstance(ipv6_prefix, str):
            self.release(address, pool)
            return f"{ipv6_prefix} (user {user!r})"
        network = ServerNetwork(self.server_address, address, authorization.dns or self.dns)
        return Reservation(address, pool, network, ipv6_prefix)

    def _own_ipv6_prefix(
        self,
        prefix: IPv6Network | None,
        prefix_taken: Callable[[IPv6Network], bool],
        log: logging.LoggerAdapter[logging.Logger],
        peer: str,
    ) -> IPv6Network | str | None:
        """The session's own /64 from the backend (Framed-IPv6-Prefix), ``None`` for the server's, or
        why the login must be refused."""
        if prefix is None or prefix == self.ipv6_prefix:
            return None
        if not self.ipv6:
            log.info("%s: IPv6 is off; Framed-IPv6-Prefix %s not used", peer, prefix)
            return None
        if prefix.prefixlen != ipv6.SLAAC_PREFIX_LEN:
            # SLAAC forms addresses only in a /64 (RFC 4862 §5.5.3, RFC 4291 §2.5.1).
            log.warning(
                "%s: Framed-IPv6-Prefix %s is not a /64; the session gets the server's prefix", peer, prefix
            )
            return None
        if self.ipv6_prefix is not None and prefix.overlaps(self.ipv6_prefix):
            return f"Framed-IPv6-Prefix {prefix} overlaps the server's prefix {self.ipv6_prefix}"
        if prefix_taken(prefix):
            return f"Framed-IPv6-Prefix {prefix} is already routed to another session"
        return prefix
