"""The real client (dial, TLS checks, the app's call flow) against the in-process server on 127.0.0.1.

No root needed: the client's tunnel is a stand-in that records what it was asked to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from pysstp.client.app import ClientApp
from pysstp.client.dial import ConnectError, dial
from pysstp.client.settings import ClientSettings, TlsSettings
from pysstp.client.tls import make_context
from pysstp.connection import LinkConnection
from pysstp.link import ClientConfig, LinkUp
from pysstp.ppp.constants import AuthMethod
from pysstp.ppp.events import Ipv4Up, Ipv6Up

from helpers.loopback import SERVER_ADDRESS, Bench, start_bench

TIMEOUT = 10


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
        password="alicepw",
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
    import ssl

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
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ClientSettings(host="127.0.0.1", port=port, user="a", password="b")
    app = ClientApp(settings, RecordingTunnel(), asyncio.Event())  # type: ignore[arg-type]
    with pytest.raises(ConnectError, match=f"TCP: 127.0.0.1:{port} refused the connection: check the host"):
        await app.run()


async def test_app_reports_each_step_then_the_summary_and_hangs_up_on_stop(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pysstp.client")
    tunnel = RecordingTunnel()
    stop = asyncio.Event()
    settings = dataclasses.replace(client_settings(bench, ca_file=bench.cert_path), host="127.0.0.1")
    app = ClientApp(settings, tunnel, stop)  # type: ignore[arg-type]
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
    settings = dataclasses.replace(
        client_settings(bench, ca_file=bench.cert_path), password="wrong", reconnect=True
    )
    app = ClientApp(settings, RecordingTunnel(), asyncio.Event())  # type: ignore[arg-type]
    with pytest.raises(ConnectError) as caught:
        await asyncio.wait_for(app.run(), TIMEOUT)
    assert str(caught.value) == (
        "authentication failed (E=691) with MS-CHAPv2 as 'alice': wrong user name or password"
    )


async def test_forced_pap_against_a_server_without_it(bench: Bench) -> None:
    settings = dataclasses.replace(
        client_settings(bench, ca_file=bench.cert_path), auth_methods=(AuthMethod.PAP,)
    )
    app = ClientApp(settings, RecordingTunnel(), asyncio.Event())  # type: ignore[arg-type]
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
    app = ClientApp(settings, RecordingTunnel(), asyncio.Event())  # type: ignore[arg-type]
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
        task = asyncio.ensure_future(ClientApp(settings, tunnel, stop).run())  # type: ignore[arg-type]
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
            await ClientApp(wrong, RecordingTunnel(), asyncio.Event()).run()  # type: ignore[arg-type]
    finally:
        proxy.close()
