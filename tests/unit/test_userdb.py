"""The user database: file format, validation, reloads that never lose users, atomic writes, auth."""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import threading
import tomllib
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysstp.aaa import UserDatabase, UserEntry
from pysstp.aaa.local import lookup_user
from pysstp.errors import ConfigError
from pysstp.link import LinkUp
from pysstp.ppp.auth.mschapv2 import nt_password_hash
from pysstp.ppp.constants import AuthMethod
from pysstp.ppp.events import AuthenticationFailed

from helpers.conversation import Conversation, client_config, server_config

PASSWORD = "Tr0ub4dor&3"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "etc" / "users.toml"


@pytest.fixture
def db(path: Path) -> UserDatabase:
    database = UserDatabase(path, create=True)
    database.add("alice", PASSWORD, address="10.0.0.50", routes=["192.168.50.0/24", "2001:db8:5::/48"])
    return database


def write(path: Path, text: str) -> None:
    """Another writer (an admin's editor): replace the file the way editors do, in one go."""
    temporary = path.with_suffix(".edit")
    temporary.write_text(text)
    temporary.chmod(0o600)
    temporary.replace(path)


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p != path)


# -- format ------------------------------------------------------------------------------------------


def test_added_user_round_trips_through_the_file(db: UserDatabase, path: Path) -> None:
    entry = UserDatabase(path).entry("alice")
    assert entry == UserEntry(
        name="alice",
        nt_hash=nt_password_hash(PASSWORD),
        enabled=True,
        address=IPv4Address("10.0.0.50"),
        routes=(IPv4Network("192.168.50.0/24"), IPv6Network("2001:db8:5::/48")),
    )
    assert db.nt_hash("alice") == nt_password_hash(PASSWORD)


def test_file_is_plain_toml_with_only_the_hash(db: UserDatabase, path: Path) -> None:
    raw = path.read_bytes()
    assert PASSWORD.encode() not in raw
    assert PASSWORD.encode("utf-16-le") not in raw
    assert tomllib.loads(raw.decode())["users"]["alice"] == {
        "nt_hash": nt_password_hash(PASSWORD).hex(),
        "enabled": True,
        "address": "10.0.0.50",
        "routes": ["192.168.50.0/24", "2001:db8:5::/48"],
    }


def test_new_file_is_0600_and_the_directory_is_created(db: UserDatabase, path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("before", "after"), [(0o640, 0o640), (0o644, 0o640), (0o606, 0o600), (0o666, 0o640)]
)
def test_rewrite_keeps_group_read_but_never_other_access(
    db: UserDatabase, path: Path, before: int, after: int
) -> None:
    path.chmod(before)
    db.set_enabled("alice", False)
    assert stat.S_IMODE(path.stat().st_mode) == after


def test_hash_never_shows_in_repr(db: UserDatabase) -> None:
    entry = db.require("alice")
    assert entry.nt_hash.hex() not in repr(entry)


def test_password_is_never_available(db: UserDatabase) -> None:
    assert db.password("alice") is None


@settings(max_examples=40, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
)
def test_any_valid_name_and_password_round_trip(name: str, password: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "users.toml"
        UserDatabase(path, create=True).add(name, password)
        assert UserDatabase(path).nt_hash(name) == nt_password_hash(password)


# -- look-ups ----------------------------------------------------------------------------------------


def test_domain_prefix_finds_the_plain_user(db: UserDatabase) -> None:
    assert lookup_user(db, "CORP\\alice") == "alice"
    assert lookup_user(db, "CORP\\mallory") is None


def test_a_name_stored_with_its_domain_is_found_as_sent(db: UserDatabase) -> None:
    db.add("CORP\\bob", "bobpw")
    assert lookup_user(db, "CORP\\bob") == "CORP\\bob"
    assert UserDatabase(db.path).nt_hash("CORP\\bob") == nt_password_hash("bobpw")


def test_disabled_user_looks_unknown_but_keeps_its_entry(db: UserDatabase) -> None:
    db.set_enabled("alice", False)
    assert db.nt_hash("alice") is None
    assert lookup_user(db, "alice") is None
    entry = db.entry("alice")
    assert entry is not None
    assert not entry.enabled
    db.set_enabled("alice", True)
    assert db.nt_hash("alice") == nt_password_hash(PASSWORD)


def test_optional_fields_have_defaults(path: Path) -> None:
    path.parent.mkdir()
    write(path, f'[users.carol]\nnt_hash = "{"AB" * 16}"\nmax_sessions = 3\n')
    assert UserDatabase(path).entries() == [UserEntry("carol", bytes([0xAB]) * 16, max_sessions=3)]


def test_rate_limits_are_kept_and_changed(db: UserDatabase, path: Path) -> None:
    assert (db.require("alice").rate_in, db.require("alice").rate_out) == (None, None)
    db.add("bob", "pw", rate_in=10_000_000, rate_out=0)
    assert "rate_in = 10000000\nrate_out = 0\n" in path.read_text()
    db.set_rates("bob", rate_out=512_000)
    db.set_rates("alice", rate_in=0)
    reread = UserDatabase(path)
    assert (reread.require("bob").rate_in, reread.require("bob").rate_out) == (10_000_000, 512_000)
    assert (reread.require("alice").rate_in, reread.require("alice").rate_out) == (0, None)
    with pytest.raises(ConfigError, match="user 'bob': rate_out is -5, not a whole number of bit/s"):
        db.set_rates("bob", rate_out=-5)
    with pytest.raises(ConfigError, match="no user 'carol'"):
        db.set_rates("carol", rate_in=1)


def test_a_rate_limit_in_the_file_is_a_whole_number(path: Path) -> None:
    path.parent.mkdir()
    write(path, f'[users.carol]\nnt_hash = "{"AB" * 16}"\nrate_in = "10M"\n')
    with pytest.raises(ConfigError, match="user 'carol': rate_in is '10M', not a whole number of bit/s"):
        UserDatabase(path)


def test_repeated_routes_are_kept_once(db: UserDatabase) -> None:
    entry = db.add("bob", "pw", routes=["10.9.0.0/16", IPv4Network("10.9.0.0/16")])
    assert entry.routes == (IPv4Network("10.9.0.0/16"),)


# -- changes -----------------------------------------------------------------------------------------


def test_set_password_and_remove(db: UserDatabase, path: Path) -> None:
    db.set_password("alice", "new password")
    assert UserDatabase(path).nt_hash("alice") == nt_password_hash("new password")
    db.remove("alice")
    assert UserDatabase(path).entries() == []
    assert db.entry("alice") is None


def test_duplicate_and_unknown_users_are_config_errors(db: UserDatabase) -> None:
    with pytest.raises(ConfigError, match="user 'alice' already exists"):
        db.add("alice", "x")
    for change in (
        lambda: db.remove("bob"),
        lambda: db.set_password("bob", "x"),
        lambda: db.set_enabled("bob", True),
        lambda: db.require("bob"),
    ):
        with pytest.raises(ConfigError, match="no user 'bob'"):
            change()


@pytest.mark.parametrize(
    ("name", "password", "kwargs", "message"),
    [
        ("", "pw", {}, "a user name cannot be empty"),
        ("bad\x07name", "pw", {}, "contains a control character"),
        ("bad\nname", "pw", {}, "contains a control character"),
        ("x" * 256, "pw", {}, "longer than 255 bytes"),
        ("bob", "", {}, "the password is empty"),
        ("bob", "p" * 257, {}, "longer than 256 characters"),
        ("bob", "pw", {"address": "10.0.0.999"}, "user 'bob': address '10.0.0.999' is not an IPv4 address"),
        ("bob", "pw", {"address": "2001:db8::1"}, "is not an IPv4 address"),
        ("bob", "pw", {"address": "127.0.0.1"}, "cannot be given to a client"),
        ("bob", "pw", {"address": "10.0.0.50"}, "address '10.0.0.50' is taken by user 'alice'"),
        ("bob", "pw", {"routes": ["10.1.2.3/8"]}, r"has host bits set \(did you mean 10.0.0.0/8\?\)"),
        ("bob", "pw", {"routes": ["nonsense"]}, "route 'nonsense' is not an IP network"),
        ("bob", "pw", {"routes": ["0.0.0.0/0"]}, "would send all traffic to this client"),
        ("bob", "pw", {"max_sessions": 0}, "max_sessions is 0, not a whole number of at least 1"),
        ("bob", "pw", {"rate_in": -1}, "rate_in is -1, not a whole number of bit/s"),
    ],
)
def test_invalid_additions_change_nothing(
    db: UserDatabase, path: Path, name: str, password: str, kwargs: dict[str, object], message: str
) -> None:
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=message):
        db.add(name, password, **kwargs)  # type: ignore[arg-type]
    assert path.read_bytes() == before
    assert [entry.name for entry in db.entries()] == ["alice"]


def test_changes_start_from_the_file_not_from_memory(path: Path) -> None:
    first = UserDatabase(path, create=True)
    second = UserDatabase(path, create=True)
    first.add("alice", "a")
    second.add("bob", "b")  # must not drop alice, whom `second` never loaded
    assert [entry.name for entry in UserDatabase(path).entries()] == ["alice", "bob"]


def test_concurrent_writers_lose_nothing_and_leave_no_temporary_files(path: Path) -> None:
    errors: list[BaseException] = []

    def add_some(worker: int) -> None:
        try:
            for index in range(10):
                UserDatabase(path, create=True).add(f"user{worker}-{index}", "pw")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add_some, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(UserDatabase(path)) == 40
    assert leftovers(path) == []


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(
    db: UserDatabase, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ConfigError, match="cannot write: No space left on device"):
        db.add("bob", "pw")
    assert path.read_bytes() == before
    assert leftovers(path) == []
    assert db.entry("bob") is None


# -- reading and reloading ---------------------------------------------------------------------------


def test_missing_file_is_an_error_unless_creating(path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        UserDatabase(path)
    assert len(UserDatabase(path, create=True)) == 0
    assert not path.exists()


GOOD_HASH = "8846f7eaee8fb117ad06bdd830b7586c"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[users.bob\n", "not valid TOML: .*line 1"),
        ("[user.bob]\n", "unknown key 'user'"),
        ("users = 3\n", "'users' is not a table"),
        ("[users]\nbob = 1\n", "user 'bob': is not a table"),
        ("[users.bob]\nenabled = true\n", "user 'bob': nt_hash is missing"),
        ('[users.bob]\nnt_hash = "1234"\n', "user 'bob': nt_hash is not 32 hexadecimal digits"),
        (
            f'[users.bob]\nnt_hash = "{GOOD_HASH}"\nadress = "10.0.0.5"\n',
            "user 'bob': unknown field 'adress'",
        ),
        (
            f'[users.bob]\nnt_hash = "{GOOD_HASH}"\nenabled = "yes"\n',
            "user 'bob': enabled is 'yes', not true or false",
        ),
        (
            f'[users.bob]\nnt_hash = "{GOOD_HASH}"\naddress = "10.0.0.999"\n',
            "user 'bob': address '10.0.0.999' is not an IPv4 address",
        ),
        (f'[users.bob]\nnt_hash = "{GOOD_HASH}"\naddress = 5\n', "user 'bob': address 5 is not a string"),
        (
            f'[users.bob]\nnt_hash = "{GOOD_HASH}"\nroutes = "10.0.0.0/8"\n',
            "user 'bob': routes is '10.0.0.0/8', not a list",
        ),
        (f'[users.bob]\nnt_hash = "{GOOD_HASH}"\nroutes = [10]\n', "user 'bob': route 10 is not a string"),
        (f'[users.bob]\nnt_hash = "{GOOD_HASH}"\nmax_sessions = true\n', "user 'bob': max_sessions is True"),
        (f'[users.""]\nnt_hash = "{GOOD_HASH}"\n', "a user name cannot be empty"),
        (
            f'[users."a\\u0001b"]\nnt_hash = "{GOOD_HASH}"\n',
            r"user name 'a\\x01b' contains a control character",
        ),
        (
            f'[users.a]\nnt_hash = "{GOOD_HASH}"\naddress = "10.0.0.9"\n'
            f'[users.b]\nnt_hash = "{GOOD_HASH}"\naddress = "10.0.0.9"\n',
            "user 'b': address '10.0.0.9' is taken by user 'a'",
        ),
    ],
)
def test_invalid_file_names_file_user_and_field(path: Path, text: str, message: str) -> None:
    path.parent.mkdir()
    write(path, text)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: {message}") as caught:
        UserDatabase(path)
    assert "\n" not in str(caught.value)


def test_a_file_others_can_read_is_loaded_with_a_warning(
    db: UserDatabase, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="pysstp.aaa.userdb"):
        assert len(UserDatabase(path)) == 1
    assert [record.getMessage() for record in caplog.records] == [
        f"{path} is readable by every user, and its NT hashes are enough to log in"
    ]


def test_non_utf8_and_unreadable_files_are_config_errors(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b'[users."\xff"]\n')
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        UserDatabase(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        UserDatabase(path)


def test_reload_if_changed_sees_another_writers_change(db: UserDatabase, path: Path) -> None:
    assert db.reload_if_changed() is False  # our own write is what we hold
    UserDatabase(path).add("bob", "bobpw")
    assert db.nt_hash("bob") is None
    assert db.reload_if_changed() is True
    assert db.nt_hash("bob") == nt_password_hash("bobpw")
    assert db.reload_if_changed() is False


def test_reload_if_changed_sees_a_same_size_edit_in_place(db: UserDatabase, path: Path) -> None:
    info = path.stat()
    with path.open("r+") as file:  # an editor that rewrites in place: same inode, same size
        file.write(path.read_text().replace("10.0.0.50", "10.0.0.51"))
    # Within one clock tick the mtime may not move; a hand edit always comes later than that.
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    assert (path.stat().st_ino, path.stat().st_size) == (info.st_ino, info.st_size)
    assert db.reload_if_changed() is True
    assert db.require("alice").address == IPv4Address("10.0.0.51")


def test_broken_edit_keeps_the_old_users_and_is_logged_once(
    db: UserDatabase, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = path.read_text()
    write(path, good.replace('address = "10.0.0.50"', 'address = "10.0.0.999"'))
    with caplog.at_level(logging.WARNING, logger="pysstp.aaa.userdb"):
        assert db.reload_if_changed() is False
        assert db.reload_if_changed() is False
    assert db.nt_hash("alice") == nt_password_hash(PASSWORD)
    assert db.load_error is not None
    assert "address '10.0.0.999' is not an IPv4 address" in str(db.load_error)
    assert [record.getMessage() for record in caplog.records] == [
        f"{db.load_error}; still using the 1 users loaded before"
    ]
    with pytest.raises(ConfigError, match=r"10\.0\.0\.999"):
        db.reload()
    assert db.nt_hash("alice") == nt_password_hash(PASSWORD)

    write(path, good.replace("10.0.0.50", "10.0.0.60"))
    assert db.reload_if_changed() is True
    assert db.load_error is None
    assert db.require("alice").address == IPv4Address("10.0.0.60")


def test_deleted_file_keeps_the_old_users(db: UserDatabase, path: Path) -> None:
    path.unlink()
    assert db.reload_if_changed() is False
    assert db.nt_hash("alice") is not None
    assert db.load_error is not None
    assert "no such file" in str(db.load_error)


# -- with the authentication code --------------------------------------------------------------------


def dial(db: UserDatabase, password: str, method: AuthMethod = AuthMethod.MSCHAP_V2) -> Conversation:
    conv = Conversation.make(
        client_config(username="alice", password=password, auth_methods=(method,)),
        server_config(auth_methods=(method,)),
        credentials=db,
    )
    conv.start()
    conv.advance(10)
    return conv


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP])
def test_users_authenticate_from_the_hash_alone(db: UserDatabase, method: AuthMethod) -> None:
    conv = dial(db, PASSWORD, method)
    assert conv.events("server", LinkUp)
    db.set_password("alice", "changed")
    conv = dial(db, PASSWORD, method)
    assert not conv.events("server", LinkUp)
    assert conv.events("server", AuthenticationFailed)
    assert dial(db, "changed", method).events("server", LinkUp)


def test_chap_md5_cannot_work_without_a_plaintext(db: UserDatabase) -> None:
    conv = dial(db, PASSWORD, AuthMethod.CHAP_MD5)
    assert not conv.events("server", LinkUp)
    assert conv.events("server", AuthenticationFailed)


def test_disabled_user_cannot_connect(db: UserDatabase) -> None:
    db.set_enabled("alice", False)
    assert dial(db, PASSWORD).events("server", AuthenticationFailed)


def test_push_routes_and_domain_round_trip(db: UserDatabase, path: Path) -> None:
    db.add("dave", PASSWORD, push_routes=["10.99.0.0/16", "2001:db8:99::/48"], domain="corp.example")
    entry = UserDatabase(path).entry("dave")
    assert entry is not None
    assert entry.push_routes == (IPv4Network("10.99.0.0/16"), IPv6Network("2001:db8:99::/48"))
    assert entry.domain == "corp.example"
    assert entry.routes == ()
    assert 'push_routes = ["10.99.0.0/16", "2001:db8:99::/48"]' in path.read_text()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('push_routes = "10.0.0.0/8"', "push_routes is '10.0.0.0/8', not a list"),
        ('push_routes = ["10.0.0.1/8"]', "push route: '10.0.0.1/8' is not a network"),
        ('push_routes = ["ff00::/8"]', "push route: ff00::/8 cannot be routed"),
        ('domain = "corp example"', "domain: 'corp example' is not a domain name"),
        ("domain = 5", "domain is 5, not a string"),
    ],
)
def test_invalid_push_fields(path: Path, fields: str, message: str) -> None:
    path.parent.mkdir()
    write(path, f'[users.bob]\nnt_hash = "{GOOD_HASH}"\n{fields}\n')
    with pytest.raises(ConfigError, match=f"user 'bob': {re.escape(message)}"):
        UserDatabase(path)


def test_set_push_leaves_what_is_not_given(db: UserDatabase, path: Path) -> None:
    db.set_push("alice", push_routes=["10.99.0.0/16"])
    db.set_push("alice", domain="corp.example")
    entry = UserDatabase(path).entry("alice")
    assert entry is not None
    assert (entry.push_routes, entry.domain) == ((IPv4Network("10.99.0.0/16"),), "corp.example")
    assert entry.routes == (IPv4Network("192.168.50.0/24"), IPv6Network("2001:db8:5::/48"))
    with pytest.raises(ConfigError, match="user 'alice': domain: 'a b' is not a domain name"):
        db.set_push("alice", domain="a b")
