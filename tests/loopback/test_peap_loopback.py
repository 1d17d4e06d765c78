"""``pysstp connect --auth peap`` against a server configured with ``auth_methods = ["peap"]``, both built
from their real settings (command line, server.toml) and run in-process on 127.0.0.1: no root needed (the
client's tunnel is a stand-in)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from pysstp.cli import build_parser
from pysstp.client.app import ClientApp
from pysstp.client.dial import ConnectError
from pysstp.client.settings import settings_from_args
from pysstp.commands.connect import read_login
from pysstp.link import ServerConfig
from pysstp.server.build import load_peap
from pysstp.server.config import add_arguments
from pysstp.server.config import settings_from_args as server_settings_from_args

from helpers.loopback import SERVER_ADDRESS, Bench, start_bench

TIMEOUT = 10


class Tunnel:
    """Stands in for :class:`pysstp.client.tunnel.Tunnel`: records the call coming up."""

    def __init__(self) -> None:
        self.applied: list[object] = []
        self.connection: object = None

    def pin_server(self, server_ip: str) -> None:
        pass

    def apply(self, up: object) -> None:
        self.applied.append(up)

    def network_up(self, event: object) -> None:
        pass

    def ipv6_address(self) -> None:
        return None

    def attach(self, connection: object) -> None:
        self.connection = connection

    def deliver(self, connection: object, packets: object) -> None:
        pass

    def set_backpressure(self, paused: bool) -> None:
        pass


async def peap_bench(tmp_path: Path) -> Bench:
    """The in-process server, its PEAP settings read from a server.toml by the server's own loader."""
    bench = await start_bench(tmp_path)
    config = tmp_path / "server.toml"
    config.write_text('auth_methods = ["peap"]\n')
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    key = bench.cert_path.with_name("key.pem")  # next to the certificate, as make_certificate writes it
    args = parser.parse_args(["--config", str(config), "--cert", str(bench.cert_path), "--key", str(key)])
    settings = server_settings_from_args(args)
    peap = load_peap(settings)
    assert peap is not None

    def configure(link_config: ServerConfig) -> ServerConfig:
        return dataclasses.replace(link_config, auth_methods=settings.auth_methods, peap=peap)

    bench.app.link_config = configure(bench.app.link_config)
    return bench


@pytest.fixture
async def bench(tmp_path: Path) -> Bench:
    bench = await peap_bench(tmp_path)
    yield bench  # type: ignore[misc]
    await bench.app.shutdown()
    bench.tun.close()


def connect_args(bench: Bench, password_file: Path, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args(
        [
            "connect", f"127.0.0.1:{bench.port}", "--sni", "sstp.test",
            "--ca-file", str(bench.cert_path), "--auth", "peap", "--user", "alice",
            "--password-file", str(password_file), *extra,
        ]
    )  # fmt: skip


async def run_client(bench: Bench, tmp_path: Path, password: str, *extra: str) -> Tunnel:
    """Run the client until its call is up, then stop it (a failure raises :class:`ConnectError`)."""
    password_file = tmp_path / "password"
    password_file.write_text(password + "\n")
    settings = settings_from_args(connect_args(bench, password_file, *extra))
    tunnel, stop = Tunnel(), asyncio.Event()
    app = ClientApp(settings, read_login(settings, {}), tunnel, stop)  # type: ignore[arg-type]
    task = asyncio.ensure_future(app.run())
    for _ in range(TIMEOUT * 100):
        if tunnel.applied or task.done():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, TIMEOUT)
    return tunnel


async def test_connect_with_peap(bench: Bench, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pysstp")
    tunnel = await run_client(bench, tmp_path, "alicepw")
    [up] = tunnel.applied
    assert up.peer_address == SERVER_ADDRESS  # type: ignore[attr-defined]
    assert "LCP     link open: authentication PEAP" in caplog.text
    assert f"via sstp0, DNS {SERVER_ADDRESS}, PEAP" in caplog.text
    assert "SHA-256 binding" in caplog.text  # the server checked our Compound-MAC-derived HLAK


async def test_connect_with_peap_wrong_password(
    bench: Bench, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pysstp")
    with pytest.raises(ConnectError) as caught:
        await run_client(bench, tmp_path, "wrong")
    assert str(caught.value) == (
        "authentication failed (E=691) with PEAP as 'alice': wrong user name or password"
    )
    assert "authentication failed for 'alice': wrong password for user 'alice' (E=691)" in caplog.text


async def test_connect_with_peap_refuses_a_server_certificate_for_another_name(
    bench: Bench, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pysstp")
    with pytest.raises(ConnectError) as caught:
        await run_client(bench, tmp_path, "alicepw", "--eap-server-name", "other.test")
    assert "server's EAP certificate refused: certificate is not for 'other.test'" in str(caught.value)
    assert "peer ended the PEAP handshake" in caplog.text
