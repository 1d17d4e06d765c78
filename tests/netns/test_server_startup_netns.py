"""`pysstp server` start-up and shut-down against a real namespace (needs root): refusals that name the
real cause, one nftables table per server, and the state file that lets a later start undo a crash."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.connect_process import PYSSTP
from helpers.loopback import make_certificate
from helpers.namespaces import Pair, netns_pair, run, skip_unless_netns, stop_process
from helpers.server_process import start_server

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
            "--control-socket", str(self.tmp / f"{tun}.sock"), "--state-dir", str(self.state_dir),
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

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    def forwarding(self) -> str:
        return self.pair.server.run("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()

    def tables(self) -> str:
        return self.pair.server.run("nft", "list", "tables").stdout

    def links(self) -> list[str]:
        return [link["ifname"] for link in json.loads(self.pair.server.run("ip", "-j", "link").stdout)]


@pytest.fixture
def host(netns_pair: Pair, tmp_path: Path) -> Iterator[Host]:
    cert, key, _ = make_certificate(tmp_path)
    users = tmp_path / "users.toml"
    users.write_text("")
    users.chmod(0o600)
    yield Host(netns_pair, tmp_path, cert, key, users)


def test_two_servers_keep_their_own_nat_and_mss_rules(host: Host) -> None:
    first = host.start("sstp-a", 8443, "--pool", "10.77.0.0/24", "--forwarding", "nat", "--egress", host.veth)
    second = host.start(
        "sstp-b", 8444, "--pool", "10.78.0.0/24", "--forwarding", "nat", "--egress", host.veth
    )
    assert "pysstp-sstp-a" in host.tables() and "pysstp-sstp-b" in host.tables()
    stop_process(second)
    assert second.returncode == 0
    assert "pysstp-sstp-b" not in host.tables()
    rules = host.pair.server.run("nft", "list", "table", "inet", "pysstp-sstp-a").stdout
    assert f'ip saddr 10.77.0.0/24 oifname "{host.veth}" masquerade' in rules
    assert 'iifname "sstp-a" tcp flags syn tcp option maxseg size set rt mtu' in rules
    stop_process(first)
    assert "pysstp" not in host.tables()


def test_a_pool_that_overlaps_a_network_of_the_host_is_refused(host: Host) -> None:
    line = host.refusal(*host.args("sstp-c", 8443, "--pool", "10.200.7.0/24"))
    assert line.startswith("pysstp: pool 10.200.7.0/24 (server 10.200.7.1) overlaps 10.200.7.0/24 on ")
    assert "sstp-c" not in host.links()


def test_a_named_pool_that_overlaps_a_network_of_the_host_is_refused(host: Host) -> None:
    line = host.refusal(*host.args("sstp-c", 8443, "--named-pool", "office=10.200.7.0/25"))
    assert line.startswith("pysstp: pools.office 10.200.7.0/25 overlaps 10.200.7.0/24 on "), line
    assert "sstp-c" not in host.links()


def test_a_missing_egress_interface_is_refused(host: Host) -> None:
    line = host.refusal(*host.args("sstp-c", 8443, "--forwarding", "nat", "--egress", "nosuch0"))
    assert line == (
        "pysstp: forwarding.egress: this host has no interface nosuch0 (see ip link); "
        "name the one that leads to the clients' destinations"
    )
    assert "sstp-c" not in host.links() and "pysstp" not in host.tables()


def test_a_listen_address_the_host_does_not_have_is_named(host: Host) -> None:
    line = host.refusal(*host.args("sstp-c", 8443, "--listen", "192.0.2.9"))
    assert line == (
        "pysstp: cannot listen on 192.0.2.9 port 8443: no interface of this host has that address "
        "(see ip addr); listen on one it has, or on 0.0.0.0 and ::"
    )
    assert "sstp-c" not in host.links()


def test_a_tun_clone_device_only_root_may_open_names_its_permissions(tmp_path: Path) -> None:
    """CAP_NET_ADMIN does not open a /dev/net/tun of mode 0600 that belongs to someone else: the file's
    permissions are the cause, and the message must say so rather than "run with CAP_NET_ADMIN"."""
    skip_unless_netns()
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (Debian package util-linux) to drop CAP_DAC_OVERRIDE")
    node = tmp_path / "tun"
    os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(10, 200))  # the TUN clone device's numbers
    os.chown(node, 65534, 65534)
    code = (
        "import sys\n"
        "from pysstp.errors import SystemSetupError\n"
        "from pysstp.net import tun\n"
        "tun.TUN_PATH = sys.argv[1]\n"
        "try:\n"
        "    tun.TunDevice.open('pt%d')\n"
        "except SystemSetupError as exc:\n"
        "    print(exc)\n"
    )
    # Root keeps CAP_NET_ADMIN but loses what lets it read and write any file regardless of its mode.
    without_dac = [
        "--inh-caps=-dac_override,-dac_read_search",
        "--bounding-set=-dac_override,-dac_read_search",
    ]
    result = run("setpriv", *without_dac, "--", sys.executable, "-c", code, str(node))
    assert result.stdout == (
        f"cannot open {node}: its file permissions (mode 0600, owner uid 65534, group gid 65534) do not "
        f"let uid 0 read and write it; make it mode 0666 as most systems ship it (chmod 0666 {node}), "
        "or run as root\n"
    )


def cleanup(host: Host) -> str:
    """``pysstp server --cleanup`` for sstp-k; its output."""
    state_dir = str(host.state_dir)
    return host.pair.server.run(
        PYSSTP, "server", "--tun-name", "sstp-k", "--state-dir", state_dir, "--cleanup"
    ).stdout


def test_cleanup_after_sigkill_puts_forwarding_back_and_removes_the_table(host: Host) -> None:
    assert host.forwarding() == "0"
    server = host.start("sstp-k", 8443, "--forwarding", "nat", "--egress", host.veth)
    (state,) = host.state_dir.iterdir()
    assert state.name.startswith("sstp-k@")  # not in PID 1's namespace
    kinds = [change["kind"] for change in json.loads(state.read_text())["changes"]]
    assert kinds == ["tun", "address", "sysctl", "nftables"]
    # While the server runs, its state file is not anybody else's to undo.
    line = host.refusal(*host.args("sstp-k", 8444, "--cleanup"))
    assert line == f"pysstp: {state} is held by a running pysstp server; stop it first, or give this one " + (
        "another tun_name"
    )
    server.kill()
    server.wait()
    assert host.forwarding() == "1" and "pysstp-sstp-k" in host.tables()

    assert cleanup(host) == (
        "undone: nftables table inet pysstp-sstp-k, sysctl net.ipv4.ip_forward=0, "
        "address 10.77.0.1/24 dev sstp-k, TUN device sstp-k\n"
    )
    assert host.forwarding() == "0"
    assert "pysstp" not in host.tables() and "sstp-k" not in host.links()
    assert list(host.state_dir.iterdir()) == []
    assert cleanup(host) == f"nothing to clean up: no state file {state}\n"


def test_a_restart_after_sigkill_undoes_what_the_killed_server_left(host: Host) -> None:
    server = host.start("sstp-k", 8443, "--forwarding", "nat", "--egress", host.veth)
    server.kill()
    server.wait()
    server = host.start("sstp-k", 8443, "--no-mss-clamp")  # route mode, no clamp: no table of its own
    log = (host.tmp / "sstp-k.log").read_text()
    assert "undid what a server on sstp-k left behind: nftables table inet pysstp-sstp-k, " in log
    assert "pysstp-sstp-k" not in host.tables()
    stop_process(server)
    assert server.returncode == 0
    assert host.forwarding() == "0" and "pysstp" not in host.tables()
    assert list(host.state_dir.iterdir()) == []
