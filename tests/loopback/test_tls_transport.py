"""An adapted asyncio TLS transport reads in smaller pieces through a shared buffer, and loses nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from pathlib import Path

import pytest

from pysstp.connection import TLS_READ_SIZE, adapt_tls_transport
from pysstp.runtime import loop_name

from helpers.loopback import make_certificate

SENT = 3 * 1024 * 1024 + 17
"""Many reads' worth, and not a multiple of any read or record size."""


class _Collector(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[bytes]) -> None:
        self.done = done
        self.received = bytearray()
        self.transports: list[asyncio.BaseTransport] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        adapt_tls_transport(transport)
        self.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= SENT and not self.done.done():
            self.done.set_result(bytes(self.received))


async def test_reads_are_smaller_shared_and_complete(tmp_path: Path) -> None:
    cert, key, _ = make_certificate(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(cert)
    loop = asyncio.get_running_loop()
    if loop_name(loop) != "asyncio":
        pytest.skip("asyncio's own TLS transport is adapted; uvloop's is left as it is")
    done: asyncio.Future[bytes] = loop.create_future()
    collector = _Collector(done)
    server = await loop.create_server(lambda: collector, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    payload = os.urandom(SENT)
    writers = []
    try:
        for _ in range(2):
            transport, _protocol = await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port, ssl=client_context, server_hostname="sstp.test"
            )
            writers.append(transport)
        writers[0].write(payload)
        received = await asyncio.wait_for(done, 30)
    finally:
        for transport in writers:
            transport.close()
        server.close()
        await server.wait_closed()
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    protocols = [t._ssl_protocol for t in collector.transports]
    assert len(protocols) == 2
    assert all(p.max_size == TLS_READ_SIZE for p in protocols)
    assert protocols[0]._ssl_buffer is protocols[1]._ssl_buffer
    assert len(protocols[0]._ssl_buffer) == TLS_READ_SIZE
