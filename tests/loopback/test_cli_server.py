"""`pysstp server` start-up errors: one clear line, exit code 1, no traceback, nothing left behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pysstp.cli import main

from helpers.loopback import make_certificate


def server_args(tmp_path: Path, *extra: str) -> list[str]:
    cert, key, _ = make_certificate(tmp_path)
    users = tmp_path / "users.toml"
    users.write_text("")
    return [
        "server", "--cert", str(cert), "--key", str(key), "--users", str(users), "--listen", "127.0.0.1",
        "--control-socket", str(tmp_path / "ctl.sock"), *extra,
    ]  # fmt: skip


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip()


def test_missing_key_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = server_args(tmp_path)
    args[args.index("--key") + 1] = str(tmp_path / "missing.pem")
    code, err = run_cli(args, capsys)
    assert code == 1
    assert "missing.pem" in err and len(err.splitlines()) == 1


def test_key_that_does_not_match_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = server_args(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key, _ = make_certificate(other)
    args[args.index("--key") + 1] = str(other_key)
    code, err = run_cli(args, capsys)
    assert code == 1 and "cannot use certificate" in err


def test_missing_user_database_says_how_to_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = server_args(tmp_path)
    args[args.index("--users") + 1] = str(tmp_path / "nobody.toml")
    code, err = run_cli(args, capsys)
    assert code == 1 and "nobody.toml" in err


@pytest.mark.netns
def test_port_in_use_is_one_line_and_leaves_no_tun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers.namespaces import skip_unless_netns

    skip_unless_netns()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        code, err = run_cli(server_args(tmp_path, "--port", str(port), "--tun-name", "sstp-cli-t"), capsys)
    finally:
        blocker.close()
    assert code == 1 and f"port {port}" in err
    assert not Path("/sys/class/net/sstp-cli-t").exists()


def test_bad_setting_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(server_args(tmp_path, "--pool", "10.0.0.0/33"), capsys)
    assert code in (1, 2) and "10.0.0.0/33" in err
