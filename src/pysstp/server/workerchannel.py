"""The line between the supervisor and one worker process: JSON objects, one per line, over a socketpair.

Either side may ask (``{"id": 7, "op": "reserve", ...}``, answered by ``{"re": 7, ...}``) or tell
(``{"op": "login", ...}``, no answer). Each request is handled in its own task, so a slow answer (a
status of many sessions) holds up nothing else on the line. When the other side is gone, every question
still waiting fails with :class:`ChannelClosed` and :meth:`Channel.serve` returns.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import pickle
import socket
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("pysstp.server")

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[Message | None]]
"""Handles a request or a notice; a request's answer is what it returns (``{}`` when ``None``)."""

LINE_LIMIT = 64 * 1024 * 1024
"""Longest line: a status answer carries every session of the worker (about 600 bytes each)."""


def pack(value: object) -> str:
    """A Python value (settings, a stats snapshot) as text for a message to the other process, which
    runs the same program (so a pickle is safe and keeps every type)."""
    return base64.b64encode(pickle.dumps(value)).decode()


def unpack(text: str) -> Any:
    """What :func:`pack` made, back."""
    return pickle.loads(base64.b64decode(text))


class ChannelClosed(ConnectionError):
    """The other end of the channel has gone away (its process ended)."""


class Channel:
    """One end of a supervisor-worker line; :meth:`serve` must run for answers to arrive."""

    def __init__(self, sock: socket.socket, handle: Handler) -> None:
        self._sock = sock
        self._handle = handle
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    async def open(self) -> None:
        """Attach the socket to the running loop."""
        self._reader, self._writer = await asyncio.open_unix_connection(sock=self._sock, limit=LINE_LIMIT)

    async def ask(self, message: Message) -> Message:
        """Send a request and wait for its answer; raise :class:`ChannelClosed` when the line is gone."""
        number = next(self._ids)
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[number] = answer
        try:
            self._send({"id": number, **message})
            return await answer
        finally:
            self._waiting.pop(number, None)

    def tell(self, message: Message) -> None:
        """Send a notice, which gets no answer (dropped when the line is gone)."""
        with contextlib.suppress(ChannelClosed):
            self._send(message)

    async def serve(self) -> None:
        """Read until the other side closes the line, dispatching answers, requests and notices."""
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                try:
                    message = json.loads(line)
                except ValueError:
                    log.error("worker channel: not JSON: %.80r", line)
                    continue
                if "re" in message:
                    waiting = self._waiting.get(message.pop("re"))
                    if waiting is not None and not waiting.done():
                        waiting.set_result(message)
                else:
                    task = asyncio.get_running_loop().create_task(self._dispatch(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except (ConnectionError, ValueError):  # ValueError: a line beyond LINE_LIMIT
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Close the line; questions still waiting fail with :class:`ChannelClosed`."""
        self.closed = True
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(ChannelClosed("the other process has gone away"))
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()

    async def _dispatch(self, message: Message) -> None:
        number = message.pop("id", None)
        try:
            answer = await self._handle(message)
        except Exception:
            log.exception("worker channel: handling %s failed", message.get("op"))
            answer = {"error": "internal error"}
        if number is not None:
            self.tell({"re": number, **(answer or {})})

    def _send(self, message: Message) -> None:
        if self.closed or self._writer is None or self._writer.is_closing():
            raise ChannelClosed("the other process has gone away")
        self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
