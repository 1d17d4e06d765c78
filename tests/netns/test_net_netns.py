"""pysstp.net against the real kernel, each test inside a network namespace of its own.

The test thread enters the namespace (setns) for the test and returns to its own namespace afterwards;
the namespace is deleted in the fixture's finalizer whatever the test did. Threads and processes the
code starts from the test thread (netlink workers, nft, ip) inherit the namespace. Nothing here changes
the host's own network configuration.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_interface
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import netns as pyroute2_netns

from pysstp.errors import SystemSetupError
from pysstp.net import iproute
from pysstp.net.changes import ChangeJournal, NetworkChanges
from pysstp.net.iproute import AddressInfo, make_address, make_route
from pysstp.net.nat import install_nat, make_nat_rules, remove_nat
from pysstp.net.sysctl import read_sysctl, write_sysctl
from pysstp.net.tun import TUN_PATH, TunDevice
from pysstp.server.worker import WorkerRoutes

_serial = itertools.count()


def _run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def _ip_json(*args: str) -> Any:
    return json.loads(_run("ip", "-j", *args) or "[]")


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace (only ``lo``, up) that the test thread is inside while the test runs."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command (Debian package iproute2)")
    name = f"pysstp-t-{os.getpid()}-{next(_serial)}"
    created = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {created.stderr.strip()}")
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    home_inode = os.fstat(home).st_ino
    home_forwarding = read_sysctl("net.ipv4.ip_forward")
    try:
        pyroute2_netns.setns(name, flags=0)
        iproute.set_link("lo", up=True)
        yield name
    finally:
        pyroute2_netns.setns(home)
        os.close(home)
        subprocess.run(["ip", "netns", "delete", name], check=False)
    assert os.stat("/proc/thread-self/ns/net").st_ino == home_inode
    assert read_sysctl("net.ipv4.ip_forward") == home_forwarding
    assert name not in _run("ip", "netns", "list")


@pytest.fixture
def tun_netns(netns: str) -> str:
    """A namespace where TUN works and new interfaces get no IPv6 (whose chatter would mix with the
    packets a test reads from a TUN)."""
    if not os.path.exists(TUN_PATH):
        pytest.skip(f"needs {TUN_PATH} (modprobe tun)")
    write_sysctl("net.ipv6.conf.default.disable_ipv6", 1)
    return netns


@pytest.fixture
def nft_netns(netns: str) -> str:
    """A namespace where nftables works."""
    if shutil.which("nft") is None:
        pytest.skip("needs the nft command (Debian package nftables)")
    probe = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"nftables does not work here: {probe.stderr.strip()}")
    return netns


def _snapshot() -> dict[str, object]:
    """Everything about the namespace that NetworkChanges may touch."""
    return {
        "links": _ip_json("link"),
        "addresses": _ip_json("addr"),
        "routes4": _ip_json("-4", "route", "show", "table", "all"),
        "routes6": _ip_json("-6", "route", "show", "table", "all"),
        "nft": _run("nft", "list", "ruleset"),
        "forwarding": read_sysctl("net.ipv4.ip_forward"),
    }


# -- packets for the TUN tests ------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(source: str, destination: str, protocol: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        0x1234,
        0,
        64,
        protocol,
        0,
        socket.inet_aton(source),
        socket.inet_aton(destination),
    )
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + payload


def _icmp_echo_request(ident: int, sequence: int, data: bytes) -> bytes:
    message = struct.pack("!BBHHH", 8, 0, 0, ident, sequence) + data
    return message[:2] + struct.pack("!H", _checksum(message)) + message[4:]


def _udp(source_port: int, destination_port: int, data: bytes) -> bytes:
    return struct.pack("!HHHH", source_port, destination_port, 8 + len(data), 0) + data  # checksum 0: none


def _tcp_syn(source: str, destination: str, source_port: int, destination_port: int, *, mss: int) -> bytes:
    """An IPv4 TCP SYN with an MSS option and correct checksums (conntrack ignores bad ones, so NAT would
    never see the packet)."""
    header = struct.pack("!HHIIBBHHH", source_port, destination_port, 1, 0, 6 << 4, 0x02, 65535, 0, 0)
    segment = header + struct.pack("!BBH", 2, 4, mss)
    pseudo = (
        socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!BBH", 0, 6, len(segment))
    )
    segment = segment[:16] + struct.pack("!H", _checksum(pseudo + segment)) + segment[18:]
    return _ipv4(source, destination, socket.IPPROTO_TCP, segment)


def _wait_readable(fd: int) -> None:
    readable, _, _ = select.select([fd], [], [], 5.0)
    assert readable, "nothing arrived on the TUN within 5 s"


def _read_at_least(tun: TunDevice, count: int, limit: int) -> list[bytes]:
    packets: list[bytes] = []
    while len(packets) < count:
        _wait_readable(tun.fd)
        packets += tun.read_batch(limit)
    return packets


@pytest.fixture
def tun(tun_netns: str) -> Iterator[TunDevice]:
    """An up TUN with 10.77.0.1, point-to-point to 10.77.0.2 (the far end the tests play)."""
    with TunDevice.open("pt%d", mtu=1400) as device:
        iproute.set_link(device.name, up=True)
        iproute.add_address(make_address(device.name, "10.77.0.1", peer="10.77.0.2"))
        yield device


# -- TUN ----------------------------------------------------------------------------------------------


def test_tun_name_mtu_queue_and_removal_on_close(tun_netns: str) -> None:
    device = TunDevice.open("pt%d", mtu=1280, txqueuelen=2000)
    (link,) = _ip_json("link", "show", "dev", device.name)
    assert device.name == "pt0"
    assert (link["mtu"], link["txqlen"]) == (1280, 2000)
    assert link["link_type"] == "none"  # TUN, not TAP
    device.close()
    device.close()
    assert device.closed and device.fd == -1
    assert not iproute.link_exists("pt0")


def test_tun_answers_a_ping(tun: TunDevice) -> None:
    request = _icmp_echo_request(0x4242, 7, b"pysstp ping payload")
    tun.write(_ipv4("10.77.0.2", "10.77.0.1", socket.IPPROTO_ICMP, request))
    (reply,) = _read_at_least(tun, 1, 8)
    assert reply[9] == socket.IPPROTO_ICMP
    assert (reply[12:16], reply[16:20]) == (socket.inet_aton("10.77.0.1"), socket.inet_aton("10.77.0.2"))
    assert reply[20] == 0  # echo reply
    assert reply[24:] == request[4:]  # same identifier, sequence and data
    assert tun.write_drops == 0


def test_tun_read_batch_stops_at_the_limit_and_when_empty(tun: TunDevice) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for n in range(5):
            sender.sendto(b"datagram %d" % n, ("10.77.0.2", 9))
    first = _read_at_least(tun, 3, 3)
    rest = _read_at_least(tun, 2, 10)
    assert len(first) == 3 and len(rest) == 2
    assert [packet[28:] for packet in first + rest] == [b"datagram %d" % n for n in range(5)]
    assert tun.read_batch(10) == []


def test_tun_write_reaches_a_local_socket(tun: TunDevice) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("10.77.0.1", 0))
        receiver.settimeout(5)
        port = receiver.getsockname()[1]
        packet = _ipv4("10.77.0.2", "10.77.0.1", socket.IPPROTO_UDP, _udp(5000, port, b"into the TUN"))
        tun.write(memoryview(b"\xff\x03\x00\x21" + packet)[4:])  # as the data path writes: a slice
        assert receiver.recvfrom(100) == (b"into the TUN", ("10.77.0.2", 5000))


def test_tun_drops_and_counts_what_the_kernel_refuses(tun: TunDevice) -> None:
    tun.write(b"\x00" * 20)  # neither IPv4 nor IPv6
    iproute.set_link(tun.name, up=False)
    tun.write(_ipv4("10.77.0.2", "10.77.0.1", socket.IPPROTO_UDP, _udp(1, 9, b"x")))
    assert tun.write_drops == 2


def test_tun_name_in_use(tun: TunDevice) -> None:
    with pytest.raises(SystemSetupError, match=r"^TUN device pt0 is already in use \(by another pysstp\?\)"):
        TunDevice.open(tun.name)


def test_tun_name_of_another_kind_of_interface(tun_netns: str) -> None:
    with pytest.raises(SystemSetupError, match="network interface lo already exists and is not a TUN"):
        TunDevice.open("lo")


def test_tun_without_cap_net_admin(tun_netns: str) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (Debian package util-linux) to drop CAP_NET_ADMIN")
    code = (
        "from pysstp.errors import SystemSetupError\n"
        "from pysstp.net.tun import TunDevice\n"
        "try:\n"
        "    TunDevice.open('pt%d')\n"
        "except SystemSetupError as exc:\n"
        "    print(exc)\n"
    )
    dropped = ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--"]
    output = _run(*dropped, sys.executable, "-c", code)
    assert output == "cannot create TUN device pt%d: permission denied; run as root or with CAP_NET_ADMIN\n"


def test_tun_mtu_out_of_range_leaves_no_device(tun_netns: str) -> None:
    with pytest.raises(SystemSetupError, match="cannot set MTU 20, txqueuelen 1000 on pt0: invalid argument"):
        TunDevice.open("pt%d", mtu=20)
    assert not iproute.link_exists("pt0")


# -- links, addresses, routes -------------------------------------------------------------------------


@pytest.fixture
def veth(netns: str) -> str:
    """A veth end ``va`` (peer ``vb``, both here), up, with 10.9.0.1/24 and a default route via .254."""
    _run("ip", "link", "add", "va", "type", "veth", "peer", "name", "vb")
    iproute.set_link("vb", up=True)
    iproute.set_link("va", up=True)
    iproute.add_address(make_address("va", "10.9.0.1/24"))
    iproute.add_route(make_route("0.0.0.0/0", gateway="10.9.0.254"))
    return "va"


def test_link_settings(veth: str) -> None:
    iproute.set_link(veth, mtu=1400, txqueuelen=3000)
    (link,) = _ip_json("link", "show", "dev", veth)
    assert (link["mtu"], link["txqlen"]) == (1400, 3000)
    assert "UP" in link["flags"]


def test_addresses_local_and_point_to_point(veth: str) -> None:
    iproute.add_address(make_address(veth, "10.9.1.1", peer="10.9.1.2"))
    iproute.add_address(make_address(veth, "fd00:9::1/64"))
    found = iproute.list_addresses(veth)
    assert AddressInfo(veth, ip_interface("10.9.0.1/24")) in found
    assert AddressInfo(veth, ip_interface("10.9.1.1/32"), ip_address("10.9.1.2")) in found
    assert AddressInfo(veth, ip_interface("fd00:9::1/64")) in found
    assert AddressInfo("lo", ip_interface("127.0.0.1/8")) in iproute.list_addresses()
    assert "10.9.1.1 peer 10.9.1.2/32" in _run("ip", "addr", "show", "dev", veth)

    iproute.delete_address(make_address(veth, "10.9.1.1", peer="10.9.1.2"))
    assert "10.9.1.1" not in _run("ip", "addr", "show", "dev", veth)
    with pytest.raises(SystemSetupError, match=r"^cannot add address 10.9.0.1/24 dev va: it already exists$"):
        iproute.add_address(make_address(veth, "10.9.0.1/24"))


def test_routes_added_and_deleted(veth: str) -> None:
    routes = [
        make_route("10.10.0.0/16", ifname=veth),
        make_route("10.11.0.0/16", gateway="10.9.0.2", metric=50),
        make_route("192.0.2.7", gateway="10.9.0.3", ifname=veth),
    ]
    for route in routes:
        iproute.add_route(route)
    table = _run("ip", "route")
    assert "10.10.0.0/16 dev va proto static scope link" in table
    assert "10.11.0.0/16 via 10.9.0.2 dev va proto static metric 50" in table
    assert "192.0.2.7 via 10.9.0.3 dev va" in table
    for route in routes:
        iproute.delete_route(route)
    assert _run("ip", "route").splitlines() == [
        "default via 10.9.0.254 dev va proto static ",
        "10.9.0.0/24 dev va proto kernel scope link src 10.9.0.1 ",
    ]


def test_unreachable_route_journaled_and_undone(veth: str, tmp_path: Path) -> None:
    """The workers' pool route: without a session's host route, its addresses are unreachable here
    instead of leaving by the default route; undone from the journal after a crash too."""
    journal = ChangeJournal.open(tmp_path / "pool.json")
    changes = NetworkChanges(journal)
    changes.add_route("10.77.0.0/24", unreachable=True)
    assert "unreachable 10.77.0.0/24 proto static" in _run("ip", "route")
    assert journal.read()[0]["unreachable"] is True
    changes.undo()
    assert "unreachable" not in _run("ip", "route")
    with pytest.raises(ValueError, match="no device and no gateway"):
        make_route("10.77.0.0/24", ifname=veth, unreachable=True)
    journal.close(remove=True)


def test_a_workers_session_route_carries_its_mtu_and_outlives_it(veth: str) -> None:
    """A worker routes each session address into its TUN; the session's MTU route is that same route
    with an MTU, and removing the MTU leaves the route (pysstp.server.worker.WorkerRoutes)."""
    routes = WorkerRoutes(veth)
    address = IPv4Address("10.77.0.9")
    routes.hold(address)
    assert "10.77.0.9 dev va proto static scope link" in _run("ip", "route")
    routes.add(IPv4Network("10.77.0.9/32"), mtu=1300)
    assert "10.77.0.9 dev va proto static scope link mtu 1300" in _run("ip", "route")
    routes.remove(IPv4Network("10.77.0.9/32"))
    table = _run("ip", "route")
    assert "10.77.0.9 dev va proto static scope link" in table and "mtu 1300" not in table
    routes.let_go(address)
    assert "10.77.0.9" not in _run("ip", "route")
    routes.add(IPv4Network("10.88.0.0/24"))  # a network behind a client: added and removed as it is
    routes.remove(IPv4Network("10.88.0.0/24"))
    assert "10.88.0.0" not in _run("ip", "route")


def test_ipv6_route(veth: str) -> None:
    iproute.add_address(make_address(veth, "fd00:9::1/64"))
    iproute.add_route(make_route("fd01::/64", gateway="fd00:9::2", metric=10))
    assert "fd01::/64 via fd00:9::2 dev va proto static metric 10" in _run("ip", "-6", "route")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda: iproute.add_route(make_route("10.9.0.0/24", ifname="va")),
            "cannot add route 10.9.0.0/24 dev va: it already exists",
        ),
        (
            lambda: iproute.add_route(make_route("10.12.0.0/16", gateway="10.99.0.1")),
            "cannot add route 10.12.0.0/16 via 10.99.0.1: the network is unreachable",
        ),
        (
            lambda: iproute.add_route(make_route("10.12.0.0/16", ifname="sstp9")),
            "cannot add route 10.12.0.0/16 dev sstp9: no such network interface",
        ),
        (
            lambda: iproute.delete_route(make_route("10.13.0.0/16", ifname="va")),
            "cannot delete route 10.13.0.0/16 dev va: no such route",
        ),
        (
            lambda: iproute.delete_address(make_address("va", "10.9.7.1/24")),
            "cannot delete address 10.9.7.1/24 dev va: no such address on that interface",
        ),
        (
            lambda: iproute.set_link("sstp9", up=True),
            "cannot set up on sstp9: no such network interface",
        ),
    ],
)
def test_kernel_refusals_read_as_one_line(veth: str, change: object, message: str) -> None:
    with pytest.raises(SystemSetupError) as caught:
        change()  # type: ignore[operator]
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_deleting_what_is_already_gone_is_fine_when_asked(veth: str) -> None:
    iproute.delete_route(make_route("10.13.0.0/16", ifname=veth), missing_ok=True)
    iproute.delete_route(make_route("10.13.0.0/16", ifname="sstp9"), missing_ok=True)
    iproute.delete_address(make_address(veth, "10.9.7.1/24"), missing_ok=True)


def test_route_to_a_host(veth: str) -> None:
    via_default = iproute.route_to("198.51.100.10")
    assert via_default == make_route("198.51.100.10/32", ifname=veth, gateway="10.9.0.254")
    assert iproute.route_to("10.9.0.77") == make_route("10.9.0.77", ifname=veth)
    with pytest.raises(SystemSetupError, match="cannot find a route to fd99::1: the network is unreachable"):
        iproute.route_to("fd99::1")


def test_netlink_calls_work_inside_a_running_event_loop(veth: str) -> None:
    """pyroute2's own event loop cannot run in a thread whose asyncio loop is running (server, client)."""

    async def configure() -> list[AddressInfo]:
        iproute.add_address(make_address(veth, "10.9.5.1/24"))
        return iproute.list_addresses(veth)

    assert AddressInfo(veth, ip_interface("10.9.5.1/24")) in asyncio.run(configure())


def test_client_pins_the_server_route_before_taking_the_default(veth: str, tun_netns: str) -> None:
    server = "198.51.100.10"
    with NetworkChanges() as changes:
        tun = changes.open_tun("pt%d")
        iproute.set_link(tun.name, up=True)
        changes.add_address(tun.name, "10.77.0.5", peer="10.77.0.1")
        pinned = iproute.route_to(server)
        changes.add_route(pinned.destination, ifname=pinned.ifname, gateway=pinned.gateway)
        changes.add_route("0.0.0.0/1", ifname=tun.name)
        changes.add_route("128.0.0.0/1", ifname=tun.name)
        assert iproute.route_to(server) == pinned
        assert iproute.route_to("198.51.100.11") == make_route("198.51.100.11", ifname=tun.name)
    assert iproute.route_to("198.51.100.11").ifname == veth
    assert server not in _run("ip", "route")


# -- the undo log against the kernel -------------------------------------------------------------------


def test_undo_after_a_partial_failure_leaves_the_namespace_as_it_was(
    tun_netns: str, nft_netns: str, tmp_path: Path
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    before = _snapshot()
    refused = r"cannot add route 10.88.0.0/16 via 10.77.0.2 .*already exists"
    with pytest.raises(SystemSetupError, match=refused), NetworkChanges() as changes:
        tun = changes.open_tun("pt%d", mtu=1400)
        iproute.set_link(tun.name, up=True)
        changes.add_address(tun.name, "10.77.0.1/24")
        changes.add_address(tun.name, "10.78.0.1", peer="10.78.0.2")
        changes.add_route("10.88.0.0/16", gateway="10.77.0.2", metric=10)
        changes.add_route("0.0.0.0/1", ifname=tun.name)
        changes.set_sysctl("net.ipv4.ip_forward", 1)
        changes.install_nat(tun.name, source="10.77.0.0/24", egress="eth9")
        changes.replace_file(resolv, "nameserver 10.77.0.2\n")
        assert _snapshot() != before
        changes.add_route("10.88.0.0/16", gateway="10.77.0.2", metric=10)  # fails: it exists
    assert changes.pending == []
    assert _snapshot() == before
    assert resolv.read_text() == "nameserver 192.0.2.53\n"


def test_undo_is_quiet_when_the_tun_took_its_routes_along(
    tun_netns: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the TUN early removes its addresses and routes; undoing them is then not a failure."""
    before = _snapshot()
    with NetworkChanges() as changes:
        tun = changes.open_tun("pt%d")
        iproute.set_link(tun.name, up=True)
        changes.add_address(tun.name, "10.77.0.1/24")
        changes.add_route("10.88.0.0/16", ifname=tun.name)
        tun.close()
    assert "could not undo" not in caplog.text
    assert _snapshot() == before


def test_sysctl_in_the_namespace_is_restored(netns: str) -> None:
    key = "net.ipv4.ip_forward"
    assert read_sysctl(key) == "0"
    with NetworkChanges() as changes:
        changes.set_sysctl(key, 1)
        changes.set_sysctl("net.ipv6.conf.all.forwarding", 1)
        assert (read_sysctl(key), read_sysctl("net.ipv6.conf.all.forwarding")) == ("1", "1")
    assert (read_sysctl(key), read_sysctl("net.ipv6.conf.all.forwarding")) == ("0", "0")


def test_journal_holds_each_change_made_and_none_that_failed_or_was_undone(
    netns: str, tmp_path: Path
) -> None:
    journal = ChangeJournal.open(tmp_path / "sstp0.json")
    with NetworkChanges(journal) as changes:
        changes.set_sysctl("net.ipv4.ip_forward", 1)
        with pytest.raises(SystemSetupError, match="no such network interface"):
            changes.add_route("10.88.0.0/16", ifname="nosuch0")
        assert journal.read() == [{"kind": "sysctl", "key": "net.ipv4.ip_forward", "previous": "0"}]
    assert journal.read() == []
    journal.close(remove=True)


# -- nftables -----------------------------------------------------------------------------------------


def test_nat_table_installed_replaced_and_removed(nft_netns: str) -> None:
    install_nat(make_nat_rules("sstp0", source="10.77.0.0/24", egress="eth9"))
    assert "table inet pysstp-sstp0" in _run("nft", "list", "tables")
    table = _run("nft", "list", "table", "inet", "pysstp-sstp0")
    assert 'ip saddr 10.77.0.0/24 oifname "eth9" masquerade' in table
    assert 'oifname "sstp0" tcp flags syn tcp option maxseg size set rt mtu' in table

    install_nat(make_nat_rules("sstp0", mss=1300))  # replaces, in one transaction
    table = _run("nft", "list", "table", "inet", "pysstp-sstp0")
    assert "masquerade" not in table
    assert "maxseg size set 1300" in table

    remove_nat("pysstp-sstp0")
    assert "pysstp" not in _run("nft", "list", "tables")
    remove_nat("pysstp-sstp0")  # already gone: fine


def test_nat_leaves_other_tables_alone(nft_netns: str) -> None:
    subprocess.run(["nft", "-f", "-"], input="table inet admin {\n chain c {\n }\n}\n", text=True, check=True)
    with NetworkChanges() as changes:
        changes.install_nat("sstp0", source="10.77.0.0/24")
    assert _run("nft", "list", "tables").split() == ["table", "inet", "admin"]


def test_masquerade_and_clamp_work_on_forwarded_traffic(nft_netns: str, tun_netns: str) -> None:
    """A SYN from the tunnel leaves the egress with the masquerade address and a clamped MSS."""
    _run("ip", "link", "add", "va", "type", "veth", "peer", "name", "vb")
    for name in ("va", "vb"):
        iproute.set_link(name, up=True)
    iproute.add_address(make_address("va", "10.9.0.1/24"))
    iproute.add_route(make_route("0.0.0.0/0", gateway="10.9.0.254"))
    # A capture socket on the far end of the veth sees what leaves through va.
    with (
        NetworkChanges() as changes,
        socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800)) as capture,
    ):
        capture.bind(("vb", 0))
        capture.settimeout(5)
        tun = changes.open_tun("pt%d", mtu=1400)
        iproute.set_link(tun.name, up=True)
        changes.add_address(tun.name, "10.77.0.1", peer="10.77.0.2")
        changes.set_sysctl("net.ipv4.ip_forward", 1)
        changes.install_nat(tun.name, source="10.77.0.2/32", egress="va", mss=1200)
        # Neighbour entry for the gateway, so the forwarded packet is sent rather than held for ARP.
        _run("ip", "neigh", "replace", "10.9.0.254", "lladdr", "02:00:00:00:00:fe", "dev", "va")
        syn = _tcp_syn("10.77.0.2", "198.51.100.10", 40000, 80, mss=1460)
        tun.write(syn)
        while True:
            packet = capture.recv(2000)
            if packet[9] == socket.IPPROTO_TCP:
                break
        assert socket.inet_ntoa(packet[12:16]) == "10.9.0.1"  # masqueraded
        assert packet[40:44] == struct.pack("!BBH", 2, 4, 1200)  # MSS option: 1460 clamped to 1200
