"""The paths under test, each brought up in network namespaces and torn down by PID and by name.

* ``veth``: the two namespaces' veth pair, no tunnel (the physical ceiling);
* ``relay``: benchmarks/relay.py on both ends (the ceiling of a Python TUN-TLS-TUN tunnel);
* ``pysstp``: ``pysstp server`` and ``pysstp connect``;
* ``softether``: the same ``pysstp connect`` against a private SoftEther server (tests/helpers/softether.py),
  whose hub is bridged to a veth into a third namespace where iperf3 listens.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import ROOT
from benchmarks.measure import IPERF_PORT, Target

from helpers.connect_process import PYSSTP
from helpers.loopback import make_certificate
from helpers.namespaces import Namespace, Pair, delete_namespace, run, wait_for_text
from helpers.server_process import add_user, start_server
from helpers.softether import HUB, PASSWORD, SERVER_NAME, USER, running_softether

PYTHON = sys.executable
RELAY_PORT = 4433
RELAY_SERVER, RELAY_CLIENT = "10.203.0.2", "10.203.0.1"
POOL = "10.77.0.0/24"
PYSSTP_SERVER_ADDRESS = "10.77.0.1"
SOFTETHER_LAN = "192.168.30.2"
"""iperf3's address behind SoftEther: a namespace bridged into the hub, inside SecureNAT's network."""
START_TIMEOUT = 30.0
TUNNEL_MTU = 1400


def start_iperf_server(namespace: Namespace, work: Path) -> None:
    """An iperf3 server on every address of ``namespace``; it serves one test after another."""
    log = work / f"iperf3-{namespace.name}.log"
    namespace.start(["iperf3", "-s", "--forceflush", "-p", str(IPERF_PORT)], log)
    wait_for_text(log, "Server listening", START_TIMEOUT)


def veth(pair: Pair) -> Target:
    """Plain veth between the two namespaces."""
    return Target("veth", pair.client, pair.server, pair.server_ip)


def relay(pair: Pair, work: Path, uvloop: bool) -> Target:
    """The reference relay, server end in the server namespace."""
    cert, key, _ = make_certificate(work, "relay.test")
    module = [PYTHON, "-m", "benchmarks.relay", *(["--uvloop"] if uvloop else [])]
    server_log, client_log = work / "relay-server.log", work / "relay-client.log"
    server = pair.server.start(
        [
            *module,
            "server",
            "--listen",
            f"{pair.server_ip}:{RELAY_PORT}",
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--tun",
            "rly0",
            "--address",
            f"{RELAY_SERVER}/24",
        ],
        server_log,
    )
    wait_for_text(server_log, "listening", START_TIMEOUT)
    client = pair.client.start(
        [
            *module,
            "client",
            "--connect",
            f"{pair.server_ip}:{RELAY_PORT}",
            "--tun",
            "rly0",
            "--address",
            f"{RELAY_CLIENT}/24",
        ],
        client_log,
    )
    wait_for_text(client_log, "connected", START_TIMEOUT)
    return Target(
        "relay", pair.client, pair.server, RELAY_SERVER, {"server": server.pid, "client": client.pid}
    )


def pysstp(pair: Pair, work: Path) -> Target:
    """``pysstp server`` in the server namespace, ``pysstp connect`` in the client namespace."""
    cert, key, _ = make_certificate(work, SERVER_NAME)
    users = work / "users.toml"
    password = add_user(users, USER, PASSWORD)
    server_log, client_log = work / "pysstp-server.log", work / "pysstp-client.log"
    server = start_server(
        pair.server, server_log,
        "--cert", str(cert), "--key", str(key), "--users", str(users),
        "--listen", pair.server_ip, "--port", "443", "--pool", POOL, "--ipv6", "off",
        timeout=START_TIMEOUT,
    )  # fmt: skip
    client = pair.client.start(connect_args(pair.server_ip, cert, password, "sstp0"), client_log)
    wait_for_text(client_log, " connected: ", START_TIMEOUT)
    return Target(
        "pysstp",
        pair.client,
        pair.server,
        PYSSTP_SERVER_ADDRESS,
        {"server": server.pid, "client": client.pid},
    )


def connect_args(host: str, cert: Path, password: Path, ifname: str) -> list[str]:
    """``pysstp connect`` as the benchmark user, trusting ``cert``, IPv4 only."""
    return [
        PYSSTP, "connect", host, "--user", USER, "--password-file", str(password), "--ca-file", str(cert),
        "--sni", SERVER_NAME, "--ifname", ifname, "--no-ipv6",
    ]  # fmt: skip


@contextmanager
def softether(tag: str, work: Path) -> Iterator[Target]:
    """A private SoftEther (raises SoftEtherUnavailable where it cannot run), its hub bridged to a LAN
    namespace where iperf3 listens, and ``pysstp connect`` dialing it from SoftEther's own namespace
    (it listens on 127.0.0.1 only)."""
    with running_softether() as server:
        lan = Namespace(f"pysstp-sl{tag}")
        try:
            lan.add()
            bridge, far = f"seb{tag}"[:15], f"sel{tag}"[:15]
            run(
                "ip", "link", "add", bridge, "netns", server.namespace.name, "type", "veth",
                "peer", "name", far, "netns", lan.name,
            )  # fmt: skip
            lan.run("ip", "addr", "add", f"{SOFTETHER_LAN}/24", "dev", far)
            # As on a real LAN behind a VPN server, packets must fit the tunnel: SoftEther drops what
            # exceeds the client's PPP MRU rather than sending ICMP, so TCP from the LAN would stall.
            lan.run("ip", "link", "set", far, "mtu", str(TUNNEL_MTU))
            # SoftEther's bridge reads frames with a raw socket and drops anything above the MTU, so the
            # LAN's TCP must not hand it 64 KB segmentation-offload super-packets.
            lan.run("ethtool", "-K", far, "tso", "off", "gso", "off")
            lan.run("ip", "link", "set", far, "up")
            server.namespace.run("ip", "link", "set", bridge, "up")
            server.vpncmd(f"BridgeCreate {HUB} /DEVICE:{bridge} /TAP:no")
            start_iperf_server(lan, work)
            password = work / "password-softether"
            password.write_text(f"{PASSWORD}\n")
            log = work / "softether-client.log"
            client = server.namespace.start(
                [
                    *connect_args(f"127.0.0.1:{server.port}", server.cert, password, "sse0"),
                    "--route",
                    f"{SOFTETHER_LAN}/32",
                ],
                log,
            )
            wait_for_text(log, " connected: ", START_TIMEOUT)
            assert server.process is not None
            processes = {"server": server.process.pid, "client": client.pid}
            yield Target("softether", server.namespace, lan, SOFTETHER_LAN, processes)
        finally:
            delete_namespace(lan)


def environment() -> dict[str, str]:
    """Facts about the machine the figures come from."""
    return {
        "kernel": os.uname().release,
        "cpus": str(os.cpu_count()),
        "python": sys.version.split()[0],
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "root": str(ROOT),
    }
