"""``--daemon``, the PID file, and stopping a running client (``pysstp disconnect``).

The daemon forks before anything else happens (no event loop, no sockets yet), but the parent waits: the
child keeps the terminal as stdout/stderr while it dials, so the user sees the phases and the summary
line (or the error), and only then detaches. The parent's exit code therefore says whether connecting
worked, which is what scripts (``pysstp connect --daemon ... && ...``) need.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from pysstp.errors import SystemSetupError

UP = b"u"
"""What the child writes to the parent once the call is up (end of file without it: it failed)."""
STOP_WAIT = 10.0
"""Seconds ``pysstp disconnect`` waits for the client to finish undoing its changes."""


class Detacher:
    """Called once the call is up: tell the waiting parent, then let go of the terminal."""

    def __init__(self, ready_fd: int, log_fd: int | None) -> None:
        self.ready_fd: int | None = ready_fd
        self.log_fd = log_fd

    def __call__(self) -> None:
        if self.ready_fd is None:  # already detached: a call after --reconnect
            return
        # stdio first, so that nothing the child prints after the parent has exited can hit the terminal.
        null = os.open(os.devnull, os.O_RDWR)
        target = null if self.log_fd is None else self.log_fd
        os.dup2(null, 0)
        os.dup2(target, 1)
        os.dup2(target, 2)
        for fd in {null, target}:
            os.close(fd)
        os.write(self.ready_fd, UP)
        os.close(self.ready_fd)
        self.ready_fd = None


def fork_daemon(log_file: Path | None) -> Detacher | int:
    """Fork. In the child (now leader of a new session, so the terminal's Ctrl-C and hang-up no longer
    reach it) return the :class:`Detacher` to call once up; in the parent wait for that and return the
    exit code for the command: 0 when up, the child's code when it failed.

    The log file is opened first, so a path that cannot be written is an error on the terminal."""
    log_fd = None
    if log_file is not None:
        try:
            log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise SystemSetupError(f"{log_file}: cannot write the log file: {exc.strerror}") from None
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        os.setsid()
        return Detacher(ready_write, log_fd)
    os.close(ready_write)
    if log_fd is not None:
        os.close(log_fd)
    try:
        with os.fdopen(ready_read, "rb") as ready:
            answer = ready.read(1)
    except KeyboardInterrupt:
        # Ctrl-C while dialing: the child is in its own session and did not get it; stop it too.
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        return 130
    if answer == UP:
        return 0
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) or 1


def running_pid(pid_file: Path) -> int | None:
    """The PID in ``pid_file`` if that process is a live pysstp (not gone, not a zombie, not a reused PID),
    else ``None``; raises when the file exists but cannot be read or holds something else than a PID (a
    wrong ``--pid-file`` must not be overwritten or removed)."""
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a PID file"
        raise SystemSetupError(f"{pid_file}: cannot read: {reason}") from None
    if not text:
        return None  # written by a client that died before it wrote its PID
    if not text.isdigit():
        raise SystemSetupError(f"{pid_file} is not a PID file (it holds no process number); check --pid-file")
    pid = int(text)
    return pid if _is_live_pysstp(pid) else None


def _is_live_pysstp(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name in parentheses, which may itself contain ") ".
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X") and b"pysstp" in cmdline


@contextlib.contextmanager
def pid_file_held(pid_file: Path | None) -> Iterator[None]:
    """Record this process's PID in ``pid_file`` (if any) while the block runs; refuse if another client
    already holds it; remove it on the way out if it is still ours."""
    if pid_file is None:
        yield
        return
    other = running_pid(pid_file)
    if other is not None and other != os.getpid():
        raise SystemSetupError(
            f"another pysstp connect (PID {other}) is running with {pid_file}; "
            f"stop it with: pysstp disconnect --pid-file {pid_file}"
        )
    try:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        raise SystemSetupError(f"{pid_file}: cannot write the PID file: {exc.strerror}") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()


def stop_client(pid_file: Path, timeout: float = STOP_WAIT) -> int:
    """SIGTERM the client recorded in ``pid_file`` and wait up to ``timeout`` s until it has exited;
    return its PID. Raises :class:`SystemSetupError` when none runs or it does not stop in time."""
    pid = running_pid(pid_file)
    if pid is None:
        if pid_file.exists():
            with contextlib.suppress(OSError):
                pid_file.unlink()
            raise SystemSetupError(f"no pysstp connect is running (removed the stale PID file {pid_file})")
        raise SystemSetupError(f"no pysstp connect is running (no PID file {pid_file})")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid  # it ended by itself in the meantime
    except PermissionError:
        raise SystemSetupError(
            f"not allowed to stop pysstp connect (PID {pid}): it runs as another user; use sudo"
        ) from None
    deadline = time.monotonic() + timeout
    while _is_live_pysstp(pid):
        if time.monotonic() > deadline:
            raise SystemSetupError(
                f"pysstp connect (PID {pid}) did not exit within {timeout:g} s of SIGTERM; "
                f"it may still be undoing its changes (kill -KILL {pid} would leave them behind)"
            )
        time.sleep(0.05)
    return pid
