"""RADIUS accounting for the server's sessions: Start when a call is up with its address, Interim-Update on
the interval, Stop with the counters and why the call ended (docs/radius.md, "Accounting").

The records go through :class:`~pysstp.aaa.radius.accounting.RadiusAccounting`, which queues them, so a
session never waits for a RADIUS server.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pysstp.aaa.radius.accounting import Counters, RadiusAccounting, SessionFacts, TerminateCause
from pysstp.link import DATA_OVERHEAD

if TYPE_CHECKING:
    from pysstp.server.app import ServerConnection

log = logging.getLogger("pysstp.radius")


@dataclass(slots=True)
class _Session:
    facts: SessionFacts
    started: float
    baseline: tuple[int, int, int, int]
    """bytes_in, bytes_out, packets_in, packets_out when the call came up (the handshake is not counted)."""
    interim: asyncio.TimerHandle | None = None


class SessionAccounting:
    """Reports sessions to :class:`RadiusAccounting`; ``interim_interval`` (seconds, 0 = none) is used
    when the Access-Accept carried no Acct-Interim-Interval."""

    def __init__(self, accounting: RadiusAccounting, interim_interval: float = 0.0) -> None:
        self.accounting = accounting
        self.interim_interval = interim_interval
        self._sessions: dict[ServerConnection, _Session] = {}

    def up(self, connection: ServerConnection) -> None:
        """The call is up with its address: Start, and arm the Interim-Update timer."""
        if connection in self._sessions or connection.info.user is None:
            return
        info = connection.info
        facts = SessionFacts(connection.context, info.user or "", info.address, info.classes)
        loop = asyncio.get_running_loop()
        baseline = (connection.bytes_in, connection.bytes_out, connection.packets_in, connection.packets_out)
        session = _Session(facts, loop.time(), baseline)
        self._sessions[connection] = session
        self.accounting.session_started(facts)
        interval = connection.authorization.interim_interval or self.interim_interval
        if interval > 0:
            session.interim = loop.call_later(interval, self._interim, connection, interval)

    def down(self, connection: ServerConnection, cause: TerminateCause) -> None:
        """The call is over: Stop with the final counters (idempotent; calls never up are ignored)."""
        session = self._sessions.pop(connection, None)
        if session is None:
            return
        if session.interim is not None:
            session.interim.cancel()
        elapsed = asyncio.get_running_loop().time() - session.started
        self.accounting.session_stopped(session.facts, elapsed, self._counters(connection, session), cause)

    def _interim(self, connection: ServerConnection, interval: float) -> None:
        session = self._sessions.get(connection)
        if session is None:
            return
        loop = asyncio.get_running_loop()
        counters = self._counters(connection, session)
        self.accounting.session_updated(session.facts, loop.time() - session.started, counters)
        session.interim = loop.call_later(interval, self._interim, connection, interval)

    @staticmethod
    def _counters(connection: ServerConnection, session: _Session) -> Counters:
        """IP bytes and packets since the call came up: the SSTP and PPP framing of each data packet is
        taken off (control packets after that, echoes and hellos, are a few bytes a minute)."""
        bytes_in, bytes_out, packets_in, packets_out = session.baseline
        packets_in = connection.packets_in - packets_in
        packets_out = connection.packets_out - packets_out
        return Counters(
            input_octets=max(0, connection.bytes_in - bytes_in - DATA_OVERHEAD * packets_in),
            output_octets=max(0, connection.bytes_out - bytes_out - DATA_OVERHEAD * packets_out),
            input_packets=packets_in,
            output_packets=packets_out,
        )
