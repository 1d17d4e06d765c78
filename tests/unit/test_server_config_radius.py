"""The ``[radius]`` settings: servers as strings, tables and flags, and the messages a mistake gets."""

from __future__ import annotations

import argparse
import re
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from pysstp.cli import main
from pysstp.errors import ConfigError
from pysstp.server.config import RadiusServerEntry, ServerSettings, add_arguments, settings_from_args

from helpers.loopback import make_certificate

CERT_FLAGS = ["--cert", "/etc/pysstp/fullchain.pem", "--key", "/etc/pysstp/key.pem"]


def settings(*flags: str) -> ServerSettings:
    parser = argparse.ArgumentParser(prog="pysstp server")
    add_arguments(parser)
    return settings_from_args(parser.parse_args([*CERT_FLAGS, *flags]))


def test_servers_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        '[radius]\nsecret_file = "shared.secret"\nnas_identifier = "vpn1"\nnas_address = "2001:db8::1"\n'
        "timeout = 2\n"
        'servers = ["10.0.0.5", "[2001:db8::5]:11812", '
        '{ address = "nps.example.test", port = 1645, secret_file = "nps.secret", priority = 1, '
        "retries = 0 }]\n"
    )
    radius = settings("--config", str(path)).radius
    assert radius.servers == (
        RadiusServerEntry("10.0.0.5"),
        RadiusServerEntry("2001:db8::5", 11812),
        RadiusServerEntry(
            "nps.example.test", 1645, secret_file=tmp_path / "nps.secret", priority=1, retries=0
        ),
    )
    assert radius.secret_file == tmp_path / "shared.secret"
    assert (radius.nas_identifier, radius.nas_address, radius.timeout) == (
        "vpn1",
        IPv6Address("2001:db8::1"),
        2,
    )


def test_servers_from_flags() -> None:
    radius = settings(
        "--radius-server", "10.0.0.5:1812", "--radius-server", "2001:db8::9", "--radius-secret-file", "/s"
    ).radius
    assert radius.servers == (RadiusServerEntry("10.0.0.5", 1812), RadiusServerEntry("2001:db8::9"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--radius-server", "10.0.0.5"],
            "RADIUS server 10.0.0.5:1812 has no secret: set radius.secret_file",
        ),
        (["--radius-server", "10.0.0.5:99999", "--radius-secret-file", "/s"], "port must be a number"),
        (["--radius-server", "[::1", "--radius-secret-file", "/s"], "is not HOST[:PORT] or [IPV6]:PORT"),
        (
            ["--radius-server", "a", "--radius-server", "a:1812", "--radius-secret-file", "/s"],
            "lists a:1812 twice",
        ),
        (["--radius-retries", "11"], "between 0 and 10"),
        (["--nas-address", "nas.example"], "is not an IP address"),
    ],
)
def test_mistakes(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings(*flags)


def test_unknown_key_in_a_server_table(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('[[radius.servers]]\naddress = "10.0.0.5"\nsecret = "inline"\n')
    with pytest.raises(ConfigError, match=re.escape("unknown key 'secret' in a radius.servers table")):
        settings("--config", str(path))


def test_check_reads_the_secret_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key, _ = make_certificate(tmp_path)
    code = main(
        [
            "server", "--check", "--cert", str(cert), "--key", str(key),
            "--users", str(tmp_path / "none.toml"),
            "--control-socket", str(tmp_path / "ctl.sock"), "--state-dir", str(tmp_path / "state"),
            "--backend", "radius", "--radius-server", "10.0.0.5",
            "--radius-secret-file", str(tmp_path / "missing.secret"),
        ]
    )  # fmt: skip
    _out, err = capsys.readouterr()
    assert code == 1
    assert "cannot read the RADIUS secret file" in err
    assert "Traceback" not in err


def test_eap_modes() -> None:
    radius = ["--backend", "radius", "--radius-server", "10.0.0.5", "--radius-secret-file", "/s"]
    # Passed through, EAP-TLS is the RADIUS server's business: no local CA needed.
    assert settings("--auth", "eap-tls", "--eap-mode", "pass-through", *radius).eap_mode == "pass-through"
    with pytest.raises(ConfigError, match=re.escape('eap_mode "pass-through" needs backend = "radius"')):
        settings("--eap-mode", "pass-through")
    with pytest.raises(ConfigError, match=re.escape('backend "radius" needs a server')):
        settings("--backend", "radius")
