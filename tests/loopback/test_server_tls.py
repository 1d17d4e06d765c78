"""The server's own TLS layer (server/tls.py) against asyncio's (or uvloop's) TLS client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import logging
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pysstp.connection import receive_buffer
from pysstp.server.listener import TlsListener, describe_handshake_failure
from pysstp.server.tls import BIO_SLICE, ServerTlsTransport, accept_tls

from helpers.loopback import make_certificate

TIMEOUT = 30.0
"""A generous deadline for conditions that come quickly on any machine."""
BIG = 1024 * 1024 + 17
"""Many TLS records (16 KiB each) and reads, and not a multiple of either."""


class Recorder(asyncio.Protocol):
    """Either end's protocol: everything it is told, and events to wait on."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.arrived = asyncio.Event()
        self.eof = False
        self.lost: list[Exception | None] = []
        self.gone = asyncio.Event()
        self.paused = asyncio.Event()
        self.resumed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.received += data
        self.arrived.set()

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)
        self.gone.set()

    def pause_writing(self) -> None:
        self.paused.set()

    def resume_writing(self) -> None:
        self.resumed.set()

    async def wait_for(self, size: int) -> bytes:
        while len(self.received) < size:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), TIMEOUT)
        return bytes(self.received)


@dataclass
class Pair:
    """A call over the server's TLS layer: its protocol and transport, and the client's."""

    server: Recorder
    tls: ServerTlsTransport
    client: Recorder
    client_transport: asyncio.Transport
    contexts: tuple[ssl.SSLContext, ssl.SSLContext]
    closers: list[Callable[[], None]] = field(default_factory=list)


@pytest.fixture
def contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key, _ = make_certificate(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.num_tickets = 0
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(cert)
    return server_context, client_context


@pytest.fixture
async def listening() -> AsyncIterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def connect(
    listening: socket.socket,
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    handshake_timeout: float = TIMEOUT,
) -> Pair:
    loop = asyncio.get_running_loop()
    server_context, client_context = contexts
    server = Recorder()
    client = Recorder()
    dialled = asyncio.ensure_future(
        loop.create_connection(
            lambda: client,
            *listening.getsockname(),
            ssl=client_context,
            server_hostname="sstp.test",
        )
    )
    conn, _ = await loop.sock_accept(listening)
    tls = await accept_tls(conn, server_context, lambda: server, handshake_timeout)
    client_transport, _ = await asyncio.wait_for(dialled, TIMEOUT)
    return Pair(server, tls, client, client_transport, contexts)


def _making(made: list[Recorder]) -> Any:
    """A protocol factory that keeps what it made."""

    def factory() -> Recorder:
        made.append(Recorder())
        return made[-1]

    return factory


async def raw_client(listening: socket.socket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*listening.getsockname())


async def test_handshake_then_big_writes_both_ways(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    pair = await connect(listening, contexts)
    assert pair.server.transport is pair.tls
    up = os.urandom(BIG)
    down = os.urandom(BIG)
    pair.client_transport.write(up)
    pair.tls.write(memoryview(down))
    pair.tls.writelines([b"a", b"bc"])
    received_up = await pair.server.wait_for(BIG)
    received_down = await pair.client.wait_for(BIG + 3)
    assert hashlib.sha256(received_up).digest() == hashlib.sha256(up).digest()
    assert received_down == down + b"abc"
    pair.tls.close()
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)


class _Watched:
    """A memory BIO that remembers the most it held."""

    def __init__(self, real: ssl.MemoryBIO) -> None:
        self.real = real
        self.most = 0

    @property
    def pending(self) -> int:
        return self.real.pending

    def write(self, data: Any) -> int:
        count = self.real.write(data)
        self.most = max(self.most, self.real.pending)
        return count

    def read(self, size: int = -1) -> bytes:
        self.most = max(self.most, self.real.pending)
        return self.real.read(size)


async def test_openssl_buffers_hold_a_record_or_two_however_big_the_reads_and_writes(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """A memory BIO keeps room for the most it ever held (BIO_SLICE's docstring)."""
    pair = await connect(listening, contexts)
    incoming = pair.tls._incoming = _Watched(pair.tls._incoming)  # type: ignore[assignment]
    outgoing = pair.tls._outgoing = _Watched(pair.tls._outgoing)  # type: ignore[assignment]
    up = os.urandom(BIG)
    down = os.urandom(BIG)
    pair.client_transport.write(up)
    for start in range(0, BIG, 96 * 1024):  # TUN batches of 64 full-sized packets
        pair.tls.write(down[start : start + 96 * 1024])
    assert await pair.server.wait_for(BIG) == up
    assert await pair.client.wait_for(BIG) == down
    record = 16 * 1024 + 256 + 5  # the largest TLS 1.3 record on the wire (RFC 8446 5.2)
    assert record >= BIO_SLICE and incoming.most <= 2 * record
    assert outgoing.most <= record
    pair.tls.close()
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)


async def test_extra_info_is_the_tls_connection_and_the_socket(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    pair = await connect(listening, contexts)
    tls = pair.tls
    ssl_object = tls.get_extra_info("ssl_object")
    assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
    assert tls.get_extra_info("cipher") == ssl_object.cipher()
    assert tls.get_extra_info("sslcontext") is contexts[0]
    assert tls.get_extra_info("peercert") == ssl_object.getpeercert()
    assert tls.get_extra_info("peername") == pair.client_transport.get_extra_info("sockname")
    assert tls.get_extra_info("sockname") == listening.getsockname()
    assert tls.get_extra_info("socket").family == socket.AF_INET
    assert tls.get_extra_info("nothing", "default") == "default"
    assert tls.get_protocol() is pair.server
    assert not tls.is_closing() and tls.is_reading() and not tls.can_write_eof()
    tls.abort()
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)
    assert pair.server.lost == [None] and tls.is_closing()


async def test_connections_keep_no_receive_buffer_of_their_own(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    first = await connect(listening, contexts)
    second = await connect(listening, contexts)
    assert first.tls.get_buffer(-1) is second.tls.get_buffer(-1) is receive_buffer()
    for pair in (first, second):
        pair.tls.abort()
        await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)


async def test_writing_pauses_while_the_peer_does_not_read(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    pair = await connect(listening, contexts)
    pair.tls.set_write_buffer_limits(high=64 * 1024)
    assert pair.tls.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
    pair.client_transport.pause_reading()
    chunk = b"x" * 16384
    written = 0
    while not pair.server.paused.is_set():
        pair.tls.write(chunk)
        written += len(chunk)
        # Let the kernel's buffers fill: the socket transport queues only what they do not take.
        await asyncio.sleep(0)
    assert pair.tls.get_write_buffer_size() >= 64 * 1024
    pair.client_transport.resume_reading()
    await asyncio.wait_for(pair.server.resumed.wait(), TIMEOUT)
    assert len(await pair.client.wait_for(written)) == written
    pair.tls.close()
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)


async def test_close_sends_close_notify_after_the_data(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    pair = await connect(listening, contexts)
    last = os.urandom(BIG)
    pair.tls.write(last)
    pair.tls.close()
    assert pair.tls.is_closing()
    pair.tls.write(b"not after close")
    await asyncio.wait_for(pair.client.gone.wait(), TIMEOUT)
    assert bytes(pair.client.received) == last
    assert pair.client.eof and pair.client.lost == [None]
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)
    assert pair.server.lost == [None]


async def test_the_peers_close_notify_is_answered(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    pair = await connect(listening, contexts)
    pair.client_transport.write(b"last words")
    pair.client_transport.close()
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)
    assert bytes(pair.server.received) == b"last words"
    assert pair.server.eof and pair.server.lost == [None]
    await asyncio.wait_for(pair.client.gone.wait(), TIMEOUT)
    assert pair.client.lost == [None]


async def test_a_reset_reaches_the_call_once(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    pair = await connect(listening, contexts)
    sock = pair.client_transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    pair.client_transport.abort()
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)
    assert len(pair.server.lost) == 1
    assert isinstance(pair.server.lost[0], ConnectionResetError)
    pair.tls.write(b"into the void")
    pair.tls.close()
    pair.tls.abort()
    await asyncio.sleep(0)
    assert len(pair.server.lost) == 1


async def test_a_broken_record_ends_the_call_with_the_tls_error(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    pair = await connect(listening, contexts)
    fd = pair.client_transport.get_extra_info("socket").fileno()
    # An application-data record that no key made, past the client's TLS.
    os.write(fd, b"\x17\x03\x03\x00\x20" + os.urandom(32))
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)
    assert len(pair.server.lost) == 1
    assert isinstance(pair.server.lost[0], ssl.SSLError)
    pair.client_transport.abort()


async def test_reading_pauses_and_resumes(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    pair = await connect(listening, contexts)
    pair.tls.pause_reading()
    assert not pair.tls.is_reading()
    pair.client_transport.write(b"held back")
    while pair.client_transport.get_write_buffer_size():
        await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)
    assert not pair.server.received
    pair.tls.resume_reading()
    assert await pair.server.wait_for(9) == b"held back"
    pair.tls.close()
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)


class _WantsToReadFirst:
    """An SSLObject whose next write needs a read first, as OpenSSL's does while a post-handshake
    message from the peer is incomplete (one Python cannot make the peer send)."""

    def __init__(self, real: ssl.SSLObject) -> None:
        self.real = real
        self.refuse = True

    def write(self, data: Any) -> int:
        if self.refuse:
            self.refuse = False
            raise ssl.SSLWantReadError
        return self.real.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_writes_wait_in_order_when_openssl_must_read_first(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    pair = await connect(listening, contexts)
    tls = pair.tls
    tls._sslobj = _WantsToReadFirst(tls._sslobj)  # type: ignore[assignment]
    tls.write(b"first ")
    tls.write(b"second")
    assert tls.get_write_buffer_size() == 12
    pair.client_transport.write(b"a read")
    await pair.server.wait_for(6)
    assert await pair.client.wait_for(12) == b"first second"
    assert tls.get_write_buffer_size() == 0
    tls.close()
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)


def _ssl_pointer(ssl_object: ssl.SSLObject, libssl: ctypes.CDLL) -> int | None:
    """The ``SSL *`` of an SSLObject: the field after the weak reference in CPython's PySSLSocket
    (Modules/_ssl.c); checked against what OpenSSL says of it, ``None`` where that does not hold."""
    inner = ssl_object._sslobj  # type: ignore[attr-defined]
    pointer = ctypes.c_void_p.from_address(id(inner) + 3 * ctypes.sizeof(ctypes.c_void_p)).value
    if not pointer:
        return None
    libssl.SSL_get_version.restype = ctypes.c_char_p
    libssl.SSL_get_version.argtypes = [ctypes.c_void_p]
    if libssl.SSL_get_version(pointer).decode() != ssl_object.version():
        return None
    return pointer


async def test_a_key_update_from_the_peer_is_answered(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """Python has no KeyUpdate call (RFC 8446 4.6.3); OpenSSL's SSL_key_update on the client's SSL
    object, through ctypes, makes one."""
    pair = await connect(listening, contexts)
    ssl_object = pair.client_transport.get_extra_info("ssl_object")
    if ssl_object.version() != "TLSv1.3":
        pytest.skip("KeyUpdate is TLS 1.3's")
    try:
        libssl = ctypes.CDLL("libssl.so.3")
    except OSError:
        pytest.skip("no libssl.so.3 to call SSL_key_update in")
    pointer = _ssl_pointer(ssl_object, libssl)
    if pointer is None:
        pytest.skip("this Python's SSL object is not laid out as expected")
    libssl.SSL_key_update.argtypes = [ctypes.c_void_p, ctypes.c_int]
    assert libssl.SSL_key_update(pointer, 1) == 1  # SSL_KEY_UPDATE_REQUESTED: the server must answer
    pair.client_transport.write(b"sent with new keys")  # the KeyUpdate goes out with it
    assert await pair.server.wait_for(18) == b"sent with new keys"
    # The server's own KeyUpdate went out with the read, before any write of the call.
    assert pair.tls._outgoing.pending == 0
    pair.tls.write(b"answered with new keys")
    assert await pair.client.wait_for(22) == b"answered with new keys"
    pair.client_transport.write(b" and on")
    assert await pair.server.wait_for(25) == b"sent with new keys and on"
    pair.tls.close()
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)


async def test_a_tls12_renegotiation_is_refused(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """OpenSSL 3 refuses a client's renegotiation with a no_renegotiation alert, which goes out with the
    read that brought the ClientHello; the client gives up, the call ends once."""
    contexts[1].maximum_version = ssl.TLSVersion.TLSv1_2
    pair = await connect(listening, contexts)
    ssl_object = pair.client_transport.get_extra_info("ssl_object")
    try:
        libssl = ctypes.CDLL("libssl.so.3")
    except OSError:
        pytest.skip("no libssl.so.3 to call SSL_renegotiate in")
    pointer = _ssl_pointer(ssl_object, libssl)
    if pointer is None:
        pytest.skip("this Python's SSL object is not laid out as expected")
    libssl.SSL_renegotiate.argtypes = [ctypes.c_void_p]
    assert libssl.SSL_renegotiate(pointer) == 1
    pair.client_transport.write(b"after a new handshake")  # sends the ClientHello first
    await asyncio.wait_for(pair.client.gone.wait(), TIMEOUT)
    assert isinstance(pair.client.lost[0], ssl.SSLError)
    assert pair.client.lost[0].reason == "NO_RENEGOTIATION"
    await asyncio.wait_for(pair.server.gone.wait(), TIMEOUT)
    assert len(pair.server.lost) == 1


async def test_a_silent_client_times_out(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await raw_client(listening)
    conn, _ = await loop.sock_accept(listening)
    made: list[Recorder] = []
    with pytest.raises(ConnectionAbortedError) as late:
        await accept_tls(conn, contexts[0], _making(made), 0.05)
    assert describe_handshake_failure(late.value) == (logging.INFO, "no complete TLS handshake in time")
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    assert not made
    writer.close()


async def test_a_client_that_closes_in_the_handshake(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    loop = asyncio.get_running_loop()
    _reader, writer = await raw_client(listening)
    conn, _ = await loop.sock_accept(listening)
    writer.close()
    with pytest.raises(ConnectionResetError) as closed:
        await accept_tls(conn, contexts[0], Recorder, TIMEOUT)
    assert describe_handshake_failure(closed.value)[1] == "closed the connection during the TLS handshake"


async def test_garbage_instead_of_a_client_hello_is_one_log_line(
    listening: socket.socket,
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    made: list[Recorder] = []
    listener = TlsListener(_making(made), contexts[0], TIMEOUT)
    listener.adopt(listening)
    try:
        reader, writer = await raw_client(listening)
        writer.write(b"\x16\x03\x01garbage that is not a TLS ClientHello" * 4)
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        # A TLS alert (content type 21), not silence, so that the client can tell why.
        assert answer[:1] == b"\x15"
        while not listener.handshake_failures:
            await asyncio.sleep(0.01)
    finally:
        await listener.close()
    assert listener.handshake_failures == 1 and not made and not errors
    failures = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is None
    assert not any(r.exc_info for r in caplog.records)


async def test_plain_http_gets_the_words_for_it(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await raw_client(listening)
    conn, _ = await loop.sock_accept(listening)
    writer.write(b"GET / HTTP/1.1\r\nHost: sstp.test\r\n\r\n")
    with pytest.raises(ssl.SSLError) as refused:
        await accept_tls(conn, contexts[0], Recorder, TIMEOUT)
    assert describe_handshake_failure(refused.value)[1] == "plain HTTP sent to the TLS port"
    await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()


async def test_an_abandoned_handshake_closes_the_socket(
    listening: socket.socket, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await raw_client(listening)
    conn, _ = await loop.sock_accept(listening)
    task = asyncio.ensure_future(accept_tls(conn, contexts[0], Recorder, TIMEOUT))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()
