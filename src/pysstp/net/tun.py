"""The TUN device: IP packets in and out of the kernel through one file descriptor.

``read_batch`` and ``write_batch`` are the data path (about 1.3-2.2 µs per packet, nearly all of it kernel
work: docs/benchmarks-notes.md, "Per-packet costs"), so they stay short: no per-packet checks beyond the
syscall.
"""

import errno
import fcntl
import os
import stat
import struct
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from pysstp.errors import SystemSetupError
from pysstp.net.caps import CAP_NET_ADMIN, has_capability
from pysstp.net.ifname import check_ifname
from pysstp.net.iproute import link_exists, set_link

TUN_PATH = "/dev/net/tun"

# linux/if_tun.h
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_IFF_MULTI_QUEUE = 0x0100
# struct ifreq: 16-byte name, 2-byte flags, padding to 40 bytes.
_IFREQ = struct.Struct("16sH22x")

# Larger than any IP packet, so a read never truncates one whatever MTU is set later.
_READ_SIZE = 65536

# The kernel gives a TUN 500; the baseline measurements saw that overflow in bursts. 1000 packets of
# 1400 B is 1.4 MB, about 11 ms at 1 Gbit/s: enough for bursts, still bounded (design: drop, don't bloat).
DEFAULT_TXQUEUELEN = 1000

# write() errors that mean "this packet is dropped", as a router drops: queue full, a malformed packet
# from the peer (not IPv4/IPv6), or the device administratively down.
_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EINVAL, errno.EIO})


class TunDevice:
    """An open, non-blocking TUN device (IFF_TUN | IFF_NO_PI: each read or write is one bare IP packet).

    A device that :meth:`open` creates is not persistent: it disappears with its addresses and routes
    when :meth:`close` closes the last file descriptor.
    """

    __slots__ = ("_fd", "name", "write_drops")

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self.name = name
        #: Packets :meth:`write` dropped because the kernel refused them.
        self.write_drops = 0

    @classmethod
    def open(
        cls,
        name: str,
        *,
        mtu: int | None = None,
        txqueuelen: int | None = DEFAULT_TXQUEUELEN,
        multi_queue: bool = False,
    ) -> Self:
        """Create (or attach to) the TUN device ``name`` and return it, still down and without addresses.

        ``name`` may be a template such as ``"sstp%d"``; the name the kernel chose is in ``.name``.
        A persistent TUN of that name (``ip tuntap add NAME mode tun``) is attached to rather than
        created. With ``multi_queue`` each further ``open`` of the same name adds a queue. ``mtu``
        and ``txqueuelen`` are set unless None.
        """
        raw = check_ifname(name, template=True)
        fd = _open_clone_device()
        flags = _IFF_TUN | _IFF_NO_PI | (_IFF_MULTI_QUEUE if multi_queue else 0)
        try:
            ifreq = fcntl.ioctl(fd, _TUNSETIFF, _IFREQ.pack(raw, flags))
        except OSError as exc:
            os.close(fd)
            raise _setiff_error(name, exc) from exc
        device = cls(fd, _IFREQ.unpack(ifreq)[0].rstrip(b"\0").decode())
        try:
            set_link(device.name, mtu=mtu, txqueuelen=txqueuelen)
        except BaseException:
            device.close()
            raise
        return device

    @property
    def fd(self) -> int:
        """The file descriptor (-1 once closed), for ``loop.add_reader``."""
        return self._fd

    def fileno(self) -> int:
        """The file descriptor, so the device can be passed where a file object is expected."""
        return self._fd

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._fd < 0

    def read_batch(self, limit: int) -> list[bytes]:
        """Read up to ``limit`` packets, stopping early when the kernel has no more (never blocks).

        Call it when the fd is readable and frame the whole batch into one TLS write; a bounded
        ``limit`` keeps one busy TUN from starving the event loop.
        """
        packets: list[bytes] = []
        append = packets.append
        read = os.read
        fd = self._fd
        try:
            for _ in range(limit):
                append(read(fd, _READ_SIZE))
        except BlockingIOError:
            pass
        return packets

    def write(self, packet: bytes | bytearray | memoryview) -> None:
        """Hand one IP packet to the kernel; if the kernel refuses it, drop it and count it."""
        try:
            os.write(self._fd, packet)
        except OSError as exc:
            self._refused(exc)

    def write_batch(self, packets: Iterable[bytes | bytearray | memoryview]) -> None:
        """:meth:`write` each packet, in one loop: what a receiver does with the packets of one read."""
        write = os.write
        fd = self._fd
        for packet in packets:
            try:
                write(fd, packet)
            except OSError as exc:
                self._refused(exc)

    def _refused(self, exc: OSError) -> None:
        """A write failed: count it as a drop if that is what it means, else raise it."""
        if exc.errno not in _DROP_ERRNOS:
            raise exc
        self.write_drops += 1

    def close(self) -> None:
        """Close the device (harmless when already closed)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TunDevice {self.name} fd={self._fd}>"


def _open_clone_device() -> int:
    try:
        return os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            raise SystemSetupError(
                f"{TUN_PATH} is missing: load the tun module (modprobe tun), or in a container "
                f"pass the device in (e.g. docker run --device {TUN_PATH})"
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise SystemSetupError(_permission_hint()) from exc
        raise SystemSetupError(f"cannot open {TUN_PATH}: {exc.strerror}") from exc


def _permission_hint() -> str:
    """Why opening the clone device was refused: its file mode, which no capability but root's
    CAP_DAC_OVERRIDE gets past (CAP_NET_ADMIN is checked later, when the device is created)."""
    try:
        info = os.stat(TUN_PATH)
        mode = f"mode {stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}, group gid {info.st_gid}"
    except OSError:
        mode = "its mode"
    hint = (
        f"cannot open {TUN_PATH}: its file permissions ({mode}) do not let uid {os.geteuid()} read and "
        f"write it; make it mode 0666 as most systems ship it (chmod 0666 {TUN_PATH}), or run as root"
    )
    if not has_capability(CAP_NET_ADMIN):
        hint += "; creating the device also needs CAP_NET_ADMIN"
    return hint


def _setiff_error(name: str, exc: OSError) -> SystemSetupError:
    if exc.errno == errno.EPERM:
        return SystemSetupError(
            f"cannot create TUN device {name}: permission denied; run as root or with CAP_NET_ADMIN"
        )
    if exc.errno == errno.EBUSY:
        return SystemSetupError(
            f"TUN device {name} is already in use (by another pysstp?); stop that or choose another name"
        )
    if exc.errno == errno.EINVAL and "%" not in name and link_exists(name):
        return SystemSetupError(
            f"network interface {name} already exists and is not a TUN device pysstp can use; "
            "choose another name"
        )
    return SystemSetupError(f"cannot create TUN device {name}: {exc.strerror}")
