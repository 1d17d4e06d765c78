"""The state file of NetworkChanges (pysstp.net.changes.ChangeJournal), without root: locking, reading
what a dead process left, and what undo_journal keeps when a step cannot be undone."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pysstp.errors import SystemSetupError
from pysstp.net.changes import ChangeJournal, undo_journal


def test_a_held_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run" / "sstp0.json"
    held = ChangeJournal.open(path)  # creates the directory too
    try:
        with pytest.raises(SystemSetupError, match="is held by a running pysstp server; stop it first"):
            ChangeJournal.open(path)
    finally:
        held.close(remove=False)
    ChangeJournal.open(path).close(remove=True)  # free again once closed
    assert not path.exists()


def test_a_held_state_file_is_refused_after_the_wait_too(tmp_path: Path) -> None:
    path = tmp_path / "sstp0-1.json"
    held = ChangeJournal.open(path)
    try:
        with pytest.raises(SystemSetupError, match="is held by a running pysstp server"):
            ChangeJournal.open(path, wait=0.3)
    finally:
        held.close(remove=True)


def test_entries_written_are_read_back_by_the_next_owner(tmp_path: Path) -> None:
    path = tmp_path / "sstp0.json"
    first = ChangeJournal.open(path)
    first.write([{"kind": "tun", "name": "sstp0"}, {"kind": "nftables", "table": "pysstp-sstp0"}])
    first.write([{"kind": "tun", "name": "sstp0"}])  # shorter: nothing of the longer one may remain
    first.close(remove=False)
    second = ChangeJournal.open(path)
    assert second.read() == [{"kind": "tun", "name": "sstp0"}]
    second.close(remove=True)


def test_a_damaged_state_file_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sstp0.json"
    path.write_text('{"changes": [1, 2')
    journal = ChangeJournal.open(path)
    with caplog.at_level(logging.WARNING):
        assert journal.read() == []
    assert "not a state file pysstp can read" in caplog.text
    journal.close(remove=True)


def test_undo_keeps_what_it_cannot_undo_and_skips_keys_of_a_device_that_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "sstp0.json"
    journal = ChangeJournal.open(path)
    unknown = {"kind": "teleporter", "name": "x"}
    journal.write(
        [
            {"kind": "tun", "name": "pysstp-no-such0"},
            {"kind": "sysctl", "key": "net/ipv6/conf/pysstp-no-such0/disable_ipv6", "previous": "1"},
            unknown,
        ]
    )
    undone = undo_journal(journal)
    assert undone == ["sysctl net/ipv6/conf/pysstp-no-such0/disable_ipv6=1", "TUN device pysstp-no-such0"]
    assert journal.read() == [unknown]
    journal.close(remove=False)
    assert json.loads(path.read_text())["changes"] == [unknown]
