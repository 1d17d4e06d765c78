"""Per-session rate limits in the server's data path, with real calls over loopback TLS and a fake TUN:
which limit a session gets (the server's, or its user's own), and that packets beyond it are dropped and
counted each way. Counts, not speeds: a burst far beyond the bucket is offered at once."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from pysstp.aaa.userdb import UserDatabase
from pysstp.link import LinkUp
from pysstp.server.admission import Limits
from pysstp.server.stats import DropCause

from helpers.loopback import SERVER_ADDRESS, Bench, Client, start_bench

TIMEOUT = 10
LIMIT = 80_000
"""bit/s: 10 kB/s; the bucket holds two packets of the MTU and refills one of these in 0.1 s."""
OFFERED = 60
"""Packets offered at once: fewer than the server reads from its TUN in one batch."""
SIZE = 1000


def udp_packet(src: IPv4Address, dst: IPv4Address, number: int) -> bytes:
    payload = number.to_bytes(4, "big") + bytes(SIZE - 28 - 4)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, SIZE - 8, 0, 0, 64, 17, 0, src.packed, dst.packed)
    return header + struct.pack("!HHHH", 9, 9, SIZE - 20, 0) + payload


async def wait_for(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT)


async def call(bench: Bench, user: str) -> tuple[Client, IPv4Address]:
    client = await bench.connect(user, f"{user}pw")
    await asyncio.wait_for(client.up.wait(), TIMEOUT)
    up = client.first(LinkUp)
    assert isinstance(up, LinkUp) and up.local_address is not None
    return client, up.local_address


def rate_drops(bench: Bench) -> int:
    return sum(session.rate_drops for session in bench.app.snapshot().sessions)


async def test_a_limited_session_gets_its_burst_and_the_rest_is_dropped_each_way(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path, limits=Limits(rate_in=LIMIT, rate_out=LIMIT))
    try:
        client, address = await call(bench, "alice")
        (session,) = bench.app.snapshot().sessions
        assert (session.limit_in, session.limit_out) == (LIMIT, LIMIT)

        for number in range(OFFERED):
            bench.tun.inject(udp_packet(SERVER_ADDRESS, address, number))
        await wait_for(lambda: len(client.received) + rate_drops(bench) == OFFERED)
        out_drops = rate_drops(bench)
        # The bucket's burst (two packets) and whatever it refilled while the batches went through.
        assert 2 <= len(client.received) < OFFERED / 2 < out_drops

        assert client.connection is not None
        client.connection.send_ip_batch([udp_packet(address, SERVER_ADDRESS, n) for n in range(OFFERED)])
        await wait_for(lambda: len(bench.tun.written) + rate_drops(bench) - out_drops == OFFERED)
        assert 2 <= len(bench.tun.written) < OFFERED / 2

        stats = bench.app.snapshot()
        assert stats.drops[DropCause.RATE_LIMIT] == rate_drops(bench) > OFFERED
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_a_users_own_limit_replaces_the_servers(tmp_path: Path) -> None:
    db = UserDatabase(tmp_path / "users.toml", create=True)
    db.add("alice", "alicepw", rate_out=0)  # exempt from the server's limit
    db.add("bob", "bobpw", rate_in=2 * LIMIT)
    bench = await start_bench(tmp_path, credentials=db, limits=Limits(rate_in=LIMIT, rate_out=LIMIT))
    try:
        alice, address = await call(bench, "alice")
        await call(bench, "bob")
        limits = {s.user: (s.limit_in, s.limit_out) for s in bench.app.snapshot().sessions}
        assert limits == {"alice": (LIMIT, 0), "bob": (2 * LIMIT, LIMIT)}

        for number in range(OFFERED):
            bench.tun.inject(udp_packet(SERVER_ADDRESS, address, number))
        await wait_for(lambda: len(alice.received) == OFFERED)
        assert rate_drops(bench) == 0
    finally:
        await bench.app.shutdown()
        bench.tun.close()
