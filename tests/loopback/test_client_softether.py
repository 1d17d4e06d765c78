"""The real client (dial, TLS, :class:`~pysstp.client.app.ClientApp`) against the scripted SoftEther-like
server of tests/helpers/softether_like.py, served over real TLS on 127.0.0.1 (no root: the tunnel is a
stand-in).

The scripted server is sans-I/O; :class:`SoftEtherProtocol` gives it a socket and a clock, and a task calls
its timer so that it sends its SSTP echo requests, which the client must answer to stay up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import cast

import pytest

from pysstp.client.app import ClientApp
from pysstp.client.login import Login
from pysstp.client.settings import ClientSettings, TlsSettings
from pysstp.ppp.constants import AuthMethod
from test_client_loopback import RecordingTunnel

from helpers.loopback import make_certificate
from helpers.softether_like import SoftEtherLikeServer

TIMEOUT = 10.0
ECHO_INTERVAL = 0.2
"""SoftEther sends its SSTP echo every few seconds; a short one gives many in a short test."""
SILENCE_LIMIT = 10 * ECHO_INTERVAL
"""The scripted server hangs up after this long without a byte from the client: only answering its echoes
(the tunnel carries no traffic here) keeps the call up. Ten intervals, so that this process stalling for a
moment (a loaded machine) is not taken for a silent client: the server's timer may run before it reads
the answer that came in meanwhile."""
ECHOES = 15
"""Echoes answered before the test is content: they take 15 intervals, well beyond the silence limit."""


class SoftEtherProtocol(asyncio.Protocol):
    """One TLS connection to a :class:`SoftEtherLikeServer`."""

    def __init__(self, peer: SoftEtherLikeServer) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport does not derive from asyncio.Transport.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.timer = asyncio.ensure_future(self._tick())

    def data_received(self, data: bytes) -> None:
        self._send(self.peer.receive(data, self.loop.time()))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _send(self, answer: bytes) -> None:
        if answer and self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
        if self.peer.closed and self.transport is not None:
            # SoftEther hangs up after its CALL_DISCONNECT_ACK (or after giving up on a silent client).
            self.transport.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(ECHO_INTERVAL / 3)
            self._send(self.peer.handle_timer(self.loop.time()))


@dataclass
class SoftEther:
    """The listening server, its certificate, and the scripted peer of each connection."""

    port: int
    cert: Path
    peers: list[SoftEtherLikeServer] = field(default_factory=list)


@pytest.fixture
async def softether(tmp_path: Path) -> AsyncIterator[SoftEther]:
    cert, key, _ = make_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    peers: list[SoftEtherLikeServer] = []

    def accept() -> SoftEtherProtocol:
        peer = SoftEtherLikeServer(echo_interval=ECHO_INTERVAL, silence_limit=SILENCE_LIMIT)
        peers.append(peer)
        return SoftEtherProtocol(peer)

    server = await asyncio.get_running_loop().create_server(accept, "127.0.0.1", 0, ssl=context)
    try:
        yield SoftEther(server.sockets[0].getsockname()[1], cert, peers)
    finally:
        server.close()
        await server.wait_closed()


async def wait_for(predicate: object, what: str) -> None:
    """Poll ``predicate`` (a callable) until true, for at most :data:`TIMEOUT` seconds."""
    assert callable(predicate)
    for _ in range(int(TIMEOUT * 100)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.PAP])
async def test_client_comes_up_stays_up_and_disconnects(
    softether: SoftEther, method: AuthMethod, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="pysstp.client")
    settings = ClientSettings(
        host="sstp.test",
        port=softether.port,
        user="alice",
        auth_methods=(method,),
        tls=TlsSettings(ca_file=softether.cert),
    )
    # sstp.test is only a name in the certificate: dial the address, check the name.
    settings = dataclasses.replace(
        settings, host="127.0.0.1", tls=dataclasses.replace(settings.tls, sni="sstp.test")
    )
    tunnel = RecordingTunnel()
    stop = asyncio.Event()
    task = asyncio.ensure_future(ClientApp(settings, Login("alice", "alicepw"), tunnel, stop).run())  # type: ignore[arg-type]
    try:
        await wait_for(lambda: tunnel.connection is not None or task.done(), "the call to come up")
        assert not task.done(), task.result()
        (up,) = tunnel.applied
        assert up.auth_method is method
        assert up.local_address == IPv4Address("192.168.30.10")
        assert up.peer_address == IPv4Address("192.168.30.1")
        assert up.dns_servers == (IPv4Address("192.168.30.1"),)
        (peer,) = softether.peers
        assert peer.authenticated and peer.ipcp_up

        # Many of SoftEther's echo requests, for far longer than its (shortened) silence limit.
        await wait_for(lambda: peer.echo_responses >= ECHOES or peer.closed, f"{ECHOES} echoes answered")
        assert not task.done() and not peer.closed
        assert tunnel.connection is not None and not tunnel.connection.closed
        assert len(tunnel.applied) == 1  # no reconnect happened
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)
    assert peer.closed  # the client's CALL_DISCONNECT reached it
    assert tunnel.connection is None
    assert "did not confirm the disconnect" not in caplog.text
