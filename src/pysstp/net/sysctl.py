"""Kernel parameters under /proc/sys (``net.ipv4.ip_forward`` and friends).

Keys are written as sysctl(8) writes them: dots between the parts, or slashes when a part itself holds a
dot (``net/ipv4/conf/eth0.100/forwarding``). /proc/sys/net belongs to the network namespace of the
calling thread.
"""

import errno
from pathlib import Path

from pysstp.errors import SystemSetupError

PROC_SYS = Path("/proc/sys")


def sysctl_path(key: str) -> Path:
    """The /proc/sys file behind ``key``."""
    parts = key.split("/") if "/" in key else key.split(".")
    if not all(parts) or any(part in (".", "..") for part in parts):
        raise SystemSetupError(f"invalid sysctl key {key!r}")
    return PROC_SYS.joinpath(*parts)


def read_sysctl(key: str) -> str:
    """The current value, without the trailing newline (multi-part values keep their tabs)."""
    try:
        return sysctl_path(key).read_text().rstrip("\n")
    except OSError as exc:
        raise _error(key, "read", exc) from exc


def write_sysctl(key: str, value: str | int) -> None:
    """Set a value."""
    try:
        sysctl_path(key).write_text(f"{value}\n")
    except OSError as exc:
        raise _error(key, f"set to {value}", exc) from exc


def _error(key: str, action: str, exc: OSError) -> SystemSetupError:
    if exc.errno == errno.ENOENT:
        reason = "no such key (is that kernel feature, e.g. IPv6, enabled?)"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        reason = "permission denied; run as root or with CAP_NET_ADMIN"
    elif exc.errno == errno.EROFS:
        reason = "/proc/sys is read-only here; in a container set it from outside (docker run --sysctl)"
    elif exc.errno == errno.EINVAL:
        reason = "the kernel rejected the value"
    else:
        reason = exc.strerror or str(exc)
    return SystemSetupError(f"cannot {action} sysctl {key}: {reason}")
