"""FreeRADIUS's ``radclient`` (Debian's freeradius-utils) sends Disconnect- and CoA-Requests to the real
server's Dynamic Authorization port on 127.0.0.1, as an admin would (docs/radius.md)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from pysstp.aaa.dae import DaeClient, DaeServer, DynamicAuthorization
from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.link import LinkDown
from pysstp.server.dae import ServerSessions

from helpers.loopback import Bench, Client, start_bench

pytestmark = pytest.mark.skipif(
    shutil.which("radclient") is None, reason="radclient is not installed (Debian: freeradius-utils)"
)

TIMEOUT = 20
SECRET = "radclient-dae-secret"


@dataclass
class Radclient:
    bench: Bench
    dae: DaeServer
    secret_file: Path

    async def send(self, kind: str, attributes: str) -> str:
        """``echo ATTRIBUTES | radclient -x 127.0.0.1:PORT KIND -S SECRET-FILE``; its output."""
        assert self.dae.bound is not None
        process = await asyncio.create_subprocess_exec(
            "radclient",
            "-x",
            "-r",
            "1",
            "-t",
            str(TIMEOUT),
            "-S",
            str(self.secret_file),
            f"127.0.0.1:{self.dae.bound[1]}",
            kind,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(attributes.encode() + b"\n"), TIMEOUT * 2)
        return out.decode(errors="replace")

    async def up(self, user: str = "alice", password: str = "alicepw") -> Client:
        client = await self.bench.connect(user, password)
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        return client


@pytest.fixture
async def radclient(tmp_path: Path) -> AsyncIterator[Radclient]:
    bench = await start_bench(tmp_path)
    dae = DaeServer(
        DynamicAuthorization(
            [DaeClient(IPv4Address("127.0.0.1"), SECRET.encode())], ServerSessions(bench.app)
        )
    )
    await dae.start("127.0.0.1", 0)
    secret_file = tmp_path / "dae.secret"
    secret_file.write_text(SECRET + "\n")
    yield Radclient(bench, dae, secret_file)
    dae.close()
    await bench.app.shutdown()
    bench.tun.close()


async def test_a_disconnect_request_from_radclient_ends_the_session(radclient: Radclient) -> None:
    alice = await radclient.up()
    bob = await radclient.up("bob", "bobpw")
    (session,) = [c for c in radclient.bench.app.connections if c.info.user == "alice"]
    out = await radclient.send("disconnect", "User-Name=alice")
    assert "Received Disconnect-ACK" in out, out
    await asyncio.wait_for(alice.down.wait(), TIMEOUT)
    down = alice.first(LinkDown)
    assert isinstance(down, LinkDown) and not down.error
    assert session.terminate_cause is TerminateCause.ADMIN_RESET
    assert not bob.down.is_set()


async def test_a_disconnect_request_for_an_unknown_session_gets_a_nak_503(radclient: Radclient) -> None:
    alice = await radclient.up()
    out = await radclient.send("disconnect", "Acct-Session-Id=0000000000000000")
    assert "Received Disconnect-NAK" in out, out
    assert "Error-Cause = Session-Context-Not-Found" in out, out
    assert not alice.down.is_set()


async def test_a_coa_request_from_radclient_changes_the_session_timeout(radclient: Radclient) -> None:
    alice = await radclient.up()
    (session,) = radclient.bench.app.connections
    out = await radclient.send("coa", f"Acct-Session-Id={session.info.session_id}, Session-Timeout=1")
    assert "Received CoA-ACK" in out, out
    await asyncio.wait_for(alice.down.wait(), TIMEOUT)
    assert session.terminate_cause is TerminateCause.SESSION_TIMEOUT
