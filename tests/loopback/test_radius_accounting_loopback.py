"""RADIUS accounting through an outage: what no server acknowledged is spooled at shutdown and sent at
the next start with its Acct-Delay-Time; a full queue gives up Interim-Updates before Stops."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pyrad import packet as radius_packet

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius.accounting import (
    AccountingRecord,
    AccountingStatus,
    Counters,
    RadiusAccounting,
    SessionFacts,
    TerminateCause,
)
from pysstp.aaa.radius.client import RadiusClient
from pysstp.aaa.radius.dictionary import radius_dictionary
from pysstp.aaa.radius.request import NasIdentity
from pysstp.aaa.radius.server import RadiusServer

SECRET = b"acct-secret"
NAS = NasIdentity("loopback")
SESSION = SessionFacts(CallContext("s-1", "198.51.100.7", "203.0.113.1", 1), "alice")


class AccountingServer(asyncio.DatagramProtocol):
    """Acknowledges every Accounting-Request and keeps it."""

    def __init__(self) -> None:
        self.received: list[radius_packet.AcctPacket] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        request = radius_packet.AcctPacket(packet=data, secret=SECRET, dict=radius_dictionary())
        assert request.VerifyAcctRequest()
        self.received.append(request)
        assert self.transport is not None
        self.transport.sendto(request.CreateReply().ReplyPacket(), addr)


@pytest.fixture
async def acknowledging() -> AsyncIterator[AccountingServer]:
    _transport, server = await asyncio.get_running_loop().create_datagram_endpoint(
        AccountingServer, local_addr=("127.0.0.1", 0)
    )
    yield server
    assert server.transport is not None
    server.transport.close()


def free_udp_port() -> int:
    """A port nothing listens on (the kernel answers with ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def client_for(port: int) -> RadiusClient:
    return RadiusClient([RadiusServer("127.0.0.1", SECRET, accounting_port=port, timeout=0.2, retries=0)])


async def test_unsent_records_are_spooled_and_sent_at_the_next_start(
    tmp_path: Path, acknowledging: AccountingServer
) -> None:
    spool = tmp_path / "spool"
    now = [1_000_000.0]
    down = client_for(free_udp_port())
    accounting = RadiusAccounting(down, NAS, spool=spool, retry_interval=3600, clock=lambda: now[0])
    await accounting.start()
    accounting.session_stopped(SESSION, 30, Counters(10, 20, 1, 2), TerminateCause.LOST_CARRIER)
    await accounting.stop(drain_timeout=1.0)
    await down.close()
    kept = [AccountingRecord.from_json(line) for line in spool.read_text().splitlines()]
    assert sorted(r.status.value for r in kept) == ["Accounting-Off", "Accounting-On", "Stop"]

    now[0] += 100
    assert acknowledging.transport is not None
    up = client_for(acknowledging.transport.get_extra_info("sockname")[1])
    accounting = RadiusAccounting(up, NAS, spool=spool, clock=lambda: now[0])
    await accounting.start()
    await accounting.stop(clean=False)
    await up.close()
    assert not spool.exists()
    stops = [r for r in acknowledging.received if r["Acct-Status-Type"] == ["Stop"]]
    assert len(stops) == 1
    assert stops[0]["Acct-Terminate-Cause"] == ["Lost-Carrier"]
    assert stops[0]["Acct-Delay-Time"][0] >= 100
    assert stops[0]["Acct-Session-Id"] == ["s-1"]


async def test_spooled_records_stay_in_the_spool_until_acknowledged(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    stop = AccountingRecord(
        AccountingStatus.STOP, 1_000_000.0, SESSION, 30, Counters(10, 20, 1, 2), TerminateCause.LOST_CARRIER
    )
    spool.write_text(stop.to_json() + "\n")
    down = client_for(free_udp_port())
    accounting = RadiusAccounting(down, NAS, spool=spool, retry_interval=3600)
    await accounting.start()
    # A crash now (SIGKILL, power loss) must not lose the Stop: it is still in the file.
    assert [AccountingRecord.from_json(line) for line in spool.read_text().splitlines()] == [stop]
    await accounting.stop(clean=False, drain_timeout=0.5)
    await down.close()
    kept = [AccountingRecord.from_json(line) for line in spool.read_text().splitlines()]
    # Written again once, not appended to what was there.
    assert sorted(r.status.value for r in kept) == ["Accounting-On", "Stop"]


async def test_a_full_queue_drops_interim_updates_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    accounting = RadiusAccounting(client_for(free_udp_port()), NAS, spool=spool, queue_size=3)
    accounting.session_updated(SESSION, 1, Counters())
    accounting.session_stopped(SESSION, 2, Counters(), TerminateCause.USER_REQUEST)
    accounting.session_updated(SESSION, 3, Counters())
    accounting.session_stopped(SESSION, 4, Counters(), TerminateCause.USER_REQUEST)
    await accounting.stop(clean=False)
    kept = [AccountingRecord.from_json(line) for line in spool.read_text().splitlines()]
    assert [(r.status, r.session_time) for r in kept] == [
        (AccountingStatus.STOP, 2),
        (AccountingStatus.INTERIM_UPDATE, 3),
        (AccountingStatus.STOP, 4),
    ]
    # The dropped Interim-Update is lost from the RADIUS server's view: the log says so.
    assert "dropped the oldest record (Interim-Update of session s-1)" in caplog.text


async def test_an_unwritable_spool_loses_the_records_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    spool = tmp_path / "file" / "spool"  # its directory is a file
    accounting = RadiusAccounting(client_for(free_udp_port()), NAS, spool=spool)
    accounting.session_stopped(SESSION, 2, Counters(), TerminateCause.USER_REQUEST)
    await accounting.stop(clean=False)
    assert "1 unsent records lost: cannot write" in caplog.text


async def test_a_record_that_cannot_be_encoded_is_dropped_with_a_log_line(
    tmp_path: Path, acknowledging: AccountingServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A certificate identity (local EAP-TLS) may be longer than User-Name's 253 bytes (RFC 2865 §5).
    long_name = SessionFacts(SESSION.context, "x" * 300)
    assert acknowledging.transport is not None
    client = client_for(acknowledging.transport.get_extra_info("sockname")[1])
    accounting = RadiusAccounting(client, NAS, spool=tmp_path / "spool")
    await accounting.start()
    accounting.session_started(long_name)
    accounting.session_started(SESSION)
    await accounting.stop()
    await client.close()
    assert "RADIUS accounting Start of session s-1 cannot be sent" in caplog.text
    statuses = [r["Acct-Status-Type"][0] for r in acknowledging.received]
    assert sorted(statuses) == ["Accounting-Off", "Accounting-On", "Start"]
