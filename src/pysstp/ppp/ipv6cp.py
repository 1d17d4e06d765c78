"""IPv6CP (RFC 5072): Interface-Identifier negotiation on top of :class:`OptionFsm`.

Each side proposes a random, non-zero 64-bit interface identifier; a peer proposing zero or our own
identifier gets a Nak with a fresh one, a Nak of ours is adopted, and IPv6-Compression-Protocol and unknown
options are rejected. The identifiers give both ends their fe80::/64 link-local addresses.
"""

from __future__ import annotations

import os
from ipaddress import IPv6Address
from typing import Unpack

from pysstp.ppp.constants import INTERFACE_IDENTIFIER_SIZE, Ipv6cpOption, Protocol
from pysstp.ppp.fsm import FsmLimits, OptionFsm, configure_reply, random_nonzero
from pysstp.ppp.packet import Option
from pysstp.randomness import RandomBytes

LINK_LOCAL_PREFIX = IPv6Address("fe80::").packed[:INTERFACE_IDENTIFIER_SIZE]
"""fe80::/64: the upper half of every link-local address (RFC 4291 §2.5.6)."""

_ZERO_IID = bytes(INTERFACE_IDENTIFIER_SIZE)


def link_local_address(interface_id: bytes) -> IPv6Address:
    """fe80::/64 + the 8-byte interface identifier."""
    return IPv6Address(LINK_LOCAL_PREFIX + interface_id)


class Ipv6cp(OptionFsm):
    """IPv6 Control Protocol.

    Results, valid after :class:`~pysstp.ppp.fsm.LayerUp`: :attr:`local_iid` (ours, also when the peer
    rejected the option), :attr:`peer_iid` (all zero when the peer did not propose one) and the link-local
    addresses :attr:`local_link_local` / :attr:`peer_link_local`.
    """

    __slots__ = ("_ask_iid", "_random_bytes", "local_iid", "peer_iid")

    def __init__(
        self,
        *,
        random_bytes: RandomBytes = os.urandom,
        interface_id: bytes | None = None,
        **limits: Unpack[FsmLimits],
    ) -> None:
        super().__init__(Protocol.IPV6CP, **limits)
        if interface_id is not None and (
            len(interface_id) != INTERFACE_IDENTIFIER_SIZE or not any(interface_id)
        ):
            raise ValueError("an interface identifier is 8 bytes, not all zero")
        self._random_bytes = random_bytes
        self.local_iid = interface_id or random_nonzero(random_bytes, INTERFACE_IDENTIFIER_SIZE)
        self.peer_iid = _ZERO_IID
        self._ask_iid = True

    @property
    def local_link_local(self) -> IPv6Address:
        """Our link-local address."""
        return link_local_address(self.local_iid)

    @property
    def peer_link_local(self) -> IPv6Address | None:
        """The peer's link-local address, if it proposed an identifier."""
        return link_local_address(self.peer_iid) if any(self.peer_iid) else None

    def reset_negotiation(self) -> None:
        """Propose our identifier again (it is kept across renegotiations)."""
        self._ask_iid = True

    def request_options(self) -> list[Option]:
        """Interface-Identifier, unless the peer rejected it."""
        return [Option(Ipv6cpOption.INTERFACE_IDENTIFIER, self.local_iid)] if self._ask_iid else []

    def check_request(self, options: list[Option]) -> tuple[int, list[Option]]:
        """Accept a usable identifier, Nak zero or ours with a fresh one, reject everything else."""
        rejected: list[Option] = []
        naked: list[Option] = []
        for option in options:
            if (
                option.type != Ipv6cpOption.INTERFACE_IDENTIFIER
                or len(option.value) != INTERFACE_IDENTIFIER_SIZE
            ):
                rejected.append(option)
            elif option.value in (_ZERO_IID, self.local_iid):
                fresh = random_nonzero(self._random_bytes, INTERFACE_IDENTIFIER_SIZE, (self.local_iid,))
                naked.append(Option(Ipv6cpOption.INTERFACE_IDENTIFIER, fresh))
        return configure_reply(options, rejected, naked)

    def apply_peer_options(self, options: list[Option]) -> None:
        """Record the peer's identifier."""
        for option in options:
            if option.type == Ipv6cpOption.INTERFACE_IDENTIFIER:
                self.peer_iid = option.value

    def on_nak(self, options: list[Option]) -> None:
        """Adopt the identifier the peer suggests unless zero, ours or its own; else pick a fresh one."""
        for option in options:
            if option.type == Ipv6cpOption.INTERFACE_IDENTIFIER and self._ask_iid:
                taken = {self.local_iid, self.peer_iid}
                usable = len(option.value) == INTERFACE_IDENTIFIER_SIZE and any(option.value)
                if usable and option.value not in taken:
                    self.local_iid = option.value
                else:
                    self.local_iid = random_nonzero(self._random_bytes, INTERFACE_IDENTIFIER_SIZE, taken)

    def on_reject(self, options: list[Option]) -> None:
        """The peer does not negotiate identifiers: keep ours for the link-local address, stop asking."""
        if any(option.type == Ipv6cpOption.INTERFACE_IDENTIFIER for option in options):
            self._ask_iid = False
