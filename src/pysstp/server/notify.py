"""Telling systemd how the server is doing (sd_notify(3)): one datagram per message to ``$NOTIFY_SOCKET``.

The protocol is a few ``KEY=VALUE`` lines in a Unix datagram, so it needs no library: ``READY=1`` once
the server listens, ``RELOADING=1`` and ``READY=1`` around a SIGHUP reload, ``STOPPING=1`` when it shuts
down or drains, ``WATCHDOG=1`` at half the unit's ``WatchdogSec=`` (while a check, if given, says the
server's processes answer), and ``STATUS=`` text for
``systemctl status``. Without ``$NOTIFY_SOCKET`` (not started by systemd with ``Type=notify``) every
call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager

log = logging.getLogger("pysstp.server")

_ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

Alive = Callable[[float], Awaitable[bool]]
"""Whether everything the watchdog speaks for answers within the given seconds (the supervisor's
workers)."""


def socket_address(text: str) -> str | None:
    """The ``sendto`` address of a ``$NOTIFY_SOCKET`` value: a path, or ``@name`` for a socket in the
    abstract namespace (unix(7)); ``None`` for a form this module does not speak (``vsock:``)."""
    if text.startswith("@"):
        return "\0" + text[1:]
    if text.startswith("/"):
        return text
    return None


class Notifier:
    """The messages to the service manager of this process; does nothing without an address."""

    def __init__(self, address: str | None = None, watchdog_usec: int = 0) -> None:
        self.address = address
        """Where the datagrams go (``sendto`` form); ``None``: nowhere."""
        self.watchdog_interval = watchdog_usec / 2_000_000
        """Seconds between two ``WATCHDOG=1`` (half the manager's timeout, as sd_watchdog_enabled(3)
        advises); 0 when the manager watches nothing."""
        self._socket: socket.socket | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._failed = False

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] = os.environ) -> Notifier:
        """Take ``$NOTIFY_SOCKET`` and the watchdog's variables out of ``environ``: only this process
        notifies, never one it starts (systemd's ``NotifyAccess=main``)."""
        values = {name: environ.pop(name, "") for name in _ENVIRONMENT}
        if not values["NOTIFY_SOCKET"]:
            return cls()
        address = socket_address(values["NOTIFY_SOCKET"])
        if address is None:
            log.warning(
                "NOTIFY_SOCKET=%s is not a Unix socket; not notifying systemd", values["NOTIFY_SOCKET"]
            )
            return cls()
        watchdog_usec = int(values["WATCHDOG_USEC"]) if values["WATCHDOG_USEC"].isdigit() else 0
        # WATCHDOG_PID names the process the manager watches; another process's watchdog is not ours.
        if values["WATCHDOG_PID"] and values["WATCHDOG_PID"] != str(os.getpid()):
            watchdog_usec = 0
        return cls(address, watchdog_usec)

    def send(self, *fields: str) -> None:
        """One message of ``KEY=VALUE`` fields. A failure is logged once, never raised: the server's
        calls matter more than the manager hearing about them."""
        if self.address is None:
            return
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)
        try:
            self._socket.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd at NOTIFY_SOCKET: %s", exc.strerror or exc)

    def ready(self, status: str) -> None:
        """The server serves (after start-up or a reload)."""
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """A line for ``systemctl status``."""
        self.send(f"STATUS={status}")

    @contextmanager
    def reloading(self, status: str) -> Iterator[None]:
        """``RELOADING=1`` before the body, ``READY=1`` after it, however it ends."""
        # MONOTONIC_USEC tells the manager which reload this is (sd_notify(3), needed by Type=notify-reload).
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", "STATUS=reloading")
        try:
            yield
        finally:
            self.ready(status)

    def stopping(self, status: str, within: float = 0.0) -> None:
        """The server is on its way out; ``within`` seconds (if given) is how long that may take, which
        extends the manager's stop timeout where it would end sooner (a drain)."""
        fields = ["STOPPING=1", f"STATUS={status}"]
        if within > 0:
            fields.append(f"EXTEND_TIMEOUT_USEC={round(within * 1_000_000)}")
        self.send(*fields)

    def start_watchdog(self, alive: Alive | None = None) -> None:
        """Send ``WATCHDOG=1`` every :attr:`watchdog_interval` from a task of the running event loop, so
        that a loop that hangs stops the messages and the manager restarts the server. With ``alive``,
        each one is sent only if ``alive`` says yes within half the interval: a message is then at most
        1.5 intervals after the one before, inside the manager's timeout of two, and two checks in a
        row that fail let the timeout pass."""
        if self.watchdog_interval > 0 and self.address is not None and self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch(alive))

    async def _watch(self, alive: Alive | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            if alive is None or await alive(self.watchdog_interval / 2):
                self.send("WATCHDOG=1")
            await asyncio.sleep(max(0.0, started + self.watchdog_interval - loop.time()))

    def close(self) -> None:
        """Stop the watchdog and close the socket."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
