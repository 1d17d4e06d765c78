"""RADIUS accounting into a real FreeRADIUS 3.2's detail file: Accounting-On/Off, Start, Interim-Update
and Stop with the counters (Gigawords past 4 GiB), the terminate cause and the Class echoed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius.accounting import Counters, RadiusAccounting, SessionFacts, TerminateCause
from pysstp.aaa.radius.client import RadiusClient
from pysstp.aaa.radius.request import NasIdentity
from pysstp.aaa.radius.server import RadiusServer

from helpers.freeradius import SECRET, RadiusHost, RadiusUser, detail_records, radius_host

__all__ = ["radius_host"]  # fixture


async def test_session_accounting_lands_in_the_detail_file(radius_host: RadiusHost, tmp_path: Path) -> None:
    server = radius_host.freeradius(tmp_path / "raddb", [RadiusUser("alice", "pw")])
    client = RadiusClient(
        [RadiusServer(server.address, SECRET, port=server.port, accounting_port=server.port + 1)]
    )
    accounting = RadiusAccounting(
        client, NasIdentity("pysstp-acct", IPv4Address("192.0.2.1")), spool=tmp_path / "spool"
    )
    session = SessionFacts(
        CallContext("acct-7", "198.51.100.7", "203.0.113.1", 3),
        "alice",
        IPv4Address("10.9.0.7"),
        (b"class-a",),
    )
    try:
        await accounting.start()
        accounting.session_started(session)
        accounting.session_updated(session, 60, Counters(1000, 2000, 10, 20))
        accounting.session_stopped(
            session, 125, Counters(5 * (1 << 32) + 7, 3000, 40, 50), TerminateCause.IDLE_TIMEOUT
        )
        await accounting.stop()
    finally:
        await client.close()
    assert not (tmp_path / "spool").exists()
    by_status = {r["Acct-Status-Type"]: r for r in detail_records(server.detail)}
    assert set(by_status) == {"Accounting-On", "Start", "Interim-Update", "Stop", "Accounting-Off"}, (
        server.describe()
    )
    stop = by_status["Stop"]
    assert stop["Acct-Session-Id"] == "acct-7"
    assert stop["User-Name"] == "alice"
    assert stop["Acct-Terminate-Cause"] == "Idle-Timeout"
    assert stop["Acct-Session-Time"] == "125"
    assert (stop["Acct-Input-Octets"], stop["Acct-Input-Gigawords"]) == ("7", "5")
    assert stop["Acct-Output-Octets"] == "3000"
    assert stop["Framed-IP-Address"] == "10.9.0.7"
    assert stop["Class"] == "0x636c6173732d61"
    assert by_status["Interim-Update"]["Acct-Output-Packets"] == "20"
    assert by_status["Accounting-On"]["NAS-Identifier"] == "pysstp-acct"


async def test_queued_accounting_arrives_when_the_server_is_back(
    radius_host: RadiusHost, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = radius_host.freeradius(tmp_path / "raddb", [RadiusUser("alice", "pw")])
    client = RadiusClient(
        [
            RadiusServer(
                server.address,
                SECRET,
                port=server.port,
                accounting_port=server.port + 1,
                timeout=0.3,
                retries=0,
            )
        ]
    )
    accounting = RadiusAccounting(client, NasIdentity("pysstp-acct"), retry_interval=0.5)
    session = SessionFacts(CallContext("outage-1", "198.51.100.7", "203.0.113.1", 4), "alice")
    try:
        await accounting.start()
        server.stop()
        accounting.session_stopped(session, 10, Counters(1, 2, 3, 4), TerminateCause.LOST_CARRIER)
        await wait_for(lambda: "Stop of session outage-1 not acknowledged" in caplog.text, "a failed try")
        server.start()
        await wait_for(lambda: accounting.pending == 0, "the queue to drain")
    finally:
        await accounting.stop(clean=False)
        await client.close()
    (stop,) = [r for r in detail_records(server.detail) if r["Acct-Status-Type"] == "Stop"]
    assert stop["Acct-Session-Id"] == "outage-1"
    assert stop["Acct-Terminate-Cause"] == "Lost-Carrier"


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait (generously) for ``predicate``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        await asyncio.sleep(0.05)
