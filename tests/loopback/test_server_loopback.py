"""The real asyncio server and client over TLS on 127.0.0.1 (TUN replaced by a stand-in)."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import socket
import struct
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from pysstp.aaa.radius.accounting import TerminateCause
from pysstp.link import MAX_IP_PACKET, LinkDown, LinkUp, frame_ip_packets
from pysstp.ppp.constants import MAX_MRU, AuthMethod
from pysstp.server import listener
from pysstp.server.app import Limits
from pysstp.server.backoff import Backoff
from pysstp.sstp.packets import EchoRequest, encode_control

from helpers.loopback import SERVER_ADDRESS, Bench, start_bench

TIMEOUT = 10


def udp_packet(src: IPv4Address, dst: IPv4Address, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 17, 0, src.packed, dst.packed)
    return header + payload


async def wait_for(condition: object, timeout: float = TIMEOUT) -> None:
    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def bench(tmp_path: Path) -> Bench:
    bench = await start_bench(tmp_path)
    yield bench  # type: ignore[misc]
    await bench.app.shutdown()
    bench.tun.close()


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP])
async def test_call_comes_up_and_carries_ip_both_ways(tmp_path: Path, method: AuthMethod) -> None:
    bench = await start_bench(tmp_path, configure=lambda c: dataclasses.replace(c, auth_methods=(method,)))
    try:
        client = await bench.connect(auth_methods=(method,))
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        up = client.first(LinkUp)
        assert isinstance(up, LinkUp)
        assert up.auth_method is method
        assert up.peer_address == SERVER_ADDRESS
        assert up.local_address is not None
        assert client.connection is not None
        outbound = udp_packet(up.local_address, SERVER_ADDRESS, b"hello server")
        client.connection.send_ip_batch([outbound])
        await wait_for(lambda: outbound in bench.tun.written)
        inbound = udp_packet(SERVER_ADDRESS, up.local_address, b"hello client")
        bench.tun.inject(inbound)
        await wait_for(lambda: inbound in client.received)
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_spoofed_source_is_dropped(bench: Bench) -> None:
    client = await bench.connect()
    await asyncio.wait_for(client.up.wait(), TIMEOUT)
    assert client.connection is not None
    spoofed = udp_packet(IPv4Address("10.99.0.1"), SERVER_ADDRESS, b"not mine")
    client.connection.send_ip_batch([spoofed])
    await wait_for(lambda: bench.app.spoofed == 1)
    assert spoofed not in bench.tun.written


async def test_one_read_of_ip_spoofed_ip_and_control_is_handled_in_order(bench: Bench) -> None:
    client = await bench.connect()
    await asyncio.wait_for(client.up.wait(), TIMEOUT)
    up = client.first(LinkUp)
    assert isinstance(up, LinkUp) and up.local_address is not None
    assert client.connection is not None and client.connection.transport is not None
    own = [udp_packet(up.local_address, SERVER_ADDRESS, bytes([n]) * 100) for n in range(4)]
    spoofed = udp_packet(IPv4Address("10.99.0.1"), SERVER_ADDRESS, b"not mine")
    server = next(iter(bench.app.connections))
    before = server.packets_in
    # One TLS write (so, on loopback, one read at the server), with the last packet cut in two.
    stream = (
        frame_ip_packets(own[:2])
        + encode_control(EchoRequest())
        + frame_ip_packets([spoofed, own[2]])
        + frame_ip_packets([own[3]])
    )
    client.connection.transport.write(stream[:-50])
    await asyncio.sleep(0.2)
    client.connection.transport.write(stream[-50:])
    await wait_for(lambda: own[3] in bench.tun.written)
    assert bench.tun.written[-4:] == own
    assert bench.app.spoofed == 1
    assert server.packets_in - before == 5
    assert not client.down.is_set()


async def test_fifty_sessions_get_distinct_addresses_and_their_own_traffic(bench: Bench) -> None:
    clients = await asyncio.gather(*(bench.connect() for _ in range(50)))
    await asyncio.wait_for(asyncio.gather(*(c.up.wait() for c in clients)), 30)
    addresses = []
    for c in clients:
        up = c.first(LinkUp)
        assert isinstance(up, LinkUp) and up.local_address is not None
        addresses.append(up.local_address)
    assert len(set(addresses)) == 50
    for address in addresses:
        bench.tun.inject(udp_packet(SERVER_ADDRESS, address, address.packed))
    await wait_for(lambda: all(len(c.received) == 1 for c in clients))
    for c, address in zip(clients, addresses, strict=True):
        assert c.received[0][20:] == address.packed
    leaving = clients[0]
    assert leaving.connection is not None
    leaving.connection.close()
    await asyncio.wait_for(leaving.down.wait(), TIMEOUT)
    await wait_for(lambda: len(bench.app.connections) == 49)
    assert addresses[0].packed not in bench.app.by_address
    for c in clients[1:]:
        assert not c.down.is_set()
    again = await bench.connect()
    await asyncio.wait_for(again.up.wait(), TIMEOUT)


async def test_wrong_password_is_refused_with_the_reason(bench: Bench) -> None:
    client = await bench.connect(password="wrong")
    await asyncio.wait_for(client.down.wait(), TIMEOUT)
    down = client.first(LinkDown)
    assert isinstance(down, LinkDown) and "691" in down.reason
    await wait_for(lambda: not bench.app.connections)


async def test_shutdown_disconnects_every_client_in_order(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path)
    clients = await asyncio.gather(*(bench.connect() for _ in range(3)))
    await asyncio.wait_for(asyncio.gather(*(c.up.wait() for c in clients)), TIMEOUT)
    await bench.app.shutdown()
    bench.tun.close()
    for c in clients:
        await asyncio.wait_for(c.down.wait(), TIMEOUT)
        down = c.first(LinkDown)
        assert isinstance(down, LinkDown)
        assert not down.error, down.reason


async def test_session_limit_refuses_the_extra_call(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path, limits=Limits(max_sessions=1))
    try:
        first = await bench.connect()
        await asyncio.wait_for(first.up.wait(), TIMEOUT)
        second = await bench.connect()
        await asyncio.wait_for(second.down.wait(), TIMEOUT)
        assert not first.down.is_set()
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def raw_tls(bench: Bench, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", bench.port, ssl=bench.client_context, server_hostname="sstp.test"
    )
    writer.write(payload)
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return data


async def test_browser_gets_a_plain_http_error(bench: Bench) -> None:
    answer = await raw_tls(bench, b"GET / HTTP/1.1\r\nHost: sstp.test\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 501") or answer.startswith(b"HTTP/1.1 404")
    answer = await raw_tls(bench, b"SSTP_DUPLEX_POST /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404")


async def test_undelineable_stream_closes_only_that_connection(bench: Bench) -> None:
    good = await bench.connect()
    await asyncio.wait_for(good.up.wait(), TIMEOUT)
    request = (
        b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"
        b"Host: x\r\nContent-Length: 18446744073709551615\r\n\r\n"
    )
    # A bad version byte cannot be delineated: MS-SSTP says drop TCP and send nothing (not even the 200).
    answer = await raw_tls(bench, request + b"\x11\x01\x00\x0e" + b"\x00" * 10)
    assert answer == b""
    # A length below the minimum is the same; a length past the end waits for the negotiation timer.
    answer = await raw_tls(bench, request + b"\x10\x01\x00\x02")
    assert answer == b""
    assert not good.down.is_set()
    assert len(bench.app.connections) == 1


async def test_garbage_instead_of_tls_is_dropped_and_logged(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.server")
    reader, writer = await asyncio.open_connection("127.0.0.1", bench.port)
    local_port = writer.get_extra_info("sockname")[1]
    writer.write(b"\x16\x03\x01garbage that is not a TLS ClientHello" * 4)
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    assert data == b"" or not data.startswith(b"HTTP")
    writer.close()
    assert not bench.app.connections
    assert bench.app.listener.handshake_failures == 1
    assert f"127.0.0.1:{local_port}: TLS handshake failed: " in caplog.text


async def test_plain_http_on_the_tls_port_is_logged_in_plain_words(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.server")
    reader, writer = await asyncio.open_connection("127.0.0.1", bench.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: sstp.test\r\n\r\n")
    await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert "TLS handshake failed: plain HTTP sent to the TLS port" in caplog.text


async def test_silent_client_is_dropped_at_the_tls_handshake_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.server")
    bench = await start_bench(tmp_path, configure=lambda c: dataclasses.replace(c, handshake_timeout=0.3))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bench.port)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
        assert "TLS handshake failed: no complete TLS handshake in time" in caplog.text
    finally:
        await bench.app.shutdown()


async def test_shutdown_stops_accepting_and_abandons_handshakes(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path)
    _reader, writer = await asyncio.open_connection("127.0.0.1", bench.port)
    await asyncio.sleep(0.05)
    await bench.app.shutdown()
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", bench.port)


async def test_accept_errors_leave_the_listener_accepting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(listener, "ACCEPT_RETRY_DELAY", 0.01)
    bench = await start_bench(tmp_path)
    loop = asyncio.get_running_loop()
    real_accept = loop.sock_accept
    errors = [OSError(errno.EPROTO, "Protocol error"), OSError(errno.EMFILE, "Too many open files")]

    async def failing_accept(sock: socket.socket) -> tuple[socket.socket, object]:
        if errors:
            raise errors.pop(0)
        return await real_accept(sock)

    monkeypatch.setattr(loop, "sock_accept", failing_accept)
    try:
        # The accept already waiting takes the first call; both errors come before the second.
        for user, password in (("alice", "alicepw"), ("bob", "bobpw")):
            client = await bench.connect(user, password)
            await asyncio.wait_for(client.up.wait(), TIMEOUT)
        assert not errors
        assert len(bench.app.connections) == 2
        assert "cannot accept connections (Too many open files); retrying in 0 s" in caplog.text
        assert "Protocol error" not in caplog.text
    finally:
        await bench.app.shutdown()


async def test_status_lists_sessions_and_kick_disconnects(bench: Bench, tmp_path: Path) -> None:
    from pysstp.commands.status import format_table
    from pysstp.server.control import ControlServer, request

    control = ControlServer(bench.app, tmp_path / "control.sock")
    await control.start()
    try:
        alice = await bench.connect()
        bob = await bench.connect("bob", "bobpw")
        await asyncio.wait_for(asyncio.gather(alice.up.wait(), bob.up.wait()), TIMEOUT)
        answer = await request(control.path, {"command": "status"})
        assert answer["ok"]
        users = sorted(s["user"] for s in answer["sessions"])
        assert users == ["alice", "bob"]
        table = format_table(answer["sessions"])
        assert "alice" in table and "10.77.0." in table
        (kicked,) = [c for c in bench.app.connections if c.info.user == "alice"]
        answer = await request(control.path, {"command": "kick", "target": "alice"})
        assert answer == {"ok": True, "kicked": 1}
        assert kicked.terminate_cause is TerminateCause.ADMIN_RESET
        await asyncio.wait_for(alice.down.wait(), TIMEOUT)
        down = alice.first(LinkDown)
        assert isinstance(down, LinkDown) and not down.error
        assert not bob.down.is_set()
        assert (await request(control.path, {"command": "nonsense"}))["ok"] is False
    finally:
        await control.stop()


def from_address(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """Dial from ``address`` (another 127.x source) instead of 127.0.0.1."""

    async def open_tcp(host: str, port: int, *_: object) -> socket.socket:
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((address, 0))
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        return sock

    monkeypatch.setattr("pysstp.client.dial.open_tcp", open_tcp)


async def failed_login(bench: Bench, user: str = "alice") -> None:
    client = await bench.connect(user, password="guess")
    await asyncio.wait_for(client.down.wait(), TIMEOUT)
    assert not client.up.is_set()


def answer_delays(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "answering the login" in r.getMessage()]


async def test_after_wrong_passwords_the_right_one_still_gets_in_later(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    bench.app.backoff = Backoff(base=0.05, maximum=0.2, source_limit=10)
    caplog.set_level(logging.INFO, "pysstp.server")
    for _ in range(5):
        await failed_login(bench)
    client = await bench.connect()
    await asyncio.wait_for(client.up.wait(), TIMEOUT)
    # Every answer after the first failure waited, the right password's too (timing tells nothing).
    assert [m.split(": ", 1)[1] for m in answer_delays(caplog)] == [
        "answering the login of 'alice' in 0.1 s",
        "answering the login of 'alice' in 0.1 s",
        "answering the login of 'alice' in 0.2 s",
        "answering the login of 'alice' in 0.2 s",
        "answering the login of 'alice' in 0.2 s",
    ]
    assert bench.app.backoff.delay("127.0.0.1", "alice") == 0.0  # the success cleared both


async def test_a_slow_login_does_not_delay_other_calls(
    bench: Bench, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench.app.backoff = Backoff(base=600.0, maximum=600.0)
    caplog.set_level(logging.INFO, "pysstp.server")
    await failed_login(bench)
    held = await bench.connect()
    await wait_for(lambda: answer_delays(caplog))
    from_address(monkeypatch, "127.0.0.2")
    other = await bench.connect("bob", "bobpw")
    await asyncio.wait_for(other.up.wait(), TIMEOUT)
    assert not held.up.is_set() and not held.down.is_set()  # alice's answer is still held back
    waiting = [c for c in bench.app.connections if c.verifying is not None]
    assert [c.info.user for c in waiting] == [None]  # only alice's call waits for its answer
    await bench.app.shutdown()  # an administrative close ends the waiting call in order
    await asyncio.wait_for(held.down.wait(), TIMEOUT)


async def test_failures_from_one_source_do_not_lock_the_user_out_from_another(
    bench: Bench, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench.app.backoff = Backoff(base=0.05, maximum=0.4, source_limit=3)
    caplog.set_level(logging.INFO, "pysstp.server")
    from_address(monkeypatch, "127.0.0.2")
    for _ in range(3):
        await failed_login(bench)
    assert "127.0.0.2 refused for 600 s after 3 failed logins" in caplog.messages
    monkeypatch.undo()
    caplog.clear()
    client = await bench.connect()  # alice from 127.0.0.1, the right password
    await asyncio.wait_for(client.up.wait(), TIMEOUT)
    # Slowed only by the user's own cap (half of the maximum), not by the other source's failures.
    assert [m.split(": ", 1)[1] for m in answer_delays(caplog)] == ["answering the login of 'alice' in 0.2 s"]


async def test_a_source_past_the_limit_is_refused_with_its_own_answer(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    bench.app.backoff = Backoff(base=0.0, source_limit=3, refusal=600.0)
    caplog.set_level(logging.INFO, "pysstp.server")
    for user in ("alice", "bob", "carol"):
        await failed_login(bench, user)
    assert "127.0.0.1 refused for 600 s after 3 failed logins" in caplog.messages
    refused = await bench.connect()  # even the right password, while the refusal lasts
    await asyncio.wait_for(refused.down.wait(), TIMEOUT)
    assert not refused.up.is_set()
    down = refused.first(LinkDown)
    assert isinstance(down, LinkDown)
    assert "503 Service Unavailable" in down.reason and "password" not in down.reason
    assert any(
        "refused for" in m and "after 3 failed logins from 127.0.0.1 (HTTP 503)" in m for m in caplog.messages
    )


HTTP_REQUEST = (
    b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"
    b"Host: sstp.test\r\nContent-Length: 18446744073709551615\r\n"
    b"SSTPCORRELATIONID: {43C8C7F4-3B79-81D9-ED82409}\r\n\r\n"
)


async def test_client_that_stops_after_http_is_aborted_at_the_negotiation_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = await start_bench(tmp_path, configure=lambda c: dataclasses.replace(c, negotiation_timeout=0.5))
    try:
        answer = await raw_tls(bench, HTTP_REQUEST)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        # CALL_ABORT with Status Info NEGOTIATION_TIMEOUT (8), then the server closes.
        assert answer.endswith(bytes.fromhex("10 01 00 14 00 05 00 01 00 02 00 0c 00 00 00 00 00 00 00 08"))
        assert "negotiation" in caplog.text.lower()
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_client_gone_silent_is_dropped_by_the_hello_timer(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path, configure=lambda c: dataclasses.replace(c, hello_interval=0.3))
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        assert client.connection is not None and client.connection.transport is not None
        client.connection.transport.pause_reading()  # the client no longer answers anything
        await wait_for(lambda: not bench.app.connections)
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_exhausted_pool_refuses_clearly_instead_of_hanging(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path, pool=IPv4Network("10.77.0.0/30"))
    try:
        first = await bench.connect()
        await asyncio.wait_for(first.up.wait(), TIMEOUT)
        second = await bench.connect("bob", "bobpw")
        await asyncio.wait_for(second.down.wait(), TIMEOUT)
        down = second.first(LinkDown)
        assert isinstance(down, LinkDown)
        assert "pool" in down.reason, down.reason
        assert not first.down.is_set()
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_browser_can_be_redirected_instead_of_a_404(tmp_path: Path) -> None:
    from pysstp.sstp.http import redirect_response

    redirect = redirect_response("https://www.example.test/")
    bench = await start_bench(
        tmp_path, configure=lambda c: dataclasses.replace(c, not_sstp_response=redirect)
    )
    try:
        answer = await raw_tls(bench, b"GET / HTTP/1.1\r\nHost: sstp.test\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 302 Found\r\nLocation: https://www.example.test/\r\n")
        client = await bench.connect()  # SSTP itself is unaffected
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_per_user_session_limit_refuses_with_the_reason(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path, limits=Limits(max_sessions_per_user=1))
    try:
        first = await bench.connect()
        await asyncio.wait_for(first.up.wait(), TIMEOUT)
        second = await bench.connect()
        await asyncio.wait_for(second.down.wait(), TIMEOUT)
        down = second.first(LinkDown)
        assert isinstance(down, LinkDown) and "already has 1 session" in down.reason
        other_user = await bench.connect("bob", "bobpw")
        await asyncio.wait_for(other_user.up.wait(), TIMEOUT)
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_a_users_ended_session_no_longer_counts_against_the_limit(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path, limits=Limits(max_sessions_per_user=1))
    try:
        first = await bench.connect()
        await asyncio.wait_for(first.up.wait(), TIMEOUT)
        assert first.connection is not None
        first.connection.close()
        await wait_for(lambda: not bench.app.connections)
        again = await bench.connect()
        await asyncio.wait_for(again.up.wait(), TIMEOUT)
        assert bench.app.logins.sessions_of("alice") == 1
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_connection_without_an_http_request_is_closed_at_the_handshake_timeout(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path, configure=lambda c: dataclasses.replace(c, handshake_timeout=0.3))
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", bench.port, ssl=bench.client_context, server_hostname="sstp.test"
        )
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed without a word
        writer.close()
        await wait_for(lambda: not bench.app.connections)
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_idle_call_is_disconnected_in_order(tmp_path: Path) -> None:
    bench = await start_bench(tmp_path, idle_timeout=0.4)
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        await asyncio.wait_for(client.down.wait(), TIMEOUT)
        down = client.first(LinkDown)
        assert isinstance(down, LinkDown) and not down.error and "idle" in down.reason
    finally:
        await bench.app.shutdown()
        bench.tun.close()


async def test_a_login_that_authorizes_nothing_particular_keeps_the_shared_authorization(
    bench: Bench,
) -> None:
    from pysstp.server.session import NO_AUTHORIZATION

    client = await bench.connect()
    await asyncio.wait_for(client.up.wait(), TIMEOUT)
    (connection,) = bench.app.connections
    assert connection.authorization is NO_AUTHORIZATION


async def test_rates_are_measured_over_the_window_after_the_question() -> None:
    from pysstp.server.control import measure_rates

    class Counters:
        bytes_in = 0
        bytes_out = 0

    staying, leaving, arriving = Counters(), Counters(), Counters()

    class App:
        connections = {staying, leaving}

    clock = iter((10.0, 12.0))
    measuring = asyncio.create_task(measure_rates(App, 0.01, lambda: next(clock)))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the first sample is taken; the window runs
    staying.bytes_in, staying.bytes_out = 250_000, 1_000
    App.connections = {staying, arriving}
    assert await measuring == {staying: (1_000_000.0, 4_000.0)}


async def test_a_status_shows_the_rates_measured_after_it_was_asked(bench: Bench, tmp_path: Path) -> None:
    from pysstp.server.control import ControlServer

    control = ControlServer(bench.app, tmp_path / "control.sock")
    await control.start()
    try:
        client = await bench.connect()
        await asyncio.wait_for(client.up.wait(), TIMEOUT)
        (connection,) = bench.app.connections
        asking = asyncio.create_task(control.answer(b'{"command": "status"}'))
        await asyncio.sleep(0)  # the first sample is taken
        connection.bytes_in += 125_000
        (row,) = (await asking)["sessions"]
        assert row["rate_in"] > 0
    finally:
        await control.stop()


async def test_bad_crypto_binding_gets_call_abort_and_a_log_line(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    client = await bench.connect()
    assert client.connection is not None
    # As a man in the middle would: the client binds to a certificate other than the server's.
    client.connection.link.set_server_certificate(b"the certificate of someone in the middle")
    await asyncio.wait_for(client.down.wait(), TIMEOUT)
    down = client.first(LinkDown)
    assert isinstance(down, LinkDown) and down.error
    assert "aborted" in down.reason and "invalid frame" in down.reason
    assert not client.up.is_set()
    await wait_for(lambda: "crypto binding failed" in caplog.text)
    await wait_for(lambda: not bench.app.connections)


class RecordedRoutes:
    """Stands in for the kernel's routes into the TUN: remembers what is installed."""

    def __init__(self) -> None:
        self.installed: dict[IPv4Network | IPv6Network, int | None] = {}

    def add(self, network: IPv4Network | IPv6Network, mtu: int | None = None) -> None:
        self.installed[network] = mtu

    def remove(self, network: IPv4Network | IPv6Network) -> None:
        del self.installed[network]

    def hold(self, address: IPv4Address | IPv6Address) -> None:
        """The TUN's own routes cover it (a single server)."""

    def let_go(self, address: IPv4Address | IPv6Address) -> None:
        """As :meth:`hold`."""


async def test_session_below_the_tun_mtu_gets_a_route_with_its_own_mtu(tmp_path: Path) -> None:
    routes = RecordedRoutes()
    bench = await start_bench(
        tmp_path,
        configure=lambda c: dataclasses.replace(c, mru=MAX_MRU, max_peer_mru=MAX_MRU),
        kernel_routes=routes,  # type: ignore[arg-type]
        tun_mtu=MAX_IP_PACKET,
    )
    try:
        large = await bench.connect(mru=MAX_MRU, max_peer_mru=MAX_MRU)
        standard = await bench.connect("bob", "bobpw")
        await asyncio.wait_for(large.up.wait(), TIMEOUT)
        await asyncio.wait_for(standard.up.wait(), TIMEOUT)
        large_up, standard_up = large.first(LinkUp), standard.first(LinkUp)
        assert isinstance(large_up, LinkUp) and isinstance(standard_up, LinkUp)
        assert (large_up.mtu, standard_up.mtu) == (MAX_IP_PACKET, 1500)
        # Only the session that negotiated less than the TUN carries needs a limit of its own.
        assert routes.installed == {IPv4Network(f"{standard_up.local_address}/32"): 1500}
        assert standard.connection is not None
        standard.connection.close()
        await asyncio.wait_for(standard.down.wait(), TIMEOUT)
        await wait_for(lambda: not routes.installed)
    finally:
        await bench.app.shutdown()
        bench.tun.close()
