"""Links, addresses and routes over netlink (pyroute2).

Each call opens its own netlink socket in a short-lived worker thread and closes it again. The thread is
there because pyroute2's synchronous ``IPRoute`` runs an event loop of its own, which asyncio forbids in
a thread whose loop is already running (the server's and the client's). A new thread starts in the
network namespace of the thread that made it, so every call acts in the caller's namespace.

Errors from the kernel become :class:`SystemSetupError` with one line that names the change and the
reason, e.g. ``cannot add route 10.0.0.0/8 dev sstp0: it already exists``.
"""

import errno
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)
from typing import Any, TypeVar

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from pysstp.errors import SystemSetupError

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
IPNetwork = IPv4Network | IPv6Network

_T = TypeVar("_T")

# linux/rtnetlink.h: the scope `ip route` gives a route without a gateway.
_RT_SCOPE_LINK = 253

_REASONS = {
    errno.EPERM: "permission denied: run as root or give pysstp CAP_NET_ADMIN",
    errno.EACCES: "permission denied: run as root or give pysstp CAP_NET_ADMIN",
    errno.EEXIST: "it already exists",
    errno.ENODEV: "no such network interface",
    errno.ESRCH: "no such route",
    errno.EADDRNOTAVAIL: "no such address on that interface",
    errno.ENETUNREACH: "the network is unreachable (no route to it, or to the gateway)",
    errno.EHOSTUNREACH: "no route to host",
}

# What a deletion reports when the thing is already gone (e.g. the TUN device closed and took its
# addresses and routes with it).
_GONE = frozenset({errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL})


@dataclass(frozen=True, slots=True)
class Route:
    """A route: destination prefix, and the device and/or gateway it goes through; ``mtu`` caps the
    packet size towards the destination below the device's MTU. An ``unreachable`` route has neither:
    the kernel answers packets to it with ICMP "host unreachable" instead of routing them on."""

    destination: IPNetwork
    ifname: str | None = None
    gateway: IPAddress | None = None
    metric: int | None = None
    mtu: int | None = None
    unreachable: bool = False

    def __str__(self) -> str:
        parts = ["unreachable"] if self.unreachable else []
        parts.append(str(self.destination))
        if self.gateway is not None:
            parts.append(f"via {self.gateway}")
        if self.ifname is not None:
            parts.append(f"dev {self.ifname}")
        if self.metric is not None:
            parts.append(f"metric {self.metric}")
        if self.mtu is not None:
            parts.append(f"mtu {self.mtu}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """An address configured on an interface; ``peer`` is set for point-to-point addresses."""

    ifname: str
    address: IPInterface
    peer: IPAddress | None = None

    def __str__(self) -> str:
        if self.peer is None:
            return f"{self.address} dev {self.ifname}"
        return f"{self.address.ip} peer {self.peer}/{self.address.network.prefixlen} dev {self.ifname}"


def make_route(
    destination: str | IPNetwork,
    *,
    ifname: str | None = None,
    gateway: str | IPAddress | None = None,
    metric: int | None = None,
    mtu: int | None = None,
    unreachable: bool = False,
) -> Route:
    """Build a :class:`Route` from strings or ``ipaddress`` objects; a bare address means a host route."""
    if unreachable and (ifname is not None or gateway is not None):
        raise ValueError("an unreachable route has no device and no gateway")
    if not unreachable and ifname is None and gateway is None:
        raise ValueError("a route needs a device, a gateway or both")
    return Route(
        destination=ip_network(destination),
        ifname=ifname,
        gateway=None if gateway is None else ip_address(gateway),
        metric=metric,
        mtu=mtu,
        unreachable=unreachable,
    )


def make_address(
    ifname: str, address: str | IPInterface, *, peer: str | IPAddress | None = None
) -> AddressInfo:
    """Build an :class:`AddressInfo`.

    Without ``peer``, ``address`` carries the prefix of the attached network ("10.0.0.1/24"). With
    ``peer`` the address is point-to-point and its prefix (default /32 or /128) is the peer's.
    """
    return AddressInfo(
        ifname=ifname,
        address=ip_interface(address),
        peer=None if peer is None else ip_address(peer),
    )


def set_link(
    ifname: str, *, up: bool | None = None, mtu: int | None = None, txqueuelen: int | None = None
) -> None:
    """Change a link's state, MTU and/or transmit queue length; ``None`` leaves a setting alone."""
    settings: dict[str, Any] = {}
    described = []
    if up is not None:
        settings["state"] = "up" if up else "down"
        described.append(settings["state"])
    if mtu is not None:
        settings["mtu"] = mtu
        described.append(f"MTU {mtu}")
    if txqueuelen is not None:
        settings["txqlen"] = txqueuelen
        described.append(f"txqueuelen {txqueuelen}")
    if not settings:
        return

    def op(ipr: IPRoute) -> None:
        ipr.link("set", index=_index(ipr, ifname), **settings)

    _run(f"set {', '.join(described)} on {ifname}", op)


def link_exists(ifname: str) -> bool:
    """Whether a network interface with this name exists."""
    return bool(_run(f"look up interface {ifname}", lambda ipr: ipr.link_lookup(ifname=ifname)))


def add_address(address: AddressInfo) -> None:
    """Add an address (see :func:`make_address`) to its interface."""
    _run(f"add address {address}", lambda ipr: ipr.addr("add", **_address_spec(ipr, address)))


def delete_address(address: AddressInfo, *, missing_ok: bool = False) -> None:
    """Remove an address; with ``missing_ok`` an address (or interface) that is already gone is fine."""
    _delete(
        f"delete address {address}", lambda ipr: ipr.addr("del", **_address_spec(ipr, address)), missing_ok
    )


def list_addresses(ifname: str | None = None) -> list[AddressInfo]:
    """The addresses on one interface, or on all of them."""

    def op(ipr: IPRoute) -> list[AddressInfo]:
        names = {link["index"]: link.get("ifname") for link in ipr.link("dump")}
        wanted = None if ifname is None else _index(ipr, ifname)
        result = []
        for msg in ipr.addr("dump"):
            if wanted is not None and msg["index"] != wanted:
                continue
            remote = msg.get("address")
            local = msg.get("local") or remote
            result.append(
                AddressInfo(
                    ifname=names[msg["index"]],
                    address=ip_interface(f"{local}/{msg['prefixlen']}"),
                    peer=ip_address(remote) if remote != local else None,
                )
            )
        return result

    return _run("list addresses" if ifname is None else f"list addresses of {ifname}", op)


def add_route(route: Route) -> None:
    """Add a route (see :func:`make_route`)."""
    _run(f"add route {route}", lambda ipr: ipr.route("add", **_route_spec(ipr, route)))


def replace_route(route: Route) -> None:
    """Add a route, or change the one with the same destination (``ip route replace``)."""
    _run(f"replace route {route}", lambda ipr: ipr.route("replace", **_route_spec(ipr, route)))


def delete_route(route: Route, *, missing_ok: bool = False) -> None:
    """Remove a route; with ``missing_ok`` a route (or interface) that is already gone is fine."""
    _delete(f"delete route {route}", lambda ipr: ipr.route("del", **_route_spec(ipr, route)), missing_ok)


def route_to(host: str | IPAddress) -> Route:
    """The route the kernel would use now to reach ``host``, as a host route.

    The client pins this (``add_route``) before it installs a default route into the tunnel, so the
    tunnel's own packets to the server keep going out through the old gateway.
    """
    target = ip_address(host)

    def op(ipr: IPRoute) -> Route:
        (msg,) = ipr.route("get", dst=str(target))
        gateway = msg.get("gateway")
        names = ipr.link("get", index=msg.get("oif"))
        return Route(
            destination=ip_network(target),
            ifname=names[0].get("ifname"),
            gateway=None if gateway is None else ip_address(gateway),
        )

    return _run(f"find a route to {target}", op)


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        # Reported like the kernel's own answer, so it reads the same whichever side noticed.
        raise NetlinkError(errno.ENODEV)
    index: int = found[0]
    return index


def _address_spec(ipr: IPRoute, address: AddressInfo) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "index": _index(ipr, address.ifname),
        "prefixlen": address.address.network.prefixlen,
    }
    if address.peer is None:
        spec["address"] = str(address.address.ip)
    else:
        # Point-to-point: IFA_LOCAL is our end, IFA_ADDRESS the peer's (as `ip addr add A peer B`).
        spec["local"] = str(address.address.ip)
        spec["address"] = str(address.peer)
    return spec


def _route_spec(ipr: IPRoute, route: Route) -> dict[str, Any]:
    family = socket.AF_INET if route.destination.version == 4 else socket.AF_INET6
    spec: dict[str, Any] = {"dst": str(route.destination), "family": family}
    if route.ifname is not None:
        spec["oif"] = _index(ipr, route.ifname)
    if route.unreachable:
        spec["type"] = "unreachable"
    elif route.gateway is None:
        # As `ip route add PREFIX dev X` does: a route without a gateway is on-link.
        spec["scope"] = _RT_SCOPE_LINK
    else:
        spec["gateway"] = str(route.gateway)
    if route.metric is not None:
        spec["priority"] = route.metric
    if route.mtu is not None:
        spec["metrics"] = {"mtu": route.mtu}
    return spec


def _run(action: str, op: Callable[[IPRoute], _T]) -> _T:
    """Run ``op`` on a fresh netlink socket in a worker thread; kernel errors become SystemSetupError."""
    outcome: list[tuple[bool, Any]] = []

    def work() -> None:
        try:
            with IPRoute() as ipr:
                outcome.append((True, op(ipr)))
        except BaseException as exc:  # re-raised in the calling thread below
            outcome.append((False, exc))

    worker = threading.Thread(target=work, name="pysstp-netlink")
    worker.start()
    worker.join()
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    if isinstance(value, NetlinkError):
        raise SystemSetupError(f"cannot {action}: {_reason(value)}") from value
    raise value


def _delete(action: str, op: Callable[[IPRoute], object], missing_ok: bool) -> None:
    try:
        _run(action, op)
    except SystemSetupError as exc:
        cause = exc.__cause__
        if not (missing_ok and isinstance(cause, NetlinkError) and cause.code in _GONE):
            raise


def _reason(exc: NetlinkError) -> str:
    reason = _REASONS.get(exc.code, os.strerror(exc.code).lower())
    detail = exc.args[1] if len(exc.args) > 1 else None
    # pyroute2 passes the kernel's extended ack text when there is one; it is more precise than errno.
    if isinstance(detail, str) and detail and detail != os.strerror(exc.code):
        return f"{reason} ({detail})"
    return reason
