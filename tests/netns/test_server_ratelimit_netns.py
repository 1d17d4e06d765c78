"""Per-session rate limits on a real `pysstp server` (needs root and iperf3): a session limited each way
moves no more than the limit allows, and the packets beyond it are counted as rate_limit drops.

The bound is loose on purpose (below twice the limit): it holds on any machine if the policer works, and
on none if it does not, since an unlimited session here moves far more (docs/scaling.md, "Rate limits").
The drop counter shows that the policer, not a slow machine, held the rate down.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.connect_process import PYSSTP
from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, Pair, netns_pair, wait_for_text
from helpers.server_process import add_user, start_server, start_tunnel_client

__all__ = ["netns_pair"]

PORT = "8443"
TUN = "sstp-r0"
SERVER_TUNNEL_IP = "10.77.0.1"
LIMIT = 20_000_000
"""bit/s each way."""
SECONDS = 3

pytestmark = pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")


def iperf3(client: Namespace, *extra: str) -> float:
    """Bit/s the receiver counted in one TCP run through the tunnel."""
    result = client.run(
        "iperf3", "-c", SERVER_TUNNEL_IP, "-t", str(SECONDS), "-J", *extra, timeout=SECONDS + 60
    )  # fmt: skip
    return float(json.loads(result.stdout)["end"]["sum_received"]["bits_per_second"])


def test_a_limited_session_stays_below_its_limit_each_way(netns_pair: Pair, tmp_path: Path) -> None:
    cert, key, _ = make_certificate(tmp_path)
    users = tmp_path / "users.toml"
    add_user(users, "alice", "alicepw")
    control = str(tmp_path / "ctl.sock")
    start_server(
        netns_pair.server, tmp_path / "server.log",
        "--cert", str(cert), "--key", str(key), "--users", str(users),
        "--listen", netns_pair.server_ip, "--port", PORT, "--pool", "10.77.0.0/24", "--tun-name", TUN,
        "--control-socket", control, "--rate-in", "20M", "--rate-out", "20M",
    )  # fmt: skip
    client_log = tmp_path / "client.log"
    start_tunnel_client(
        netns_pair.client, client_log, netns_pair.server_ip, PORT, cert, "alice", "alicepw", "auto", "sstpr0"
    )
    wait_for_text(client_log, "UP ")
    iperf_log = tmp_path / "iperf3.log"
    netns_pair.server.start(["iperf3", "-s", "-B", SERVER_TUNNEL_IP, "--forceflush"], iperf_log)
    wait_for_text(iperf_log, "Server listening")

    upload = iperf3(netns_pair.client)
    download = iperf3(netns_pair.client, "-R")

    assert 0 < upload < 2 * LIMIT, upload
    assert 0 < download < 2 * LIMIT, download
    status = json.loads(netns_pair.server.run(PYSSTP, "status", "--socket", control, "--json").stdout)
    [session] = status["sessions"]
    assert (session["limit_in"], session["limit_out"]) == (LIMIT, LIMIT)
    assert session["rate_drops"] > 0, session
    assert status["server"]["drops"]["rate_limit"] == session["rate_drops"]
