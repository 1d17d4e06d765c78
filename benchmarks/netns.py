"""What only the scale and large-MRU benchmarks need: their command line and report, and a process's
memory and CPU read from /proc.

Namespaces, certificates, the user database and the ``pysstp server`` process come from the tests'
helpers (tests/helpers/namespaces.py, loopback.py, server_process.py; see benchmarks/__init__.py), so the
benchmarks make and remove them exactly as the tests do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def command_line(description: str, quick: str) -> argparse.ArgumentParser:
    """The options of every benchmark's ``python -m`` entry: ``--quick`` (help text ``quick``), ``--json``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    return parser


def report(results: dict[str, Any], render: Callable[[dict[str, Any]], str], json_path: Path | None) -> int:
    """Print ``render(results)``, and write the results as JSON to ``json_path`` if given."""
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    return 0


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command name: state is field 3 of stat(5), utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a server's workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and the processes below it, summed, in KiB."""
    return sum(_quietly(rss_kib, p, 0) for p in tree(pid))


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds ``pid`` and the processes below it have used so far, summed."""
    return sum(_quietly(cpu_seconds, p, 0.0) for p in tree(pid))


def _quietly(read: Callable[[int], _T], pid: int, gone: _T) -> _T:
    """``read(pid)``, or ``gone`` when the process ended meanwhile (a worker restarting)."""
    try:
        return read(pid)
    except (OSError, RuntimeError):
        return gone


@contextmanager
def event_loop(name: str) -> Iterator[None]:
    """pysstp processes started inside the block run on the event loop ``name`` (``asyncio`` or ``uvloop``;
    see :data:`pysstp.runtime.LOOP_ENVIRONMENT`)."""
    # Imported here: the load generators import this module, and need no more of pysstp than they use.
    from pysstp.runtime import LOOP_ENVIRONMENT

    before = os.environ.get(LOOP_ENVIRONMENT)
    os.environ[LOOP_ENVIRONMENT] = name
    try:
        yield
    finally:
        if before is None:
            del os.environ[LOOP_ENVIRONMENT]
        else:
            os.environ[LOOP_ENVIRONMENT] = before


QUIET_LOAD = 0.5
"""Load average below which this machine counts as quiet enough for figures worth comparing."""


def warn_if_busy(what: str) -> str:
    """The load averages now; on stderr, a line saying the figures of ``what`` will be noisy when the
    machine is busy, and what a run worth comparing needs."""
    load = os.getloadavg()
    text = " ".join(f"{x:.2f}" for x in load)
    if load[0] > QUIET_LOAD:
        print(
            f"{what}: load average {text} (other work on this machine): the figures will be noisy; "
            f"for figures worth comparing rerun on a quiet machine (1-minute load below {QUIET_LOAD})",
            file=sys.stderr,
        )
    return text
