"""Dynamic Authorization against the real server on 127.0.0.1: Disconnect- and CoA-Requests over UDP end and
change real calls; a user's session limit that replaces the older session."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from pyrad.packet import CoAACK, CoAPacket, CoARequest, DisconnectACK, DisconnectNAK, DisconnectRequest

from pysstp.aaa.dae import DaeClient, DaeServer, DynamicAuthorization
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.aaa.radius.dictionary import radius_dictionary
from pysstp.cli import main
from pysstp.errors import SystemSetupError
from pysstp.link import LinkDown
from pysstp.server.app import Limits, ServerConnection
from pysstp.server.config import DaeClientSettings, DaeSettings
from pysstp.server.control import ControlServer
from pysstp.server.dae import ServerSessions, start_dae

from helpers.loopback import Bench, Client, start_bench

TIMEOUT = 20
SECRET = b"loopback-dae-secret"


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)


@dataclass
class DaeBench:
    bench: Bench
    dae: DaeServer

    async def send(self, code: int, **attributes: Any) -> CoAPacket:
        """Send one request as a RADIUS client would and return its verified reply."""
        packet = CoAPacket(code=code, secret=SECRET, dict=radius_dictionary(), **attributes)
        packet.add_message_authenticator()
        raw = packet.RequestPacket()
        assert self.dae.bound is not None
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(_Reply, remote_addr=self.dae.bound)
        try:
            transport.sendto(raw)
            data = await asyncio.wait_for(protocol.reply, TIMEOUT)
        finally:
            transport.close()
        reply: CoAPacket = packet.CreateReply(packet=data)
        assert packet.VerifyReply(reply, data)
        return reply

    def session(self, user: str) -> ServerConnection:
        (connection,) = [c for c in self.bench.app.connections if c.info.user == user]
        return connection


@pytest.fixture
async def dae_bench(tmp_path: Path) -> AsyncIterator[DaeBench]:
    bench = await start_bench(tmp_path)
    dae = DaeServer(
        DynamicAuthorization([DaeClient(IPv4Address("127.0.0.1"), SECRET)], ServerSessions(bench.app))
    )
    await dae.start("127.0.0.1", 0)
    yield DaeBench(bench, dae)
    dae.close()
    await bench.app.shutdown()
    bench.tun.close()


async def up(bench: Bench, user: str = "alice", password: str = "alicepw") -> Client:
    client = await bench.connect(user, password)
    await asyncio.wait_for(client.up.wait(), TIMEOUT)
    return client


async def ended(client: Client) -> LinkDown:
    await asyncio.wait_for(client.down.wait(), TIMEOUT)
    down = client.first(LinkDown)
    assert isinstance(down, LinkDown)
    return down


@pytest.mark.parametrize("by", ["User_Name", "Acct_Session_Id", "Framed_IP_Address", "Calling_Station_Id"])
async def test_a_disconnect_request_ends_the_call(
    dae_bench: DaeBench, by: str, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await up(dae_bench.bench)
    bob = await up(dae_bench.bench, "bob", "bobpw")
    session = dae_bench.session("alice")
    value = {
        "User_Name": "alice",
        "Acct_Session_Id": session.info.session_id,
        "Framed_IP_Address": str(session.info.address),
        "Calling_Station_Id": session.source,
    }[by]
    # Both calls come from 127.0.0.1: by Calling-Station-Id, the user narrows it to alice's.
    extra = {"User_Name": "alice"} if by == "Calling_Station_Id" else {}
    with caplog.at_level(logging.INFO, "pysstp"):
        reply = await dae_bench.send(DisconnectRequest, **{by: value}, **extra)
        assert reply.code == DisconnectACK
        down = await ended(alice)
    assert not down.error
    assert session.terminate_cause is TerminateCause.ADMIN_RESET
    assert "call ended: disconnected by a Disconnect-Request from 127.0.0.1" in caplog.text
    assert not bob.down.is_set()


async def test_a_disconnect_request_for_no_session_gets_a_nak_503(dae_bench: DaeBench) -> None:
    alice = await up(dae_bench.bench)
    reply = await dae_bench.send(DisconnectRequest, User_Name="carol")
    assert reply.code == DisconnectNAK and reply["Error-Cause"] == ["Session-Context-Not-Found"]
    assert not alice.down.is_set()


async def test_a_coa_request_sets_a_session_timeout_that_ends_the_call(
    dae_bench: DaeBench, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await up(dae_bench.bench)
    bob = await up(dae_bench.bench, "bob", "bobpw")
    session = dae_bench.session("alice")
    with caplog.at_level(logging.INFO, "pysstp"):
        reply = await dae_bench.send(CoARequest, Acct_Session_Id=session.info.session_id, Session_Timeout=1)
        assert reply.code == CoAACK
        down = await ended(alice)
    assert not down.error
    assert session.terminate_cause is TerminateCause.SESSION_TIMEOUT
    assert "call ended: session timeout" in caplog.text
    assert not bob.down.is_set()


async def test_a_coa_request_sets_an_idle_timeout_for_that_session(dae_bench: DaeBench) -> None:
    alice = await up(dae_bench.bench)
    session = dae_bench.session("alice")
    reply = await dae_bench.send(CoARequest, User_Name="alice", Idle_Timeout=1)
    assert reply.code == CoAACK
    await ended(alice)  # alice sends no IP packet
    assert session.terminate_cause is TerminateCause.IDLE_TIMEOUT


async def test_status_shows_session_ids_and_the_dae_listener(
    dae_bench: DaeBench, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    control = ControlServer(dae_bench.bench.app, tmp_path / "ctl.sock", dae=dae_bench.dae)
    await control.start()
    try:
        await up(dae_bench.bench)
        session_id = dae_bench.session("alice").info.session_id
        await dae_bench.send(DisconnectRequest, User_Name="carol")  # one NAK to count
        assert await asyncio.to_thread(main, ["status", "--socket", str(control.path), "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)["sessions"]
        assert row["session_id"] == session_id
        monkeypatch.setenv("COLUMNS", "250")
        assert await asyncio.to_thread(main, ["status", "--socket", str(control.path)]) == 0
        out = capsys.readouterr().out
        assert session_id in out
        assert dae_bench.dae.bound is not None
        host, port = dae_bench.dae.bound
        assert f"dynamic authorization: listening on {host}:{port} for 1 client(s); 0 ACK, 1 NAK" in out
    finally:
        await control.stop()


# -- on_limit ----------------------------------------------------------------------------------------


async def test_on_limit_replace_ends_the_older_session_for_the_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = await start_bench(tmp_path, limits=Limits(max_sessions_per_user=1, on_limit="replace"))
    try:
        first = await up(bench)
        (older,) = bench.app.connections
        with caplog.at_level(logging.INFO, "pysstp.server"):
            second = await up(bench)
            await ended(first)
        assert older.terminate_cause is TerminateCause.ADMIN_RESET
        assert f"session {older.info.session_id} of user 'alice' ends for the newer one" in caplog.text
        assert not second.down.is_set()
        (newer,) = [c for c in bench.app.connections if c.info.user == "alice"]
        assert newer is not older
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_on_limit_deny_refuses_the_new_session(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path, limits=Limits(max_sessions_per_user=1, on_limit="deny"))
    try:
        first = await up(bench)
        second = await bench.connect()
        down = await ended(second)
        assert "already has 1 session" in down.reason
        assert not first.down.is_set()
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_a_dae_port_in_use_is_one_line(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path)
    secret = tmp_path / "dae.secret"
    secret.write_text("s3cret\n")
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        dae = DaeSettings(
            listen="127.0.0.1", port=port, clients=(DaeClientSettings(IPv4Address("127.0.0.1"), secret),)
        )
        with pytest.raises(SystemSetupError) as info:
            await start_dae(bench.app, dae)
        assert str(info.value) == (
            f"cannot listen for dynamic authorization on 127.0.0.1 UDP port {port}: it is in use "
            "(set dae.listen and dae.port)"
        )
        assert await start_dae(bench.app, DaeSettings()) is None  # no clients: off
    finally:
        taken.close()
        await bench.app.shutdown()
        bench.tun.close()


async def test_the_listener_on_ipv6_says_where_it_listens(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path)
    server = DaeServer(DynamicAuthorization([], ServerSessions(bench.app)))
    try:
        host, port = await server.start("::1", 0)
        assert server.state()["listening"] == f"[::1]:{port}" and host == "::1"
    finally:
        server.close()
        await bench.app.shutdown()
        bench.tun.close()
    assert server.state()["listening"] is None
