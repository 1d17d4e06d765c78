"""Throwaway network namespaces joined by a veth pair, for tests that need real TUN devices and routes.

Everything is named after the test process, and removed in the fixture's finalizer even when a test
fails. Processes started in a namespace are stopped by PID.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_counter = itertools.count()


def netns_unavailable() -> str | None:
    """Why namespaces with TUN devices cannot be made here, or ``None`` when they can."""
    if os.geteuid() != 0:
        return "needs root: creates network namespaces and TUN devices"
    if shutil.which("ip") is None:
        return "needs iproute2 ('ip'); 'make test' installs it"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return None


def skip_unless_netns() -> None:
    """Skip (saying why) where namespaces cannot be made; CI runs as root and has them."""
    why = netns_unavailable()
    if why is not None:
        pytest.skip(why)


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output."""
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM ``process`` by PID, SIGKILL it if it is still there after ``timeout`` seconds; wait for it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Namespace:
    """One network namespace and the processes started in it."""

    name: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def add(self) -> None:
        """Create the namespace, with its loopback up; :func:`delete_namespace` removes it."""
        run("ip", "netns", "add", self.name)
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it."""
        return run("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def start(
        self, args: Sequence[str], log: Path | None, *, cwd: Path | None = None
    ) -> subprocess.Popen[str]:
        """Start a long-running process inside the namespace (``ip netns exec`` execs it, so the PID is
        the program's). Its output goes to ``log``; with ``log`` None its stdin and stdout are pipes the
        caller talks through, and its stderr stays this process's."""
        handle = log.open("w") if log is not None else None
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *args],
            stdout=handle or subprocess.PIPE,
            stderr=subprocess.STDOUT if handle is not None else None,
            stdin=subprocess.DEVNULL if handle is not None else subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        if handle is not None:
            handle.close()
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        """SIGTERM every process started here (by PID), SIGKILL what is left after 10 s."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def join(a: Namespace, a_link: str, a_ip: str, b: Namespace, b_link: str, b_ip: str) -> None:
    """Join ``a`` and ``b`` by a veth pair (ends ``a_link`` at ``a_ip``/24, ``b_link`` at ``b_ip``/24),
    bring both ends up, and return once both have settled (see :func:`wait_settled`)."""
    run("ip", "link", "add", a_link, "netns", a.name, "type", "veth", "peer", "name", b_link, "netns", b.name)
    for ns, link, address in ((a, a_link, a_ip), (b, b_link, b_ip)):
        ns.run("ip", "addr", "add", f"{address}/24", "dev", link)
        if ipv6_enabled(ns, link):
            # Both ends are this link's only nodes, made here with unique addresses: duplicate address
            # detection (RFC 4862 §5.4) could find nothing, and would hold each end's link-local address
            # tentative for 1-2 s. Set while the link is down, so it applies to that address too.
            ns.run("sysctl", "-qw", f"net.ipv6.conf.{link}.accept_dad=0")
    for ns, link in ((a, a_link), (b, b_link)):
        ns.run("ip", "link", "set", link, "up")
    for ns, link in ((a, a_link), (b, b_link)):
        wait_settled(ns, link)


def ipv6_enabled(ns: Namespace, link: str) -> bool:
    """Whether ``link`` in ``ns`` has IPv6 (not where the kernel has none, or it is disabled there)."""
    result = ns.run("sysctl", "-n", f"net.ipv6.conf.{link}.disable_ipv6", check=False)
    return result.returncode == 0 and result.stdout.strip() == "0"


def settled(ns: Namespace, link: str) -> bool:
    """Whether what the kernel does by itself after ``link`` goes up is done: the carrier is on (the
    operational state is UP, so no route through it is flagged ``linkdown``) and, with IPv6, its
    link-local address is final and has its local route. Until then the link's addresses and routes change
    under a test that compares them before and after (the kernel adds the link-local address only once
    the carrier is on, and its local route only once the address is no longer tentative)."""
    (state,) = json.loads(ns.run("ip", "-j", "addr", "show", "dev", link).stdout)
    if state["operstate"] != "UP":
        return False
    if not ipv6_enabled(ns, link):
        return True
    link_locals = [
        info["local"]
        for info in state["addr_info"]
        if info["family"] == "inet6" and info["scope"] == "link" and not info.get("tentative")
    ]
    local_routes = json.loads(ns.run("ip", "-j", "-6", "route", "show", "table", "local", "dev", link).stdout)
    return bool(link_locals) and link_locals[0] in [route["dst"] for route in local_routes]


def wait_settled(ns: Namespace, link: str, timeout: float = 20.0) -> None:
    """Wait until ``link`` in ``ns`` has :func:`settled`; fail showing its state when it does not."""
    deadline = time.monotonic() + timeout
    while not settled(ns, link):
        if time.monotonic() > deadline:
            shown = ns.run("ip", "addr", "show", "dev", link).stdout
            raise AssertionError(f"{link} in {ns.name} did not settle within {timeout:g} s:\n{shown}")
        time.sleep(0.05)


def network_state(ns: Namespace) -> dict[str, object]:
    """What a client may change in ``ns``: the names of its links, each link's addresses, the IPv4 and
    IPv6 routes of every table, the routing rules, and resolv.conf.

    Link flags and operational state are left out (the kernel changes them by itself, and the client
    changes none of another link's), and so are the remaining lifetimes of addresses, which count down.
    Compare states of a namespace whose links have settled (:func:`join` waits for that)."""

    def ip_json(*args: str) -> list[dict[str, Any]]:
        return list(json.loads(ns.run("ip", "-j", *args).stdout or "[]"))

    addresses = {
        link["ifname"]: [
            {key: value for key, value in info.items() if key not in _COUNTING_DOWN}
            for info in link["addr_info"]
        ]
        for link in ip_json("addr")
    }
    return {
        "links": [link["ifname"] for link in ip_json("link")],
        "addresses": addresses,
        "routes": ip_json("-4", "route", "show", "table", "all"),
        "routes6": ip_json("-6", "route", "show", "table", "all"),
        "rules": ip_json("-4", "rule") + ip_json("-6", "rule"),
        "resolv.conf": ns.run("cat", "/etc/resolv.conf", check=False).stdout,
    }


_COUNTING_DOWN = ("valid_life_time", "preferred_life_time")


def attach_lan(owner: Namespace, lan: Namespace, tag: str, owner_ip: str, lan_ip: str) -> None:
    """Put ``lan`` (a new namespace) behind ``owner`` on a /24 veth, default route via ``owner``, which
    forwards. The caller deletes ``lan`` (see :func:`delete_namespace`)."""
    lan.add()
    join(owner, f"lo{tag}"[:15], owner_ip, lan, f"lf{tag}"[:15], lan_ip)
    lan.run("ip", "route", "add", "default", "via", owner_ip)
    owner.run("sysctl", "-qw", "net.ipv4.ip_forward=1")


def delete_namespace(ns: Namespace) -> None:
    """Stop what runs in ``ns`` and delete it (its veth ends go with it)."""
    ns.stop_all()
    run("ip", "netns", "del", ns.name, check=False)


@dataclass
class Pair:
    """Two namespaces, ``server`` (at ``server_ip`` on its veth end ``server_link``) and ``client`` (at
    ``client_ip`` on ``client_link``)."""

    server: Namespace
    client: Namespace
    server_ip: str
    client_ip: str
    server_link: str
    client_link: str


def create_pair(tag: str, server_ip: str = "10.200.7.1", client_ip: str = "10.200.7.2") -> Pair:
    """Make two namespaces named after ``tag`` (keep it unique per process) joined by a veth /24 whose
    ends have settled (:func:`join`); remove them with :func:`remove_pair`, which also cleans up what a
    half-made pair left behind."""
    server, client = Namespace(f"pysstp-s{tag}"), Namespace(f"pysstp-c{tag}")
    veth_s, veth_c = f"vs{tag}"[:15], f"vc{tag}"[:15]
    pair = Pair(server, client, server_ip, client_ip, veth_s, veth_c)
    try:
        for ns in (server, client):
            ns.add()
        join(server, veth_s, server_ip, client, veth_c, client_ip)
    except BaseException:
        remove_pair(pair)
        raise
    return pair


def remove_pair(pair: Pair) -> None:
    """Stop what runs in both namespaces of ``pair`` and delete them."""
    for ns in (pair.client, pair.server):
        delete_namespace(ns)


@pytest.fixture
def netns_pair() -> Iterator[Pair]:
    """A fresh server/client namespace pair; removed afterwards whatever happens."""
    skip_unless_netns()
    pair = create_pair(f"{os.getpid() % 100000}-{next(_counter)}")
    try:
        yield pair
    finally:
        remove_pair(pair)


_SINK = """\
import hashlib, socket, sys
s = socket.create_server((sys.argv[1], int(sys.argv[2])))
print('ready', flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while (d := c.recv(65536)):
    h.update(d); n += len(d)
print(n, h.hexdigest(), flush=True)
"""

_SENDER = """\
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
c.sendall(bytes(range(256)) * (int(sys.argv[3]) // 256)); c.close()
"""


def checked_transfer(
    sender: Namespace, receiver: Namespace, address: str, log: Path, size: int = 2_000_000, port: int = 5001
) -> None:
    """Send ``size`` bytes (rounded down to whole 256-byte blocks) over TCP from ``sender`` to a sink at
    ``address:port`` in ``receiver``, and check that the sink got exactly those bytes (count and SHA-256):
    a tunnel that loses, reorders or corrupts data fails here even when ping works."""
    receiver.start([sys.executable, "-c", _SINK, address, str(port)], log)
    wait_for_text(log, "ready")
    data = bytes(range(256)) * (size // 256)
    sender.run(sys.executable, "-c", _SENDER, address, str(port), str(size))
    wait_for_text(log, f"{len(data)} {hashlib.sha256(data).hexdigest()}")


def wait_for_text(
    log: Path, text: str, timeout: float = 20.0, process: subprocess.Popen[str] | None = None
) -> None:
    """Wait until ``text`` appears in ``log``; fail showing the log when time runs out, or as soon as
    ``process`` (the one writing the log, if given) has exited."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"{process.args} exited ({process.returncode}) before {text!r}:\n"
                f"{log.read_text(errors='replace')}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in {log}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
