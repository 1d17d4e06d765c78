"""The server's state file (a :class:`~pysstp.net.changes.ChangeJournal` under ``state_dir``) and
``pysstp server --cleanup``, which undoes what a killed server recorded there."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import struct
from pathlib import Path

from pysstp.errors import SystemSetupError
from pysstp.net.changes import ChangeJournal
from pysstp.net.ifname import check_ifname
from pysstp.server.config import ServerSettings, load

SO_NETNS_COOKIE = 71
"""asm-generic/socket.h: the socket option that reads the cookie of the socket's network namespace."""


def state_file(state_dir: Path, tun_name: str) -> Path:
    """The state file of the server on ``tun_name``: ``<state_dir>/<tun_name>.json``. Sysctls, nftables
    tables and interface names belong to a network namespace, so a server in another namespace than
    PID 1's (``ip netns exec``) writes ``<tun_name>@<namespace id>.json`` instead."""
    try:
        host = os.stat("/proc/1/ns/net").st_ino
    except OSError:  # not ours to read without root; the name stays the same from start to start
        host = None
    if os.stat("/proc/self/ns/net").st_ino == host:
        return state_dir / f"{tun_name}.json"
    return state_dir / f"{tun_name}@{namespace_id()}.json"


def namespace_id() -> int:
    """This network namespace's cookie, which the kernel never gives another namespace while the system
    runs (Linux 5.14 and later); else its inode number, which a namespace made after this one is gone may
    get again (a state file left behind in the old one would then be undone in the new one)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            cookie: int = struct.unpack("Q", probe.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]
        except OSError:
            return os.stat("/proc/self/ns/net").st_ino
    return cookie


def cleanup(args: argparse.Namespace) -> int:
    """``--cleanup``: undo what a killed server on this TUN recorded in its state file."""
    # Only the TUN name and the state directory matter here, so a configuration that would not start
    # (say, its certificate is gone) can still be cleaned up after.
    values = load(args.config) if args.config is not None else {}
    defaults = ServerSettings()
    tun_name: str = args.tun_name or values.get("tun_name", defaults.tun_name)
    check_ifname(tun_name, template=True)
    state_dir = Path(args.state_dir) if args.state_dir else values.get("state_dir", defaults.state_dir)
    path = state_file(state_dir, tun_name)
    if not path.exists():
        print(f"nothing to clean up: no state file {path}")
        return 0
    # The supervisor of ``workers = N`` imports this module.
    from pysstp.server.supervisor import undo_left_behind

    journal = ChangeJournal.open(path)
    try:
        # With workers, theirs too (a single server has none).
        undone = undo_left_behind(
            dataclasses.replace(defaults, tun_name=tun_name, state_dir=state_dir), journal
        )
    finally:
        left = journal.read()
        journal.close(remove=not left)
    if left:
        raise SystemSetupError(f"could not undo everything; what is left is in {path}")
    print(f"undone: {', '.join(undone)}" if undone else f"nothing to clean up in {path}")
    return 0
