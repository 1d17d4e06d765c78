"""SIGHUP to a real `pysstp server --config server.toml` process (needs root): the file is read again."""

from __future__ import annotations

import signal
from pathlib import Path

from helpers.loopback import make_certificate
from helpers.namespaces import Pair, netns_pair, wait_for_text
from helpers.server_process import add_user, start_server, start_tunnel_client

__all__ = ["netns_pair"]

PORT = "8443"

CONFIG = """\
users = "users.toml"
tun_name = "sstp-r0"
[tls]
cert = "cert.pem"
key = "key.pem"
[pool]
network = "10.77.0.0/24"
dns = ["10.77.0.1"]
"""


def start_client(pair: Pair, tmp: Path, name: str) -> Path:
    log = tmp / f"client-{name}.log"
    start_tunnel_client(
        pair.client, log, pair.server_ip, PORT, tmp / "cert.pem", "alice", "alicepw", "auto", name
    )
    return log


def test_sighup_rereads_server_toml_names_restart_settings_and_keeps_a_broken_one(
    netns_pair: Pair, tmp_path: Path
) -> None:
    make_certificate(tmp_path)
    add_user(tmp_path / "users.toml", "alice", "alicepw")
    config = tmp_path / "server.toml"
    config.write_text(CONFIG)
    log = tmp_path / "server.log"
    server = start_server(
        netns_pair.server, log, "--config", str(config), "--listen", netns_pair.server_ip, "--port", PORT,
        "--control-socket", str(tmp_path / "ctl.sock"),
    )  # fmt: skip
    first = start_client(netns_pair, tmp_path, "sstpr0")
    wait_for_text(first, "UP ")

    config.write_text(CONFIG.replace("sstp-r0", "sstp-r1").replace("10.77.0.1", "9.9.9.9"))
    server.send_signal(signal.SIGHUP)
    wait_for_text(log, "changed: pool.dns", process=server)
    assert "reload: tun_name changed; restart to apply" in log.read_text()

    config.write_text(CONFIG.replace("[pool]", "[pool]\nnetmask = 24"))
    server.send_signal(signal.SIGHUP)
    wait_for_text(log, "keeping the running configuration", process=server)
    second = start_client(netns_pair, tmp_path, "sstpr1")  # the server goes on as before
    wait_for_text(second, "UP ")
    assert "DOWN" not in first.read_text()
