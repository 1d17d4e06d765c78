"""Client settings: flags, then a named profile from ``--config FILE``, checked into one frozen object.

Every setting is declared once, in ``_GROUPS``, with the machinery the server's settings use
(:mod:`pysstp.settings`): its key in a profile, its flag, how a value is read and checked, and its help
text. A profile is a TOML table named after the profile whose keys are the flags' long names
(``ca-file = "/etc/ssl/corp.pem"``); a flag given on the command line wins over the profile, the profile
over the built-in default. A value reads the same, and a mistake gets the same message, whichever place it
came from; the checks that span settings run when :class:`ClientSettings` is built.

Building the settings does no I/O: the profile's file, the environment and the files the settings name
(password, certificate, key, CAs) are read by ``pysstp connect`` (:mod:`pysstp.commands.connect`), which
passes them in or turns them into a :class:`~pysstp.client.login.Login`.
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pysstp.errors import ConfigError, SystemSetupError
from pysstp.net.ifname import check_ifname
from pysstp.ppp.constants import DEFAULT_MRU, MAX_MRU, MIN_MRU, AuthMethod
from pysstp.settings import (
    Bool,
    Choice,
    Groups,
    Integer,
    List,
    Setting,
    SettingsTable,
    Switch,
    Text,
    path,
)

DEFAULT_PORT = 443
DEFAULT_IFNAME = "sstp0"
DEFAULT_CONFIG = Path("/etc/pysstp/client.toml")
PID_DIR = Path("/run/pysstp")
PROXY_ENV = ("https_proxy", "HTTPS_PROXY")
NO_PROXY_ENV = ("no_proxy", "NO_PROXY")


def default_pid_file(ifname: str) -> Path:
    """Where ``--daemon`` records its PID unless ``--pid-file`` says otherwise, and where ``pysstp
    disconnect --ifname`` looks: one file per TUN name, since the TUN name is what makes a client unique."""
    return PID_DIR / f"connect-{ifname}.pid"


AUTH_CHOICES = {
    "mschapv2": AuthMethod.MSCHAP_V2,
    "eap-mschapv2": AuthMethod.EAP_MSCHAP_V2,
    "pap": AuthMethod.PAP,
    "chap": AuthMethod.CHAP_MD5,
    "eap-tls": AuthMethod.EAP_TLS,
    "peap": AuthMethod.PEAP,
}
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class ProxySettings:
    """An HTTP proxy that the TCP connection goes through (CONNECT)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TlsSettings:
    """How the server's certificate is checked, and the certificate we show if the server asks.

    ``pin_sha256`` replaces the CA and name checks: exactly that leaf certificate is accepted.
    """

    ca_file: Path | None = None
    pin_sha256: bytes | None = None
    insecure: bool = False
    sni: str | None = None
    no_sni: bool = False
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    cert: Path | None = None
    """Our certificate (``--cert``), for EAP-TLS and as the TLS client certificate."""
    key: Path | None = None
    key_passphrase_file: Path | str | None = None

    def __post_init__(self) -> None:
        """The checks that span these settings."""
        if self.insecure and (self.pin_sha256 or self.ca_file):
            raise ConfigError(
                "--insecure turns checks off; it cannot be combined with --pin-sha256 or --ca-file"
            )
        if self.sni and self.no_sni:
            raise ConfigError("--sni and --no-sni contradict each other")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("--cert and --key go together: the certificate and its private key")
        if self.key_passphrase_file is not None and self.key is None:
            raise ConfigError("--key-passphrase-file is for an encrypted --key")

    @property
    def has_certificate(self) -> bool:
        """Whether we have a certificate to show when the server asks for one."""
        return self.cert is not None


@dataclass(frozen=True)
class ClientSettings:
    """Everything ``pysstp connect`` is told, checked. Files are named, not read (see the module doc)."""

    host: str
    port: int = DEFAULT_PORT
    user: str | None = None
    """``None``: the common name of ``tls.cert``."""
    password_file: Path | str | None = None
    """``-`` is stdin."""
    password: str | None = field(default=None, repr=False)
    """``--password-insecure-cmdline``."""
    auth_methods: tuple[AuthMethod, ...] = ()
    tls: TlsSettings = field(default_factory=TlsSettings)
    eap_ca: Path | None = None
    """CAs for the server's EAP-TLS certificate (default: ``tls.ca_file``, else the system's)."""
    eap_server_name: str | None = None
    proxy: ProxySettings | None = None
    ifname: str = DEFAULT_IFNAME
    routes: tuple[IPv4Network | IPv6Network, ...] = ()
    default_route: bool = False
    ipv6: bool = True
    mru: int = DEFAULT_MRU
    """The PPP MRU we ask for, and the largest the server may ask us for (so both directions match)."""
    dns: bool = False
    reconnect: bool = False
    reconnect_after_kick: bool = False
    """With ``reconnect``: dial again also after the server ended the call itself."""
    max_attempts: int = 0
    verbose: bool = False
    log_format: str = "text"
    daemon: bool = False
    pid_file: Path | None = None
    """Where the PID is recorded: always with ``--daemon`` (see :func:`default_pid_file`), otherwise only
    when given."""
    log_file: Path | None = None
    """With ``--daemon``: where the log goes once detached (``None``: nowhere)."""

    def __post_init__(self) -> None:
        """The checks that span settings."""
        if AuthMethod.EAP_TLS in self.auth_methods and not self.tls.has_certificate:
            raise ConfigError("--auth eap-tls needs your certificate: --cert FILE --key FILE")
        if not self.user and not self.tls.has_certificate:
            raise ConfigError("no user name: --user USER (DOMAIN\\user works)")
        if (
            (self.eap_ca or self.eap_server_name)
            and not self.tls.has_certificate
            and AuthMethod.PEAP not in self.auth_methods
        ):
            raise ConfigError(
                "--eap-ca and --eap-server-name are for EAP-TLS (give --cert and --key too) or --auth peap"
            )
        if self.reconnect_after_kick and not self.reconnect:
            raise ConfigError("--reconnect-after-kick goes with --reconnect")
        if self.log_file is not None and not self.daemon:
            raise ConfigError("--log-file is for --daemon; in the foreground the log goes to stderr")

    @property
    def tls_name(self) -> str:
        """The name the certificate must carry: ``--sni NAME`` if given, else the host."""
        return self.tls.sni or self.host

    @property
    def needs_password(self) -> bool:
        """Whether a password is asked for: not for a certificate login alone."""
        return self.auth_methods != (AuthMethod.EAP_TLS,)


# -- value checks ----------------------------------------------------------------------------------


def parse_target(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port``, a bare IPv6 address or ``https://host[:port][/]`` ->
    (host, port)."""
    text = text.strip()
    if "://" in text:
        return _target_url(text)
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: write an IPv6 address with a port as [ADDRESS]:PORT")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{text!r}: no host name")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def _target_url(text: str) -> tuple[str, int]:
    # SSTP's own path is fixed (MS-SSTP 2.2.2), so a URL gives only the host and the port.
    parts = urlsplit(text)
    if parts.scheme.lower() != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"{text!r}: give the server as HOST[:PORT] (or https://HOST[:PORT]/)")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535") from None
    return parts.hostname, port


def parse_pin(text: str) -> bytes:
    """A SHA-256 fingerprint as 64 hex digits, colons and spaces allowed (as browsers and openssl print)."""
    digits = text.replace(":", "").replace(" ", "").lower()
    try:
        pin = bytes.fromhex(digits)
    except ValueError:
        pin = b""
    if len(pin) != 32:
        raise ValueError(
            f"expected 64 hex digits (the SHA-256 of the certificate's DER), not {text!r}; e.g. from: "
            "openssl x509 -in cert.pem -outform der | sha256sum"
        )
    return pin


def parse_route(text: str) -> IPv4Network | IPv6Network:
    """One ``--route`` prefix, IPv4 or IPv6 (host bits must be zero, so a typo does not route more than
    meant)."""
    try:
        return ip_network(text)
    except ValueError as exc:
        raise ValueError(f"{exc} (expected a prefix such as 192.168.10.0/24 or fd00:10::/48)") from None


def parse_proxy(text: str) -> ProxySettings:
    """``http://[user:pass@]host:port`` -> :class:`ProxySettings`."""
    parts = urlsplit(text if "://" in text else f"http://{text}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected http://[user:pass@]host:port, not {text!r}")
    try:
        port = parts.port or 8080
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535") from None
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxySettings(parts.hostname, port, username, password)


def proxy_from_environment(host: str, environ: Mapping[str, str]) -> ProxySettings | None:
    """The proxy ``$https_proxy`` (or ``$HTTPS_PROXY``) names for ``host``, or ``None`` when there is none
    or ``$no_proxy`` (or ``$NO_PROXY``) exempts the host, with curl's rules: comma-separated names that
    match the host or a domain suffix of it, ``*`` for all."""
    url = next((environ[key] for key in PROXY_ENV if environ.get(key)), None)
    if url is None:
        return None
    no_proxy = next((environ[key] for key in NO_PROXY_ENV if environ.get(key)), "")
    if _no_proxy_matches(host, no_proxy):
        return None
    try:
        return parse_proxy(url)
    except ValueError as exc:
        raise ConfigError(f"$https_proxy: {exc}") from None


def _no_proxy_matches(host: str, no_proxy: str) -> bool:
    host = host.lower().rstrip(".")
    for entry in no_proxy.replace(" ", "").lower().split(","):
        # "example.com" and ".example.com" both cover the domain and its subdomains (as curl does).
        name = entry.strip(".").rpartition(":")[0] if entry.count(":") == 1 else entry.strip(".")
        if entry == "*" or (name and (host == name or host.endswith(f".{name}"))):
            return True
    return False


def _ifname(text: str) -> str:
    try:
        check_ifname(text)
    except SystemSetupError as exc:
        raise ValueError(str(exc)) from None
    return text


def _secret_file(text: str) -> Path | str:
    """A file to read a secret from; ``-`` is stdin (and no path, so a profile does not rebase it)."""
    return text if text == "-" else path(text)


# -- the table -------------------------------------------------------------------------------------

_GROUPS: Groups = (
    (
        "login",
        (
            Setting(
                "user",
                "--user",
                Text(),
                "user name; DOMAIN\\user is sent as is (default with --cert: its CN)",
                "USER",
            ),
            Setting(
                "password-file",
                "--password-file",
                Text(_secret_file),
                "read the password from the first line of FILE (- for stdin)",
                "FILE",
            ),
            Setting(
                "password-insecure-cmdline",
                "--password-insecure-cmdline",
                Text(),
                "the password itself (visible to every user of this machine in the process list)",
                "PASSWORD",
            ),
            Setting(
                "auth",
                "--auth",
                List(Choice(AUTH_CHOICES)),
                "accept only this method (repeatable, in order of preference; default: what the server "
                "offers)",
            ),
            Setting(
                "cert",
                "--cert",
                Text(path),
                "your certificate, PEM (intermediates after it): for --auth eap-tls, and shown when the "
                "server asks for a TLS client certificate",
                "FILE",
            ),
            Setting("key", "--key", Text(path), "the private key of --cert, PEM", "FILE"),
            Setting(
                "key-passphrase-file",
                "--key-passphrase-file",
                Text(_secret_file),
                "passphrase of an encrypted --key: first line of FILE (- for stdin); else it is asked",
                "FILE",
            ),
            Setting(
                "eap-ca",
                "--eap-ca",
                Text(path),
                "CAs that sign the server's EAP-TLS or PEAP certificate (default: --ca-file, else the "
                "system's)",
                "FILE",
            ),
            Setting(
                "eap-server-name",
                "--eap-server-name",
                Text(),
                "the server's EAP-TLS or PEAP certificate must carry NAME (default: any name from those CAs)",
                "NAME",
            ),
        ),
    ),
    (
        "TLS",
        (
            Setting("ca-file", "--ca-file", Text(path), "trust these CAs instead of the system's", "FILE"),
            Setting(
                "pin-sha256",
                "--pin-sha256",
                Text(parse_pin),
                "accept exactly the certificate with this SHA-256 fingerprint (also self-signed ones)",
                "HEX",
            ),
            Setting("insecure", "--insecure", Switch(), "accept any certificate (DANGEROUS: no protection)"),
            Setting("sni", "--sni", Text(), "send NAME as SNI and expect a certificate for NAME", "NAME"),
            Setting("no-sni", "--no-sni", Switch(), "send no SNI (the name is still checked)"),
            Setting("tls-min", "--tls-min", Choice(TLS_VERSIONS), "lowest TLS version"),
            Setting("proxy", "--proxy", Text(parse_proxy), "HTTP proxy: http://[user:pass@]host:port", "URL"),
            Setting(
                "proxy-from-env",
                "--proxy-from-env",
                Switch(),
                "without --proxy: use $https_proxy (or $HTTPS_PROXY) unless $no_proxy names the server",
            ),
        ),
    ),
    (
        "tunnel",
        (
            Setting("ifname", "--ifname", Text(_ifname), "TUN device name", "NAME"),
            Setting(
                "route",
                "--route",
                List(Text(parse_route), allow_empty=True),
                "send this network through the tunnel (repeatable)",
                "CIDR",
            ),
            Setting(
                "default-route",
                "--default-route",
                Switch(),
                "send all traffic through the tunnel (IPv4, and IPv6 when offered; the server stays "
                "reachable)",
            ),
            Setting(
                "ipv6", "--ipv6", Bool(), "offer IPv6 (IPv6CP); it is used when the server offers it too"
            ),
            Setting(
                "mru",
                "--mru",
                Integer(MIN_MRU, MAX_MRU),
                f"PPP MRU to negotiate; above {DEFAULT_MRU} only pays off against a pysstp server set up "
                "for it (see docs/server.md, 'Large MRU')",
                "BYTES",
            ),
            Setting("dns", "--dns", Switch(), "use the DNS servers the server offers while connected"),
            Setting(
                "reconnect",
                "--reconnect",
                Switch(),
                "dial again after a lost connection or a pysstp server's shutdown (TUN and routes stay in "
                "place meanwhile); not after the server ended the call itself (see --reconnect-after-kick)",
            ),
            Setting(
                "reconnect-after-kick",
                "--reconnect-after-kick",
                Switch(),
                "with --reconnect: dial again also after the server ended the call itself (an "
                "administrator's kick or its idle timeout)",
            ),
            Setting(
                "max-attempts",
                "--max-attempts",
                Integer(0),
                "with --reconnect: give up after N failed dials, 0 = never",
                "N",
            ),
        ),
    ),
    (
        "output",
        (
            Setting("verbose", "--verbose", Switch(), "show protocol detail", aliases=("-v",)),
            Setting("log-format", "--log-format", Choice({"text": "text", "json": "json"}), "log format"),
        ),
    ),
    (
        "process",
        (
            Setting(
                "daemon",
                "--daemon",
                Bool(),
                "go to the background once connected (the exit code says whether connecting worked); stop "
                "it with: pysstp disconnect",
            ),
            Setting(
                "pid-file",
                "--pid-file",
                Text(path),
                f"record the PID here (default with --daemon: {default_pid_file('IFNAME')})",
                "FILE",
            ),
            Setting(
                "log-file",
                "--log-file",
                Text(path),
                "with --daemon: append the log here once detached",
                "FILE",
            ),
        ),
    ),
)

_TABLE = SettingsTable(_GROUPS)
_DEFAULTS: Mapping[str, Any] = {
    "tls-min": ssl.TLSVersion.TLSv1_2,
    "ifname": DEFAULT_IFNAME,
    "ipv6": True,
    "mru": DEFAULT_MRU,
    "max-attempts": 0,
    "log-format": "text",
    "daemon": False,
}
"""The defaults ``--help`` shows (the switches are off unless given)."""


# -- the public API --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the target, ``--config FILE`` and one flag per setting, each defaulting to ``None`` (= not
    given) so a profile can fill it."""
    parser.add_argument(
        "target",
        metavar="HOST[:PORT] | PROFILE",
        help=f"server to dial (port {DEFAULT_PORT} unless given; https://HOST:PORT/ works too), or a "
        "profile name from --config",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"TOML file with named profiles (default: {DEFAULT_CONFIG})",
    )
    _TABLE.add_arguments(parser, _DEFAULTS.get)


def load_profile(document: Mapping[str, Any], file: Path, name: str) -> dict[str, Any] | None:
    """The checked values of profile ``name`` in ``document`` (the TOML ``file``, already read), or
    ``None`` if there is no such profile (then the name is a host)."""
    table = document.get(name)
    if table is None:
        return None
    where = f"{file} [{name}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{file}: {name!r} must be a table: [{name}]")
    if "password" in table:
        raise ConfigError(f'{where}: no passwords in the profile; use password-file = "FILE"')
    values = dict(table)
    server = values.pop("server", None)
    if server is None:
        raise ConfigError(f"{where}: 'server = \"HOST[:PORT]\"' is missing")
    profile = _TABLE.check(values, where, file.parent)
    try:
        profile["server"] = Text(parse_target).parse(server)
    except ValueError as exc:
        raise ConfigError(f"{where}: server: {exc}") from None
    return profile


def settings_from_args(
    args: argparse.Namespace,
    profile: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientSettings:
    """Flags over ``profile`` (when the target named one; see :func:`load_profile`) over the defaults,
    checked; ``environ`` is the environment for ``--proxy-from-env``."""
    values = _TABLE.from_args(args, profile or {})
    if profile is None:
        try:
            values["server"] = parse_target(args.target)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return build_settings(values, environ or {})


def build_settings(values: Mapping[str, Any], environ: Mapping[str, str]) -> ClientSettings:
    """:class:`ClientSettings` from checked values by key (``"server"``: (host, port))."""
    host, port = values["server"]
    ifname = values.get("ifname", DEFAULT_IFNAME)
    daemon = values.get("daemon", False)
    proxy = values.get("proxy")
    if proxy is None and values.get("proxy-from-env"):
        # Only when asked: a proxy variable set for browsers must not silently reroute a VPN.
        proxy = proxy_from_environment(host, environ)
    return ClientSettings(
        host=host,
        port=port,
        user=values.get("user"),
        password_file=values.get("password-file"),
        password=values.get("password-insecure-cmdline"),
        auth_methods=values.get("auth", ()),
        tls=TlsSettings(
            ca_file=values.get("ca-file"),
            pin_sha256=values.get("pin-sha256"),
            insecure=values.get("insecure", False),
            sni=values.get("sni"),
            no_sni=values.get("no-sni", False),
            min_version=values.get("tls-min", ssl.TLSVersion.TLSv1_2),
            cert=values.get("cert"),
            key=values.get("key"),
            key_passphrase_file=values.get("key-passphrase-file"),
        ),
        eap_ca=values.get("eap-ca"),
        eap_server_name=values.get("eap-server-name"),
        proxy=proxy,
        ifname=ifname,
        routes=values.get("route", ()),
        default_route=values.get("default-route", False),
        ipv6=values.get("ipv6", True),
        mru=values.get("mru", DEFAULT_MRU),
        dns=values.get("dns", False),
        reconnect=values.get("reconnect", False),
        reconnect_after_kick=values.get("reconnect-after-kick", False),
        max_attempts=values.get("max-attempts", 0),
        verbose=values.get("verbose", False),
        log_format=values.get("log-format", "text"),
        daemon=daemon,
        pid_file=values.get("pid-file") or (default_pid_file(ifname) if daemon else None),
        log_file=values.get("log-file"),
    )
