"""A worker's shared parts: its back-off kept in step with the other workers', and its address authority
that asks the coordinator and routes what it gets into the worker's TUN."""

from __future__ import annotations

import asyncio
import logging
import socket
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from pysstp.aaa.backend import Authorization
from pysstp.server.addresses import Reservation
from pysstp.server.pool import AddressPool
from pysstp.server.worker import CoordinatedAuthority, SharedBackoff, WorkerProcess, work

SERVER = IPv4Address("10.77.0.1")
LOG = logging.LoggerAdapter(logging.getLogger("test"))


class FakeChannel:
    """The supervisor's side: answers reserve with the next of ``answers``, keeps what it was told."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.asked: list[dict[str, Any]] = []
        self.told: list[dict[str, Any]] = []
        self.closed = False

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(message)
        return self.answers.pop(0)

    def tell(self, message: dict[str, Any]) -> None:
        self.told.append(message)


class FakeRoutes:
    def __init__(self) -> None:
        self.held: list[IPv4Address] = []

    def hold(self, address: IPv4Address) -> None:
        self.held.append(address)

    def let_go(self, address: IPv4Address) -> None:
        self.held.remove(address)


def authority(channel: FakeChannel, routes: FakeRoutes) -> CoordinatedAuthority:
    pool = AddressPool(IPv4Network("10.77.0.0/24"), SERVER)
    return CoordinatedAuthority(
        pool,
        {},
        server_address=SERVER,
        channel=channel,
        routes=routes,  # type: ignore[arg-type]
    )


async def reserve(addresses: CoordinatedAuthority, user: str, **authorization: Any) -> Reservation | str:
    return await addresses.reserve(
        user, Authorization(**authorization), prefix_taken=lambda _p: False, log=LOG, peer="192.0.2.1:5000"
    )


def test_each_worker_counts_the_others_failures() -> None:
    channel = FakeChannel()
    here = SharedBackoff(source_limit=2, channel=channel)  # type: ignore[arg-type]
    there = SharedBackoff(source_limit=2)
    here.failed("192.0.2.7", "alice")
    for message in channel.told:
        there.replay(message)
    assert there.delay("192.0.2.7", "alice") == here.delay("192.0.2.7", "alice") > 0
    assert here.failed("192.0.2.7", "bob") is not None
    there.replay(channel.told[-1])
    assert there.refused("192.0.2.7") is not None  # refused at accept on every worker
    here.succeeded("192.0.2.7", "bob")
    there.replay(channel.told[-1])
    assert there.refused("192.0.2.7") is None


async def test_addresses_come_from_the_coordinator_and_are_routed_here() -> None:
    channel = FakeChannel({"address": "10.77.0.9", "lease": 4}, {"refused": "no IPv4 address left"})
    routes = FakeRoutes()
    addresses = authority(channel, routes)
    reservation = await reserve(addresses, "alice", address=IPv4Address("10.77.0.9"), max_sessions=2)
    assert isinstance(reservation, Reservation)
    assert (reservation.address, reservation.network.peer_address) == (IPv4Address("10.77.0.9"),) * 2
    assert channel.asked == [
        {"op": "reserve", "user": "alice", "fixed": "10.77.0.9", "pool": None, "max_sessions": 2}
    ]
    assert routes.held == [IPv4Address("10.77.0.9")]
    assert await reserve(addresses, "bob") == "no IPv4 address left"
    addresses.release(reservation.address, reservation.pool)
    assert channel.told == [{"op": "release", "lease": 4}]
    assert routes.held == []


async def test_a_replaced_session_releases_its_own_lease() -> None:
    # on_limit = replace on this worker: the new session gets the old one's fixed address before the old
    # one lets go of it; each release gives back its own lease, the older first.
    channel = FakeChannel({"address": "10.77.0.9", "lease": 1}, {"address": "10.77.0.9", "lease": 2})
    routes = FakeRoutes()
    addresses = authority(channel, routes)
    old = await reserve(addresses, "alice")
    new = await reserve(addresses, "alice")
    assert isinstance(old, Reservation) and isinstance(new, Reservation)
    addresses.release(old.address, old.pool)
    assert routes.held == [IPv4Address("10.77.0.9")]  # still the new session's
    addresses.release(new.address, new.pool)
    assert channel.told == [{"op": "release", "lease": 1}, {"op": "release", "lease": 2}]
    assert routes.held == []


class SlowChannel(FakeChannel):
    """A coordinator that answers only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: asyncio.Future[dict[str, Any]] | None = None

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(message)
        self.answer = asyncio.get_running_loop().create_future()
        return await self.answer


async def test_a_lease_that_arrives_after_its_call_ended_is_given_back() -> None:
    channel, routes = SlowChannel(), FakeRoutes()
    asking = asyncio.ensure_future(reserve(authority(channel, routes), "alice"))  # type: ignore[arg-type]
    while channel.answer is None:
        await asyncio.sleep(0)
    asking.cancel()  # the call ended while the coordinator was choosing
    with pytest.raises(asyncio.CancelledError):
        await asking
    channel.answer.set_result({"address": "10.77.0.9", "lease": 7})
    for _ in range(10):  # the ask finishes, then its done callback runs: a few loop turns
        await asyncio.sleep(0)
    assert channel.told == [{"op": "release", "lease": 7}]
    assert routes.held == []


async def test_a_worker_whose_supervisor_is_gone_before_the_start_exits() -> None:
    ours, theirs = socket.socketpair()
    working = asyncio.create_task(work(theirs))
    ours.close()  # the supervisor was killed before it sent the start
    assert await asyncio.wait_for(working, 60) == 1


async def test_a_worker_whose_supervisor_is_gone_stops_as_on_sigterm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Once started (also while still starting up), the line's end sets the worker's stop: its sessions
    are told and its changes undone, as on SIGTERM, never left running without a supervisor."""
    ours, theirs = socket.socketpair()
    worker = WorkerProcess(theirs)
    await worker.channel.open()
    serving = asyncio.create_task(worker.channel.serve())
    serving.add_done_callback(worker.supervisor_gone)
    worker.start.set_result({"op": "start"})
    ours.close()  # the supervisor was killed (SIGKILL, a crash): the kernel closed its end
    await asyncio.wait_for(worker.stop.wait(), 60)
    assert "the supervisor has gone away: shutting down" in caplog.text
