"""The asyncio shell around one link: a TLS transport in, a link in the middle, IP packets out.

Shared by the server (one :class:`LinkConnection` per accepted call) and the client (one per dial).
It follows the data-path rules of docs/architecture.md ("The asyncio shell"): once the call is up, SSTP
packets are cut here and IP payloads go straight to ``deliver`` without touching the protocol machinery;
outgoing IP packets are framed here, and everything produced by one input or one TUN drain leaves in a
single ``transport.write``. When TLS backs up, IP packets for this call are dropped, like a router would.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, cast

from pysstp.errors import DelineationError
from pysstp.link import CallEvent, Link, LinkDown, frame_ip_packets

log = logging.getLogger("pysstp.connection")

Deliver = Callable[["LinkConnection", list[memoryview]], None]
"""Called with the IP packets received from the peer, in order: all of one TLS read at once, as views into
the received bytes (one call per read, so the receiver's loop over them is the only per-packet work)."""

WRITE_BUFFER_LIMIT = 256 * 1024
"""Bytes queued in the TLS transport above which IP packets for this call are dropped.

SSTP is TCP inside TCP: a deep queue here becomes seconds of delay for every inner TCP flow (the "TCP
meltdown"); dropping lets the inner TCP see loss and slow down, as it would at a router."""


TLS_READ_SIZE = 64 * 1024
"""Bytes asked of the socket and of OpenSSL per read on an established TLS transport.

asyncio asks for 256 KiB each time. OpenSSL hands over at most one TLS record (16 KiB) per read, yet
every read first allocates a bytes object of the size asked for; the server keeps allocations of
128 KiB and more in mappings of their own (see ``pysstp server``), so each 256 KiB read was an
``mmap``, page faults and a ``munmap``, about a quarter of the receiving server's CPU. 64 KiB stays on
the heap and still takes several records per socket read."""

_receive_buffers = threading.local()


def receive_buffer() -> memoryview:
    """The thread's receive buffer, :data:`TLS_READ_SIZE` bytes, shared by every TLS connection of the
    thread's event loop: each fills and empties it within one callback (see :func:`adapt_tls_transport`
    and the server's own TLS layer, ``server/tls.py``)."""
    shared: memoryview | None = getattr(_receive_buffers, "view", None)
    if shared is None:
        shared = _receive_buffers.view = memoryview(bytearray(TLS_READ_SIZE))
    return shared


def adapt_tls_transport(transport: asyncio.BaseTransport) -> None:
    """Fit an established asyncio TLS transport for a long call: smaller reads, a shared receive buffer.

    Reads are :data:`TLS_READ_SIZE`. And asyncio's TLS protocol allocates (and zero-fills) a 256 KiB
    receive buffer per connection; with a thousand idle calls that is most of the server's memory. The
    buffer only lives from the ``recv_into`` that fills it to the ``buffer_updated`` that copies it into
    OpenSSL, both in one callback of the thread's event loop, so one buffer per thread serves every
    connection. A plain TCP transport (TLS offloaded, docs/scaling.md) reads 256 KiB at a time as well,
    each into a new bytes object: its reads become :data:`TLS_READ_SIZE` too. Other transports (uvloop's,
    and the server's own TLS layer, ``server/tls.py``, which reads through :func:`receive_buffer` on
    either loop already) are left alone.
    """
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    own = getattr(ssl_protocol, "_ssl_buffer", None)
    if not isinstance(own, bytearray):
        if ssl_protocol is None and isinstance(getattr(transport, "max_size", None), int):
            transport.max_size = TLS_READ_SIZE  # type: ignore[attr-defined]
        return
    shared = receive_buffer()
    ssl_protocol.max_size = TLS_READ_SIZE  # type: ignore[union-attr]
    ssl_protocol._ssl_buffer = shared.obj  # type: ignore[union-attr]
    ssl_protocol._ssl_buffer_view = shared  # type: ignore[union-attr]


class LinkConnection(asyncio.Protocol):
    """One SSTP call on one TLS connection."""

    __slots__ = (
        "_fast",
        "_loop",
        "_paused",
        "_timer",
        "_timer_at",
        "bytes_in",
        "bytes_out",
        "closed",
        "deliver",
        "down",
        "drops",
        "forwarded_peer",
        "last_ip",
        "link",
        "on_event",
        "packets_in",
        "packets_out",
        "peer",
        "transport",
    )

    def __init__(
        self,
        link: Link,
        *,
        deliver: Deliver,
        on_event: Callable[[LinkConnection, CallEvent], None],
        peer_label: str = "peer",
    ) -> None:
        self.link = link
        self.deliver = deliver
        self.on_event = on_event
        self.peer = peer_label
        self.transport: asyncio.Transport | None = None
        self.forwarded_peer: tuple[str, int] | None = None
        """The client's address as a load balancer in front reported it (PROXY protocol, set by the
        server's listener before the connection is made); it replaces the TCP peer's everywhere."""
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._fast = False
        """The call is up: SSTP packets are cut here (:meth:`Link.split_packets`), IP goes to ``deliver``."""
        self._paused = False
        self.closed = False
        self.down: LinkDown | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.packets_in = 0
        self.packets_out = 0
        self.drops = 0
        self.last_ip = self._loop.time()
        """When an IP packet last passed either way (for the server's idle timeout)."""

    # -- asyncio callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """TLS is up: let the link start."""
        # A cast, not an isinstance check: uvloop's TLS transport has a Transport's methods without
        # deriving from asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        adapt_tls_transport(transport)
        # Pause where dropping starts (asyncio's TLS default is 512 KiB): the client then stops reading
        # its TUN instead of reading packets only to drop them, which under a flood took the CPU the
        # packets that do get through need.
        transport.set_write_buffer_limits(high=WRITE_BUFFER_LIMIT)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Inner protocols time their own retransmissions; Nagle on the outer TCP only adds delay.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peername = self.peername(transport)
        if peername:
            self.peer = f"{peername[0]}:{peername[1]}"
        self.started(self._loop.time())
        self.flush()

    def peername(self, transport: asyncio.BaseTransport) -> Any:
        """The peer's address: the client's as a trusted load balancer forwarded it, else the TCP peer's."""
        return self.forwarded_peer or transport.get_extra_info("peername")

    def started(self, now: float) -> None:
        """Start the link (server: its timers; client: the HTTP request); the client checks TLS first."""
        self.link.start(now)

    def data_received(self, data: bytes) -> None:
        """Bytes from TLS: the fast path once the call is up, the link otherwise."""
        now = self._loop.time()
        self.bytes_in += len(data)
        if not self._fast:
            self.link.receive_data(data, now)
            self._fast = self.link.is_up
        elif not self._receive_fast(data, now):
            # Only IP went by: the link has nothing to say, and a timer that now fires early finds nothing
            # due and rearms; flushing on every TLS read cost about 5 % of the receiving process.
            return
        self.flush()

    def _receive_fast(self, data: bytes, now: float) -> bool:
        """Deliver the IP packets in ``data``, give the rest to the link; whether the link got anything."""
        try:
            packets, others = self.link.split_packets(data)
        except DelineationError as exc:
            log.warning("%s: SSTP stream cannot be delineated (%s); closing", self.peer, exc)
            self._abort_transport()
            return True
        if packets:
            self.packets_in += len(packets)
            self.link.note_activity(now)
            self.last_ip = now
            if not others:
                self.deliver(self, packets)
                return False
        elif not others:
            return False
        # Control or other PPP in this read: hand everything on in the order of the stream.
        link = self.link
        delivered = 0
        for before, packet in others:
            if before > delivered:
                self.deliver(self, packets[delivered:before])
                delivered = before
            link.receive_packet(packet, now)
        if delivered < len(packets):
            self.deliver(self, packets[delivered:])
        return True

    def pause_writing(self) -> None:
        """TLS is backed up: IP packets for this call are dropped until it drains."""
        self._paused = True

    def resume_writing(self) -> None:
        """TLS drained."""
        self._paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        """TCP/TLS is gone, by our close or the peer's."""
        self.closed = True
        if self.down is None:
            self.link.transport_lost(self._loop.time(), self.describe_loss(exc))
            self.flush()
        self._cancel_timer()

    def describe_loss(self, exc: Exception | None) -> str:
        """Why TCP/TLS ended, for the LinkDown reason."""
        return f"connection lost ({exc})" if exc else "connection closed by the peer"

    # -- output ------------------------------------------------------------------------------------

    def send_ip_batch(self, packets: list[bytes] | list[memoryview]) -> None:
        """Frame IP packets from one TUN drain and write them in one go (or drop them, see module doc)."""
        transport = self.transport
        if transport is None or self.closed or not self.link.is_up:
            self.drops += len(packets)
            return
        if self._paused or transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.drops += len(packets)
            return
        self.last_ip = self._loop.time()
        data = frame_ip_packets(packets)
        self.packets_out += len(packets)
        self.bytes_out += len(data)
        transport.write(data)

    def flush(self) -> None:
        """Write what the link produced, hand over its events and IP packets, rearm its timer."""
        link = self.link
        transport = self.transport
        events = link.take_events()
        out = link.data_to_send()
        if out and transport is not None and not self.closed:
            self.bytes_out += len(out)
            transport.write(out)
        packets = link.take_ip_packets()
        if packets:
            self.packets_in += len(packets)
            self.deliver(self, [memoryview(packet) for packet in packets])
        for event in events:
            if isinstance(event, LinkDown):
                self.down = event
            self.on_event(self, event)
        if link.is_closed:
            self._cancel_timer()
            if transport is not None and not self.closed:
                self.closed = True
                transport.close()
            return
        self._schedule(link.next_deadline())

    def close(self, reason: str = "closed by local request") -> None:
        """End the call in order (LCP Terminate, CALL_DISCONNECT); the link closes TLS when done."""
        self.link.close(self._loop.time(), reason)
        self.flush()

    # -- timers ------------------------------------------------------------------------------------

    def _schedule(self, deadline: float | None) -> None:
        if deadline is not None and self._timer_at is not None and self._timer_at <= deadline:
            # Every received packet restarts the hello timer, so the deadline moves on with each read.
            # The armed timer stays instead of a cancel and a new heap entry per read: firing early is
            # harmless (nothing is due yet) and re-arms it for the real deadline.
            return
        self._cancel_timer()
        if deadline is not None:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.link.handle_timer(self._loop.time())
        self.flush()

    def _abort_transport(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
