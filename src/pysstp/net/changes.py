"""An undo log of every change made to the system, so nothing is left half-configured.

Each method makes one change and, the moment it has succeeded, records how to take it back. A change
that fails raises and records nothing, so after any failure :meth:`NetworkChanges.undo` reverses exactly
what was done. Server and client open one log for their lifetime::

    with NetworkChanges() as changes:
        tun = changes.open_tun("sstp%d", mtu=1400)
        changes.add_address(tun.name, "10.0.0.1", peer="10.0.0.2")
        changes.set_sysctl("net.ipv4.ip_forward", 1)
        ...  # run; leaving the block by any path undoes all of the above, newest first
"""

import logging
import os
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network
from types import TracebackType
from typing import Literal, Self

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
from pysstp.net.sysctl import read_sysctl, write_sysctl
from pysstp.net.tun import DEFAULT_TXQUEUELEN, TunDevice

log = logging.getLogger(__name__)


class NetworkChanges:
    """Make changes to the system and undo them all, last first, on :meth:`undo` or when the ``with``
    block ends."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], object]]] = []

    @property
    def pending(self) -> list[str]:
        """What :meth:`undo` would reverse, newest first (for logs and tests)."""
        return [description for description, _ in reversed(self._undo)]

    def record(self, description: str, undo: Callable[[], object]) -> None:
        """Record a change made elsewhere, with the callable that reverses it."""
        log.debug("changed: %s", description)
        self._undo.append((description, undo))

    def open_tun(
        self,
        name: str,
        *,
        mtu: int | None = None,
        txqueuelen: int | None = DEFAULT_TXQUEUELEN,
        multi_queue: bool = False,
    ) -> TunDevice:
        """Open a TUN device (see :meth:`TunDevice.open`); undo closes it, which removes the device."""
        tun = TunDevice.open(name, mtu=mtu, txqueuelen=txqueuelen, multi_queue=multi_queue)
        self.record(f"TUN device {tun.name}", tun.close)
        return tun

    def add_address(
        self, ifname: str, address: str | IPInterface, *, peer: str | IPAddress | None = None
    ) -> None:
        """Add an address (see :func:`pysstp.net.iproute.make_address`); undo deletes it."""
        info = make_address(ifname, address, peer=peer)
        add_address(info)
        self.record(f"address {info}", lambda: delete_address(info, missing_ok=True))

    def add_route(
        self,
        destination: str | IPNetwork,
        *,
        ifname: str | None = None,
        gateway: str | IPAddress | None = None,
        metric: int | None = None,
    ) -> Route:
        """Add a route (see :func:`pysstp.net.iproute.make_route`); undo deletes it."""
        route = make_route(destination, ifname=ifname, gateway=gateway, metric=metric)
        add_route(route)
        self.record(f"route {route}", lambda: delete_route(route, missing_ok=True))
        return route

    def set_sysctl(self, key: str, value: str | int) -> None:
        """Set a sysctl; undo writes back the value it had. Nothing is recorded if it already had it."""
        previous = read_sysctl(key)
        if previous == str(value):
            return
        write_sysctl(key, value)
        self.record(f"sysctl {key}={value} (was {previous})", lambda: write_sysctl(key, previous))

    def replace_file(self, path: str | os.PathLike[str], content: str | bytes) -> None:
        """Replace a file's contents; undo restores the file, symlink or absence that was there."""
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
        install_nat(rules)
        self.record(f"nftables table inet {rules.table}", lambda: remove_nat(rules.table))

    def undo(self) -> None:
        """Reverse every recorded change, newest first. Never raises: a step that fails is logged and
        the rest still run. Calling it again does nothing more."""
        while self._undo:
            # Popped before it runs, so a step runs at most once even if undo() is re-entered.
            description, step = self._undo.pop()
            try:
                step()
            except Exception as exc:
                log.warning("could not undo %s: %s", description, exc)
            else:
                log.debug("undone: %s", description)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.undo()
