"""``pysstp status``: sessions of a running server, and ``--kick`` to disconnect one."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysstp.errors import ConfigError
from pysstp.server.config import ServerSettings, settings_from_file

DEFAULT_SOCKET = ServerSettings().control_socket

EPILOG = """\
examples:
  pysstp status                      list sessions: user, address, peer, uptime, bytes, rates, drops
                                     (first a line with each RADIUS server's state, when there are some)
                                     (and Acct-Session-Id on a wide terminal), then Dynamic Authorization
  pysstp status --json               the whole answer as JSON, for scripts: every field of every
                                     session ("sessions"), the server's counters ("server": connects,
                                     failures by reason, bytes, packets, drops by cause, RSS, CPU),
                                     "draining", RADIUS servers and Dynamic Authorization
  pysstp status --json | jq -r '.sessions[] | [.user, .address] | @tsv'
  pysstp status --config /etc/pysstp/server.toml    the server whose control_socket that file sets
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
    add_control_socket_options(parser, "--socket")
    parser.add_argument("--kick", metavar="USER|ADDRESS", help="disconnect the matching sessions")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the server's whole answer as JSON instead of a table: the sessions, the counters "
        '("server"), draining, the backend, RADIUS and DAE state',
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Query the server and print the answer."""
    message: dict[str, Any] = {"command": "kick", "target": args.kick} if args.kick else {"command": "status"}
    answer = ask(control_socket(args), message)
    if args.kick:
        print(f"disconnected {answer['kicked']} session(s) matching {args.kick!r}")
        return 0 if answer["kicked"] else 1
    if args.json:
        print(json.dumps({k: v for k, v in answer.items() if k != "ok"}, indent=2))
    else:
        if answer.get("draining"):
            print("draining: accepting no new calls; the server exits when these sessions have ended")
        if answer.get("radius"):
            print(format_radius(answer["radius"]))
        elif answer.get("backend"):
            print(f"logins decided by: {answer['backend']}")
        print(format_table(answer["sessions"]))
        dae = answer.get("dae")
        if isinstance(dae, dict):
            print(dae_line(dae))
    return 0


def ask(path: Path, message: dict[str, Any]) -> dict[str, Any]:
    """A running server's answer to ``message`` on its control socket at ``path``; every way that can
    fail (no server, no permission, a refusal) is one :class:`ConfigError` line saying what to do."""
    from pysstp.server.control import REQUEST_TIMEOUT, STATUS_TIMEOUT, request

    # A status of many sessions takes seconds to build and read; other commands answer at once.
    timeout = STATUS_TIMEOUT if message.get("command") == "status" else REQUEST_TIMEOUT
    try:
        answer = asyncio.run(request(path, message, timeout))
    except (FileNotFoundError, ConnectionRefusedError):
        raise ConfigError(
            f"no pysstp server is listening on {path} (is it running? is --socket or --config right?)"
        ) from None
    except PermissionError:
        raise ConfigError(f"not allowed to open {path}: run as root or as the socket's group") from None
    except TimeoutError:
        raise ConfigError(f"the server at {path} did not answer in time") from None
    except OSError as exc:
        raise ConfigError(f"cannot use {path} as the control socket: {exc.strerror or exc}") from None
    except ValueError:  # not JSON: whatever listens there is not a pysstp server
        raise ConfigError(f"{path} did not answer as a pysstp server does") from None
    if not isinstance(answer, dict):
        raise ConfigError(f"{path} did not answer as a pysstp server does")
    if not answer.get("ok"):
        raise ConfigError(f"server refused: {answer.get('error', 'no reason given')}")
    return answer


def dae_line(state: dict[str, Any]) -> str:
    """The Dynamic Authorization listener in one line (``pysstp.aaa.dae.DaeServer.state``)."""
    where = f"listening on {state['listening']}" if state.get("listening") else "not listening"
    return (
        f"dynamic authorization: {where} for {state['clients']} client(s); {state['acks']} ACK, "
        f"{state['naks']} NAK, {state['duplicates']} repeated, {state['dropped']} dropped"
    )


def format_radius(servers: list[dict[str, Any]]) -> str:
    """One line: each RADIUS server in priority order, up or dead (and for how long it is tried last)."""
    states = [
        f"{s['server']} up"
        if s["alive"]
        else f"{s['server']} dead (tried last for {s['dead_for']:.0f} s more)"
        for s in servers
    ]
    return "RADIUS: " + ", ".join(states)


Cell = Callable[[dict[str, Any]], str]

COLUMNS: dict[str, Cell] = {
    "USER": lambda s: s["user"] or "-",
    "ADDRESS": lambda s: s["address"] or "-",
    "PEER": lambda s: s["peer"],
    "UPTIME": lambda s: _duration(s["uptime"]),
    "IN": lambda s: _bytes(s["bytes_in"]),
    "OUT": lambda s: _bytes(s["bytes_out"]),
    "RATE IN": lambda s: _rate(s.get("rate_in", 0)),
    "RATE OUT": lambda s: _rate(s.get("rate_out", 0)),
    "DROPS": lambda s: str(s["drops"]),
    "AUTH": lambda s: s["auth"] or "-",
    "TLS": lambda s: s["tls"] or "-",
    "SESSION ID": lambda s: s.get("session_id") or "-",
}
"""The table's columns, left to right; ``--json`` has every field and more (packets, hash, routes...)."""

WORKER_COLUMN: tuple[str, Cell] = ("WORKER", lambda s: str(s["worker"]))
"""With several workers each session's worker (its index, as in the log's ``pysstp.server[1]``), after
ADDRESS."""

NARROWER: tuple[tuple[tuple[str, ...], Cell | None], ...] = (
    (("SESSION ID",), None),  # Acct-Session-Id: for matching RADIUS accounting and Disconnect-Requests
    (("TLS",), lambda s: (s["tls"] or "-").split()[0]),  # the version without the cipher
    (("TLS",), None),
    (("AUTH",), None),
    (("DROPS",), None),
    (("WORKER",), None),
    (("RATE IN", "RATE OUT"), None),
    (("IN", "OUT"), None),
    (("UPTIME",), None),
    (("PEER",), None),
)
"""How the table gets narrower until it fits the terminal, least needed first: a column shortened, or
columns left out (``None``). USER and ADDRESS always stay."""


def add_control_socket_options(parser: argparse.ArgumentParser, *flags: str, **socket: Any) -> None:
    """The socket option under ``flags`` (``socket``: more of its add_argument settings) and --config:
    what :func:`control_socket` finds the server's control socket by."""
    parser.add_argument(
        *flags,
        dest="socket",
        type=Path,
        help=f"control socket (default: control_socket in --config, else {DEFAULT_SOCKET})",
        **socket,
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the server's server.toml, to find its control socket"
    )


def control_socket(args: argparse.Namespace) -> Path:
    """``--socket``, else ``control_socket`` in ``--config`` (as the server reads it), else the default."""
    if args.socket is not None:
        return Path(args.socket)
    if args.config is not None:
        return settings_from_file(args.config).control_socket
    return DEFAULT_SOCKET


def format_table(sessions: list[dict[str, Any]], width: int | None = None) -> str:
    """Sessions as an aligned text table no wider than ``width`` (default: the terminal's), if it can be."""
    if not sessions:
        return "no sessions"
    if width is None:
        width = shutil.get_terminal_size().columns
    columns = dict(COLUMNS)
    if any("worker" in s for s in sessions):  # the supervisor of several workers names each one's
        cells = list(COLUMNS.items())
        at = list(COLUMNS).index("ADDRESS") + 1
        columns = dict([*cells[:at], WORKER_COLUMN, *cells[at:]])
    steps = iter(NARROWER)
    while True:
        text = _render(sessions, columns)
        step = next(steps, None)
        if step is None or max(map(len, text.splitlines())) <= width:
            return text
        names, cell = step
        for name in names:
            if cell is None:
                columns.pop(name, None)  # WORKER is there with several workers only
            else:
                columns[name] = cell


def _render(sessions: list[dict[str, Any]], columns: dict[str, Cell]) -> str:
    header = tuple(columns)
    rows = [tuple(cell(s) for cell in columns.values()) for s in sessions]
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
