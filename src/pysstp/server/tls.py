"""The server's TLS layer: one slotted object over ``ssl.MemoryBIO`` and ``SSLObject`` per call.

asyncio's TLS (``asyncio.sslproto``) is an ``SSLProtocol`` with some forty attributes in an instance
dict, an ``_SSLProtocolTransport`` with a dict of its own, an ``_extra`` dict, a write-backlog deque and
the handles and bound methods around them: about 3 KiB per idle call, over a quarter of what Python held
for a whole session (docs/scaling.md, "Numbers": 27.7 KiB of RSS per idle session with it, 24.6
without). An idle gateway holds tens of thousands of calls, so the server runs TLS itself:
:class:`ServerTlsTransport` is the socket transport's protocol and the call's
(:class:`~pysstp.connection.LinkConnection`'s) transport, with its state in a few slots, the handshake's
waiter and factory dropped once it is done, and what ``get_extra_info`` reports asked of the
``SSLObject`` when asked instead of kept. OpenSSL's own state per connection stays as it was.

What it keeps of asyncio's behaviour: the call's protocol is made only after the handshake; a failed,
lost or late handshake raises from :func:`accept_tls` (for the listener's log line); plaintext reaches
the protocol once per socket read; each ``write`` is one socket write; the socket transport's flow
control (limits, ``pause_writing``/``resume_writing``) is the call's; ``close`` sends close_notify and
closes the socket once the peer answers with its own (or after :data:`SHUTDOWN_TIMEOUT`), as asyncio
does, so that the last bytes are not lost to a reset from unread data; ``connection_lost`` comes once.
The client keeps asyncio's TLS (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from typing import Any, cast

from pysstp.connection import TLS_READ_SIZE, receive_buffer

BIO_SLICE = 16 * 1024
"""Bytes moved into OpenSSL's memory buffers at a time, one TLS record's worth (RFC 8446 5.1).

A memory BIO never gives memory back: it keeps room for the most it ever held, and a third more. Written
whole, one 64 KiB socket read or one 96 KiB TUN batch would leave every call that ever moved data
holding about 85 and 128 KiB for the rest of its life, idle or not, several times what an idle call
costs (docs/scaling.md). In slices, the outgoing BIO holds at most one record (about 22 KiB with the
third) and the incoming one a partial record and a slice (about 44 KiB)."""

SHUTDOWN_TIMEOUT = 30.0
"""Seconds a closing connection waits for the peer's close_notify before the socket is dropped
(asyncio's ``SSL_SHUTDOWN_TIMEOUT``)."""

_HANDSHAKE = 0
_OPEN = 1
_CLOSING = 2
"""close_notify sent (or received): the call's protocol writes no more; waiting for the socket to close."""
_CLOSED = 3

_plaintext_buffers = threading.local()


def _plaintext_buffer() -> memoryview:
    """The thread's buffer that OpenSSL decrypts into, :data:`TLS_READ_SIZE` bytes: the receive buffer
    still holds ciphertext not yet handed to OpenSSL while the first slices are decrypted."""
    shared: memoryview | None = getattr(_plaintext_buffers, "view", None)
    if shared is None:
        shared = _plaintext_buffers.view = memoryview(bytearray(TLS_READ_SIZE))
    return shared


class ServerTlsTransport(asyncio.BufferedProtocol, asyncio.Transport):
    """TLS on an accepted socket: the socket transport's protocol below, a transport for the call above.

    Reads go through buffers of the thread, shared by every connection: the socket's bytes into the
    receive buffer (:func:`~pysstp.connection.receive_buffer`), on into OpenSSL in slices of
    :data:`BIO_SLICE`, its plaintext into a second buffer and out as one ``bytes`` per socket read. No
    buffer is kept per connection: asyncio's TLS kept 256 KiB, uvloop's keeps it still.
    """

    __slots__ = (
        "_app",
        "_backlog",
        "_factory",
        "_incoming",
        "_outgoing",
        "_reading_paused",
        "_sslobj",
        "_state",
        "_transport",
        "_waiter",
    )

    def __init__(
        self,
        context: ssl.SSLContext,
        protocol_factory: Callable[[], asyncio.Protocol],
        waiter: asyncio.Future[None],
    ) -> None:
        self._extra = None  # asyncio.BaseTransport's slot; get_extra_info is answered below
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._factory: Callable[[], asyncio.Protocol] | None = protocol_factory
        self._waiter: asyncio.Future[None] | None = waiter
        self._app: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._state = _HANDSHAKE
        self._backlog: bytearray | None = None
        """Plaintext OpenSSL would not take yet: it wanted to read first (the rest of a post-handshake
        message the peer split across records). Written, in order, after the next read."""
        self._reading_paused = False

    # -- the socket transport's protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The socket is ours: wait for the ClientHello."""
        self._transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        """The thread's shared receive buffer (see the class)."""
        return receive_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        """Bytes from the socket: on with the handshake, the plaintext, or the closing."""
        received = receive_buffer()[:nbytes]
        state = self._state
        if state == _OPEN:
            self._read(received)
            return
        # A handshake's flights are a few KiB, and what comes after close_notify is thrown away.
        self._incoming.write(received)
        if state == _HANDSHAKE:
            self._handshake()
        elif state == _CLOSING:
            self._shutdown()

    def eof_received(self) -> bool:
        """The peer closed its end of TCP (without close_notify, or after it): the socket transport
        closes the connection."""
        if self._state == _HANDSHAKE:
            self._fail(ConnectionResetError("the peer closed the connection"))
        elif self._state == _OPEN and self._app is not None:
            self._state = _CLOSING
            self._app.eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is closed: the call's protocol hears it once (or the handshake fails)."""
        if self._waiter is not None:
            self._fail(exc or ConnectionResetError("the connection was lost"))
        self._state = _CLOSED
        self._backlog = None
        app = self._app
        self._app = None
        if app is not None:
            app.connection_lost(exc)

    def pause_writing(self) -> None:
        """The socket's buffer is over its high-water mark: tell the call."""
        if self._app is not None:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        """The socket's buffer drained: tell the call."""
        if self._app is not None:
            self._app.resume_writing()

    # -- the handshake -----------------------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self._sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:
            # OpenSSL has written its alert (protocol version, handshake failure...): let it reach the
            # client, which can then say why, rather than see a reset.
            self._flush()
            self._fail(exc)
            return
        self._flush()
        self._state = _OPEN
        factory = self._factory
        self._factory = None
        assert factory is not None
        self._app = factory()
        self._app.connection_made(self)
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._state == _OPEN:
            # The client's first records (the HTTP request) often come with its Finished.
            self._read(None)

    def _fail(self, exc: Exception) -> None:
        """The handshake failed: :func:`accept_tls` raises ``exc``; the socket closes."""
        waiter = self._waiter
        self._waiter = None
        self._factory = None
        self._state = _CLOSED
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self._transport is not None:
            self._transport.close()

    # -- reading -----------------------------------------------------------------------------------

    def _read(self, received: memoryview | None) -> None:
        """Hand ``received`` (or, with ``None``, what OpenSSL holds already) to OpenSSL in slices of
        :data:`BIO_SLICE`, and the plaintext to the call as one ``bytes``."""
        sslobj = self._sslobj
        incoming = self._incoming
        plain = _plaintext_buffer()
        size = len(plain)
        filled = 0
        end = len(received) if received is not None else 0
        start = 0
        while True:
            if start < end:
                assert received is not None
                incoming.write(received[start : start + BIO_SLICE])
                start += BIO_SLICE
            try:
                while not self._reading_paused:
                    # With a buffer, read() returns a count (typeshed says bytes).
                    count = cast(int, sslobj.read(size - filled, plain[filled:]))
                    if not count:
                        self._deliver(plain, filled)
                        self._close_notify_received()
                        return
                    filled += count
                    if filled == size:
                        self._deliver(plain, filled)
                        filled = 0
                        if self._state != _OPEN:
                            self._feed_rest(received, start, end)
                            return
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                self._deliver(plain, filled)
                self._lose(exc)
                return
            if start >= end:
                break
            if self._reading_paused:
                self._feed_rest(received, start, end)
                break
        self._deliver(plain, filled)
        if self._state != _OPEN:
            self._feed_rest(received, start, end)
            return
        if self._backlog is not None:
            self._write_backlog()
        # A KeyUpdate from the peer (TLS 1.3, RFC 8446 4.6.3) is answered during the read.
        self._flush()

    def _feed_rest(self, received: memoryview | None, start: int, end: int) -> None:
        """Reading stopped half-way (paused, or the call closed): keep the rest for later (or for the
        closing, which looks for the peer's close_notify in it)."""
        if received is not None and start < end:
            self._incoming.write(received[start:end])
        if self._state == _CLOSING:
            self._shutdown()

    def _deliver(self, buffer: memoryview, filled: int) -> None:
        if filled and self._app is not None and self._state == _OPEN:
            self._app.data_received(buffer[:filled].tobytes())

    def _close_notify_received(self) -> None:
        """The peer ended TLS: answer with ours (RFC 8446 6.1) and close, as asyncio does (what came
        after it in the same read is the peer's error, and dropped)."""
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        if self._app is not None:
            self._app.eof_received()
        self._shutdown()

    def _lose(self, exc: Exception) -> None:
        """A fatal TLS error (a bad record, an alert): drop the socket; the call hears ``exc``."""
        self._state = _CLOSED
        self._flush()  # OpenSSL's alert, if it wrote one
        app = self._app
        self._app = None
        if app is not None:
            asyncio.get_running_loop().call_soon(app.connection_lost, exc)
        if self._transport is not None:
            self._transport.abort()

    # -- writing -----------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` and write it to the socket, in one socket write (``writelines`` of its
        records when it is more than one :data:`BIO_SLICE`)."""
        if self._state != _OPEN or not data:
            return
        if self._backlog is not None:
            self._backlog += data
            return
        sslobj = self._sslobj
        if len(data) <= BIO_SLICE:
            try:
                sslobj.write(data)
            except ssl.SSLWantReadError:
                self._backlog = bytearray(data)
                return
            except ssl.SSLError as exc:
                self._lose(exc)
                return
            self._flush()
            return
        view = memoryview(data)
        outgoing = self._outgoing
        records: list[bytes] = []
        for start in range(0, len(view), BIO_SLICE):
            try:
                sslobj.write(view[start : start + BIO_SLICE])
            except ssl.SSLWantReadError:
                self._backlog = bytearray(view[start:])
                break
            except ssl.SSLError as exc:
                self._lose(exc)
                return
            records.append(outgoing.read())
        if records and self._transport is not None:
            self._transport.writelines(records)

    def _write_backlog(self) -> None:
        backlog = self._backlog
        assert backlog is not None
        self._backlog = None
        self.write(backlog)

    def _flush(self) -> None:
        """Write what OpenSSL produced to the socket."""
        if self._outgoing.pending and self._transport is not None:
            self._transport.write(self._outgoing.read())

    def can_write_eof(self) -> bool:
        """No: TLS has no half-close of its own here (as asyncio's TLS transport)."""
        return False

    def get_write_buffer_size(self) -> int:
        """Bytes not yet handed to the kernel: the socket transport's, and any backlog."""
        backlog = len(self._backlog) if self._backlog is not None else 0
        if self._transport is None:
            return backlog
        return self._transport.get_write_buffer_size() + backlog

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """The socket transport's limits: it pauses and resumes the call (through this layer)."""
        if self._transport is not None:
            self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The socket transport's ``(low, high)``."""
        assert self._transport is not None
        return self._transport.get_write_buffer_limits()

    # -- the call's transport ----------------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """TLS facts from the ``SSLObject``, asked now; the rest (socket, peername, sockname) from the
        socket transport."""
        sslobj = self._sslobj
        if name == "ssl_object":
            return sslobj
        if name == "sslcontext":
            return sslobj.context
        if name == "cipher":
            return sslobj.cipher()
        if name == "peercert":
            return sslobj.getpeercert()
        if name == "compression":
            return sslobj.compression()
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand the call to another protocol (the server's refusal answers with it)."""
        self._app = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The call's protocol."""
        return self._app  # type: ignore[return-value]

    def is_closing(self) -> bool:
        """Whether :meth:`close` or :meth:`abort` was called, or the connection ended."""
        return self._state != _OPEN

    def is_reading(self) -> bool:
        """Whether plaintext is handed to the call."""
        return self._state == _OPEN and not self._reading_paused

    def pause_reading(self) -> None:
        """Stop reading the socket; records already received wait in OpenSSL's buffer."""
        if self._state != _OPEN or self._reading_paused:
            return
        self._reading_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again, starting with the records that waited."""
        if not self._reading_paused:
            return
        self._reading_paused = False
        if self._state == _OPEN and self._transport is not None:
            self._transport.resume_reading()
            asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        if self._state == _OPEN and not self._reading_paused:
            self._read(None)

    def close(self) -> None:
        """Send close_notify; the socket closes once the peer answers, or after
        :data:`SHUTDOWN_TIMEOUT`."""
        if self._state == _HANDSHAKE:
            self.abort()
        elif self._state == _OPEN:
            self._state = _CLOSING
            self._backlog = None
            if self._transport is not None:
                asyncio.get_running_loop().call_later(SHUTDOWN_TIMEOUT, self._transport.abort)
            self._shutdown()

    def _shutdown(self) -> None:
        """Send close_notify (once) and see whether the peer's has come; then close the socket."""
        try:
            self._sslobj.unwrap()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError:
            # Application data after our close_notify, or a broken record: the call is over either
            # way, and has said all it had to say.
            pass
        self._flush()
        self._state = _CLOSED
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the socket now; whatever was not sent is lost."""
        if self._state == _HANDSHAKE:
            self._fail(ConnectionAbortedError("the TLS handshake was abandoned"))
        self._state = _CLOSED
        self._backlog = None
        if self._transport is not None:
            self._transport.abort()


async def accept_tls(
    sock: Any,
    context: ssl.SSLContext,
    protocol_factory: Callable[[], asyncio.Protocol],
    handshake_timeout: float,
) -> ServerTlsTransport:
    """TLS on an accepted socket, with :class:`ServerTlsTransport`; the protocol is made and connected
    once the handshake is done.

    Raises :class:`OSError` when the handshake fails (:class:`ssl.SSLError`), the peer closes or resets
    the connection during it (:class:`ConnectionResetError`) or it takes longer than
    ``handshake_timeout`` (:class:`ConnectionAbortedError`), as ``loop.connect_accepted_socket`` does;
    the socket is then closed.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    tls = ServerTlsTransport(context, protocol_factory, waiter)
    await loop.connect_accepted_socket(lambda: tls, sock)
    deadline = asyncio.timeout(handshake_timeout)
    try:
        async with deadline:
            await waiter
    except BaseException as exc:
        tls.abort()
        if isinstance(exc, TimeoutError) and deadline.expired():
            raise ConnectionAbortedError(
                f"TLS handshake is taking longer than {handshake_timeout} seconds"
            ) from None
        raise
    return tls
