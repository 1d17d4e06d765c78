"""IPCP (RFC 1332, RFC 1877): IPv4 addresses and DNS servers on top of :class:`OptionFsm`.

Server: asks for its own address (IP-Address = ``local_address``); to the client it Naks IP-Address with
the assigned ``peer_address`` (also when the client's request has no IP-Address at all, which SoftEther
treats as 0.0.0.0), Naks Primary/Secondary-DNS with the configured servers (the first one for both when only
one is configured) or rejects them when none is, and rejects NBNS (WINS), IP-Compression and unknown options.
A client that keeps asking for another address gets Naks until Max-Failure, then a Reject, then the layer
closes.

Client: asks for IP-Address 0.0.0.0 (and Primary/Secondary-DNS 0.0.0.0 when ``request_dns``), adopts the
values the server Naks, stops asking for rejected options, Acks whatever IP-Address the server names for
itself and rejects every other option in the server's request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal, Unpack

from pysstp.ppp.constants import IPV4_ADDRESS_SIZE, IpcpOption, Protocol, Role
from pysstp.ppp.fsm import FsmLimits, NegotiationFailed, OptionFsm, configure_reply
from pysstp.ppp.packet import Option

_UNSPECIFIED = IPv4Address(0)
_DNS_OPTIONS = (IpcpOption.PRIMARY_DNS, IpcpOption.SECONDARY_DNS)
_MAX_DNS = len(_DNS_OPTIONS)


@dataclass(frozen=True, slots=True)
class IpcpConfig:
    """IPCP settings. A server needs ``local_address`` and ``peer_address``; a client needs nothing.

    ``dns`` (server, up to two) is what the client gets for Primary/Secondary-DNS; ``request_dns`` (client)
    asks the server for DNS servers.
    """

    role: Role | Literal["client", "server"]
    local_address: IPv4Address | None = None
    peer_address: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    request_dns: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        if len(self.dns) > _MAX_DNS:
            raise ValueError(f"IPCP carries at most {_MAX_DNS} DNS servers, got {len(self.dns)}")
        if self.role is Role.SERVER and (
            self.local_address in (None, _UNSPECIFIED) or self.peer_address in (None, _UNSPECIFIED)
        ):
            raise ValueError("an IPCP server needs a local and a peer address other than 0.0.0.0")


def _address_option(option_type: int, address: IPv4Address) -> Option:
    return Option(option_type, address.packed)


def _address(option: Option) -> IPv4Address | None:
    """The option's IPv4 address, or None when its length is wrong."""
    return IPv4Address(option.value) if len(option.value) == IPV4_ADDRESS_SIZE else None


class Ipcp(OptionFsm):
    """IPv4 Control Protocol.

    Results, valid after :class:`~pysstp.ppp.fsm.LayerUp`: :attr:`local_address`, :attr:`peer_address`
    and :attr:`dns_servers` (client: what the server gave us; server: what the client accepted). An address
    that was not negotiated is 0.0.0.0: a client's ``peer_address`` when the server did not name its own.
    """

    __slots__ = ("_server", "_wishes", "config", "dns_servers", "local_address", "peer_address")

    def __init__(self, config: IpcpConfig, **limits: Unpack[FsmLimits]) -> None:
        super().__init__(Protocol.IPCP, **limits)
        self.config = config
        self._server = config.role is Role.SERVER
        self.local_address = config.local_address or _UNSPECIFIED
        self.peer_address = _UNSPECIFIED
        self.dns_servers: tuple[IPv4Address, ...] = ()
        self._wishes: dict[int, IPv4Address] | None = None
        """What we ask for, once the peer's Nak or Reject changed it; ``None``: what is configured (so
        that an idle call keeps no dict of its own)."""

    def reset_negotiation(self) -> None:
        """Ask again for every configured option, starting from the configured values."""
        self._wishes = None

    def _current_wishes(self) -> dict[int, IPv4Address]:
        """What we ask for: the configured values (a fresh dict), or what the peer's answers made of them."""
        if self._wishes is not None:
            return self._wishes
        if self._server:
            assert self.config.local_address is not None  # checked by IpcpConfig
            return {IpcpOption.IP_ADDRESS: self.config.local_address}
        wishes: dict[int, IPv4Address] = {IpcpOption.IP_ADDRESS: _UNSPECIFIED}
        if self.config.request_dns:
            wishes.update(dict.fromkeys(_DNS_OPTIONS, _UNSPECIFIED))
        return wishes

    def request_options(self) -> list[Option]:
        """Our address (server: our own; client: 0.0.0.0 or the Nak'ed one), then DNS (client)."""
        wishes = self._current_wishes()
        return [_address_option(option_type, address) for option_type, address in wishes.items()]

    def check_request(self, options: list[Option]) -> tuple[int, list[Option]]:
        """Server: steer the client to its address and our DNS. Client: accept the server's address."""
        if self._server:
            return self._check_client_request(options)
        rejected = [o for o in options if o.type != IpcpOption.IP_ADDRESS or _address(o) is None]
        return configure_reply(options, rejected, [])

    def apply_peer_options(self, options: list[Option]) -> None:
        """Server: the client's address and DNS; client: the server's address."""
        addresses = {option.type: _address(option) for option in options}
        peer_address = addresses.get(IpcpOption.IP_ADDRESS) or _UNSPECIFIED
        # The server's results are nearly always what it offered: keep the offered objects rather than
        # the same values parsed again, once per call.
        self.peer_address = (
            self.config.peer_address if peer_address == self.config.peer_address else peer_address
        )
        if self._server:
            dns = self._dns_from(addresses)
            self.dns_servers = self.config.dns if dns == self.config.dns else dns

    def on_ack(self, options: list[Option]) -> None:
        """Client: our address and DNS servers are the values the server just acknowledged (not 0.0.0.0)."""
        if not self._server:
            wishes = self._current_wishes()
            self.local_address = wishes.get(IpcpOption.IP_ADDRESS, _UNSPECIFIED)
            if self.local_address == _UNSPECIFIED:
                raise NegotiationFailed("server acknowledged 0.0.0.0 as our address: it assigns none")
            self.dns_servers = self._dns_from(wishes)

    def on_nak(self, options: list[Option]) -> None:
        """Client: adopt the address and DNS servers the server names (only for options we ask for)."""
        if self._server:
            return  # our own address is configured, not negotiable
        wishes = self._wishes = self._current_wishes()
        for option in options:
            address = _address(option)
            if option.type in wishes and address is not None:
                wishes[option.type] = address

    def on_reject(self, options: list[Option]) -> None:
        """Stop asking for rejected options; a client cannot work without an address."""
        wishes = self._wishes = self._current_wishes()
        for option in options:
            wishes.pop(option.type, None)
            if option.type == IpcpOption.IP_ADDRESS and not self._server:
                raise NegotiationFailed("server rejected the IP-Address option: it assigns no address")

    def _check_client_request(self, options: list[Option]) -> tuple[int, list[Option]]:
        assert self.config.peer_address is not None  # checked by IpcpConfig
        rejected: list[Option] = []
        naked: list[Option] = []
        requested = _UNSPECIFIED  # a request without IP-Address is read as 0.0.0.0 (as SoftEther does)
        for option in options:
            address = _address(option)
            if option.type == IpcpOption.IP_ADDRESS and address is not None:
                requested = address
            elif option.type in _DNS_OPTIONS and address is not None and self.config.dns:
                offered = self._offered_dns(option.type)
                if address != offered:
                    naked.append(_address_option(option.type, offered))
            else:
                rejected.append(option)
        if requested != self.config.peer_address:
            # Nak'ing an option the peer did not send is allowed: it is a hint (RFC 1661 §5.3).
            naked.insert(0, _address_option(IpcpOption.IP_ADDRESS, self.config.peer_address))
        return configure_reply(options, rejected, naked)

    def _offered_dns(self, option_type: int) -> IPv4Address:
        index = _DNS_OPTIONS.index(IpcpOption(option_type))
        return self.config.dns[min(index, len(self.config.dns) - 1)]

    @staticmethod
    def _dns_from(addresses: Mapping[int, IPv4Address | None]) -> tuple[IPv4Address, ...]:
        found = [addresses.get(option_type) for option_type in _DNS_OPTIONS]
        # dict.fromkeys: one server given as primary and secondary is one server to use.
        return tuple(dict.fromkeys(a for a in found if a is not None and a != _UNSPECIFIED))
