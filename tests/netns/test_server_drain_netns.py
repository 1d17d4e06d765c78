"""Drain a real `pysstp server` process with two tunnel clients (needs root): by `pysstp drain` and by
SIGUSR2, until the clients leave or until the deadline."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers.connect_process import PYSSTP
from helpers.loopback import make_certificate
from helpers.namespaces import Pair, netns_pair, stop_process, wait_for_text
from helpers.server_process import add_user, start_server, start_tunnel_client

__all__ = ["netns_pair"]

PORT = "8443"
TUN = "sstp-d0"
SERVER_TUNNEL_IP = "10.77.0.1"
CLIENTS = ("sstpd0", "sstpd1")

_CONNECT = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close()
except ConnectionRefusedError:
    print("refused")
else:
    print("accepted")
"""


@dataclass
class Drained:
    pair: Pair
    tmp: Path
    server: subprocess.Popen[str]
    log: Path
    clients: dict[str, tuple[subprocess.Popen[str], Path]]

    @property
    def control(self) -> str:
        return str(self.tmp / "ctl.sock")


def serve_two_clients(pair: Pair, tmp: Path, *extra: str) -> Drained:
    """A server with two tunnel clients whose calls are up."""
    cert, key, _ = make_certificate(tmp)
    users = tmp / "users.toml"
    add_user(users, "alice", "alicepw")
    log = tmp / "server.log"
    server = start_server(
        pair.server, log,
        "--cert", str(cert), "--key", str(key), "--users", str(users),
        "--listen", pair.server_ip, "--port", PORT, "--pool", "10.77.0.0/24", "--tun-name", TUN,
        "--control-socket", str(tmp / "ctl.sock"), *extra,
    )  # fmt: skip
    clients = {}
    for name in CLIENTS:
        client_log = tmp / f"client-{name}.log"
        process = start_tunnel_client(
            pair.client, client_log, pair.server_ip, PORT, cert, "alice", "alicepw", "auto", name
        )
        clients[name] = (process, client_log)
    for _process, client_log in clients.values():
        wait_for_text(client_log, "UP ")
    return Drained(pair, tmp, server, log, clients)


def new_connection(pair: Pair) -> str:
    """``refused`` or ``accepted``: what a new TCP connection to the server's port gets."""
    return pair.client.run(sys.executable, "-c", _CONNECT, pair.server_ip, PORT).stdout.strip()


def ping_through(pair: Pair, ifname: str) -> None:
    """Ping the server's tunnel address out of one client's TUN (so the reply comes back on it too)."""
    result = pair.client.run(
        "ping", "-c", "2", "-W", "2", "-i", "0.2", "-I", ifname, SERVER_TUNNEL_IP, check=False
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def assert_exited_clean(setup: Drained) -> None:
    """Exit code 0, and nothing of the server left on the system."""
    assert setup.server.wait(30) == 0, setup.log.read_text()
    assert TUN not in setup.pair.server.run("ip", "link", "show").stdout
    assert setup.pair.server.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert not Path(setup.control).exists()


def test_pysstp_drain_refuses_new_calls_and_exits_when_the_clients_have_left(
    netns_pair: Pair, tmp_path: Path
) -> None:
    setup = serve_two_clients(netns_pair, tmp_path)
    assert new_connection(netns_pair) == "accepted"
    drained = netns_pair.server.run(PYSSTP, "drain", "--control-socket", setup.control)
    assert drained.stdout.startswith("draining: 2 session(s) left"), drained.stdout
    wait_for_text(setup.log, "drain started by the control socket (uid 0, pid ", process=setup.server)
    assert new_connection(netns_pair) == "refused"
    status = netns_pair.server.run(PYSSTP, "status", "--socket", setup.control).stdout
    assert status.startswith("draining: accepting no new calls"), status
    again = netns_pair.server.run(PYSSTP, "drain", "--socket", setup.control).stdout
    assert again.startswith("already draining: 2 session(s) left"), again
    for name in CLIENTS:
        ping_through(netns_pair, name)  # established calls go on
    first, second = setup.clients.values()
    stop_process(first[0])
    assert "DOWN 0" in first[1].read_text()
    assert setup.server.poll() is None  # one session is left
    stop_process(second[0])
    assert "DOWN 0" in second[1].read_text()
    assert_exited_clean(setup)
    text = setup.log.read_text()
    assert "drained: no sessions left" in text
    assert "deadline" not in text


def test_sigusr2_drains_and_the_deadline_disconnects_the_clients_in_order(
    netns_pair: Pair, tmp_path: Path
) -> None:
    setup = serve_two_clients(netns_pair, tmp_path, "--drain-timeout", "2")
    setup.server.send_signal(signal.SIGUSR2)
    wait_for_text(setup.log, "drain started by SIGUSR2", process=setup.server)
    assert new_connection(netns_pair) == "refused"
    assert_exited_clean(setup)
    assert "drain deadline reached (2 s): disconnecting the 2 session(s) left" in setup.log.read_text()
    for _process, client_log in setup.clients.values():
        wait_for_text(client_log, "DOWN ")
        down = [line for line in client_log.read_text().splitlines() if line.startswith("DOWN ")]
        assert down[0].split()[1] == "0", down  # an orderly CALL_DISCONNECT, not a reset
