"""Pushed routes and domain between the real `pysstp connect` and the real `pysstp server` in network
namespaces (needs root): the client's DHCPINFORM is answered by the server (options 121/249 and 15), the
client reaches a network behind the server through the pushed route and nothing else goes through the
tunnel; with IPv6 the router advertisement carries RDNSS, DNSSL and Route Information; nothing is left
behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from pysstp import nd
from test_client_netns import (
    CLIENT_TUN,
    PYSSTP,
    SERVER_TUNNEL_IP,
    Setup,
    client_setup,
    netns_pair,
    ping,
    route_device,
    wait_until,
)
from test_client_reconnect import kill_server, restart_server

from helpers.namespaces import Namespace, Pair, network_state

__all__ = ["netns_pair"]

BEHIND = "10.99.0.1"
"""An address on a network behind the server (a link in its namespace), reached by the pushed route."""
PREFIX = IPv6Network("fd77:77::/64")
BEHIND6 = "fd99:99::1"
IPV6_DNS = "fd77:77::53"
PUSH = ("--push-route", "10.99.0.0/16", "--push-route", "fd99:99::/48", "--push-domain", "corp.test")


def network_behind(ns: Namespace) -> None:
    """A network behind the server: one end of a veth pair (the kernel may lack dummy links), gone with
    the namespace."""
    ns.run("ip", "link", "add", "behind0", "type", "veth", "peer", "name", "behind1")
    ns.run("ip", "link", "set", "behind1", "up")
    ns.run("ip", "addr", "add", f"{BEHIND}/16", "dev", "behind0")
    ns.run("ip", "-6", "addr", "add", f"{BEHIND6}/48", "dev", "behind0", "nodad")
    ns.run("ip", "link", "set", "behind0", "up")


@pytest.fixture
def setup(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    network_behind(netns_pair.server)
    with client_setup(netns_pair, tmp_path, *PUSH) as made:
        yield made


@pytest.fixture
def setup6(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    network_behind(netns_pair.server)
    with client_setup(
        netns_pair, tmp_path, *PUSH, "--ipv6", str(PREFIX), "--push-ipv6-dns", IPV6_DNS
    ) as made:
        yield made


def test_pushed_route_and_domain_and_nothing_left(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    process, log = setup.start_client("--ca-file", str(setup.cert), "--dns", "--no-ipv6")
    wait_until(lambda: "(from the server)" in log.read_text(), "the pushed route", log)
    assert route_device(client, "10.99.7.7") == CLIENT_TUN
    assert route_device(client, "192.0.2.1") != CLIENT_TUN  # nothing else through the tunnel
    assert route_device(client, "10.98.0.1") != CLIENT_TUN
    ping(client, BEHIND)
    wait_until(lambda: "search corp.test" in str(network_state(client)["resolv.conf"]), "the domain", log)
    resolv = str(network_state(client)["resolv.conf"])
    assert resolv.splitlines()[1:] == [f"nameserver {SERVER_TUNNEL_IP}", "search corp.test corp.example"]
    setup.stop(process, signal.SIGINT, log)
    assert network_state(client) == before


def test_no_server_routes_and_own_routes_win(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    process, log = setup.start_client("--ca-file", str(setup.cert), "--no-server-routes", "--no-ipv6")
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    ping(client, SERVER_TUNNEL_IP)
    assert route_device(client, "10.99.7.7") != CLIENT_TUN
    setup.stop(process, signal.SIGTERM, log)
    assert network_state(client) == before
    process, log = setup.start_client("--ca-file", str(setup.cert), "--route", "10.99.0.0/24", "--no-ipv6")
    wait_until(lambda: "overlaps a --route" in log.read_text(), "the refused pushed route", log)
    assert route_device(client, "10.99.0.7") == CLIENT_TUN  # the user's own /24
    assert route_device(client, "10.99.7.7") != CLIENT_TUN  # not the server's /16
    setup.stop(process, signal.SIGTERM, log)
    assert network_state(client) == before


def capture_advertisement(ns: Namespace, ifname: str) -> subprocess.Popen[str]:
    """A raw ICMPv6 socket on ``ifname`` that prints the next router advertisement as hex."""
    script = (
        "import socket, struct\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n"
        f"s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'{ifname}')\n"
        "s.settimeout(30)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    m = s.recv(65535)\n"
        "    if m[0] == 134:\n"
        "        print(m.hex(), flush=True)\n"
        "        break\n"
    )
    return ns.start(["python3", "-c", script], None)


def test_advertisement_carries_dns_domain_and_routes_and_the_client_applies_them(setup6: Setup) -> None:
    client = setup6.pair.client
    before = network_state(client)
    process, log = setup6.start_client("--ca-file", str(setup6.cert), "--dns")
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    # Ask for an advertisement: the server answers a Router Solicitation at once.
    capture = capture_advertisement(client, CLIENT_TUN)
    assert capture.stdout is not None and capture.stdout.readline().strip() == "ready"
    client.run("python3", "-c", SOLICIT.format(ifname=CLIENT_TUN))
    out, _ = capture.communicate(timeout=40)
    options = nd.read_options(bytes.fromhex(out.strip()))
    assert options.dns == (IPv6Address(IPV6_DNS),)
    assert options.domains == ("corp.test",)
    assert options.routes == (IPv6Network("fd99:99::/48"),)
    # The kernel took the Route Information option; the client the RDNSS and DNSSL.
    wait_until(
        lambda: "fd99:99::/48" in client.run("ip", "-6", "route", "show", "dev", CLIENT_TUN).stdout,
        "the pushed IPv6 route",
        log,
    )
    wait_until(lambda: f"nameserver {IPV6_DNS}" in str(network_state(client)["resolv.conf"]), "RDNSS", log)
    assert "search corp.test" in str(network_state(client)["resolv.conf"])
    result = client.run("ping", "-6", "-c", "2", "-W", "2", "-i", "0.2", BEHIND6, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    setup6.stop(process, signal.SIGINT, log)
    assert network_state(client) == before


SOLICIT = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'{ifname}')\n"
    "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)\n"
    "s.sendto(bytes((133, 0, 0, 0, 0, 0, 0, 0)), ('ff02::2', 0, 0, socket.if_nametoindex('{ifname}')))\n"
)
"""A Router Solicitation (RFC 4861 §4.1); the kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets."""


DHCP_REQUEST = """
import socket, sys
from ipaddress import IPv4Address
from pysstp import dhcp
ifname, address, server = sys.argv[1], IPv4Address(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
s.bind((str(address), dhcp.CLIENT_PORT))
request = dhcp.Message(op=dhcp.BOOTREQUEST, xid=7, ciaddr=address, options=((53, bytes((3,))),))
s.sendto(dhcp.build(request), (server, dhcp.SERVER_PORT))
"""


def test_other_dhcp_is_dropped_and_counted(setup: Setup) -> None:
    process, log = setup.start_client("--ca-file", str(setup.cert), "--no-ipv6")
    wait_until(lambda: "(from the server)" in log.read_text(), "the pushed route", log)
    address = str(setup.pair.client.run("ip", "-j", "-4", "addr", "show", "dev", CLIENT_TUN).stdout)
    local = json.loads(address)[0]["addr_info"][0]["local"]
    setup.pair.client.run(sys.executable, "-c", DHCP_REQUEST, CLIENT_TUN, local, SERVER_TUNNEL_IP)

    def dhcp_drops() -> int:
        status = setup.pair.server.run(
            PYSSTP, "status", "--socket", str(setup.tmp / "ctl.sock"), "--json"
        ).stdout
        return int(json.loads(status)["server"]["drops"]["dhcp"])

    wait_until(lambda: dhcp_drops() == 1, "the DHCPREQUEST to be counted", setup.tmp / "server.log")
    assert (
        "DHCP packet dropped: DHCP REQUEST; only DHCPINFORM is answered"
        in (setup.tmp / "server.log").read_text()
    )
    setup.stop(process, signal.SIGINT, log)


def test_pushed_route_goes_with_the_call_and_comes_back_with_the_next(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    process, log = setup.start_client("--ca-file", str(setup.cert), "--no-ipv6", "--reconnect")
    wait_until(lambda: "(from the server)" in log.read_text(), "the pushed route", log)
    kill_server(setup)
    # The call is over: the server's route goes with it (the TUN and --route stay for the next call).
    wait_until(lambda: route_device(client, "10.99.7.7") != CLIENT_TUN, "the pushed route to go", log)
    restart_server(setup)
    wait_until(lambda: log.read_text().count("(from the server)") == 2, "the route from the next call", log)
    assert route_device(client, "10.99.7.7") == CLIENT_TUN
    setup.stop(process, signal.SIGINT, log)
    assert network_state(client) == before


def test_workers_answer_their_own_sessions(netns_pair: Pair, tmp_path: Path) -> None:
    """With worker processes (docs/scaling.md), the worker that holds the session answers its DHCPINFORM."""
    network_behind(netns_pair.server)
    with client_setup(netns_pair, tmp_path, *PUSH, "--workers", "2") as setup:
        client = setup.pair.client
        before = network_state(client)
        process, log = setup.start_client("--ca-file", str(setup.cert), "--dns", "--no-ipv6")
        wait_until(lambda: "(from the server)" in log.read_text(), "the pushed route", log)
        assert route_device(client, "10.99.7.7") == CLIENT_TUN
        ping(client, BEHIND)
        setup.stop(process, signal.SIGINT, log)
        assert network_state(client) == before
