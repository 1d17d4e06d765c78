"""Two ``pysstp server`` nodes behind HAProxy from Debian (issue 13, "Proven with real parts").

The farm: a namespace for HAProxy (the load balancer, clients dial its address ``VIP``), a namespace for
each node behind it, and a namespace for each client, every one on its own veth to the load balancer,
which routes. HAProxy runs in TCP mode with ``send-proxy-v2`` and health checks (``check``) on both
nodes, so each node must take the client's real address from the PROXY v2 header and answer HAProxy's
checks (a PROXY v2 LOCAL header, then the close) without a word; HAProxy also terminates TLS in front of a
node that speaks plain HTTP (``tls.offload``) with HAProxy's certificate for the crypto binding, for
``pysstp connect`` in a client namespace and for sstpc, which runs in the test process (see
:mod:`interop_sstpc`) on a link of its own to the load balancer. The configurations here are the ones
docs/scaling.md shows.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import itertools
import json
import os
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pysstp.aaa.pki import Issued, issue_server
from pysstp.ppp.events import Ipv4Up
from pysstp.server.ipv6 import internet_checksum
from test_interop_sstpc import eventually, stack

from helpers import certlab
from helpers.connect_process import PYSSTP, ConnectProcess, calls_up, wait_until
from helpers.haproxy import Backend, HAProxy, skip_unless_haproxy
from helpers.interop_sstpc import DelayProxy, SstpcOptions, start_sstpc
from helpers.interop_sstpc import skip_reason as sstpc_skip_reason
from helpers.namespaces import Namespace, attach_lan, delete_namespace, run
from helpers.server_process import add_user, start_server

__all__ = ["stack"]  # fixture

VIP = "10.210.0.1"
"""HAProxy's address, which the clients dial (on the load balancer's loopback, routed to by each client)."""
PORT = 443
PLAIN_PORT = 8080
"""Where a node with TLS offload listens for HAProxy's plain HTTP."""
SERVER_TUN = "sstp-h0"
CLIENT_TUN = "sstpc-h0"
CHECKS = "check inter 250ms"
"""HAProxy's health check: a TCP connect (with ``send-proxy-v2``, a PROXY v2 LOCAL header) every 250 ms."""
CONNECTIONS_PER_MINUTE = 5
"""Each node's per-source connection limit: HAProxy's checks overrun it within seconds if they count."""
DEADLINE = 60.0
"""Generous bound for a call to come up again on the other node (it takes seconds)."""
STEP_TIMEOUT = 20.0

_counter = itertools.count()


@functools.cache
def certificate() -> Issued:
    """The certificate for HAProxy's address, from the test CA (certlab): the nodes' own, and HAProxy's
    where it terminates TLS."""
    return issue_server(certlab.lab().ca, VIP)


@dataclass
class Node:
    """A namespace behind the load balancer, for one ``pysstp server``."""

    name: str
    namespace: Namespace
    address: str
    balancer_address: str
    """The load balancer's address on this node's link: where HAProxy's connections come from."""
    pool: str
    tunnel_address: str
    tmp: Path
    process: subprocess.Popen[str] | None = None

    @property
    def log(self) -> Path:
        """The server's output."""
        return self.tmp / f"server-{self.name}.log"

    @property
    def control_socket(self) -> Path:
        """The server's control socket."""
        return self.tmp / f"ctl-{self.name}.sock"

    def sessions(self) -> list[dict[str, Any]]:
        """``pysstp status --json``: the node's calls."""
        answer = run(PYSSTP, "status", "--socket", str(self.control_socket), "--json")
        return list(json.loads(answer.stdout)["sessions"])

    def peers(self) -> dict[str, str]:
        """The address each user's call up on this node comes from, as the node sees it."""
        return {
            session["user"]: session["peer"].rsplit(":", 1)[0] for session in self.sessions() if session["up"]
        }

    def warnings(self) -> list[str]:
        """The server's log lines at warning level or above (it logs at debug level)."""
        return [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if " WARNING " in line or " ERROR " in line or " CRITICAL " in line
        ]


@dataclass
class Client:
    """A namespace of its own for one user's ``pysstp connect`` (or sstpc), at ``address``."""

    user: str
    password: str
    namespace: Namespace
    address: str
    connect: ConnectProcess | None = None


@dataclass
class Farm:
    """The load balancer's namespace, the nodes behind it and the clients in front of it."""

    balancer: Namespace
    nodes: list[Node]
    tmp: Path
    tag: str
    users: Path
    clients: list[Client] = field(default_factory=list)
    haproxy: HAProxy | None = None
    links: list[str] = field(default_factory=list)
    """Links in the test process's own namespace (see :meth:`link_test_process`)."""

    def start_node(self, node: Node, *tls: str) -> None:
        """Start ``pysstp server`` on ``node`` with ``tls`` (its own certificate, or TLS offload),
        taking PROXY v2 headers from HAProxy only; strict limits, so that a health check counted as a
        connection or a failed login shows as a warning."""
        node.process = start_server(
            node.namespace, node.log, *tls,
            "--users", str(self.users), "--listen", node.address, "--pool", node.pool,
            "--tun-name", SERVER_TUN, "--control-socket", str(node.control_socket), "--log-level", "debug",
            "--proxy-protocol", "--proxy-source", f"{node.balancer_address}/32",
            "--connections-per-source-per-minute", str(CONNECTIONS_PER_MINUTE),
            "--max-login-failures-per-source", "1",
        )  # fmt: skip

    def start_haproxy(self, bind: str, servers: list[Backend], *options: str) -> HAProxy:
        """Start HAProxy in the load balancer's namespace."""
        self.haproxy = HAProxy(self.balancer, self.tmp / "haproxy", bind, servers, options)
        self.haproxy.start()
        return self.haproxy

    def add_client(self, user: str) -> Client:
        """A new client namespace behind the load balancer, and a user for it on every node."""
        index = len(self.clients) + 1
        namespace = Namespace(f"pysstp-h{self.tag}c{index}")
        client = Client(user, f"{user}-password", namespace, f"10.212.{index}.2")
        self.clients.append(client)
        attach_lan(self.balancer, namespace, f"{self.tag}c{index}", f"10.212.{index}.1", client.address)
        add_user(self.users, user, client.password)
        return client

    def link_test_process(self) -> tuple[str, str]:
        """Join the test process's own namespace to the load balancer by a veth /30 (a subnet of
        10.213.0.0/16 named after this process, so that parallel runs do not clash); return (the test
        process's address, the load balancer's). The fixture deletes it."""
        tag = next(_counter)
        base = ((os.getpid() * 64 + tag) % (1 << 14)) * 4
        prefix = f"10.213.{base >> 8}"
        near, far = f"{prefix}.{(base & 0xFF) + 1}", f"{prefix}.{(base & 0xFF) + 2}"
        near_link, far_link = f"hn{self.tag}x{tag}"[:15], f"hf{self.tag}x{tag}"[:15]
        self.links.append(near_link)
        run(
            "ip",
            "link",
            "add",
            near_link,
            "type",
            "veth",
            "peer",
            "name",
            far_link,
            "netns",
            self.balancer.name,
        )
        run("ip", "addr", "add", f"{near}/30", "dev", near_link)
        run("ip", "link", "set", near_link, "up")
        self.balancer.run("ip", "addr", "add", f"{far}/30", "dev", far_link)
        self.balancer.run("ip", "link", "set", far_link, "up")
        return near, far

    def connect(self, client: Client, *extra: str) -> ConnectProcess:
        """Start ``pysstp connect`` to HAProxy in the client's namespace."""
        log = self.tmp / f"client-{client.user}.log"
        process = client.namespace.start(
            [
                PYSSTP, "connect", f"{VIP}:{PORT}", "--user", client.user,
                "--password-file", str(self.users.with_name(f"{client.user}.pw")),
                "--ca-file", str(self.tmp / "ca.pem"), "--ifname", CLIENT_TUN, *extra,
            ],
            log,
        )  # fmt: skip
        client.connect = ConnectProcess(process, log)
        return client.connect

    def describe(self) -> str:
        """Every log, for failure messages."""
        parts = [self.haproxy.describe() if self.haproxy else "(no haproxy)"]
        parts += [f"{n.log}:\n{n.log.read_text(errors='replace')}" for n in self.nodes if n.log.exists()]
        parts += [f"{c.connect.log}:\n{c.connect.text()}" for c in self.clients if c.connect]
        return "\n".join(parts)


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    """The load balancer's namespace with ``VIP`` and two node namespaces behind it; clients are added
    by the test. Everything is stopped by PID and removed afterwards, clients first."""
    skip_unless_haproxy()
    tag = f"{os.getpid() % 100000}x{next(_counter)}"
    balancer = Namespace(f"pysstp-h{tag}")
    (tmp_path / "ca.pem").write_bytes(certlab.lab().ca.certificate_pem())
    nodes = [
        Node(
            name, Namespace(f"pysstp-h{tag}{name}"), f"10.211.{i}.2", f"10.211.{i}.1", pool, tunnel, tmp_path
        )
        for i, (name, pool, tunnel) in enumerate(
            (("a", "10.77.0.0/24", "10.77.0.1"), ("b", "10.78.0.0/24", "10.78.0.1")), start=1
        )
    ]
    farm = Farm(balancer, nodes, tmp_path, tag, tmp_path / "users.toml")
    try:
        balancer.add()
        balancer.run("ip", "addr", "add", f"{VIP}/32", "dev", "lo")
        for node in nodes:
            attach_lan(balancer, node.namespace, f"{tag}{node.name}", node.balancer_address, node.address)
        yield farm
    finally:
        for client in farm.clients:
            delete_namespace(client.namespace)
        if farm.haproxy is not None:
            farm.haproxy.stop()
        for node in nodes:
            delete_namespace(node.namespace)
        delete_namespace(balancer)
        for link in farm.links:
            run("ip", "link", "del", link, check=False)


def own_certificate(tmp: Path) -> tuple[str, ...]:
    """A node's flags for terminating TLS itself, with :func:`certificate`."""
    cert, key = tmp / "node.pem", tmp / "node.key"
    cert.write_bytes(certificate().certificate_pem())
    key.write_bytes(certificate().key_pem())
    key.chmod(0o600)
    return ("--cert", str(cert), "--key", str(key), "--port", str(PORT))


def haproxy_pem(tmp: Path) -> Path:
    """HAProxy's ``crt`` file: :func:`certificate` and its key in one PEM."""
    pem = tmp / "haproxy.pem"
    pem.write_bytes(certificate().certificate_pem() + certificate().key_pem())
    pem.chmod(0o600)
    return pem


def offload(tmp: Path) -> tuple[str, ...]:
    """A node's flags for plain HTTP behind HAProxy's TLS, binding calls to HAProxy's certificate."""
    cert = tmp / "binding.pem"
    cert.write_bytes(certificate().certificate_pem())
    return ("--tls-offload", "--binding-cert", str(cert), "--port", str(PLAIN_PORT))


def syns_from(node: Node) -> Callable[[], int]:
    """Count, with an nftables counter in the node's namespace, the TCP connections HAProxy opens to the
    node (health checks and calls); return a function that reads it. The table goes with the namespace."""
    rules = node.tmp / f"syns-{node.name}.nft"
    rules.write_text(
        "table inet pysstp_haproxy {\n"
        "  counter syns { }\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        f"    ip saddr {node.balancer_address} tcp flags & (syn | ack) == syn counter name syns\n"
        "  }\n"
        "}\n"
    )
    node.namespace.run("nft", "-f", str(rules))

    def read() -> int:
        listing = node.namespace.run("nft", "-j", "list", "counter", "inet", "pysstp_haproxy", "syns")
        (counter,) = [item["counter"] for item in json.loads(listing.stdout)["nftables"] if "counter" in item]
        return int(counter["packets"])

    return read


def ping(client: Client, address: str) -> None:
    """Ping ``address`` through the client's tunnel."""
    result = client.namespace.run("ping", "-c", "2", "-W", "2", "-i", "0.2", address, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def wait_checked(farm: Farm, names: list[str]) -> None:
    """Wait until HAProxy's health checks have passed on every node of ``names``."""
    haproxy = farm.haproxy
    assert haproxy is not None
    wait_until(
        lambda: all(haproxy.server_states()[name]["check_status"] == "L4OK" for name in names),
        "HAProxy's health checks to pass",
        haproxy.log,
        STEP_TIMEOUT,
    )


def where(farm: Farm) -> dict[str, Node]:
    """Which node each user's call is up on (each user on one node only)."""
    placed: dict[str, Node] = {}
    for node in farm.nodes:
        if node.process is None or node.process.poll() is not None:
            continue
        for user in node.peers():
            assert user not in placed, f"{user} is up on two nodes:\n{farm.describe()}"
            placed[user] = node
    return placed


def wait_placed(farm: Farm) -> dict[str, Node]:
    """:func:`where`, once every client's call is up on a node: a client may report its call up a moment
    before the node does (whichever side's IPCP opens last)."""
    users = sorted(client.user for client in farm.clients)
    assert farm.haproxy is not None
    wait_until(
        lambda: sorted(where(farm)) == users, "every call up on a node", farm.haproxy.log, STEP_TIMEOUT
    )
    return where(farm)


def start_balanced(farm: Farm) -> None:
    """Both nodes with their own TLS, then HAProxy in front of them with send-proxy-v2 and checks."""
    for node in farm.nodes:
        farm.start_node(node, *own_certificate(farm.tmp))
    farm.start_haproxy(
        f"{VIP}:{PORT}",
        [Backend(n.name, n.address, PORT, f"send-proxy-v2 {CHECKS}") for n in farm.nodes],
        # A dial that reaches a stopped node before its checks have failed goes to another one.
        "retries 2",
        "option redispatch 1",
    )
    wait_checked(farm, [n.name for n in farm.nodes])


def test_clients_spread_over_both_nodes_each_with_its_own_address(farm: Farm) -> None:
    clients = [farm.add_client(f"user{i}") for i in range(1, 5)]
    counters = {node.name: syns_from(node) for node in farm.nodes}
    start_balanced(farm)
    for client in clients:
        farm.connect(client)
    for client in clients:
        assert client.connect is not None
        client.connect.wait_connected()

    placed = wait_placed(farm)
    assert {node.name for node in placed.values()} == {"a", "b"}, "round robin used one node only"
    for client in clients:
        node = placed[client.user]
        # The node sees the client, not HAProxy: the address came in the PROXY v2 header.
        assert node.peers()[client.user] == client.address, node.sessions()
        ping(client, node.tunnel_address)

    # More health checks than the per-source limit allows, on each node, besides the calls: counted as
    # connections (or as failed logins), they would have been refused with a warning.
    for node in farm.nodes:
        count = counters[node.name]
        wait_until(
            lambda count=count: count() > 2 * CONNECTIONS_PER_MINUTE + len(clients),  # type: ignore[misc]
            f"HAProxy's health checks on node {node.name}",
            node.log,
            STEP_TIMEOUT,
        )
    for node in farm.nodes:
        text = node.log.read_text()
        assert node.warnings() == [], text
        # The node logs a call under its client's address: the lines that name HAProxy's own are about
        # its checks, and those are debug lines only.
        about_checks = [line for line in text.splitlines() if f"{node.balancer_address}:" in line]
        assert about_checks, f"the checks never reached node {node.name}:\n{text}"
        assert all(" DEBUG " in line for line in about_checks), text
    assert farm.haproxy is not None
    states = farm.haproxy.server_states()
    assert [states[n.name]["status"] for n in farm.nodes] == ["UP", "UP"], farm.haproxy.describe()


def test_clients_of_a_stopped_node_come_back_on_the_other(farm: Farm) -> None:
    clients = [farm.add_client(f"user{i}") for i in range(1, 5)]
    start_balanced(farm)
    for client in clients:
        # The node's shutdown ends its calls in order (LCP Terminate-Request "server shutting down"),
        # after which --reconnect dials again.
        farm.connect(client, "--reconnect")
    for client in clients:
        assert client.connect is not None
        client.connect.wait_connected()
    placed = wait_placed(farm)
    stopped, other = farm.nodes
    moved = [c for c in clients if placed[c.user] is stopped]
    stayed = [c for c in clients if placed[c.user] is other]
    assert moved and stayed, farm.describe()

    assert stopped.process is not None
    stopped.process.terminate()  # by PID: ``ip netns exec`` execs the server
    stopped.process.wait(STEP_TIMEOUT)
    for client in moved:
        assert client.connect is not None
        log = client.connect.log
        wait_until(lambda log=log: calls_up(log) == 2, "the call again", log, DEADLINE)  # type: ignore[misc]
    wait_until(
        lambda: other.peers() == {c.user: c.address for c in clients},
        "every call on the other node",
        other.log,
        DEADLINE,
    )
    for client in clients:
        ping(client, other.tunnel_address)
    for client in stayed:
        assert client.connect is not None
        assert calls_up(client.connect.log) == 1, client.connect.text()
    assert other.warnings() == [], other.log.read_text()


def test_pysstp_connect_through_haproxy_terminating_tls(farm: Farm) -> None:
    client = farm.add_client("alice")
    node = farm.nodes[0]
    farm.start_node(node, *offload(farm.tmp))
    farm.start_haproxy(
        f"{VIP}:{PORT} ssl crt {haproxy_pem(farm.tmp)}",
        [Backend(node.name, node.address, PLAIN_PORT, f"send-proxy-v2 {CHECKS}")],
    )
    wait_checked(farm, [node.name])
    farm.connect(client).wait_connected()
    # The node verified the client's crypto binding against HAProxy's certificate: otherwise it would
    # have ended the call, and let no packet through before it.
    ping(client, node.tunnel_address)
    assert node.peers() == {client.user: client.address}
    assert node.warnings() == [], node.log.read_text()


def test_haproxy_on_a_dual_stack_socket_names_an_ipv4_client_ipv4_mapped(farm: Farm) -> None:
    """Bound ``v4v6`` on ``[::]``, HAProxy writes an IPv4 client in a PROXY v1 header as inet_ntop does,
    ``TCP6 ::ffff:a.b.c.d``: the node takes it as that IPv4 client."""
    client = farm.add_client("alice")
    node = farm.nodes[0]
    farm.start_node(node, *own_certificate(farm.tmp))
    farm.start_haproxy(f"[::]:{PORT} v4v6", [Backend(node.name, node.address, PORT, "send-proxy")])
    farm.connect(client).wait_connected()
    wait_until(lambda: node.peers() == {client.user: client.address}, "the call up", node.log, STEP_TIMEOUT)
    assert node.warnings() == [], node.log.read_text()


def echo_request(source: ipaddress.IPv4Address, destination: str, payload: bytes) -> bytes:
    """An ICMP echo request (with both checksums right: the node's kernel answers it)."""
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x5053, 1) + payload
    icmp = icmp[:2] + internet_checksum(icmp).to_bytes(2, "big") + icmp[4:]
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0,
        source.packed, ipaddress.IPv4Address(destination).packed,
    )  # fmt: skip
    header = header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:]
    return header + icmp


@pytest.mark.skipif(sstpc_skip_reason() is not None, reason=sstpc_skip_reason() or "")
async def test_sstpc_through_haproxy_terminating_tls(farm: Farm, stack: contextlib.AsyncExitStack) -> None:
    # sstpc runs here, in the test process, which plays pppd and sstpc's plugin for it; it dials HAProxy
    # through DelayProxy, whose pause before the TLS handshake keeps sstpc 1.0.18 from hanging (it does,
    # against HAProxy too, in about half the calls without it).
    source, balancer = farm.link_test_process()
    node = farm.nodes[0]
    password = "alice-password"
    add_user(farm.users, "alice", password)
    farm.start_node(node, *offload(farm.tmp))
    farm.start_haproxy(
        f"{balancer}:{PORT} ssl crt {haproxy_pem(farm.tmp)}",
        [Backend(node.name, node.address, PLAIN_PORT, f"send-proxy-v2 {CHECKS}")],
    )
    wait_checked(farm, [node.name])
    proxy = DelayProxy(PORT, target_host=balancer)
    await proxy.start()
    stack.push_async_callback(proxy.close)
    peer = await start_sstpc(
        SstpcOptions(
            port=proxy.port,
            log_dir=farm.tmp,
            username="alice",
            password=password,
            ca_cert=farm.tmp / "ca.pem",
        ),
        cleanup=stack.push_async_callback,
    )
    await peer.wait(peer.plugin_done, STEP_TIMEOUT, "sstpc taking the keys for its crypto binding")
    await peer.wait(peer.ipv4_up, STEP_TIMEOUT, "IPCP")
    await eventually(
        lambda: "Connection Established" in peer.log_text(), "sstpc: Connection Established", peer
    )
    up = next(event for event in peer.events if isinstance(event, Ipv4Up))
    # The node lets packets through only after the binding in CALL_CONNECTED verified (MS-SSTP 3.2.5.2),
    # here against HAProxy's certificate; its kernel answers the echo.
    request = echo_request(up.local_address, node.tunnel_address, b"through HAProxy's TLS")
    peer.send_ipv4(request)
    reply_addresses = request[16:20] + request[12:16]
    await eventually(
        lambda: any(packet[12:20] == reply_addresses for packet in peer.received_ip), "the echo reply", peer
    )
    assert node.peers() == {"alice": source}
