"""The server's signals (SIGTERM, SIGINT, SIGHUP, SIGUSR2) from before its first change to the system until
after its last one is undone: a single server's (:mod:`pysstp.server.service`), a worker's and the
supervisor's (:mod:`pysstp.server.supervisor`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger("pysstp.server")


class Signals:
    """SIGTERM, SIGINT, SIGHUP and SIGUSR2 for the whole of :func:`serve`, from before the first change
    to the system until after the last one is undone.

    With Python's default action a signal in start-up or shutdown would end the process between the
    two and leave the TUN, nftables, sysctls and routes behind (the next start undoes them from the
    state file, but the host should not depend on a next start). SIGTERM/SIGINT set :attr:`stop`; one
    during start-up stops the server once it has started, a repeated one is logged and changes
    nothing. SIGHUP (reload) and SIGUSR2 (drain) act only while the server runs (:meth:`serving`)."""

    HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2)

    def __init__(self, stop: asyncio.Event | None = None) -> None:
        self.stop = stop or asyncio.Event()
        """Set by SIGTERM/SIGINT, by the end of a drain, and when shutdown begins."""
        self._actions: dict[signal.Signals, Callable[[], object]] = {}

    def __enter__(self) -> Signals:
        loop = asyncio.get_running_loop()
        for signum in self.HANDLED:
            loop.add_signal_handler(signum, self.received, signum)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        for signum in self.HANDLED:
            loop.remove_signal_handler(signum)

    def serving(self, reload: Callable[[], object], drain: Callable[[], object]) -> None:
        """The server runs: SIGHUP calls ``reload``, SIGUSR2 ``drain``, until :attr:`stop` is set."""
        self._actions = {signal.SIGHUP: reload, signal.SIGUSR2: drain}

    def received(self, signum: signal.Signals) -> None:
        """Act on ``signum`` as the phase of the server allows (called by the event loop)."""
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.stop.is_set():
                log.info("%s: already shutting down", signum.name)
            elif not self._actions:
                log.info("%s during start-up: shutting down once started", signum.name)
            self.stop.set()
        elif self.stop.is_set():
            log.info("%s ignored: shutting down", signum.name)
        elif signum not in self._actions:
            log.info("%s ignored: still starting", signum.name)
        else:
            self._actions[signum]()
