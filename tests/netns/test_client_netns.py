"""The real `pysstp connect` in a client namespace against the real `pysstp server` in a server namespace
(needs root; the namespaces come from tests/helpers/namespaces.py and are deleted whatever happens).

Each test compares the client namespace's links, addresses, routes and resolv.conf before the client
starts and after it stops: nothing may be left behind. The client's resolv.conf is a per-namespace file
(``ip netns exec`` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf), so the host's own
/etc/resolv.conf is never touched; the test checks that too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.connect_process import PYSSTP, wait_until
from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, Pair, netns_pair, network_state
from helpers.server_process import add_user, start_server

__all__ = ["netns_pair"]

PORT = "8443"
SERVER_TUN = "sstp-s0"
CLIENT_TUN = "sstpc0"
SERVER_TUNNEL_IP = "10.77.0.1"
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
NETNS_ETC = Path("/etc/netns")


@dataclass
class Setup:
    pair: Pair
    tmp: Path
    cert: Path
    pin: str

    def start_client(self, *extra: str) -> tuple[subprocess.Popen[str], Path]:
        log = self.tmp / "client.log"
        process = self.pair.client.start(
            [
                PYSSTP, "connect", f"{self.pair.server_ip}:{PORT}", "--user", "alice",
                "--password-file", str(self.tmp / "alice.pw"), "--sni", "sstp.test", "--ifname", CLIENT_TUN,
                *extra,
            ],
            log,
        )  # fmt: skip
        return process, log

    def stop(
        self, process: subprocess.Popen[str], signum: signal.Signals, log: Path, expect: int = 0
    ) -> None:
        """Stop the client with ``signum``; it exits with ``expect`` (130 after SIGINT before it was up)."""
        process.send_signal(signum)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the client did not stop on {signum.name}:\n{log.read_text()}") from None
        assert process.returncode == expect, log.read_text()


@pytest.fixture
def setup(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    with client_setup(netns_pair, tmp_path) as made:
        yield made


@contextlib.contextmanager
def client_setup(netns_pair: Pair, tmp_path: Path, *server_args: str) -> Iterator[Setup]:
    """The server running in its namespace (with ``server_args`` added), the client namespace prepared."""
    cert, key, der = make_certificate(tmp_path)
    users = tmp_path / "users.toml"
    add_user(users, "alice", "alicepw")  # the client reads its password from alice.pw
    # The client's private resolv.conf (see the module docstring).
    netns_etc_existed = NETNS_ETC.exists()
    resolv_dir = NETNS_ETC / netns_pair.client.name
    resolv_dir.mkdir(parents=True)
    (resolv_dir / "resolv.conf").write_text("nameserver 192.0.2.53\nsearch corp.example\n")
    host_resolv = HOST_RESOLV_CONF.read_bytes()
    # The client namespace gets a default route, as a real machine has, through the server namespace.
    netns_pair.client.run("ip", "route", "add", "default", "via", netns_pair.server_ip)
    server_log = tmp_path / "server.log"
    try:
        start_server(
            netns_pair.server, server_log,
            "--cert", str(cert), "--key", str(key), "--users", str(users),
            "--listen", netns_pair.server_ip, "--port", PORT, "--pool", "10.77.0.0/24",
            "--dns", SERVER_TUNNEL_IP, "--tun-name", SERVER_TUN, "--forwarding", "route",
            "--control-socket", str(tmp_path / "ctl.sock"), *server_args,
        )  # fmt: skip
        yield Setup(netns_pair, tmp_path, cert, hashlib.sha256(der).hexdigest())
    finally:
        # The namespaces themselves go in netns_pair's finalizer, which runs after this one.
        shutil.rmtree(resolv_dir, ignore_errors=True)
        if not netns_etc_existed:
            # Only if empty: a test running beside this one may have its own resolv.conf there.
            with contextlib.suppress(OSError):
                NETNS_ETC.rmdir()
        assert HOST_RESOLV_CONF.read_bytes() == host_resolv, "the host's /etc/resolv.conf was changed"


def ping(ns: Namespace, address: str) -> None:
    result = ns.run("ping", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def route_device(ns: Namespace, address: str) -> str:
    (route,) = json.loads(ns.run("ip", "-j", "route", "get", address).stdout)
    return str(route["dev"])


def test_connect_ping_split_tunnel_and_sigint_leaves_nothing(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    process, log = setup.start_client("--ca-file", str(setup.cert), "--route", "10.99.0.0/24")
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    text = log.read_text()
    for step in ("TCP", "TLS", "HTTP", "SSTP", "LCP", "auth", "binding", "IPCP"):
        assert f" {step} " in text, step
    assert f"via {CLIENT_TUN}, DNS {SERVER_TUNNEL_IP}, MS-CHAPv2, SHA-256 binding" in text
    ping(client, SERVER_TUNNEL_IP)
    assert route_device(client, "10.99.0.7") == CLIENT_TUN  # the split tunnel
    assert route_device(client, "192.0.2.1") != CLIENT_TUN  # everything else as before
    assert network_state(client)["resolv.conf"] == before["resolv.conf"]  # no --dns, no change
    setup.stop(process, signal.SIGINT, log)
    assert network_state(client) == before


def test_default_route_keeps_the_server_reachable_and_dns_is_restored(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    server_device = route_device(client, setup.pair.server_ip)
    process, log = setup.start_client("--pin-sha256", setup.pin, "--default-route", "--dns")
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    assert route_device(client, "192.0.2.1") == CLIENT_TUN
    assert route_device(client, "198.51.100.1") == CLIENT_TUN
    assert route_device(client, setup.pair.server_ip) == server_device  # pinned outside the tunnel
    ping(client, SERVER_TUNNEL_IP)
    resolv = network_state(client)["resolv.conf"]
    assert isinstance(resolv, str)
    assert resolv.splitlines()[1:] == [f"nameserver {SERVER_TUNNEL_IP}", "search corp.example"]
    setup.stop(process, signal.SIGTERM, log)
    assert network_state(client) == before


def test_sigint_while_dialing_leaves_nothing(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    # A server that accepts TCP but never answers TLS, so the client is stuck in the handshake when stopped.
    mute = (
        "import socket, time\ns = socket.create_server(('" + setup.pair.server_ip + "', 9))\n"
        "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    mute_log = setup.tmp / "mute.log"
    setup.pair.server.start([sys.executable, "-c", mute], mute_log)
    wait_until(lambda: "ready" in mute_log.read_text(), "the mute server", mute_log)
    log = setup.tmp / "client.log"
    process = client.start(
        [PYSSTP, "connect", f"{setup.pair.server_ip}:9", "--user", "alice", "--password-file",
         str(setup.tmp / "alice.pw"), "--default-route", "--dns"],
        log,
    )  # fmt: skip
    wait_until(lambda: " TCP " in log.read_text(), "TCP", log)
    setup.stop(process, signal.SIGINT, log, expect=130)
    after = network_state(client)
    assert after["links"] == before["links"] and after["resolv.conf"] == before["resolv.conf"]


def test_wrong_certificate_pin_is_refused(setup: Setup) -> None:
    process, log = setup.start_client("--pin-sha256", "00" * 32)
    process.wait(20)
    assert process.returncode == 1
    text = log.read_text()
    assert "pysstp: TLS: the certificate of" in text and f"--pin-sha256 {setup.pin}" in text


def test_self_signed_is_refused_by_default(setup: Setup) -> None:
    process, log = setup.start_client()
    process.wait(20)
    assert process.returncode == 1
    text = log.read_text()
    assert "self-signed certificate" in text and f"--pin-sha256 {setup.pin}" in text
