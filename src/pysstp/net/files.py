"""Replace a system file (e.g. /etc/resolv.conf) so that it can be put back exactly as it was."""

import errno
import os
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pysstp.errors import SystemSetupError


class _Kind(Enum):
    MISSING = "missing"
    SYMLINK = "symlink"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class FileBackup:
    """What was at ``path`` before a change: nothing, a symlink (its target), or a file (bytes, mode,
    owner)."""

    path: Path
    kind: _Kind
    content: bytes = b""
    link_target: str = ""
    mode: int = 0o644
    uid: int = -1
    gid: int = -1

    @classmethod
    def take(cls, path: str | os.PathLike[str]) -> "FileBackup":
        """Remember what is at ``path`` now (without following a symlink there)."""
        where = Path(path)
        try:
            info = os.lstat(where)
            if stat.S_ISLNK(info.st_mode):
                return cls(where, _Kind.SYMLINK, link_target=os.readlink(where))
            return cls(
                where,
                _Kind.FILE,
                content=where.read_bytes(),
                mode=stat.S_IMODE(info.st_mode),
                uid=info.st_uid,
                gid=info.st_gid,
            )
        except FileNotFoundError:
            return cls(where, _Kind.MISSING)
        except OSError as exc:
            raise SystemSetupError(f"cannot read {where}: {exc.strerror}") from exc

    def restore(self) -> None:
        """Put back what was there."""
        if self.kind is _Kind.MISSING:
            self.path.unlink(missing_ok=True)
        elif self.kind is _Kind.SYMLINK:
            temporary = _temporary_name(self.path)
            temporary.unlink(missing_ok=True)
            os.symlink(self.link_target, temporary)
            os.replace(temporary, self.path)
        else:
            write_file(self.path, self.content, mode=self.mode, uid=self.uid, gid=self.gid)


def write_file(
    path: str | os.PathLike[str], content: bytes, *, mode: int = 0o644, uid: int = -1, gid: int = -1
) -> None:
    """Replace ``path`` atomically (a symlink there is replaced, not written through).

    A file that is a mount point (Docker bind-mounts /etc/resolv.conf) cannot be renamed over; it is
    rewritten in place instead.
    """
    where = Path(path)
    temporary = _temporary_name(where)
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        try:
            os.write(fd, content)
            os.fchmod(fd, mode)  # not narrowed by the umask
            # Only when it differs: an unprivileged caller may not chown, even to the owner it already has
            # when that owner is not mapped in its user namespace.
            created = os.fstat(fd)
            if (uid >= 0 and uid != created.st_uid) or (gid >= 0 and gid != created.st_gid):
                os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        try:
            os.replace(temporary, where)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            if exc.errno != errno.EBUSY:
                raise
            with open(where, "r+b") as file:
                file.truncate()
                file.write(content)
    except OSError as exc:
        raise SystemSetupError(f"cannot write {where}: {exc.strerror}") from exc


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.pysstp-{os.getpid()}")
