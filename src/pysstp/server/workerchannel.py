"""The line between the supervisor and one worker process: JSON objects over a socketpair, each after
its length (4 bytes, network order), so that the reader knows before it buffers anything whether a
message is within :data:`MESSAGE_LIMIT`.

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
import struct
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("pysstp.server")

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[Message | None]]
"""Handles a request or a notice; a request's answer is what it returns (``{}`` when ``None``)."""

MESSAGE_LIMIT = 1 << 30
"""Longest message (1 GiB): a status answer carries every session of the worker, about 600 bytes each,
and a worker holds at most as many sessions as it may open files (the kernel's ``nr_open``, 1,048,576
by default). A length beyond it closes the line before anything of the message is buffered, so a
worker gone wrong cannot make the supervisor hold more than this."""
_LENGTH = struct.Struct("!I")
_READ_AHEAD = 1 << 20
"""Bytes the reader takes in before it waits for a message to be read (asyncio's ``limit``)."""


def pack(value: object) -> str:
    """A Python value (settings, a stats snapshot) as text for a message to the other process, which
    runs the same program (so a pickle is safe and keeps every type)."""
    return base64.b64encode(pickle.dumps(value)).decode()


def unpack(text: str) -> Any:
    """What :func:`pack` made, back."""
    return pickle.loads(base64.b64decode(text))


class ChannelClosed(ConnectionError):
    """The other end of the channel has gone away (its process ended)."""


class MessageTooLarge(ValueError):
    """A message to send is longer than :data:`MESSAGE_LIMIT`."""


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
        self._reader, self._writer = await asyncio.open_unix_connection(sock=self._sock, limit=_READ_AHEAD)

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
        """Send a notice, which gets no answer (dropped when the line is gone; :class:`MessageTooLarge`
        beyond :data:`MESSAGE_LIMIT`)."""
        with contextlib.suppress(ChannelClosed):
            self._send(message)

    async def serve(self) -> None:
        """Read until the other side closes the line, dispatching answers, requests and notices."""
        try:
            while (data := await self._read()) is not None:
                try:
                    message = json.loads(data)
                except ValueError:
                    message = None
                if not isinstance(message, dict):
                    log.error("worker channel: not a JSON object: %.80r", data)
                    continue
                if "re" in message:
                    waiting = self._waiting.get(message.pop("re")) if isinstance(message["re"], int) else None
                    if waiting is not None and not waiting.done():
                        waiting.set_result(message)
                else:
                    task = asyncio.get_running_loop().create_task(self._dispatch(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except ConnectionError:
            pass
        finally:
            self.close()

    async def _read(self) -> bytes | None:
        """The next message's bytes; ``None`` at the end of the line, or at a length beyond the limit."""
        assert self._reader is not None
        try:
            (length,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
            if length > MESSAGE_LIMIT:
                log.error(
                    "worker channel: a message of %d bytes, beyond the limit of %d; closing the line",
                    length,
                    MESSAGE_LIMIT,
                )
                return None
            return await self._reader.readexactly(length)
        except asyncio.IncompleteReadError:
            return None

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
            try:
                self.tell({"re": number, **(answer or {})})
            except MessageTooLarge as exc:
                log.error("worker channel: the answer to %s: %s", message.get("op"), exc)
                self.tell({"re": number, "error": str(exc)})

    def _send(self, message: Message) -> None:
        if self.closed or self._writer is None or self._writer.is_closing():
            raise ChannelClosed("the other process has gone away")
        data = json.dumps(message, separators=(",", ":")).encode()
        if len(data) > MESSAGE_LIMIT:
            raise MessageTooLarge(f"a message of {len(data)} bytes is beyond the limit of {MESSAGE_LIMIT}")
        self._writer.write(_LENGTH.pack(len(data)))
        self._writer.write(data)
