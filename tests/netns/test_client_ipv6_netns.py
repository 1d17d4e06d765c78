"""IPv6 through the real `pysstp connect` against the real `pysstp server --ipv6 PREFIX` in network
namespaces (needs root): the client's kernel forms the prefix address from the server's advertisement,
ping -6 crosses the tunnel, and SIGINT leaves no IPv6 address or route behind."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from ipaddress import IPv6Network
from pathlib import Path

import pytest

from test_client_netns import CLIENT_TUN, Setup, client_setup, netns_pair, ping, wait_until

from helpers.namespaces import Namespace, Pair, network_state

__all__ = ["netns_pair"]

PREFIX = IPv6Network("fd77:77::/64")
SERVER_IPV6 = str(PREFIX[1])


@pytest.fixture
def setup(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    with client_setup(netns_pair, tmp_path, "--ipv6", str(PREFIX)) as made:
        yield made


def ping6(ns: Namespace, address: str) -> None:
    result = ns.run("ping", "-6", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def ipv6_routes(ns: Namespace) -> str:
    return ns.run("ip", "-6", "route", "show", "dev", CLIENT_TUN).stdout


def test_ipv6_split_tunnel_ping_and_sigint_leaves_nothing(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    process, log = setup.start_client("--ca-file", str(setup.cert), "--route", "fd99:1::/48")
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    text = log.read_text()
    assert " IPv6CP " in text
    # The summary waits for the address the kernel formed from the advertisement.
    assert re.search(r"connected: 10\.77\.0\.\d+ and fd77:77::[0-9a-f:]+ via ", text), text
    ping6(client, SERVER_IPV6)
    ping(client, "10.77.0.1")  # IPv4 as before
    routes = ipv6_routes(client)
    assert "fd99:1::/48" in routes  # --route takes IPv6 prefixes too
    assert "default" not in routes  # no --default-route: the advertisement's default route is refused
    setup.stop(process, signal.SIGINT, log)
    assert network_state(client) == before


def test_ipv6_default_route_from_the_advertisement(setup: Setup) -> None:
    client = setup.pair.client
    process, log = setup.start_client("--ca-file", str(setup.cert), "--default-route")
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    wait_until(lambda: "default" in ipv6_routes(client), "the IPv6 default route", log)
    ping6(client, SERVER_IPV6)
    setup.stop(process, signal.SIGTERM, log)
    assert CLIENT_TUN not in client.run("ip", "link").stdout


def test_no_ipv6_offers_nothing(setup: Setup) -> None:
    client = setup.pair.client
    process, log = setup.start_client("--ca-file", str(setup.cert), "--no-ipv6")
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    assert " IPv6CP " not in log.read_text()
    assert "fd77" not in client.run("ip", "-6", "addr", "show", "dev", CLIENT_TUN).stdout
    setup.stop(process, signal.SIGINT, log)
