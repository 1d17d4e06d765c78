"""What the tests' RADIUS server programs (FreeRADIUS, hostapd's integrated server) have in common: one
process in a namespace, with a configuration directory of its own, started until it logs that it is
ready, stopped by PID, and its log for a failing test's message."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers.namespaces import Namespace, stop_process, wait_for_text

START_TIMEOUT = 30.0
"""Seconds a server has to log that it is ready."""
DESCRIBED = 20000
"""How many characters of the end of its log a failure message shows."""


@dataclass
class RadiusDaemon:
    """One running RADIUS server program on ``address:port`` (stopped by PID with :meth:`stop`)."""

    namespace: Namespace
    confdir: Path
    address: str
    port: int
    process: subprocess.Popen[str] | None = None

    @property
    def log(self) -> Path:
        """Where it logs (what :meth:`describe` shows)."""
        raise NotImplementedError

    def launch(self, command: Sequence[str], output: Path, ready: str) -> None:
        """Start ``command`` in the namespace, its output in ``output``, and wait until :attr:`log`
        shows ``ready`` (failing at once, with the log, if it exits first)."""
        self.process = self.namespace.start(list(command), output)
        wait_for_text(self.log, ready, timeout=START_TIMEOUT, process=self.process)

    def stop(self) -> None:
        """Stop it by PID."""
        if self.process is not None:
            stop_process(self.process)

    def describe(self) -> str:
        """The end of its log, for failure messages."""
        return self.log.read_text(errors="replace")[-DESCRIBED:]
