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
from ipaddress import IPv6Interface, IPv6Network
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
IPV6_PREFIX = IPv6Network("fd78:78::/64")
IPV6_DNS = "fd78:78::53"


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


def ping6(ns: Namespace, address: str) -> None:
    result = ns.run("ping", "-6", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
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


def ipv6_state(ns: Namespace) -> list[str]:
    return sorted(
        ns.run("ip", "-6", "route", "show", "table", "all").stdout.splitlines()
        + ns.run("ip", "-6", "addr", "show").stdout.splitlines()
    )


def test_ipv6_from_the_servers_advertisement_is_applied_by_networkmanager(lab: Lab) -> None:
    # The advertisement also pushes an IPv6 route and DNS server (RFC 4191, RFC 8106).
    lab.start_server(
        "--ipv6", str(IPV6_PREFIX), "--push-route", "fd99:99::/48", "--push-ipv6-dns", IPV6_DNS
    )  # fmt: skip
    client = lab.pair.client
    before = ipv6_state(client)
    vpn_add(lab.nm, VPN, lab.data(), ["password=alicepw"], "ipv6.method", "auto")
    lab.up()
    (address,) = lab.nm.field(VPN, "IP6.ADDRESS")
    # SLAAC's address from the advertised prefix and IPv6CP's interface identifier, as a /64.
    assert IPv6Interface(address).network == IPV6_PREFIX, address
    (tun,) = tun_links(client)
    assert address in client.run("ip", "-6", "addr", "show", "dev", tun).stdout
    ping6(client, str(IPV6_PREFIX[1]))  # the server's own address in the prefix
    ping(client, SERVER_TUNNEL_IP)  # and IPv4 as before
    tun_routes = client.run("ip", "-6", "route", "show", "dev", tun).stdout
    # never-default=yes: no IPv6 default route through the VPN either; the pushed route is there.
    assert "default" not in tun_routes and "fd99:99::/48" in tun_routes, tun_routes
    assert lab.nm.field(VPN, "IP6.DNS") == [IPV6_DNS]
    assert f"nameserver {IPV6_DNS}" in lab.nm.run("cat", "/run/NetworkManager/resolv.conf").stdout
    lab.nm.nmcli("connection", "down", VPN)
    lab.nm.wait(lambda: tun_links(client) == [], "the TUN is gone")
    lab.nm.wait(lambda: ipv6_state(client) == before, "the IPv6 address and routes are gone")


def test_a_server_without_ipv6_gives_an_ipv4_connection_with_ipv6_method_auto(lab: Lab) -> None:
    lab.start_server()
    vpn_add(lab.nm, VPN, lab.data(), ["password=alicepw"], "ipv6.method", "auto")
    lab.up()
    assert lab.nm.field(VPN, "GENERAL.STATE") == ["activated"]
    assert lab.nm.field(VPN, "IP6.ADDRESS") == []
    log = lab.nm.log.read_text()
    # IPv6CP rejected: reported as IPv4 only at once (NetworkManager does not wait for an Ip6Config).
    assert "the server does not offer IPv6 (it rejected IPv6CP)" in log, log
    ping(lab.pair.client, SERVER_TUNNEL_IP)


def test_routes_and_domain_the_server_pushes_are_applied_by_networkmanager(lab: Lab) -> None:
    lab.start_server("--push-route", "10.99.0.0/16", "--push-domain", "corp.test")
    client = lab.pair.client
    before = routes(client)
    vpn_add(lab.nm, VPN, lab.data(), ["password=alicepw"])
    lab.up()
    (tun,) = tun_links(client)
    # The DHCPINFORM answer comes after the call is up; NetworkManager applies the second Ip4Config.
    lab.nm.wait(
        lambda: "10.99.0.0/16" in client.run("ip", "route", "show", "dev", tun).stdout, "the pushed route"
    )
    assert any("10.99.0.0/16" in route for route in lab.nm.field(VPN, "IP4.ROUTE"))
    lab.nm.wait(lambda: lab.nm.field(VPN, "IP4.DOMAIN") == ["corp.test"], "the pushed domain")
    assert "search corp.test" in lab.nm.run("cat", "/run/NetworkManager/resolv.conf").stdout
    lab.nm.nmcli("connection", "down", VPN)
    lab.nm.wait(lambda: routes(client) == before, "NetworkManager's routes are gone")


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


@pytest.mark.parametrize("gateway", ["blackhole", "nothing-listens"])
def test_a_gateway_that_does_not_answer_fails_with_networkmanagers_connect_timeout(
    lab: Lab, gateway: str
) -> None:
    if gateway == "blackhole":
        address = "198.51.100.7"
        lab.pair.client.run("ip", "route", "add", "blackhole", f"{address}/32")
    else:
        address = lab.pair.server_ip  # no server started: the port refuses
    data = [f"gateway={address}:{PORT}", "user=alice", "never-default=yes", f"pin-sha256={lab.pin}"]
    # vpn.timeout bounds the attempts (NetworkManager's default is 60 s).
    vpn_add(lab.nm, VPN, data, ["password=alicepw"], "vpn.timeout", "10")
    output = lab.up(check=False)
    log = lab.nm.log.read_text()
    assert "connect timeout exceeded" in log, output + log
    assert "The connection attempt timed out" in output, output  # nmcli's words for connect-timeout
    # pysstp's line for each attempt, and the last one again when NetworkManager gave up.
    expected = (
        f"TCP: cannot connect to {address}:{PORT}: invalid argument"  # the kernel's answer to a blackhole
        if gateway == "blackhole"
        else f"TCP: {address}:{PORT} refused the connection"
    )
    assert expected in log and "dialing again until NetworkManager's connect timeout" in log, log
    lab.nm.wait(
        lambda: "gave up after" in lab.nm.log.read_text().split("connect timeout exceeded", 1)[1],
        "pysstp's last line after NetworkManager's timeout",
    )
    lab.nm.wait(lambda: not lab.nm.service_pids(), "the plugin service exits")
    assert tun_links(lab.pair.client) == []
