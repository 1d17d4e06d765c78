"""Behind a load balancer: the PROXY protocol and TLS offload, with the real client through a small TLS
terminator (or plain TCP forwarder) that may put a PROXY header first, like HAProxy does."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from pysstp.link import LinkUp
from pysstp.runtime import loop_name
from pysstp.server.app import ServerConnection
from pysstp.server.proxy import Address
from pysstp.sstp.constants import HashProtocol

from helpers.loopback import Bench, start_bench
from helpers.proxy_header import v1_header, v2_header

TIMEOUT = 10
CLIENT = ("198.51.100.7", 40123)
"""The address the load balancer says the client has."""
CLIENT6 = ("2001:db8::77", 50000)
CLIENT_MAPPED = ("::ffff:" + CLIENT[0], CLIENT[1])
LOOPBACK = [IPv4Network("127.0.0.1/32")]


async def wait_for(condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


class Terminator:
    """A load balancer on 127.0.0.1: TLS terminated with ``context`` (or bytes passed as they are), each
    connection to the server preceded by ``header``."""

    def __init__(self, backend_port: int, context: ssl.SSLContext | None, header: bytes) -> None:
        self.backend_port = backend_port
        self.context = context
        self.header = header
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
            up_writer.write(self.header)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


@contextlib.asynccontextmanager
async def behind(
    tmp_path: Path, *, offload: bool, header: bytes = b"", **options: object
) -> AsyncIterator[tuple[Bench, Bench]]:
    """A server and the same bench seen through a terminator (its port is the terminator's)."""
    bench = await start_bench(tmp_path, offload=offload, **options)  # type: ignore[arg-type]
    context = None
    if offload:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(bench.cert_path, bench.cert_path.with_name("key.pem"))
    terminator = Terminator(bench.port, context, header)
    try:
        port = await terminator.start()
        yield bench, dataclasses.replace(bench, port=port)
    finally:
        await terminator.stop()
        await bench.app.shutdown()
        bench.tun.close()


def only_connection(bench: Bench) -> ServerConnection:
    (connection,) = bench.app.connections
    return connection


async def test_offload_call_comes_up_with_the_terminators_certificate_bound(tmp_path: Path) -> None:
    async with behind(tmp_path, offload=True) as (bench, front):
        client = await front.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        up = client.first(LinkUp)
        assert isinstance(up, LinkUp) and up.hash_protocol is HashProtocol.SHA256
        connection = only_connection(bench)
        assert connection.info.tls is None
        assert connection.transport is not None
        assert connection.transport.get_extra_info("ssl_object") is None
        if loop_name(asyncio.get_running_loop()) == "asyncio":
            # The plain transport reads as much at a time as a TLS one (connection.adapt_tls_transport;
            # uvloop's transports are left as they are).
            assert getattr(connection.transport, "max_size", None) == 64 * 1024


async def test_offload_with_the_wrong_binding_hash_fails_the_binding(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = {HashProtocol.SHA256: bytes(32), HashProtocol.SHA1: bytes(20)}
    async with behind(
        tmp_path,
        offload=True,
        configure=lambda config: dataclasses.replace(config, certificate_hashes=wrong),
    ) as (_, front):
        client = await front.connect()
        await asyncio.wait_for(client.down.wait(), TIMEOUT)
        assert not client.up.is_set()
        await wait_for(lambda: "crypto binding failed: wrong certificate hash" in caplog.text)


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "tls"])
@pytest.mark.parametrize(
    ("header", "client"),
    [
        (v1_header(CLIENT), CLIENT),
        (v2_header(CLIENT), CLIENT),
        (v1_header(CLIENT6), CLIENT6),
        (v2_header(CLIENT6), CLIENT6),
        # A balancer on a dual-stack socket names an IPv4 client IPv4-mapped: it is that IPv4 client.
        (v1_header(CLIENT_MAPPED), CLIENT),
        (v2_header(CLIENT_MAPPED), CLIENT),
    ],
    ids=["v1", "v2", "v1-ipv6", "v2-ipv6", "v1-mapped", "v2-mapped"],
)
async def test_proxy_header_gives_the_server_the_clients_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, offload: bool, header: bytes, client: Address
) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.server")
    async with behind(tmp_path, offload=offload, header=header, proxy_sources=LOOPBACK) as (bench, front):
        call = await front.connect()
        await asyncio.wait_for(call.up.wait(), TIMEOUT)
        connection = only_connection(bench)
        peer = f"{client[0]}:{client[1]}"
        assert connection.peer == connection.info.peer == peer
        assert connection.source == client[0]
        assert connection.context.calling_station == client[0]
        await wait_for(lambda: f"{peer}: user 'alice' up" in caplog.text)
        assert bench.app.listener.proxy_header_failures == 0


async def test_proxy_header_unknown_keeps_the_real_address(tmp_path: Path) -> None:
    async with behind(tmp_path, offload=True, header=v1_header(None), proxy_sources=LOOPBACK) as (
        bench,
        front,
    ):
        call = await front.connect()
        await asyncio.wait_for(call.up.wait(), TIMEOUT)
        assert only_connection(bench).source == "127.0.0.1"


async def test_source_not_allowed_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with behind(
        tmp_path, offload=True, header=v2_header(CLIENT), proxy_sources=[IPv4Network("192.0.2.0/24")]
    ) as (bench, front):
        call = await front.connect()
        await asyncio.wait_for(call.down.wait(), TIMEOUT)
        await wait_for(lambda: bench.app.listener.proxy_header_failures == 1)
        (record,) = [r for r in caplog.records if "refused" in r.getMessage()]
        assert record.levelno == logging.WARNING
        assert record.getMessage().startswith("127.0.0.1:")
        assert record.getMessage().endswith(
            ": refused: not in proxy_sources, so it may not send PROXY headers"
        )
        assert not bench.app.connections


async def raw_connection(port: int, data: bytes, *, close: bool = True) -> asyncio.StreamWriter:
    """A connection to the server that sends ``data`` (and closes unless told not to)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    if close:
        writer.close()
    return writer


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "tls"])
async def test_garbage_instead_of_a_header_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, offload: bool
) -> None:
    async with behind(tmp_path, offload=offload, proxy_sources=LOOPBACK) as (bench, _):
        await raw_connection(
            bench.port, b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"
        )
        await wait_for(lambda: bench.app.listener.proxy_header_failures == 1)
        (record,) = [r for r in caplog.records if "refused" in r.getMessage()]
        assert record.levelno == logging.WARNING
        assert record.getMessage().endswith(": refused: bad PROXY header: not a PROXY protocol header")
        assert not bench.app.connections and bench.app.listener.handshake_failures == 0


async def test_a_partial_header_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.server")
    async with behind(tmp_path, offload=True, proxy_sources=LOOPBACK) as (bench, _):
        await raw_connection(bench.port, v2_header(CLIENT)[:20])
        await wait_for(lambda: bench.app.listener.proxy_header_failures == 1)
        assert "refused: closed the connection in its PROXY header" in caplog.text


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "tls"])
@pytest.mark.parametrize("header", [v2_header(None, local=True), b""], ids=["local", "nothing"])
@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
async def test_a_health_check_is_answered_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, offload: bool, header: bytes, reset: bool
) -> None:
    """HAProxy's checks: a LOCAL header (or, without check-send-proxy, nothing), then close or reset."""
    caplog.set_level(logging.DEBUG, logger="pysstp.server")
    async with behind(tmp_path, offload=offload, proxy_sources=LOOPBACK) as (bench, _):
        for _ in range(3):
            writer = await raw_connection(bench.port, header, close=False)
            if reset:
                # SO_LINGER with a zero timeout: close() sends RST, as HAProxy's checks do.
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        await wait_for(lambda: caplog.text.count("(a health check)") == 3)
        assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
        listener = bench.app.listener
        assert listener.proxy_header_failures == listener.handshake_failures == 0
        assert not bench.app.connections
        assert not bench.app.backoff.refused("127.0.0.1")


async def test_the_header_arrives_in_pieces(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The header is read across reads, and not one byte of the client's beyond it: the server reads the
    whole request after it (and refuses its method)."""
    async with behind(tmp_path, offload=True, proxy_sources=LOOPBACK) as (bench, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", bench.port)
        header = v1_header(CLIENT)
        for index in range(0, len(header), 7):
            writer.write(header[index : index + 7])
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        assert answer.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
        assert "198.51.100.7:40123: call ended: HTTP request rejected: 501 Not Implemented: method 'GET'" in (
            caplog.text
        )
        writer.close()


async def test_a_local_header_with_a_call_after_it_is_served(tmp_path: Path) -> None:
    async with behind(tmp_path, offload=True, header=v2_header(None, local=True), proxy_sources=LOOPBACK) as (
        bench,
        front,
    ):
        call = await front.connect()
        await asyncio.wait_for(call.up.wait(), TIMEOUT)
        assert only_connection(bench).source == "127.0.0.1"


async def test_no_complete_header_in_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.server")
    async with behind(tmp_path, offload=True, proxy_sources=LOOPBACK) as (bench, _):
        bench.app.listener.handshake_timeout = 0.2
        writer = await raw_connection(bench.port, b"PROXY TCP4 ", close=False)
        await wait_for(lambda: bench.app.listener.proxy_header_failures == 1)
        assert "refused: no complete PROXY header in time" in caplog.text
        writer.close()
