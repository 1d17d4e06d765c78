"""Client settings: flags, then a named profile from ``--config FILE``, checked into one frozen object.

Every flag defaults to ``None`` (= not given). A profile is a TOML table whose keys are the flags'
long names (``ca-file = "/etc/ssl/corp.pem"``); a flag given on the command line wins over the profile,
the profile over the built-in default. Checking happens once, on the merged values, so a bad value
reads the same whichever place it came from.
"""

from __future__ import annotations

import argparse
import getpass
import os
import ssl
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography import x509

from pysstp.aaa.pki import read_certificates, read_identity
from pysstp.commands.user import PASSWORD_ENV, read_password_file
from pysstp.errors import ConfigError, SystemSetupError
from pysstp.net.ifname import check_ifname
from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings, IdentitySource, TlsIdentity, certificate_identity
from pysstp.ppp.constants import DEFAULT_MRU, MAX_MRU, MIN_MRU, AuthMethod

DEFAULT_PORT = 443
DEFAULT_IFNAME = "sstp0"
DEFAULT_CONFIG = Path("/etc/pysstp/client.toml")
PID_DIR = Path("/run/pysstp")


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
}
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

_LIST_KEYS = frozenset({"auth", "route"})
_BOOL_KEYS = frozenset(
    {
        "insecure",
        "no_sni",
        "default_route",
        "dns",
        "reconnect",
        "reconnect_after_kick",
        "ipv6",
        "proxy_from_env",
        "daemon",
    }
)
PROXY_ENV = ("https_proxy", "HTTPS_PROXY")
NO_PROXY_ENV = ("no_proxy", "NO_PROXY")


@dataclass(frozen=True)
class ProxySettings:
    """An HTTP proxy that the TCP connection goes through (CONNECT)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ClientCertificate:
    """The user's certificate and key (``--cert``, ``--key``), already read and checked: it logs in with
    EAP-TLS and is the TLS client certificate when the server asks for one."""

    cert: Path
    key: Path
    passphrase: bytes | None = field(repr=False)
    identity: TlsIdentity = field(repr=False)


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
    client_certificate: ClientCertificate | None = None


@dataclass(frozen=True)
class ClientSettings:
    """Everything ``pysstp connect`` needs, checked."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    auth_methods: tuple[AuthMethod, ...] = ()
    tls: TlsSettings = field(default_factory=TlsSettings)
    eap_tls: EapTlsPeerSettings | None = None
    """EAP-TLS with ``tls.client_certificate``, when a certificate is given."""
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

    @property
    def tls_name(self) -> str:
        """The name the certificate must carry: ``--sni NAME`` if given, else the host."""
        return self.tls.sni or self.host


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every ``pysstp connect`` flag, each defaulting to ``None`` so a profile can fill it."""
    parser.add_argument(
        "target",
        metavar="HOST[:PORT] | PROFILE",
        help=f"server to dial (port {DEFAULT_PORT} unless given), or a profile name from --config",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"TOML file with named profiles (default: {DEFAULT_CONFIG})",
    )
    login = parser.add_argument_group("login")
    login.add_argument(
        "--user", metavar="USER", help="user name; DOMAIN\\user is sent as is (default with --cert: its CN)"
    )
    login.add_argument(
        "--password-file", metavar="FILE", help="read the password from the first line of FILE (- for stdin)"
    )
    login.add_argument(
        "--password-insecure-cmdline",
        metavar="PASSWORD",
        help="the password itself (visible to every user of this machine in the process list)",
    )
    login.add_argument(
        "--auth",
        action="append",
        choices=sorted(AUTH_CHOICES),
        help="accept only this method (repeatable, in order of preference; default: what the server offers)",
    )
    login.add_argument(
        "--cert",
        type=Path,
        metavar="FILE",
        help="your certificate, PEM (intermediates after it): for --auth eap-tls, and shown when the server "
        "asks for a TLS client certificate",
    )
    login.add_argument("--key", type=Path, metavar="FILE", help="the private key of --cert, PEM")
    login.add_argument(
        "--key-passphrase-file",
        metavar="FILE",
        help="passphrase of an encrypted --key: first line of FILE (- for stdin); else it is asked",
    )
    login.add_argument(
        "--eap-ca",
        type=Path,
        metavar="FILE",
        help="CAs that sign the server's EAP-TLS certificate (default: --ca-file, else the system's)",
    )
    login.add_argument(
        "--eap-server-name",
        metavar="NAME",
        help="the server's EAP-TLS certificate must carry NAME (default: any name from those CAs)",
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--ca-file", type=Path, metavar="FILE", help="trust these CAs instead of the system's")
    tls.add_argument(
        "--pin-sha256",
        metavar="HEX",
        help="accept exactly the certificate with this SHA-256 fingerprint (also self-signed ones)",
    )
    tls.add_argument(
        "--insecure",
        action="store_const",
        const=True,
        help="accept any certificate (DANGEROUS: no protection)",
    )
    tls.add_argument("--sni", metavar="NAME", help="send NAME as SNI and expect a certificate for NAME")
    tls.add_argument(
        "--no-sni", action="store_const", const=True, help="send no SNI (the name is still checked)"
    )
    tls.add_argument("--tls-min", choices=sorted(TLS_VERSIONS), help="lowest TLS version (default: 1.2)")
    tls.add_argument("--proxy", metavar="URL", help="HTTP proxy: http://[user:pass@]host:port")
    tls.add_argument(
        "--proxy-from-env",
        action="store_const",
        const=True,
        help="without --proxy: use $https_proxy (or $HTTPS_PROXY) unless $no_proxy names the server",
    )
    tunnel = parser.add_argument_group("tunnel")
    tunnel.add_argument("--ifname", metavar="NAME", help=f"TUN device name (default: {DEFAULT_IFNAME})")
    tunnel.add_argument(
        "--route", action="append", metavar="CIDR", help="send this network through the tunnel (repeatable)"
    )
    tunnel.add_argument(
        "--default-route",
        action="store_const",
        const=True,
        help="send all traffic through the tunnel (IPv4, and IPv6 when offered; the server stays reachable)",
    )
    tunnel.add_argument(
        "--no-ipv6",
        dest="ipv6",
        action="store_const",
        const=False,
        help="do not offer IPv6 (IPv6CP); by default IPv6 is used when the server offers it",
    )
    tunnel.add_argument(
        "--mru",
        type=int,
        metavar="BYTES",
        help=f"PPP MRU to negotiate, {MIN_MRU}-{MAX_MRU} (default: {DEFAULT_MRU}); above {DEFAULT_MRU} "
        "only pays off against a pysstp server set up for it (see docs/server.md, 'Large MRU')",
    )
    tunnel.add_argument(
        "--dns",
        action="store_const",
        const=True,
        help="use the DNS servers the server offers while connected",
    )
    tunnel.add_argument(
        "--reconnect",
        action="store_const",
        const=True,
        help="dial again after a lost connection (TUN and routes stay in place meanwhile); not after the "
        "server ended the call itself (see --reconnect-after-kick)",
    )
    tunnel.add_argument(
        "--reconnect-after-kick",
        action="store_const",
        const=True,
        help="with --reconnect: dial again also after the server ended the call itself (an "
        "administrator's kick, its idle timeout or its shutdown); without it, that ends pysstp connect",
    )
    tunnel.add_argument(
        "--max-attempts",
        type=int,
        metavar="N",
        help="with --reconnect: give up after N failed dials (0: never)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("-v", "--verbose", action="store_const", const=True, help="show protocol detail")
    output.add_argument("--log-format", choices=("text", "json"), help="text (default) or JSON lines")
    process = parser.add_argument_group("process")
    process.add_argument(
        "--foreground",
        dest="daemon",
        action="store_const",
        const=False,
        help="stay in the foreground until Ctrl-C or SIGTERM (the default)",
    )
    process.add_argument(
        "--daemon",
        action="store_const",
        const=True,
        help="go to the background once connected (the exit code says whether connecting worked); "
        "stop it with: pysstp disconnect",
    )
    process.add_argument(
        "--pid-file",
        type=Path,
        metavar="FILE",
        help=f"record the PID here (default with --daemon: {default_pid_file('IFNAME')})",
    )
    process.add_argument(
        "--log-file", type=Path, metavar="FILE", help="with --daemon: append the log here once detached"
    )


def settings_from_args(args: argparse.Namespace) -> ClientSettings:
    """Merge flags over the profile (if the target names one), read the password, check everything."""
    values = {key: value for key, value in vars(args).items() if value is not None and key != "func"}
    profile = load_profile(args.config, args.target)
    if profile is not None:
        values = {**profile, **values}
        values.pop("target")
        if "server" not in values:
            raise ConfigError(f"profile {args.target!r}: 'server = \"HOST[:PORT]\"' is missing")
        values["target"] = values.pop("server")
    return build_settings(values)


def load_profile(path: Path | None, name: str) -> dict[str, Any] | None:
    """The profile ``name`` from ``path`` (keys as flag names), or ``None`` if ``name`` is a host.

    Without ``--config`` the default file is used when it exists; a name that is not a profile there is
    taken as a host name.
    """
    file = path if path is not None else DEFAULT_CONFIG
    if path is None and not file.exists():
        return None
    try:
        with open(file, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    table = document.get(name)
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{file}: {name!r} must be a table: [{name}]")
    profile: dict[str, Any] = {}
    for key, value in table.items():
        dest = key.replace("-", "_")
        if dest == "password":
            raise ConfigError(f'{file} [{name}]: no passwords in the profile; use password-file = "FILE"')
        if dest in _LIST_KEYS:
            value = [value] if isinstance(value, str) else value
        profile[dest] = value
    return profile


def build_settings(values: Mapping[str, Any]) -> ClientSettings:
    """Check merged values (flag dests as keys) and build :class:`ClientSettings`."""
    unknown = set(values) - _KNOWN
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(k.replace('_', '-') for k in unknown))}")
    for key in _BOOL_KEYS & set(values):
        if not isinstance(values[key], bool):
            raise ConfigError(f"{key.replace('_', '-')} must be true or false")
    host, port = parse_target(str(values["target"]))
    auth_methods = tuple(_choice("auth", name, AUTH_CHOICES) for name in values.get("auth", ()))
    certificate = read_client_certificate(values, auth_methods)
    user = values.get("user")
    if not user and certificate is not None:
        user = certificate_identity(certificate.identity.certificate, IdentitySource.COMMON_NAME)
    if not user:
        raise ConfigError("no user name: --user USER (DOMAIN\\user works)")
    tls = TlsSettings(
        ca_file=Path(values["ca_file"]) if "ca_file" in values else None,
        pin_sha256=parse_pin(values["pin_sha256"]) if "pin_sha256" in values else None,
        insecure=values.get("insecure", False),
        sni=values.get("sni"),
        no_sni=values.get("no_sni", False),
        min_version=_choice("tls-min", values.get("tls_min", "1.2"), TLS_VERSIONS),
        client_certificate=certificate,
    )
    if tls.insecure and (tls.pin_sha256 or tls.ca_file):
        raise ConfigError("--insecure turns checks off; it cannot be combined with --pin-sha256 or --ca-file")
    if tls.sni and tls.no_sni:
        raise ConfigError("--sni and --no-sni contradict each other")
    max_attempts = values.get("max_attempts", 0)
    if not isinstance(max_attempts, int) or max_attempts < 0:
        raise ConfigError("--max-attempts must be 0 (never give up) or more")
    ifname = str(values.get("ifname", DEFAULT_IFNAME))
    try:
        check_ifname(ifname)
    except SystemSetupError as exc:
        raise ConfigError(f"--ifname: {exc}") from None
    if values.get("reconnect_after_kick") and not values.get("reconnect"):
        raise ConfigError("--reconnect-after-kick goes with --reconnect")
    daemon = values.get("daemon", False)
    if "log_file" in values and not daemon:
        raise ConfigError("--log-file is for --daemon; in the foreground the log goes to stderr")
    pid_file = Path(values["pid_file"]) if "pid_file" in values else None
    mru = values.get("mru", DEFAULT_MRU)
    if isinstance(mru, bool) or not isinstance(mru, int) or not MIN_MRU <= mru <= MAX_MRU:
        raise ConfigError(f"--mru must be a number of bytes from {MIN_MRU} to {MAX_MRU}, not {mru!r}")
    return ClientSettings(
        host=host,
        port=port,
        user=str(user),
        # A certificate login needs no password.
        password="" if auth_methods == (AuthMethod.EAP_TLS,) else read_password(values),
        auth_methods=auth_methods,
        tls=tls,
        eap_tls=_eap_tls(values, certificate, tls),
        proxy=parse_proxy(values["proxy"]) if "proxy" in values else _env_proxy(values, host),
        ifname=ifname,
        routes=tuple(parse_route(text) for text in values.get("route", ())),
        default_route=values.get("default_route", False),
        ipv6=values.get("ipv6", True),
        mru=mru,
        dns=values.get("dns", False),
        reconnect=values.get("reconnect", False),
        reconnect_after_kick=values.get("reconnect_after_kick", False),
        max_attempts=max_attempts,
        verbose=bool(values.get("verbose", False)),
        log_format=_choice("log-format", values.get("log_format", "text"), {"text": "text", "json": "json"}),
        daemon=daemon,
        pid_file=default_pid_file(ifname) if daemon and pid_file is None else pid_file,
        log_file=Path(values["log_file"]) if "log_file" in values else None,
    )


_KNOWN = frozenset(
    {
        "target",
        "config",
        "user",
        "password_file",
        "password_insecure_cmdline",
        "auth",
        "cert",
        "key",
        "key_passphrase_file",
        "eap_ca",
        "eap_server_name",
        "ca_file",
        "pin_sha256",
        "insecure",
        "sni",
        "no_sni",
        "tls_min",
        "proxy",
        "proxy_from_env",
        "ifname",
        "route",
        "default_route",
        "ipv6",
        "mru",
        "dns",
        "reconnect",
        "reconnect_after_kick",
        "max_attempts",
        "verbose",
        "log_format",
        "daemon",
        "pid_file",
        "log_file",
    }
)


def read_client_certificate(
    values: Mapping[str, Any], auth_methods: tuple[AuthMethod, ...]
) -> ClientCertificate | None:
    """``--cert`` and ``--key`` read and checked (the key decrypted), or ``None`` when not given."""
    if "cert" not in values and "key" not in values:
        if AuthMethod.EAP_TLS in auth_methods:
            raise ConfigError("--auth eap-tls needs your certificate: --cert FILE --key FILE")
        return None
    if "cert" not in values or "key" not in values:
        raise ConfigError("--cert and --key go together: the certificate and its private key")
    cert, key = Path(values["cert"]), Path(values["key"])
    passphrase = _key_passphrase(values, key)
    return ClientCertificate(cert, key, passphrase, read_identity(cert, key, passphrase))


def _key_passphrase(values: Mapping[str, Any], key: Path) -> bytes | None:
    if "key_passphrase_file" in values:
        return read_password_file(str(values["key_passphrase_file"])).encode("utf-8")
    try:
        encrypted = b"ENCRYPTED" in key.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read the private key: {exc.strerror}") from None
    if not encrypted:
        return None
    if not sys.stdin.isatty():
        raise ConfigError(
            f"{key}: the private key is encrypted and stdin is not a terminal; use --key-passphrase-file FILE"
        )
    return getpass.getpass(f"Passphrase for {key}: ").encode("utf-8")


def _eap_tls(
    values: Mapping[str, Any], certificate: ClientCertificate | None, tls: TlsSettings
) -> EapTlsPeerSettings | None:
    if certificate is None:
        if "eap_ca" in values or "eap_server_name" in values:
            raise ConfigError("--eap-ca and --eap-server-name are for EAP-TLS: give --cert and --key too")
        return None
    return EapTlsPeerSettings(
        certificate.identity, _eap_cas(values, tls), server_name=values.get("eap_server_name")
    )


def _eap_cas(values: Mapping[str, Any], tls: TlsSettings) -> tuple[x509.Certificate, ...]:
    if "eap_ca" in values:
        return read_certificates(Path(values["eap_ca"]), "CA file")
    if tls.ca_file is not None:
        return read_certificates(tls.ca_file, "CA file")
    paths = ssl.get_default_verify_paths()
    system = paths.cafile or paths.openssl_cafile
    if not system or not Path(system).is_file():
        raise ConfigError("no system CA bundle to check the server's EAP-TLS certificate: use --eap-ca FILE")
    return read_certificates(Path(system), "system CA bundle")


def parse_target(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigError(f"{text!r}: write an IPv6 address with a port as [ADDRESS]:PORT")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(f"{text!r}: no host name")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def parse_pin(text: str) -> bytes:
    """A SHA-256 fingerprint as 64 hex digits, colons and spaces allowed (as browsers and openssl print)."""
    digits = text.replace(":", "").replace(" ", "").lower()
    try:
        pin = bytes.fromhex(digits)
    except ValueError:
        pin = b""
    if len(pin) != 32:
        raise ConfigError(
            f"--pin-sha256 {text!r}: expected 64 hex digits (the SHA-256 of the certificate's DER), e.g. "
            "from: openssl x509 -in cert.pem -outform der | sha256sum"
        )
    return pin


def parse_route(text: str) -> IPv4Network | IPv6Network:
    """One ``--route`` prefix, IPv4 or IPv6 (host bits must be zero, so a typo does not route more than
    meant)."""
    try:
        return ip_network(text)
    except ValueError as exc:
        raise ConfigError(
            f"--route {text}: {exc} (expected a prefix such as 192.168.10.0/24 or fd00:10::/48)"
        ) from None


def parse_proxy(text: str) -> ProxySettings:
    """``http://[user:pass@]host:port`` -> :class:`ProxySettings`."""
    parts = urlsplit(text if "://" in text else f"http://{text}")
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"--proxy {text!r}: expected http://[user:pass@]host:port")
    try:
        port = parts.port or 8080
    except ValueError:
        raise ConfigError(f"--proxy {text!r}: the port must be a number from 1 to 65535") from None
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
    except ConfigError as exc:
        raise ConfigError(f"$https_proxy: {exc}") from None


def _no_proxy_matches(host: str, no_proxy: str) -> bool:
    host = host.lower().rstrip(".")
    for entry in no_proxy.replace(" ", "").lower().split(","):
        # "example.com" and ".example.com" both cover the domain and its subdomains (as curl does).
        name = entry.strip(".").rpartition(":")[0] if entry.count(":") == 1 else entry.strip(".")
        if entry == "*" or (name and (host == name or host.endswith(f".{name}"))):
            return True
    return False


def _env_proxy(values: Mapping[str, Any], host: str) -> ProxySettings | None:
    # Only when asked: a proxy variable set for browsers must not silently reroute a VPN.
    return proxy_from_environment(host, os.environ) if values.get("proxy_from_env") else None


def read_password(values: Mapping[str, Any]) -> str:
    """The password from --password-file, else $PYSSTP_PASSWORD, else the command line flag that says
    it is insecure, else a prompt without echo."""
    if "password_file" in values:
        return read_password_file(str(values["password_file"]))
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env
    if "password_insecure_cmdline" in values:
        return str(values["password_insecure_cmdline"])
    if not sys.stdin.isatty():
        raise ConfigError(
            f"no password: stdin is not a terminal; use --password-file FILE (- for stdin) or ${PASSWORD_ENV}"
        )
    return getpass.getpass(f"Password for {values['user']}: ")


def _choice(flag: str, value: object, choices: Mapping[str, Any]) -> Any:
    try:
        return choices[str(value)]
    except KeyError:
        raise ConfigError(f"--{flag} {value!r}: choose one of {', '.join(sorted(choices))}") from None
