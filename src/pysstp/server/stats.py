"""One snapshot of a server process: what ``pysstp status`` prints and what the metrics export.

Both are rendered from the same frozen values, taken at one moment, so the two can never disagree, and a
worker process can hand its snapshot to the coordinator as plain JSON (:meth:`ServerStats.to_json`,
:meth:`ServerStats.from_json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from pysstp.aaa.radius.client import RadiusServerStats


class FailureReason(StrEnum):
    """Why a call did not come up (the ``reason`` label of ``pysstp_call_failures_total``)."""

    TLS_HANDSHAKE = "tls_handshake"
    PROXY_HEADER = "proxy_header"
    BACKOFF = "backoff"
    SESSION_LIMIT = "session_limit"
    NEGOTIATING_LIMIT = "negotiating_limit"
    SOURCE_RATE = "source_rate"
    CLIENT_CERTIFICATE = "client_certificate"
    AUTHENTICATION = "authentication"
    ADDRESS = "address"
    """No address for the user: pool empty, fixed address in use or refused, user's session limit."""
    DRAINING = "draining"
    PROTOCOL = "protocol"
    """The call ended before it was up for any other reason (timeout, abort, malformed input)."""


class DropCause(StrEnum):
    """Why an IP packet was dropped (the ``cause`` label of ``pysstp_dropped_packets_total``)."""

    QUEUE_FULL = "queue_full"
    """To a session whose TLS side is backed up (see docs/architecture.md, the data path)."""
    SPOOFED_SOURCE = "spoofed_source"
    """From a session, with a source address that is not the session's."""
    NO_SESSION = "no_session"
    """Read from the TUN for an address no session holds."""
    BEFORE_BINDING = "before_binding"
    """From a client before the crypto binding completed (MS-SSTP 3.2.5.2)."""
    RATE_LIMIT = "rate_limit"
    """Beyond the session's rate limit."""


@dataclass(frozen=True)
class SessionStats:
    """One session as ``pysstp status --json`` shows it (rates in bit/s, ``started`` in Unix seconds)."""

    session_id: str
    peer: str
    started: float
    up: bool
    user: str | None = None
    address: str | None = None
    ipv6: tuple[str, ...] = ()
    backend: str = ""
    auth: str | None = None
    hash: str | None = None
    tls: str | None = None
    mtu: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    rate_in: int = 0
    rate_out: int = 0
    drops: int = 0
    routes: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    """The backend's Class values, hex."""
    worker: int = 0


@dataclass(frozen=True)
class ServerStats:
    """One server process (a worker, or the only process) at one moment.

    Counters count since the process started and include sessions that have ended; ``sessions`` lists
    the calls of this moment (negotiating ones with ``up`` false).
    """

    worker: int
    pid: int
    started: float
    """When the process started (Unix seconds)."""
    sessions: tuple[SessionStats, ...] = ()
    negotiating: int = 0
    """Calls accepted whose link is not up yet (TLS, HTTP, LCP, authentication in progress)."""
    connects: int = 0
    """Calls that came up."""
    failures: Mapping[str, int] = field(default_factory=dict)
    """Calls that did not come up, by :class:`FailureReason`."""
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    drops: Mapping[str, int] = field(default_factory=dict)
    """Dropped IP packets, by :class:`DropCause`."""
    rss_bytes: int = 0
    cpu_seconds: float = 0.0
    draining: bool = False
    radius: tuple[RadiusServerStats, ...] = ()
    """Each RADIUS server's counts (:meth:`pysstp.aaa.radius.RadiusClient.stats`); none without RADIUS."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServerStats:
        """The inverse of :meth:`to_json`."""
        values = dict(data)
        values["sessions"] = tuple(
            SessionStats(
                **{
                    **session,
                    "ipv6": tuple(session["ipv6"]),
                    "routes": tuple(session["routes"]),
                    "classes": tuple(session["classes"]),
                }
            )
            for session in values.get("sessions", ())
        )
        values["failures"] = dict(values.get("failures", {}))
        values["drops"] = dict(values.get("drops", {}))
        values["radius"] = tuple(
            RadiusServerStats(**{**server, "durations": tuple(server["durations"])})
            for server in values.get("radius", ())
        )
        return cls(**values)
