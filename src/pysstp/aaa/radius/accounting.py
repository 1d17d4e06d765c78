"""RADIUS accounting (RFC 2866, RFC 2869 §5.1-5.2): Accounting-On/Off, and Start, Interim-Update and Stop
for every session, through a bounded queue that survives outages and restarts.

Records are queued without waiting and sent in the background, a few at a time. A record that no server
acknowledged stays queued and is sent again later with Acct-Delay-Time saying how old it is (RFC 2866
§5.2); what is still unsent when the server stops is written to a spool file and sent at the next start,
so an outage loses no Stop. The spool file is removed only once its records are acknowledged (or written
again at the next stop), so a crash in between does not lose them either. When the queue is full, the
oldest Interim-Update makes room first: a later one or the Stop carries newer counters anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from pyrad import packet as radius_packet

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius.client import RadiusClient, RadiusUnavailable
from pysstp.aaa.radius.dictionary import radius_dictionary
from pysstp.aaa.radius.request import NasIdentity
from pysstp.aaa.radius.server import RadiusServer

log = logging.getLogger("pysstp.radius")

GIGAWORD = 1 << 32
"""Acct-Input/Output-Gigawords count how often the 32-bit octet counter wrapped (RFC 2869 §5.1)."""


class AccountingStatus(enum.StrEnum):
    """Acct-Status-Type (RFC 2866 §5.1), named as in the dictionary."""

    START = "Start"
    STOP = "Stop"
    INTERIM_UPDATE = "Interim-Update"
    ACCOUNTING_ON = "Accounting-On"
    ACCOUNTING_OFF = "Accounting-Off"


class TerminateCause(enum.StrEnum):
    """Acct-Terminate-Cause (RFC 2866 §5.10): why a session ended."""

    USER_REQUEST = "User-Request"
    LOST_CARRIER = "Lost-Carrier"
    LOST_SERVICE = "Lost-Service"
    IDLE_TIMEOUT = "Idle-Timeout"
    SESSION_TIMEOUT = "Session-Timeout"
    ADMIN_RESET = "Admin-Reset"
    ADMIN_REBOOT = "Admin-Reboot"
    PORT_ERROR = "Port-Error"
    NAS_ERROR = "NAS-Error"
    NAS_REQUEST = "NAS-Request"
    NAS_REBOOT = "NAS-Reboot"
    SERVICE_UNAVAILABLE = "Service-Unavailable"
    USER_ERROR = "User-Error"


@dataclass(frozen=True, slots=True)
class Counters:
    """What went through the tunnel; input is from the client (RFC 2866 §5.3-5.4)."""

    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What every accounting record of one session repeats."""

    context: CallContext
    user: str
    address: IPv4Address | None = None
    classes: tuple[bytes, ...] = ()
    """Class attributes from the Access-Accept, echoed as RFC 2865 §5.25 asks."""


@dataclass(frozen=True, slots=True)
class AccountingRecord:
    """One Accounting-Request to be sent; ``event_time`` (wall clock) makes its Acct-Delay-Time."""

    status: AccountingStatus
    event_time: float
    session: SessionFacts | None = None
    session_time: int | None = None
    counters: Counters | None = None
    cause: TerminateCause | None = None

    def packet(self, nas: NasIdentity, server: RadiusServer, now: float) -> radius_packet.AcctPacket:
        """The Accounting-Request for ``server`` at wall-clock time ``now``."""
        request = radius_packet.AcctPacket(
            code=radius_packet.AccountingRequest, id=0, secret=server.secret, dict=radius_dictionary()
        )
        add = request.AddAttribute
        add("Acct-Status-Type", self.status.value)
        add("NAS-Identifier", nas.identifier)
        if nas.address is not None:
            add("NAS-IP-Address" if nas.address.version == 4 else "NAS-IPv6-Address", str(nas.address))
        add("Acct-Delay-Time", max(0, int(now - self.event_time)))
        add("Event-Timestamp", int(self.event_time))
        if self.session is not None:
            facts, context = self.session, self.session.context
            add("User-Name", facts.user)
            add("Acct-Session-Id", context.session_id)
            add("Acct-Authentic", "RADIUS")
            add("NAS-Port", context.nas_port)
            add("NAS-Port-Type", "Virtual")
            add("Service-Type", "Framed-User")
            add("Framed-Protocol", "PPP")
            if context.calling_station:
                add("Calling-Station-Id", context.calling_station)
            if context.called_station:
                add("Called-Station-Id", context.called_station)
            if facts.address is not None:
                add("Framed-IP-Address", str(facts.address))
            for value in facts.classes:
                add("Class", value)
        if self.session_time is not None:
            add("Acct-Session-Time", self.session_time)
        if self.counters is not None:
            c = self.counters
            add("Acct-Input-Octets", c.input_octets % GIGAWORD)
            add("Acct-Output-Octets", c.output_octets % GIGAWORD)
            add("Acct-Input-Gigawords", c.input_octets // GIGAWORD)
            add("Acct-Output-Gigawords", c.output_octets // GIGAWORD)
            add("Acct-Input-Packets", c.input_packets % GIGAWORD)
            add("Acct-Output-Packets", c.output_packets % GIGAWORD)
        if self.cause is not None:
            add("Acct-Terminate-Cause", self.cause.value)
        return request

    def to_json(self) -> str:
        """One spool-file line."""
        data = dataclasses.asdict(self)
        if self.session is not None:
            data["session"]["address"] = None if self.session.address is None else str(self.session.address)
            data["session"]["classes"] = [value.hex() for value in self.session.classes]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> AccountingRecord:
        """Read a spool-file line; raises ``ValueError``, ``KeyError`` or ``TypeError`` for a bad one."""
        data: dict[str, Any] = json.loads(line)
        session = data.get("session")
        facts = None
        if session is not None:
            facts = SessionFacts(
                CallContext(**session["context"]),
                session["user"],
                None if session["address"] is None else IPv4Address(session["address"]),
                tuple(bytes.fromhex(value) for value in session["classes"]),
            )
        counters = data.get("counters")
        cause = data.get("cause")
        return cls(
            AccountingStatus(data["status"]),
            float(data["event_time"]),
            facts,
            data.get("session_time"),
            None if counters is None else Counters(**counters),
            None if cause is None else TerminateCause(cause),
        )


class RadiusAccounting:
    """Sends accounting records for one NAS through ``client`` (whose servers' accounting ports are used).

    Call :meth:`start` once the server runs and :meth:`stop` when it stops; the ``session_*`` methods
    queue a record and return at once.
    """

    def __init__(
        self,
        client: RadiusClient,
        nas: NasIdentity,
        *,
        spool: Path | None = None,
        queue_size: int = 4096,
        parallel: int = 16,
        retry_interval: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.nas = nas
        self.spool = spool
        self.queue_size = queue_size
        self.retry_interval = retry_interval
        self._clock = clock
        self._queue: deque[AccountingRecord] = deque()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._slots = asyncio.Semaphore(parallel)
        self._in_flight: dict[asyncio.Task[None], AccountingRecord] = {}
        self._dispatcher: asyncio.Task[None] | None = None
        self._spooled: dict[int, AccountingRecord] = {}
        """The spool file's records not yet acknowledged, by identity (the record is kept alive here)."""
        self._spool_foreign = False
        """The spool file could not be read at start: its records are not ours to replace."""

    @property
    def pending(self) -> int:
        """Records not yet acknowledged (queued or being sent)."""
        return len(self._queue) + len(self._in_flight)

    async def start(self) -> None:
        """Queue what the spool file kept from the last run, then Accounting-On; start sending."""
        for record in self._read_spool():
            self._spooled[id(record)] = record
            self._enqueue(record)
        self._enqueue(AccountingRecord(AccountingStatus.ACCOUNTING_ON, self._clock()))
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    def session_started(self, session: SessionFacts) -> None:
        """Acct-Status-Type Start: the call is up with its address."""
        self._enqueue(AccountingRecord(AccountingStatus.START, self._clock(), session, session_time=0))

    def session_updated(self, session: SessionFacts, session_time: float, counters: Counters) -> None:
        """Interim-Update with the counters so far."""
        record = AccountingRecord(
            AccountingStatus.INTERIM_UPDATE, self._clock(), session, int(session_time), counters
        )
        self._enqueue(record)

    def session_stopped(
        self, session: SessionFacts, session_time: float, counters: Counters, cause: TerminateCause
    ) -> None:
        """Stop, with the final counters and why the session ended."""
        record = AccountingRecord(
            AccountingStatus.STOP, self._clock(), session, int(session_time), counters, cause
        )
        self._enqueue(record)

    async def stop(self, *, clean: bool = True, drain_timeout: float = 5.0) -> None:
        """Send Accounting-Off (``clean``) and what is queued for up to ``drain_timeout`` seconds; spool
        the rest."""
        if clean:
            self._enqueue(AccountingRecord(AccountingStatus.ACCOUNTING_OFF, self._clock()))
        if self.pending and self._dispatcher is not None:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), drain_timeout)
        unsent = [*self._in_flight.values(), *self._queue]
        tasks = [*self._in_flight, *([self._dispatcher] if self._dispatcher is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._in_flight.clear()
        self._queue.clear()
        self._write_spool(unsent)

    def _enqueue(self, record: AccountingRecord) -> None:
        if len(self._queue) >= self.queue_size:
            interim = next((r for r in self._queue if r.status is AccountingStatus.INTERIM_UPDATE), None)
            dropped = self._queue[0] if interim is None else interim
            log.log(
                logging.WARNING if interim is not None else logging.ERROR,
                "RADIUS accounting queue full (%d records): dropped the oldest record (%s)",
                self.queue_size,
                _describe(dropped),
            )
            self._queue.remove(dropped)
            self._acknowledged(dropped)
        self._queue.append(record)
        self._ready.set()

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            await self._slots.acquire()
            if not self._queue:
                self._slots.release()
                continue
            record = self._queue.popleft()
            task = loop.create_task(self._deliver(record))
            self._in_flight[task] = record

    async def _deliver(self, record: AccountingRecord) -> None:
        try:
            while True:
                try:
                    await self.client.send(
                        lambda server: record.packet(self.nas, server, self._clock()), accounting=True
                    )
                    self._acknowledged(record)
                    return
                except ValueError as error:
                    # pyrad cannot encode it (a value longer than an attribute holds): sending it again
                    # would fail the same way.
                    log.error("RADIUS accounting %s cannot be sent (%s): dropped", _describe(record), error)
                    self._acknowledged(record)
                    return
                except RadiusUnavailable as error:
                    log.warning(
                        "RADIUS accounting %s not acknowledged (%s): again in %.0f s",
                        _describe(record),
                        error,
                        self.retry_interval,
                    )
                    await asyncio.sleep(self.retry_interval)
        finally:
            self._slots.release()
            current = asyncio.current_task()
            if current is not None:
                self._in_flight.pop(current, None)
            if not self.pending:
                self._drained.set()

    def _acknowledged(self, record: AccountingRecord) -> None:
        """``record`` is done with (acknowledged, or dropped from a full queue): once none of the spool
        file's records is left, the file goes."""
        if self._spooled.pop(id(record), None) is not None and not self._spooled and self.spool is not None:
            with contextlib.suppress(OSError):
                self.spool.unlink()

    def _read_spool(self) -> list[AccountingRecord]:
        if self.spool is None or not self.spool.exists():
            return []
        try:
            lines = self.spool.read_text().splitlines()
        except OSError as error:
            log.error(
                "RADIUS accounting: cannot read %s: %s; its records stay there", self.spool, error.strerror
            )
            self._spool_foreign = True
            return []
        records = []
        for number, line in enumerate(lines, 1):
            try:
                records.append(AccountingRecord.from_json(line))
            except (ValueError, KeyError, TypeError) as error:
                log.error("RADIUS accounting spool %s line %d skipped: %s", self.spool, number, error)
        if records:
            log.info("RADIUS accounting: %d records from %s queued again", len(records), self.spool)
        else:
            # Nothing usable in it (the bad lines are logged above).
            self.spool.unlink(missing_ok=True)
        return records

    def _write_spool(self, records: list[AccountingRecord]) -> None:
        """Replace the spool file's content with ``records`` (unsent ones it held are among them);
        append to a file that could not be read at start."""
        if not records:
            if self.spool is not None and not self._spool_foreign:
                with contextlib.suppress(OSError):
                    self.spool.unlink(missing_ok=True)
            return
        if self.spool is None:
            log.error("RADIUS accounting: %d unsent records lost (no spool file is set)", len(records))
            return
        try:
            self.spool.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Written beside and renamed over, so a crash mid-write leaves the old file whole.
            target = self.spool if self._spool_foreign else self.spool.with_name(self.spool.name + ".new")
            mode = os.O_APPEND if self._spool_foreign else os.O_TRUNC
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | mode, 0o600)
            with os.fdopen(descriptor, "a") as handle:
                handle.writelines(record.to_json() + "\n" for record in records)
            if target != self.spool:
                os.replace(target, self.spool)
        except OSError as error:
            log.error(
                "RADIUS accounting: %d unsent records lost: cannot write %s: %s",
                len(records),
                self.spool,
                error.strerror,
            )
            return
        log.warning(
            "RADIUS accounting: %d unsent records kept in %s for the next start", len(records), self.spool
        )


def _describe(record: AccountingRecord) -> str:
    """``Stop of session ID`` (or just the status) for log lines."""
    if record.session is None:
        return record.status.value
    return f"{record.status.value} of session {record.session.context.session_id}"
