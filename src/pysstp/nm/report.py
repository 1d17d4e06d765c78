"""What the plugin tells NetworkManager about a call: the ``Config``, ``Ip4Config`` and ``Ip6Config``
signal dictionaries.

The keys are NetworkManager's (``NM_VPN_PLUGIN_CONFIG_*``, ``NM_VPN_PLUGIN_IP4_CONFIG_*`` and
``NM_VPN_PLUGIN_IP6_CONFIG_*`` in its nm-vpn-dbus-interface.h). IPv4 addresses travel as a ``u`` holding the
four address bytes in network order, as ``in_addr_t`` does; IPv6 addresses as ``ay``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from dbus_fast import Variant

from pysstp.link import LinkUp
from pysstp.nd import Advertised
from pysstp.ppp.ipv6cp import link_local_address
from pysstp.server.ipv6 import SLAAC_PREFIX_LEN, interface_address


def in_addr(address: IPv4Address) -> int:
    """``address`` as NetworkManager reads a ``u``: its bytes in network order, in host byte order's int."""
    return int.from_bytes(address.packed, sys.byteorder)


def generic_config(ifname: str, server: str, mtu: int, has_ip6: bool = False) -> dict[str, Variant]:
    """The ``Config`` signal: the TUN, the server NetworkManager keeps reachable outside it, the MTU, and
    whether an ``Ip6Config`` follows (NetworkManager then waits for it before the connection is up)."""
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
        "has-ip6": Variant("b", has_ip6),
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


def ip6_config(
    local_interface_id: bytes,
    peer_interface_id: bytes,
    advertised: Advertised,
    never_default: bool,
) -> dict[str, Variant]:
    """The ``Ip6Config`` signal: the address SLAAC forms from the prefix the server ``advertised`` and
    IPv6CP's interface identifier (RFC 4862 §5.5.3; the only one the server routes to us besides the
    link-local one), or the link-local address when the server advertises no prefix; a /64 either way,
    so the kernel routes the server's own addresses on the link. The gateway is the server's link-local
    address, as its router advertisements come from there. NetworkManager's ``Ip6Config`` carries one
    address, so the TUN has no second (link-local) one: nothing on a point-to-point link needs it."""
    address = (
        interface_address(advertised.prefix, local_interface_id)
        if advertised.prefix is not None
        else link_local_address(local_interface_id)
    )
    config = {
        "address": Variant("ay", address.packed),
        "prefix": Variant("u", SLAAC_PREFIX_LEN),
        "gateway": Variant("ay", link_local_address(peer_interface_id).packed),
        "never-default": Variant("b", never_default),
    }
    # The advertisement's DNS servers, search domains (RFC 8106) and routes (RFC 4191), as the server
    # pushes them.
    if advertised.dns:
        config["dns"] = Variant("aay", [server.packed for server in advertised.dns])
    if advertised.domains:
        config["domains"] = Variant("as", list(advertised.domains))
    if advertised.routes:
        # (network, prefix length, next hop (::, the link itself), metric (NetworkManager's own))
        config["routes"] = Variant(
            "a(ayuayu)",
            [[route.network_address.packed, route.prefixlen, bytes(16), 0] for route in advertised.routes],
        )
    return config
