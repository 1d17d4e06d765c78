"""The metrics HTTP server on 127.0.0.1: /metrics and /health answers, other paths and methods, a
connection that sends nothing, and a clear error for an address in use."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence

import pytest

from pysstp.errors import SystemSetupError
from pysstp.server.metrics import CONTENT_TYPE, MetricsServer, start_metrics
from pysstp.server.stats import ServerStats

SNAPSHOTS = [ServerStats(worker=0, pid=1, started=0.0, connects=3), ServerStats(worker=1, pid=2, started=0.0)]


class Draining:
    """The server's draining flag, which a test flips."""

    def __init__(self) -> None:
        self.value = False

    def __call__(self) -> bool:
        return self.value


async def snapshots() -> Sequence[ServerStats]:
    return SNAPSHOTS


@pytest.fixture
def draining() -> Draining:
    return Draining()


@pytest.fixture
async def address(draining: Draining) -> AsyncIterator[tuple[str, int]]:
    server = MetricsServer(snapshots, draining)
    bound = await server.start("127.0.0.1", 0)
    yield bound
    await server.stop()


async def fetch(address: tuple[str, int], request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``request``; return the status line, the headers and the body of the answer."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(request)
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body) or request.startswith(b"HEAD")
    return status, headers, body


async def test_metrics_are_the_exposition_of_every_snapshot(address: tuple[str, int]) -> None:
    status, headers, body = await fetch(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
    assert status == "HTTP/1.0 200 OK"
    assert headers["Content-Type"] == CONTENT_TYPE
    assert b'pysstp_connects_total{worker="0"} 3.0\n' in body
    assert b'pysstp_connects_total{worker="1"} 0.0\n' in body


async def test_a_query_string_is_ignored(address: tuple[str, int]) -> None:
    status, _, body = await fetch(address, b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 200 OK"
    assert b"pysstp_build_info" in body


async def test_health_follows_the_draining_flag(address: tuple[str, int], draining: Draining) -> None:
    assert (await fetch(address, b"GET /health HTTP/1.0\r\n\r\n"))[::2] == ("HTTP/1.0 200 OK", b"accepting\n")
    draining.value = True
    assert (await fetch(address, b"GET /health HTTP/1.0\r\n\r\n"))[::2] == (
        "HTTP/1.0 503 Service Unavailable",
        b"draining\n",
    )


async def test_head_answers_without_a_body(address: tuple[str, int]) -> None:
    status, headers, body = await fetch(address, b"HEAD /health HTTP/1.0\r\n\r\n")
    assert (status, headers["Content-Length"], body) == ("HTTP/1.0 200 OK", "10", b"")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 404 Not Found"),
        (b"GET /metrics/x HTTP/1.0\r\n\r\n", "HTTP/1.0 404 Not Found"),
        (b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", "HTTP/1.0 405 Method Not Allowed"),
        (b"hello\r\n\r\n", "HTTP/1.0 400 Bad Request"),
        (
            b"GET /health HTTP/1.0\r\n" + b"X: y\r\n" * 200 + b"\r\n",
            "HTTP/1.0 431 Request Header Fields Too Large",
        ),
    ],
)
async def test_anything_else_gets_an_error_status(
    address: tuple[str, int], request_bytes: bytes, status: str
) -> None:
    assert (await fetch(address, request_bytes))[0] == status


async def test_stop_ends_a_connection_whose_request_is_unfinished() -> None:
    server = MetricsServer(snapshots, lambda: False)
    address = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*address)
    writer.write(b"GET /met")
    await writer.drain()
    # Connections are accepted and their answers started in order: once a later one is answered, the
    # server waits for the rest of this request.
    assert (await fetch(address, b"GET /health HTTP/1.0\r\n\r\n"))[0] == "HTTP/1.0 200 OK"
    await server.stop()
    assert await reader.read() == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*address)


async def test_unset_serves_nothing() -> None:
    assert await start_metrics(None, snapshots, lambda: False) is None


async def test_an_address_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemSetupError) as info:
            await start_metrics(("127.0.0.1", port), snapshots, lambda: False)
    assert str(info.value) == (
        f"cannot serve metrics on 127.0.0.1:{port}: Address already in use; set metrics.listen (--metrics) "
        "to a free address of this host"
    )
