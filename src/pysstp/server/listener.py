"""TLS listeners that say why a handshake failed, and with whom; behind a load balancer, the PROXY
protocol header before it.

``loop.create_server(ssl=...)`` drops a failed TLS handshake without a word: no peer, no reason, not
even in its debug log unless the whole loop runs in debug mode. Plain HTTP on port 443, a client that
offers only TLS 1.0, one that does not trust the server's certificate, a refused client certificate and
a port scanner all looked the same: nothing. Here each listening socket has its own accept loop and each
connection its own ``loop.connect_accepted_socket``, which raises what the handshake ran into; the
rest (the TLS transport, the protocol's ``connection_made`` after the handshake) is asyncio's as before.

With the PROXY protocol on, the header is taken off the raw socket first, byte-exact (peeked, then read
as far as it goes), so that TLS, or plain SSTP with TLS offloaded, starts on the client's first byte; the
client's address it carries becomes the connection's peer (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine, Sequence
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from pysstp.connection import LinkConnection
from pysstp.server.proxy import (
    V2_FIXED_LENGTH,
    V2_MAX_ADDRESS_LENGTH,
    Address,
    Command,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderReader,
)
from pysstp.server.tls import accept_tls

log = logging.getLogger("pysstp.server")

BACKLOG = 100
"""Connections the kernel queues before they are accepted (asyncio's ``create_server`` default)."""
ACCEPT_RETRY_DELAY = 1.0
"""Seconds the accept loop rests after an error of its own (out of file descriptors, say), as asyncio's
does."""

# Linux hands a new connection's pending network error to accept() (accept(2), "Error handling"): that
# connection is gone, the listening socket is fine, and the next accept may proceed at once.
_CONNECTION_ERRORS = frozenset(
    (
        errno.ECONNABORTED,
        errno.ENETDOWN,
        errno.EPROTO,
        errno.ENOPROTOOPT,
        errno.EHOSTDOWN,
        errno.ENONET,
        errno.EHOSTUNREACH,
        errno.EOPNOTSUPP,
        errno.ENETUNREACH,
    )
)

# OpenSSL's reason codes that mean something to an admin, in the admin's words.
_REASONS = {
    "HTTP_REQUEST": "plain HTTP sent to the TLS port",
    "WRONG_VERSION_NUMBER": "not TLS, or an SSL version this server does not speak",
    "UNSUPPORTED_PROTOCOL": "the client offers only TLS versions below tls.min_version",
    "NO_SHARED_CIPHER": 'no cipher in common (an old client may need tls.profile = "legacy")',
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust this server's certificate (unknown CA)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client refused this server's certificate (bad certificate)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the client refused this server's certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the client says this server's certificate has expired",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "no TLS client certificate",
}


def describe_handshake_failure(exc: OSError) -> tuple[int, str]:
    """The log level and the words for a failed TLS handshake.

    A refused client certificate is a warning (somebody's login is failing); the rest is the ordinary
    noise of a port open to the internet and is logged at info.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return logging.WARNING, f"refused its TLS client certificate: {exc.verify_message}"
    if isinstance(exc, ssl.SSLEOFError | ConnectionResetError | BrokenPipeError):
        return logging.INFO, "closed the connection during the TLS handshake"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        return logging.INFO, _REASONS.get(reason, reason.replace("_", " ").lower() or str(exc))
    if isinstance(exc, ConnectionAbortedError):
        # asyncio's handshake timeout: "SSL handshake is taking longer than N seconds: aborting ..."
        return logging.INFO, "no complete TLS handshake in time"
    return logging.INFO, exc.strerror or str(exc) or type(exc).__name__


PROXY_PEEK_SIZE = V2_FIXED_LENGTH + V2_MAX_ADDRESS_LENGTH
"""Bytes looked at per read of a PROXY header: the longest header this server accepts."""


class ProxyRefused(Exception):
    """A connection refused before TLS for its PROXY header (or its source); the words say why."""

    def __init__(self, reason: str, level: int = logging.WARNING) -> None:
        super().__init__(reason)
        self.level = level


def peer_text(address: object) -> str:
    """``host:port`` (``[host]:port`` for IPv6) of a socket address as ``accept`` or ``getsockname``
    returns it."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def listening_sockets(infos: list[tuple[Any, ...]]) -> list[socket.socket]:
    """A listening socket for each address of ``getaddrinfo`` results (IPv6 sockets only for IPv6);
    raises :class:`OSError`, closing those already made."""
    sockets: list[socket.socket] = []
    try:
        for family, _type, _proto, _name, address in dict.fromkeys(infos):
            sockets.append(socket.create_server(address, family=family, backlog=BACKLOG))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class TlsListener:
    """Listening sockets, one accept loop each, one TLS handshake task per accepted connection.

    ``ssl_context`` is ``None`` with TLS offloaded: connections then carry plain HTTP and SSTP.
    ``proxy_sources`` set turns the PROXY protocol on: only those may connect, and each connection must
    start with a header.
    """

    def __init__(
        self,
        protocol_factory: Callable[[], LinkConnection],
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
        proxy_sources: Sequence[IPv4Network | IPv6Network] | None = None,
    ) -> None:
        self.protocol_factory = protocol_factory
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.proxy_sources = proxy_sources
        self.handshake_failures = 0
        self.proxy_header_failures = 0
        """Connections refused for their PROXY header or its source (FailureReason.PROXY_HEADER)."""
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self, host: str, port: int) -> list[tuple[str, int]]:
        """Listen on every address ``host`` resolves to (IPv6 sockets only for IPv6); return them.

        Raises :class:`OSError` (:class:`socket.gaierror` for a name that does not resolve).
        """
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        return [self.adopt(sock) for sock in listening_sockets(infos)]

    def adopt(self, sock: socket.socket) -> tuple[str, int]:
        """Accept calls on a listening socket made elsewhere (the supervisor's, which every worker
        shares); it is closed with the listener. Returns the address it listens on."""
        sock.setblocking(False)
        self._sockets.append(sock)
        self._start(self._accept_loop(sock))
        name = sock.getsockname()
        return name[0], name[1]

    async def close(self) -> None:
        """Stop accepting and abandon handshakes in progress; established calls are left alone."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Only now: a cancelled accept has taken its socket out of the selector, and closing a socket
        # still registered there would leave a stale entry for the next socket with its number.
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    def _start(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _CONNECTION_ERRORS:
                    continue
                # Ending the loop would stop the server accepting for good, without a word.
                log.warning(
                    "cannot accept connections (%s); retrying in %.0f s",
                    exc.strerror or exc,
                    ACCEPT_RETRY_DELAY,
                )
                await asyncio.sleep(ACCEPT_RETRY_DELAY)
                continue
            self._start(self._handshake(conn, address))

    async def _handshake(self, conn: socket.socket, address: object) -> None:
        who = peer_text(address)
        factory = self.protocol_factory
        if self.proxy_sources is not None:
            try:
                header = await self._proxy_header(conn, address)
            except ProxyRefused as refusal:
                conn.close()
                self.proxy_header_failures += 1
                log.log(refusal.level, "%s: refused: %s", who, refusal)
                return
            except asyncio.CancelledError:
                conn.close()
                raise
            if header is None:
                conn.close()
                return
            if header.source is not None:
                forwarded = header.source
                who = f"{peer_text(forwarded)} (via {who})"
                factory = self._forwarding(forwarded)
        try:
            if self.ssl_context is None:
                await asyncio.get_running_loop().connect_accepted_socket(factory, conn)
            else:
                await accept_tls(conn, self.ssl_context, factory, self.handshake_timeout)
        except OSError as exc:
            # The transport is closed, and with it the socket.
            self.handshake_failures += 1
            level, why = describe_handshake_failure(exc)
            log.log(level, "%s: TLS handshake failed: %s", who, why)

    def _forwarding(self, forwarded: Address) -> Callable[[], LinkConnection]:
        """The protocol factory for a connection whose client a load balancer named."""

        def factory() -> LinkConnection:
            protocol = self.protocol_factory()
            protocol.forwarded_peer = forwarded
            return protocol

        return factory

    async def _proxy_header(self, conn: socket.socket, address: object) -> ProxyHeader | None:
        """The PROXY header that starts an accepted connection, taken off the socket; ``None`` for a
        connection that ended without a byte, or that a health check opened (LOCAL) and closed.

        Raises :class:`ProxyRefused` for a source not allowed to send headers and for a bad, late or
        partial header. Both "quiet" cases are what a load balancer's health checks do, every few
        seconds: they are logged at debug, and not counted.
        """
        assert self.proxy_sources is not None
        if not _is_among(address, self.proxy_sources):
            raise ProxyRefused("not in proxy_sources, so it may not send PROXY headers")
        reader = ProxyHeaderReader()
        taken = 0
        try:
            async with asyncio.timeout(self.handshake_timeout):
                while reader.header is None:
                    data = await _peek(conn, PROXY_PEEK_SIZE)
                    if not data:
                        break
                    # Exactly the header's bytes: what follows is the client's, for TLS or SSTP.
                    taken += len(conn.recv(reader.feed(data)))
        except TimeoutError:
            raise ProxyRefused("no complete PROXY header in time", logging.INFO) from None
        except ProxyHeaderError as exc:
            raise ProxyRefused(f"bad PROXY header: {exc}") from None
        except OSError as exc:
            if taken:
                raise ProxyRefused(f"connection lost in its PROXY header ({exc})", logging.INFO) from None
        header = reader.header
        if header is None:
            if taken:
                raise ProxyRefused("closed the connection in its PROXY header", logging.INFO)
            log.debug("%s: closed before a PROXY header (a health check)", peer_text(address))
        elif header.command is Command.LOCAL and not await self._followed(conn):
            log.debug("%s: PROXY LOCAL header, then closed (a health check)", peer_text(address))
            return None
        return header

    async def _followed(self, conn: socket.socket) -> bool:
        """Whether bytes follow a LOCAL header: a health check closes (or resets) instead."""
        try:
            async with asyncio.timeout(self.handshake_timeout):
                return bool(await _peek(conn, 1))
        except (TimeoutError, OSError):
            return False


def _is_among(address: object, networks: Sequence[IPv4Network | IPv6Network]) -> bool:
    """Whether a socket address lies in one of ``networks`` (an IPv4-mapped IPv6 address as IPv4)."""
    if not isinstance(address, tuple):
        return False
    host = ipaddress.ip_address(str(address[0]).partition("%")[0])
    if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
        host = host.ipv4_mapped
    return any(host in network for network in networks)


async def _peek(sock: socket.socket, size: int) -> bytes:
    """Up to ``size`` bytes from a non-blocking socket, left in it (MSG_PEEK); waits until there are
    some, or the peer closed (``b""``)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return sock.recv(size, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            pass
        readable = loop.create_future()
        loop.add_reader(sock.fileno(), _wake, readable)
        try:
            await readable
        finally:
            loop.remove_reader(sock.fileno())


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
