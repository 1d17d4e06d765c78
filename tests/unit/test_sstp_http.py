"""The HTTP exchange before SSTP: exact request/response bytes, real clients and servers, limits, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp.errors import HttpError
from pysstp.sstp.constants import HTTP_MAX_HEAD, HTTP_MAX_HEADERS, HTTP_MAX_LINE
from pysstp.sstp.http import (
    HttpRequestRejected,
    HttpResponseError,
    RequestParser,
    ResponseParser,
    build_request,
    error_response,
    ok_response,
)

REQUEST_LINE = b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"
CALL_CONNECT_REQUEST = bytes.fromhex("10 01 00 0E 00 01 00 01 00 01 00 06 00 01")


def test_build_request_exact() -> None:
    assert build_request("vpn.example.com", "{C3C83E1A-CD81-4BF8-9061-DDA5587E6473}") == (
        REQUEST_LINE + b"Host: vpn.example.com\r\n"
        b"Content-Length: 18446744073709551615\r\n"
        b"SSTPCORRELATIONID: {C3C83E1A-CD81-4BF8-9061-DDA5587E6473}\r\n\r\n"
    )


def test_build_request_adds_braces() -> None:
    assert b"SSTPCORRELATIONID: {ABC}\r\n" in build_request("h", "ABC")


@pytest.mark.parametrize(("host", "cid"), [("a\r\nX: y", "{1}"), ("h", "{1}\n"), ("hé", "{1}")])
def test_build_request_refuses_header_injection(host: str, cid: str) -> None:
    with pytest.raises(ValueError):
        build_request(host, cid)


def test_ok_response_exact() -> None:
    assert ok_response("Thu, 09 Nov 2006 00:51:09 GMT") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nServer: Microsoft-HTTPAPI/2.0\r\n"
        b"Date: Thu, 09 Nov 2006 00:51:09 GMT\r\n\r\n"
    )
    assert ok_response(None) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nServer: Microsoft-HTTPAPI/2.0\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("code", "line"), [(400, b"400 Bad Request"), (404, b"404 Not Found"), (501, b"501 Not Implemented")]
)
def test_error_response_exact(code: int, line: bytes) -> None:
    assert error_response(code) == b"HTTP/1.1 " + line + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


# ---------------------------------------------------------------------------------------- response parser

SOFTETHER_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n"
    b"Date: Wed, 25 Nov 2026 03:07:25 GMT\r\nServer: Microsoft-HTTPAPI/2.0\r\n\r\n"
)
ACCEL_OK = (
    b"HTTP/1.1 200 OK\r\nDate: Wed, 25 Nov 2026 03:07:25 GMT\r\n"
    b"Content-Length: 18446744073709551615\r\nConnection: keep-alive\r\n\r\n"
)
SORZ_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nServer: SSTP-Server/0.6.0\r\n\r\n"


@pytest.mark.parametrize("raw", [SOFTETHER_OK, ACCEL_OK, SORZ_OK], ids=["softether", "accel", "sorz"])
def test_real_server_responses(raw: bytes) -> None:
    response = ResponseParser().feed(raw)
    assert response is not None
    assert (response.status, response.reason, response.leftover) == (200, "OK", b"")
    assert response.headers["content-length"] == "18446744073709551615"


def test_response_without_reason_phrase_and_with_leftover() -> None:
    response = ResponseParser().feed(b"HTTP/1.1 200\r\n\r\n" + CALL_CONNECT_REQUEST)
    assert response is not None
    assert (response.status, response.reason, response.leftover) == (200, "", CALL_CONNECT_REQUEST)


def test_response_byte_by_byte() -> None:
    parser = ResponseParser()
    results = [parser.feed(SOFTETHER_OK[i : i + 1]) for i in range(len(SOFTETHER_OK))]
    assert results[:-1] == [None] * (len(SOFTETHER_OK) - 1)
    assert results[-1] is not None and results[-1].status == 200


@pytest.mark.parametrize("code", [407, 404, 500, 301])
def test_non_200_keeps_the_code(code: int) -> None:
    with pytest.raises(HttpResponseError) as info:
        ResponseParser().feed(f"HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\n\r\n".encode())
    assert info.value.status_code == code


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\nX: y\r\n\r\n",
        b"x" * HTTP_MAX_HEAD,
        b"HTTP/1.1 200 OK\r\n" + b"x" * (HTTP_MAX_LINE + 1),
    ],
)
def test_malformed_responses(raw: bytes) -> None:
    with pytest.raises(HttpResponseError) as info:
        ResponseParser().feed(raw)
    assert info.value.status_code in (None, 200)


def test_response_parser_is_single_use() -> None:
    parser = ResponseParser()
    assert parser.feed(SORZ_OK) is not None
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


# ---------------------------------------------------------------------------------------- request parser

WINDOWS_REQUEST = (
    REQUEST_LINE + b"SSTPCORRELATIONID: {48B82435-099A-4158-A987-052E7570CFAA}\r\n"
    b"Content-Length: 18446744073709551615\r\nHost: vyos.io\r\n\r\n"
)
SSTPC_REQUEST = (
    REQUEST_LINE + b"Host: 127.0.0.1\r\nContent-Length: 18446744073709551615\r\n"
    b"SSTPCORRELATIONID: {43C8C7F4-3B79-81D9-ED82409}\r\n\r\n"
)
OSC_REQUEST = (
    REQUEST_LINE + b"Content-Length: 18446744073709551615\r\nHost: vpn.example\r\n"
    b"SSTPCORRELATIONID: {1b4e28ba-2fa1-11d2-883f-0016d3cca427}\r\n\r\n"
)


@pytest.mark.parametrize(
    "raw", [WINDOWS_REQUEST, SSTPC_REQUEST, OSC_REQUEST], ids=["windows", "sstpc", "osc"]
)
def test_real_client_requests(raw: bytes) -> None:
    request = RequestParser().feed(raw)
    assert request is not None
    assert request.method == "SSTP_DUPLEX_POST"
    assert request.version == "HTTP/1.1"
    assert "sstpcorrelationid" in request.headers
    assert request.leftover == b""


def test_our_own_request_is_accepted() -> None:
    request = RequestParser().feed(build_request("h", "{x}"))
    assert request is not None and request.headers["host"] == "h"


def test_pipelined_sstp_bytes_are_kept() -> None:
    request = RequestParser().feed(SSTPC_REQUEST + CALL_CONNECT_REQUEST)
    assert request is not None and request.leftover == CALL_CONNECT_REQUEST


def test_request_across_reads() -> None:
    parser = RequestParser()
    raw = WINDOWS_REQUEST + CALL_CONNECT_REQUEST
    for i in range(len(WINDOWS_REQUEST) - 1):
        assert parser.feed(raw[i : i + 1]) is None
    request = parser.feed(raw[len(WINDOWS_REQUEST) - 1 :])
    assert request is not None and request.leftover == CALL_CONNECT_REQUEST


def test_method_and_uri_are_case_insensitive() -> None:
    raw = b"sstp_duplex_post /SRA_{ba195980-cd49-458B-9e23-c84ee0adcd75}/ HTTP/1.0\r\nHost: x\r\n\r\n"
    request = RequestParser().feed(raw)
    assert request is not None and request.version == "HTTP/1.0"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n\r\n", 501),
        (b"SSTP_DUPLEX_POST /other/ HTTP/1.1\r\n\r\n", 404),
        (b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/2.0\r\n\r\n", 400),
        (b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/\r\n\r\n", 400),
        (b"SSTP_DUPLEX_POST  /sra_x/ HTTP/1.1\r\n\r\n", 400),
        (b"\r\n\r\n", 400),
        (REQUEST_LINE + b"Host x\r\n\r\n", 400),
        (REQUEST_LINE + b" folded: line\r\n\r\n", 400),
        (REQUEST_LINE + b"Bad Name: x\r\n\r\n", 400),
        (REQUEST_LINE + b"A: b\nC: d\r\n\r\n", 400),
        (REQUEST_LINE + b"X: " + b"y" * HTTP_MAX_LINE + b"\r\n\r\n", 400),
        (REQUEST_LINE + b"".join(b"H%d: v\r\n" % i for i in range(HTTP_MAX_HEADERS + 1)) + b"\r\n", 400),
    ],
)
def test_rejected_requests(raw: bytes, code: int) -> None:
    with pytest.raises(HttpRequestRejected) as info:
        RequestParser().feed(raw)
    assert info.value.status_code == code
    assert info.value.response == error_response(code)
    assert isinstance(info.value, HttpError)


def test_limits_apply_before_the_head_is_complete() -> None:
    parser = RequestParser()
    with pytest.raises(HttpRequestRejected) as info:
        parser.feed(REQUEST_LINE + b"X: " + b"y" * (HTTP_MAX_LINE + 10))
    assert info.value.status_code == 400
    parser = RequestParser()
    with pytest.raises(HttpRequestRejected):
        for _ in range(HTTP_MAX_HEAD):
            parser.feed(b"A: b\r\n")


def test_exactly_at_the_limits_is_accepted() -> None:
    headers = b"".join(b"H%d: v\r\n" % i for i in range(HTTP_MAX_HEADERS - 1))
    raw = REQUEST_LINE + headers + b"L: " + b"v" * (HTTP_MAX_LINE - 3) + b"\r\n\r\n"
    assert len(raw) <= HTTP_MAX_HEAD
    assert RequestParser().feed(raw) is not None


@given(st.lists(st.binary(max_size=300), max_size=6))
def test_random_bytes_into_request_parser(chunks: list[bytes]) -> None:
    parser = RequestParser()
    try:
        for chunk in chunks:
            if parser.feed(chunk) is not None:
                break
    except HttpRequestRejected as exc:
        assert exc.status_code in (400, 404, 501)


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_random_headers_after_a_valid_request_line(a: bytes, b: bytes) -> None:
    with contextlib.suppress(HttpRequestRejected):
        RequestParser().feed(REQUEST_LINE + a + b"\r\n" + b + b"\r\n\r\n")


@given(st.lists(st.binary(max_size=300), max_size=6))
def test_random_bytes_into_response_parser(chunks: list[bytes]) -> None:
    parser = ResponseParser()
    try:
        for chunk in chunks:
            if parser.feed(chunk) is not None:
                break
    except HttpResponseError:
        pass


@given(st.binary(max_size=300))
def test_random_headers_after_a_200_status_line(tail: bytes) -> None:
    with contextlib.suppress(HttpResponseError):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\n" + tail + b"\r\n\r\n")


def test_page_and_redirect_responses_end_the_connection() -> None:
    from pysstp.sstp.http import page_response, redirect_response

    page = page_response(b"<h1>hello</h1>")
    assert page.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 14\r\n" in page and b"Connection: close\r\n" in page
    assert page.endswith(b"\r\n\r\n<h1>hello</h1>")
    assert redirect_response("/x").startswith(b"HTTP/1.1 302 Found\r\nLocation: /x\r\n")
    with pytest.raises(ValueError):
        redirect_response("/x\r\nSet-Cookie: a=b")
