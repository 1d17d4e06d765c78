"""Prometheus metrics and the load balancers' health check, on one HTTP address (``[metrics] listen``).

Each scrape renders the :class:`~pysstp.server.stats.ServerStats` snapshots of this moment, one per worker
process, through :class:`StatsCollector` on a private registry. Every number is one that a worker already
counts for ``pysstp status``, read when Prometheus asks, so several workers need no shared files
(prometheus-client's multiprocess mode) and a metric can never disagree with the status. The series and
their labels are listed in docs/scaling.md (Metrics); contrib/grafana-pysstp.json is built on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from pysstp import __version__
from pysstp.aaa.radius.client import DURATION_BUCKETS, REQUEST_KINDS, RadiusServerStats
from pysstp.errors import SystemSetupError
from pysstp.ppp.constants import AuthMethod
from pysstp.server.stats import DropCause, FailureReason, ServerStats

log = logging.getLogger("pysstp.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What ``generate_latest`` writes: the Prometheus text exposition format, version 0.0.4."""
REQUEST_TIMEOUT = 10.0
"""Seconds a scraper has to send its request line and headers."""
MAX_HEADER_LINES = 100
"""A request with more header lines than this is refused (bounded work per connection)."""

NO_AUTH = "none"
"""The ``auth_method`` label of a session that authenticated with no method."""

Snapshots = Callable[[], Awaitable[Sequence[ServerStats]]]
"""Returns the snapshot of every worker (or of the only process), taken now."""


class StatsCollector:
    """A prometheus-client collector that renders the snapshots ``snapshots`` returns.

    Series with a ``worker`` label have one sample per snapshot; the others (draining, build info, RADIUS)
    add up or combine the snapshots, since every worker talks to the same RADIUS servers. Label values
    that are known in advance (auth methods, failure reasons, drop causes) are present from the start
    with 0, so that a rate over them is defined before the first event.
    """

    def __init__(self, snapshots: Callable[[], Sequence[ServerStats]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        """The metric families of this moment (prometheus-client's collector interface)."""
        snapshots = self._snapshots()
        sessions = GaugeMetricFamily(
            "pysstp_sessions", "Calls that are up, by authentication method", labels=["auth_method", "worker"]
        )
        handshakes = GaugeMetricFamily(
            "pysstp_handshakes_in_progress",
            "Calls accepted whose link is not up yet (TLS, HTTP, PPP, authentication)",
            labels=["worker"],
        )
        connects = CounterMetricFamily("pysstp_connects", "Calls that came up", labels=["worker"])
        failures = CounterMetricFamily(
            "pysstp_call_failures", "Calls that did not come up, by reason", labels=["reason", "worker"]
        )
        octets = CounterMetricFamily(
            "pysstp_bytes",
            "Bytes from clients (in) and to clients (out)",
            labels=["direction", "worker"],
        )
        packets = CounterMetricFamily(
            "pysstp_packets",
            "IP packets from clients (in) and to clients (out)",
            labels=["direction", "worker"],
        )
        drops = CounterMetricFamily(
            "pysstp_dropped_packets", "IP packets dropped, by cause", labels=["cause", "worker"]
        )
        rss = GaugeMetricFamily(
            "pysstp_process_resident_memory_bytes", "Resident memory of the process", labels=["worker"]
        )
        cpu = CounterMetricFamily(
            "pysstp_process_cpu_seconds", "CPU time of the process, user and system", labels=["worker"]
        )
        for stats in snapshots:
            worker = str(stats.worker)
            by_method = Counter(session.auth or NO_AUTH for session in stats.sessions if session.up)
            for method in dict.fromkeys([*(m.value for m in AuthMethod), *by_method]):
                sessions.add_metric([method, worker], by_method[method])
            handshakes.add_metric([worker], stats.negotiating)
            connects.add_metric([worker], stats.connects)
            for reason, count in _every((reason.value for reason in FailureReason), stats.failures):
                failures.add_metric([reason, worker], count)
            octets.add_metric(["in", worker], stats.bytes_in)
            octets.add_metric(["out", worker], stats.bytes_out)
            packets.add_metric(["in", worker], stats.packets_in)
            packets.add_metric(["out", worker], stats.packets_out)
            for cause, count in _every((cause.value for cause in DropCause), stats.drops):
                drops.add_metric([cause, worker], count)
            rss.add_metric([worker], stats.rss_bytes)
            cpu.add_metric([worker], stats.cpu_seconds)
        yield from (sessions, handshakes, connects, failures, octets, packets, drops, rss, cpu)
        yield GaugeMetricFamily(
            "pysstp_draining",
            "1 while the server drains (accepts no calls, lets the calls it has end), else 0",
            value=int(any(stats.draining for stats in snapshots)),
        )
        build = GaugeMetricFamily(
            "pysstp_build_info", "Always 1: the pysstp and Python versions", labels=["version", "python"]
        )
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        yield from _radius(snapshots)


def _every(known: Iterable[str], counts: Mapping[str, int]) -> Iterator[tuple[str, int]]:
    """Each of the ``known`` names with its count (0 if absent), then any other name ``counts`` has."""
    for name in dict.fromkeys([*known, *counts]):
        yield name, counts.get(name, 0)


def _radius(snapshots: Sequence[ServerStats]) -> Iterator[Metric]:
    """The RADIUS series: each server's counts added up over the workers (each has its own client)."""
    total: dict[str, RadiusServerStats] = {}
    for stats in snapshots:
        for server in stats.radius:
            total[server.server] = total[server.server].plus(server) if server.server in total else server
    requests = CounterMetricFamily(
        "pysstp_radius_requests",
        "Requests sent to a RADIUS server (not counting resends), by kind: access or accounting",
        labels=["server", "kind"],
    )
    timeouts = CounterMetricFamily(
        "pysstp_radius_timeouts",
        "Requests a RADIUS server did not answer after all retries (the next server is tried)",
        labels=["server"],
    )
    durations = HistogramMetricFamily(
        "pysstp_radius_request_duration_seconds",
        "Seconds from sending a request to a RADIUS server to its genuine answer",
        labels=["server"],
    )
    for name, server in total.items():
        for kind, count in _every(REQUEST_KINDS, server.requests):
            requests.add_metric([name, kind], count)
        timeouts.add_metric([name], server.timeouts)
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip([*map(str, DURATION_BUCKETS), "+Inf"], server.durations, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        durations.add_metric([name], buckets, server.duration_sum)
    yield from (requests, timeouts, durations)


def exposition(snapshots: Sequence[ServerStats]) -> bytes:
    """``snapshots`` in the Prometheus text format (:data:`CONTENT_TYPE`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(lambda: snapshots))
    return generate_latest(registry)


class MetricsServer:
    """``GET /metrics`` and ``GET /health`` over HTTP/1.0, one request per connection.

    ``/health`` answers 200 ``accepting`` while the server accepts calls and 503 ``draining`` while
    ``draining()`` is true, for load balancers' health checks; any other path is 404.
    """

    def __init__(self, snapshots: Snapshots, draining: Callable[[], bool]) -> None:
        self._snapshots = snapshots
        self._draining = draining
        self._server: asyncio.Server | None = None
        self._answering: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host``:``port``; returns the address bound (the port chosen if ``port`` is 0)."""
        self._server = await asyncio.start_server(self._answer, host, port)
        bound: tuple[str, int] = self._server.sockets[0].getsockname()[:2]
        return bound

    async def stop(self) -> None:
        """Stop listening and end the requests still being answered."""
        if self._server is None:
            return
        self._server.close()
        # Closing a connection ends its read with an error that the answer expects; cancelling the task
        # instead would make asyncio log the cancellation as an error.
        for writer in self._answering.values():
            writer.close()
        await asyncio.gather(*self._answering, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._answering[task] = writer
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                writer.write(await self._respond(reader))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            del self._answering[task]
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> bytes:
        request = (await reader.readuntil(b"\n")).decode("latin-1").split()
        for _ in range(MAX_HEADER_LINES):
            if not (await reader.readuntil(b"\n")).strip():
                break
        else:
            return _response("431 Request Header Fields Too Large")
        if len(request) != 3 or not request[2].startswith("HTTP/"):
            return _response("400 Bad Request")
        method, path = request[0], request[1].partition("?")[0]
        if method not in ("GET", "HEAD"):
            return _response("405 Method Not Allowed")
        if path == "/metrics":
            body = exposition(await self._snapshots())
            return _response("200 OK", body, CONTENT_TYPE, head=method == "HEAD")
        if path == "/health":
            if self._draining():
                return _response("503 Service Unavailable", b"draining\n", head=method == "HEAD")
            return _response("200 OK", b"accepting\n", head=method == "HEAD")
        return _response("404 Not Found")


async def start_metrics(
    listen: tuple[str, int] | None, snapshots: Snapshots, draining: Callable[[], bool]
) -> MetricsServer | None:
    """A started :class:`MetricsServer` on ``listen`` (``[metrics] listen``), or ``None`` when unset.

    Raises :class:`SystemSetupError` when the address cannot be bound.
    """
    if listen is None:
        return None
    host, port = listen
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server = MetricsServer(snapshots, draining)
    try:
        await server.start(host, port)
    except OSError as exc:
        # asyncio rewords the kernel's error; its errno is the kernel's.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise SystemSetupError(
            f"cannot serve metrics on {address}: {reason}; set metrics.listen (--metrics) to a free address "
            "of this host"
        ) from None
    log.info("metrics on http://%s/metrics, health check on http://%s/health", address, address)
    return server


def _response(
    status: str, body: bytes = b"", content_type: str = "text/plain; charset=utf-8", *, head: bool = False
) -> bytes:
    """An HTTP/1.0 response; for a HEAD request (``head``) without the body (RFC 9110 §9.3.2)."""
    lines = f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return lines.encode() + (b"" if head else body)
