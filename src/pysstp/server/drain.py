"""Drain: stop accepting calls, let the established ones end, exit when none is left or at a deadline.

Started by SIGUSR2 or the control command ``{"command": "drain"}`` (``pysstp drain``). The listening
sockets are closed, so the kernel refuses a new connection at once (a reset, which a load balancer or a
client takes as "try another node" without waiting for a timeout), and the health endpoint answers 503
from :attr:`SstpServerApp.draining`. See docs/scaling.md, "Drain and health".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pysstp.server.app import SHUTDOWN_GRACE, SstpServerApp
from pysstp.server.notify import Notifier

log = logging.getLogger("pysstp.server")

CHECK_INTERVAL = 0.5
"""Seconds between two looks at the session count while draining."""
REPORT_INTERVAL = 30.0
"""Seconds between two ``sessions left`` log lines while the count goes on changing."""


class Drain:
    """One server's drain; ``on_end`` is called once, when the server should exit (drained, or the
    deadline reached: the shutdown that follows disconnects what is left, in order)."""

    def __init__(
        self,
        app: SstpServerApp,
        timeout: Callable[[], float],
        on_end: Callable[[], None],
        notifier: Notifier,
    ) -> None:
        self.app = app
        self.timeout = timeout
        """``limits.drain_timeout`` as the running configuration has it when the drain starts."""
        self.on_end = on_end
        self.notifier = notifier
        self._task: asyncio.Task[None] | None = None

    def start(self, by: str) -> bool:
        """Start draining, ``by`` naming who asked (for the log); False when a drain is already on."""
        if self._task is not None:
            log.info("drain asked by %s: already draining, %d session(s) left", by, len(self.app.connections))
            return False
        self._task = asyncio.get_running_loop().create_task(self._run(by, self.timeout()))
        return True

    async def _run(self, by: str, timeout: float) -> None:
        await self.app.drain()
        # Only now: once this line is logged, a new connection is refused.
        log.info(
            "drain started by %s: accepting no new calls; %d session(s) left, exit when they have ended "
            "or in %g s",
            by,
            len(self.app.connections),
            timeout,
        )
        self.notifier.stopping(
            f"draining: {len(self.app.connections)} session(s) left", timeout + SHUTDOWN_GRACE
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        reported, next_report = len(self.app.connections), loop.time() + REPORT_INTERVAL
        while self.app.connections and loop.time() < deadline:
            await asyncio.sleep(min(CHECK_INTERVAL, deadline - loop.time()))
            left = len(self.app.connections)
            if left != reported and loop.time() >= next_report:
                log.info("draining: %d session(s) left", left)
                self.notifier.status(f"draining: {left} session(s) left")
                reported, next_report = left, loop.time() + REPORT_INTERVAL
        if self.app.connections:
            log.info(
                "drain deadline reached (%g s): disconnecting the %d session(s) left",
                timeout,
                len(self.app.connections),
            )
        else:
            log.info("drained: no sessions left")
        self.on_end()

    def cancel(self) -> None:
        """Stop a drain that is on (the server shuts down for another reason)."""
        if self._task is not None:
            self._task.cancel()
