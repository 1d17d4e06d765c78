"""``pysstp connect``: dial an SSTP server and route traffic through a TUN device until stopped."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509

from pysstp.aaa.pki import read_certificates, read_identity
from pysstp.client.app import ClientApp
from pysstp.client.daemon import Detacher, fork_daemon, pid_file_held
from pysstp.client.live import LiveLine
from pysstp.client.login import ClientCertificate, Login
from pysstp.client.settings import (
    DEFAULT_CONFIG,
    ClientSettings,
    TlsSettings,
    add_arguments,
    load_profile,
    settings_from_args,
)
from pysstp.client.tunnel import Tunnel
from pysstp.errors import ConfigError, SystemSetupError
from pysstp.logsetup import setup_logging
from pysstp.net.caps import CAP_NET_ADMIN, has_capability
from pysstp.net.changes import NetworkChanges
from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings, IdentitySource, certificate_identity
from pysstp.ppp.auth.peap import PeapPeerSettings
from pysstp.ppp.constants import AuthMethod
from pysstp.prompt import PASSWORD_ENV, ask_secret, read_password_file
from pysstp.runtime import freeze_start_up_objects, run_event_loop
from pysstp.settings import read_toml

EPILOG = f"""\
examples:
  pysstp connect vpn.example.com --user alice --route 10.1.0.0/16
  pysstp connect vpn.example.com:8443 --user 'CORP\\alice' --password-file ~/.vpnpass --default-route --dns
  pysstp connect https://vpn.example.com:8443/ --user alice             # the URL form works too
  pysstp connect 192.0.2.10 --user alice --pin-sha256 3f2a...c9          # a self-signed server
  pysstp connect work --config ~/.config/pysstp.toml                     # a named profile
  pysstp connect vpn.example.com --user alice --reconnect --daemon       # stay connected, in the background
  pysstp connect vpn.example.com --auth eap-tls --cert alice.pem --key alice.key --eap-ca ca.pem
                                        # a certificate login (docs/eap-tls.md; CA: pysstp pki)

The password comes from --password-file, else ${PASSWORD_ENV}, else a prompt without echo.
Profiles are TOML tables named after the profile, with the flags' long names as keys ([brackets] in the
list above), e.g.
  [work]
  server = "vpn.example.com"
  user = "CORP\\\\alice"
  password-file = "/root/.vpnpass"
  route = ["10.1.0.0/16"]
(default file: {DEFAULT_CONFIG}); flags override the profile. Everything pysstp changes (TUN, routes,
DNS) is put back when it exits. When a call that was up ends, one line gives its duration and bytes.

--reconnect dials again after a lost connection and after a pysstp server's shutdown (behind a load
balancer another node takes the call), but not after the server ended the call itself (an
administrator's kick, its idle timeout): that ends pysstp connect with the server's reason, unless
--reconnect-after-kick is given too.

Exit codes: 0 when stopped (Ctrl-C or SIGTERM) after being connected, 1 when connecting failed or the
call ended by itself, 130 after Ctrl-C before the call was up. With --daemon the command returns once
connected (exit code 0) or failed, and the client stays in the background; stop it with:
pysstp disconnect [--ifname NAME | --pid-file FILE].
"""


INTERRUPTED = 128 + signal.SIGINT
"""The exit code after Ctrl-C before the call was up, as shells use for a command ended by SIGINT."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pysstp connect``."""
    parser = subparsers.add_parser(
        "connect",
        help="dial an SSTP server (Windows RRAS, Azure, RouterOS, SoftEther, pysstp) and route through it",
        description="Dial an SSTP server and carry IP through a TUN device until Ctrl-C or SIGTERM.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the settings, read the login, then stay connected until stopped."""
    settings = settings_from_args(args, read_profile(args.config, args.target), os.environ)
    setup_logging("debug" if settings.verbose else "info", settings.log_format)
    if not has_capability(CAP_NET_ADMIN):
        raise SystemSetupError(
            "pysstp connect needs root or CAP_NET_ADMIN (TUN device, address, routes); run it with sudo"
        )
    login = read_login(settings, os.environ)
    detach: Detacher | None = None
    if settings.daemon:
        # Fork before the event loop and any socket exist; the parent only waits for the outcome.
        forked = fork_daemon(settings.log_file)
        if isinstance(forked, int):
            return forked
        detach = forked
    with pid_file_held(settings.pid_file):
        freeze_start_up_objects()
        return run_event_loop(connect(settings, login, detach))


def read_profile(path: Path | None, name: str) -> dict[str, Any] | None:
    """The profile ``name`` from ``path`` (or the default file when it exists), or ``None`` if ``name``
    is no profile there (then it is a host)."""
    file = path if path is not None else DEFAULT_CONFIG
    if path is None and not file.exists():
        return None
    return load_profile(read_toml(file), file, name)


def read_login(settings: ClientSettings, environ: Mapping[str, str]) -> Login:
    """The certificate, the user name and the password the settings point to, read (and asked for)."""
    certificate = read_certificate(settings.tls)
    user = settings.user
    if not user and certificate is not None:
        user = certificate_identity(certificate.identity.certificate, IdentitySource.COMMON_NAME)
    if not user:
        raise ConfigError(f"{settings.tls.cert}: the certificate has no common name; give --user USER")
    password = read_password(settings, user, environ) if settings.needs_password else ""
    eap_tls = None
    if certificate is not None:
        eap_tls = EapTlsPeerSettings(
            certificate.identity, eap_cas(settings), server_name=settings.eap_server_name
        )
    peap = None
    if AuthMethod.PEAP in settings.auth_methods:
        peap = PeapPeerSettings(eap_cas(settings), settings.eap_server_name)
    return Login(user, password, certificate, eap_tls, peap)


def read_password(settings: ClientSettings, user: str, environ: Mapping[str, str]) -> str:
    """The password from --password-file, else $PYSSTP_PASSWORD, else the command line flag that says
    it is insecure, else a prompt without echo."""
    if settings.password_file is not None:
        return read_password_file(str(settings.password_file))
    from_env = environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env
    if settings.password is not None:
        return settings.password
    return ask_secret(
        f"Password for {user}: ", "password", f"--password-file FILE (- for stdin) or ${PASSWORD_ENV}"
    )


def read_certificate(tls: TlsSettings) -> ClientCertificate | None:
    """``--cert`` and ``--key`` read and checked (the key decrypted), or ``None`` when not given."""
    if tls.cert is None or tls.key is None:
        return None
    passphrase = _key_passphrase(tls.key, tls.key_passphrase_file)
    return ClientCertificate(tls.cert, tls.key, passphrase, read_identity(tls.cert, tls.key, passphrase))


def _key_passphrase(key: Path, passphrase_file: Path | str | None) -> bytes | None:
    if passphrase_file is not None:
        return read_password_file(str(passphrase_file)).encode("utf-8")
    try:
        encrypted = b"ENCRYPTED" in key.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read the private key: {exc.strerror}") from None
    if not encrypted:
        return None
    return ask_secret(
        f"Passphrase for {key}: ", f"passphrase for {key}", "--key-passphrase-file FILE"
    ).encode("utf-8")


def eap_cas(settings: ClientSettings) -> tuple[x509.Certificate, ...]:
    """The CAs that sign the server's EAP-TLS or PEAP certificate: --eap-ca, else --ca-file, else the
    system's."""
    if settings.eap_ca is not None:
        return read_certificates(settings.eap_ca, "CA file")
    if settings.tls.ca_file is not None:
        return read_certificates(settings.tls.ca_file, "CA file")
    paths = ssl.get_default_verify_paths()
    system = paths.cafile or paths.openssl_cafile
    if not system or not Path(system).is_file():
        raise ConfigError("no system CA bundle to check the server's EAP certificate: use --eap-ca FILE")
    return read_certificates(Path(system), "system CA bundle")


def show_live_line(settings: ClientSettings) -> bool:
    """The live line is for people: only on a terminal, never among JSON lines for machines, and not from
    a daemon (its stdout leaves the terminal once it detaches)."""
    return settings.log_format == "text" and not settings.daemon and sys.stdout.isatty()


async def connect(settings: ClientSettings, login: Login, on_up: Callable[[], None] | None = None) -> int:
    """Run the client until SIGINT/SIGTERM or a final failure; every system change is undone on the way
    out, whichever way that is. ``on_up`` is called whenever a call has come up.

    Returns 0, or 130 (as shells expect after Ctrl-C) when SIGINT stopped it before any call was up.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals: list[int] = []

    def stopped(signum: int) -> None:
        signals.append(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped, signum)
    changes = NetworkChanges()
    tunnel = Tunnel(settings, changes)
    # The live line starts with the first call that is up: before that there is no traffic to show.
    live = LiveLine(tunnel.counters, sys.stdout) if show_live_line(settings) else None
    was_up = False

    def up() -> None:
        nonlocal was_up
        if live is not None and not was_up:
            live.start()
        was_up = True
        if on_up is not None:
            on_up()

    try:
        await ClientApp(settings, login, tunnel, stop, up).run()
        return INTERRUPTED if signals[:1] == [signal.SIGINT] and not was_up else 0
    finally:
        if live is not None:
            await live.stop()
        tunnel.close()
        changes.undo()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
