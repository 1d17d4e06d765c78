"""IPv6 in the server: router advertisements on the wire, and routing/source checks with a TUN stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from pysstp.aaa.backend import Answer, Authorization, CallContext
from pysstp.aaa.local import LocalBackend, StaticCredentials
from pysstp.link import Verification
from pysstp.ppp.events import Ipv6Up
from pysstp.ppp.ipv6cp import link_local_address
from pysstp.server import ipv6
from pysstp.udp import internet_checksum

from helpers.loopback import Bench, Client, start_bench

TIMEOUT = 10
PREFIX = IPv6Network("2001:db8:77::/64")
ROUTER = IPv6Address("fe80::1234")


def reference_checksum(data: bytes) -> int:
    """RFC 1071 the slow way, byte pair by byte pair, folding carries only at the end."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] * 256 + data[i + 1]
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return 0xFFFF - total


def icmpv6_checksum(packet: bytes) -> int:
    """The checksum an ICMPv6 message in ``packet`` must carry, computed over a zeroed checksum field."""
    message = bytearray(packet[40:])
    message[2:4] = b"\0\0"
    pseudo = packet[8:40] + len(message).to_bytes(4, "big") + b"\0\0\0\x3a"
    return reference_checksum(pseudo + bytes(message))


def ipv6_packet(
    source: IPv6Address, destination: IPv6Address, payload: bytes, next_header: int = 17
) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), next_header, 64)
        + source.packed
        + destination.packed
        + payload
    )


def router_solicitation(source: IPv6Address, hop_limit: int = 255) -> bytes:
    packet = bytearray(ipv6_packet(source, IPv6Address("ff02::2"), bytes((133, 0, 0, 0, 0, 0, 0, 0)), 58))
    packet[7] = hop_limit
    packet[42:44] = icmpv6_checksum(bytes(packet)).to_bytes(2, "big")
    return bytes(packet)


def is_advertisement(packet: bytes) -> bool:
    return len(packet) > 40 and packet[0] >> 4 == 6 and packet[6] == 58 and packet[40] == 134


# -- the advertisement on the wire --------------------------------------------------------------------


def test_checksum_matches_the_rfc_1071_example() -> None:
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert reference_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_router_advertisement_fields() -> None:
    packet = ipv6.router_advertisement(PREFIX, source=ROUTER, mtu=1400)
    version, payload_length, next_header, hop_limit = struct.unpack("!IHBB", packet[:8])
    assert version >> 28 == 6
    assert payload_length == len(packet) - 40 == 16 + 32 + 8
    assert (next_header, hop_limit) == (58, 255)
    assert packet[8:24] == ROUTER.packed
    assert packet[24:40] == IPv6Address("ff02::1").packed
    kind, code, _, cur_hop_limit, flags, lifetime, reachable, retransmit = struct.unpack(
        "!BBHBBHII", packet[40:56]
    )
    assert (kind, code, cur_hop_limit, flags, reachable, retransmit) == (134, 0, 0, 0, 0, 0)
    assert 0 < lifetime <= 9000  # RFC 4861 §6.2.1: at most 9000 s
    option_type, length, prefix_length, prefix_flags, valid, preferred, _, prefix = struct.unpack(
        "!BBBBIII16s", packet[56:88]
    )
    assert (option_type, length, prefix_length) == (3, 4, 64)
    assert prefix_flags == 0xC0  # on-link and autonomous (SLAAC)
    assert valid >= preferred > ipv6.RA_INTERVAL
    assert prefix == PREFIX.network_address.packed
    assert struct.unpack("!BBHI", packet[88:96]) == (5, 1, 0, 1400)


@pytest.mark.parametrize("destination", [ipv6.ALL_NODES, IPv6Address("fe80::aaaa:bbbb:cccc:dddd")])
def test_router_advertisement_checksum_is_correct(destination: IPv6Address) -> None:
    packet = ipv6.router_advertisement(PREFIX, source=ROUTER, mtu=1400, destination=destination)
    assert packet[24:40] == destination.packed
    assert int.from_bytes(packet[42:44], "big") == icmpv6_checksum(packet)


def test_router_advertisement_needs_a_64() -> None:
    with pytest.raises(ValueError, match="/64"):
        ipv6.router_advertisement(IPv6Network("2001:db8::/48"), source=ROUTER, mtu=1400)


def test_router_solicitation_is_recognised_only_when_valid() -> None:
    good = router_solicitation(IPv6Address("fe80::5"))
    assert ipv6.is_router_solicitation(good)
    assert ipv6.is_router_solicitation(router_solicitation(IPv6Address("::")))
    assert not ipv6.is_router_solicitation(router_solicitation(IPv6Address("fe80::5"), hop_limit=64))
    assert not ipv6.is_router_solicitation(good[:42] + b"\0\0" + good[44:])  # bad checksum
    assert not ipv6.is_router_solicitation(ipv6.router_advertisement(PREFIX, source=ROUTER, mtu=1400))
    assert not ipv6.is_router_solicitation(ipv6_packet(ROUTER, ROUTER, bytes(8)))


def test_interface_address() -> None:
    iid = bytes.fromhex("0011223344556677")
    assert ipv6.interface_address(PREFIX, iid) == IPv6Address("2001:db8:77::11:2233:4455:6677")


# -- the server with a TUN stand-in -------------------------------------------------------------------


async def wait_for(condition: object, timeout: float = TIMEOUT) -> None:
    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def start(tmp_path: Path, prefix: IPv6Network | None) -> Bench:
    return await start_bench(
        tmp_path,
        configure=lambda config: dataclasses.replace(config, ipv6=True),
        ipv6_prefix=prefix,  # type: ignore[arg-type]
    )


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    bench = await start(tmp_path, PREFIX)
    yield bench
    await bench.app.shutdown()
    bench.tun.close()


async def connect_ipv6(bench: Bench) -> tuple[Client, Ipv6Up]:
    client = await bench.connect(ipv6=True)
    await wait_for(lambda: any(isinstance(e, Ipv6Up) for e in client.events))
    up = client.first(Ipv6Up)
    assert isinstance(up, Ipv6Up)
    return client, up


async def test_ipv6cp_up_routes_the_client_and_advertises_the_prefix(bench: Bench) -> None:
    client, up = await connect_ipv6(bench)
    link_local = link_local_address(up.local_interface_id)
    global_address = ipv6.interface_address(PREFIX, up.local_interface_id)
    await wait_for(lambda: any(is_advertisement(p) for p in client.received))
    advertisement = next(p for p in client.received if is_advertisement(p))
    assert advertisement[8:24] == link_local_address(up.peer_interface_id).packed  # the server's link-local
    assert advertisement[56:88][16:] == PREFIX.network_address.packed
    assert int.from_bytes(advertisement[42:44], "big") == icmpv6_checksum(advertisement)

    server = link_local_address(ipv6.SERVER_INTERFACE_ID)
    for destination in (link_local, global_address):
        packet = ipv6_packet(server, destination, b"to " + destination.packed)
        bench.tun.inject(packet)
        await wait_for(lambda packet=packet: packet in client.received)  # type: ignore[misc]

    assert client.connection is not None
    client.connection.close()
    await asyncio.wait_for(client.down.wait(), TIMEOUT)
    await wait_for(lambda: not bench.app.connections)
    assert link_local.packed not in bench.app.by_address
    assert global_address.packed not in bench.app.by_address


async def test_router_solicitation_is_answered_not_forwarded(bench: Bench) -> None:
    client, up = await connect_ipv6(bench)
    await wait_for(lambda: any(is_advertisement(p) for p in client.received))
    link_local = link_local_address(up.local_interface_id)
    solicitation = router_solicitation(link_local)
    assert client.connection is not None
    client.connection.send_ip_batch([solicitation])
    await wait_for(lambda: sum(is_advertisement(p) for p in client.received) == 2)
    answer = [p for p in client.received if is_advertisement(p)][-1]
    assert answer[24:40] == link_local.packed  # answered to the soliciting address
    assert solicitation not in bench.tun.written


async def test_ipv6_source_check(bench: Bench) -> None:
    client, up = await connect_ipv6(bench)
    assert client.connection is not None
    server = ipv6.interface_address(PREFIX, ipv6.SERVER_INTERFACE_ID)
    own = ipv6_packet(ipv6.interface_address(PREFIX, up.local_interface_id), server, b"mine")
    link_local = ipv6_packet(link_local_address(up.local_interface_id), server, b"mine too")
    spoofed = ipv6_packet(ipv6.interface_address(PREFIX, bytes(7) + b"\x09"), server, b"not mine")
    client.connection.send_ip_batch([spoofed, own, link_local])
    await wait_for(lambda: own in bench.tun.written and link_local in bench.tun.written)
    assert spoofed not in bench.tun.written
    assert bench.app.spoofed == 1


async def test_sessions_get_their_own_ipv6_traffic(bench: Bench) -> None:
    sessions = await asyncio.gather(*(connect_ipv6(bench) for _ in range(3)))
    server = ipv6.interface_address(PREFIX, ipv6.SERVER_INTERFACE_ID)
    for _, up in sessions:
        address = ipv6.interface_address(PREFIX, up.local_interface_id)
        bench.tun.inject(ipv6_packet(server, address, address.packed))
    for client, up in sessions:
        address = ipv6.interface_address(PREFIX, up.local_interface_id)
        await wait_for(lambda c=client, a=address: any(p[40:] == a.packed for p in c.received))  # type: ignore[misc]
        assert [p for p in client.received if not is_advertisement(p)] == [
            ipv6_packet(server, address, address.packed)
        ]


async def test_link_local_only_routes_without_advertising(tmp_path: Path) -> None:
    bench = await start(tmp_path, None)
    try:
        client, up = await connect_ipv6(bench)
        link_local = link_local_address(up.local_interface_id)
        packet = ipv6_packet(link_local_address(ipv6.SERVER_INTERFACE_ID), link_local, b"hello")
        bench.tun.inject(packet)
        await wait_for(lambda: packet in client.received)
        assert client.connection is not None
        client.connection.send_ip_batch([router_solicitation(link_local)])
        await asyncio.sleep(0.2)
        assert not any(is_advertisement(p) for p in client.received)
        assert len(bench.app.by_address) == 2  # its IPv4 address and its link-local one
    finally:
        await bench.app.shutdown()
        bench.tun.close()


# -- the backend's own prefix (RADIUS Framed-IPv6-Prefix) ---------------------------------------------

OWN_PREFIX = IPv6Network("2001:db8:99::/64")


class PrefixBackend:
    """The local backend, whose yes gives alice a prefix of her own (``prefix``)."""

    name = "prefix"

    def __init__(self, prefix: IPv6Network) -> None:
        self.local = LocalBackend(StaticCredentials({"alice": "alicepw", "bob": "bobpw"}))
        self.prefix = prefix

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        answer = self.local.check(question)
        if not answer.verdict.success or question.user != "alice":
            return answer
        return dataclasses.replace(answer, authorization=Authorization(ipv6_prefix=self.prefix))

    def finished(self, context: CallContext) -> None:
        pass


async def start_with_prefix(tmp_path: Path, server_prefix: IPv6Network | None, own: IPv6Network) -> Bench:
    bench = await start(tmp_path, server_prefix)
    bench.app.backend.inner = PrefixBackend(own)  # type: ignore[assignment]
    return bench


@pytest.mark.parametrize("server_prefix", [PREFIX, None], ids=["prefix", "link-local"])
async def test_a_session_with_its_own_prefix_is_advertised_and_routed_it(
    tmp_path: Path, server_prefix: IPv6Network | None
) -> None:
    bench = await start_with_prefix(tmp_path, server_prefix, OWN_PREFIX)
    try:
        client, _up = await connect_ipv6(bench)
        await wait_for(lambda: any(is_advertisement(p) for p in client.received))
        advertisement = next(p for p in client.received if is_advertisement(p))
        assert advertisement[56:88][16:] == OWN_PREFIX.network_address.packed
        [connection] = bench.app.connections
        assert OWN_PREFIX in connection.info.routes
        assert (OWN_PREFIX, connection) in bench.app.by_network
        # Every address in the prefix reaches the session (SLAAC's and privacy addresses alike), and may
        # leave it.
        server = link_local_address(ipv6.SERVER_INTERFACE_ID)
        privacy = OWN_PREFIX.network_address + 0x1234
        inbound = ipv6_packet(server, privacy, b"to a privacy address")
        bench.tun.inject(inbound)
        await wait_for(lambda: inbound in client.received)
        outbound = ipv6_packet(privacy, server, b"from it")
        assert client.connection is not None
        client.connection.send_ip_batch([outbound])
        await wait_for(lambda: outbound in bench.tun.written)
        client.connection.close()
        await wait_for(lambda: not bench.app.connections)
        assert not bench.app.by_network
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_a_prefix_that_is_not_a_64_leaves_the_servers(tmp_path: Path) -> None:
    bench = await start_with_prefix(tmp_path, PREFIX, IPv6Network("2001:db8:99::/56"))
    try:
        client, _up = await connect_ipv6(bench)
        await wait_for(lambda: any(is_advertisement(p) for p in client.received))
        advertisement = next(p for p in client.received if is_advertisement(p))
        assert advertisement[56:88][16:] == PREFIX.network_address.packed
        assert not bench.app.by_network
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_a_prefix_routed_to_another_session_refuses_the_login(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = await start_with_prefix(tmp_path, PREFIX, OWN_PREFIX)
    try:
        await connect_ipv6(bench)
        second = await bench.connect(ipv6=True)
        await asyncio.wait_for(second.down.wait(), TIMEOUT)
        assert "Framed-IPv6-Prefix 2001:db8:99::/64 is already routed to another session" in caplog.text
        assert len(bench.app.connections) == 1
    finally:
        await bench.app.shutdown()
        bench.tun.close()
