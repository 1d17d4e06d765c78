"""``pysstp nm``: pysstp as a NetworkManager VPN plugin (docs/networkmanager.md)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from pathlib import Path

from pysstp.errors import ConfigError, SystemSetupError
from pysstp.prompt import read_password_file
from pysstp.settings import read_toml

EPILOG = """\
examples:
  sudo pysstp nm install                               # NetworkManager now knows vpn-type pysstp
  sudo nmcli connection add type vpn vpn-type pysstp con-name work \\
       vpn.data 'gateway=vpn.example.com, user=alice, password-flags=2'
  nmcli --ask connection up work
  sudo pysstp nm import /etc/pysstp/client.toml work     # a pysstp connect profile as a connection
  pysstp nm export work                                # and back, as a profile (no password)
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pysstp nm``."""
    parser = subparsers.add_parser(
        "nm",
        help="pysstp as a NetworkManager VPN plugin: install it, import and export connections",
        description="Make NetworkManager dial SSTP with pysstp (nmcli, GNOME, KDE).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    from pysstp.nm.plugin import NAME_DIR, POLICY_DIR

    install = commands.add_parser("install", help="write the plugin's .name file and D-Bus policy")
    uninstall = commands.add_parser("uninstall", help="remove what install wrote")
    for sub in (install, uninstall):
        sub.add_argument("--name-dir", type=Path, default=NAME_DIR, help=f"default: {NAME_DIR}")
        sub.add_argument("--policy-dir", type=Path, default=POLICY_DIR, help=f"default: {POLICY_DIR}")
        sub.add_argument("--no-policy", action="store_true", help="leave the D-Bus policy alone")
    install.add_argument("--program", type=Path, help="the service program (default: the installed one)")
    install.set_defaults(func=run_install)
    uninstall.set_defaults(func=run_uninstall)
    service = commands.add_parser("service", help="the VPN service itself (NetworkManager starts it)")
    service.set_defaults(func=run_service)
    imp = commands.add_parser("import", help="add a pysstp connect profile as a NetworkManager connection")
    imp.add_argument("file", type=Path, metavar="PROFILE.toml")
    imp.add_argument("profile", nargs="?", help="the profile's name (default: the file's only one)")
    imp.add_argument("--name", help="the connection's name (default: the profile's)")
    imp.set_defaults(func=run_import)
    exp = commands.add_parser("export", help="print a pysstp connection as a pysstp connect profile")
    exp.add_argument("name", help="the connection's name (nmcli connection show)")
    exp.set_defaults(func=run_export)


def need_dbus() -> None:
    """The commands that talk D-Bus need the ``nm`` extra; say how to get it instead of a traceback."""
    if importlib.util.find_spec("dbus_fast") is None:
        raise SystemSetupError("pysstp nm needs the D-Bus library dbus-fast: pip install 'pysstp[nm]'")


def run_install(args: argparse.Namespace) -> int:
    """Write the files; say where."""
    from pysstp.nm.plugin import install, service_program

    program = args.program or service_program()
    for file in install(args.name_dir, None if args.no_policy else args.policy_dir, program):
        print(f"wrote {file}")
    return 0


def run_uninstall(args: argparse.Namespace) -> int:
    """Remove the files; say which."""
    from pysstp.nm.plugin import uninstall

    for file in uninstall(args.name_dir, None if args.no_policy else args.policy_dir):
        print(f"removed {file}")
    return 0


def run_service(args: argparse.Namespace) -> int:
    """Run the service (as ``pysstp-nm-service`` does)."""
    need_dbus()
    from pysstp.nm.service import main

    return main()


def run_import(args: argparse.Namespace) -> int:
    """Read the profile, add the connection, print the notes."""
    need_dbus()
    from pysstp.nm.connection import add_connection
    from pysstp.nm.vpn_setting import client_settings, from_profile

    document = read_toml(args.file)
    names = [key for key, value in document.items() if isinstance(value, dict)]
    profile = args.profile or (names[0] if len(names) == 1 else None)
    if profile is None:
        raise ConfigError(f"{args.file}: name the profile to import: one of {', '.join(names)}")
    table = document.get(profile)
    if not isinstance(table, dict):
        raise ConfigError(f"{args.file}: no profile [{profile}]")
    password = None
    if isinstance(table.get("password-file"), str) and table["password-file"] != "-":
        password = read_password_file(str(args.file.parent / table["password-file"]))
    name = args.name or profile
    try:
        setting, notes = from_profile(table, password, args.file.resolve().parent)
        # The checks Connect would make, now rather than at the first connect.
        client_settings(setting.data, setting.secrets, name)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"{args.file} [{profile}]: {exc}") from None
    asyncio.run(add_connection(name, setting))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"added NetworkManager connection {name!r}; start it with: nmcli connection up {name}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Print the connection as a TOML profile."""
    need_dbus()
    from pysstp.nm.connection import read_connection
    from pysstp.nm.vpn_setting import to_profile

    table = to_profile(asyncio.run(read_connection(args.name)))
    print(f"[{args.name}]")
    for key, value in table.items():
        print(f"{key} = {_toml(value)}")
    return 0


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(entry) for entry in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
