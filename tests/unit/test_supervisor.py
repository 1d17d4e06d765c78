"""The supervisor's pure parts: worker TUN names, how many workers, merged control answers, settings
handed to a worker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pysstp.server.config import ServerSettings
from pysstp.server.supervisor import (
    decode_settings,
    merge_answers,
    worker_count,
    worker_tun_name,
    worker_tun_pattern,
)
from pysstp.server.workerchannel import pack


def test_worker_tun_names_fit_the_kernel_and_share_a_prefix() -> None:
    assert [worker_tun_name("sstp0", i) for i in (0, 1, 63)] == ["sstp0-0", "sstp0-1", "sstp0-63"]
    assert worker_tun_pattern("sstp0") == "sstp0-*"
    assert worker_tun_name("a-very-long-tun", 63) == "a-very-long--63"
    assert worker_tun_name("a-very-long-tun", 0) == "a-very-long--0"
    assert worker_tun_name("sstp%d", 2) == "sstp-2"
    assert worker_tun_pattern("a-very-long-tun") == "a-very-long--*"


def test_auto_is_one_worker_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert worker_count(dataclasses.replace(ServerSettings(), workers="auto")) == 8
    assert worker_count(dataclasses.replace(ServerSettings(), workers=3)) == 3
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert worker_count(dataclasses.replace(ServerSettings(), workers="auto")) == 1


def test_settings_reach_a_worker_unchanged() -> None:
    settings = dataclasses.replace(ServerSettings(), workers=2, users=Path("/etc/pysstp/users.toml"))
    assert decode_settings(pack(settings)) == settings


def test_status_answers_are_joined_and_counted() -> None:
    first = {
        "ok": True,
        "backend": "local",
        "sessions": [{"user": "b", "started": 2.0, "worker": 0}],
        "server": {"worker": 0, "pid": 10, "connects": 3, "failures": {"authentication": 1}},
        "kicked": 1,
        "draining": False,
    }
    second = {
        "ok": True,
        "backend": "local",
        "sessions": [{"user": "a", "started": 1.0, "worker": 1}],
        "server": {"worker": 1, "pid": 11, "connects": 4, "failures": {"authentication": 2, "address": 1}},
        "kicked": 0,
        "draining": False,
    }
    merged = merge_answers([first, second])
    assert [row["user"] for row in merged["sessions"]] == ["a", "b"]  # by start, whichever worker
    assert merged["server"] == {
        "worker": 0,
        "pid": 10,
        "connects": 7,
        "failures": {"authentication": 3, "address": 1},
    }
    assert (merged["kicked"], merged["backend"], merged["draining"]) == (1, "local", False)


def test_an_error_from_any_worker_is_the_answer() -> None:
    error = {"ok": False, "error": "kick needs a 'target' (user name or address)"}
    assert merge_answers([{"ok": True, "kicked": 0}, error]) == error
    assert merge_answers([]) == {"ok": False, "error": "no worker is running"}
