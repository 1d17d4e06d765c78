"""``pysstp server`` takes the hard open-file limit and says when even that is too low for its sessions."""

from __future__ import annotations

import logging
import resource

import pytest

from pysstp.commands import server
from pysstp.commands.server import FILES_BESIDES_SESSIONS, raise_file_limit


class FakeLimits:
    """RLIMIT_NOFILE as the kernel would keep it, without changing the test process's own."""

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.limits = (soft, hard)
        self.refuse = refuse

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        if self.refuse:
            raise ValueError("not allowed")
        self.limits = limits


def use(monkeypatch: pytest.MonkeyPatch, fake: FakeLimits) -> FakeLimits:
    monkeypatch.setattr(server.resource, "getrlimit", fake.getrlimit)
    monkeypatch.setattr(server.resource, "setrlimit", fake.setrlimit)
    return fake


def test_soft_limit_is_raised_to_the_hard_limit_quietly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = use(monkeypatch, FakeLimits(1024, 524288))
    with caplog.at_level(logging.WARNING):
        raise_file_limit(100_000)
    assert fake.limits == (524288, 524288)
    assert caplog.records == []


def test_a_hard_limit_below_max_sessions_is_reported_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = use(monkeypatch, FakeLimits(1024, 20000))
    with caplog.at_level(logging.WARNING):
        raise_file_limit(100_000)
    assert fake.limits == (20000, 20000)
    (record,) = caplog.records
    message = record.getMessage()
    assert "20000" in message and "max_sessions = 100000" in message
    assert str(100_000 + FILES_BESIDES_SESSIONS) in message and "LimitNOFILE" in message


def test_a_refused_raise_is_reported_with_the_limit_that_stays(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = use(monkeypatch, FakeLimits(1024, 4096, refuse=True))
    with caplog.at_level(logging.WARNING):
        raise_file_limit(1000)
    assert fake.limits == (1024, 4096)
    first, second = (record.getMessage() for record in caplog.records)
    assert "cannot raise the open-file limit from 1024 to 4096" in first
    assert "(1024)" in second


def test_enough_files_for_the_default_sessions_says_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use(monkeypatch, FakeLimits(4096, 4096))
    with caplog.at_level(logging.WARNING):
        raise_file_limit(1000)
    assert caplog.records == []


def test_a_worker_takes_the_hard_limit_and_leaves_the_warning_to_the_supervisor(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = use(monkeypatch, FakeLimits(1024, 2048))
    with caplog.at_level(logging.WARNING):
        raise_file_limit()
    assert fake.limits == (2048, 2048)
    assert caplog.records == []


def test_with_workers_each_process_needs_its_share(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use(monkeypatch, FakeLimits(20000, 20000))
    with caplog.at_level(logging.WARNING):
        raise_file_limit(39_000, processes=2)
    assert caplog.records == []
    with caplog.at_level(logging.WARNING):
        raise_file_limit(100_000, processes=2)
    (record,) = caplog.records
    assert f"({50_000 + FILES_BESIDES_SESSIONS} in each of 2 workers)" in record.getMessage()
