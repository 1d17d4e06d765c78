"""Dialing: TCP (directly or through an HTTP proxy), TLS with the client's checks, then a
:class:`~pysstp.link.ClientLink` on top.

TCP and TLS are separate steps so each can be timed and reported, and so a proxy's CONNECT fits in
between. Every failure leaves as a :class:`ConnectError` that names the layer and the likely fix.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import socket
import ssl
from collections.abc import Callable

from pysstp.client.settings import ProxySettings, TlsSettings
from pysstp.client.tls import (
    CertificateRejected,
    check_certificate,
    client_certificate_refusal,
    inspect_context,
    refusal_message,
    silent_refusal,
)
from pysstp.connection import Deliver, LinkConnection
from pysstp.errors import PysstpError
from pysstp.link import CallEvent, ClientConfig, ClientLink

Progress = Callable[[str, str], None]
"""Called as each step of the dial completes: (layer, what happened), e.g. ("TCP", "connected to ...")."""

DIAL_TIMEOUT = 15.0
"""Seconds for TCP, the proxy's answer and the TLS handshake, each."""
MAX_PROXY_RESPONSE = 16 * 1024


class ConnectError(PysstpError):
    """The call could not be placed. ``retry`` is False when dialing again cannot help (a refused
    certificate), so ``--reconnect`` gives up instead of hammering the server. ``login_failed``: the
    server refused the login (the NetworkManager plugin reports that reason)."""

    def __init__(self, message: str, *, retry: bool = True, login_failed: bool = False) -> None:
        super().__init__(message)
        self.retry = retry
        self.login_failed = login_failed


class ClientConnection(LinkConnection):
    """The client's one call."""

    link: ClientLink

    def __init__(
        self,
        link: ClientLink,
        *,
        deliver: Deliver,
        on_event: Callable[[LinkConnection, CallEvent], None],
        tls: TlsSettings | None = None,
        tls_name: str = "",
        on_backpressure: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__(link, deliver=deliver, on_event=on_event)
        self.tls = tls
        self.tls_name = tls_name
        self.on_backpressure = on_backpressure
        self.certificate: bytes | None = None
        self.rejected: CertificateRejected | None = None

    def started(self, now: float) -> None:
        """Check the certificate before anything is sent; the crypto binding then hashes it."""
        assert self.transport is not None
        ssl_object = self.transport.get_extra_info("ssl_object")
        self.certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if self.tls is not None:
            try:
                check_certificate(self.tls, self.tls_name, self.certificate)
            except CertificateRejected as exc:
                self.rejected = exc
                self._abort_transport()
                return
        if self.certificate:
            self.link.set_server_certificate(self.certificate)
        super().started(now)

    def describe_loss(self, exc: Exception | None) -> str:
        """With TLS 1.3 the server judges our client certificate after our side of the handshake is done:
        its refusal arrives as the first thing read."""
        refusal = client_certificate_refusal(exc, self.tls)
        if refusal is None and not self.link.http_done:
            refusal = silent_refusal(self.tls)
        return f"TLS: the server {refusal}" if refusal else super().describe_loss(exc)

    def pause_writing(self) -> None:
        """TLS is backed up: the owner of the TUN stops reading it (docs/architecture.md, the data path)."""
        super().pause_writing()
        if self.on_backpressure is not None:
            self.on_backpressure(True)

    def resume_writing(self) -> None:
        """TLS drained: the TUN may be read again."""
        super().resume_writing()
        if self.on_backpressure is not None:
            self.on_backpressure(False)

    @property
    def tls_description(self) -> str:
        """E.g. 'TLSv1.3 TLS_AES_256_GCM_SHA384'."""
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport is not None else None
        if ssl_object is None:
            return "no TLS"
        cipher = ssl_object.cipher()
        return f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()


async def dial(
    config: ClientConfig,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    deliver: Deliver,
    on_event: Callable[[LinkConnection, CallEvent], None],
    server_hostname: str | None = None,
    tls: TlsSettings | None = None,
    proxy: ProxySettings | None = None,
    on_progress: Progress | None = None,
    on_backpressure: Callable[[bool], None] | None = None,
    timeout: float = DIAL_TIMEOUT,
) -> ClientConnection:
    """Open TCP and TLS to ``host:port`` and start the call; returns once TLS is up and checked.

    ``server_hostname`` is the SNI and the name OpenSSL checks ("" sends none); ``tls`` adds the checks
    made after the handshake (pin, name without SNI).
    """
    progress = on_progress or (lambda layer, text: None)
    name = server_hostname if server_hostname is not None else config.host
    target = _join(host, port)
    sock = await open_tcp(host, port, proxy, timeout, progress)
    loop = asyncio.get_running_loop()
    try:
        _, protocol = await loop.create_connection(
            lambda: ClientConnection(
                ClientLink(config),
                deliver=deliver,
                on_event=on_event,
                tls=tls,
                tls_name=(tls.sni if tls is not None and tls.sni else config.host),
                on_backpressure=on_backpressure,
            ),
            sock=sock,
            ssl=ssl_context,
            server_hostname=name,
            ssl_handshake_timeout=timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        why = exc.verify_message or str(exc)
        der = await fetch_certificate(host, port, name, proxy, tls or TlsSettings(), timeout)
        raise ConnectError(refusal_message(target, why, der, tls or TlsSettings()), retry=False) from None
    except ssl.SSLError as exc:
        sock.close()
        refusal = client_certificate_refusal(exc, tls)
        if refusal is None and isinstance(exc, ssl.SSLEOFError):
            refusal = silent_refusal(tls)
        if refusal is not None:
            raise ConnectError(f"TLS: {target} {refusal}", retry=False) from None
        raise ConnectError(
            f"TLS: handshake with {target} failed ({exc.reason or exc}): is it an SSTP (HTTPS) server? "
            "An old server may need --tls-min 1.2; a server behind a name-based front end may need --sni NAME"
        ) from None
    except OSError as exc:
        sock.close()
        reason = _os_reason(exc)
        if isinstance(exc, ConnectionResetError):
            reason += f"; the server {silent_refusal(tls)}"
        raise ConnectError(f"TLS: the handshake with {target} did not complete: {reason}") from None
    assert isinstance(protocol, ClientConnection)
    if protocol.rejected is not None:
        raise ConnectError(
            refusal_message(target, protocol.rejected.why, protocol.certificate, tls or TlsSettings()),
            retry=False,
        )
    progress("TLS", protocol.tls_description)
    return protocol


async def open_tcp(
    host: str, port: int, proxy: ProxySettings | None, timeout: float, progress: Progress
) -> socket.socket:
    """A connected, non-blocking socket to ``host:port``: directly, or a CONNECT tunnel through ``proxy``."""
    if proxy is None:
        sock = await _connect(host, port, timeout, "TCP")
        peer = sock.getpeername()
        progress("TCP", f"connected to {_join(peer[0], peer[1])}")
        return sock
    sock = await _connect(proxy.host, proxy.port, timeout, "proxy")
    try:
        status = await asyncio.wait_for(_proxy_connect(sock, host, port, proxy), timeout)
    except TimeoutError:
        sock.close()
        raise ConnectError(
            f"proxy: {_join(proxy.host, proxy.port)} did not answer CONNECT within {timeout:g} s"
        ) from None
    except (OSError, ConnectError):
        sock.close()
        raise
    progress(
        "TCP", f"connected to {_join(host, port)} through proxy {_join(proxy.host, proxy.port)} ({status})"
    )
    return sock


async def _connect(host: str, port: int, timeout: float, layer: str) -> socket.socket:
    loop = asyncio.get_running_loop()
    target = _join(host, port)
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectError(f"DNS: cannot resolve {host!r} ({exc.strerror}): check the host name") from None
    failures: list[OSError] = []
    tried: list[str] = []
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, address), timeout)
        except (OSError, TimeoutError) as exc:
            sock.close()
            failures.append(exc)
            tried.append(str(address[0]))
            continue
        return sock
    if all(isinstance(exc, ConnectionRefusedError) for exc in failures):
        raise ConnectError(
            f"{layer}: {target} refused the connection: check the host and the port "
            f"(SSTP servers usually listen on 443), and that the server is running"
        )
    if all(isinstance(exc, TimeoutError) for exc in failures):
        raise ConnectError(
            f"{layer}: no answer from {target} within {timeout:g} s: check the host, port and firewall"
        )
    reasons = [f"{_os_reason(exc)} ({address})" for exc, address in zip(failures, tried, strict=True)]
    if len(failures) == 1:
        reasons = [_os_reason(failures[0])]
    hint = _UNREACHABLE_HINT if any(exc.errno in _UNREACHABLE for exc in failures) else "check the host"
    raise ConnectError(f"{layer}: cannot connect to {target}: {', '.join(reasons)}: {hint}")


async def _proxy_connect(sock: socket.socket, host: str, port: int, proxy: ProxySettings) -> str:
    """Ask the proxy for a tunnel; returns its status line. Reads no byte past the response header, which
    belongs to TLS."""
    loop = asyncio.get_running_loop()
    authority = _join(host, port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", "SSTPVERSION: 1.0"]
    if proxy.username is not None:
        token = base64.b64encode(f"{proxy.username}:{proxy.password or ''}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
    response = b""
    while not response.endswith(b"\r\n\r\n"):
        byte = await loop.sock_recv(sock, 1)
        if not byte:
            raise ConnectError(
                f"proxy: {_join(proxy.host, proxy.port)} closed the connection without an answer"
            )
        response += byte
        if len(response) > MAX_PROXY_RESPONSE:
            raise ConnectError(f"proxy: {_join(proxy.host, proxy.port)} sent an oversized answer")
    status = response.split(b"\r\n", 1)[0].decode("latin-1")
    code = status.split(" ", 2)[1] if status.count(" ") >= 1 else ""
    if code == "200":
        return status
    if code == "407":
        hint = (
            "check the user and password in --proxy"
            if proxy.username
            else "add them: --proxy http://USER:PASS@HOST:PORT"
        )
        raise ConnectError(f"proxy: authentication required or failed ({status}): {hint}", retry=False)
    raise ConnectError(f"proxy: CONNECT {authority} refused ({status})")


async def fetch_certificate(
    host: str, port: int, name: str, proxy: ProxySettings | None, tls: TlsSettings, timeout: float
) -> bytes | None:
    """The server's leaf certificate from a second handshake that checks nothing (for error messages)."""
    loop = asyncio.get_running_loop()
    try:
        sock = await open_tcp(host, port, proxy, timeout, lambda layer, text: None)
        transport, _ = await loop.create_connection(
            asyncio.Protocol,
            sock=sock,
            ssl=inspect_context(tls),
            server_hostname=name,
            ssl_handshake_timeout=timeout,
        )
    except (ConnectError, OSError, ssl.SSLError):
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    der: bytes | None = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    transport.abort()
    return der


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH})
_UNREACHABLE_HINT = "check the host's address and this machine's network connection and routes"


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    # asyncio's sock_connect puts "Connect call failed (address)" where the system's text would be.
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
