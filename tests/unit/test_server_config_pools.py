"""Named address pools (``[pools.NAME]``, ``--named-pool NAME=CIDR``) for RADIUS Framed-Pool."""

from __future__ import annotations

import argparse
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from pysstp.errors import ConfigError
from pysstp.server.config import NamedPoolSettings, ServerSettings, add_arguments, load, settings_from_args

CERT_FLAGS = ["--cert", "/etc/pysstp/fullchain.pem", "--key", "/etc/pysstp/key.pem"]


def settings(*flags: str) -> ServerSettings:
    parser = argparse.ArgumentParser(prog="pysstp server")
    add_arguments(parser)
    return settings_from_args(parser.parse_args([*CERT_FLAGS, *flags]))


@pytest.fixture
def toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return Path("server.toml")


def test_no_named_pools_by_default() -> None:
    assert ServerSettings().pools == ()


def test_named_pools_from_the_file(toml_file: Path) -> None:
    toml_file.write_text(
        '[pool]\nnetwork = "10.77.0.0/24"\n'
        '[pools.office]\nnetwork = "10.78.0.0/24"\n'
        '[pools.lab]\nnetwork = "10.79.0.0/28"\n'
    )
    result = settings("--config", str(toml_file))
    assert result.pools == (
        NamedPoolSettings("office", IPv4Network("10.78.0.0/24")),
        NamedPoolSettings("lab", IPv4Network("10.79.0.0/28")),
    )


def test_named_pools_from_flags_replace_the_files(toml_file: Path) -> None:
    toml_file.write_text('[pools.office]\nnetwork = "10.78.0.0/24"\n')
    result = settings("--config", str(toml_file), "--named-pool", "lab=10.79.0.0/24")
    assert result.pools == (NamedPoolSettings("lab", IPv4Network("10.79.0.0/24")),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[pools]\noffice = "10.78.0.0/24"\n', 'pools: office: expected a table with network = "CIDR"'),
        ("[pools.office]\n", 'pools: office: needs network = "CIDR"'),
        ('[pools.office]\nnetwork = "10.78.0.0/24"\nmask = 1\n', "pools: office: unknown key 'mask'"),
        ('[pools.office]\nnetwork = "10.78.0.0/33"\n', "pools: office: network: '10.78.0.0/33' is not"),
        ('pools = ["10.78.0.0/24"]\n', "pools: expected [pools.NAME] tables"),
    ],
)
def test_file_mistakes(toml_file: Path, text: str, message: str) -> None:
    toml_file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(toml_file)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--named-pool", "10.78.0.0/24"], "--named-pool: expected NAME=CIDR, not '10.78.0.0/24'"),
        (
            ["--named-pool", "office=10.77.0.128/25"],
            "pools.office: 10.77.0.128/25 overlaps pool.network 10.77.0.0/24; give each pool its own network",
        ),
        (
            ["--named-pool", "a=10.78.0.0/24", "--named-pool", "b=10.78.0.0/16"],
            "pools.b: 10.78.0.0/16 overlaps pools.a 10.78.0.0/24",
        ),
        (["--named-pool", "tiny=10.78.0.0/31"], "address pool 10.78.0.0/31 is too small"),
        (
            ["--named-pool", "a=10.78.0.0/24", "--forwarding", "nat", "--egress", "eth0"],
            'named pools need forwarding.mode = "route"',
        ),
    ],
)
def test_checked_mistakes(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(*flags)
    assert message in str(info.value)
