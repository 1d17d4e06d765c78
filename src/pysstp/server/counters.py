"""The server's running counts: calls that came up, calls that did not (by reason), the traffic of
sessions that have ended. :meth:`ServerCounters.snapshot` freezes them, with the sessions of the moment,
into the :class:`~pysstp.server.stats.ServerStats` that status and the metrics render.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from operator import itemgetter

from pysstp.aaa.radius.client import RadiusServerStats
from pysstp.server.session import ServerConnection
from pysstp.server.stats import NO_AUTH, DropCause, FailureReason, ServerStats

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

Rates = Mapping[ServerConnection, tuple[float, float]]
"""Bit rates in and out per session (:func:`~pysstp.server.control.measure_rates`)."""


class ServerCounters:
    """Counts kept since the process started, including sessions that have ended."""

    def __init__(self) -> None:
        self.started = time.time()
        self.connects = 0
        """Calls that came up."""
        self.failures: Counter[FailureReason] = Counter()
        """Calls that did not come up, by reason (TLS handshakes are the listener's to count)."""
        self._ended: Counter[str] = Counter()
        """The traffic counters of sessions that have ended."""

    def failed(self, connection: ServerConnection, reason: FailureReason) -> None:
        """Count a call that does not come up, once, by the first reason found."""
        if connection.failure is None:
            connection.failure = reason
            self.failures[reason] += 1

    def ended(self, connection: ServerConnection) -> None:
        """Keep the traffic of a session that leaves the server's tables."""
        self._ended.update(connection.traffic())

    def snapshot(
        self,
        *,
        worker: int,
        live: Sequence[ServerConnection],
        negotiating: int,
        handshake_failures: int,
        proxy_header_failures: int = 0,
        spoofed: int,
        no_session: int,
        dhcp: int = 0,
        backend: str,
        rates: Rates | None = None,
        draining: bool = False,
        radius: tuple[RadiusServerStats, ...] = (),
        sessions: bool = True,
    ) -> ServerStats:
        """The counts with the sessions ``live`` now, and the data path's and listener's own counts;
        without ``sessions``, the snapshot lists no session (the metrics need only the counts, and a
        list of 100,000 sessions takes seconds to build and carry)."""
        totals = Counter(self._ended)
        traffic = [connection.traffic() for connection in live]
        # Summed by column: Counter.update per session costs twice as much (with 100,000 sessions, a
        # scrape's 0.3 s on the event loop).
        for name in traffic[0] if traffic else ():
            totals[name] += sum(map(itemgetter(name), traffic))
        failures = {reason.value: count for reason, count in self.failures.items()}
        if handshake_failures:
            failures[FailureReason.TLS_HANDSHAKE.value] = handshake_failures
        if proxy_header_failures:
            failures[FailureReason.PROXY_HEADER.value] = proxy_header_failures
        drops = {
            DropCause.QUEUE_FULL.value: totals["drops"],
            DropCause.SPOOFED_SOURCE.value: spoofed,
            DropCause.NO_SESSION.value: no_session,
            # The links' count: IP that arrived, or was to be sent, before the call could carry it.
            DropCause.BEFORE_BINDING.value: totals["dropped_ip"],
            DropCause.DHCP.value: dhcp,
            DropCause.RATE_LIMIT.value: totals["rate_drops"],
        }
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * PAGE_SIZE
        times = os.times()
        return ServerStats(
            worker=worker,
            pid=os.getpid(),
            started=self.started,
            sessions=tuple(c.stats(backend, worker, (rates or {}).get(c)) for c in live) if sessions else (),
            # A plain dict: dataclasses.asdict (to_json) rebuilds a Counter from its items as keys.
            up_by_auth=dict(Counter(c.info.auth_method or NO_AUTH for c in live if c.link.is_up)),
            negotiating=negotiating,
            connects=self.connects,
            failures=failures,
            bytes_in=totals["bytes_in"],
            bytes_out=totals["bytes_out"],
            packets_in=totals["packets_in"],
            packets_out=totals["packets_out"],
            drops=drops,
            rss_bytes=rss,
            cpu_seconds=times.user + times.system,
            draining=draining,
            radius=radius,
        )
