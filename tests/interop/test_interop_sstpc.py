"""Interop tier 1 (issue 5): Debian's sstpc as the SSTP client against the pysstp server.

sstpc speaks SSTP and the crypto binding; the PPP behind it is pysstp's own client code (see
:mod:`interop_sstpc`). The server runs in-process with a FakeTun, so tunnelled packets can be checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pysstp.link import ServerConfig
from pysstp.ppp.constants import AuthMethod
from pysstp.ppp.events import Ipv4Up
from pysstp.server.app import ServerConnection
from pysstp.sstp.constants import HashProtocol

from helpers.conversation import ipv4_packet
from helpers.interop_sstpc import DelayProxy, SstpcOptions, SstpcPeer, skip_reason, start_sstpc
from helpers.loopback import SERVER_ADDRESS, Bench, make_certificate, start_bench

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

STEP_TIMEOUT = 10.0
"""Generous bound for each PPP/SSTP step after sstpc reached PPP (they take milliseconds here)."""


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    """Stops everything a test started, last first, also when the test fails."""
    async with contextlib.AsyncExitStack() as stack:
        yield stack


async def serve(
    tmp_path: Path, stack: contextlib.AsyncExitStack, configure: Callable[[ServerConfig], ServerConfig] | None
) -> tuple[Bench, int]:
    """Start the server and the handshake-delay proxy in front of it; return the bench and the port."""
    bench = await start_bench(tmp_path, configure=configure)
    stack.callback(bench.tun.close)
    stack.push_async_callback(bench.app.shutdown)
    proxy = DelayProxy(bench.port)
    await proxy.start()
    stack.push_async_callback(proxy.close)
    return bench, proxy.port


async def eventually(predicate: Callable[[], object], what: str, peer: SstpcPeer) -> None:
    """Poll ``predicate`` for up to :data:`STEP_TIMEOUT`; fail with sstpc's log."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {STEP_TIMEOUT} s\n{peer.describe()}")
        await asyncio.sleep(0.02)


def server_connection(bench: Bench) -> ServerConnection | None:
    """The one call the server has, if any."""
    return next(iter(bench.app.connections), None)


async def bring_up(
    tmp_path: Path,
    stack: contextlib.AsyncExitStack,
    *,
    configure: Callable[[ServerConfig], ServerConfig] | None = None,
    **options: object,
) -> tuple[Bench, SstpcPeer]:
    """Server + sstpc through authentication, the plugin ACK and IPCP."""
    bench, port = await serve(tmp_path, stack, configure)
    peer = await start_sstpc(
        SstpcOptions(port=port, log_dir=tmp_path, **options),  # type: ignore[arg-type]
        cleanup=stack.push_async_callback,
    )
    await peer.wait(peer.authenticated, STEP_TIMEOUT, "authentication")
    await peer.wait(peer.plugin_done, STEP_TIMEOUT, "plugin ACK from sstpc")
    await peer.wait(peer.ipv4_up, STEP_TIMEOUT, "IPCP")
    return bench, peer


async def assert_traffic_reaches_tun(bench: Bench, peer: SstpcPeer) -> None:
    """IPv4 from the assigned address reaches the server's TUN through sstpc, and the answer gets back."""
    up = next(e for e in peer.events if isinstance(e, Ipv4Up))
    packet = ipv4_packet(up.local_address, SERVER_ADDRESS, b"through sstpc")
    peer.send_ipv4(packet)
    await eventually(lambda: packet in bench.tun.written, "IPv4 packet in the server's TUN", peer)
    answer = ipv4_packet(SERVER_ADDRESS, up.local_address, b"back through sstpc")
    bench.tun.inject(answer)
    await eventually(lambda: answer in peer.received_ip, "IPv4 packet from the TUN at the PPP client", peer)


async def assert_call_up(bench: Bench, peer: SstpcPeer, auth_method: str, hash_protocol: str) -> None:
    """The server verified sstpc's CALL_CONNECTED and reports the call up with what was negotiated."""

    def up() -> bool:
        connection = server_connection(bench)
        return connection is not None and connection.info.hash_protocol is not None

    await eventually(up, "server-side call up", peer)
    connection = server_connection(bench)
    assert connection is not None
    assert (connection.info.auth_method, connection.info.hash_protocol) == (auth_method, hash_protocol)
    await eventually(
        lambda: "Connection Established" in peer.log_text(), "sstpc: Connection Established", peer
    )


@pytest.mark.parametrize(
    ("offered", "expected"),
    [(HashProtocol.SHA1 | HashProtocol.SHA256, "SHA256"), (HashProtocol.SHA1, "SHA1")],
    ids=["sha256", "sha1"],
)
async def test_mschapv2_binding_and_traffic(
    tmp_path: Path, stack: contextlib.AsyncExitStack, offered: HashProtocol, expected: str
) -> None:
    """sstpc picks SHA-256 when offered, else SHA-1; our server verifies its binding either way."""
    bench, peer = await bring_up(
        tmp_path, stack, configure=lambda c: dataclasses.replace(c, hash_protocols=offered)
    )
    await assert_call_up(bench, peer, "mschapv2", expected)
    await assert_traffic_reaches_tun(bench, peer)


async def test_pap_with_zero_hlak(tmp_path: Path, stack: contextlib.AsyncExitStack) -> None:
    """After PAP the plugin hands over no keys; sstpc binds with a zero HLAK and our server accepts it."""
    bench, peer = await bring_up(
        tmp_path,
        stack,
        configure=lambda c: dataclasses.replace(c, auth_methods=(AuthMethod.PAP,)),
        auth_methods=(AuthMethod.PAP,),
    )
    await assert_call_up(bench, peer, "pap", "SHA256")
    await assert_traffic_reaches_tun(bench, peer)


async def test_certificate_verified_by_sstpc(tmp_path: Path, stack: contextlib.AsyncExitStack) -> None:
    """With ``--ca-cert`` sstpc verifies our certificate (CN/SAN sstp.test, IP SAN 127.0.0.1)."""
    bench, port = await serve(tmp_path, stack, None)
    peer = await start_sstpc(
        SstpcOptions(port=port, log_dir=tmp_path, ca_cert=bench.cert_path), cleanup=stack.push_async_callback
    )
    await peer.wait(peer.ipv4_up, STEP_TIMEOUT, "IPCP")
    await assert_call_up(bench, peer, "mschapv2", "SHA256")
    assert "fail" not in peer.log_text().lower(), peer.describe()
    await assert_traffic_reaches_tun(bench, peer)


async def test_untrusted_certificate_is_refused_by_sstpc(
    tmp_path: Path, stack: contextlib.AsyncExitStack
) -> None:
    """Against another CA sstpc gives up after the HTTP exchange; the harness reports it, no retry."""
    _, port = await serve(tmp_path, stack, None)
    other = tmp_path / "other"
    other.mkdir()
    other_cert, _, _ = make_certificate(other)
    with pytest.raises(AssertionError, match="sstpc exited") as failure:
        await start_sstpc(
            SstpcOptions(port=port, log_dir=tmp_path, ca_cert=other_cert), cleanup=stack.push_async_callback
        )
    assert "Verification of server certificate failed" in str(failure.value)
    assert "exit code 254" in str(failure.value)


async def test_wrong_keys_make_the_server_abort(
    tmp_path: Path, stack: contextlib.AsyncExitStack, caplog: pytest.LogCaptureFixture
) -> None:
    """sstpc binds with keys that do not match the MS-CHAPv2 login: our server must abort the call."""
    caplog.set_level(logging.INFO, logger="pysstp")
    bench, port = await serve(tmp_path, stack, None)
    peer = await start_sstpc(
        SstpcOptions(port=port, log_dir=tmp_path, plugin_hlak=bytes(range(32))),
        cleanup=stack.push_async_callback,
    )
    # No wait for the plugin ACK: the server's abort may end sstpc before the harness has read it. The
    # server's log line says the keys were handed over (sstpc sends CALL_CONNECTED only after them).
    await eventually(lambda: "crypto binding failed" in caplog.text, "server: crypto binding failed", peer)
    await eventually(lambda: not bench.app.connections, "server dropping the call", peer)
    assert " up: " not in caplog.text
    assert not bench.tun.written
    # sstpc gets CALL_ABORT and gives up by itself, as a failure (1.0.18 exits with 255)
    assert await peer.wait_exit(STEP_TIMEOUT) not in (None, 0), peer.describe()
    assert "Connection was aborted" in peer.log_text(), peer.describe()


async def test_harness_retries_a_hang_once_and_then_fails_with_both_logs(
    tmp_path: Path, stack: contextlib.AsyncExitStack
) -> None:
    """The retry for sstpc's hang must not hide a real failure: two hangs fail, every sstpc is stopped.

    A proxy that never forwards stands in for the hang (sstpc alive, no CALL_CONNECT_ACK).
    """
    bench = await start_bench(tmp_path)
    stack.callback(bench.tun.close)
    stack.push_async_callback(bench.app.shutdown)
    proxy = DelayProxy(bench.port, delay=3600)
    await proxy.start()
    stack.push_async_callback(proxy.close)
    peers: list[SstpcPeer] = []

    def cleanup(stop: Callable[[], Awaitable[None]]) -> None:
        peers.append(stop.__self__)  # type: ignore[attr-defined]
        stack.push_async_callback(stop)

    with pytest.raises(AssertionError, match="never got CALL_CONNECT_ACK in 2 attempts") as failure:
        await start_sstpc(SstpcOptions(port=proxy.port, log_dir=tmp_path), ready_timeout=0.5, cleanup=cleanup)
    assert str(failure.value).count("Waiting for sstp-plugin to connect") == 2
    assert len(peers) == 2
    for peer in peers:
        assert peer.process is not None and peer.process.returncode is not None
        assert not peer.plugin_socket.exists()
