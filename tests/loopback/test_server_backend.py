"""The server and its authentication backend over TLS on 127.0.0.1: the back-off around it, a backend
that fails or is slow, and what its Authorization decides about the session."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from pysstp.aaa.backend import Answer, Authorization, CallContext
from pysstp.aaa.local import LocalBackend, StaticCredentials
from pysstp.link import AuthenticationFailed, LinkDown, LinkUp, Verification
from pysstp.ppp.constants import AuthMethod, Code, Protocol
from pysstp.ppp.packet import ControlPacket
from pysstp.server.backoff import Backoff
from pysstp.server.pool import AddressPool

from helpers.loopback import Bench, start_bench

TIMEOUT = 10
EAP_ONLY = (AuthMethod.EAP_MSCHAP_V2,)
USERS = StaticCredentials({"alice": "alicepw", "bob": "bobpw"})


async def wait_for(condition: object, timeout: float = TIMEOUT) -> None:
    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


class Granting:
    """The local backend, with an authorization of the test's choosing for every yes."""

    name = "granting"

    def __init__(self, authorization: Authorization) -> None:
        self.local = LocalBackend(USERS)
        self.authorization = authorization
        self.contexts: list[CallContext] = []

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        self.contexts.append(context)
        answer = self.local.check(question)
        return replace(answer, authorization=self.authorization) if answer.verdict.success else answer

    def finished(self, context: CallContext) -> None:
        pass


class Waiting:
    """A backend that never answers until told to (a dead RADIUS server)."""

    name = "waiting"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.cancelled = 0
        self.finished_calls: list[str] = []

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return LocalBackend(USERS).check(question)

    def finished(self, context: CallContext) -> None:
        self.finished_calls.append(context.session_id)


class Broken:
    name = "broken"

    async def verify(self, question: Verification, context: CallContext) -> Answer:
        raise OSError("no route to the directory")

    def finished(self, context: CallContext) -> None:
        pass


async def bench_with(tmp_path: Path, backend: object, **options: object) -> Bench:
    bench = await start_bench(tmp_path, **options)  # type: ignore[arg-type]
    bench.app.backend.inner = backend  # type: ignore[assignment]
    return bench


async def stop(bench: Bench) -> None:
    await bench.app.shutdown()
    bench.tun.close()


# -- back-off ---------------------------------------------------------------------------------------


async def test_eap_mschapv2_inner_verdict_is_delayed_and_a_hang_up_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = await start_bench(tmp_path, configure=lambda c: dataclasses.replace(c, auth_methods=EAP_ONLY))
    bench.app.backoff = Backoff(base=300.0, maximum=1200.0)
    caplog.set_level(logging.INFO, "pysstp.server")
    try:
        first = await bench.connect(password="guess", auth_methods=EAP_ONLY)
        await asyncio.wait_for(first.down.wait(), TIMEOUT)
        assert bench.app.backoff.delay("127.0.0.1", None) == 300.0  # the inner verdict was counted
        guesser = await bench.connect(password="guess again", auth_methods=EAP_ONLY)
        await wait_for(lambda: any("answering the login of 'alice' in 300.0 s" in m for m in caplog.messages))
        # The guess is with the backend, behind the delay: the guesser has seen no inner verdict.
        assert not guesser.down.is_set()
        assert not any(isinstance(e, AuthenticationFailed) for e in guesser.events)
        assert guesser.connection is not None and guesser.connection.transport is not None
        guesser.connection.transport.abort()  # hang up rather than wait
        await wait_for(lambda: not bench.app.connections)
        assert bench.app.backoff.delay("127.0.0.1", None) == 600.0  # the hang-up counted as a failure
    finally:
        await stop(bench)


# -- a slow, dead or broken backend -----------------------------------------------------------------


async def test_a_call_that_ends_while_its_question_waits_cancels_it(tmp_path: Path) -> None:
    backend = Waiting()
    bench = await bench_with(tmp_path, backend)
    try:
        client = await bench.connect()
        await wait_for(lambda: any(c.verifying is not None for c in bench.app.connections))
        [connection] = bench.app.connections
        assert client.connection is not None and client.connection.transport is not None
        client.connection.transport.abort()
        await wait_for(lambda: backend.cancelled == 1)
        assert backend.finished_calls == [connection.context.session_id]
    finally:
        await stop(bench)


async def test_a_question_superseded_by_an_lcp_renegotiation_is_cancelled(tmp_path: Path) -> None:
    backend = Waiting()
    bench = await bench_with(tmp_path, backend)
    try:
        client = await bench.connect()
        await wait_for(lambda: any(c.verifying is not None for c in bench.app.connections))
        [connection] = bench.app.connections
        first = connection.verifying
        # The peer starts LCP over while its question waits: a new authenticator asks a new question.
        request = ControlPacket(Code.CONFIGURE_REQUEST, 99).encode()
        connection.link.session.receive_packet(Protocol.LCP, request, asyncio.get_running_loop().time())
        connection.flush()
        await wait_for(lambda: connection.verifying not in (None, first))
        await wait_for(lambda: backend.cancelled == 1)
        backend.release.set()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
    finally:
        await stop(bench)


async def test_a_waiting_login_does_not_hold_up_others_and_goes_on_when_answered(tmp_path: Path) -> None:
    backend = Waiting()
    bench = await bench_with(tmp_path, backend)
    try:
        waiting = await bench.connect()
        await wait_for(lambda: any(c.verifying is not None for c in bench.app.connections))
        bench.app.backend.inner = LocalBackend(USERS)
        other = await bench.connect("bob", "bobpw")
        await asyncio.wait_for(other.up.wait(), TIMEOUT)
        assert not waiting.up.is_set()
        backend.release.set()  # a few seconds late, the answer comes: the call goes on
        await asyncio.wait_for(waiting.up.wait(), TIMEOUT)
    finally:
        await stop(bench)


async def test_a_failing_backend_refuses_that_login_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = await bench_with(tmp_path, Broken())
    caplog.set_level(logging.WARNING, "pysstp.server")
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.down.wait(), TIMEOUT)
        down = client.first(LinkDown)
        assert isinstance(down, LinkDown) and "691" in down.reason
        assert any(
            "the authentication backend failed (no route to the directory); refusing the login" in m
            for m in caplog.messages
        )
    finally:
        await stop(bench)


# -- the authorization ------------------------------------------------------------------------------


async def test_the_authorization_decides_the_session(tmp_path: Path) -> None:
    authorization = Authorization(
        address=IPv4Address("10.77.0.77"),
        routes=(IPv4Network("192.168.60.0/24"),),
        dns=(IPv4Address("192.0.2.53"),),
        mtu=1200,
        classes=(b"group=staff",),
    )
    backend = Granting(authorization)
    bench = await bench_with(tmp_path, backend)
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        up = client.first(LinkUp)
        assert isinstance(up, LinkUp)
        assert up.local_address == IPv4Address("10.77.0.77") and up.dns_servers == (
            IPv4Address("192.0.2.53"),
        )
        [connection] = bench.app.connections
        assert connection.info.routes == authorization.routes and connection.info.classes == (b"group=staff",)
        assert connection.mtu == 1200
        [context] = backend.contexts
        assert context.calling_station == "127.0.0.1" and context.called_station == "127.0.0.1"
        assert context.session_id == connection.info.session_id and len(context.session_id) == 16
    finally:
        await stop(bench)


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (Authorization(session_timeout=0.3), "session timeout"),
        (Authorization(idle_timeout=0.3), "idle timeout"),
    ],
)
async def test_per_session_timeouts(tmp_path: Path, authorization: Authorization, reason: str) -> None:
    bench = await bench_with(tmp_path, Granting(authorization))
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        await asyncio.wait_for(client.down.wait(), TIMEOUT)
        down = client.first(LinkDown)
        assert isinstance(down, LinkDown) and not down.error and reason in down.reason
    finally:
        await stop(bench)


async def test_each_call_gets_its_own_session_id(tmp_path: Path) -> None:
    backend = Granting(Authorization())
    bench = await bench_with(tmp_path, backend)
    try:
        clients = [await bench.connect(), await bench.connect("bob", "bobpw")]
        await asyncio.wait_for(asyncio.gather(*(c.up.wait() for c in clients)), TIMEOUT)
        ids = {c.session_id for c in backend.contexts}
        ports = {c.nas_port for c in backend.contexts}
        assert len(ids) == len(ports) == 2
        assert len({session_id[:8] for session_id in ids}) == 1  # one prefix per process
    finally:
        await stop(bench)


# -- named pools (RADIUS Framed-Pool) ---------------------------------------------------------------

OFFICE = IPv4Network("10.78.0.0/29")


async def named_pool_bench(tmp_path: Path, authorization: Authorization) -> Bench:
    return await bench_with(
        tmp_path,
        Granting(authorization),
        pools={"office": AddressPool(OFFICE, IPv4Address("10.77.0.1"))},  # type: ignore[arg-type]
    )


async def test_framed_pool_takes_the_address_from_the_named_pool_and_gives_it_back(tmp_path: Path) -> None:
    bench = await named_pool_bench(tmp_path, Authorization(pool="office"))
    office = bench.app.pools["office"]
    assert isinstance(office, AddressPool)
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        up = client.first(LinkUp)
        assert isinstance(up, LinkUp) and up.local_address == IPv4Address("10.78.0.1")
        assert office.in_use() == {IPv4Address("10.78.0.1"): "alice"}
        assert client.connection is not None
        client.connection.close()
        await wait_for(lambda: not bench.app.connections)
        assert office.in_use() == {}
    finally:
        await stop(bench)


async def test_a_fixed_address_in_a_named_pool_comes_from_that_pool(tmp_path: Path) -> None:
    bench = await named_pool_bench(tmp_path, Authorization(address=IPv4Address("10.78.0.5")))
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        assert bench.app.pools["office"].fixed_refusal(IPv4Address("10.78.0.5")) is None
        [connection] = bench.app.connections
        assert connection.info.address == IPv4Address("10.78.0.5")
        assert connection.address_pool is bench.app.pools["office"]
    finally:
        await stop(bench)


async def test_an_unknown_pool_refuses_the_login_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = await named_pool_bench(tmp_path, Authorization(pool="lab"))
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.down.wait(), TIMEOUT)
        assert not client.up.is_set()
        assert "pool 'lab' of user 'alice' is not in the config (named pools: office)" in caplog.text
    finally:
        await stop(bench)


async def test_an_exhausted_named_pool_says_which(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bench = await named_pool_bench(tmp_path, Authorization(pool="office"))
    office = bench.app.pools["office"]
    while office.allocate("someone") is not None:
        pass
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.down.wait(), TIMEOUT)
        assert "no IPv4 address left in pool 'office' for user 'alice'" in caplog.text
    finally:
        await stop(bench)
