"""A NetworkManager connection's ``vpn`` setting <-> pysstp's client settings and profiles.

``vpn.data`` holds the keys of a ``pysstp connect`` profile (the flags' long names, values as strings:
``yes``/``no``, numbers, comma-separated lists), except that the server is ``gateway`` (every VPN plugin's
name for it) and the routing is NetworkManager's: ``never-default`` instead of ``--default-route``, and the
connection's ``ipv4.routes`` instead of ``--route``. The password is the ``password`` secret in
``vpn.secrets``, with NetworkManager's ``password-flags``. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from pysstp.client.settings import ClientSettings, build_settings, load_profile, parse_route
from pysstp.errors import ConfigError

SERVICE_TYPE = "org.freedesktop.NetworkManager.pysstp"
"""The ``vpn.service-type`` of pysstp connections, and the D-Bus name of the plugin service."""

GATEWAY = "gateway"
NEVER_DEFAULT = "never-default"
PASSWORD = "password"
PASSWORD_FLAGS = "password-flags"

_BOOL_KEYS = frozenset({"insecure", "no-sni", NEVER_DEFAULT})
_INT_KEYS = frozenset({"mru"})
_LIST_KEYS = frozenset({"auth"})
_PATH_KEYS = frozenset({"cert", "key", "key-passphrase-file", "eap-ca", "ca-file"})
_TEXT_KEYS = frozenset(
    {
        "user",
        "cert",
        "key",
        "key-passphrase-file",
        "eap-ca",
        "eap-server-name",
        "ca-file",
        "pin-sha256",
        "sni",
        "tls-min",
        "proxy",
    }
)
DATA_KEYS = frozenset({GATEWAY} | _BOOL_KEYS | _INT_KEYS | _LIST_KEYS | _TEXT_KEYS)
"""Every key ``vpn.data`` may hold."""

_PROFILE_ONLY = {
    "password-file": "the password is a secret of the connection",
    "password-insecure-cmdline": "the password is a secret of the connection",
    "ifname": "pysstp picks a free sstpN device",
    "dns": "NetworkManager always applies the server's DNS servers",
    "ipv6": "the plugin carries IPv4",
    "reconnect": "NetworkManager's autoconnect dials again",
    "reconnect-after-kick": "NetworkManager's autoconnect dials again",
    "max-attempts": "NetworkManager's connection.autoconnect-retries counts attempts",
    "proxy-from-env": "NetworkManager starts the plugin without your environment; give proxy",
    "verbose": "NetworkManager's log level decides",
    "log-format": "NetworkManager's log level decides",
    "daemon": "NetworkManager runs the plugin",
    "pid-file": "NetworkManager runs the plugin",
    "log-file": "the plugin logs to NetworkManager's log",
}
"""Profile keys with no ``vpn.data`` counterpart, and why (``import`` says so instead of failing)."""


class SecretFlags(enum.IntFlag):
    """NetworkManager's ``NMSettingSecretFlags`` (libnm's nm-setting.h), as ``password-flags`` holds them."""

    NONE = 0
    """Saved by NetworkManager (in the root-only connection file)."""
    AGENT_OWNED = 1
    """Kept by the user's secret agent (GNOME keyring, KWallet) and fetched at connect time."""
    NOT_SAVED = 2
    """Asked for at every connect."""
    NOT_REQUIRED = 4
    """Not needed (a certificate login)."""


@dataclass(frozen=True)
class VpnSetting:
    """A connection's ``vpn.data`` and ``vpn.secrets``, and the ``ipv4.routes`` that came with a profile."""

    data: Mapping[str, str]
    secrets: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    routes: tuple[IPv4Network | IPv6Network, ...] = ()

    @property
    def password_flags(self) -> SecretFlags:
        """``password-flags`` (``NONE`` when missing or not a number)."""
        text = self.data.get(PASSWORD_FLAGS, "0")
        return SecretFlags(int(text)) if text.isdigit() else SecretFlags.NONE


def client_settings(data: Mapping[str, str], secrets: Mapping[str, str], name: str) -> ClientSettings:
    """The settings ``pysstp connect`` would get from ``vpn.data`` and ``vpn.secrets``; a mistake is one
    :class:`ConfigError` line naming the key (``name``: the connection's id)."""
    values: dict[str, Any] = {"server": data.get(GATEWAY, "")}
    for key, text in data.items():
        if key in (GATEWAY, NEVER_DEFAULT) or key.endswith("-flags"):
            continue
        if key not in DATA_KEYS:
            raise ConfigError(
                f"vpn.data [{name}]: unknown key {key!r}; known: {', '.join(sorted(DATA_KEYS))}"
            )
        values[key] = _typed(key, text, name)
    if not values["server"]:
        raise ConfigError(f"vpn.data [{name}]: no gateway; add vpn.data gateway=HOST[:PORT]")
    profile = load_profile({name: values}, Path("vpn.data"), name)
    assert profile is not None  # the table is there
    # IPv4 only: NetworkManager would need the IPv6CP interface identifier and the router advertisement.
    settings = dataclasses.replace(build_settings(profile, {}), ipv6=False)
    password = secrets.get(PASSWORD)
    return dataclasses.replace(settings, password=password) if password else settings


def never_default(data: Mapping[str, str]) -> bool:
    """Whether the VPN must not take the default route (``never-default=yes``; NetworkManager's VPNs take
    it unless told otherwise)."""
    return data.get(NEVER_DEFAULT, "no") == "yes"


def missing_secrets(data: Mapping[str, str], secrets: Mapping[str, str], name: str) -> list[str]:
    """The secrets still needed before dialing: ``["password"]`` or none (a certificate login, a password
    that is there, or ``password-flags`` saying it is not required)."""
    flags = VpnSetting(data).password_flags
    if SecretFlags.NOT_REQUIRED in flags or secrets.get(PASSWORD):
        return []
    try:
        settings = client_settings(data, {}, name)
    except ConfigError:
        return []  # Connect reports the mistake; asking for a password would only hide it
    return [PASSWORD] if settings.needs_password else []


def asks_every_time(data: Mapping[str, str]) -> bool:
    """Whether the password is asked for at every connect (``password-flags`` has ``NOT_SAVED``)."""
    return SecretFlags.NOT_SAVED in VpnSetting(data).password_flags


def _typed(key: str, text: str, name: str) -> object:
    """A ``vpn.data`` string as the type its profile key has."""
    if key in _BOOL_KEYS:
        if text not in ("yes", "no"):
            raise ConfigError(f"vpn.data [{name}]: {key} must be yes or no, not {text!r}")
        return text == "yes"
    if key in _INT_KEYS:
        if not text.isdigit():
            raise ConfigError(f"vpn.data [{name}]: {key} must be a number, not {text!r}")
        return int(text)
    if key in _LIST_KEYS:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def from_profile(
    table: Mapping[str, Any], password: str | None, base: Path = Path("/")
) -> tuple[VpnSetting, list[str]]:
    """A profile table (TOML values, not yet checked) as a connection's ``vpn`` setting, with one note per
    profile key that NetworkManager handles its own way. ``password``: the one its ``password-file`` holds
    (saved with the connection), or ``None`` (then NetworkManager asks every time). Relative file names
    are taken from ``base`` (the profile's directory, as ``pysstp connect`` does) and stored absolute,
    since the service does not run there."""
    data: dict[str, str] = {}
    notes: list[str] = []
    routes: tuple[IPv4Network | IPv6Network, ...] = ()
    for key, value in table.items():
        if key == "server":
            data[GATEWAY] = str(value)
        elif key == "default-route":
            data[NEVER_DEFAULT] = "no" if value else "yes"
        elif key == "route":
            routes = tuple(parse_route(str(entry)) for entry in value)
        elif key in _PATH_KEYS and isinstance(value, str) and value != "-":
            data[key] = str(base / Path(value).expanduser())
        elif key in DATA_KEYS:
            data[key] = _text(value)
        elif key in _PROFILE_ONLY:
            notes.append(f"{key}: left out: {_PROFILE_ONLY[key]}")
        else:
            raise ConfigError(f"{key}: not a key of a pysstp client profile")
    data.setdefault(NEVER_DEFAULT, "yes")
    secrets: dict[str, str] = {}
    if password is not None:
        secrets[PASSWORD] = password
        data[PASSWORD_FLAGS] = str(int(SecretFlags.NONE))
    else:
        data[PASSWORD_FLAGS] = str(int(SecretFlags.NOT_SAVED))
    return VpnSetting(data, secrets, routes), notes


def to_profile(setting: VpnSetting) -> dict[str, Any]:
    """A connection's ``vpn`` setting as a profile table (TOML values); the password stays out."""
    table: dict[str, Any] = {}
    for key, text in sorted(setting.data.items()):
        if key == GATEWAY:
            table["server"] = text
        elif key == NEVER_DEFAULT:
            table["default-route"] = text == "no"
        elif key in DATA_KEYS:
            table[key] = _typed(key, text, "export")
    if setting.routes:
        table["route"] = [str(route) for route in setting.routes]
    return table


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(entry) for entry in value)
    return str(value)
