"""Server settings: defaults, then ``server.toml``, then command-line flags, checked into one frozen object.

Every setting is declared once, in ``_GROUPS``: its TOML key (which is also its attribute path in
:class:`ServerSettings`), its flag, how a value is read and checked, and its help text. The file loader, the
argument parser and ``--help`` are all driven by that table (the machinery, shared with the client's
settings, is :mod:`pysstp.settings`), so no setting can have a key but no flag, or a flag whose checks
differ from the key's.

Files named here (certificate, key, user database, page) are not opened: the server checks them when it
starts, where a missing file is one clear start-up error among the others (port in use, no TUN, ...).
"""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pysstp.aaa.radius.server import AUTHENTICATION_PORT
from pysstp.errors import ConfigError
from pysstp.ppp.auth.base import EapMode
from pysstp.ppp.auth.eap_tls import IdentitySource
from pysstp.ppp.auth.tls_tunnel import DEFAULT_FRAGMENT_SIZE, MIN_FRAGMENT_SIZE, TlsVersion
from pysstp.ppp.constants import DEFAULT_MRU, MAX_MRU, MIN_MRU, AuthMethod
from pysstp.server.pool import AddressPool
from pysstp.settings import Bool as _Bool
from pysstp.settings import Choice as _Choice
from pysstp.settings import FlagList as _FlagList
from pysstp.settings import Integer as _Integer
from pysstp.settings import Kind, SettingsTable, wrong_type
from pysstp.settings import List as _List
from pysstp.settings import Seconds as _Seconds
from pysstp.settings import Setting as _Setting
from pysstp.settings import Text as _Text
from pysstp.settings import path as _path
from pysstp.sstp.constants import HashProtocol, Timer

INTERMEDIATE_CIPHERS = ":".join(
    (
        # Mozilla's "intermediate" TLS 1.2 suites without DHE: forward secrecy (ECDHE) and AEAD only. What
        # Windows 10/11, sstpc (OpenSSL), current RouterOS and pysstp's client pick anyway.
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
"""TLS 1.2 cipher list of the ``intermediate`` profile (the default), in OpenSSL syntax."""

LEGACY_CIPHERS = ":".join(
    (
        INTERMEDIATE_CIPHERS,
        # AES-256-CBC with ECDHE: older Windows builds and RouterOS, which offers only AES-256 on TLS 1.2.
        # CBC with HMAC is what testssl.sh reports as "potentially vulnerable" to LUCKY13.
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        # RSA key exchange, last and without forward secrecy: for RouterOS clients set to "pfs=no", which
        # are understood to offer no ECDHE suite (not yet checked against a real router).
        "AES256-GCM-SHA384",
        "AES256-SHA",
    )
)
"""TLS 1.2 cipher list of the ``legacy`` profile: ``intermediate`` plus CBC and RSA key exchange suites."""

TLS_PROFILES = {"intermediate": INTERMEDIATE_CIPHERS, "legacy": LEGACY_CIPHERS}
"""TLS 1.2 cipher lists by ``tls.profile``. TLS 1.3 suites are OpenSSL's defaults (all AEAD, all
forward-secret); Python cannot set them."""

UNIX_SOCKET_PATH_MAX = 107
"""Longest path a Unix socket can bind on Linux (``sun_path`` is 108 bytes with the terminating NUL)."""

IFNAMSIZ = 16
"""Linux interface names have at most IFNAMSIZ - 1 bytes."""

MAX_WORKERS = 64
"""Most worker processes: each has a TUN named ``<tun_name>-<index>``, which must stay within IFNAMSIZ."""

DEFAULT_POOL = IPv4Network("10.77.0.0/24")

ForwardingMode = Literal["route", "nat"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
ClientCertificateMode = Literal["none", "request", "require"]
TlsProfile = Literal["intermediate", "legacy"]


# -- the settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsSettings:
    """The TLS listener: certificate chain, key, protocol floor, TLS 1.2 ciphers, crypto-binding hashes."""

    cert: Path | None = None
    key: Path | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    profile: TlsProfile = "intermediate"
    ciphers: str | None = None
    """An explicit TLS 1.2 cipher list, which replaces the profile's."""
    hash_protocols: HashProtocol = HashProtocol.SHA256 | HashProtocol.SHA1
    verify_client_certificate: ClientCertificateMode = "none"
    """Ask for a TLS client certificate in the HTTPS handshake; Windows' built-in client never sends one."""
    client_ca: tuple[Path, ...] = ()
    client_crl: tuple[Path, ...] = ()
    offload: bool = False
    """Plain HTTP behind a TLS terminator (docs/scaling.md): no TLS here, no ``cert`` and ``key`` needed."""
    binding_cert: Path | None = None
    """With ``offload``: the terminator's certificate, whose hashes the clients' crypto bindings carry."""
    binding_sha256: bytes | None = None
    """With ``offload``, instead of ``binding_cert``: the SHA-256 of the terminator's certificate."""
    binding_sha1: bytes | None = None
    """With ``offload``, instead of ``binding_cert``: the SHA-1 of the terminator's certificate."""

    @property
    def cipher_list(self) -> str:
        """The TLS 1.2 ciphers in force: ``ciphers`` if set, else those of ``profile``."""
        return self.ciphers if self.ciphers is not None else TLS_PROFILES[self.profile]


@dataclass(frozen=True)
class EapTlsSettings:
    """EAP-TLS: our EAP certificate (the HTTPS one unless set), the CAs and CRLs for user certificates,
    where the user name is read, and whether the name must also be in the user database."""

    ca: tuple[Path, ...] = ()
    crl: tuple[Path, ...] = ()
    cert: Path | None = None
    key: Path | None = None
    identity: IdentitySource = IdentitySource.COMMON_NAME
    require_user: bool = False
    fragment_size: int = DEFAULT_FRAGMENT_SIZE
    max_version: TlsVersion = TlsVersion.TLS1_3


@dataclass(frozen=True)
class PoolSettings:
    """Tunnel addresses: the pool clients get addresses from, the server's own address, DNS to push."""

    network: IPv4Network = DEFAULT_POOL
    server_address: IPv4Address = DEFAULT_POOL[1]
    """The first host of ``network`` unless set; it may lie outside ``network``."""
    dns: tuple[IPv4Address, ...] = ()


@dataclass(frozen=True)
class NamedPoolSettings:
    """A named address pool (``[pools.NAME]``): a RADIUS Access-Accept picks it with Framed-Pool
    (RFC 2869 §5.18); the server's own address stays ``pool.server_address``."""

    name: str
    network: IPv4Network


@dataclass(frozen=True)
class Ipv6Settings:
    """IPv6 inside the tunnel: off, link-local only (IPv6CP), or also a /64 announced by router adverts."""

    enabled: bool = False
    prefix: IPv6Network | None = None

    def __str__(self) -> str:
        """The setting as it is written in server.toml."""
        if self.prefix is not None:
            return str(self.prefix)
        return "link-local" if self.enabled else "off"


@dataclass(frozen=True)
class LimitSettings:
    """Limits and timeouts (seconds) that protect the server; 0 means unlimited/off where noted."""

    max_sessions: int = 1000
    max_sessions_per_user: int = 0
    max_handshakes: int = 256
    negotiation_timeout: float = Timer.NEGOTIATION.value
    handshake_timeout: float = 10.0
    idle_timeout: float = 0.0
    connections_per_source_per_minute: int = 60
    login_delay: float = 1.0
    max_login_delay: float = 4.0
    max_login_failures_per_source: int = 30
    login_refusal: float = 600.0
    on_limit: Literal["deny", "replace"] = "deny"
    """A login beyond a user's session limit is refused, or ends the user's oldest session."""
    drain_timeout: float = 300.0
    """A drain (SIGUSR2, ``pysstp drain``) disconnects the sessions still there after this long."""


@dataclass(frozen=True)
class ForwardingSettings:
    """How client traffic leaves the server: routed as is, or masqueraded behind ``egress`` (nftables)."""

    mode: ForwardingMode = "route"
    egress: str | None = None
    mss_clamp: bool = True


@dataclass(frozen=True)
class LogSettings:
    """Log level and format (``json``: one JSON object per line)."""

    level: LogLevel = "info"
    format: LogFormat = "text"


@dataclass(frozen=True)
class HttpSettings:
    """What a request that is not SSTP gets besides the plain HTTP error: a redirect or a static page."""

    redirect: str | None = None
    page: Path | None = None


@dataclass(frozen=True)
class RadiusServerEntry:
    """One RADIUS server: a ``[[radius.servers]]`` table or a ``--radius-server HOST[:PORT]``. What it
    leaves unset comes from the ``[radius]`` section; the accounting port is the port + 1 unless set."""

    address: str
    port: int = AUTHENTICATION_PORT
    accounting_port: int | None = None
    secret_file: Path | None = None
    priority: int | None = None
    """Lower first; servers without one keep their order after those with one."""
    timeout: float | None = None
    retries: int | None = None
    dead_time: float | None = None

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class RadiusSettings:
    """RADIUS servers and how pysstp names itself to them (``backend = "radius"``, docs/radius.md)."""

    servers: tuple[RadiusServerEntry, ...] = ()
    secret_file: Path | None = None
    """The shared secret (first line) of servers without a ``secret_file`` of their own."""
    timeout: float = 3.0
    retries: int = 2
    dead_time: float = 30.0
    nas_identifier: str = "pysstp"
    nas_address: IPv4Address | IPv6Address | None = None
    accounting: bool = True
    """Send accounting records to the servers' accounting ports."""
    interim_interval: float = 0.0
    """Seconds between Interim-Updates when the Access-Accept sets none; 0: none."""
    accounting_spool: Path = Path("/var/lib/pysstp/radius-accounting.spool")
    """Where records no server acknowledged wait for the next start."""


@dataclass(frozen=True)
class DaeClientSettings:
    """A client allowed to send Disconnect- and CoA-Requests, and the file with its shared secret."""

    address: IPv4Address | IPv6Address
    secret_file: Path


@dataclass(frozen=True)
class DaeSettings:
    """Dynamic Authorization (RFC 5176): where it listens and who may use it; off without clients."""

    listen: str = "0.0.0.0"
    port: int = 3799
    clients: tuple[DaeClientSettings, ...] = ()


@dataclass(frozen=True)
class MetricsSettings:
    """The HTTP address of ``GET /metrics`` (Prometheus) and ``GET /health`` (load balancers); off unset."""

    listen: tuple[str, int] | None = None
    """Address and port."""


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``pysstp server`` can be told; see ``pysstp server --help`` for each setting."""

    listen: tuple[str, ...] = ("0.0.0.0", "::")
    port: int = 443
    proxy_protocol: bool = False
    """Every connection starts with a PROXY protocol header (version 1 or 2) from a load balancer."""
    proxy_sources: tuple[IPv4Network | IPv6Network, ...] = ()
    """The load balancers allowed to send PROXY headers; required with ``proxy_protocol``."""
    users: Path = Path("/etc/pysstp/users.toml")
    backend: str = "local"
    """Who decides logins: ``local`` (the users file) or ``radius`` (the ``[radius]`` servers)."""
    eap_mode: EapMode = "local"
    """``local``: EAP methods run here; ``pass-through``: EAP runs in the RADIUS server (RFC 3579)."""
    auth_methods: tuple[AuthMethod, ...] = (AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2)
    ipv6: Ipv6Settings = field(default_factory=Ipv6Settings)
    keepalive: float = Timer.HELLO.value
    """SSTP hello interval in seconds."""
    mru: int = DEFAULT_MRU
    max_peer_mru: int = DEFAULT_MRU
    tun_name: str = "sstp0"
    workers: int | Literal["auto"] = 1
    """Processes that run calls: 1 is the single process; more (or ``auto``, one per core) run under a
    supervisor (docs/scaling.md)."""
    control_socket: Path = Path("/run/pysstp/server.sock")
    state_dir: Path = Path("/run/pysstp")
    """Where the server records what it changed on the system (see :mod:`pysstp.net.changes`)."""
    tls: TlsSettings = field(default_factory=TlsSettings)
    eap_tls: EapTlsSettings = field(default_factory=EapTlsSettings)
    pool: PoolSettings = field(default_factory=PoolSettings)
    pools: tuple[NamedPoolSettings, ...] = ()
    """Named pools for RADIUS Framed-Pool, besides the default ``pool``."""
    limits: LimitSettings = field(default_factory=LimitSettings)
    forwarding: ForwardingSettings = field(default_factory=ForwardingSettings)
    log: LogSettings = field(default_factory=LogSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    dae: DaeSettings = field(default_factory=DaeSettings)
    radius: RadiusSettings = field(default_factory=RadiusSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


@dataclass(frozen=True)
class _Workers(Kind):
    """A number of worker processes, or "auto" for one per core."""

    def parse(self, value: object) -> int | Literal["auto"]:
        if value == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type('an integer or "auto"', value)
        if not 1 <= value <= MAX_WORKERS:
            raise ValueError(f'must be between 1 and {MAX_WORKERS} or "auto", not {value}')
        return value

    def from_flag(self, value: Any) -> object:
        if value == "auto":
            return value
        try:
            return int(value)
        except ValueError:
            raise ValueError(f'expected an integer or "auto", not {value!r}') from None

    def metavar(self, default: str) -> str | None:
        return "{N,auto}"


@dataclass(frozen=True)
class _DaeClients(Kind):
    """A table of client address = secret file; the flag is repeated as ADDRESS=FILE."""

    action: ClassVar[str | type[argparse.Action]] = "append"

    def parse(self, value: object) -> Any:
        if not isinstance(value, dict):
            raise wrong_type('a table of "ADDRESS" = "SECRET-FILE"', value)
        clients = []
        for address, secret_file in value.items():
            try:
                parsed = ip_address(address)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address") from None
            if not isinstance(secret_file, str):
                raise ValueError(f"the secret file of {address} must be a string, not {secret_file!r}")
            if not Path(secret_file).is_absolute():
                raise ValueError(
                    f"the secret file of {address} must be an absolute path, not {secret_file!r}"
                )
            clients.append(DaeClientSettings(parsed, Path(secret_file)))
        return tuple(clients)

    def from_flag(self, value: Any) -> object:
        table: dict[str, str] = {}
        for text in value:
            address, equals, secret_file = text.partition("=")
            if not equals or not address or not secret_file:
                raise ValueError(f"expected ADDRESS=SECRET-FILE, not {text!r}")
            table[address.strip()] = secret_file.strip()
        return table

    def show(self, value: Any) -> str:
        return ", ".join(f"{client.address}={client.secret_file}" for client in value) or "none"

    def metavar(self, default: str) -> str | None:
        return "ADDRESS=FILE"


_POOL_KEYS = frozenset(f.name for f in fields(PoolSettings))


@dataclass(frozen=True)
class _NamedPools(Kind):
    """Named pools: in the file ``[pools.NAME]`` tables with a ``network``; the flag is repeated as
    NAME=CIDR."""

    action: ClassVar[str | type[argparse.Action]] = "append"

    def parse(self, value: object) -> tuple[NamedPoolSettings, ...]:
        if not isinstance(value, dict):
            raise wrong_type('[pools.NAME] tables with network = "CIDR"', value)
        pools = []
        for name, table in value.items():
            if not isinstance(table, dict):
                # [pools] with network = ... is most likely the default pool's [pool] misspelt.
                hint = " (the default pool is [pool])" if name in _POOL_KEYS else ""
                raise ValueError(f'{name}: expected a table with network = "CIDR", not {table!r}{hint}')
            unknown = sorted(set(table) - {"network"})
            if unknown:
                raise ValueError(f"{name}: unknown key {unknown[0]!r} (known: network)")
            if "network" not in table:
                raise ValueError(f'{name}: needs network = "CIDR"')
            try:
                network = _pool_network(_Text().parse(table["network"]))
            except ValueError as exc:
                raise ValueError(f"{name}: network: {exc}") from None
            pools.append(NamedPoolSettings(name, network))
        return tuple(pools)

    def from_flag(self, value: Any) -> object:
        table: dict[str, dict[str, str]] = {}
        for text in value:
            name, equals, network = text.partition("=")
            if not equals or not name.strip() or not network.strip():
                raise ValueError(f"expected NAME=CIDR, not {text!r}")
            table[name.strip()] = {"network": network.strip()}
        return table

    def show(self, value: Any) -> str:
        return ", ".join(f"{pool.name}={pool.network}" for pool in value) or "none"

    def metavar(self, default: str) -> str | None:
        return "NAME=CIDR"


@dataclass(frozen=True)
class _RadiusServers(Kind):
    """RADIUS servers: in the file a list of ``HOST[:PORT]`` strings or tables; a repeatable flag."""

    action: ClassVar[str | type[argparse.Action]] = "append"

    def parse(self, value: object) -> tuple[RadiusServerEntry, ...]:
        if not isinstance(value, list):
            raise wrong_type("a list", value)
        entries = tuple(_radius_server(entry) for entry in value)
        for index, entry in enumerate(entries):
            if any((e.address, e.port) == (entry.address, entry.port) for e in entries[:index]):
                raise ValueError(f"lists {entry} twice")
        return entries

    def from_flag(self, value: Any) -> object:
        return list(value)

    def show(self, value: Any) -> str:
        return ", ".join(str(entry) for entry in value)

    def anchored(self, value: Any, directory: Path) -> Any:
        return tuple(
            replace(entry, secret_file=directory / entry.secret_file)
            if entry.secret_file is not None and not entry.secret_file.is_absolute()
            else entry
            for entry in value
        )


# -- value checks ----------------------------------------------------------------------------------


def _listen_address(text: str) -> str:
    try:
        return str(ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (such as 0.0.0.0, :: or 192.0.2.1)") from None


def _metrics_address(text: str) -> tuple[str, int]:
    """``ADDR:PORT``, with an IPv6 address in brackets (``[::1]:9090``)."""
    host, colon, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        address = ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        address = None
    # Without brackets, where an IPv6 address ends and the port begins is ambiguous.
    if (
        not colon
        or address is None
        or (address.version == 6) != bracketed
        or not port.isdecimal()
        or not 1 <= int(port) <= 65535
    ):
        raise ValueError(
            "expected ADDR:PORT with an IP address and a port from 1 to 65535 (such as 127.0.0.1:9090 or "
            f"[::1]:9090), not {text!r}"
        )
    return str(address), int(port)


def _unicast_ipv4(text: str) -> IPv4Address:
    try:
        address = IPv4Address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None
    if address.is_unspecified or address.is_multicast or address.is_loopback or address.is_reserved:
        raise ValueError(f"{address} is not a unicast address")
    return address


def _pool_network(text: str) -> IPv4Network:
    try:
        network = IPv4Network(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IPv4 network such as 10.77.0.0/24 ({exc})") from None
    if network.is_multicast or network.is_loopback or network.is_reserved or network.is_unspecified:
        raise ValueError(f"{network} is not a unicast network")
    return network


def _ipv6_mode(text: str) -> Ipv6Settings:
    if text == "off":
        return Ipv6Settings()
    if text == "link-local":
        return Ipv6Settings(enabled=True)
    try:
        prefix = IPv6Network(text)
    except ValueError as exc:
        raise ValueError(
            f"must be 'off', 'link-local' or an IPv6 prefix such as 2001:db8:77::/64, not {text!r} ({exc})"
        ) from None
    # Clients form addresses from router advertisements by SLAAC, which needs 64-bit interface identifiers.
    if prefix.prefixlen != 64:
        raise ValueError(f"the announced prefix must be a /64, not /{prefix.prefixlen}")
    if prefix.is_link_local or prefix.is_multicast or prefix.is_loopback:
        raise ValueError(
            f"{prefix} is not a global or unique-local prefix (for link-local only say 'link-local')"
        )
    return Ipv6Settings(enabled=True, prefix=prefix)


def _interface_name(text: str) -> str:
    # The kernel's own rule (dev_valid_name): short, not "." or "..", no "/", ":" or whitespace.
    if (
        not text
        or len(os.fsencode(text)) >= IFNAMSIZ
        or text in (".", "..")
        or any(c in "/:" or c.isspace() for c in text)
    ):
        raise ValueError(f"{text!r} is not a valid interface name (1-15 characters, no '/', ':' or spaces)")
    return text


def _ciphers(text: str) -> str:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(text)
    except ssl.SSLError:
        raise ValueError(f"OpenSSL selects no cipher from {text!r} (try 'openssl ciphers -v LIST')") from None
    return text


def _proxy_source(text: str) -> IPv4Network | IPv6Network:
    try:
        return ip_network(text)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not an IP address or network such as 192.0.2.10 or 10.0.0.0/24 ({exc})"
        ) from None


def _sha_hex(length: int) -> Callable[[str], bytes]:
    """A hash in hex, as ``openssl x509 -fingerprint`` prints it (colons allowed) or without colons."""

    def parse(text: str) -> bytes:
        digits = text.replace(":", "")
        try:
            value = bytes.fromhex(digits)
        except ValueError:
            value = b""
        if len(value) != length or len(digits) != 2 * length:
            raise ValueError(
                f"expected {length} bytes in hex ({2 * length} digits, colons allowed), not {text!r}"
            )
        return value

    return parse


def _redirect_url(text: str) -> str:
    parts = urlsplit(text)
    # The URL goes into a Location header: a control character or space would split or break it.
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() or c < " " for c in text):
        raise ValueError(f"must be an absolute http:// or https:// URL without spaces, not {text!r}")
    return text


def _nas_identifier(text: str) -> str:
    if not text or len(text.encode()) > 253:
        raise ValueError("must be 1 to 253 bytes")
    return text


def _nas_address(text: str) -> IPv4Address | IPv6Address:
    try:
        return ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


_RADIUS_SERVER_KEYS: dict[str, Kind] = {
    "port": _Integer(1, 65535),
    "accounting_port": _Integer(1, 65535),
    "secret_file": _Text(_path),
    "priority": _Integer(0),
    "timeout": _Seconds(),
    "retries": _Integer(0, 10),
    "dead_time": _Seconds(),
}


def _radius_server(value: object) -> RadiusServerEntry:
    if isinstance(value, str):
        return _host_port(value)
    if not isinstance(value, dict):
        raise wrong_type("a string HOST[:PORT] or a table", value)
    if "address" not in value:
        raise ValueError("a radius.servers table needs an address")
    entry = _host_port(_Text().parse(value["address"]))
    changes: dict[str, Any] = {}
    for key, item in value.items():
        if key == "address":
            continue
        kind = _RADIUS_SERVER_KEYS.get(key)
        if kind is None:
            known = ", ".join(["address", *_RADIUS_SERVER_KEYS])
            raise ValueError(f"unknown key {key!r} in a radius.servers table (known: {known})")
        try:
            changes[key] = kind.parse(item)
        except ValueError as exc:
            raise ValueError(f"{entry.address}: {key}: {exc}") from None
    return replace(entry, **changes)


def _host_port(text: str) -> RadiusServerEntry:
    """``HOST``, ``HOST:PORT``, ``[IPV6]:PORT`` or a bare IPv6 address."""
    host, port = text, None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not HOST[:PORT] or [IPV6]:PORT")
        port = rest[1:] or None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{text!r} is not HOST[:PORT]")
    if port is None:
        return RadiusServerEntry(host)
    if not port.isdecimal() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return RadiusServerEntry(host, int(port))


_NOT_WITH_NT_HASHES = "needs the plaintext password, which the user database never keeps"


# -- the table -------------------------------------------------------------------------------------


_GROUPS: tuple[tuple[str, tuple[_Setting, ...]], ...] = (
    (
        "listening and TLS",
        (
            _Setting("listen", "--listen", _List(_Text(_listen_address)), "address to listen on", "ADDR"),
            _Setting("port", "--port", _Integer(1, 65535), "TCP port to listen on", "PORT"),
            _Setting(
                "workers",
                "--workers",
                _Workers(),
                "processes that run calls, each on its own TUN; auto = one per core (docs/scaling.md)",
            ),
            _Setting(
                "tls.cert",
                "--cert",
                _Text(_path),
                "certificate chain in PEM, server certificate first",
                "FILE",
            ),
            _Setting("tls.key", "--key", _Text(_path), "private key of the certificate, PEM", "FILE"),
            _Setting(
                "tls.min_version",
                "--tls-min",
                _Choice({"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}),
                "lowest TLS version accepted",
            ),
            _Setting(
                "tls.profile",
                "--tls-profile",
                _Choice({name: name for name in TLS_PROFILES}),
                "TLS 1.2 suites: 'intermediate' (ECDHE with AES-GCM or ChaCha20 only, as Mozilla's profile) "
                "or 'legacy' (adds CBC and RSA key exchange, for old Windows and RouterOS clients)",
            ),
            _Setting(
                "tls.ciphers",
                "--ciphers",
                _Text(_ciphers),
                "TLS 1.2 ciphers in OpenSSL syntax; replaces the profile's list",
                "LIST",
            ),
            _Setting(
                "tls.hash_protocols",
                "--hash",
                _FlagList(_Choice({"sha256": HashProtocol.SHA256, "sha1": HashProtocol.SHA1})),
                "certificate hashes offered for crypto binding",
            ),
            _Setting(
                "tls.verify_client_certificate",
                "--verify-client-certificate",
                _Choice({"none": "none", "request": "request", "require": "require"}),
                "ask for a TLS client certificate (Windows' own client never sends one)",
            ),
            _Setting(
                "tls.client_ca",
                "--client-ca",
                _List(_Text(_path)),
                "CAs that may sign TLS client certificates, PEM",
                "FILE",
            ),
            _Setting(
                "tls.client_crl",
                "--client-crl",
                _List(_Text(_path)),
                "CRLs for TLS client certificates, PEM",
                "FILE",
            ),
            _Setting(
                "tls.offload",
                "--tls-offload",
                _Bool(),
                "serve plain HTTP: a TLS terminator in front (HAProxy, nginx) does TLS; needs the "
                "terminator's certificate for the crypto binding (--binding-cert or --binding-sha256/-sha1)",
            ),
            _Setting(
                "tls.binding_cert",
                "--binding-cert",
                _Text(_path),
                "with --tls-offload: the TLS terminator's certificate, PEM (clients bind to its hashes)",
                "FILE",
            ),
            _Setting(
                "tls.binding_sha256",
                "--binding-sha256",
                _Text(_sha_hex(32)),
                "with --tls-offload, instead of --binding-cert: SHA-256 of the terminator's certificate, hex",
                "HEX",
            ),
            _Setting(
                "tls.binding_sha1",
                "--binding-sha1",
                _Text(_sha_hex(20)),
                "with --tls-offload, instead of --binding-cert: SHA-1 of the terminator's certificate, hex",
                "HEX",
            ),
            _Setting(
                "proxy_protocol",
                "--proxy-protocol",
                _Bool(),
                "every connection starts with a PROXY protocol header (v1 or v2) from a load balancer, "
                "whose client address then counts; needs --proxy-source",
            ),
            _Setting(
                "proxy_sources",
                "--proxy-source",
                _List(_Text(_proxy_source)),
                "a load balancer (address or network) allowed to send PROXY headers; others are refused",
                "CIDR",
            ),
            _Setting(
                "http.redirect",
                "--http-redirect",
                _Text(_redirect_url),
                "redirect non-SSTP requests here",
                "URL",
            ),
            _Setting(
                "http.page", "--http-page", _Text(_path), "serve this page to non-SSTP requests", "FILE"
            ),
        ),
    ),
    (
        "addresses",
        (
            _Setting(
                "pool.network",
                "--pool",
                _Text(_pool_network),
                "IPv4 network clients get addresses from",
                "CIDR",
            ),
            _Setting(
                "pool.server_address",
                "--server-address",
                _Text(_unicast_ipv4),
                "the server's tunnel address; default: the pool's first host",
                "ADDR",
                show_default=False,
            ),
            _Setting(
                "pools",
                "--named-pool",
                _NamedPools(),
                "a named IPv4 pool that a RADIUS Access-Accept picks with Framed-Pool",
            ),
            _Setting(
                "pool.dns",
                "--dns",
                _List(_Text(_unicast_ipv4), allow_empty=True),
                "DNS server to push",
                "ADDR",
            ),
            _Setting(
                "ipv6",
                "--ipv6",
                _Text(_ipv6_mode),
                "IPv6 in the tunnel: off, link-local, or a /64 prefix to announce",
                "{off,link-local,PREFIX}",
            ),
            _Setting(
                "tun_name", "--tun-name", _Text(_interface_name), "name of the shared TUN device", "NAME"
            ),
            _Setting("mru", "--mru", _Integer(MIN_MRU, MAX_MRU), "PPP MRU the server asks for", "BYTES"),
            _Setting(
                "max_peer_mru",
                "--max-peer-mru",
                _Integer(MIN_MRU, MAX_MRU),
                "largest MRU a client may ask",
                "BYTES",
            ),
        ),
    ),
    (
        "authentication",
        (
            _Setting(
                "auth_methods",
                "--auth",
                _List(
                    _Choice(
                        {
                            m.value: m
                            for m in (
                                AuthMethod.MSCHAP_V2,
                                AuthMethod.EAP_MSCHAP_V2,
                                AuthMethod.EAP_TLS,
                                AuthMethod.PEAP,
                                AuthMethod.PAP,
                            )
                        },
                        refused={
                            AuthMethod.CHAP_MD5.value: _NOT_WITH_NT_HASHES,
                            AuthMethod.EAP_MD5.value: _NOT_WITH_NT_HASHES,
                        },
                    )
                ),
                "methods offered, in order of preference (PAP only if listed)",
            ),
            _Setting("users", "--users", _Text(_path), "user database that pysstp user manages", "FILE"),
            _Setting(
                "backend",
                "--backend",
                _Choice({"local": "local", "radius": "radius"}),
                "who decides logins: local (the users file) or radius (the [radius] servers)",
            ),
            _Setting(
                "eap_mode",
                "--eap-mode",
                _Choice({"local": "local", "pass-through": "pass-through"}),
                "run EAP methods here (local) or in the RADIUS server (pass-through: EAP-MSCHAPv2, EAP-TLS, "
                "PEAP, whatever it offers)",
            ),
        ),
    ),
    (
        "EAP-TLS (certificate logins)",
        (
            _Setting(
                "eap_tls.ca", "--eap-ca", _List(_Text(_path)), "CAs that sign user certificates, PEM", "FILE"
            ),
            _Setting("eap_tls.crl", "--eap-crl", _List(_Text(_path)), "CRLs of those CAs, PEM", "FILE"),
            _Setting(
                "eap_tls.cert",
                "--eap-cert",
                _Text(_path),
                "certificate chain that EAP-TLS and PEAP show, PEM; default: the HTTPS one (tls.cert)",
                "FILE",
            ),
            _Setting("eap_tls.key", "--eap-key", _Text(_path), "its key; default: tls.key", "FILE"),
            _Setting(
                "eap_tls.identity",
                "--eap-identity",
                _Choice({source.value: source for source in IdentitySource}),
                "where the user name is read from the certificate",
            ),
            _Setting(
                "eap_tls.require_user",
                "--eap-require-user",
                _Bool(),
                "the name must also be an enabled user in the user database (else the CA decides)",
            ),
            _Setting(
                "eap_tls.fragment_size",
                "--eap-fragment-size",
                _Integer(MIN_FRAGMENT_SIZE, MAX_MRU),
                "TLS bytes per EAP packet",
                "BYTES",
            ),
            _Setting(
                "eap_tls.max_version",
                "--eap-tls-max",
                _Choice({version.value: version for version in TlsVersion}),
                "highest TLS version inside EAP",
            ),
        ),
    ),
    (
        "limits and timers",
        (
            _Setting("limits.max_sessions", "--max-sessions", _Integer(1), "sessions at once", "N"),
            _Setting(
                "limits.max_sessions_per_user",
                "--max-sessions-per-user",
                _Integer(0),
                "sessions per user at once, 0 = unlimited",
                "N",
            ),
            _Setting(
                "limits.max_handshakes",
                "--max-handshakes",
                _Integer(1),
                "TLS/HTTP handshakes in progress",
                "N",
            ),
            _Setting(
                "limits.negotiation_timeout",
                "--negotiation-timeout",
                _Seconds(),
                "from TCP accept to a connected call",
                "SECONDS",
            ),
            _Setting(
                "limits.handshake_timeout",
                "--handshake-timeout",
                _Seconds(),
                "TLS and HTTP must be done within this",
                "SECONDS",
            ),
            _Setting(
                "limits.idle_timeout",
                "--idle-timeout",
                _Seconds(zero_means_off=True),
                "end sessions without IP traffic for this long, 0 = off",
                "SECONDS",
            ),
            _Setting(
                "limits.connections_per_source_per_minute",
                "--connections-per-source-per-minute",
                _Integer(0),
                "new connections per source IP per minute, 0 = unlimited",
                "N",
            ),
            _Setting(
                "limits.login_delay",
                "--login-delay",
                _Seconds(zero_means_off=True),
                "the answer to a login waits this long after a failed one, doubling per failure, 0 = off",
                "SECONDS",
            ),
            _Setting(
                "limits.max_login_delay",
                "--max-login-delay",
                _Seconds(),
                "longest such wait for one source IP; one user name's failures add at most half of it",
                "SECONDS",
            ),
            _Setting(
                "limits.max_login_failures_per_source",
                "--max-login-failures-per-source",
                _Integer(0),
                "failed logins after which a source IP is refused (HTTP 503), 0 = never",
                "N",
            ),
            _Setting(
                "limits.login_refusal",
                "--login-refusal",
                _Seconds(),
                "how long such a source IP is refused after its last failed login",
                "SECONDS",
            ),
            _Setting(
                "limits.on_limit",
                "--on-limit",
                _Choice({"deny": "deny", "replace": "replace"}),
                "a login beyond a user's session limit: refused (deny), or the user's oldest session ends "
                "for it (replace)",
            ),
            _Setting(
                "limits.drain_timeout",
                "--drain-timeout",
                _Seconds(),
                "a drain (SIGUSR2, pysstp drain) disconnects the sessions still there after this long",
                "SECONDS",
            ),
            _Setting("keepalive", "--keepalive", _Seconds(), "SSTP hello interval", "SECONDS"),
        ),
    ),
    (
        "forwarding",
        (
            _Setting(
                "forwarding.mode",
                "--forwarding",
                _Choice({"route": "route", "nat": "nat"}),
                "route client traffic as is, or masquerade it behind --egress",
            ),
            _Setting(
                "forwarding.egress", "--egress", _Text(_interface_name), "interface NAT leaves by", "IFACE"
            ),
            _Setting(
                "forwarding.mss_clamp",
                "--mss-clamp",
                _Bool(),
                "clamp the TCP MSS of forwarded connections to the tunnel MTU",
            ),
        ),
    ),
    (
        "dynamic authorization (RFC 5176: Disconnect and CoA from a RADIUS server)",
        (
            _Setting(
                "dae.clients",
                "--dae-client",
                _DaeClients(),
                "a RADIUS client allowed to disconnect sessions and change them, and the file with its "
                "shared secret (absolute path); none = off",
            ),
            _Setting(
                "dae.listen", "--dae-listen", _Text(_listen_address), "UDP address to listen on", "ADDR"
            ),
            _Setting("dae.port", "--dae-port", _Integer(1, 65535), "UDP port to listen on", "PORT"),
        ),
    ),
    (
        "logging and control",
        (
            _Setting(
                "log.level",
                "--log-level",
                _Choice({name: name for name in ("debug", "info", "warning", "error")}),
                "log level",
            ),
            _Setting("log.format", "--log-format", _Choice({"text": "text", "json": "json"}), "log format"),
            _Setting(
                "control_socket", "--control-socket", _Text(_path), "Unix socket for pysstp status", "PATH"
            ),
            _Setting(
                "metrics.listen",
                "--metrics",
                _Text(_metrics_address),
                "serve Prometheus metrics (GET /metrics) and the health check for load balancers "
                "(GET /health: 200 accepting, 503 draining) over HTTP here; unset = off (docs/scaling.md)",
                "ADDR:PORT",
            ),
            _Setting(
                "state_dir",
                "--state-dir",
                _Text(_path),
                "where the server records its system changes, so a restart after a crash or "
                "--cleanup can undo them",
                "DIR",
            ),
        ),
    ),
    (
        "RADIUS (docs/radius.md)",
        (
            _Setting(
                "radius.servers",
                "--radius-server",
                _RadiusServers(),
                "a RADIUS server, by priority; in the file also a table with address, port, accounting_port, "
                "secret_file, priority, timeout, retries, dead_time",
                "HOST[:PORT]",
                show_default=False,
            ),
            _Setting(
                "radius.secret_file",
                "--radius-secret-file",
                _Text(_path),
                "file whose first line is the shared secret of servers without their own",
                "FILE",
            ),
            _Setting(
                "radius.timeout",
                "--radius-timeout",
                _Seconds(),
                "a request is sent again when no answer came within this",
                "SECONDS",
            ),
            _Setting(
                "radius.retries",
                "--radius-retries",
                _Integer(0, 10),
                "times a request is sent again to a server before the next one is tried",
                "N",
            ),
            _Setting(
                "radius.dead_time",
                "--radius-dead-time",
                _Seconds(),
                "a server that did not answer is tried last for this long",
                "SECONDS",
            ),
            _Setting(
                "radius.nas_identifier",
                "--nas-identifier",
                _Text(_nas_identifier),
                "NAS-Identifier in every RADIUS request",
                "NAME",
            ),
            _Setting(
                "radius.nas_address",
                "--nas-address",
                _Text(_nas_address),
                "NAS-IP-Address (or NAS-IPv6-Address) in every RADIUS request",
                "ADDR",
            ),
            _Setting(
                "radius.accounting",
                "--radius-accounting",
                _Bool(),
                "send RADIUS accounting (Start, Interim-Update, Stop) to the servers' accounting ports",
            ),
            _Setting(
                "radius.interim_interval",
                "--radius-interim-interval",
                _Seconds(zero_means_off=True),
                "Interim-Update interval if the Access-Accept sets no Acct-Interim-Interval, 0 = none",
                "SECONDS",
            ),
            _Setting(
                "radius.accounting_spool",
                "--radius-accounting-spool",
                _Text(_path),
                "where accounting records no server acknowledged wait for the next start",
                "FILE",
            ),
        ),
    ),
)

_TABLE = SettingsTable(_GROUPS)
_BY_KEY = _TABLE.by_key
_SECTIONS = _TABLE.sections


def _value_at(settings: ServerSettings, key: str) -> Any:
    value: Any = settings
    for name in key.split("."):
        value = getattr(value, name)
    return value


# -- the public API --------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    """Read and check a server.toml: returns checked values by dotted key (``"pool.network"``).

    Relative paths in the file are taken relative to the file's directory, so a configuration directory
    can be moved as a whole. Raises :class:`ConfigError` naming the file and the key.
    """
    return _TABLE.load(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and one flag per setting; every flag defaults to ``None`` (= not given)."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="read settings from this TOML file; flags override it"
    )
    defaults = ServerSettings()
    _TABLE.add_arguments(parser, lambda key: _value_at(defaults, key))


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """Merge defaults < ``--config`` file < flags, check the result, and return it (or raise ConfigError)."""
    values = _TABLE.from_args(args, load(args.config) if args.config is not None else {})
    settings = _build(values)
    validate(settings)
    return settings


def settings_from_file(path: Path) -> ServerSettings:
    """A server.toml over the defaults, for the commands that talk about a server without running it
    (``pysstp status``, ``pysstp user``); what only a starting server needs (a certificate) is not checked."""
    return _build(load(path))


def _build(values: Mapping[str, Any]) -> ServerSettings:
    defaults = ServerSettings()
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        if section:
            sections.setdefault(section, {})[name] = value
        else:
            top[name] = value
    pool = sections.setdefault("pool", {})
    network: IPv4Network = pool.get("network", defaults.pool.network)
    # The default server address follows the pool; a pool with no hosts is refused by validate().
    if "server_address" not in pool and network.num_addresses > 2:
        pool["server_address"] = network[1]
    for section, changes in sections.items():
        top[section] = replace(getattr(defaults, section), **changes)
    return replace(defaults, **top)


def validate(settings: ServerSettings) -> None:
    """Check what no single setting can check alone; raise :class:`ConfigError` for the first problem."""
    if settings.tls.offload:
        _check_offload(settings)
    elif settings.tls.cert is None:
        raise ConfigError("no certificate: set tls.cert in the config file or use --cert FILE")
    elif settings.tls.key is None:
        raise ConfigError("no private key: set tls.key in the config file or use --key FILE")
    elif _binding_settings(settings.tls):
        raise ConfigError(
            f"tls.{_binding_settings(settings.tls)[0]} is only for tls.offload = true (--tls-offload); the "
            "crypto binding otherwise uses tls.cert"
        )
    if settings.proxy_protocol and not settings.proxy_sources:
        raise ConfigError(
            "proxy_protocol needs the load balancers allowed to send PROXY headers: set proxy_sources or use "
            "--proxy-source CIDR"
        )
    if settings.proxy_sources and not settings.proxy_protocol:
        # Silently unused, it would look like a restriction on who may connect, which it is not.
        raise ConfigError(
            "proxy_sources is only for proxy_protocol = true (--proxy-protocol); without it every source "
            "may connect and no PROXY header is read"
        )
    # The pool's own checks: big enough, server address not its network or broadcast address.
    AddressPool(settings.pool.network, settings.pool.server_address)
    _check_named_pools(settings)
    if settings.forwarding.mode == "nat" and settings.forwarding.egress is None:
        raise ConfigError(
            "forwarding mode 'nat' needs an egress interface: set forwarding.egress or use --egress"
        )
    if settings.http.redirect is not None and settings.http.page is not None:
        raise ConfigError("set http.redirect or http.page, not both")
    # With EAP passed through, the RADIUS server checks the certificates.
    if (
        AuthMethod.EAP_TLS in settings.auth_methods
        and not settings.eap_tls.ca
        and settings.eap_mode == "local"
    ):
        raise ConfigError(
            "auth method 'eap-tls' needs the CA that signs user certificates: set eap_tls.ca or use --eap-ca"
        )
    if (settings.eap_tls.cert is None) != (settings.eap_tls.key is None):
        raise ConfigError("set both eap_tls.cert and eap_tls.key (--eap-cert, --eap-key), or neither")
    # EAP-TLS and PEAP show the EAP certificate, else the HTTPS one, which TLS offload does not have.
    tunnels = [m.value for m in (AuthMethod.EAP_TLS, AuthMethod.PEAP) if m in settings.auth_methods]
    if (
        tunnels
        and settings.eap_mode == "local"
        and settings.eap_tls.cert is None
        and settings.tls.cert is None
    ):
        raise ConfigError(
            f"auth method '{tunnels[0]}' needs a certificate of its own behind a TLS terminator: set "
            "eap_tls.cert and eap_tls.key (--eap-cert, --eap-key)"
        )
    if settings.tls.verify_client_certificate != "none" and not settings.tls.client_ca:
        raise ConfigError(
            f"verify-client-certificate '{settings.tls.verify_client_certificate}' needs the CA that signs "
            "client certificates: set tls.client_ca or use --client-ca"
        )
    if settings.backend == "radius" and not settings.radius.servers:
        raise ConfigError('backend "radius" needs a server: set radius.servers or use --radius-server HOST')
    if settings.eap_mode == "pass-through" and settings.backend != "radius":
        raise ConfigError('eap_mode "pass-through" needs backend = "radius": only RADIUS servers run EAP')
    for server in settings.radius.servers:
        if server.secret_file is None and settings.radius.secret_file is None:
            raise ConfigError(
                f"RADIUS server {server} has no secret: set radius.secret_file (--radius-secret-file) or "
                "its own secret_file"
            )
    _check_workers(settings)
    if len(os.fsencode(settings.control_socket)) > UNIX_SOCKET_PATH_MAX:
        raise ConfigError(
            f"control socket path {settings.control_socket} is longer than {UNIX_SOCKET_PATH_MAX} bytes"
        )


def _check_workers(settings: ServerSettings) -> None:
    """What several worker processes cannot do yet (docs/scaling.md, "Workers")."""
    if settings.workers == 1:
        return
    if settings.dae.clients:
        raise ConfigError(
            "dynamic authorization (dae.clients) needs workers = 1: one process must hold its UDP port "
            "and every session"
        )
    if settings.ipv6.prefix is not None:
        raise ConfigError(
            f"ipv6 = {settings.ipv6.prefix} needs workers = 1; with several workers use ipv6 = "
            '"link-local" or "off"'
        )


def _binding_settings(tls: TlsSettings) -> list[str]:
    """The names of the crypto-binding settings that are set."""
    return [
        name for name in ("binding_cert", "binding_sha256", "binding_sha1") if getattr(tls, name) is not None
    ]


def _check_offload(settings: ServerSettings) -> None:
    """TLS offload: the terminator's certificate, by file or by hashes, and nothing that needs TLS here."""
    tls = settings.tls
    hashes = {"binding_sha256": HashProtocol.SHA256, "binding_sha1": HashProtocol.SHA1}
    needed = [name for name, proto in hashes.items() if proto in tls.hash_protocols]
    given = _binding_settings(tls)
    if tls.binding_cert is not None and len(given) > 1:
        raise ConfigError("set tls.binding_cert or tls.binding_sha256/binding_sha1, not both")
    if not given:
        raise ConfigError(
            "tls.offload needs the TLS terminator's certificate for the crypto binding: set "
            "tls.binding_cert (--binding-cert FILE) or tls.binding_sha256 and tls.binding_sha1 "
            "(--binding-sha256/--binding-sha1)"
        )
    missing = [name for name in needed if name not in given]
    if tls.binding_cert is None and missing:
        raise ConfigError(
            f"tls.{missing[0]} (--{missing[0].replace('_', '-')}) is needed too: the server offers that hash "
            "for the crypto binding (tls.hash_protocols)"
        )
    if tls.verify_client_certificate != "none":
        raise ConfigError(
            "tls.verify_client_certificate needs TLS in this server; with tls.offload the terminator checks "
            "client certificates"
        )
    if (
        AuthMethod.EAP_TLS in settings.auth_methods
        and settings.eap_mode == "local"
        and settings.eap_tls.cert is None
        and tls.cert is None
    ):
        raise ConfigError(
            "EAP-TLS needs a server certificate: with tls.offload there is no tls.cert, so set eap_tls.cert "
            "and eap_tls.key (--eap-cert, --eap-key)"
        )


def _check_named_pools(settings: ServerSettings) -> None:
    """Named pools: each a usable pool, none overlapping another or the default pool, and only where
    their addresses leave the host as they are (NAT masquerades ``pool.network`` alone)."""
    seen = [("pool.network", settings.pool.network)]
    for named in settings.pools:
        AddressPool(named.network, settings.pool.server_address)
        for where, network in seen:
            if named.network.overlaps(network):
                raise ConfigError(
                    f"pools.{named.name}: {named.network} overlaps {where} {network}; give each pool its own "
                    "network"
                )
        seen.append((f"pools.{named.name}", named.network))
    if settings.pools and settings.forwarding.mode == "nat":
        raise ConfigError(
            'named pools need forwarding.mode = "route": NAT masquerades only pool.network; remove [pools] '
            "or route the pools' networks to this host"
        )


# -- help ------------------------------------------------------------------------------------------

EXAMPLE_CONFIG = """\
# /etc/pysstp/server.toml: a minimal server. Every other setting has a default (pysstp server --help);
# relative paths are relative to this file's directory.
users = "/etc/pysstp/users.toml"        # pysstp user add NAME --users /etc/pysstp/users.toml

[tls]
cert = "/etc/pysstp/fullchain.pem"      # PEM: the server certificate, then the intermediates
key = "/etc/pysstp/key.pem"

[pool]
network = "10.77.0.0/24"                # the server is 10.77.0.1, clients get .2 to .254
dns = ["1.1.1.1", "9.9.9.9"]
"""

EAP_TLS_EXAMPLE = """\
auth_methods = ["eap-tls", "mschapv2"]  # at the top, before the first [section]

[eap_tls]                               # the CA from `pysstp pki init --dir /etc/pysstp/pki`
ca = ["/etc/pysstp/pki/ca.pem"]
crl = ["/etc/pysstp/pki/crl.pem"]       # pysstp pki revoke NAME; reloaded with SIGHUP
identity = "cn"                         # or san-email, san-upn, san-dns
"""

HELP_EPILOG = (
    """\
examples:
  pysstp server --config /etc/pysstp/server.toml
  pysstp server --cert fullchain.pem --key key.pem --pool 10.77.0.0/24 --dns 1.1.1.1
  pysstp server --config /etc/pysstp/server.toml --forwarding nat --egress eth0 --log-level debug

Flags override the file, the file overrides the defaults; [brackets] name a flag's key in the file.
List flags (--listen, --dns, --auth, --hash) may be repeated or take a comma-separated list; they
replace the file's list.

a minimal server.toml:
"""
    + "".join(f"  {line}\n" if line else "\n" for line in EXAMPLE_CONFIG.splitlines())
    + """
certificate logins (EAP-TLS, docs/eap-tls.md) add:
"""
    + "".join(f"  {line}\n" if line else "\n" for line in EAP_TLS_EXAMPLE.splitlines())
)
"""Epilog for ``pysstp server --help``; needs ``argparse.RawDescriptionHelpFormatter`` to keep its lines."""
