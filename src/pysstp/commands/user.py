"""``pysstp user``: manage the user database (:mod:`pysstp.aaa.userdb`) that ``pysstp server`` reads.

A running server picks every change up by itself; nothing here needs a restart or a signal.
"""

from __future__ import annotations

import argparse
import os
from ipaddress import IPv4Address
from pathlib import Path

from pysstp.aaa.userdb import UserDatabase
from pysstp.client.live import si
from pysstp.errors import ConfigError
from pysstp.prompt import PASSWORD_ENV, ask_secret, read_password_file
from pysstp.server.config import ServerSettings, settings_from_file
from pysstp.server.pool import AddressPool
from pysstp.server.ratelimit import parse_bit_rate

DEFAULT_USERS = Path("/etc/pysstp/users.toml")
USERS_ENV = "PYSSTP_USERS"
"""Environment variable naming the database when ``--users`` is not given."""

EXAMPLES = f"""\
examples:
  pysstp user add alice                              # asks for the password twice
  pysstp user add branch1 --address 10.77.0.50 --route 192.168.50.0/24 --config /etc/pysstp/server.toml
  pysstp user add bob --password-file /root/bob.pw   # first line of the file is the password
  pysstp user add dave --push-route 10.99.0.0/16 --domain corp.example   # split tunnel for dave
  pysstp user set bob --rate-in 2M --rate-out 10M    # bit/s bob may send and receive; 0 = unlimited
  echo 'S3cret!' | pysstp user add carol --password-file -
  PYSSTP_PASSWORD='S3cret!' pysstp user passwd carol
  pysstp user disable bob
  pysstp user list --users ./users.toml
  pysstp user del bob

The database (default {DEFAULT_USERS}, or ${USERS_ENV}, or the users file of --config) keeps only NT
hashes, never a password. A running server picks every change up without a restart. A fixed --address
must lie in the server's pool and not be its own address: with --config it is checked here, and the
server logs a user whose address it cannot route (that user gets no session).
"""

SERVERS = "the server's"
"""What ``pysstp user set`` says of a pushed setting the user has none of its own of."""

PASSWORD_SOURCES = f"""\
The password is the first line of --password-file (- for stdin), else ${PASSWORD_ENV}, else it is asked
twice on the terminal without echo.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pysstp user`` and its actions."""
    parser = subparsers.add_parser(
        "user",
        help="manage the user database (NT hashes only)",
        description="Add, remove, list, enable and disable the users who may connect to pysstp server.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # --users goes on every action, so it may follow the action as in `pysstp user add alice --users F`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--users",
        metavar="PATH",
        type=Path,
        help=f"user database (default: ${USERS_ENV}, else the server's from --config, else {DEFAULT_USERS})",
    )
    common.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="the server's server.toml: its users file, and its pool to check --address against",
    )
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument(
        "--password-file", metavar="FILE", help="read the password from the first line of FILE (- for stdin)"
    )
    rates = argparse.ArgumentParser(add_help=False)
    rates.add_argument(
        "--rate-in",
        metavar="BITS",
        help="bit/s this user's sessions may send, client to server (e.g. 2M, 512k), 0 = unlimited "
        "(default: the server's limits.rate_in)",
    )
    rates.add_argument(
        "--rate-out",
        metavar="BITS",
        help="bit/s this user's sessions may receive, server to client, 0 = unlimited "
        "(default: the server's limits.rate_out)",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="action", required=True)

    def action(
        name: str, summary: str, parents: list[argparse.ArgumentParser], details: str = ""
    ) -> argparse.ArgumentParser:
        sub = actions.add_parser(
            name,
            parents=parents,
            help=summary,
            description=f"{summary}\n{details}",
            epilog=EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name != "list":
            sub.add_argument("name", metavar="NAME", help="user name as typed on the client (e.g. alice)")
        return sub

    push = argparse.ArgumentParser(add_help=False)
    push.add_argument(
        "--push-route",
        metavar="CIDR",
        action="append",
        help="a network this client routes into the tunnel (repeatable; split tunnel); replaces the "
        "server's push.routes for this user ('' for none of its own)",
    )
    push.add_argument(
        "--domain", metavar="DOMAIN", help="DNS suffix for this client instead of push.domain ('' for none)"
    )
    add = action("add", "Add a user.", [common, password, rates, push], PASSWORD_SOURCES)
    add.add_argument("--address", metavar="A", help="fixed IPv4 tunnel address for this user")
    add.add_argument(
        "--route",
        metavar="CIDR",
        action="append",
        default=[],
        help="a network behind this client, routed to it while connected (repeatable; site-to-site)",
    )
    add.add_argument("--max-sessions", metavar="N", type=int, help="sessions this user may hold at once")
    add.add_argument("--disabled", action="store_true", help="add the user disabled")
    add.set_defaults(func=run_add)
    action("del", "Remove a user.", [common]).set_defaults(func=run_del)
    action("list", "List users (never their hashes).", [common]).set_defaults(func=run_list)
    action("passwd", "Change a user's password.", [common, password], PASSWORD_SOURCES).set_defaults(
        func=run_passwd
    )
    summary = "Change a user's rate limits, pushed routes or domain."
    action("set", summary, [common, rates, push]).set_defaults(func=run_set)
    action("enable", "Let a disabled user connect again.", [common]).set_defaults(func=run_enable)
    action("disable", "Refuse a user without removing them.", [common]).set_defaults(func=run_disable)


def run_add(args: argparse.Namespace) -> int:
    """``pysstp user add``."""
    db = open_database(args, create=True)
    db.require_absent(args.name)  # before asking for a password that would be thrown away
    if args.address is not None and args.config is not None:
        check_address(args.address, settings_from_file(args.config))
    db.add(
        args.name,
        read_password(args.password_file),
        address=args.address,
        routes=args.route,
        push_routes=[route for route in args.push_route or () if route],
        domain=args.domain or "",
        enabled=not args.disabled,
        max_sessions=args.max_sessions,
        rate_in=rate_flag(args.rate_in, "--rate-in"),
        rate_out=rate_flag(args.rate_out, "--rate-out"),
    )
    state = "disabled " if args.disabled else ""
    print(f"added {state}user '{args.name}' to {db.path}")
    return 0


def run_del(args: argparse.Namespace) -> int:
    """``pysstp user del``."""
    db = open_database(args)
    db.remove(args.name)
    print(f"removed user '{args.name}' from {db.path}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """``pysstp user list``: one row per user, in file order."""
    rows = [("NAME", "ENABLED", "ADDRESS", "ROUTES", "MAX SESSIONS", "RATE IN", "RATE OUT")]
    for entry in open_database(args).entries():
        rows.append(
            (
                entry.name,
                "yes" if entry.enabled else "no",
                str(entry.address or "-"),
                ",".join(map(str, entry.routes)) or "-",
                str(entry.max_sessions or "-"),
                "-" if entry.rate_in is None else rate_text(entry.rate_in),
                "-" if entry.rate_out is None else rate_text(entry.rate_out),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def run_set(args: argparse.Namespace) -> int:
    """``pysstp user set``: the rate limits, pushed routes and domain given; the others stay as they are."""
    rate_in, rate_out = rate_flag(args.rate_in, "--rate-in"), rate_flag(args.rate_out, "--rate-out")
    pushed = args.push_route is not None or args.domain is not None
    if rate_in is None and rate_out is None and not pushed:
        raise ConfigError(
            "nothing to set: give --rate-in and/or --rate-out (bit/s, e.g. 10M; 0 = unlimited), "
            "--push-route or --domain"
        )
    db = open_database(args)
    if rate_in is not None or rate_out is not None:
        db.set_rates(args.name, rate_in=rate_in, rate_out=rate_out)
    if pushed:
        db.set_push(args.name, push_routes=args.push_route, domain=args.domain)
    entry = db.require(args.name)
    said = f"rate in {rate_text(entry.rate_in)}, rate out {rate_text(entry.rate_out)}"
    if pushed:
        routes = ", ".join(map(str, entry.push_routes)) or SERVERS
        said += f", pushed routes {routes}, domain {entry.domain or SERVERS}"
    print(f"user '{args.name}' in {db.path}: {said}")
    return 0


def rate_flag(text: str | None, flag: str) -> int | None:
    """Bit/s from ``--rate-in``/``--rate-out``, or ``None`` when the flag is not given."""
    if text is None:
        return None
    try:
        return parse_bit_rate(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def rate_text(bits: int | None) -> str:
    """A user's rate limit as ``pysstp user`` shows it."""
    if bits is None:
        return "the server's"
    return "unlimited" if bits == 0 else si(bits, "bit/s")


def run_passwd(args: argparse.Namespace) -> int:
    """``pysstp user passwd``."""
    db = open_database(args)
    db.require(args.name)
    db.set_password(args.name, read_password(args.password_file))
    print(f"changed the password of user '{args.name}' in {db.path}")
    return 0


def run_enable(args: argparse.Namespace) -> int:
    """``pysstp user enable``."""
    return set_enabled(args, True)


def run_disable(args: argparse.Namespace) -> int:
    """``pysstp user disable``."""
    return set_enabled(args, False)


def set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    """Enable or disable ``args.name`` and say so."""
    db = open_database(args)
    db.set_enabled(args.name, enabled)
    print(f"{'enabled' if enabled else 'disabled'} user '{args.name}' in {db.path}")
    return 0


def open_database(args: argparse.Namespace, *, create: bool = False) -> UserDatabase:
    """The database named by ``--users``, else ``$PYSSTP_USERS``, else ``users`` in ``--config``, else the
    default path."""
    path = args.users or os.environ.get(USERS_ENV)
    if not path and args.config is not None:
        path = settings_from_file(args.config).users
    return UserDatabase(path or DEFAULT_USERS, create=create)


def check_address(text: str, settings: ServerSettings) -> None:
    """:class:`ConfigError` if the server of ``settings`` could not give ``text`` to a client."""
    try:
        address = IPv4Address(text)
    except ValueError:
        return  # the database says what is wrong with it, as for any other value
    problem = AddressPool(settings.pool.network, settings.pool.server_address).fixed_refusal(address)
    if problem is not None:
        raise ConfigError(f"--address: {problem}; the server could not route it to this user")


def read_password(password_file: str | None) -> str:
    """The new password from the first source that is given (see :data:`PASSWORD_SOURCES`)."""
    if password_file is not None:
        return read_password_file(password_file)
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env
    instead = f"--password-file FILE (- for stdin) or ${PASSWORD_ENV}; nothing was changed"
    first = ask_secret("New password: ", "password", instead)
    if ask_secret("Same password again: ", "password", instead) != first:
        raise ConfigError("the two passwords differ; nothing was changed")
    return first
