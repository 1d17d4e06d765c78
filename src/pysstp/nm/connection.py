"""pysstp connections in NetworkManager's settings: add one from a profile, read one back (D-Bus
``org.freedesktop.NetworkManager.Settings``), for ``pysstp nm import`` and ``export``."""

from __future__ import annotations

import uuid
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from pysstp.errors import SystemSetupError
from pysstp.nm.vpn_setting import SERVICE_TYPE, VpnSetting

NM = "org.freedesktop.NetworkManager"
SETTINGS_PATH = "/org/freedesktop/NetworkManager/Settings"


def connection_dict(name: str, setting: VpnSetting) -> dict[str, dict[str, Variant]]:
    """The ``a{sa{sv}}`` of a new pysstp connection called ``name``."""
    ipv4: dict[str, Variant] = {"method": Variant("s", "auto")}
    routes = [route for route in setting.routes if isinstance(route, IPv4Network)]
    if routes:
        ipv4["route-data"] = Variant(
            "aa{sv}",
            [
                {"dest": Variant("s", str(r.network_address)), "prefix": Variant("u", r.prefixlen)}
                for r in routes
            ],
        )
    vpn = {"service-type": Variant("s", SERVICE_TYPE), "data": Variant("a{ss}", dict(setting.data))}
    if setting.secrets:
        vpn["secrets"] = Variant("a{ss}", dict(setting.secrets))
    return {
        "connection": {
            "id": Variant("s", name),
            "uuid": Variant("s", str(uuid.uuid4())),
            "type": Variant("s", "vpn"),
            "autoconnect": Variant("b", False),
        },
        "vpn": vpn,
        "ipv4": ipv4,
        "ipv6": {"method": Variant("s", "ignore")},
    }


def vpn_setting_of(settings: dict[str, dict[str, Variant]]) -> VpnSetting:
    """A connection's ``vpn`` setting and IPv4 routes from ``GetSettings``' answer."""
    vpn = settings.get("vpn", {})
    data = dict(vpn["data"].value) if "data" in vpn else {}
    route_data = settings.get("ipv4", {}).get("route-data")
    routes: tuple[IPv4Network | IPv6Network, ...] = ()
    if route_data is not None:
        routes = tuple(
            ip_network(f"{route['dest'].value}/{route['prefix'].value}", strict=False)
            for route in route_data.value
        )
    return VpnSetting(data, {}, routes)


async def _call(
    bus: MessageBus,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: list[Any] | None = None,
) -> list[Any]:
    reply = await bus.call(
        Message(
            destination=NM,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
    )
    assert reply is not None
    if reply.message_type == MessageType.ERROR:
        raise SystemSetupError(
            f"NetworkManager: {member}: {reply.body[0] if reply.body else reply.error_name}"
        )
    return list(reply.body)


async def _bus() -> MessageBus:
    try:
        return await MessageBus(bus_type=BusType.SYSTEM).connect()
    except OSError as exc:
        raise SystemSetupError(
            f"cannot reach the system bus ({exc.strerror}); is NetworkManager running?"
        ) from None


async def add_connection(name: str, setting: VpnSetting) -> str:
    """Add (and save) the connection; its D-Bus path."""
    bus = await _bus()
    try:
        body = await _call(
            bus,
            SETTINGS_PATH,
            f"{NM}.Settings",
            "AddConnection",
            "a{sa{sv}}",
            [connection_dict(name, setting)],
        )
        return str(body[0])
    finally:
        bus.disconnect()


async def read_connection(name: str) -> VpnSetting:
    """The pysstp connection whose id is ``name``."""
    bus = await _bus()
    try:
        (paths,) = await _call(bus, SETTINGS_PATH, f"{NM}.Settings", "ListConnections")
        for path in paths:
            (settings,) = await _call(bus, path, f"{NM}.Settings.Connection", "GetSettings")
            if settings.get("connection", {}).get("id", Variant("s", "")).value != name:
                continue
            if settings.get("vpn", {}).get("service-type", Variant("s", "")).value != SERVICE_TYPE:
                raise SystemSetupError(f"{name!r} is not a pysstp connection")
            return vpn_setting_of(settings)
    finally:
        bus.disconnect()
    raise SystemSetupError(f"NetworkManager has no connection {name!r}; nmcli connection show lists them")
