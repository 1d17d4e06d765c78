"""The real client (dial, TLS checks, the app's call flow) against the in-process server on 127.0.0.1.

No root needed: the client's tunnel is a stand-in that records what it was asked to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import io
import logging
import re
import signal
import socket
import ssl
from collections.abc import Callable
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from pysstp.client import live
from pysstp.client.app import ClientApp
from pysstp.client.dial import ConnectError, dial, open_tcp
from pysstp.client.login import Login
from pysstp.client.settings import ClientSettings, TlsSettings
from pysstp.client.tls import make_context
from pysstp.commands import connect as connect_command
from pysstp.connection import LinkConnection
from pysstp.errors import ConfigError
from pysstp.link import SERVER_SHUTTING_DOWN, ClientConfig, LinkUp
from pysstp.ppp.constants import AuthMethod
from pysstp.ppp.events import Ipv4Up, Ipv6Up
from pysstp.server.control import kick

from helpers.loopback import SERVER_ADDRESS, Bench, make_certificate, start_bench

TIMEOUT = 10
ALICE = Login("alice", "alicepw")


class RecordingTunnel:
    """Stands in for :class:`pysstp.client.tunnel.Tunnel`."""

    def __init__(self) -> None:
        self.pinned: list[str] = []
        self.applied: list[LinkUp] = []
        self.networks: list[Ipv4Up | Ipv6Up] = []
        self.connection: LinkConnection | None = None
        self.received: list[bytes] = []
        self.closed = False

    def pin_server(self, server_ip: str) -> None:
        self.pinned.append(server_ip)

    def apply(self, up: LinkUp) -> None:
        self.applied.append(up)

    def network_up(self, event: Ipv4Up | Ipv6Up) -> None:
        self.networks.append(event)

    def ipv6_address(self) -> IPv6Address | None:
        return None

    def attach(self, connection: LinkConnection | None) -> None:
        self.connection = connection

    def deliver(self, connection: LinkConnection, packets: list[memoryview]) -> None:
        self.received.extend(map(bytes, packets))

    def set_backpressure(self, paused: bool) -> None:
        pass


@pytest.fixture
async def bench(tmp_path: Path) -> Bench:
    bench = await start_bench(tmp_path)
    yield bench  # type: ignore[misc]
    await bench.app.shutdown()
    bench.tun.close()


def client_settings(bench: Bench, **tls: object) -> ClientSettings:
    return ClientSettings(
        host="127.0.0.1",
        port=bench.port,
        user="alice",
        tls=TlsSettings(**tls),  # type: ignore[arg-type]
    )


async def dial_with(bench: Bench, tls: TlsSettings, host: str = "sstp.test") -> LinkUp:
    """Dial 127.0.0.1 with these TLS settings, expecting ``host`` in the certificate; return LinkUp."""
    up: asyncio.Future[LinkUp] = asyncio.get_running_loop().create_future()

    def on_event(connection: LinkConnection, event: object) -> None:
        if isinstance(event, LinkUp) and not up.done():
            up.set_result(event)

    connection = await dial(
        ClientConfig(host=host, username="alice", password="alicepw"),
        "127.0.0.1",
        bench.port,
        make_context(tls),
        deliver=lambda connection, packets: None,
        on_event=on_event,
        server_hostname="" if tls.no_sni else (tls.sni or host),
        tls=tls,
    )
    try:
        return await asyncio.wait_for(up, TIMEOUT)
    finally:
        connection.close()


def pin_of(bench: Bench) -> bytes:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(bench.cert_path.read_text())).digest()


async def test_self_signed_is_refused_by_default_with_the_flag_that_accepts_it(bench: Bench) -> None:
    with pytest.raises(ConnectError) as caught:
        await dial_with(bench, TlsSettings())
    message = str(caught.value)
    assert caught.value.retry is False
    assert message.startswith(f"TLS: the certificate of 127.0.0.1:{bench.port} was refused: self")
    assert "subject:  CN=sstp.test" in message and "issuer:   CN=sstp.test" in message
    assert "valid:" in message
    assert f"--pin-sha256 {pin_of(bench).hex()}" in message
    assert not bench.app.connections  # nothing of SSTP was said


async def test_ca_file_accepts_it(bench: Bench) -> None:
    up = await dial_with(bench, TlsSettings(ca_file=bench.cert_path))
    assert up.peer_address == SERVER_ADDRESS


async def test_right_pin_accepts_it(bench: Bench) -> None:
    up = await dial_with(bench, TlsSettings(pin_sha256=pin_of(bench)))
    assert up.local_address is not None


async def test_wrong_pin_is_refused_before_anything_is_sent(bench: Bench) -> None:
    with pytest.raises(ConnectError) as caught:
        await dial_with(bench, TlsSettings(pin_sha256=bytes(32)))
    message = str(caught.value)
    assert "not the one given with --pin-sha256" in message
    assert f"--pin-sha256 {pin_of(bench).hex()}" in message
    await asyncio.sleep(0.1)
    assert bench.app.connections == set() or all(not c.link.http_done for c in bench.app.connections)


async def test_name_mismatch_is_refused(bench: Bench) -> None:
    with pytest.raises(ConnectError, match="Hostname mismatch") as caught:
        await dial_with(bench, TlsSettings(ca_file=bench.cert_path, sni="other.test"), host="other.test")
    assert "--pin-sha256" in str(caught.value)


async def test_without_sni_the_name_is_still_checked(bench: Bench) -> None:
    await dial_with(bench, TlsSettings(ca_file=bench.cert_path, no_sni=True))
    with pytest.raises(ConnectError, match=r"not valid for the name 'other\.test'"):
        await dial_with(bench, TlsSettings(ca_file=bench.cert_path, no_sni=True), host="other.test")


async def test_tls_min_13(bench: Bench) -> None:
    import ssl

    up = await dial_with(bench, TlsSettings(ca_file=bench.cert_path, min_version=ssl.TLSVersion.TLSv1_3))
    assert up.local_address is not None


async def test_refused_port_names_host_and_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ClientSettings(host="127.0.0.1", port=port, user="a")
    app = ClientApp(settings, ALICE, RecordingTunnel(), asyncio.Event())  # type: ignore[arg-type]
    with pytest.raises(ConnectError, match=f"TCP: 127.0.0.1:{port} refused the connection: check the host"):
        await app.run()


async def test_app_reports_each_step_then_the_summary_and_hangs_up_on_stop(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.client")
    tunnel = RecordingTunnel()
    stop = asyncio.Event()
    settings = dataclasses.replace(client_settings(bench, ca_file=bench.cert_path), host="127.0.0.1")
    app = ClientApp(settings, ALICE, tunnel, stop)  # type: ignore[arg-type]
    task = asyncio.ensure_future(app.run())
    for _ in range(TIMEOUT * 100):
        if tunnel.connection is not None:
            break
        await asyncio.sleep(0.01)
    assert tunnel.applied and tunnel.applied[0].peer_address == SERVER_ADDRESS
    assert tunnel.pinned == ["127.0.0.1"]
    text = caplog.text
    for layer in ("TCP", "TLS", "HTTP", "SSTP", "LCP", "auth", "binding", "IPCP"):
        assert f" {layer} " in text, layer
    assert "TLSv1.3" in text
    assert f"connected: {tunnel.applied[0].local_address} via sstp0, DNS {SERVER_ADDRESS}, MS-CHAPv2" in text
    assert "SHA-256 binding" in text
    stop.set()
    await asyncio.wait_for(task, TIMEOUT)
    assert tunnel.connection is None
    for _ in range(100):
        if not bench.app.connections:
            break
        await asyncio.sleep(0.01)
    assert not bench.app.connections


async def test_wrong_password_is_final_even_with_reconnect(bench: Bench) -> None:
    settings = dataclasses.replace(client_settings(bench, ca_file=bench.cert_path), reconnect=True)
    app = ClientApp(settings, Login("alice", "wrong"), RecordingTunnel(), asyncio.Event())  # type: ignore[arg-type]
    with pytest.raises(ConnectError) as caught:
        await asyncio.wait_for(app.run(), TIMEOUT)
    assert str(caught.value) == (
        "authentication failed (E=691) with MS-CHAPv2 as 'alice': wrong user name or password"
    )


async def test_forced_pap_against_a_server_without_it(bench: Bench) -> None:
    settings = dataclasses.replace(
        client_settings(bench, ca_file=bench.cert_path), auth_methods=(AuthMethod.PAP,)
    )
    app = ClientApp(settings, ALICE, RecordingTunnel(), asyncio.Event())  # type: ignore[arg-type]
    with pytest.raises(
        ConnectError, match=r"PPP: the server ended the call during LCP negotiation .* --auth"
    ):
        await asyncio.wait_for(app.run(), TIMEOUT)


async def test_reconnect_gives_up_after_max_attempts(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pysstp.client.app.backoff_delay", lambda attempt: 0.01)
    await bench.app.shutdown()
    settings = dataclasses.replace(
        client_settings(bench, ca_file=bench.cert_path), reconnect=True, max_attempts=3
    )
    app = ClientApp(settings, ALICE, RecordingTunnel(), asyncio.Event())  # type: ignore[arg-type]
    with pytest.raises(ConnectError, match="gave up after 3 attempts"):
        await asyncio.wait_for(app.run(), TIMEOUT)


async def start_proxy(credentials: str) -> tuple[asyncio.Server, list[bytes]]:
    """A minimal HTTP CONNECT proxy with Basic auth; records each request head."""
    import base64

    heads: list[bytes] = []
    expected = "Basic " + base64.b64encode(credentials.encode()).decode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        if f"proxy-authorization: {expected}".lower().encode() not in head.lower():
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            writer.close()
            return
        host, port = head.split(b" ")[1].decode().rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    return await asyncio.start_server(handle, "127.0.0.1", 0), heads


async def test_through_an_http_proxy_with_basic_auth(bench: Bench) -> None:
    from pysstp.client.settings import parse_proxy

    proxy, heads = await start_proxy("pu:ppw")
    port = proxy.sockets[0].getsockname()[1]
    try:
        tunnel = RecordingTunnel()
        settings = dataclasses.replace(
            client_settings(bench, ca_file=bench.cert_path),
            proxy=parse_proxy(f"http://pu:ppw@127.0.0.1:{port}"),
        )
        stop = asyncio.Event()
        task = asyncio.ensure_future(ClientApp(settings, ALICE, tunnel, stop).run())  # type: ignore[arg-type]
        for _ in range(TIMEOUT * 100):
            if tunnel.applied:
                break
            await asyncio.sleep(0.01)
        assert tunnel.applied
        assert heads[0].startswith(f"CONNECT 127.0.0.1:{bench.port} HTTP/1.1\r\n".encode())
        assert b"SSTPVERSION: 1.0\r\n" in heads[0]
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)

        wrong = dataclasses.replace(settings, proxy=parse_proxy(f"http://pu:nope@127.0.0.1:{port}"))
        with pytest.raises(ConnectError, match=r"proxy: authentication required or failed .*check the user"):
            await ClientApp(wrong, ALICE, RecordingTunnel(), asyncio.Event()).run()  # type: ignore[arg-type]
    finally:
        proxy.close()


# -- what the user reads (issue 11, part 2) ----------------------------------------------------------


def test_a_missing_or_non_pem_ca_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--ca-file .*/nowhere.pem: cannot read: No such file"):
        make_context(TlsSettings(ca_file=tmp_path / "nowhere.pem"))
    text = tmp_path / "notes.txt"
    text.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"notes.txt: no usable CA certificate in it \(expected PEM"):
        make_context(TlsSettings(ca_file=text))


async def test_an_unreachable_host_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    async def unreachable(sock: socket.socket, address: object) -> None:
        # What asyncio's sock_connect raises: its own text where the system's would be.
        raise OSError(errno.EHOSTUNREACH, f"Connect call failed {address}")

    monkeypatch.setattr(asyncio.get_running_loop(), "sock_connect", unreachable)
    with pytest.raises(ConnectError) as caught:
        await open_tcp("127.0.0.1", 443, None, TIMEOUT, lambda layer, text: None)
    assert str(caught.value) == (
        "TCP: cannot connect to 127.0.0.1:443: no route to host: check the host's address and this "
        "machine's network connection and routes"
    )


async def start_https(tmp_path: Path, answer: bytes) -> asyncio.Server:
    """An HTTPS server that is not an SSTP server: it reads the request, writes ``answer`` and closes."""
    cert, key, _ = make_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            "HTTP: HTTP handshake failed: HTTP status 404",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "SSTP: the server accepted the SSTP request"),
        (b"", "with no TLS alert and no HTTP answer: either it is not an SSTP server"),
    ],
)
async def test_an_https_server_that_is_not_sstp_is_named_as_such(
    tmp_path: Path, answer: bytes, said: str
) -> None:
    server = await start_https(tmp_path, answer)
    settings = ClientSettings(
        host="127.0.0.1",
        port=server.sockets[0].getsockname()[1],
        user="alice",
        tls=TlsSettings(ca_file=tmp_path / "cert.pem"),
    )
    try:
        with pytest.raises(ConnectError) as caught:
            await asyncio.wait_for(
                ClientApp(settings, ALICE, RecordingTunnel(), asyncio.Event()).run(), TIMEOUT
            )  # type: ignore[arg-type]
    finally:
        server.close()
    assert said in str(caught.value)
    assert "not an SSTP server" in str(caught.value)
    assert "client certificate" not in str(caught.value) or answer == b""


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(TIMEOUT * 100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_kick_says_the_servers_reason_and_is_not_redialed(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.client")
    tunnel = RecordingTunnel()
    settings = dataclasses.replace(client_settings(bench, ca_file=bench.cert_path), reconnect=True)
    task = asyncio.ensure_future(ClientApp(settings, ALICE, tunnel, asyncio.Event()).run())  # type: ignore[arg-type]
    await wait_for(lambda: tunnel.connection is not None, "the call")
    assert kick(bench.app, "alice") == 1
    with pytest.raises(ConnectError) as caught:
        await asyncio.wait_for(task, TIMEOUT)
    assert str(caught.value) == (
        "the server ended the call: peer sent Terminate-Request: disconnected by the administrator; "
        "--reconnect-after-kick dials again after this too"
    )
    assert len(tunnel.applied) == 1
    assert re.search(r"call ended after 0:00:\d\d: received \d+ B, sent \d+ B", caplog.text)
    assert "connection lost" not in caplog.text


async def test_reconnect_after_kick_dials_again(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pysstp.client.app.backoff_delay", lambda attempt: 0.01)
    tunnel = RecordingTunnel()
    stop = asyncio.Event()
    settings = dataclasses.replace(
        client_settings(bench, ca_file=bench.cert_path), reconnect=True, reconnect_after_kick=True
    )
    task = asyncio.ensure_future(ClientApp(settings, ALICE, tunnel, stop).run())  # type: ignore[arg-type]
    await wait_for(lambda: len(tunnel.applied) == 1, "the call")
    kick(bench.app, "alice")
    await wait_for(lambda: len(tunnel.applied) == 2, "the second call")
    stop.set()
    await asyncio.wait_for(task, TIMEOUT)


async def test_a_server_shutdown_is_redialed_with_reconnect_alone(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pysstp.client.app.backoff_delay", lambda attempt: 0.01)
    tunnel = RecordingTunnel()
    stop = asyncio.Event()
    settings = dataclasses.replace(client_settings(bench, ca_file=bench.cert_path), reconnect=True)
    task = asyncio.ensure_future(ClientApp(settings, ALICE, tunnel, stop).run())  # type: ignore[arg-type]
    await wait_for(lambda: len(tunnel.applied) == 1, "the call")
    (connection,) = bench.app.connections
    connection.close(SERVER_SHUTTING_DOWN)
    await wait_for(lambda: len(tunnel.applied) == 2, "the second call")
    stop.set()
    await asyncio.wait_for(task, TIMEOUT)


async def test_a_wrong_password_is_said_once(bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.client")
    settings = client_settings(bench, ca_file=bench.cert_path)
    with pytest.raises(ConnectError, match="wrong user name or password"):
        await asyncio.wait_for(
            ClientApp(settings, Login("alice", "wrong"), RecordingTunnel(), asyncio.Event()).run(), TIMEOUT
        )  # type: ignore[arg-type]
    said = [r for r in caplog.records if r.name == "pysstp.client" and "wrong" in r.getMessage()]
    assert said == []  # only the error line says it


async def test_a_server_without_ipv6_is_not_a_warning(bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.client")
    tunnel = RecordingTunnel()
    stop = asyncio.Event()
    settings = client_settings(bench, ca_file=bench.cert_path)
    task = asyncio.ensure_future(ClientApp(settings, ALICE, tunnel, stop).run())  # type: ignore[arg-type]
    await wait_for(lambda: tunnel.connection is not None, "the call")
    stop.set()
    await asyncio.wait_for(task, TIMEOUT)
    client = [record for record in caplog.records if record.name == "pysstp.client"]
    (line,) = [record for record in client if "IPv6" in record.getMessage()]
    assert line.levelno == logging.INFO
    assert "the server does not offer IPv6 (it rejected IPv6CP); IPv4 only" in line.getMessage()
    assert not [record for record in client if record.levelno >= logging.WARNING]


async def test_ctrl_c_before_the_call_is_up_exits_130_without_a_live_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "INTERVAL", 0.01)
    stdout = io.StringIO()
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr(connect_command, "show_live_line", lambda settings: True)
    # A server that accepts TCP and never answers TLS: the client waits in the handshake.
    accepted: list[asyncio.StreamWriter] = []
    mute = await asyncio.start_server(lambda reader, writer: accepted.append(writer), "127.0.0.1", 0)
    settings = ClientSettings(host="127.0.0.1", port=mute.sockets[0].getsockname()[1], user="alice")
    task = asyncio.ensure_future(connect_command.connect(settings, ALICE))
    try:
        await wait_for(lambda: bool(accepted), "the TCP connection")
        await asyncio.sleep(0.1)  # ten redraws of a live line that must not be there
        signal.raise_signal(signal.SIGINT)
        assert await asyncio.wait_for(task, TIMEOUT) == 130
    finally:
        mute.close()
    assert stdout.getvalue() == ""
