"""sd_notify from a real `pysstp server` process (needs root): a Unix datagram socket stands in for
systemd, at a path and in the abstract namespace, and records READY, RELOADING, WATCHDOG and STOPPING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.loopback import make_certificate
from helpers.namespaces import Pair, netns_pair, wait_for_text
from helpers.server_process import add_user, start_server

__all__ = ["netns_pair"]

# systemd's end: one line per datagram, its fields joined by " | ". It runs in the server's namespace,
# because abstract Unix sockets belong to a network namespace (unix(7)).
_MANAGER = """\
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + sys.argv[1][1:] if sys.argv[1].startswith("@") else sys.argv[1])
print("bound", flush=True)
while True:
    print(s.recv(4096).decode().replace("\\n", " | "), flush=True)
"""


def datagrams(log: Path) -> list[str]:
    return log.read_text().splitlines()[1:]


def serve_notifying(
    pair: Pair, tmp: Path, monkeypatch: pytest.MonkeyPatch, address: str, *extra: str
) -> tuple[subprocess.Popen[str], Path, Path]:
    """A server with ``extra`` flags that notifies the stand-in for systemd at ``address``; its process,
    its log and the stand-in's."""
    manager_log = tmp / "manager.log"
    pair.server.start([sys.executable, "-c", _MANAGER, address], manager_log)
    wait_for_text(manager_log, "bound")
    cert, key, _ = make_certificate(tmp)
    add_user(tmp / "users.toml", "alice", "alicepw")
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    log = tmp / "server.log"
    server = start_server(
        pair.server, log,
        "--cert", str(cert), "--key", str(key), "--users", str(tmp / "users.toml"),
        "--listen", pair.server_ip, "--port", "8443", "--tun-name", "sstp-n0",
        "--control-socket", str(tmp / "ctl.sock"), *extra,
    )  # fmt: skip
    return server, log, manager_log


@pytest.mark.parametrize("form", ["path", "abstract"])
def test_ready_reloading_watchdog_and_stopping_reach_the_notify_socket(
    netns_pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    address = str(tmp_path / "notify") if form == "path" else f"@pysstp-notify-{os.getpid()}"
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # WATCHDOG=1 every 0.1 s
    server, log, manager_log = serve_notifying(netns_pair, tmp_path, monkeypatch, address)
    wait_for_text(manager_log, f"READY=1 | STATUS=listening on {netns_pair.server_ip}:8443")
    # Watchdog messages keep coming while the server runs: wait for a few more than one.
    wait_for_text(manager_log, "WATCHDOG=1\nWATCHDOG=1\nWATCHDOG=1\n")
    server.send_signal(signal.SIGHUP)
    wait_for_text(log, "reloaded users", process=server)
    wait_for_text(manager_log, "STATUS=reloading")
    server.send_signal(signal.SIGTERM)
    assert server.wait(30) == 0, log.read_text()
    received = [line for line in datagrams(manager_log) if line != "WATCHDOG=1"]
    assert received[0] == f"READY=1 | STATUS=listening on {netns_pair.server_ip}:8443"
    assert received[1].startswith("RELOADING=1 | MONOTONIC_USEC=")
    assert received[2] == received[0]
    assert received[3:] == ["STOPPING=1 | STATUS=shutting down"]


def test_a_drain_tells_systemd_it_is_stopping_and_for_how_long(
    netns_pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, log, manager_log = serve_notifying(
        netns_pair, tmp_path, monkeypatch, str(tmp_path / "notify"), "--drain-timeout", "60"
    )
    wait_for_text(manager_log, "READY=1")
    server.send_signal(signal.SIGUSR2)
    assert server.wait(30) == 0, log.read_text()  # no sessions: drained at once
    assert datagrams(manager_log)[1:] == [
        "STOPPING=1 | STATUS=draining: 0 session(s) left | EXTEND_TIMEOUT_USEC=63000000",
        "STOPPING=1 | STATUS=shutting down",
    ]
