"""``pysstp server`` as its own process inside a network namespace, and the user database it reads, for
the namespace tests and the benchmarks (which start it the same way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.connect_process import PYSSTP
from helpers.namespaces import Namespace, run, wait_for_text

LISTEN_TIMEOUT = 60.0
"""Seconds for the server to report that it listens."""
TUNNEL_CLIENT = str(Path(__file__).with_name("tunnel_client.py"))
"""The minimal tunnel client the namespace tests call the server with (its usage is in its docstring)."""


def add_user(users: Path, name: str, password: str) -> Path:
    """Add ``name`` to the user database ``users`` with ``pysstp user add``; the password goes in the file
    ``NAME.pw`` next to ``users``, which is returned (a client may read it too)."""
    secret = users.with_name(f"{name}.pw")
    secret.write_text(password + "\n")
    run(PYSSTP, "user", "add", name, "--users", str(users), "--password-file", str(secret))
    return secret


def start_server(
    ns: Namespace, log: Path, *args: str, timeout: float = LISTEN_TIMEOUT
) -> subprocess.Popen[str]:
    """Start ``pysstp server`` with ``args`` in ``ns``, its output in ``log``, and wait until it listens
    (failing at once, with the log, if it exits first).

    Its state file goes next to ``log`` unless ``args`` say where: a server the test kills leaves it
    behind, and in the host's /run/pysstp it would outlive the namespace it describes."""
    if "--state-dir" not in args:
        args = (*args, "--state-dir", str(log.with_name(f"{log.stem}.state")))
    process = ns.start([PYSSTP, "server", *args], log)
    wait_for_text(log, "listening on", timeout, process)
    return process


def start_tunnel_client(
    ns: Namespace, log: Path, server_ip: str, port: str, cafile: Path, user: str, password: str, *args: str
) -> subprocess.Popen[str]:
    """Start :data:`TUNNEL_CLIENT` in ``ns`` against the server at ``server_ip`` and ``port`` (its
    certificate in ``cafile``), its output in ``log``; ``args`` are the rest of its usage, AUTH and IFNAME
    first."""
    return ns.start([sys.executable, TUNNEL_CLIENT, server_ip, port, str(cafile), user, password, *args], log)
