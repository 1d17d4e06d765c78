"""The local user database: a TOML file of NT hashes that ``pysstp user`` writes and the server reads.

The file (``/etc/pysstp/users.toml`` by default) has one table per user::

    [users.alice]
    nt_hash = "8846f7eaee8fb117ad06bdd830b7586c"   # MD4 of the UTF-16LE password: 32 hex digits
    enabled = true                                 # optional, default true
    address = "10.77.0.50"                         # optional: this user always gets this IPv4 address
    routes = ["192.168.50.0/24"]                   # optional: networks behind this client (site-to-site)
    push_routes = ["10.99.0.0/16"]                 # optional: networks the client routes into the tunnel
    domain = "corp.example"                        # optional: DNS suffix for the client
    max_sessions = 2                               # optional: default is the server's per-user limit
    rate_in = 10000000                             # optional: bit/s this user may send, 0 = unlimited
    rate_out = 20000000                            # optional: bit/s this user may receive, 0 = unlimited

    [users."CORP\\bob"]                            # any name without control characters
    nt_hash = "..."

**No plaintext, ever.** The NT hash is all the server needs to check MS-CHAPv2, EAP-MSCHAPv2 and PAP.
CHAP-MD5 and EAP-MD5 need the plaintext, so with this store :meth:`UserDatabase.password` is always
``None`` and those two methods fail for every user: leave them out of the server's auth methods. The hash
is still a password equivalent for MS-CHAPv2, hence mode 0600 and no command that prints it.

**Reading is strict.** Unknown fields, wrong types, bad addresses and two users with the same fixed
address raise :class:`~pysstp.errors.ConfigError` naming the file, the user and the field, so a typo is
found when it is saved, not when that user fails to connect.

**Reloading never loses users.** :meth:`UserDatabase.reload_if_changed` is a cheap ``stat`` (mtime, size,
inode); the server calls it every 2 s while it runs, and :meth:`UserDatabase.reload` on SIGHUP. If the
new file is broken, the users loaded before stay in force: ``reload`` raises, while ``reload_if_changed``
logs one warning per broken version of the file, keeps the problem in :attr:`UserDatabase.load_error`
and returns ``False``.

**Writing is atomic.** Every change re-reads the file under an exclusive lock (so two ``pysstp user`` runs
cannot lose each other's change), writes a temporary file in the same directory, fsyncs it and renames it
over the old one: a reader sees the old file or the new one, never half of one. The file is rewritten as
a whole, so comments an administrator added are not kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import stat
import tempfile
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from pathlib import Path

from pysstp.aaa.backend import pushed_network
from pysstp.dhcp import domain_name
from pysstp.errors import ConfigError
from pysstp.ppp.auth.mschapv2 import nt_password_hash

log = logging.getLogger(__name__)

IpNetwork = IPv4Network | IPv6Network

Signature = tuple[int, int, int]
"""(mtime in ns, size, inode) of the file: when any of them changes, the file is read again."""

MAX_NAME_BYTES = 255
"""PAP carries the user name behind a one-byte length, so a longer name could never log in."""
MAX_PASSWORD_CHARS = 256
"""RFC 2759 limits MS-CHAPv2 passwords to 256 Unicode characters."""
FILE_MODE = 0o600
"""Mode of a new file: NT hashes are password equivalents for MS-CHAPv2."""

FIELDS = (
    "nt_hash",
    "enabled",
    "address",
    "routes",
    "push_routes",
    "domain",
    "max_sessions",
    "rate_in",
    "rate_out",
)
"""The keys a ``[users.NAME]`` table may hold, in the order they are written."""

_NT_HASH = re.compile(r"[0-9a-fA-F]{32}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NOT_REJECTED: Signature = (-1, -1, -1)

HEADER = """\
# pysstp user database. Manage it with `pysstp user add|del|passwd|enable|disable|list`. Hand edits are
# fine too (a running server picks them up), but every change rewrites the file, so comments are lost.
#
# nt_hash is MD4 of the UTF-16LE password: enough for the server to check MS-CHAPv2, EAP-MSCHAPv2 and
# PAP, and enough for anyone who can read it to log in with MS-CHAPv2. Keep this file mode 0600 (0640
# if the server reads it through its group).
#
# [users.NAME] fields: nt_hash = "32 hex digits"; optional: enabled = true|false, address = "fixed IPv4
# address", routes = ["networks behind this client", ...], max_sessions = N, rate_in = BIT/S (client to
# server) and rate_out = BIT/S (server to client), 0 = unlimited.
# push_routes = ["networks the client routes into the tunnel", ...] and domain = "DNS suffix" replace the
# server's push.routes and push.domain for this user.
"""


@dataclass(frozen=True, slots=True)
class UserEntry:
    """One user as the server sees it; ``nt_hash`` stays out of ``repr`` so no log line can leak it."""

    name: str
    nt_hash: bytes = field(repr=False)
    enabled: bool = True
    address: IPv4Address | None = None
    """Fixed tunnel address for this user (the server refuses one outside its pool); ``None``: any from
    the pool."""
    routes: tuple[IpNetwork, ...] = ()
    """Networks behind this client, routed into its session while it is connected."""
    push_routes: tuple[IpNetwork, ...] = ()
    """Networks this client routes into the tunnel (DHCPINFORM, router advertisements); empty: the
    server's ``push.routes``."""
    domain: str = ""
    """DNS suffix pushed to this client; empty: the server's ``push.domain``."""
    max_sessions: int | None = None
    """Sessions this user may hold at once; ``None``: the server's default."""
    rate_in: int | None = None
    """Bit/s each session of this user may send (client to server), 0 = unlimited; ``None``: the
    server's ``limits.rate_in``."""
    rate_out: int | None = None
    """Bit/s each session of this user may receive (server to client), 0 = unlimited; ``None``: the
    server's ``limits.rate_out``."""


class UserDatabase:
    """The user database file, loaded into memory; a :class:`~pysstp.aaa.local.CredentialStore`.

    ``UserDatabase(path)`` loads the file at once and raises :class:`ConfigError` if it is missing or
    invalid; with ``create=True`` a missing file is an empty database that the first change creates.
    Look-ups are exact: :func:`~pysstp.aaa.local.lookup_user` is what lets ``CORP\\alice`` find
    ``alice``.
    """

    def __init__(self, path: Path | str, *, create: bool = False) -> None:
        self.path = Path(path)
        self._users: dict[str, UserEntry] = {}
        self._signature: Signature | None = None
        self._rejected: Signature | None = _NOT_REJECTED
        self.load_error: ConfigError | None = None
        """Why the file on disk is not what is in force, or ``None`` when it is."""
        # os.path.exists, unlike Path.exists, says False instead of raising when a directory on the way is
        # not searchable; the first write then reports that as a ConfigError.
        if not create or os.path.exists(self.path):
            self.reload()

    # -- CredentialStore ----------------------------------------------------------------------------

    def nt_hash(self, user: str) -> bytes | None:
        """The NT hash of an enabled user; ``None`` for unknown and disabled users alike."""
        entry = self._users.get(user)
        return entry.nt_hash if entry is not None and entry.enabled else None

    def password(self, user: str) -> str | None:
        """Always ``None``: the database keeps no plaintext (so CHAP-MD5 and EAP-MD5 cannot succeed)."""
        return None

    # -- reading -------------------------------------------------------------------------------------

    def entry(self, user: str) -> UserEntry | None:
        """Everything known about ``user`` (exact name), enabled or not, or ``None``."""
        return self._users.get(user)

    def entries(self) -> list[UserEntry]:
        """All users, in the order of the file."""
        return list(self._users.values())

    def __len__(self) -> int:
        return len(self._users)

    def require(self, name: str) -> UserEntry:
        """The entry of ``name``; :class:`ConfigError` if there is none (commands check before prompting)."""
        return _existing(self.path, self._users, name)

    def require_absent(self, name: str) -> None:
        """:class:`ConfigError` unless ``name`` is a valid name that no user has yet."""
        _ensure_absent(self.path, self._users, name)

    def reload(self) -> None:
        """Read the file again; on :class:`ConfigError` the users loaded before stay in force."""
        try:
            loaded = _read(self.path)
            if loaded is None:
                raise ConfigError(f"{self.path}: no such file (create it with `pysstp user add NAME`)")
        except ConfigError as exc:
            self.load_error = exc
            raise
        self._users, self._signature = loaded
        self.load_error = None

    def take_over(self, other: UserDatabase) -> None:
        """Serve ``other``'s file and users from now on: a reload read and checked before it applies."""
        self.path, self._users, self._signature = other.path, other._users, other._signature
        self._rejected, self.load_error = other._rejected, other.load_error

    def reload_if_changed(self) -> bool:
        """Reload if the file changed since it was read; ``True`` if new users are now in force.

        Never raises: a broken file is logged once per version and kept in :attr:`load_error`, and the
        users loaded before stay in force (an administrator's typo must not lock everyone out).
        """
        try:
            signature: Signature | None = _signature(os.stat(self.path))
        except OSError:
            signature = None  # gone or unreadable: reload() says which
        if signature in (self._signature, self._rejected):
            return False
        try:
            self.reload()
        except ConfigError as exc:
            self._rejected = signature
            log.warning("%s; still using the %d users loaded before", exc, len(self._users))
            return False
        return True

    # -- writing -------------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        password: str,
        *,
        address: str | IPv4Address | None = None,
        routes: Iterable[str | IpNetwork] = (),
        push_routes: Iterable[str | IpNetwork] = (),
        domain: str = "",
        enabled: bool = True,
        max_sessions: int | None = None,
        rate_in: int | None = None,
        rate_out: int | None = None,
    ) -> UserEntry:
        """Add a new user; :class:`ConfigError` if the name is taken or any value is invalid."""
        table: dict[str, object] = {"nt_hash": _hash_password(password).hex(), "enabled": enabled}
        if address is not None:
            table["address"] = str(address)
        table["routes"] = [str(route) for route in routes]
        table["push_routes"] = [str(route) for route in push_routes]
        if domain:
            table["domain"] = domain
        optional = {"max_sessions": max_sessions, "rate_in": rate_in, "rate_out": rate_out}
        table.update((key, value) for key, value in optional.items() if value is not None)
        entry = _entry_from_table(self.path, name, table)

        def change(users: dict[str, UserEntry]) -> None:
            _ensure_absent(self.path, users, name)
            users[name] = entry

        self._modify(change)
        return entry

    def remove(self, name: str) -> None:
        """Remove a user; :class:`ConfigError` if there is none of that name."""

        def change(users: dict[str, UserEntry]) -> None:
            del users[_existing(self.path, users, name).name]

        self._modify(change)

    def set_password(self, name: str, password: str) -> None:
        """Store the NT hash of a new password for an existing user."""
        nt_hash = _hash_password(password)
        self._update(name, lambda entry: replace(entry, nt_hash=nt_hash))

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable an existing user; a disabled user is refused as if unknown."""
        self._update(name, lambda entry: replace(entry, enabled=enabled))

    def set_rates(self, name: str, *, rate_in: int | None = None, rate_out: int | None = None) -> None:
        """Set an existing user's rate limits (bit/s, 0 = unlimited); ``None`` leaves one as it is."""
        try:
            new_in, new_out = _parse_rate("rate_in", rate_in), _parse_rate("rate_out", rate_out)
        except _Invalid as exc:
            raise ConfigError(f"{self.path}: user '{name}': {exc}") from None
        self._update(
            name,
            lambda entry: replace(
                entry,
                rate_in=entry.rate_in if new_in is None else new_in,
                rate_out=entry.rate_out if new_out is None else new_out,
            ),
        )

    def set_push(
        self, name: str, *, push_routes: Iterable[str] | None = None, domain: str | None = None
    ) -> None:
        """Set an existing user's pushed routes and domain; ``None`` leaves one as it is, empty clears it."""
        try:
            routes = None if push_routes is None else _parse_push_routes([r for r in push_routes if r])
            new_domain = None if domain is None else _parse_domain(domain)
        except _Invalid as exc:
            raise ConfigError(f"{self.path}: user '{name}': {exc}") from None
        self._update(
            name,
            lambda entry: replace(
                entry,
                push_routes=entry.push_routes if routes is None else routes,
                domain=entry.domain if new_domain is None else new_domain,
            ),
        )

    def _update(self, name: str, change: Callable[[UserEntry], UserEntry]) -> None:
        def apply(users: dict[str, UserEntry]) -> None:
            users[name] = change(_existing(self.path, users, name))

        self._modify(apply)

    def _modify(self, change: Callable[[dict[str, UserEntry]], None]) -> None:
        """Re-read the file under the lock, apply ``change`` to its users and write the result."""
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise ConfigError(f"{directory}: cannot use this directory: {exc.strerror}") from exc
        try:
            # The lock is on the directory because the file itself is replaced by every write, which
            # would leave a second writer holding a lock on the old inode. Closing the fd releases it.
            fcntl.flock(directory_fd, fcntl.LOCK_EX)
            loaded = _read(self.path)
            users = loaded[0] if loaded is not None else {}
            change(users)
            _check_addresses(self.path, users)
            signature = _write(self.path, directory_fd, users.values())
        finally:
            os.close(directory_fd)
        self._users, self._signature = users, signature
        self.load_error = None


# -- validation ---------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A field's problem in words; the caller adds which file and which user."""


def _check_name(path: Path, name: str) -> None:
    problem = None
    if not name:
        problem = "a user name cannot be empty"
    elif any(unicodedata.category(char) == "Cs" for char in name):
        problem = f"user name {name!r} is not valid text (not UTF-8?)"
    elif any(unicodedata.category(char) == "Cc" for char in name):
        problem = f"user name {name!r} contains a control character"
    elif len(name.encode()) > MAX_NAME_BYTES:
        problem = f"user name {name[:20]!r}... is longer than {MAX_NAME_BYTES} bytes"
    if problem is not None:
        raise ConfigError(f"{path}: {problem}")


def _hash_password(password: str) -> bytes:
    if not password:
        raise ConfigError("the password is empty")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ConfigError(f"the password is longer than {MAX_PASSWORD_CHARS} characters (MS-CHAPv2's limit)")
    if any(unicodedata.category(char) == "Cs" for char in password):
        raise ConfigError("the password is not valid text (not UTF-8?)")
    return nt_password_hash(password)


def _entry_from_table(path: Path, name: str, table: object) -> UserEntry:
    """Validate one ``[users.NAME]`` table, from the file or from :meth:`UserDatabase.add`."""
    _check_name(path, name)
    try:
        return _parse_entry(name, table)
    except _Invalid as exc:
        raise ConfigError(f"{path}: user '{name}': {exc}") from None


def _parse_entry(name: str, table: object) -> UserEntry:
    if not isinstance(table, dict):
        raise _Invalid("is not a table (write it as [users.NAME] with fields below)")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise _Invalid(f"unknown field '{unknown[0]}' (known: {', '.join(FIELDS)})")
    return UserEntry(
        name=name,
        nt_hash=_parse_nt_hash(table.get("nt_hash")),
        enabled=_parse_enabled(table.get("enabled", True)),
        address=_parse_address(table.get("address")),
        routes=_parse_routes(table.get("routes", [])),
        push_routes=_parse_push_routes(table.get("push_routes", [])),
        domain=_parse_domain(table.get("domain", "")),
        max_sessions=_parse_max_sessions(table.get("max_sessions")),
        rate_in=_parse_rate("rate_in", table.get("rate_in")),
        rate_out=_parse_rate("rate_out", table.get("rate_out")),
    )


def _parse_nt_hash(value: object) -> bytes:
    if value is None:
        raise _Invalid("nt_hash is missing (set a password with `pysstp user passwd NAME`)")
    if not isinstance(value, str) or not _NT_HASH.fullmatch(value):
        raise _Invalid("nt_hash is not 32 hexadecimal digits")
    return bytes.fromhex(value)


def _parse_enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"enabled is {value!r}, not true or false")
    return value


def _parse_address(value: object) -> IPv4Address | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f'address {value!r} is not a string like "10.0.0.50"')
    try:
        address = IPv4Address(value)
    except ValueError:
        raise _Invalid(f"address '{value}' is not an IPv4 address") from None
    if address.is_unspecified or address.is_loopback or address.is_multicast or address.is_reserved:
        raise _Invalid(f"address '{value}' cannot be given to a client")
    return address


def _parse_routes(value: object) -> tuple[IpNetwork, ...]:
    return _parse_networks(value, "routes", "route", "192.168.50.0/24", _parse_route)


def _parse_route(item: str) -> IpNetwork:
    try:
        route = ip_network(item)
    except ValueError:
        try:
            meant = ip_network(item, strict=False)
        except ValueError:
            raise _Invalid(f"route '{item}' is not an IP network") from None
        raise _Invalid(f"route '{item}' has host bits set (did you mean {meant}?)") from None
    if route.prefixlen == 0:
        raise _Invalid(f"route '{item}' would send all traffic to this client")
    return route


def _parse_push_routes(value: object) -> tuple[IpNetwork, ...]:
    return _parse_networks(value, "push_routes", "push route", "10.99.0.0/16", _parse_push_route)


def _parse_push_route(item: str) -> IpNetwork:
    try:
        return pushed_network(item)
    except ValueError as exc:
        raise _Invalid(f"push route: {exc}") from None


def _parse_networks(
    value: object, key: str, noun: str, example: str, parse: Callable[[str], IpNetwork]
) -> tuple[IpNetwork, ...]:
    """The networks of the list under ``key``, each read by ``parse``, without repeats."""
    if not isinstance(value, list):
        raise _Invalid(f'{key} is {value!r}, not a list like ["{example}"]')
    networks: list[IpNetwork] = []
    for item in value:
        if not isinstance(item, str):
            raise _Invalid(f'{noun} {item!r} is not a string like "{example}"')
        network = parse(item)
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def _parse_domain(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f'domain is {value!r}, not a string like "corp.example"')
    if not value:
        return ""
    try:
        return domain_name(value)
    except ValueError as exc:
        raise _Invalid(f"domain: {exc}") from None


def _parse_max_sessions(value: object) -> int | None:
    if value is None:
        return None
    # bool is an int in Python, but `max_sessions = true` is a mistake, not 1.
    if type(value) is not int or value < 1:
        raise _Invalid(f"max_sessions is {value!r}, not a whole number of at least 1")
    return value


def _parse_rate(key: str, value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise _Invalid(f"{key} is {value!r}, not a whole number of bit/s (0 = unlimited)")
    return value


def _check_addresses(path: Path, users: Mapping[str, UserEntry]) -> None:
    """Two users with one fixed address could never be connected at once: almost surely a typo."""
    owners: dict[IPv4Address, str] = {}
    for entry in users.values():
        if entry.address is None:
            continue
        owner = owners.setdefault(entry.address, entry.name)
        if owner != entry.name:
            raise ConfigError(
                f"{path}: user '{entry.name}': address '{entry.address}' is taken by user '{owner}'"
            )


def _existing(path: Path, users: Mapping[str, UserEntry], name: str) -> UserEntry:
    entry = users.get(name)
    if entry is None:
        raise ConfigError(f"{path}: no user '{name}'")
    return entry


def _ensure_absent(path: Path, users: Mapping[str, UserEntry], name: str) -> None:
    _check_name(path, name)
    if name in users:
        raise ConfigError(f"{path}: user '{name}' already exists")


# -- the file -----------------------------------------------------------------------------------------


def _signature(info: os.stat_result) -> Signature:
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _read(path: Path) -> tuple[dict[str, UserEntry], Signature] | None:
    """The users in the file and the signature of what was read; ``None`` if there is no file."""
    try:
        with path.open("rb") as file:
            info = os.fstat(file.fileno())
            document = tomllib.load(file)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if info.st_mode & stat.S_IROTH:
        log.warning("%s is readable by every user, and its NT hashes are enough to log in", path)
    unknown = sorted(set(document) - {"users"})
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}' (users go in [users.NAME] tables)")
    tables = document.get("users", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: 'users' is not a table (users go in [users.NAME] tables)")
    users = {name: _entry_from_table(path, name, table) for name, table in tables.items()}
    _check_addresses(path, users)
    return users, _signature(info)


def _write(path: Path, directory_fd: int, users: Iterable[UserEntry]) -> Signature:
    """Replace the file atomically with ``users``; return the signature of the new file."""
    mode, owner = FILE_MODE, None
    with contextlib.suppress(FileNotFoundError):
        old = os.stat(path)
        # An admin who let the server's group read the file (0640) keeps that; nothing else is kept.
        mode |= old.st_mode & stat.S_IRGRP
        owner = (old.st_uid, old.st_gid)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as file:
            if owner is not None:
                # root editing a file the server's user owns must not take it away from the server;
                # anyone else cannot give files away, and then the new file is simply theirs.
                with contextlib.suppress(PermissionError):
                    os.fchown(file.fileno(), *owner)
            os.fchmod(file.fileno(), mode)
            file.write(_render(users).encode())
            file.flush()
            os.fsync(file.fileno())
            signature = _signature(os.fstat(file.fileno()))
        os.replace(temporary, path)
        os.fsync(directory_fd)  # the rename itself must survive a crash
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise ConfigError(f"{path}: cannot write: {exc.strerror}") from exc
        raise
    return signature


def _render(users: Iterable[UserEntry]) -> str:
    blocks = [HEADER]
    for entry in users:
        lines = [
            f"[users.{_toml_key(entry.name)}]",
            f'nt_hash = "{entry.nt_hash.hex()}"',
            f"enabled = {str(entry.enabled).lower()}",
        ]
        if entry.address is not None:
            lines.append(f'address = "{entry.address}"')
        if entry.routes:
            lines.append("routes = [" + ", ".join(f'"{route}"' for route in entry.routes) + "]")
        if entry.push_routes:
            lines.append("push_routes = [" + ", ".join(f'"{route}"' for route in entry.push_routes) + "]")
        if entry.domain:
            lines.append(f'domain = "{entry.domain}"')
        for key in ("max_sessions", "rate_in", "rate_out"):
            value = getattr(entry, key)
            if value is not None:
                lines.append(f"{key} = {value}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def _toml_key(name: str) -> str:
    """A bare key where TOML allows one, else a basic string (names hold no control characters)."""
    if _BARE_KEY.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
