"""Per-session IPv6 routes: with several workers each session's global address is a host route into its
worker's TUN (docs/scaling.md, "Workers"); the kernel refusing it (another worker's session holds the
address) costs that session its IPv6, not the call."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from types import SimpleNamespace
from typing import Any

from pysstp.errors import SystemSetupError
from pysstp.link import Ipv6Up
from pysstp.server.routing import SessionRouting
from pysstp.server.sessions import SessionTable

PREFIX = IPv6Network("fd77:77::/64")
PEER_IID = bytes.fromhex("0200000000000042")
SERVER_IID = bytes(7) + b"\x01"
GLOBAL = IPv6Address("fd77:77::200:0:0:42")


class Routes:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.held: list[IPv4Address | IPv6Address] = []

    def add(self, network: IPv4Network | IPv6Network, mtu: int | None = None) -> None:
        raise AssertionError("no MTU route: the session's MTU is the TUN's")

    def remove(self, network: IPv4Network | IPv6Network) -> None:
        raise AssertionError("no MTU route to remove")

    def hold(self, address: IPv4Address | IPv6Address) -> None:
        if self.refuse:
            raise SystemSetupError("File exists")
        self.held.append(address)

    def let_go(self, address: IPv4Address | IPv6Address) -> None:
        self.held.remove(address)


def session() -> Any:
    return SimpleNamespace(
        ipv6_keys=(),
        router_address=None,
        ipv6_prefix=PREFIX,
        mtu=1400,
        mtu_routes=(),
        peer="192.0.2.7:4000",
        log=logging.LoggerAdapter(logging.getLogger("pysstp.server")),
    )


def test_the_global_address_is_held_while_ipv6_is_up() -> None:
    routes = Routes()
    routing = SessionRouting(SessionTable(), routes, tun_mtu=1400)
    connection = session()
    assert routing.ipv6_up(connection, Ipv6Up(SERVER_IID, PEER_IID))
    assert routes.held == [GLOBAL]
    routing.ipv6_down(connection)
    assert routes.held == [] and connection.ipv6_keys == ()


def test_an_address_the_kernel_will_not_route_here_means_no_ipv6(caplog: Any) -> None:
    table: SessionTable[Any] = SessionTable()
    routing = SessionRouting(table, Routes(refuse=True), tun_mtu=1400)
    connection = session()
    assert not routing.ipv6_up(connection, Ipv6Up(SERVER_IID, PEER_IID))
    assert f"cannot route IPv6 address {GLOBAL} to this session" in caplog.text
    # Its addresses are free for the session that can have them.
    assert SessionRouting(table, Routes(), tun_mtu=1400).ipv6_up(session(), Ipv6Up(SERVER_IID, PEER_IID))
