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

from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, Pair, netns_pair, stop_process
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
        self.server = start_server(
            self.pair.server, self.tmp / "server.log",
            "--cert", str(self.cert), "--key", str(self.key), "--users", str(self.users),
            "--listen", self.pair.server_ip, "--port", PORT, "--pool", POOL, "--dns", SERVER_TUNNEL_IP,
            "--tun-name", "sstp-s0", "--forwarding", "route", *extra,
        )  # fmt: skip

    def stop_server(self) -> None:
        assert self.server is not None
        stop_process(self.server)  # type: ignore[arg-type]

    def data(self, *extra: str) -> list[str]:
        """``vpn.data`` items for alice against the lab's server."""
        return [f"gateway={self.pair.server_ip}:{PORT}", "user=alice", f"pin-sha256={self.pin}",
                "never-default=yes", *extra]  # fmt: skip

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
        made.start_server()
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
    client = lab.pair.client
    before_links, before_routes = tun_links(client), routes(client)
    vpn_add(lab.nm, VPN, lab.data(), ["password=alicepw"])
    lab.up()
    assert lab.nm.field(VPN, "GENERAL.STATE") == ["activated"]
    (address,) = lab.nm.field(VPN, "IP4.ADDRESS")
    assert address.startswith("10.78.0.") and address.endswith("/32"), address
    assert lab.nm.field(VPN, "IP4.DNS") == [SERVER_TUNNEL_IP]
    (tun,) = tun_links(client)
    assert address.split("/")[0] in client.run("ip", "addr", "show", tun).stdout
    ping(client, SERVER_TUNNEL_IP)
    lab.nm.nmcli("connection", "down", VPN)
    lab.nm.wait(lambda: tun_links(client) == before_links, "the TUN is gone")
    lab.nm.wait(lambda: routes(client) == before_routes, "NetworkManager's routes are gone")
    lab.nm.wait(lambda: not lab.nm.service_pids(), "the plugin service exits")
