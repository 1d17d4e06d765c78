"""The RADIUS client against a scripted UDP server on 127.0.0.1: forged, late and duplicate replies are
dropped, a slow answer delays only its own request, MPPE keys become the HLAK and missing keys refuse.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from pyrad import packet as radius_packet

from pysstp.aaa.backend import CallContext
from pysstp.aaa.radius.backend import RadiusBackend
from pysstp.aaa.radius.client import RadiusClient
from pysstp.aaa.radius.dictionary import radius_dictionary
from pysstp.aaa.radius.request import NasIdentity
from pysstp.aaa.radius.server import RadiusServer
from pysstp.ppp.auth.eap import EapPacket
from pysstp.ppp.auth.verification import EapProof, MsChapV2Proof, PapProof, Verification
from pysstp.ppp.constants import AuthMethod, EapCode, EapType

SECRET = b"loopback-secret"
CONTEXT = CallContext("sess-1", "198.51.100.7", "203.0.113.1", 1)

Handler = Callable[[radius_packet.AuthPacket], Awaitable[list[bytes]]]
"""Given a decoded request, the datagrams to send back (after whatever wait the handler makes)."""


@dataclass(eq=False)
class FakeRadius(asyncio.DatagramProtocol):
    """A RADIUS server whose answers a test scripts."""

    handler: Handler
    transport: asyncio.DatagramTransport | None = None
    requests: list[radius_packet.AuthPacket] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        request = radius_packet.AuthPacket(packet=data, secret=SECRET, dict=radius_dictionary())
        self.requests.append(request)
        task = asyncio.get_running_loop().create_task(self._answer(request, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, request: radius_packet.AuthPacket, addr: tuple[str | int, ...]) -> None:
        for datagram in await self.handler(request):
            assert self.transport is not None
            self.transport.sendto(datagram, addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


def reply(
    request: radius_packet.AuthPacket, code: int = radius_packet.AccessAccept, **attributes: object
) -> bytes:
    """A genuine reply (signed, with Message-Authenticator)."""
    answer = request.CreateReply()
    answer.code = code
    for name, value in attributes.items():
        answer.AddAttribute(name.replace("_", "-"), value)
    return bytes(answer.ReplyPacket())


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]]]:
    """Start a fake server with a handler; get it and a client (1 s timeout, no retries) for it."""
    started: list[tuple[FakeRadius, RadiusClient]] = []

    async def start(handler: Handler) -> tuple[FakeRadius, RadiusClient]:
        _transport, fake = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: FakeRadius(handler), local_addr=("127.0.0.1", 0)
        )
        client = RadiusClient([RadiusServer("127.0.0.1", SECRET, port=fake.port, timeout=1.0, retries=0)])
        started.append((fake, client))
        return fake, client

    yield start
    for fake, client in started:
        await client.close()
        for task in fake.tasks:
            task.cancel()
        assert fake.transport is not None
        fake.transport.close()


def backend(client: RadiusClient) -> RadiusBackend:
    return RadiusBackend(client, NasIdentity("loopback"))


def pap(user: str = "alice") -> Verification:
    return Verification(AuthMethod.PAP, user, PapProof("secret"))


async def test_reply_signed_with_another_secret_is_dropped(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]], caplog: pytest.LogCaptureFixture
) -> None:
    async def forge(request: radius_packet.AuthPacket) -> list[bytes]:
        request.secret = b"attacker-does-not-know-it"
        return [reply(request)]

    _fake, client = await serve(forge)
    verdict = (await backend(client).verify(pap(), CONTEXT)).verdict
    assert not verdict.success
    assert "no RADIUS server answered" in verdict.reason
    assert "wrong Response Authenticator or Message-Authenticator" in caplog.text


async def test_reply_without_message_authenticator_is_dropped(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]], caplog: pytest.LogCaptureFixture
) -> None:
    async def unsigned(request: radius_packet.AuthPacket) -> list[bytes]:
        answer = request.CreateReply(message_authenticator=False)
        return [bytes(answer.ReplyPacket())]

    _fake, client = await serve(unsigned)
    verdict = (await backend(client).verify(pap(), CONTEXT)).verdict
    assert not verdict.success
    assert "without Message-Authenticator" in caplog.text


async def test_a_forged_reply_does_not_stop_the_genuine_one(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]], caplog: pytest.LogCaptureFixture
) -> None:
    async def forged_then_genuine(request: radius_packet.AuthPacket) -> list[bytes]:
        genuine = reply(request, radius_packet.AccessReject)
        forged = bytearray(reply(request))
        forged[4] ^= 0xFF  # the Response Authenticator
        return [bytes(forged), genuine]

    _fake, client = await serve(forged_then_genuine)
    verdict = (await backend(client).verify(pap(), CONTEXT)).verdict
    assert not verdict.success
    assert "rejected 'alice'" in verdict.reason
    assert "dropped a reply" in caplog.text


async def test_late_and_replayed_replies_are_never_misapplied(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pysstp.radius")
    held: list[bytes] = []

    async def answer(request: radius_packet.AuthPacket) -> list[bytes]:
        if request["User-Name"] == ["first"]:
            held.append(reply(request))  # an Accept that comes too late
            return []
        late = held[0]
        replayed = bytes([late[0], request.id]) + late[2:]  # the same Accept under this request's Identifier
        return [late, replayed, reply(request, radius_packet.AccessReject), reply(request)]

    _fake, client = await serve(answer)
    radius = backend(client)
    assert not (await radius.verify(pap("first"), CONTEXT)).verdict.success
    verdict = (await radius.verify(pap("second"), CONTEXT)).verdict
    assert not verdict.success and "rejected 'second'" in verdict.reason
    assert "no request waits for (late or duplicate)" in caplog.text
    assert "wrong Response Authenticator" in caplog.text


async def test_a_slow_answer_delays_only_its_own_request(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]],
) -> None:
    release = asyncio.Event()

    async def answer(request: radius_packet.AuthPacket) -> list[bytes]:
        if request["User-Name"] == ["slow"]:
            await release.wait()
        return [reply(request)]

    fake, client = await serve(answer)
    client = RadiusClient([RadiusServer("127.0.0.1", SECRET, port=fake.port, timeout=30.0, retries=0)])
    radius = backend(client)
    try:
        slow = asyncio.create_task(radius.verify(pap("slow"), CONTEXT))
        fast = await radius.verify(pap("fast"), CONTEXT)
        assert fast.verdict.success
        assert not slow.done()
        release.set()
        assert (await slow).verdict.success
    finally:
        await client.close()


def mschapv2() -> Verification:
    proof = MsChapV2Proof(1, os.urandom(16), os.urandom(16), os.urandom(24))
    return Verification(AuthMethod.MSCHAP_V2, "bob", proof)


async def test_mschapv2_keys_become_the_hlak(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]],
) -> None:
    receive, send = os.urandom(16), os.urandom(16)

    async def answer(request: radius_packet.AuthPacket) -> list[bytes]:
        success = b"\x01S=" + b"A" * 40
        return [reply(request, MS_CHAP2_Success=success, MS_MPPE_Recv_Key=receive, MS_MPPE_Send_Key=send)]

    _fake, client = await serve(answer)
    verdict = (await backend(client).verify(mschapv2(), CONTEXT)).verdict
    assert verdict.success
    assert verdict.message == "S=" + "A" * 40
    assert verdict.hlak == receive + send


async def test_mschapv2_accept_without_keys_is_refused(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]], caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: radius_packet.AuthPacket) -> list[bytes]:
        return [reply(request, MS_CHAP2_Success=b"\x01S=" + b"A" * 40)]

    _fake, client = await serve(answer)
    verdict = (await backend(client).verify(mschapv2(), CONTEXT)).verdict
    assert not verdict.success
    assert verdict.message.startswith("E=691")
    assert "without MS-MPPE-Send-Key/Recv-Key" in caplog.text


async def test_no_answer_refuses_mschapv2_as_the_server_unable_to_check(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]], caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: radius_packet.AuthPacket) -> list[bytes]:
        return []

    _fake, client = await serve(answer)
    verdict = (await backend(client).verify(mschapv2(), CONTEXT)).verdict
    assert not verdict.success
    # Not E=691: the client would tell its user the password is wrong.
    assert verdict.error_code == 645
    assert verdict.message.startswith("E=645 ")
    assert "login of 'bob' (session sess-1) refused: no RADIUS server answered (127.0.0.1:" in caplog.text


async def test_eap_accept_without_keys_is_refused_after_a_keyed_method(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]], caplog: pytest.LogCaptureFixture
) -> None:
    success = EapPacket(EapCode.SUCCESS, 3).encode()

    async def answer(request: radius_packet.AuthPacket) -> list[bytes]:
        return [reply(request, EAP_Message=success)]

    _fake, client = await serve(answer)
    response = EapPacket(EapCode.RESPONSE, 3, EapType.MSCHAP_V2, b"\x02").encode()
    question = Verification(AuthMethod.EAP_MSCHAP_V2, "bob", EapProof(response))
    verdict = (await backend(client).verify(question, CONTEXT)).verdict
    assert not verdict.success
    assert verdict.eap == EapPacket(EapCode.FAILURE, 3).encode()
    assert "without MS-MPPE keys" in caplog.text


async def test_eap_state_is_carried_and_forgotten(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]],
) -> None:
    challenge = EapPacket(EapCode.REQUEST, 2, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)).encode()

    async def answer(request: radius_packet.AuthPacket) -> list[bytes]:
        return [reply(request, radius_packet.AccessChallenge, EAP_Message=challenge, State=b"state-1")]

    fake, client = await serve(answer)
    radius = backend(client)
    identity = EapPacket(EapCode.RESPONSE, 1, EapType.IDENTITY, b"bob").encode()
    question = Verification(AuthMethod.EAP_MD5, "bob", EapProof(identity))
    first = (await radius.verify(question, CONTEXT)).verdict
    assert first.more and first.eap == challenge
    await radius.verify(question, CONTEXT)
    radius.finished(CONTEXT)
    await radius.verify(question, CONTEXT)
    states = [request.get("State") for request in fake.requests]
    assert states == [None, [b"state-1"], None]


async def test_the_accepts_user_name_names_the_session_not_the_outer_identity(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]],
) -> None:
    """PEAP and TTLS clients send an anonymous outer identity; the Access-Accept's User-Name (RFC 2865
    §5.1) is who logged in, and so the name of the session, its limits and its accounting."""
    success = EapPacket(EapCode.SUCCESS, 3).encode()

    async def answer(request: radius_packet.AuthPacket) -> list[bytes]:
        return [reply(request, EAP_Message=success, User_Name="alice")]

    _fake, client = await serve(answer)
    response = EapPacket(EapCode.RESPONSE, 3, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)).encode()
    question = Verification(AuthMethod.EAP_MD5, "anonymous", EapProof(response))
    verdict = (await backend(client).verify(question, CONTEXT)).verdict
    assert verdict.success and verdict.user == "alice"


async def test_requests_answers_and_timeouts_are_counted_per_server(
    serve: Callable[[Handler], Awaitable[tuple[FakeRadius, RadiusClient]]],
) -> None:
    async def answer(request: radius_packet.AuthPacket) -> list[bytes]:
        return [] if request["User-Name"] == ["lost"] else [reply(request)]

    fake, client = await serve(answer)
    (before,) = client.stats()
    assert (before.requests, before.timeouts, sum(before.durations)) == ({}, 0, 0)
    assert (await backend(client).verify(pap("alice"), CONTEXT)).verdict.success
    assert not (await backend(client).verify(pap("lost"), CONTEXT)).verdict.success
    (after,) = client.stats()
    assert after.server == f"127.0.0.1:{fake.port}"
    assert after.requests == {"access": 2}
    assert after.timeouts == 1
    assert sum(after.durations) == 1  # only answers have a duration
    assert after.duration_sum >= 0
