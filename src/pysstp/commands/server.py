"""``pysstp server``: run the SSTP server on TLS and one TUN device."""

from __future__ import annotations

import argparse
import ctypes
import logging
import resource

from pysstp.errors import SystemSetupError
from pysstp.logsetup import setup_logging
from pysstp.net.caps import CAP_NET_ADMIN, has_capability
from pysstp.runtime import freeze_start_up_objects, run_event_loop
from pysstp.server.check import check
from pysstp.server.config import HELP_EPILOG, add_arguments, settings_from_args
from pysstp.server.service import serve
from pysstp.server.statefile import cleanup
from pysstp.server.supervisor import worker_count

log = logging.getLogger("pysstp.server")

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the size from which allocations get their own mapping."""
MMAP_THRESHOLD = 128 * 1024


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``pysstp server``."""
    parser = subparsers.add_parser(
        "server",
        help="run an SSTP server (Windows, RouterOS, sstpc and pysstp clients can dial it)",
        description="Run the SSTP server: TLS on port 443, PPP in user space, one TUN device for all calls.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    actions = parser.add_argument_group("instead of serving").add_mutually_exclusive_group()
    actions.add_argument(
        "--check",
        action="store_true",
        help="check the settings, files and certificates, say what is wrong or 'configuration OK', exit",
    )
    actions.add_argument(
        "--cleanup",
        action="store_true",
        help="undo what a server on this TUN left on the system when it was killed (from its state file)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the settings, set the system up, serve until SIGTERM/SIGINT, put everything back."""
    if args.cleanup:
        return cleanup(args)
    settings = settings_from_args(args)
    setup_logging(settings.log.level, settings.log.format)
    if args.check:
        return check(settings)
    if not has_capability(CAP_NET_ADMIN):
        raise SystemSetupError(
            "pysstp server needs root or CAP_NET_ADMIN (TUN device, addresses, routes); run it as root "
            "or from the systemd unit in contrib/pysstp-server.service"
        )
    return_large_buffers_to_the_system()
    raise_file_limit(settings.limits.max_sessions, worker_count(settings))
    freeze_start_up_objects()
    return run_event_loop(serve(settings, reread=lambda: settings_from_args(args)))


FILES_BESIDES_SESSIONS = 64
"""Open files the server needs besides one socket per session: listeners, the TUN, the control and
metrics sockets, RADIUS sockets, logs, the event loop's own."""


def raise_file_limit(max_sessions: int | None = None, processes: int = 1) -> None:
    """Take the hard limit on open files, and say so when even that cannot hold each of ``processes``
    server processes' share of ``max_sessions`` (a worker, which learns its settings later, leaves the
    check to the supervisor).

    Each session holds a socket; the usual soft limit (1024) would stop the server short of its default
    ``max_sessions`` (1000) plus listeners, TUN and logs, and 100,000 sessions need a hard limit that
    only the service manager (``LimitNOFILE=`` in contrib/pysstp-server.service) or root can give.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
    if max_sessions is None:
        return
    needed = -(-max_sessions // processes) + FILES_BESIDES_SESSIONS
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "the open-file limit (%d) is below what max_sessions = %d needs (%d%s): calls beyond it will be "
            "refused; raise it with LimitNOFILE= in the systemd unit or ulimit -n",
            soft,
            max_sessions,
            needed,
            f" in each of {processes} workers" if processes > 1 else "",
        )


def return_large_buffers_to_the_system() -> None:
    """Keep buffers of 128 KiB and more in mappings of their own, returned to the system when freed.

    Each TLS handshake in progress holds a 256 KiB buffer (see
    :func:`pysstp.connection.adapt_tls_transport`). glibc would otherwise raise its threshold after
    the first one is freed and serve the next ones from the heap, where a burst of connections leaves
    megabytes resident for good. Setting the threshold explicitly stops that adjustment; reads on
    established calls stay below it (:data:`pysstp.connection.TLS_READ_SIZE`). Other C libraries are
    left as they are.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present only in glibc, whose parameter numbers these are
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
