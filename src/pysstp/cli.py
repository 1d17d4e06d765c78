"""The ``pysstp`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pysstp import __version__

EPILOG = """\
pysstp is an SSTP VPN (PPP over HTTPS) with PPP in user space; it needs only a TUN device.

The protocol core is in place; the `server` and `connect` commands come next.
See README.md for the status of each part.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser."""
    parser = argparse.ArgumentParser(
        prog="pysstp",
        description="SSTP VPN client and server with PPP in user space.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pysstp {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
