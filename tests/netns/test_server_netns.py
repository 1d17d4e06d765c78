"""The real `pysstp server` process in one network namespace, tunnel clients in another (needs root)."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.connect_process import PYSSTP
from helpers.loopback import make_certificate
from helpers.namespaces import (
    Namespace,
    Pair,
    attach_lan,
    checked_transfer,
    delete_namespace,
    netns_pair,
    network_state,
    run,
    wait_for_text,
)
from helpers.server_process import add_user, start_server, start_tunnel_client

__all__ = ["netns_pair"]

PORT = "8443"
TUN = "sstp-t0"
SERVER_TUNNEL_IP = "10.77.0.1"


def wait_for_line(log: Path, prefix: str, timeout: float = 20.0) -> str:
    """The first line of ``log`` starting with ``prefix`` (fails with the log when it never comes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith(prefix):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no {prefix!r} in {log}:\n{log.read_text()}")


@dataclass
class Setup:
    pair: Pair
    tmp: Path
    cert: Path
    key: Path
    users: Path

    def add_user(self, name: str, password: str) -> None:
        add_user(self.users, name, password)

    def start_server(self, *extra: str) -> Path:
        log = self.tmp / "server.log"
        start_server(
            self.pair.server, log,
            "--cert", str(self.cert), "--key", str(self.key), "--users", str(self.users),
            "--listen", self.pair.server_ip, "--port", PORT, "--pool", "10.77.0.0/24",
            "--dns", SERVER_TUNNEL_IP, "--tun-name", TUN, "--control-socket", str(self.tmp / "ctl.sock"),
            *extra,
        )  # fmt: skip
        return log

    def start_client(self, name: str, user: str, password: str, auth: str = "auto", *extra: str) -> Path:
        log = self.tmp / f"client-{name}.log"
        start_tunnel_client(
            self.pair.client, log, self.pair.server_ip, PORT, self.cert, user, password, auth, name, *extra
        )
        return log


@pytest.fixture
def setup(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    cert, key, _ = make_certificate(tmp_path)
    s = Setup(netns_pair, tmp_path, cert, key, tmp_path / "users.toml")
    s.add_user("alice", "alicepw")
    yield s


def ping(ns: Namespace, address: str) -> None:
    result = ns.run("ping", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("auth", ["mschapv2", "eap-mschapv2", "pap"])
def test_ping_and_tcp_transfer_through_the_tunnel(setup: Setup, auth: str) -> None:
    setup.start_server("--auth", auth)
    client_log = setup.start_client("sstpc0", "alice", "alicepw", auth)
    up = wait_for_line(client_log, "UP ")
    client_address = up.split()[1]
    ping(setup.pair.client, SERVER_TUNNEL_IP)
    ping(setup.pair.server, client_address)
    # A TCP transfer whose bytes are checked: 2 MB from the client to a sink in the server namespace.
    checked_transfer(setup.pair.client, setup.pair.server, SERVER_TUNNEL_IP, setup.tmp / "sink.log")


def test_sigterm_disconnects_clients_and_restores_the_system(setup: Setup) -> None:
    server_log = setup.start_server("--forwarding", "route")
    client_log = setup.start_client("sstpc0", "alice", "alicepw")
    wait_for_line(client_log, "UP ")
    assert TUN in setup.pair.server.run("ip", "link", "show").stdout
    assert "pysstp" in setup.pair.server.run("nft", "list", "tables").stdout
    server = setup.pair.server.processes[0]
    server.terminate()
    server.wait(15)
    assert server.returncode == 0, server_log.read_text()
    down = wait_for_line(client_log, "DOWN ")
    assert down.split()[1] == "0", down  # an orderly CALL_DISCONNECT, not an error
    assert TUN not in setup.pair.server.run("ip", "link", "show").stdout
    assert "pysstp" not in setup.pair.server.run("nft", "list", "tables").stdout
    forwarding = setup.pair.server.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()
    assert forwarding == "0"
    assert not (setup.tmp / "ctl.sock").exists()


def test_signals_during_shutdown_leave_the_host_clean(setup: Setup) -> None:
    """A second SIGTERM and a SIGHUP while the server shuts down are logged and ignored: the shutdown
    runs to its end and undoes everything (they used to end the process with Python's default action)."""
    before = (network_state(setup.pair.server), nft_tables(setup.pair.server), ip_forward(setup.pair.server))
    server_log = setup.start_server()
    client_log = setup.start_client("sstpc0", "alice", "alicepw")
    wait_for_line(client_log, "UP ")
    server, client = setup.pair.server.processes[0], setup.pair.client.processes[0]
    # A stopped client answers no CALL_DISCONNECT: the server's shutdown waits for it (its grace period),
    # so the signals below arrive while it runs.
    client.send_signal(signal.SIGSTOP)
    try:
        server.terminate()
        wait_for_text(server_log, "shutting down: disconnecting")
        server.terminate()
        server.send_signal(signal.SIGHUP)
        server.wait(30)
    finally:
        client.send_signal(signal.SIGCONT)
    log = server_log.read_text()
    assert server.returncode == 0, log
    assert "SIGTERM: already shutting down" in log
    assert "SIGHUP ignored: shutting down" in log
    after = (network_state(setup.pair.server), nft_tables(setup.pair.server), ip_forward(setup.pair.server))
    assert after == before


def nft_tables(ns: Namespace) -> str:
    return ns.run("nft", "list", "tables").stdout


def ip_forward(ns: Namespace) -> str:
    return ns.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()


def test_user_add_then_del(setup: Setup) -> None:
    setup.add_user("bob", "bobpw")
    assert b"bobpw" not in setup.users.read_bytes()
    server_log = setup.start_server()
    first = setup.start_client("sstpc0", "bob", "bobpw")
    wait_for_line(first, "UP ")
    run(PYSSTP, "user", "del", "bob", "--users", str(setup.users))
    # The server looks at the file every few seconds; a client that dials before it has seen the change
    # would still get in.
    wait_for_text(server_log, "user database changed on disk")
    second = setup.start_client("sstpc1", "bob", "bobpw")
    down = wait_for_line(second, "DOWN ")
    assert "authentication failed" in down


def test_status_and_kick_against_the_running_server(setup: Setup) -> None:
    setup.start_server()
    client_log = setup.start_client("sstpc0", "alice", "alicepw")
    wait_for_line(client_log, "UP ")
    socket_path = str(setup.tmp / "ctl.sock")
    status = setup.pair.server.run(PYSSTP, "status", "--socket", socket_path, "--json")
    sessions = json.loads(status.stdout)["sessions"]
    assert [s["user"] for s in sessions] == ["alice"]
    kicked = setup.pair.server.run(PYSSTP, "status", "--socket", socket_path, "--kick", "alice")
    assert "disconnected 1" in kicked.stdout
    assert wait_for_line(client_log, "DOWN ").split()[1] == "0"


def test_wrong_password_is_logged_and_refused(setup: Setup) -> None:
    server_log = setup.start_server()
    client_log = setup.start_client("sstpc0", "alice", "not-the-password")
    down = wait_for_line(client_log, "DOWN ")
    assert "691" in down
    wait_for_text(server_log, "authentication failed")


def test_site_to_site_networks_behind_client_and_server_talk(setup: Setup) -> None:
    """A LAN behind the client (routes in the user entry) reaches a LAN behind the server and back."""
    secret = setup.tmp / "carol.pw"
    secret.write_text("carolpw\n")
    run(
        PYSSTP, "user", "add", "carol", "--route", "192.168.50.0/24",
        "--users", str(setup.users), "--password-file", str(secret),
    )  # fmt: skip
    tag = setup.pair.server.name.rsplit("s", 1)[-1]
    behind_client, behind_server = Namespace(f"pysstp-lc{tag}"), Namespace(f"pysstp-ls{tag}")
    try:
        attach_lan(setup.pair.client, behind_client, f"c{tag}", "192.168.50.1", "192.168.50.2")
        attach_lan(setup.pair.server, behind_server, f"s{tag}", "192.168.60.1", "192.168.60.2")
        server_log = setup.start_server()
        client_log = setup.start_client("sstpc0", "carol", "carolpw")
        wait_for_line(client_log, "UP ")
        wait_for_text(server_log, "routing 192.168.50.0/24")
        assert "192.168.50.0/24 dev " + TUN in setup.pair.server.run("ip", "route").stdout
        # The client side routes the server's LAN into its tunnel (what a site's router would do).
        setup.pair.client.run("ip", "route", "add", "192.168.60.0/24", "dev", "sstpc0")
        ping(behind_server, "192.168.50.2")
        ping(behind_client, "192.168.60.2")
        setup.pair.client.processes[-1].terminate()
        wait_for_line(client_log, "DOWN ")
        wait_for_text(server_log, "call ended")
        assert "192.168.50.0/24" not in setup.pair.server.run("ip", "route").stdout
    finally:
        for ns in (behind_client, behind_server):
            delete_namespace(ns)


def test_nat_lets_clients_reach_a_network_that_has_no_route_back(setup: Setup) -> None:
    """With --forwarding nat, traffic leaving the egress interface carries the server's own address."""
    tag = setup.pair.server.name.rsplit("s", 1)[-1]
    outside = Namespace(f"pysstp-o{tag}")
    try:
        attach_lan(setup.pair.server, outside, f"o{tag}", "192.168.70.1", "192.168.70.2")
        outside.run("ip", "route", "del", "default")  # the outside knows nothing of 10.77.0.0/24
        egress = f"lo{'o' + tag}"[:15]
        setup.start_server("--forwarding", "nat", "--egress", egress)
        client_log = setup.start_client("sstpc0", "alice", "alicepw")
        wait_for_line(client_log, "UP ")
        setup.pair.client.run("ip", "route", "add", "192.168.70.0/24", "dev", "sstpc0")
        ping(setup.pair.client, "192.168.70.2")
        assert "masquerade" in setup.pair.server.run("nft", "list", "table", "inet", f"pysstp-{TUN}").stdout
    finally:
        delete_namespace(outside)


def test_sighup_reloads_the_certificate_without_dropping_sessions(setup: Setup) -> None:
    server_log = setup.start_server()
    first = setup.start_client("sstpc0", "alice", "alicepw")
    wait_for_line(first, "UP ")
    renewed = setup.tmp / "renewed"
    renewed.mkdir()
    new_cert, new_key, _ = make_certificate(renewed)
    setup.cert.write_bytes(new_cert.read_bytes())
    setup.key.write_bytes(new_key.read_bytes())
    setup.pair.server.processes[0].send_signal(signal.SIGHUP)
    wait_for_text(server_log, "reloaded users")
    second = setup.start_client("sstpc1", "alice", "alicepw")  # trusts only the renewed certificate
    wait_for_line(second, "UP ")
    assert "DOWN" not in first.read_text()


def test_large_mru_carries_4000_byte_packets_whole(setup: Setup) -> None:
    setup.start_server("--mru", "4091", "--max-peer-mru", "4091")
    large = wait_for_line(setup.start_client("sstpc0", "alice", "alicepw", "auto", "mru=4091"), "UP ")
    standard = wait_for_line(setup.start_client("sstpc1", "alice", "alicepw"), "UP ")
    large_address, standard_address = large.split()[1], standard.split()[1]
    assert "mtu 4087" in setup.pair.client.run("ip", "link", "show", "sstpc0").stdout
    # 4000-byte IP packets with Don't Fragment set cross whole, both ways.
    big_ping = ("ping", "-M", "do", "-s", "3972", "-c", "2", "-W", "2", "-i", "0.2")
    setup.pair.client.run(*big_ping, SERVER_TUNNEL_IP)
    setup.pair.server.run(*big_ping, large_address)
    # The session that kept 1500 has a route with its own MTU: the server's kernel sizes what it sends
    # there for 1500 (and would fragment, or send ICMP when forwarding, anything larger).
    routes = setup.pair.server.run("ip", "route", "show", "dev", TUN).stdout
    assert f"{standard_address} proto static scope link mtu 1500" in routes, routes
    refused = setup.pair.server.run(*big_ping[:-4], "-c", "1", "-W", "2", standard_address, check=False)
    assert "message too long" in refused.stdout + refused.stderr


def test_server_address_outside_the_pool_still_routes_the_pool_into_the_tunnel(setup: Setup) -> None:
    """pool.server_address may lie outside pool.network; the pool must then still be routed to the TUN."""
    setup.start_server("--server-address", "10.78.0.1")
    client_log = setup.start_client("sstpc0", "alice", "alicepw")
    client_address = wait_for_line(client_log, "UP ").split()[1]
    assert client_address.startswith("10.77.0.")
    ping(setup.pair.client, "10.78.0.1")
    ping(setup.pair.server, client_address)


@pytest.mark.skipif(shutil.which("radclient") is None, reason="radclient is not installed (freeradius-utils)")
def test_radclient_disconnects_a_session_of_the_running_server(setup: Setup) -> None:
    secret = setup.tmp / "dae.secret"
    secret.write_text("dae-s3cret\n")
    setup.start_server(
        "--dae-client", f"127.0.0.1={secret}", "--dae-listen", "127.0.0.1", "--dae-port", "3799"
    )
    client_log = setup.start_client("sstpc0", "alice", "alicepw")
    wait_for_line(client_log, "UP ")
    socket_path = str(setup.tmp / "ctl.sock")
    status = setup.pair.server.run(PYSSTP, "status", "--socket", socket_path)
    assert "dynamic authorization: listening on 127.0.0.1:3799 for 1 client(s)" in status.stdout
    request = setup.tmp / "disconnect.txt"
    request.write_text("User-Name=alice\n")
    radclient = ["radclient", "-x", "-r", "1", "-t", "10", "-S", str(secret), "-f", str(request)]
    answer = setup.pair.server.run(*radclient, "127.0.0.1:3799", "disconnect")
    assert "Received Disconnect-ACK" in answer.stdout, answer.stdout + answer.stderr
    assert wait_for_line(client_log, "DOWN ").split()[1] == "0"
