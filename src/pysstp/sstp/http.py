"""The HTTP exchange that opens an SSTP call ([MS-SSTP] §4.1).

One request (``SSTP_DUPLEX_POST``, Content-Length 2^64-1, no body) and one response; after the blank line
the stream is binary SSTP in both directions, so bytes after the head are handed back as ``leftover``.
Heads are parsed by hand with hard limits: a generic HTTP library would try to read the 2^64-1 byte body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

from pysstp.errors import HttpError
from pysstp.sstp.constants import (
    HTTP_CONTENT_LENGTH,
    HTTP_CORRELATION_HEADER,
    HTTP_MAX_HEAD,
    HTTP_MAX_HEADERS,
    HTTP_MAX_LINE,
    HTTP_METHOD,
    HTTP_SERVER_NAME,
    HTTP_URI,
    HTTP_VERSION,
)

_TERMINATOR = b"\r\n\r\n"
_CRLF = "\r\n"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HTTP_1X = re.compile(r"HTTP/1\.[0-9]")
_STATUS_LINE = re.compile(r"(HTTP/1\.[0-9]) ([0-9]{3})(?: (.*))?")
_UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class HttpResponseError(HttpError):
    """The server's answer is not a usable SSTP 200 response; ``status_code`` is None if none was read."""

    def __init__(self, reason: str, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.status_code = status_code


class HttpRequestRejected(HttpError):
    """The client's request is not an SSTP request; send ``response`` (the HTTP error) and close."""

    def __init__(self, reason: str, status_code: HTTPStatus) -> None:
        super().__init__(f"{int(status_code)} {status_code.phrase}: {reason}")
        self.status_code = int(status_code)
        self.response = error_response(status_code)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete response head; ``headers`` has lower-cased names, ``leftover`` is already SSTP."""

    status: int
    reason: str
    headers: dict[str, str]
    leftover: bytes


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A complete, accepted request head; ``headers`` has lower-cased names, ``leftover`` is already SSTP."""

    method: str
    uri: str
    version: str
    headers: dict[str, str]
    leftover: bytes


def build_request(host: str, correlation_id: str) -> bytes:
    """The client's request (tests/unit/test_sstp_http.py holds its exact bytes).

    ``correlation_id`` is a GUID; it is wrapped in braces unless it already starts with one.
    """
    if not correlation_id.startswith("{"):
        correlation_id = f"{{{correlation_id}}}"
    for name, value in (("host", host), ("correlation_id", correlation_id)):
        if not value.isascii() or _UNSAFE_HEADER_CHARS.search(value):
            raise ValueError(f"{name} {value!r} cannot go into an HTTP header")
    return (
        f"{HTTP_METHOD} {HTTP_URI} {HTTP_VERSION}{_CRLF}"
        f"Host: {host}{_CRLF}"
        f"Content-Length: {HTTP_CONTENT_LENGTH}{_CRLF}"
        f"{HTTP_CORRELATION_HEADER}: {correlation_id}{_CRLF}{_CRLF}"
    ).encode("ascii")


def ok_response(date: str | None) -> bytes:
    """The server's 200 answer in the spec/SoftEther form; ``date`` is an RFC 7231 date or None to omit it."""
    lines = [
        f"{HTTP_VERSION} {HTTPStatus.OK.value} {HTTPStatus.OK.phrase}",
        f"Content-Length: {HTTP_CONTENT_LENGTH}",
        f"Server: {HTTP_SERVER_NAME}",
    ]
    if date is not None:
        lines.append(f"Date: {date}")
    return (_CRLF.join(lines) + _CRLF + _CRLF).encode("ascii")


def redirect_response(location: str) -> bytes:
    """A 302 to ``location`` that ends the connection: what a browser gets instead of a 404/501."""
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in location):
        raise ValueError("redirect location must be printable ASCII without spaces")
    return (
        f"{HTTP_VERSION} {HTTPStatus.FOUND.value} {HTTPStatus.FOUND.phrase}{_CRLF}"
        f"Location: {location}{_CRLF}"
        f"Content-Length: 0{_CRLF}"
        f"Connection: close{_CRLF}{_CRLF}"
    ).encode("ascii")


def page_response(body: bytes, content_type: str = "text/html; charset=utf-8") -> bytes:
    """A 200 with a static page that ends the connection: the server looks like a plain web server."""
    head = (
        f"{HTTP_VERSION} {HTTPStatus.OK.value} {HTTPStatus.OK.phrase}{_CRLF}"
        f"Content-Type: {content_type}{_CRLF}"
        f"Content-Length: {len(body)}{_CRLF}"
        f"Connection: close{_CRLF}{_CRLF}"
    )
    return head.encode("ascii") + body


def error_response(code: int) -> bytes:
    """An HTTP error that ends the connection (accel-ppp form: empty body, ``Connection: close``)."""
    status = HTTPStatus(code)
    return (
        f"{HTTP_VERSION} {status.value} {status.phrase}{_CRLF}"
        f"Content-Length: 0{_CRLF}"
        f"Connection: close{_CRLF}{_CRLF}"
    ).encode("ascii")


class _HeadReader:
    """Collects bytes up to the blank line that ends an HTTP head, within the limits of constants.py."""

    __slots__ = ("_buffer", "_done")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._done = False

    def feed(self, data: bytes) -> tuple[list[str], bytes] | None:
        """Return (lines without CRLF, bytes after the head) once complete; raise HttpError over limits."""
        if self._done:
            raise RuntimeError("the HTTP head was already parsed")
        buffer = self._buffer
        search_from = max(0, len(buffer) - len(_TERMINATOR) + 1)
        buffer += data
        end = buffer.find(_TERMINATOR, search_from)
        if end < 0:
            if len(buffer) >= HTTP_MAX_HEAD:
                raise HttpError(f"HTTP head longer than {HTTP_MAX_HEAD} bytes")
            if len(buffer) - (buffer.rfind(b"\n") + 1) > HTTP_MAX_LINE:
                raise HttpError(f"HTTP line longer than {HTTP_MAX_LINE} bytes")
            return None
        head_len = end + len(_TERMINATOR)
        if head_len > HTTP_MAX_HEAD:
            raise HttpError(f"HTTP head of {head_len} bytes is longer than {HTTP_MAX_HEAD}")
        # latin-1 maps every byte, so decoding cannot fail; non-ASCII is judged by the checks below
        lines = buffer[:end].decode("latin-1").split(_CRLF)
        leftover = bytes(buffer[head_len:])
        self._done = True
        buffer.clear()
        if len(lines) - 1 > HTTP_MAX_HEADERS:
            raise HttpError(f"more than {HTTP_MAX_HEADERS} HTTP header lines")
        for line in lines:
            if len(line) > HTTP_MAX_LINE:
                raise HttpError(f"HTTP line longer than {HTTP_MAX_LINE} bytes")
            if "\r" in line or "\n" in line:
                raise HttpError("bare CR or LF in the HTTP head")
        return lines, leftover


def _parse_headers(lines: list[str]) -> dict[str, str]:
    """Header lines to a dict with lower-cased names; repeated headers are joined with ', '."""
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpError(f"malformed HTTP header line {line[:80]!r}")
        name = name.lower()
        value = value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class ResponseParser:
    """Client side: reads the server's response head; only 200 lets the call go on."""

    __slots__ = ("_head",)

    def __init__(self) -> None:
        self._head = _HeadReader()

    def feed(self, data: bytes) -> HttpResponse | None:
        """Add received bytes; return the response once its head is complete.

        Raises :class:`HttpResponseError` for a malformed or oversized head and for any status but 200
        (the code is kept in ``status_code``). Any reason phrase is accepted, also none at all.
        """
        try:
            complete = self._head.feed(data)
        except HttpResponseError:
            raise
        except HttpError as exc:
            raise HttpResponseError(str(exc)) from None
        if complete is None:
            return None
        lines, leftover = complete
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise HttpResponseError(f"malformed HTTP status line {lines[0][:80]!r}")
        status = int(match.group(2))
        reason = (match.group(3) or "").strip()
        if status != HTTPStatus.OK:
            raise HttpResponseError(f"HTTP status {status} {reason}".rstrip(), status)
        try:
            headers = _parse_headers(lines[1:])
        except HttpError as exc:
            raise HttpResponseError(str(exc), status) from None
        return HttpResponse(status, reason, headers, leftover)


class RequestParser:
    """Server side: reads the client's request head and accepts only an SSTP request.

    Method and URI compare case-insensitively (as SoftEther and accel-ppp do); the correlation id and the
    Host header are never validated (sstpc sends a malformed GUID).
    """

    __slots__ = ("_head",)

    def __init__(self) -> None:
        self._head = _HeadReader()

    def feed(self, data: bytes) -> HttpRequest | None:
        """Add received bytes; return the request once its head is complete.

        Raises :class:`HttpRequestRejected` with 400 (malformed, over a limit, not HTTP/1.x), 501 (method
        not SSTP_DUPLEX_POST) or 404 (another URI).
        """
        try:
            complete = self._head.feed(data)
        except HttpError as exc:
            raise HttpRequestRejected(str(exc), HTTPStatus.BAD_REQUEST) from None
        if complete is None:
            return None
        lines, leftover = complete
        parts = lines[0].split(" ")
        if len(parts) != 3 or not all(parts) or not _TOKEN.fullmatch(parts[0]):
            raise HttpRequestRejected(f"malformed request line {lines[0][:80]!r}", HTTPStatus.BAD_REQUEST)
        method, uri, version = parts
        if not _HTTP_1X.fullmatch(version):
            raise HttpRequestRejected(f"version {version[:20]!r} is not HTTP/1.x", HTTPStatus.BAD_REQUEST)
        try:
            headers = _parse_headers(lines[1:])
        except HttpError as exc:
            raise HttpRequestRejected(str(exc), HTTPStatus.BAD_REQUEST) from None
        if method.upper() != HTTP_METHOD.upper():
            raise HttpRequestRejected(f"method {method[:40]!r}", HTTPStatus.NOT_IMPLEMENTED)
        if uri.lower() != HTTP_URI.lower():
            raise HttpRequestRejected(f"URI {uri[:80]!r}", HTTPStatus.NOT_FOUND)
        return HttpRequest(method, uri, version, headers, leftover)
