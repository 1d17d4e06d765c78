"""The supervisor-worker line: requests and answers both ways, notices, the other side going away, and
messages larger than a line reader would take (a status of very many sessions) within a bound."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest

from pysstp.server import workerchannel
from pysstp.server.workerchannel import Channel, ChannelClosed, Handler, Message


def frame(data: bytes) -> bytes:
    """One message as it goes over the line: its length, then its bytes."""
    return struct.pack("!I", len(data)) + data


async def pair() -> tuple[Channel, Channel, list[Message], list[Message]]:
    seen_left: list[Message] = []
    seen_right: list[Message] = []

    def handler(seen: list[Message]) -> Handler:
        async def handle(message: Message) -> Message | None:
            seen.append(message)
            if message.get("op") == "double":
                return {"value": message["value"] * 2}
            if message.get("op") == "slow":
                await asyncio.sleep(0.05)
                return {"value": "slow"}
            if message.get("op") == "broken":
                raise RuntimeError("bug")
            return None

        return handle

    a, b = socket.socketpair()
    left, right = Channel(a, handler(seen_left)), Channel(b, handler(seen_right))
    await left.open()
    await right.open()
    return left, right, seen_left, seen_right


async def test_both_sides_ask_and_tell() -> None:
    left, right, seen_left, seen_right = await pair()
    tasks = [asyncio.create_task(left.serve()), asyncio.create_task(right.serve())]
    assert await left.ask({"op": "double", "value": 21}) == {"value": 42}
    assert await right.ask({"op": "double", "value": 2}) == {"value": 4}
    # A slow answer does not hold up a quicker one asked after it.
    slow = asyncio.create_task(left.ask({"op": "slow"}))
    assert await left.ask({"op": "double", "value": 1}) == {"value": 2}
    assert await slow == {"value": "slow"}
    right.tell({"op": "note", "text": "hi"})
    assert await left.ask({"op": "nothing"}) == {}
    assert {"op": "note", "text": "hi"} in seen_left
    assert await left.ask({"op": "broken"}) == {"error": "internal error"}
    left.close()
    await asyncio.gather(*tasks)
    assert seen_right[0] == {"op": "double", "value": 21}


async def test_a_closed_line_fails_the_questions_waiting() -> None:
    left, right, _, _ = await pair()
    serving = asyncio.create_task(left.serve())
    waiting = asyncio.create_task(left.ask({"op": "double", "value": 1}))
    await asyncio.sleep(0)
    right.close()  # the worker died before answering
    with pytest.raises(ChannelClosed):
        await waiting
    await serving
    with pytest.raises(ChannelClosed):
        await left.ask({"op": "double", "value": 1})
    left.tell({"op": "dropped"})  # no error: notices to a gone process are dropped


async def test_a_line_that_is_not_a_message_is_skipped() -> None:
    a, b = socket.socketpair()
    channel = Channel(a, lambda message: asyncio.sleep(0, {"echo": message}))
    await channel.open()
    serving = asyncio.create_task(channel.serve())
    reader, writer = await asyncio.open_unix_connection(sock=b)
    for data in (b"[1, 2]", b'"re"', b'{"re": [1]}', b"not json", b'{"id": 1, "op": "x"}'):
        writer.write(frame(data))
    # The line is still open: the request after the bad messages is answered.
    (length,) = struct.unpack("!I", await asyncio.wait_for(reader.readexactly(4), 60))
    assert json.loads(await reader.readexactly(length)) == {"re": 1, "echo": {"op": "x"}}
    writer.close()
    await asyncio.wait_for(serving, 60)


async def test_an_answer_longer_than_64_mib_arrives_whole() -> None:
    """A status of more than 110,000 sessions is one answer beyond what a 64 MiB line limit allowed."""
    text = "s" * (65 * 1024 * 1024)
    a, b = socket.socketpair()
    asking, answering = (
        Channel(a, lambda _m: asyncio.sleep(0, None)),
        Channel(b, lambda _m: asyncio.sleep(0, {"sessions": text})),
    )
    await asking.open()
    await answering.open()
    tasks = [asyncio.create_task(asking.serve()), asyncio.create_task(answering.serve())]
    answer = await asyncio.wait_for(asking.ask({"op": "control"}), 120)
    assert len(answer["sessions"]) == len(text)
    asking.close()
    await asyncio.gather(*tasks)


async def test_a_length_beyond_the_limit_closes_the_line_before_anything_is_buffered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(workerchannel, "MESSAGE_LIMIT", 1000)
    a, b = socket.socketpair()
    channel = Channel(a, lambda message: asyncio.sleep(0, {"echo": message}))
    await channel.open()
    serving = asyncio.create_task(channel.serve())
    waiting = asyncio.create_task(channel.ask({"op": "status"}))
    _reader, writer = await asyncio.open_unix_connection(sock=b)
    # A worker gone wrong announces 1001 bytes and sends none of them: the line closes at once, the
    # question waiting on it fails, and nothing waits for the rest.
    writer.write(struct.pack("!I", 1001))
    await asyncio.wait_for(serving, 60)
    with pytest.raises(ChannelClosed):
        await waiting
    assert "a message of 1001 bytes, beyond the limit of 1000; closing the line" in caplog.text
    writer.close()


async def test_an_answer_beyond_the_limit_is_an_error_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(workerchannel, "MESSAGE_LIMIT", 1000)
    left, right, _, _ = await pair()
    tasks = [asyncio.create_task(left.serve()), asyncio.create_task(right.serve())]
    answer = await asyncio.wait_for(left.ask({"op": "double", "value": "x" * 600}), 60)
    assert answer["error"].endswith("bytes is beyond the limit of 1000"), answer
    assert "the answer to double: a message of" in caplog.text
    # The line goes on.
    assert await left.ask({"op": "double", "value": 2}) == {"value": 4}
    left.close()
    await asyncio.gather(*tasks)
