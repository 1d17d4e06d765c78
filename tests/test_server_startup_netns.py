"""`pysstp server` start-up and shut-down against a real namespace (needs root): refusals that name the
real cause, one nftables table per server, and the state file that lets a later start undo a crash."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connect_process import PYSSTP
from loopback import make_certificate
from namespaces import Pair, netns_pair, stop_process
from server_process import start_server

__all__ = ["netns_pair"]


@dataclass
class Host:
    """The server namespace of a pair, with a certificate, an empty user database and a state directory."""

    pair: Pair
    tmp: Path
    cert: Path
    key: Path
    users: Path

    @property
    def veth(self) -> str:
        """The server's veth, the interface that holds ``pair.server_ip``."""
        for link in json.loads(self.pair.server.run("ip", "-j", "addr").stdout):
            if any(a["local"] == self.pair.server_ip for a in link["addr_info"]):
                return str(link["ifname"])
        raise AssertionError("no veth with the server's address")

    def args(self, tun: str, port: int, *extra: str) -> list[str]:
        return [
            "--cert", str(self.cert), "--key", str(self.key), "--users", str(self.users),
            "--listen", self.pair.server_ip, "--port", str(port), "--tun-name", tun,
            "--control-socket", str(self.tmp / f"{tun}.sock"),
            *extra,
        ]  # fmt: skip

    def start(self, tun: str, port: int, *extra: str) -> subprocess.Popen[str]:
        return start_server(self.pair.server, self.tmp / f"{tun}.log", *self.args(tun, port, *extra))

    def refusal(self, *args: str) -> str:
        """Run ``pysstp server ARGS`` to its end; it must fail with exactly one line, which is returned."""
        result = self.pair.server.run(PYSSTP, "server", *args, check=False)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]

    def tables(self) -> str:
        return self.pair.server.run("nft", "list", "tables").stdout

    def links(self) -> str:
        return self.pair.server.run("ip", "link", "show").stdout


@pytest.fixture
def host(netns_pair: Pair, tmp_path: Path) -> Iterator[Host]:
    cert, key, _ = make_certificate(tmp_path)
    users = tmp_path / "users.toml"
    users.write_text("")
    yield Host(netns_pair, tmp_path, cert, key, users)


def test_two_servers_keep_their_own_nat_and_mss_rules(host: Host) -> None:
    first = host.start("sstp-a", 8443, "--pool", "10.77.0.0/24", "--forwarding", "nat", "--egress", host.veth)
    second = host.start("sstp-b", 8444, "--pool", "10.78.0.0/24", "--forwarding", "nat", "--egress", host.veth)
    assert "pysstp-sstp-a" in host.tables() and "pysstp-sstp-b" in host.tables()
    stop_process(second)
    assert second.returncode == 0
    assert "pysstp-sstp-b" not in host.tables()
    rules = host.pair.server.run("nft", "list", "table", "inet", "pysstp-sstp-a").stdout
    assert f'ip saddr 10.77.0.0/24 oifname "{host.veth}" masquerade' in rules
    assert 'iifname "sstp-a" tcp flags syn tcp option maxseg size set rt mtu' in rules
    stop_process(first)
    assert "pysstp" not in host.tables()
