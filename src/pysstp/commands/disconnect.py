"""``pysstp disconnect``: stop a ``pysstp connect`` (usually a ``--daemon``) found by its PID file."""

from __future__ import annotations

import argparse
from pathlib import Path

from pysstp.client.daemon import STOP_WAIT, stop_client
from pysstp.client.settings import DEFAULT_IFNAME, default_pid_file


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pysstp disconnect``."""
    parser = subparsers.add_parser(
        "disconnect",
        help="stop a running pysstp connect (e.g. one started with --daemon)",
        description=(
            "Send SIGTERM to a running pysstp connect and wait until it has ended the call and put back "
            f"its TUN, routes and DNS (up to {STOP_WAIT:g} s)."
        ),
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--ifname",
        metavar="NAME",
        default=DEFAULT_IFNAME,
        help=f"the client using this TUN device (default: {DEFAULT_IFNAME}; PID file "
        f"{default_pid_file('NAME')})",
    )
    which.add_argument("--pid-file", type=Path, metavar="FILE", help="the PID file the client was given")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Stop the client; a missing or stale PID file is an error with a clear message."""
    pid_file = args.pid_file if args.pid_file is not None else default_pid_file(args.ifname)
    pid = stop_client(pid_file)
    print(f"disconnected (pysstp connect, PID {pid})")
    return 0
