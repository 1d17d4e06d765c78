"""``pysstp drain``: a running server stops accepting calls and exits once its sessions have ended."""

from __future__ import annotations

import argparse

from pysstp.commands.status import add_control_socket_options, ask, control_socket

EPILOG = """\
The server closes its listening sockets (new connections are refused; a load balancer's health check on
the metrics address gets 503), lets the established calls go on, and exits with everything undone when
the last session has ended, or after limits.drain_timeout (--drain-timeout, default 300 s), disconnecting
the sessions left in order. SIGUSR2 to the server does the same. `pysstp status` shows "draining".
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pysstp drain``."""
    parser = subparsers.add_parser(
        "drain",
        help="make a running server accept no new calls and exit when its sessions have ended",
        description="Drain a running pysstp server through its local control socket.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_control_socket_options(parser, "--control-socket", "--socket", metavar="PATH")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Ask the server to drain and say how many sessions it waits for."""
    answer = ask(control_socket(args), {"command": "drain"})
    state = "draining" if answer["started"] else "already draining"
    print(f"{state}: {answer['sessions']} session(s) left; the server exits when they have ended")
    return 0
