"""`pysstp server` with ``backend = "radius"`` in a namespace, FreeRADIUS 3.2 in another behind it, and
`pysstp connect` in a third: MS-CHAPv2 and EAP-MSCHAPv2 (passed through to FreeRADIUS) come up and ping,
the address comes from Framed-IP-Address, and a wrong password reaches the client as E=691."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pysstp.aaa.pki import issue_user

from helpers import certlab
from helpers.connect_process import PYSSTP, ConnectProcess, tun_addresses
from helpers.freeradius import SECRET, FreeRadius, RadiusHost, RadiusUser, radius_host_behind
from helpers.loopback import make_certificate
from helpers.namespaces import Pair, netns_pair
from helpers.server_process import start_server

__all__ = ["netns_pair"]

PORT = "8443"
SERVER_TUN = "sstp-r0"
CLIENT_TUN = "sstpc-r0"
SERVER_TUNNEL_IP = "10.77.0.1"
ALICE_ADDRESS = "10.77.0.50"
USERS = (
    RadiusUser("alice", "alice-password", reply=(f"Framed-IP-Address = {ALICE_ADDRESS}",)),
    RadiusUser("bob", "bob-password", nt_only=True),
    # FreeRADIUS starts with its default_eap_type (EAP-MSCHAPv2) unless the user says otherwise.
    RadiusUser("tls-user", check=("EAP-Type := TLS",)),
)


@dataclass
class Setup:
    pair: Pair
    radius: RadiusHost
    freeradius: FreeRadius
    tmp: Path
    cert: Path
    key: Path

    def start_server(self, *extra: str) -> Path:
        secret = self.tmp / "radius.secret"
        secret.write_bytes(SECRET + b"\n")
        log = self.tmp / "server.log"
        start_server(
            self.pair.server, log,
            "--cert", str(self.cert), "--key", str(self.key), "--users", str(self.tmp / "users.toml"),
            "--listen", self.pair.server_ip, "--port", PORT, "--pool", "10.77.0.0/24",
            "--tun-name", SERVER_TUN, "--control-socket", str(self.tmp / "ctl.sock"),
            "--backend", "radius", "--radius-server", f"{self.freeradius.address}:{self.freeradius.port}",
            "--radius-secret-file", str(secret), "--nas-identifier", "vpn-e2e", "--log-level", "debug",
            *extra,
        )  # fmt: skip
        return log

    def connect(self, user: str, password: str, auth: str, *extra: str) -> ConnectProcess:
        log = self.tmp / f"client-{user}.log"
        password_file = self.tmp / f"{user}.pw"
        password_file.write_text(password + "\n")
        process: subprocess.Popen[str] = self.pair.client.start(
            [
                PYSSTP, "connect", f"{self.pair.server_ip}:{PORT}", "--user", user,
                "--password-file", str(password_file), "--ca-file", str(self.cert), "--sni", "sstp.test",
                "--ifname", CLIENT_TUN, "--auth", auth, *extra,
            ],
            log,
        )  # fmt: skip
        return ConnectProcess(process, log)


@pytest.fixture
def setup(netns_pair: Pair, tmp_path: Path) -> Iterator[Setup]:
    cert, key, _der = make_certificate(tmp_path)
    with radius_host_behind(netns_pair.server) as radius:
        freeradius = radius.freeradius(tmp_path / "raddb", USERS)
        yield Setup(netns_pair, radius, freeradius, tmp_path, cert, key)


def ping(setup: Setup, address: str) -> None:
    result = setup.pair.client.run("ping", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mschapv2_through_freeradius_comes_up_with_its_address(setup: Setup) -> None:
    server_log = setup.start_server("--auth", "mschapv2")
    client = setup.connect("alice", "alice-password", "mschapv2")
    client.wait_connected()
    ping(setup, SERVER_TUNNEL_IP)
    assert [a["local"] for a in tun_addresses(setup.pair.client, CLIENT_TUN)] == [ALICE_ADDRESS]
    assert "radius backend" in server_log.read_text()
    assert 'NAS-Identifier = "vpn-e2e"' in setup.freeradius.describe()


def test_eap_mschapv2_passed_through_to_freeradius(setup: Setup) -> None:
    setup.start_server("--auth", "eap-mschapv2", "--eap-mode", "pass-through")
    client = setup.connect("bob", "bob-password", "eap-mschapv2")
    client.wait_connected()
    ping(setup, SERVER_TUNNEL_IP)
    assert "eap_mschapv2: Issuing Challenge" in setup.freeradius.describe()


def test_wrong_password_reaches_the_client_as_e691(setup: Setup) -> None:
    setup.start_server("--auth", "mschapv2")
    client = setup.connect("alice", "not-the-password", "mschapv2")
    assert client.wait_exit() != 0
    assert "E=691" in client.text()


def test_eap_tls_passed_through_to_freeradius(setup: Setup) -> None:
    lab = certlab.lab()
    user = issue_user(lab.ca, "tls-user")
    cert, key, ca = setup.tmp / "tls-user.pem", setup.tmp / "tls-user.key", setup.tmp / "lab-ca.pem"
    cert.write_bytes(user.certificate_pem())
    key.write_bytes(user.key_pem())
    key.chmod(0o600)
    ca.write_bytes(lab.ca.certificate_pem())
    setup.start_server("--auth", "eap-tls", "--eap-mode", "pass-through")
    client = setup.connect(
        "tls-user", "", "eap-tls", "--cert", str(cert), "--key", str(key), "--eap-ca", str(ca)
    )
    client.wait_connected()
    ping(setup, SERVER_TUNNEL_IP)
    assert "eap_tls: (TLS) recv TLS 1.2 Handshake, CertificateVerify" in setup.freeradius.describe()
