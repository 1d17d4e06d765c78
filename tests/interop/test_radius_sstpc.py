"""Debian's sstpc through the pysstp server whose logins FreeRADIUS 3.2 decides: the HLAK built from
FreeRADIUS's MS-MPPE keys must match what sstpc binds with (its real crypto binding), or the server
aborts the call."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pysstp.aaa.radius import NasIdentity, RadiusBackend, RadiusClient, RadiusServer
from pysstp.ppp.events import Ipv4Up

from helpers.conversation import ipv4_packet
from helpers.freeradius import SECRET, RadiusHost, RadiusUser, radius_host
from helpers.interop_sstpc import DelayProxy, SstpcOptions, SstpcPeer, skip_reason, start_sstpc
from helpers.loopback import SERVER_ADDRESS, start_bench

__all__ = ["radius_host"]  # fixture

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

STEP_TIMEOUT = 10.0
"""Generous bound for each step once sstpc reached PPP (they take milliseconds here)."""


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    """Stops everything a test started, last first, also when the test fails."""
    async with contextlib.AsyncExitStack() as stack:
        yield stack


async def eventually(predicate: Callable[[], object], what: str, peer: SstpcPeer) -> None:
    """Poll ``predicate`` for up to :data:`STEP_TIMEOUT`; fail with sstpc's log."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {STEP_TIMEOUT} s\n{peer.describe()}")
        await asyncio.sleep(0.02)


async def test_sstpc_mschapv2_binding_with_keys_from_freeradius(
    radius_host: RadiusHost, tmp_path: Path, stack: contextlib.AsyncExitStack
) -> None:
    freeradius = radius_host.freeradius(tmp_path / "raddb", [RadiusUser("alice", "alicepw", nt_only=True)])
    client = RadiusClient([RadiusServer(freeradius.address, SECRET, port=freeradius.port)])
    stack.push_async_callback(client.close)
    bench = await start_bench(tmp_path, backend=RadiusBackend(client, NasIdentity("sstpc-test")))
    stack.callback(bench.tun.close)
    stack.push_async_callback(bench.app.shutdown)
    proxy = DelayProxy(bench.port)
    await proxy.start()
    stack.push_async_callback(proxy.close)
    peer = await start_sstpc(
        SstpcOptions(port=proxy.port, log_dir=tmp_path), cleanup=stack.push_async_callback
    )
    await peer.wait(peer.authenticated, STEP_TIMEOUT, "authentication through FreeRADIUS")
    await peer.wait(peer.ipv4_up, STEP_TIMEOUT, "IPCP")
    await eventually(
        lambda: "Connection Established" in peer.log_text(), "sstpc: Connection Established", peer
    )
    (connection,) = bench.app.connections
    assert (connection.info.auth_method, connection.info.hash_protocol) == ("mschapv2", "SHA256")
    up = next(e for e in peer.events if isinstance(e, Ipv4Up))
    packet = ipv4_packet(up.local_address, SERVER_ADDRESS, b"through sstpc and FreeRADIUS")
    peer.send_ipv4(packet)
    await eventually(lambda: packet in bench.tun.written, "IPv4 packet in the server's TUN", peer)
