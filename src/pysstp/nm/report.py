"""What the plugin tells NetworkManager about a call: the ``Config`` and ``Ip4Config`` signal dictionaries.

The keys are NetworkManager's (``NM_VPN_PLUGIN_CONFIG_*`` and ``NM_VPN_PLUGIN_IP4_CONFIG_*`` in its
nm-vpn-dbus-interface.h). IPv4 addresses travel as a ``u`` holding the four address bytes in network order,
as ``in_addr_t`` does; an IPv6 gateway as ``ay``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from dbus_fast import Variant

from pysstp.link import LinkUp


def in_addr(address: IPv4Address) -> int:
    """``address`` as NetworkManager reads a ``u``: its bytes in network order, in host byte order's int."""
    return int.from_bytes(address.packed, sys.byteorder)


def generic_config(ifname: str, server: str, mtu: int) -> dict[str, Variant]:
    """The ``Config`` signal: the TUN, the server NetworkManager keeps reachable outside it, the MTU."""
    gateway = ip_address(server)
    return {
        "tundev": Variant("s", ifname),
        "gateway": (
            Variant("ay", gateway.packed)
            if isinstance(gateway, IPv6Address)
            else Variant("u", in_addr(gateway))
        ),
        "mtu": Variant("u", mtu),
        "has-ip4": Variant("b", True),
        "has-ip6": Variant("b", False),
    }


def ip4_config(
    up: LinkUp,
    never_default: bool,
    routes: Sequence[IPv4Network] = (),
    domains: Sequence[str] = (),
) -> dict[str, Variant]:
    """The ``Ip4Config`` signal: IPCP's address and the server's end (a /32 point-to-point link, as
    ``pysstp connect`` sets it), the DNS servers, and the routes and search domains the server pushes."""
    assert up.local_address is not None and up.peer_address is not None  # the service checked
    config = {
        "address": Variant("u", in_addr(up.local_address)),
        "prefix": Variant("u", 32),
        "ptp": Variant("u", in_addr(up.peer_address)),
        "gateway": Variant("u", in_addr(up.peer_address)),
        "dns": Variant("au", [in_addr(server) for server in up.dns_servers]),
        "never-default": Variant("b", never_default),
    }
    if routes:
        # [network, prefix, next hop (0: the link itself), metric (NetworkManager ignores it)]
        config["routes"] = Variant(
            "aau", [[in_addr(route.network_address), route.prefixlen, 0, 0] for route in routes]
        )
    if domains:
        config["domains"] = Variant("as", list(domains))
    return config
