"""pysstp as a VPN plugin of the real NetworkManager (Debian's 1.42), against the real ``pysstp server``.

NetworkManager runs in the client namespace with a private bus and mount namespace
(tests/helpers/networkmanager.py): the host's NetworkManager, bus, /etc and /run are never touched. The
server runs in the server namespace (tests/helpers/namespaces.py, server_process.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.connect_process import PYSSTP
from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, Pair, netns_pair, run, stop_process
from helpers.networkmanager import NetworkManager, networkmanager_unavailable, vpn_add
from helpers.server_process import add_user, start_server

__all__ = ["netns_pair"]

PORT = "8443"
POOL = "10.78.0.0/24"
SERVER_TUNNEL_IP = "10.78.0.1"
VPN = "work"


@dataclass
class Lab:
    pair: Pair
    tmp: Path
    nm: NetworkManager
    cert: Path
    key: Path
    pin: str
    users: Path
    server: object = None

    def start_server(self, *extra: str) -> None:
        """``pysstp server`` in the server namespace (password logins unless ``extra`` says otherwise)."""
        self.server = start_server(
            self.pair.server, self.tmp / "server.log",
            "--cert", str(self.cert), "--key", str(self.key), "--users", str(self.users),
            "--listen", self.pair.server_ip, "--port", PORT, "--pool", POOL, "--dns", SERVER_TUNNEL_IP,
            "--tun-name", "sstp-s0", "--forwarding", "route", *extra,
        )  # fmt: skip

    def stop_server(self) -> None:
        assert self.server is not None
        stop_process(self.server)  # type: ignore[arg-type]

    def data(self, *extra: str, pin: bool = True) -> list[str]:
        """``vpn.data`` items for alice against the lab's server."""
        return [f"gateway={self.pair.server_ip}:{PORT}", "user=alice", "never-default=yes",
                *([f"pin-sha256={self.pin}"] if pin else []), *extra]  # fmt: skip

    def up(self, name: str = VPN, check: bool = True) -> str:
        result = self.nm.nmcli("--wait", "90", "connection", "up", name, check=check)
        return result.stdout + result.stderr


@pytest.fixture
def lab(netns_pair: Pair, tmp_path: Path) -> Iterator[Lab]:
    why = networkmanager_unavailable()
    if why is not None:
        pytest.skip(why)
    cert, key, der = make_certificate(tmp_path)
    users = tmp_path / "users.toml"
    add_user(users, "alice", "alicepw")
    nm_dir = tmp_path / "nm"
    nm_dir.mkdir()
    nm = NetworkManager(netns_pair.client, nm_dir)
    made = Lab(netns_pair, tmp_path, nm, cert, key, hashlib.sha256(der).hexdigest(), users)
    try:
        nm.start()
        nm.add_uplink(netns_pair.client_link, f"{netns_pair.client_ip}/24", netns_pair.server_ip)
        yield made
    finally:
        nm.stop()
        shutil.rmtree(nm_dir, ignore_errors=True)


def tun_links(ns: Namespace) -> list[str]:
    links = json.loads(ns.run("ip", "-j", "link", "show").stdout)
    return [link["ifname"] for link in links if link["ifname"].startswith("sstp")]


def routes(ns: Namespace) -> list[str]:
    return sorted(ns.run("ip", "route", "show", "table", "all").stdout.splitlines())


def ping(ns: Namespace, address: str) -> None:
    result = ns.run("ping", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_up_reports_address_and_dns_and_down_removes_everything(lab: Lab) -> None:
    lab.start_server()
    client = lab.pair.client
    before_links, before_routes = tun_links(client), routes(client)
    vpn_add(lab.nm, VPN, lab.data(), ["password=alicepw"])
    lab.up()
    assert lab.nm.field(VPN, "GENERAL.STATE") == ["activated"]
    (address,) = lab.nm.field(VPN, "IP4.ADDRESS")
    assert address.startswith("10.78.0.") and address.endswith("/32"), address
    assert lab.nm.field(VPN, "IP4.DNS") == [SERVER_TUNNEL_IP]
    # NetworkManager's resolv.conf (under its private /run: rc-manager=unmanaged) has the server's DNS.
    assert f"nameserver {SERVER_TUNNEL_IP}" in lab.nm.run("cat", "/run/NetworkManager/resolv.conf").stdout
    (tun,) = tun_links(client)
    assert address.split("/")[0] in client.run("ip", "addr", "show", tun).stdout
    ping(client, SERVER_TUNNEL_IP)
    lab.nm.nmcli("connection", "down", VPN)
    lab.nm.wait(lambda: tun_links(client) == before_links, "the TUN is gone")
    lab.nm.wait(lambda: routes(client) == before_routes, "NetworkManager's routes are gone")
    lab.nm.wait(lambda: not lab.nm.service_pids(), "the plugin service exits")


def test_wrong_password_fails_with_login_failed(lab: Lab) -> None:
    lab.start_server()
    vpn_add(lab.nm, VPN, lab.data(), ["password=wrong"])
    output = lab.up(check=False)
    # NetworkManager's login-failed reason, which nmcli words as "Invalid secrets".
    assert "Invalid secrets" in output, output
    log = lab.nm.log.read_text()
    assert "dbus: failure: login-failed" in log, log
    assert "wrong user name or password" in log, log
    lab.nm.wait(lambda: not lab.nm.service_pids(), "the plugin service exits")
    assert tun_links(lab.pair.client) == []


def test_untrusted_certificate_fails_saying_so(lab: Lab) -> None:
    lab.start_server()
    vpn_add(lab.nm, VPN, lab.data(pin=False), ["password=alicepw"])
    output = lab.up(check=False)
    assert "The VPN service failed to start" in output, output
    log = lab.nm.log.read_text()
    # pysstp's line is in NetworkManager's own warning, as the error of the Connect call.
    assert "failed to connect interactively" in log and "was refused: self-signed certificate" in log, log
    lab.nm.wait(lambda: not lab.nm.service_pids(), "the plugin service exits")


def test_server_stopped_while_up_fails_the_vpn_and_a_new_up_works(lab: Lab) -> None:
    lab.start_server()
    vpn_add(lab.nm, VPN, lab.data(), ["password=alicepw"])
    lab.up()
    lab.stop_server()
    lab.nm.wait(lambda: lab.nm.field(VPN, "GENERAL.STATE") == [], "NetworkManager sees the VPN end")
    log = lab.nm.log.read_text()
    assert "the server ended the call" in log and "set state: failed (was activated)" in log, log
    lab.nm.wait(lambda: not lab.nm.service_pids(), "the plugin service exits")
    lab.nm.wait(lambda: tun_links(lab.pair.client) == [], "the TUN is gone")
    lab.start_server()
    lab.up()
    ping(lab.pair.client, SERVER_TUNNEL_IP)


def test_eap_tls_with_pysstp_pki_files(lab: Lab) -> None:
    pki = lab.tmp / "pki"
    for args in (("init",), ("server", "vpn"), ("user", "alice")):
        run(PYSSTP, "pki", *args, "--dir", str(pki))
    lab.start_server(
        "--auth", "eap-tls", "--eap-ca", str(pki / "ca.pem"), "--eap-crl", str(pki / "crl.pem"),
        "--eap-cert", str(pki / "vpn.pem"), "--eap-key", str(pki / "vpn.key"),
    )  # fmt: skip
    data = [
        f"gateway={lab.pair.server_ip}:{PORT}", f"pin-sha256={lab.pin}", "never-default=yes", "auth=eap-tls",
        f"cert={pki / 'alice.pem'}", f"key={pki / 'alice.key'}", f"eap-ca={pki / 'ca.pem'}",
        "eap-server-name=vpn", "password-flags=4",
    ]  # fmt: skip
    vpn_add(lab.nm, VPN, data)
    lab.up()
    ping(lab.pair.client, SERVER_TUNNEL_IP)


def test_import_of_a_client_profile_then_up(lab: Lab) -> None:
    lab.start_server()
    profile = lab.tmp / "client.toml"
    profile.write_text(
        f"""[office]
server = "{lab.pair.server_ip}:{PORT}"
user = "alice"
password-file = "alice.pw"
pin-sha256 = "{lab.pin}"
route = ["10.78.0.0/24"]
dns = true
"""
    )
    result = lab.nm.run(PYSSTP, "nm", "import", str(profile))
    assert "dns: left out" in result.stderr, result.stderr
    lab.up("office")
    assert lab.nm.field("office", "IP4.DNS") == [SERVER_TUNNEL_IP]
    ping(lab.pair.client, SERVER_TUNNEL_IP)
    exported = lab.nm.run(PYSSTP, "nm", "export", "office").stdout
    assert f'server = "{lab.pair.server_ip}:{PORT}"' in exported
    assert 'route = ["10.78.0.0/24"]' in exported
    assert "alicepw" not in exported


def test_a_password_asked_for_at_connect_time_comes_through_the_agent(lab: Lab) -> None:
    lab.start_server()
    vpn_add(lab.nm, VPN, lab.data("password-flags=2"))
    # No secret and nobody to ask (no agent): NetworkManager gives up.
    output = lab.up(check=False)
    assert "secrets" in output.lower(), output
    # nmcli as the secret agent, answering the plugin's SecretsRequired from a file as the desktop's
    # password dialog would.
    answers = lab.tmp / "answers"
    answers.write_text("vpn.secrets.password:alicepw\n")
    lab.nm.nmcli("--wait", "90", "connection", "up", VPN, "passwd-file", str(answers))
    ping(lab.pair.client, SERVER_TUNNEL_IP)


def test_a_mistake_in_vpn_data_is_pysstps_one_line_in_networkmanagers_log(lab: Lab) -> None:
    lab.start_server()
    vpn_add(lab.nm, VPN, lab.data("colour=blue"), ["password=alicepw"])
    output = lab.up(check=False)
    assert "The VPN service failed to start" in output, output
    assert "vpn.data [work]: unknown key 'colour'" in lab.nm.log.read_text()
    lab.nm.wait(lambda: not lab.nm.service_pids(), "the plugin service exits")
