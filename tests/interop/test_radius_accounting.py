"""RADIUS accounting into a real FreeRADIUS 3.2's detail file: Accounting-On/Off, Start, Interim-Update
and Stop with the counters (Gigawords past 4 GiB), the terminate cause and the Class echoed."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

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
