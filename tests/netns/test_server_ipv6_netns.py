"""IPv6 through the real `pysstp server` and a tunnel client in network namespaces (needs root).

The client's own kernel takes the server's router advertisement: that it forms the prefix address and the
default route is the independent check of the advertisement's format and checksum.
"""

from __future__ import annotations

import time
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from test_server_netns import PORT, TUN, Setup, netns_pair, setup, wait_for_line

from helpers.namespaces import Namespace
from helpers.server_process import start_tunnel_client

__all__ = ["netns_pair", "setup"]

PREFIX = IPv6Network("fd77:77::/64")
CLIENT_TUN = "sstpc0"


def start_ipv6_client(setup: Setup) -> tuple[Path, IPv6Address]:
    """Dial as alice with IPv6CP; return the client's log and its link-local address."""
    log = setup.tmp / "client.log"
    start_tunnel_client(
        setup.pair.client,
        log,
        setup.pair.server_ip,
        PORT,
        setup.cert,
        "alice",
        "alicepw",
        "auto",
        CLIENT_TUN,
        "ipv6",
    )
    return log, IPv6Address(wait_for_line(log, "UP6 ").split()[1])


def ping6(ns: Namespace, address: str) -> None:
    result = ns.run("ping", "-6", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def wait_for_output(ns: Namespace, command: tuple[str, ...], text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (output := ns.run(*command).stdout):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in {' '.join(command)}:\n{output}")
        time.sleep(0.1)


def test_prefix_from_router_advertisement_and_ping_both_ways(setup: Setup) -> None:
    setup.start_server("--ipv6", str(PREFIX))
    _, link_local = start_ipv6_client(setup)
    client_address = IPv6Address(PREFIX.network_address.packed[:8] + link_local.packed[8:])
    # The kernel in the client namespace forms the address and the default route from the advertisement.
    wait_for_output(
        setup.pair.client, ("ip", "-6", "addr", "show", "dev", CLIENT_TUN), f"{client_address}/64"
    )
    wait_for_output(setup.pair.client, ("ip", "-6", "route", "show", "default"), f"dev {CLIENT_TUN} proto ra")
    assert f"{PREFIX[1]}/64" in setup.pair.server.run("ip", "-6", "addr", "show", "dev", TUN).stdout
    ping6(setup.pair.client, str(PREFIX[1]))
    ping6(setup.pair.server, str(client_address))


def test_link_local_only(setup: Setup) -> None:
    setup.start_server("--ipv6", "link-local")
    _, link_local = start_ipv6_client(setup)
    ping6(setup.pair.server, f"{link_local}%{TUN}")
    ping6(setup.pair.client, f"fe80::1%{CLIENT_TUN}")
    routes = setup.pair.client.run("ip", "-6", "route", "show", "default").stdout
    assert "proto ra" not in routes  # link-local only: no prefix, no advertisement
