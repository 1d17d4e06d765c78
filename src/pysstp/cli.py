"""The ``pysstp`` command line: one module per subcommand under :mod:`pysstp.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pysstp import __version__
from pysstp.errors import PysstpError

SUBCOMMANDS = ("connect", "disconnect", "server", "status", "drain", "user", "pki")
"""Each names a module ``pysstp.commands.<name>`` with ``add_parser(subparsers)``; the parser it adds
sets ``func(args) -> int``."""

EPILOG = """\
examples:
  pysstp server --config /etc/pysstp/server.toml
  pysstp user add alice --users /etc/pysstp/users.toml
  pysstp <command> --help

pysstp is an SSTP VPN (PPP over HTTPS) with PPP in user space; it needs only a TUN device.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="pysstp",
        description="SSTP VPN client and server with PPP in user space.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pysstp {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"pysstp.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code.

    A :class:`PysstpError` is a user-facing failure: one line on stderr, exit code 1, no traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        result: int = func(args)
    except PysstpError as exc:
        print(f"pysstp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result
