"""``pysstp connect``: dial an SSTP server and route traffic through a TUN device until stopped."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable

from pysstp.client.app import ClientApp
from pysstp.client.daemon import Detacher, fork_daemon, pid_file_held
from pysstp.client.live import LiveLine
from pysstp.client.settings import DEFAULT_CONFIG, ClientSettings, add_arguments, settings_from_args
from pysstp.client.tunnel import Tunnel
from pysstp.commands.user import PASSWORD_ENV
from pysstp.errors import SystemSetupError
from pysstp.logsetup import setup_logging
from pysstp.net.caps import CAP_NET_ADMIN, has_capability
from pysstp.net.changes import NetworkChanges
from pysstp.runtime import freeze_start_up_objects

EPILOG = f"""\
examples:
  pysstp connect vpn.example.com --user alice --route 10.1.0.0/16
  pysstp connect vpn.example.com:8443 --user 'CORP\\alice' --password-file ~/.vpnpass --default-route --dns
  pysstp connect 192.0.2.10 --user alice --pin-sha256 3f2a...c9   # a self-signed server
  pysstp connect work --config ~/.config/pysstp.toml                # a named profile
  pysstp connect vpn.example.com --auth eap-tls --cert alice.pem --key alice.key --eap-ca ca.pem
                                        # a certificate login (docs/eap-tls.md; CA: pysstp pki)

The password comes from --password-file, else ${PASSWORD_ENV}, else a prompt without echo.
Profiles are TOML tables named after the profile, with the flags' long names as keys, e.g.
  [work]
  server = "vpn.example.com"
  user = "CORP\\\\alice"
  password-file = "/root/.vpnpass"
  route = ["10.1.0.0/16"]
(default file: {DEFAULT_CONFIG}). Everything pysstp changes (TUN, routes, DNS) is put back when it exits.

With --daemon the command returns once connected (exit code 0) or failed, and the client stays in the
background; stop it with: pysstp disconnect [--ifname NAME | --pid-file FILE].
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
    """Check the settings, then stay connected until stopped."""
    settings = settings_from_args(args)
    setup_logging("debug" if settings.verbose else "info", settings.log_format)
    if not has_capability(CAP_NET_ADMIN):
        raise SystemSetupError(
            "pysstp connect needs root or CAP_NET_ADMIN (TUN device, address, routes); run it with sudo"
        )
    detach: Detacher | None = None
    if settings.daemon:
        # Fork before the event loop and any socket exist; the parent only waits for the outcome.
        forked = fork_daemon(settings.log_file)
        if isinstance(forked, int):
            return forked
        detach = forked
    with pid_file_held(settings.pid_file):
        freeze_start_up_objects()
        return asyncio.run(connect(settings, detach))


def show_live_line(settings: ClientSettings) -> bool:
    """The live line is for people: only on a terminal, never among JSON lines for machines, and not from
    a daemon (its stdout leaves the terminal once it detaches)."""
    return settings.log_format == "text" and not settings.daemon and sys.stdout.isatty()


async def connect(settings: ClientSettings, on_up: Callable[[], None] | None = None) -> int:
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
        await ClientApp(settings, tunnel, stop, up).run()
        return INTERRUPTED if signals[:1] == [signal.SIGINT] and not was_up else 0
    finally:
        if live is not None:
            await live.stop()
        tunnel.close()
        changes.undo()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
