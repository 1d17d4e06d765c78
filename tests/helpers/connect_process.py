"""``pysstp connect`` as its own process inside a test's network namespace, for the real-peer interop tiers.

The client runs as a user would run it (the console script of this venv), dials a server that listens on
127.0.0.1 in the same namespace and makes its TUN there. The namespace's owner stops it by PID
(:meth:`namespaces.Namespace.stop_all`), also when a test fails.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from helpers.namespaces import Namespace

PYSSTP = str(Path(sys.executable).with_name("pysstp"))
CONNECT_TIMEOUT = 60.0
"""Seconds for ``pysstp connect`` to report the tunnel up (2-8 s against the real peers)."""
EXIT_TIMEOUT = 10.0


def wait_until(predicate: Callable[[], bool], what: str, log: Path, timeout: float = 20.0) -> None:
    """Poll ``predicate`` for at most ``timeout`` seconds; on time-out, fail showing ``log``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; {log}:\n{log.read_text()}"
            )
        time.sleep(0.05)


def calls_up(log: Path) -> int:
    """How many calls ``pysstp connect`` has reported up so far in ``log``: its summary lines, whose
    message starts with "connected: " (that text alone is in each "disconnected: " line too)."""
    return log.read_text().count(": connected: ")


@dataclass(frozen=True)
class Dial:
    """Where and as whom a client dials: a server on 127.0.0.1 in ``namespace`` with its own certificate."""

    namespace: Namespace
    port: int
    user: str
    ca_file: Path
    server_name: str
    ifname: str


def start_connect(dial: Dial, password: str, log: Path, *extra: str) -> subprocess.Popen[str]:
    """Start ``pysstp connect`` with ``extra`` flags; it trusts the server's certificate, under its name.
    The password goes in a file next to ``log``."""
    password_file = log.with_suffix(".password")
    password_file.write_text(f"{password}\n")
    return dial.namespace.start(
        [
            PYSSTP, "connect", f"127.0.0.1:{dial.port}", "--user", dial.user,
            "--password-file", str(password_file), "--ca-file", str(dial.ca_file),
            "--sni", dial.server_name, "--ifname", dial.ifname, *extra,
        ],
        log,
    )  # fmt: skip


@dataclass
class ConnectProcess:
    """One running ``pysstp connect``, with its log (stdout and stderr)."""

    process: subprocess.Popen[str]
    log: Path

    def text(self) -> str:
        """The client's log so far (stdout and stderr)."""
        return self.log.read_text()

    def wait_connected(self) -> str:
        """Wait for the summary line; return the client's log."""
        wait_until(
            lambda: "connected: " in self.text() or self.process.poll() is not None,
            "the tunnel to come up",
            self.log,
            CONNECT_TIMEOUT,
        )
        assert self.process.poll() is None, f"pysstp connect exited:\n{self.text()}"
        return self.text()

    def wait_exit(self) -> int:
        """Wait (bounded) for the client to exit; returns its exit code."""
        try:
            return self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"pysstp connect did not exit within {EXIT_TIMEOUT:g} s:\n{self.text()}"
            ) from None

    def stop(self) -> int:
        """SIGTERM, as a service manager would stop it; returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait_exit()


def tun_addresses(namespace: Namespace, ifname: str) -> list[dict[str, object]]:
    """The IPv4 addresses on the client's TUN ([] when it does not exist)."""
    result = namespace.run("ip", "-j", "-4", "addr", "show", "dev", ifname, check=False)
    if result.returncode != 0:
        return []
    (link,) = json.loads(result.stdout)
    return list(link["addr_info"])


def assert_tun_removed(namespace: Namespace, ifname: str) -> None:
    """The client removed its TUN device on the way out."""
    links = json.loads(namespace.run("ip", "-j", "link").stdout)
    assert ifname not in [link["ifname"] for link in links], "the TUN device was left behind"
