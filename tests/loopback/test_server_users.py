"""The server with a real user database (TLS on 127.0.0.1): disabled users, unroutable fixed addresses."""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from pysstp.aaa.userdb import UserDatabase
from pysstp.link import LinkDown
from pysstp.server.check import check_fixed_addresses
from pysstp.server.pool import AddressPool

from helpers.loopback import POOL, SERVER_ADDRESS, Bench, start_bench

TIMEOUT = 10


async def start_with_users(tmp_path: Path, db: UserDatabase) -> Bench:
    """A bench whose server checks passwords against ``db`` and takes addresses from its entries."""
    return await start_bench(tmp_path, credentials=db)


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


# -- fixed addresses the server cannot route -------------------------------------------------------------


def test_pool_names_why_a_fixed_address_is_unusable() -> None:
    pool = AddressPool(POOL, SERVER_ADDRESS)
    assert pool.fixed_refusal(IPv4Address("10.77.0.50")) is None
    assert pool.fixed_refusal(SERVER_ADDRESS) == f"{SERVER_ADDRESS} is the server's own tunnel address"
    assert pool.fixed_refusal(IPv4Address("172.16.0.5")) == f"172.16.0.5 is outside the pool {POOL}"
    assert "broadcast" in (pool.fixed_refusal(POOL.broadcast_address) or "")


@pytest.mark.parametrize(
    ("fixed", "problem"),
    [("172.16.0.5", f"172.16.0.5 is outside the pool {POOL}"), (str(SERVER_ADDRESS), "own tunnel address")],
)
async def test_a_user_whose_fixed_address_cannot_be_routed_is_refused_with_the_reason(
    tmp_path: Path, db: UserDatabase, fixed: str, problem: str
) -> None:
    db.add("carol", "carolpw", address=fixed)
    bench = await start_with_users(tmp_path, db)
    try:
        carol = await bench.connect("carol", "carolpw")
        await asyncio.wait_for(carol.down.wait(), TIMEOUT)
        down = carol.first(LinkDown)
        assert isinstance(down, LinkDown) and problem in down.reason, down.reason
        alice = await bench.connect()  # the other users are not affected
        await asyncio.wait_for(alice.up.wait(), TIMEOUT)
    finally:
        await bench.app.shutdown()
        bench.tun.close()


def test_loading_the_users_names_each_user_whose_fixed_address_cannot_be_routed(
    db: UserDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    db.add("carol", "carolpw", address="172.16.0.5")
    db.add("dave", "davepw", address="10.77.0.50")
    with caplog.at_level(logging.WARNING, "pysstp.server"):
        check_fixed_addresses(db, AddressPool(POOL, SERVER_ADDRESS))
    assert [r.getMessage() for r in caplog.records] == [
        f"user 'carol' gets no session: its fixed address 172.16.0.5 is outside the pool {POOL}"
    ]
