"""An undo log of every change made to the system, so nothing is left half-configured.

Each method makes one change and, the moment it has succeeded, records how to take it back. A change
that fails raises and records nothing, so after any failure :meth:`NetworkChanges.undo` reverses exactly
what was done. Server and client open one log for their lifetime::

    with NetworkChanges() as changes:
        tun = changes.open_tun("sstp%d", mtu=1400)
        changes.add_address(tun.name, "10.0.0.1", peer="10.0.0.2")
        changes.set_sysctl("net.ipv4.ip_forward", 1)
        ...  # run; leaving the block by any path undoes all of the above, newest first

A process can die without undoing anything (SIGKILL, a crash, power to the container cut). With a
:class:`ChangeJournal` (the server keeps one under /run/pysstp), each change is written to a state file
before it is made, and the file is removed after a clean undo; the next start, or ``pysstp server
--cleanup``, reads what a dead process left there and undoes it with :func:`undo_journal`.
"""

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from pysstp.errors import SystemSetupError
from pysstp.net.files import FileBackup, write_file
from pysstp.net.iproute import (
    IPAddress,
    IPInterface,
    IPNetwork,
    Route,
    add_address,
    add_route,
    delete_address,
    delete_route,
    make_address,
    make_route,
)
from pysstp.net.nat import install_nat, make_nat_rules, remove_nat
from pysstp.net.sysctl import read_sysctl, sysctl_path, write_sysctl
from pysstp.net.tun import DEFAULT_TXQUEUELEN, TunDevice

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_LOCK_POLL = 0.1
"""Seconds between two tries at a state file whose owner is ending (:meth:`ChangeJournal.open`)."""

Entry = dict[str, Any]
"""One change as the state file holds it: ``{"kind": "sysctl", "key": ..., "previous": ...}`` etc."""


class ChangeJournal:
    """The state file of one process's :class:`NetworkChanges`, held under an exclusive lock.

    The lock (flock) is what tells a live owner from a dead one: the kernel drops it when the owner dies,
    however it dies, and no PID can be reused into holding it.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def open(cls, path: Path, *, wait: float = 0.0) -> Self:
        """Open and lock ``path`` (creating it and its directory); raise :class:`SystemSetupError` if a
        running process holds it (still after ``wait`` seconds: for a process that is ending)."""
        deadline = time.monotonic() + wait
        try:
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    if time.monotonic() < deadline:
                        time.sleep(_LOCK_POLL)
                        continue
                    raise SystemSetupError(
                        f"{path} is held by a running pysstp server; stop it first, or give this one "
                        "another tun_name"
                    ) from None
                # The previous owner may have removed the file between our open and our lock; then the
                # lock is on a file nobody else will find, so start again with the one at ``path``.
                try:
                    if os.stat(path).st_ino == os.fstat(fd).st_ino:
                        return cls(path, fd)
                except FileNotFoundError:
                    pass
                os.close(fd)
        except OSError as exc:
            raise SystemSetupError(f"cannot open the state file {path}: {exc.strerror}") from exc

    def read(self) -> list[Entry]:
        """The changes recorded in the file, oldest first (none for a new or unreadable file)."""
        data = b""
        while chunk := os.pread(self._fd, 65536, len(data)):
            data += chunk
        if not data:
            return []
        try:
            entries = json.loads(data)["changes"]
            if isinstance(entries, list) and all(isinstance(e, dict) and "kind" in e for e in entries):
                return entries
        except (ValueError, KeyError, TypeError):
            pass
        log.warning("%s: not a state file pysstp can read; ignoring it", self.path)
        return []

    def write(self, entries: list[Entry]) -> None:
        """Replace the file's contents with ``entries`` (in place, so the lock stays on this file)."""
        data = json.dumps({"pid": os.getpid(), "changes": entries}, indent=1).encode() + b"\n"
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError as exc:
            raise SystemSetupError(f"cannot write the state file {self.path}: {exc.strerror}") from exc

    def close(self, *, remove: bool) -> None:
        """Release the file, removing it first when ``remove`` (nothing is left to undo)."""
        if self._fd < 0:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = -1


def undo_journal(journal: ChangeJournal) -> list[str]:
    """Undo, newest first, what a dead process recorded in ``journal``, and empty it; return what was
    undone. A step that fails is logged and left in the file for the next attempt."""
    entries = journal.read()
    undone: list[str] = []
    failed: list[Entry] = []
    for entry in reversed(entries):
        try:
            description = _undo_entry(entry)
        except (SystemSetupError, KeyError, TypeError, ValueError) as exc:
            log.warning("could not undo %s: %s", entry, exc)
            failed.insert(0, entry)
        else:
            undone.append(description)
    journal.write(failed)
    return undone


def _undo_entry(entry: Entry) -> str:
    """Undo one recorded change of a process that is gone; return its description."""
    kind = entry["kind"]
    if kind == "sysctl":
        key, previous = entry["key"], entry["previous"]
        # A per-device key (net/ipv6/conf/<TUN>/...) went away with its device: nothing to put back.
        if sysctl_path(key).exists():
            write_sysctl(key, previous)
        return f"sysctl {key}={previous}"
    if kind == "nftables":
        remove_nat(entry["table"])
        return f"nftables table inet {entry['table']}"
    if kind == "address":
        address = make_address(entry["ifname"], entry["address"], peer=entry["peer"])
        delete_address(address, missing_ok=True)
        return f"address {address}"
    if kind == "route":
        route = make_route(
            entry["destination"],
            ifname=entry["ifname"],
            gateway=entry["gateway"],
            metric=entry["metric"],
            unreachable=entry.get("unreachable", False),
        )
        delete_route(route, missing_ok=True)
        return f"route {route}"
    if kind == "tun":
        # Not persistent: the kernel removed the device, with its addresses and routes, when the process
        # that held it died.
        return f"TUN device {entry['name']}"
    raise ValueError(f"unknown kind of change {kind!r}")


class NetworkChanges:
    """Make changes to the system and undo them all, last first, on :meth:`undo` or when the ``with``
    block ends; with a ``journal``, also keep them in its state file (see :class:`ChangeJournal`)."""

    def __init__(self, journal: ChangeJournal | None = None) -> None:
        self._undo: list[tuple[str, Callable[[], object], Entry | None]] = []
        self._journal = journal
        self._entries: list[Entry] = []
        """What the journal holds: the changes made, and the one being made."""

    @property
    def pending(self) -> list[str]:
        """What :meth:`undo` would reverse, newest first (for logs and tests)."""
        return [description for description, _, _ in reversed(self._undo)]

    def record(self, description: str, undo: Callable[[], object]) -> None:
        """Record a change made elsewhere, with the callable that reverses it (not journaled)."""
        self._recorded(description, undo, None)

    def _recorded(self, description: str, undo: Callable[[], object], entry: Entry | None) -> None:
        log.debug("changed: %s", description)
        self._undo.append((description, undo, entry))

    def _journaled(self, entry: Entry, change: Callable[[], _T]) -> _T:
        """Write ``entry`` to the journal, then make the change it describes; if that fails, take the
        entry out again (a failed change has nothing to undo, and undoing it could harm what was there)."""
        self._entries.append(entry)
        self._save()
        try:
            return change()
        except BaseException:
            self._forget(entry)
            raise

    def _forget(self, entry: Entry) -> None:
        """Take ``entry`` out of the journal: its change failed, or has been undone."""
        self._entries = [e for e in self._entries if e is not entry]
        self._save()

    def _save(self) -> None:
        if self._journal is not None:
            self._journal.write(self._entries)

    def open_tun(
        self,
        name: str,
        *,
        mtu: int | None = None,
        txqueuelen: int | None = DEFAULT_TXQUEUELEN,
        multi_queue: bool = False,
    ) -> TunDevice:
        """Open a TUN device (see :meth:`TunDevice.open`); undo closes it, which removes the device."""
        entry: Entry = {"kind": "tun", "name": name}
        tun = self._journaled(
            entry, lambda: TunDevice.open(name, mtu=mtu, txqueuelen=txqueuelen, multi_queue=multi_queue)
        )
        if tun.name != name:  # a template such as sstp%d
            entry["name"] = tun.name
            self._save()
        self._recorded(f"TUN device {tun.name}", tun.close, entry)
        return tun

    def add_address(
        self, ifname: str, address: str | IPInterface, *, peer: str | IPAddress | None = None
    ) -> None:
        """Add an address (see :func:`pysstp.net.iproute.make_address`); undo deletes it."""
        info = make_address(ifname, address, peer=peer)
        entry: Entry = {
            "kind": "address",
            "ifname": ifname,
            "address": str(info.address),
            "peer": None if info.peer is None else str(info.peer),
        }
        self._journaled(entry, lambda: add_address(info))
        self._recorded(f"address {info}", lambda: delete_address(info, missing_ok=True), entry)

    def add_route(
        self,
        destination: str | IPNetwork,
        *,
        ifname: str | None = None,
        gateway: str | IPAddress | None = None,
        metric: int | None = None,
        unreachable: bool = False,
    ) -> Route:
        """Add a route (see :func:`pysstp.net.iproute.make_route`); undo deletes it."""
        route = make_route(
            destination, ifname=ifname, gateway=gateway, metric=metric, unreachable=unreachable
        )
        entry: Entry = {
            "kind": "route",
            "destination": str(route.destination),
            "ifname": route.ifname,
            "gateway": None if route.gateway is None else str(route.gateway),
            "metric": route.metric,
            "unreachable": route.unreachable,
        }
        self._journaled(entry, lambda: add_route(route))
        self._recorded(f"route {route}", lambda: delete_route(route, missing_ok=True), entry)
        return route

    def set_sysctl(self, key: str, value: str | int) -> None:
        """Set a sysctl; undo writes back the value it had. Nothing is recorded if it already had it."""
        previous = read_sysctl(key)
        if previous == str(value):
            return
        entry: Entry = {"kind": "sysctl", "key": key, "previous": previous}
        self._journaled(entry, lambda: write_sysctl(key, value))
        self._recorded(f"sysctl {key}={value} (was {previous})", lambda: write_sysctl(key, previous), entry)

    def replace_file(self, path: str | os.PathLike[str], content: str | bytes) -> None:
        """Replace a file's contents; undo restores the file, symlink or absence that was there. (Not
        written to a journal: the file's old contents would have to be kept there too.)"""
        backup = FileBackup.take(path)
        data = content.encode() if isinstance(content, str) else content
        write_file(path, data)
        self.record(f"file {path}", backup.restore)

    def install_nat(
        self,
        tun: str,
        *,
        source: str | IPv4Network | IPv6Network | None = None,
        egress: str | None = None,
        mss: int | Literal["route"] | None = "route",
    ) -> None:
        """Install the nftables table of ``tun`` (see :class:`pysstp.net.nat.NatRules`); undo removes it."""
        rules = make_nat_rules(tun, source=source, egress=egress, mss=mss)
        entry: Entry = {"kind": "nftables", "table": rules.table}
        self._journaled(entry, lambda: install_nat(rules))
        self._recorded(f"nftables table inet {rules.table}", lambda: remove_nat(rules.table), entry)

    def undo(self) -> None:
        """Reverse every recorded change, newest first. Never raises: a step that fails is logged and
        the rest still run, and stays in the journal. Calling it again does nothing more."""
        while self._undo:
            # Popped before it runs, so a step runs at most once even if undo() is re-entered.
            description, step, entry = self._undo.pop()
            try:
                step()
            except Exception as exc:
                log.warning("could not undo %s: %s", description, exc)
            else:
                log.debug("undone: %s", description)
                if entry is not None:
                    try:
                        self._forget(entry)
                    except SystemSetupError as exc:
                        log.warning("%s", exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.undo()
