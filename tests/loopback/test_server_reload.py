"""SIGHUP: server.toml, the users file and the certificates read again, checked, then applied or kept
(the real asyncio server over TLS on 127.0.0.1; the reload is called as the signal handler calls it)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from pysstp.aaa.userdb import UserDatabase
from pysstp.link import LinkUp
from pysstp.ppp.constants import AuthMethod
from pysstp.server import reload as server_reload
from pysstp.server.config import _BY_KEY, ServerSettings, settings_from_args
from pysstp.server.pool import AddressPool
from pysstp.server.reload import RESTART_SETTINGS, Reloader, setting_keys

from helpers.loopback import POOL, SERVER_ADDRESS, Bench, make_certificate, start_bench

TIMEOUT = 10

BASE = """\
users = "users.toml"
[tls]
cert = "cert.pem"
key = "key.pem"
[pool]
network = "10.77.0.0/24"
dns = ["10.77.0.1"]
"""


@dataclass
class Setup:
    bench: Bench
    config: Path
    reloader: Reloader
    log_setups: list[tuple[str, str]]


def read(config: Path) -> ServerSettings:
    """What ``pysstp server --config FILE`` reads, as its SIGHUP handler reads it again."""
    return settings_from_args(argparse.Namespace(config=config))


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    users = UserDatabase(tmp_path / "users.toml", create=True)
    users.add("alice", "alicepw")
    bench = await start_bench(tmp_path, credentials=users)
    config = tmp_path / "server.toml"
    config.write_text(BASE)
    log_setups: list[tuple[str, str]] = []
    # The real one would take the root logger's handlers away from caplog.
    monkeypatch.setattr(server_reload, "setup_logging", lambda *a: log_setups.append(a))
    reloader = Reloader(
        bench.app, users, AddressPool(POOL, SERVER_ADDRESS), read(config), lambda: read(config)
    )
    yield Setup(bench, config, reloader, log_setups)
    await bench.app.shutdown()
    bench.tun.close()


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pysstp.server"]


async def test_live_settings_apply_and_each_restart_setting_is_named_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.config.write_text(
        "port = 8443\ntun_name = 'sstp9'\nmru = 1400\n"
        + BASE.replace('"10.77.0.1"', '"9.9.9.9"')
        + "[limits]\nmax_sessions = 5\nidle_timeout = 600\nlogin_delay = 0.5\n[log]\nlevel = 'debug'\n"
    )
    with caplog.at_level(logging.INFO, "pysstp.server"):
        setup.reloader.reload()
    app = setup.bench.app
    assert app.dns == (IPv4Address("9.9.9.9"),)
    assert app.limits.max_sessions == 5
    assert app.idle_timeout == 600 and app._idle_timer is not None
    assert app.backoff.base == 0.5
    assert setup.log_setups == [("debug", "text")]
    assert app.link_config.mru == ServerSettings().mru  # new calls must still fit the TUN as it is
    assert messages(caplog) == [
        "reload: port changed; restart to apply",
        "reload: tun_name changed; restart to apply",
        "reload: mru changed; restart to apply",
        "reloaded users (1), the certificates and the CRLs; changed: "
        "pool.dns, limits.max_sessions, limits.idle_timeout, limits.login_delay, log.level",
    ]


async def test_a_renewed_certificate_and_new_auth_methods_apply_to_new_calls(
    setup: Setup, tmp_path: Path
) -> None:
    first = await setup.bench.connect()
    await asyncio.wait_for(first.up.wait(), TIMEOUT)
    renewed = tmp_path / "renewed"
    renewed.mkdir()
    new_cert, new_key, _ = make_certificate(renewed)
    (tmp_path / "cert.pem").write_bytes(new_cert.read_bytes())
    (tmp_path / "key.pem").write_bytes(new_key.read_bytes())
    setup.config.write_text('auth_methods = ["pap"]\n' + BASE)
    setup.reloader.reload()
    setup.bench.client_context = ssl.create_default_context(cafile=str(new_cert))  # trusts only the new one
    second = await setup.bench.connect(auth_methods=(AuthMethod.PAP,))
    await asyncio.wait_for(second.up.wait(), TIMEOUT)
    up = second.first(LinkUp)
    assert isinstance(up, LinkUp) and up.auth_method is AuthMethod.PAP
    assert not first.down.is_set()


async def test_a_broken_config_keeps_the_running_one_with_one_line(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.config.write_text(BASE.replace("dns", "dnss"))
    with caplog.at_level(logging.INFO, "pysstp.server"):
        setup.reloader.reload()
    assert messages(caplog) == [
        f"reload: {setup.config}: unknown setting 'pool.dnss' (did you mean 'pool.dns'?); "
        "keeping the running configuration"
    ]
    assert setup.bench.app.dns == (SERVER_ADDRESS,)


async def test_broken_files_are_each_named_and_nothing_is_applied(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "users.toml").write_text("[users.bob]\n")
    (tmp_path / "key.pem").unlink()
    setup.config.write_text(BASE.replace('"10.77.0.1"', '"9.9.9.9"'))
    with caplog.at_level(logging.INFO, "pysstp.server"):
        setup.reloader.reload()
    lines = messages(caplog)
    assert len(lines) == 3, lines
    assert "users.toml: user 'bob': nt_hash is missing" in lines[0]
    assert f"cannot read {tmp_path / 'key.pem'}" in lines[1]
    assert lines[2] == "reload failed; keeping the running configuration"
    assert setup.bench.app.dns == (SERVER_ADDRESS,)
    assert setup.reloader.users.entry("alice") is not None
    client = await setup.bench.connect()  # the running certificate and users still serve
    await asyncio.wait_for(client.up.wait(), TIMEOUT)


async def test_named_pools_apply_at_restart(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    setup.config.write_text(BASE + '[pools.office]\nnetwork = "10.78.0.0/24"\n')
    with caplog.at_level(logging.INFO, "pysstp.server"):
        setup.reloader.reload()
    assert "reload: pools changed; restart to apply" in messages(caplog)
    assert setup.bench.app.pools == {}


async def test_the_metrics_address_applies_at_restart(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    setup.config.write_text(BASE + '[metrics]\nlisten = "127.0.0.1:9150"\n')
    with caplog.at_level(logging.INFO, "pysstp.server"):
        setup.reloader.reload()
    assert "reload: metrics.listen changed; restart to apply" in messages(caplog)


def test_every_setting_is_either_reloaded_or_named_as_needing_a_restart() -> None:
    keys = setting_keys(ServerSettings())
    assert sorted(keys) == sorted(_BY_KEY)
    assert set(RESTART_SETTINGS) <= set(keys)
