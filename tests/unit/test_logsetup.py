"""JSON log lines: the fixed keys, and the fields a session's log lines carry."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from pysstp.logsetup import JsonFormatter
from pysstp.server.session import SessionInfo, SessionLog


def record(**extra: object) -> logging.LogRecord:
    made = logging.LogRecord("pysstp.server", logging.WARNING, __file__, 1, "%s: refused", ("peer",), None)
    made.__dict__.update(extra)
    return made


def test_a_plain_line_has_only_the_fixed_keys() -> None:
    line = json.loads(JsonFormatter().format(record()))
    assert set(line) == {"time", "level", "logger", "message"}
    assert (line["level"], line["logger"], line["message"]) == ("warning", "pysstp.server", "peer: refused")


def test_fields_that_are_set_become_keys() -> None:
    line = json.loads(JsonFormatter().format(record(peer="192.0.2.1:5000", event="refused", user=None)))
    assert (line["peer"], line["event"]) == ("192.0.2.1:5000", "refused")
    assert "user" not in line


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[Keep]:
    handler = Keep()
    logger = logging.getLogger("pysstp.server")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_session_line_carries_the_session_fields(kept: Keep) -> None:
    info = SessionInfo(peer="192.0.2.1:5000", started=0.0, session_id="5EED000100000001")
    log = SessionLog(logging.getLogger("pysstp.server"), info)
    log.info("%s: refused: %s", info.peer, "session limit reached (1)", extra={"event": "refused"})
    info.user, info.address = "alice", IPv4Address("10.77.0.2")
    log.info("%s: user %r up", info.peer, "alice", extra={"event": "up"})
    refused, up = (json.loads(JsonFormatter().format(r)) for r in kept.records)
    assert refused == {
        "time": refused["time"],
        "level": "info",
        "logger": "pysstp.server",
        "message": "192.0.2.1:5000: refused: session limit reached (1)",
        "peer": "192.0.2.1:5000",
        "session_id": "5EED000100000001",
        "event": "refused",
    }
    assert (up["user"], up["address"], up["event"]) == ("alice", "10.77.0.2", "up")
    text = logging.Formatter("%(levelname)s %(name)s: %(message)s").format(kept.records[1])
    assert text == "INFO pysstp.server: 192.0.2.1:5000: user 'alice' up"  # the text format is unchanged
