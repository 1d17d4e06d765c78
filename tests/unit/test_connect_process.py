"""The helpers that read ``pysstp connect``'s log in the namespace and interop tests (no root)."""

from __future__ import annotations

from pathlib import Path

from helpers.connect_process import calls_up

LOG = """\
2026-12-06 07:58:46,281 INFO pysstp.client: connected: 10.77.0.2 via sstpc0, DNS 10.77.0.1, MS-CHAPv2
2026-12-06 07:58:46,301 WARNING pysstp.client: disconnected: connection closed by the peer
2026-12-06 07:58:46,302 INFO pysstp.client: dialing again in 0.8 s
"""


def test_a_disconnect_is_not_counted_as_a_call_up(tmp_path: Path) -> None:
    # Counting "connected: " saw two calls here (the client worded a lost call so until issue 11), and a
    # test waiting for the reconnect went on at once.
    log = tmp_path / "client.log"
    log.write_text(LOG)
    assert calls_up(log) == 1
    log.write_text(LOG + "2026-12-06 07:58:47,646 INFO pysstp.client: connected: 10.77.0.2 via sstpc0\n")
    assert calls_up(log) == 2
