"""`pysstp server` with two real FreeRADIUS 3.2 instances, and real `pysstp connect` clients: failover to
the second when the first stops, a clear refusal and one log line when both are down while existing
sessions go on, accounting queued through the outage (and spooled across a restart) until a server is
back, and a slow server that holds only the login waiting on it (docs/radius.md, "Servers and failover",
"Accounting")."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.connect_process import PYSSTP, ConnectProcess, wait_until
from helpers.freeradius import SECRET, FreeRadius, RadiusHost, RadiusUser, detail_records, radius_host_behind
from helpers.loopback import make_certificate
from helpers.namespaces import Pair, netns_pair
from helpers.server_process import start_server

__all__ = ["netns_pair"]

PORT = "8443"
SERVER_TUN = "sstp-f0"
SERVER_TUNNEL_IP = "10.78.0.1"
FIRST_PORT = 1812
SECOND_PORT = 1822
PROXY_PORT = 1832
USERS = (
    RadiusUser("alice", "alice-password"),
    RadiusUser("bob", "bob-password"),
    RadiusUser("carol", "carol-password"),
    RadiusUser("slow", "slow-password"),
)
WAIT = 60.0
"""Generous: a request to a stopped server takes its timeout x tries before the next one is asked."""


@dataclass
class Setup:
    pair: Pair
    radius: RadiusHost
    first: FreeRadius
    second: FreeRadius
    tmp: Path
    cert: Path
    key: Path
    server: subprocess.Popen[str] | None = None

    @property
    def spool(self) -> Path:
        return self.tmp / "accounting.spool"

    def start_server(self, *servers: str, timeout: str = "1", name: str = "server") -> Path:
        """``pysstp server`` asking ``servers`` (default: the first, then the second) with ``timeout``
        seconds and one retry each; its log."""
        secret = self.tmp / "radius.secret"
        secret.write_bytes(SECRET + b"\n")
        log = self.tmp / f"{name}.log"
        chosen = servers or (f"{self.first.address}:{FIRST_PORT}", f"{self.second.address}:{SECOND_PORT}")
        self.server = start_server(
            self.pair.server, log,
            "--cert", str(self.cert), "--key", str(self.key), "--users", str(self.tmp / "users.toml"),
            "--listen", self.pair.server_ip, "--port", PORT, "--pool", "10.78.0.0/24",
            "--tun-name", SERVER_TUN, "--control-socket", str(self.tmp / "ctl.sock"),
            "--backend", "radius", *(f"--radius-server={server}" for server in chosen),
            "--radius-timeout", timeout, "--radius-retries", "1",
            "--radius-secret-file", str(secret), "--nas-identifier", "vpn-failover", "--log-level", "debug",
            "--radius-accounting-spool", str(self.spool), "--auth", "mschapv2",
        )  # fmt: skip
        return log

    def stop_server(self) -> None:
        """SIGTERM, a clean stop; it must exit by itself."""
        assert self.server is not None
        self.server.terminate()
        assert self.server.wait(30) == 0

    def connect(self, user: str, ifname: str) -> ConnectProcess:
        log = self.tmp / f"client-{user}.log"
        password_file = self.tmp / f"{user}.pw"
        password_file.write_text(f"{user}-password\n")
        process: subprocess.Popen[str] = self.pair.client.start(
            [
                PYSSTP, "connect", f"{self.pair.server_ip}:{PORT}", "--user", user,
                "--password-file", str(password_file), "--ca-file", str(self.cert), "--sni", "sstp.test",
                "--ifname", ifname, "--auth", "mschapv2",
            ],
            log,
        )  # fmt: skip
        return ConnectProcess(process, log)

    def ping(self, ifname: str) -> None:
        """Round trips through the session on ``ifname``."""
        result = self.pair.client.run(
            "ping", "-c", "2", "-W", "2", "-i", "0.2", "-I", ifname, SERVER_TUNNEL_IP, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def setup(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    cert, key, _der = make_certificate(tmp_path)
    with radius_host_behind(netns_pair.server) as radius:
        first = radius.freeradius(tmp_path / "raddb-first", USERS, port=FIRST_PORT)
        second = radius.freeradius(tmp_path / "raddb-second", USERS, port=SECOND_PORT)
        yield Setup(netns_pair, radius, first, second, tmp_path, cert, key)


def asked(server: FreeRadius, user: str) -> bool:
    """Whether ``server`` saw an Access-Request for ``user`` (its -X trace)."""
    return f'User-Name = "{user}"' in server.describe()


def records(server: FreeRadius, status: str, user: str | None = None) -> list[dict[str, str]]:
    """The detail file's records of ``status`` (for ``user``)."""
    return [
        record
        for record in detail_records(server.detail)
        if record["Acct-Status-Type"] == status and (user is None or record.get("User-Name") == user)
    ]


def session_id(server: FreeRadius, user: str) -> str:
    """The Acct-Session-Id of ``user``'s Start in ``server``'s detail file, once it is there."""
    wait_until(lambda: bool(records(server, "Start", user)), f"{user}'s Start", server.log, WAIT)
    return records(server, "Start", user)[0]["Acct-Session-Id"]


def test_logins_fail_over_to_the_second_server(setup: Setup) -> None:
    log = setup.start_server()
    alice = setup.connect("alice", "sstpc-a")
    alice.wait_connected()
    setup.ping("sstpc-a")
    assert asked(setup.first, "alice")
    assert not asked(setup.second, "alice")

    setup.first.stop()
    setup.ping("sstpc-a")
    bob = setup.connect("bob", "sstpc-b")
    bob.wait_connected()
    assert asked(setup.second, "bob"), setup.second.describe()
    assert f"RADIUS server {setup.first.address}:{FIRST_PORT} did not answer" in log.read_text()
    setup.ping("sstpc-a")
    setup.ping("sstpc-b")


def test_both_down_refuses_clearly_and_queued_accounting_arrives_later(setup: Setup) -> None:
    log = setup.start_server()
    alice = setup.connect("alice", "sstpc-a")
    alice.wait_connected()
    alice_session = session_id(setup.first, "alice")
    setup.first.stop()
    setup.second.stop()

    carol = setup.connect("carol", "sstpc-c")
    assert carol.wait_exit() != 0
    assert "could not check the login" in carol.text(), carol.text()
    assert "wrong user name or password" not in carol.text()
    servers = f"{setup.first.address}:{FIRST_PORT}, {setup.second.address}:{SECOND_PORT}"
    refusals = [line for line in log.read_text().splitlines() if "login of 'carol'" in line]
    assert len(refusals) == 1 and servers in refusals[0], refusals
    setup.ping("sstpc-a")

    assert alice.stop() == 0
    wait_until(
        lambda: f"Stop of session {alice_session} not acknowledged" in log.read_text(),
        "a failed try of alice's Stop",
        log,
        WAIT,
    )
    setup.second.start()
    wait_until(lambda: bool(records(setup.second, "Stop", "alice")), "the queued Stop", log, WAIT)
    (stop,) = records(setup.second, "Stop", "alice")
    assert stop["Acct-Session-Id"] == alice_session
    assert int(stop["Acct-Delay-Time"]) > 0


def test_unsent_stop_is_spooled_and_sent_at_the_next_start(setup: Setup) -> None:
    setup.start_server()
    alice = setup.connect("alice", "sstpc-a")
    alice.wait_connected()
    alice_session = session_id(setup.first, "alice")
    wait_until(lambda: bool(records(setup.first, "Accounting-On")), "Accounting-On", setup.first.log, WAIT)
    setup.first.stop()
    setup.second.stop()

    setup.stop_server()
    alice.wait_exit()
    spooled = [json.loads(line) for line in setup.spool.read_text().splitlines()]
    stops = [r for r in spooled if r["status"] == "Stop"]
    assert [r["session"]["context"]["session_id"] for r in stops] == [alice_session], spooled

    setup.first.start()
    log = setup.start_server(name="server-again")
    wait_until(lambda: bool(records(setup.first, "Stop", "alice")), "the spooled Stop", log, WAIT)
    (stop,) = records(setup.first, "Stop", "alice")
    assert stop["Acct-Session-Id"] == alice_session
    assert int(stop["Acct-Delay-Time"]) > 0
    wait_until(lambda: not setup.spool.exists(), "the spool emptied", log, WAIT)
    wait_until(
        lambda: len(records(setup.first, "Accounting-On")) == 2, "Accounting-On again", setup.first.log, WAIT
    )
    setup.stop_server()
    wait_until(
        lambda: len(records(setup.first, "Accounting-Off")) == 2, "Accounting-Off", setup.first.log, WAIT
    )
    assert not setup.spool.exists()


# A UDP relay in the RADIUS namespace that passes requests to FreeRADIUS and its replies back unchanged
# (same secret, so every authenticator still holds), except that it holds the requests of one user until
# a file appears: the slow server, without any timing in the test.
RELAY = """
import os, socket, sys, threading, time
address, held, release = sys.argv[1], sys.argv[4], sys.argv[5]
port, target = int(sys.argv[2]), int(sys.argv[3])
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind((address, port))
print("relaying", flush=True)

def user_name(data):
    at = 20
    while at + 2 <= len(data):
        kind, size = data[at], data[at + 1]
        if size < 2:
            return b""
        if kind == 1:
            return data[at + 2 : at + size]
        at += size
    return b""

def relay(data, peer):
    if user_name(data).decode(errors="replace") == held:
        print("holding", held, flush=True)
        while not os.path.exists(release):
            time.sleep(0.05)
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.settimeout(30)
    back.sendto(data, (address, target))
    try:
        front.sendto(back.recv(4096), peer)
    except OSError:
        pass
    back.close()

while True:
    data, peer = front.recvfrom(4096)
    threading.Thread(target=relay, args=(data, peer), daemon=True).start()
"""


def test_a_slow_server_holds_only_the_login_waiting_on_it(setup: Setup) -> None:
    release = setup.tmp / "release"
    relay_log = setup.tmp / "relay.log"
    relay = setup.radius.namespace.start(
        [
            sys.executable, "-c", RELAY, setup.first.address, str(PROXY_PORT), str(FIRST_PORT), "slow",
            str(release),
        ],
        relay_log,
    )  # fmt: skip
    try:
        wait_until(lambda: "relaying" in relay_log.read_text(), "the relay", relay_log, WAIT)
        # 2 x 25 s: the held login is not given up while the others run, and it stays within the server's
        # 60 s negotiation timeout (--negotiation-timeout).
        log = setup.start_server(f"{setup.first.address}:{PROXY_PORT}", timeout="25")
        alice = setup.connect("alice", "sstpc-a")
        alice.wait_connected()

        slow = setup.connect("slow", "sstpc-s")
        wait_until(lambda: "holding slow" in relay_log.read_text(), "the held login", relay_log, WAIT)
        setup.ping("sstpc-a")
        bob = setup.connect("bob", "sstpc-b")
        bob.wait_connected()
        setup.ping("sstpc-b")
        setup.ping("sstpc-a")
        assert "connected: " not in slow.text()
        assert slow.process.poll() is None, slow.text()

        release.touch()
        slow.wait_connected()
        setup.ping("sstpc-s")
        assert "did not answer" not in log.read_text()
    finally:
        relay.terminate()
        relay.wait(10)
