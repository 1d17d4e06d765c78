"""``pysstp status``: sessions of a running server, and ``--kick`` to disconnect one."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from pysstp.errors import ConfigError

DEFAULT_SOCKET = Path("/run/pysstp/server.sock")

EPILOG = """\
examples:
  pysstp status                      list sessions: user, address, peer, uptime, bytes, packets
  pysstp status --json               the same as JSON, for scripts
  pysstp status --kick alice         disconnect every session of user alice (CALL_DISCONNECT)
  pysstp status --kick 10.77.0.5     disconnect the session that has this address
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pysstp status``."""
    parser = subparsers.add_parser(
        "status",
        help="show the sessions of a running server",
        description="Ask a running pysstp server (through its local control socket) about its sessions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--socket", type=Path, default=DEFAULT_SOCKET, help=f"control socket ({DEFAULT_SOCKET})"
    )
    parser.add_argument("--kick", metavar="USER|ADDRESS", help="disconnect the matching sessions")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Query the server and print the answer."""
    from pysstp.server.control import request

    message: dict[str, Any] = {"command": "kick", "target": args.kick} if args.kick else {"command": "status"}
    try:
        answer = asyncio.run(request(args.socket, message))
    except (FileNotFoundError, ConnectionRefusedError):
        raise ConfigError(
            f"no pysstp server is listening on {args.socket} (is it running? is --socket right?)"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"not allowed to open {args.socket}: run as root or as the socket's group"
        ) from None
    if not answer.get("ok"):
        raise ConfigError(f"server refused: {answer.get('error', 'no reason given')}")
    if args.kick:
        print(f"disconnected {answer['kicked']} session(s) matching {args.kick!r}")
        return 0 if answer["kicked"] else 1
    if args.json:
        print(json.dumps(answer["sessions"], indent=2))
    else:
        print(format_table(answer["sessions"]))
    return 0


def format_table(sessions: list[dict[str, Any]]) -> str:
    """Sessions as an aligned text table."""
    if not sessions:
        return "no sessions"
    header = ("USER", "ADDRESS", "PEER", "UPTIME", "IN", "OUT", "RATE IN", "RATE OUT", "DROPS", "AUTH", "TLS")
    rows = [
        (
            s["user"] or "-",
            s["address"] or "-",
            s["peer"],
            _duration(s["uptime"]),
            _bytes(s["bytes_in"]),
            _bytes(s["bytes_out"]),
            _rate(s.get("rate_in", 0)),
            _rate(s.get("rate_out", 0)),
            str(s["drops"]),
            s["auth"] or "-",
            s["tls"] or "-",
        )
        for s in sessions
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _rate(bits_per_second: float) -> str:
    for unit in ("bit/s", "kbit/s", "Mbit/s"):
        if bits_per_second < 1000:
            return f"{bits_per_second:.0f} {unit}" if unit == "bit/s" else f"{bits_per_second:.1f} {unit}"
        bits_per_second /= 1000
    return f"{bits_per_second:.2f} Gbit/s"


def _bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
