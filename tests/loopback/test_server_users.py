"""The server with a real user database (over TLS on 127.0.0.1): disabled users and fixed addresses."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from pysstp.aaa.userdb import UserDatabase
from pysstp.link import LinkDown

from helpers.loopback import Bench, start_bench

TIMEOUT = 10


async def start_with_users(tmp_path: Path, db: UserDatabase) -> Bench:
    """A bench whose server checks passwords against ``db`` and takes addresses from its entries."""
    bench = await start_bench(tmp_path, configure=lambda c: dataclasses.replace(c, credentials=db))
    bench.app.users = db.entry
    return bench


@pytest.fixture
def db(tmp_path: Path) -> UserDatabase:
    db = UserDatabase(tmp_path / "users.toml", create=True)
    db.add("alice", "alicepw")
    db.add("bob", "bobpw", enabled=False)
    return db


@pytest.mark.parametrize("sent", ["bob", "CORP\\bob"])
async def test_a_disabled_user_is_logged_as_disabled_not_unknown(
    tmp_path: Path, db: UserDatabase, sent: str, caplog: pytest.LogCaptureFixture
) -> None:
    bench = await start_with_users(tmp_path, db)
    try:
        with caplog.at_level(logging.WARNING, "pysstp.server"):
            client = await bench.connect(sent, "bobpw")
            await asyncio.wait_for(client.down.wait(), TIMEOUT)
        down = client.first(LinkDown)
        assert isinstance(down, LinkDown) and "691" in down.reason  # the peer learns nothing more
        lines = [r.getMessage() for r in caplog.records]
        assert any(f"authentication failed for {sent!r}: user 'bob' is disabled" in line for line in lines)
        assert not any("unknown" in line for line in lines), lines
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_an_unknown_user_is_still_logged_as_unknown(
    tmp_path: Path, db: UserDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    bench = await start_with_users(tmp_path, db)
    try:
        with caplog.at_level(logging.WARNING, "pysstp.server"):
            client = await bench.connect("carol", "carolpw")
            await asyncio.wait_for(client.down.wait(), TIMEOUT)
        assert any("unknown user 'carol'" in r.getMessage() for r in caplog.records)
    finally:
        await bench.app.shutdown()
        bench.tun.close()
