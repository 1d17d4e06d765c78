"""The server's sessions reported to RADIUS accounting: every way a session ends gives its Stop."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from pysstp.aaa.radius.accounting import AccountingStatus, RadiusAccounting, TerminateCause
from pysstp.aaa.radius.client import RadiusClient
from pysstp.aaa.radius.request import NasIdentity
from pysstp.aaa.radius.server import RadiusServer
from pysstp.server import app as server_app
from pysstp.server.accounting import SessionAccounting

from helpers.loopback import start_bench

TIMEOUT = 10


def unstarted_accounting() -> RadiusAccounting:
    """Records queue up and stay there (never started), so a test can read them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    client = RadiusClient([RadiusServer("127.0.0.1", b"secret", accounting_port=port)])
    return RadiusAccounting(client, NasIdentity("loopback"))


async def test_a_session_aborted_at_shutdown_has_its_stop_queued_before_shutdown_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No grace: the session does not finish its goodbye and is aborted. The caller stops accounting
    # (spooling what is queued) right after shutdown returns, so the Stop must be queued by then.
    monkeypatch.setattr(server_app, "SHUTDOWN_GRACE", 0.0)
    records = unstarted_accounting()
    bench = await start_bench(tmp_path, accounting=SessionAccounting(records))  # type: ignore[arg-type]
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        await bench.app.shutdown()
        stops = [r for r in records._queue if r.status is AccountingStatus.STOP]
        assert [(r.session.user if r.session else None, r.cause) for r in stops] == [
            ("alice", TerminateCause.ADMIN_REBOOT)
        ]
    finally:
        await bench.app.shutdown()
        bench.tun.close()
