"""SIGINT to ``pysstp connect --default-route --dns`` in every phase of the dial and after it leaves
nothing behind: no TUN, address, route (IPv4 or IPv6, any table) or resolv.conf change (needs root).

Each phase is held open by a server that stops answering there: an nftables rule that drops the SYNs
(TCP), a socket that never speaks TLS (TLS), and the scripted SoftEther-like server of
tests/helpers/softether_like.py over real TLS that goes silent after a chosen step (HTTP, SSTP, LCP, auth,
IPCP). The client logs each step when it completes, so the step before the stalled one in its log says the
client is now waiting in it.
The last case is the real ``pysstp server`` with the call up.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import pytest

from test_client_netns import CLIENT_TUN, PYSSTP, Setup, setup, wait_until

from helpers.namespaces import netns_pair, network_state

__all__ = ["netns_pair", "setup"]

STUB_PORT = "9"
TESTS = Path(__file__).parents[1]

STUB = """\
import socket, ssl, sys, time
sys.path.insert(0, sys.argv[1])
from helpers.softether_like import SoftEtherLikeServer
address, port, cert, key, stall = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
# After which step the server goes silent (the client then waits in the next one).
silent_after = {
    "tls": lambda peer: True,
    "http": lambda peer: peer.http_done,
    "sstp": lambda peer: peer.connected,
    "lcp": lambda peer: peer.lcp_ack_sent and peer.lcp_ack_received,
    "auth": lambda peer: peer.authenticated,
}
listener = socket.create_server((address, port))
print("ready", flush=True)
conn, _ = listener.accept()
if stall == "tcp":
    time.sleep(120)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
conn = context.wrap_socket(conn, server_side=True)
peer = SoftEtherLikeServer()
while not silent_after[stall](peer) and (data := conn.recv(65536)):
    conn.sendall(peer.receive(data, time.monotonic()))
time.sleep(120)
"""

STALLS = {
    # phase the client is stopped in: (what the stub server does, the client's last log tag before it)
    "TLS": ("tcp", "TCP"),
    "HTTP": ("tls", "TLS"),
    "SSTP": ("http", "HTTP"),
    "LCP": ("sstp", "SSTP"),
    "auth": ("lcp", "LCP"),
    "IPCP": ("auth", "auth"),
}


def start_client(setup: Setup, port: str) -> tuple[Path, object]:
    log = setup.tmp / "client.log"
    process = setup.pair.client.start(
        [
            PYSSTP, "connect", f"{setup.pair.server_ip}:{port}", "--user", "alice",
            "--password-file", str(setup.tmp / "alice.pw"), "--ca-file", str(setup.cert),
            "--sni", "sstp.test", "--ifname", CLIENT_TUN, "--default-route", "--dns",
        ],
        log,
    )  # fmt: skip
    return log, process


def interrupt(setup: Setup, process: object, log: Path, before: dict[str, object], expect: int = 130) -> None:
    """SIGINT, a clean exit (130 before the call is up, as shells expect), and the namespace exactly as
    before."""
    setup.stop(process, signal.SIGINT, log, expect)  # type: ignore[arg-type]
    assert network_state(setup.pair.client) == before, log.read_text()


def test_sigint_during_tcp_connect(setup: Setup) -> None:
    server = setup.pair.server
    # The SYNs are dropped, so the client waits in connect(); the counter says that it has started.
    server.run(
        "nft", f"add table inet stall; add chain inet stall input {{ type filter hook input priority 0; }}; "
        f"add rule inet stall input tcp dport {STUB_PORT} counter drop",
    )  # fmt: skip
    before = network_state(setup.pair.client)
    log, process = start_client(setup, STUB_PORT)

    def syn_dropped() -> bool:
        counted = re.search(
            r"counter packets (\d+)", server.run("nft", "list", "table", "inet", "stall").stdout
        )
        return counted is not None and int(counted.group(1)) > 0

    wait_until(syn_dropped, "a dropped SYN", log)
    assert " TCP " not in log.read_text()
    interrupt(setup, process, log, before)


@pytest.mark.parametrize("phase", list(STALLS))
def test_sigint_while_the_server_stalls(setup: Setup, phase: str) -> None:
    stall, last_tag = STALLS[phase]
    key = setup.cert.with_name("key.pem")
    assert key.exists(), key
    stub_log = setup.tmp / "stub.log"
    setup.pair.server.start(
        [
            sys.executable, "-c", STUB, str(TESTS), setup.pair.server_ip, STUB_PORT,
            str(setup.cert), str(key), stall,
        ],
        stub_log,
    )  # fmt: skip
    wait_until(lambda: "ready" in stub_log.read_text(), "the stub server", stub_log)
    before = network_state(setup.pair.client)
    log, process = start_client(setup, STUB_PORT)
    wait_until(lambda: f" {last_tag} " in log.read_text(), last_tag, log)
    time.sleep(0.2)  # let the client send into the silence
    assert "connected: " not in log.read_text()
    interrupt(setup, process, log, before)


def test_sigint_when_connected(setup: Setup) -> None:
    before = network_state(setup.pair.client)
    log, process = start_client(setup, "8443")
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    interrupt(setup, process, log, before, expect=0)
