"""The supervisor-worker line: requests and answers both ways, notices, and the other side going away."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pysstp.server.workerchannel import Channel, ChannelClosed, Handler, Message


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
