"""A whole session of the real ``pysstp connect`` against the real ``pysstp server`` in namespaces (needs
root): connect, ping, a checked TCP transfer, disconnect; in the foreground and as a daemon stopped by
``pysstp disconnect``. Nothing may be left behind in the client namespace either way.
"""

from __future__ import annotations

import os
import signal

from pysstp.client.daemon import running_pid
from pysstp.client.settings import default_pid_file
from test_client_netns import (
    PORT,
    PYSSTP,
    SERVER_TUNNEL_IP,
    Setup,
    ping,
    setup,
    wait_until,
)

from helpers.namespaces import checked_transfer, netns_pair, network_state

__all__ = ["netns_pair", "setup"]

TRANSFER_SIZE = 4_000_000
DAEMON_TUN = f"sstpd{os.getpid() % 100000}"
"""The daemon's TUN, named after this test process: its default PID file (/run/pysstp/connect-NAME.pid) is
the host's, shared with every test run beside this one."""


def test_connect_ping_transfer_disconnect(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    process, log = setup.start_client("--ca-file", str(setup.cert), "--default-route", "--dns")
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    ping(client, SERVER_TUNNEL_IP)
    checked_transfer(client, setup.pair.server, SERVER_TUNNEL_IP, setup.tmp / "sink.log", TRANSFER_SIZE)
    setup.stop(process, signal.SIGTERM, log)
    assert network_state(client) == before


def daemon_args(setup: Setup, *extra: str) -> list[str]:
    return [
        PYSSTP, "connect", f"{setup.pair.server_ip}:{PORT}", "--user", "alice",
        "--password-file", str(setup.tmp / "alice.pw"), "--ca-file", str(setup.cert), "--sni", "sstp.test",
        "--ifname", DAEMON_TUN, "--daemon", *extra,
    ]  # fmt: skip


def test_daemon_then_disconnect_by_ifname(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    pid_file = default_pid_file(DAEMON_TUN)
    log_file = setup.tmp / "daemon.log"
    # The command returns only once the call is up, with the summary line on its own output.
    started = client.run(*daemon_args(setup, "--default-route", "--dns", "-v", "--log-file", str(log_file)))
    assert started.returncode == 0, started.stdout + started.stderr
    assert "connected: 10.77.0." in started.stderr
    pid = int(pid_file.read_text())
    try:
        ping(client, SERVER_TUNNEL_IP)
        stopped = client.run(PYSSTP, "disconnect", "--ifname", DAEMON_TUN)
        assert f"PID {pid}" in stopped.stdout
    finally:
        if (stray := running_pid(pid_file)) is not None:  # only if disconnect failed
            os.kill(stray, signal.SIGKILL)
    assert not pid_file.exists()
    assert network_state(client) == before
    # What the daemon logged after detaching (-v: the end of the call) went to --log-file.
    assert "phase terminate" in log_file.read_text()
    # None runs any more: a clear message, exit code 1.
    again = client.run(PYSSTP, "disconnect", "--ifname", DAEMON_TUN, check=False)
    assert again.returncode == 1 and "no pysstp connect is running" in again.stderr


def test_daemon_that_cannot_connect_fails_in_the_foreground(setup: Setup) -> None:
    pid_file = setup.tmp / "connect.pid"
    failed = setup.pair.client.run(
        *daemon_args(setup, "--pid-file", str(pid_file), "--pin-sha256", "00" * 32), check=False
    )
    assert failed.returncode == 1
    assert "pysstp: TLS: the certificate of" in failed.stderr
    assert not pid_file.exists()
