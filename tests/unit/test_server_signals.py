"""The server's signals in each phase (start-up, running, shutdown), without sending real ones."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from pysstp.server.signals import Signals


async def test_in_start_up_sigterm_stops_once_started_and_reload_or_drain_are_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "pysstp.server")
    with Signals() as signals:
        signals.received(signal.SIGHUP)
        signals.received(signal.SIGUSR2)
        assert not signals.stop.is_set()
        signals.received(signal.SIGTERM)
        assert signals.stop.is_set()
    assert "SIGHUP ignored: still starting" in caplog.text
    assert "SIGUSR2 ignored: still starting" in caplog.text
    assert "SIGTERM during start-up: shutting down once started" in caplog.text


async def test_while_serving_each_signal_does_its_job_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pysstp.server")
    done: list[str] = []
    with Signals() as signals:
        signals.serving(reload=lambda: done.append("reload"), drain=lambda: done.append("drain"))
        signals.received(signal.SIGHUP)
        signals.received(signal.SIGUSR2)
        signals.received(signal.SIGINT)
        assert signals.stop.is_set()
        # Shutting down: nothing but a log line any more.
        signals.received(signal.SIGTERM)
        signals.received(signal.SIGHUP)
        signals.received(signal.SIGUSR2)
    assert done == ["reload", "drain"]
    assert "SIGTERM: already shutting down" in caplog.text
    assert "SIGHUP ignored: shutting down" in caplog.text
    assert "SIGUSR2 ignored: shutting down" in caplog.text


async def test_a_real_sigterm_sets_stop_and_the_default_action_returns_after() -> None:
    with Signals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(signals.stop.wait(), 30)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
