"""``--daemon`` settings, the PID file and ``pysstp disconnect`` without a running client (no root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pysstp.cli import main
from pysstp.client import daemon
from pysstp.client.daemon import fork_daemon, pid_file_held, running_pid
from pysstp.client.settings import build_settings, default_pid_file
from pysstp.errors import ConfigError, SystemSetupError

BASE = {"server": ("vpn.example.com", 443), "user": "alice"}


def test_daemon_gets_a_pid_file_per_ifname() -> None:
    settings = build_settings({**BASE, "daemon": True, "ifname": "work0"}, {})
    assert settings.pid_file == default_pid_file("work0") == Path("/run/pysstp/connect-work0.pid")
    assert build_settings(BASE, {}).pid_file is None  # the foreground writes none unless asked


def test_log_file_needs_daemon() -> None:
    with pytest.raises(ConfigError, match="--log-file is for --daemon"):
        build_settings({**BASE, "log-file": Path("/tmp/x.log")}, {})


def test_pid_file_is_written_and_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "sub" / "connect.pid"
    with pid_file_held(pid_file):
        assert pid_file.read_text() == f"{os.getpid()}\n"
    assert not pid_file.exists()


def test_stale_pid_file_is_not_a_running_client(tmp_path: Path) -> None:
    pid_file = tmp_path / "connect.pid"
    pid_file.write_text("1\n")  # init: alive, but not pysstp
    assert running_pid(pid_file) is None


def test_disconnect_without_a_client_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["disconnect", "--pid-file", str(tmp_path / "none.pid")]) == 1
    assert "no pysstp connect is running (no PID file" in capsys.readouterr().err
    stale = tmp_path / "stale.pid"
    stale.write_text("999999999\n")
    assert main(["disconnect", "--pid-file", str(stale)]) == 1
    assert "removed the stale PID file" in capsys.readouterr().err and not stale.exists()


def test_a_wrong_pid_file_is_neither_removed_nor_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "passwd"
    wrong.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert main(["disconnect", "--pid-file", str(wrong)]) == 1
    assert (
        capsys.readouterr().err
        == f"pysstp: {wrong} is not a PID file (it holds no process number); check --pid-file\n"
    )
    with pytest.raises(SystemSetupError, match="is not a PID file"), pid_file_held(wrong):
        pass
    assert wrong.read_text() == "root:x:0:0:root:/root:/bin/bash\n"


def test_disconnect_of_another_users_client_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(pid: int, signum: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(daemon, "running_pid", lambda pid_file: 4242)
    monkeypatch.setattr(daemon.os, "kill", refuse)
    assert main(["disconnect", "--pid-file", str(tmp_path / "connect.pid")]) == 1
    assert capsys.readouterr().err == (
        "pysstp: not allowed to stop pysstp connect (PID 4242): it runs as another user; use sudo\n"
    )


def test_a_log_file_that_cannot_be_written_fails_before_the_fork(tmp_path: Path) -> None:
    with pytest.raises(
        SystemSetupError, match=r"nowhere/connect\.log: cannot write the log file: No such file"
    ):
        fork_daemon(tmp_path / "nowhere" / "connect.log")
