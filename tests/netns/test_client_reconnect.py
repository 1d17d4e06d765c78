"""``pysstp connect --reconnect`` against a real ``pysstp server`` that dies and comes back (needs root).

The server is killed with SIGKILL, so it cannot end the call in order: the client only learns of it from
TCP. While the server is down, the client keeps its TUN and routes, so with ``--default-route`` traffic
goes into the (dead) tunnel and is dropped there; an nftables counter on the client's veth proves that
nothing but the dials to the server leaves the namespace meanwhile.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator

import pytest

from test_client_netns import (
    CLIENT_TUN,
    SERVER_TUN,
    SERVER_TUNNEL_IP,
    Setup,
    ping,
    route_device,
    setup,
    wait_until,
)

from helpers.connect_process import calls_up
from helpers.namespaces import Namespace, netns_pair, network_state

__all__ = ["netns_pair", "setup"]

OUTSIDE = "10.200.99.1"
"""An address that only the default route reaches: with the tunnel's routes it must go into the TUN."""
LEAK_TABLE = "pysstp_leak"


def server_process(setup: Setup) -> subprocess.Popen[str]:
    """The ``pysstp server`` the ``setup`` fixture started (the first process in the server namespace)."""
    process = setup.pair.server.processes[0]
    assert process.poll() is None, "the server is not running"
    return process


def restart_server(setup: Setup) -> None:
    """Start the server again with the arguments it had, and wait until it listens."""
    old = setup.pair.server.processes[0]
    log = setup.tmp / "server-again.log"
    # ``ip netns exec NAME ARGS...``: drop the wrapper, Namespace.start adds it back.
    args = [str(arg) for arg in old.args[4:]]  # type: ignore[index]
    setup.pair.server.start(args, log)
    wait_until(lambda: "listening on" in log.read_text(), "the restarted server", log)


def kill_server(setup: Setup) -> None:
    """SIGKILL the server (by PID): no CALL_DISCONNECT, no LCP Terminate, just the kernel closing TCP."""
    process = server_process(setup)
    # ``ip netns exec`` execs the command, so the PID is the server's own.
    process.send_signal(signal.SIGKILL)
    process.wait(10)


@pytest.fixture
def leak_counter(setup: Setup) -> Iterator[tuple[Setup, str]]:
    """An nftables counter in the client namespace for packets out of the veth to anything but the
    server. The table lives in the namespace, so deleting the namespace removes it too."""
    client = setup.pair.client
    veth = setup.pair.client_link
    rules = (
        f"table inet {LEAK_TABLE} {{\n"
        f"  counter leaked {{ }}\n"
        f"  chain out {{\n"
        f"    type filter hook output priority 0; policy accept;\n"
        f'    oifname "{veth}" meta nfproto ipv4 ip daddr != {setup.pair.server_ip} counter name leaked\n'
        f"  }}\n"
        f"}}\n"
    )
    rules_file = setup.tmp / "leak.nft"
    rules_file.write_text(rules)
    client.run("nft", "-f", str(rules_file))
    yield setup, veth


def leaked(ns: Namespace) -> int:
    """Packets counted by the leak counter so far."""
    listing = json.loads(ns.run("nft", "-j", "list", "counter", "inet", LEAK_TABLE, "leaked").stdout)
    (counter,) = [item["counter"] for item in listing["nftables"] if "counter" in item]
    return int(counter["packets"])


def test_reconnects_after_the_server_is_killed_without_leaking(leak_counter: tuple[Setup, str]) -> None:
    setup, veth = leak_counter
    client = setup.pair.client
    # The counter must see a leak when there is one: without the tunnel, this ping goes out of the veth.
    client.run("ping", "-c", "1", "-W", "1", OUTSIDE, check=False)
    assert leaked(client) == 1
    process, log = setup.start_client("--ca-file", str(setup.cert), "--reconnect", "--default-route")
    wait_until(lambda: calls_up(log) == 1, "the tunnel", log)
    ping(client, SERVER_TUNNEL_IP)
    with_tunnel = network_state(client)
    # Traffic to the outside all the time: with the tunnel up, and above all while it is down.
    background_log = setup.tmp / "background.log"
    background = client.start(["ping", "-i", "0.1", "-W", "1", OUTSIDE], background_log)
    try:
        wait_until(lambda: "PING" in background_log.read_text(), "ping to start", background_log)
        before = leaked(client)

        kill_server(setup)
        wait_until(
            lambda: "connection to the server was lost" in log.read_text(), "the client to notice", log
        )
        wait_until(lambda: "refused the connection" in log.read_text(), "a refused dial", log)
        during = network_state(client)
        # TUN, its address and every route stay while the client dials again.
        assert during["links"] == with_tunnel["links"]
        assert during["routes"] == with_tunnel["routes"]
        assert during["addresses"] == with_tunnel["addresses"]
        assert route_device(client, OUTSIDE) == CLIENT_TUN

        restart_server(setup)
        # Back-off after n failures is at most 2**(n-1) s; a few seconds of refused dials keep it short.
        wait_until(lambda: calls_up(log) == 2, "the reconnect", log, timeout=30)
        assert leaked(client) == before, f"packets left {veth} for somewhere else than the server"
    finally:
        background.send_signal(signal.SIGTERM)
        background.wait(10)
    ping(client, SERVER_TUNNEL_IP)  # through the new call
    assert route_device(client, setup.pair.server_ip) == veth  # still pinned outside the tunnel
    assert process.poll() is None
    setup.stop(process, signal.SIGTERM, log)


def test_max_attempts_gives_up_and_leaves_nothing(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    kill_server(setup)
    # What the killed server leaves for `pysstp server --cleanup` stays in the test's own directory.
    assert len(list((setup.tmp / "server.state").glob(f"{SERVER_TUN}@*.json"))) == 1
    process, log = setup.start_client("--ca-file", str(setup.cert), "--reconnect", "--max-attempts", "2")
    process.wait(20)
    text = log.read_text()
    assert process.returncode == 1, text
    assert "gave up after 2 attempts" in text and "refused the connection" in text
    assert network_state(client) == before


def test_max_attempts_after_being_up_gives_up_and_leaves_nothing(setup: Setup) -> None:
    client = setup.pair.client
    before = network_state(client)
    process, log = setup.start_client(
        "--pin-sha256", setup.pin, "--reconnect", "--max-attempts", "2", "--default-route"
    )
    wait_until(lambda: "connected: " in log.read_text(), "the tunnel", log)
    ping(client, SERVER_TUNNEL_IP)
    kill_server(setup)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the client did not give up:\n{log.read_text()}") from None
    text = log.read_text()
    assert process.returncode == 1, text
    assert "gave up after 2 attempts" in text
    assert network_state(client) == before
