"""``pysstp user``: the administrator's view of the user database, through ``pysstp.cli.main``."""

from __future__ import annotations

import getpass
import io
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysstp.aaa import UserDatabase
from pysstp.cli import main
from pysstp.link import LinkUp
from pysstp.ppp.auth.mschapv2 import nt_password_hash
from pysstp.ppp.events import AuthenticationFailed

from helpers.conversation import Conversation, client_config

PASSWORD = "correct horse battery staple"


@pytest.fixture
def users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The database path; no password source and no terminal unless a test sets one up."""
    monkeypatch.delenv("PYSSTP_PASSWORD", raising=False)
    monkeypatch.delenv("PYSSTP_USERS", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return tmp_path / "pysstp" / "users.toml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def user(capsys: pytest.CaptureFixture[str], users: Path, *argv: str) -> tuple[int, str, str]:
    return run(capsys, "user", *argv, "--users", str(users))


def fails_with(result: tuple[int, str, str], message: str) -> None:
    """A user mistake: exit 1, exactly one line on stderr that says what, and no traceback."""
    code, out, err = result
    assert code == 1
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("pysstp: ")
    assert message in err
    assert "Traceback" not in err


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSSTP_PASSWORD", PASSWORD)


@pytest.fixture
def terminal(users: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make stdin (after ``users`` replaced it) a terminal; tests append what is typed at each prompt."""
    typed: list[str] = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": typed.pop(0))
    yield typed
    assert typed == [], "not every prompt was asked"


def test_round_trip_add_list_passwd_del(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None
) -> None:
    assert user(capsys, users, "add", "alice") == (0, f"added user 'alice' to {users}\n", "")
    assert (
        user(capsys, users, "add", "branch1", "--address", "10.0.0.50", "--route", "192.168.50.0/24")[0] == 0
    )
    assert UserDatabase(users).nt_hash("alice") == nt_password_hash(PASSWORD)

    code, out, _ = user(capsys, users, "list")
    assert code == 0
    assert out.splitlines() == [
        "NAME     ENABLED  ADDRESS    ROUTES           MAX SESSIONS  RATE IN  RATE OUT",
        "alice    yes      -          -                -             -        -",
        "branch1  yes      10.0.0.50  192.168.50.0/24  -             -        -",
    ]
    assert nt_password_hash(PASSWORD).hex() not in out

    password_file = users.parent / "new.pw"
    password_file.write_text("n3w password\r\nsecond line is ignored\n")
    assert user(capsys, users, "passwd", "alice", "--password-file", str(password_file)) == (
        0,
        f"changed the password of user 'alice' in {users}\n",
        "",
    )
    assert UserDatabase(users).nt_hash("alice") == nt_password_hash("n3w password")

    assert user(capsys, users, "del", "alice") == (0, f"removed user 'alice' from {users}\n", "")
    assert [entry.name for entry in UserDatabase(users).entries()] == ["branch1"]


def test_file_has_no_password_and_mode_0600(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None
) -> None:
    user(capsys, users, "add", "alice")
    user(capsys, users, "passwd", "alice")
    raw = users.read_bytes()
    assert PASSWORD.encode() not in raw
    assert PASSWORD.encode("utf-16-le") not in raw
    assert stat.S_IMODE(users.stat().st_mode) == 0o600


def test_enable_disable(capsys: pytest.CaptureFixture[str], users: Path, password_env: None) -> None:
    user(capsys, users, "add", "bob", "--disabled")
    assert UserDatabase(users).nt_hash("bob") is None
    assert user(capsys, users, "enable", "bob") == (0, f"enabled user 'bob' in {users}\n", "")
    assert UserDatabase(users).nt_hash("bob") == nt_password_hash(PASSWORD)
    assert user(capsys, users, "disable", "bob") == (0, f"disabled user 'bob' in {users}\n", "")
    _, out, _ = user(capsys, users, "list")
    assert out.splitlines()[1].split() == ["bob", "no", "-", "-", "-", "-", "-"]


def test_rate_limits_on_add_and_set(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None
) -> None:
    assert user(capsys, users, "add", "bob", "--rate-in", "2M", "--rate-out", "0")[0] == 0
    entry = UserDatabase(users).require("bob")
    assert (entry.rate_in, entry.rate_out) == (2_000_000, 0)
    assert user(capsys, users, "set", "bob", "--rate-out", "512k") == (
        0,
        f"user 'bob' in {users}: rate in 2 Mbit/s, rate out 512 kbit/s\n",
        "",
    )
    assert UserDatabase(users).require("bob").rate_out == 512_000
    _, out, _ = user(capsys, users, "list")
    assert out.splitlines()[1].split()[-4:] == ["2", "Mbit/s", "512", "kbit/s"]


def test_password_from_stdin_file(
    capsys: pytest.CaptureFixture[str], users: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{PASSWORD}\n"))
    assert user(capsys, users, "add", "alice", "--password-file", "-")[0] == 0
    assert UserDatabase(users).nt_hash("alice") == nt_password_hash(PASSWORD)


def test_password_file_wins_over_the_environment(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None
) -> None:
    password_file = users.parent.parent / "pw"
    password_file.write_text("from the file")
    user(capsys, users, "add", "alice", "--password-file", str(password_file))
    assert UserDatabase(users).nt_hash("alice") == nt_password_hash("from the file")


def test_interactive_password_is_asked_twice(
    capsys: pytest.CaptureFixture[str], users: Path, terminal: list[str]
) -> None:
    terminal += [PASSWORD, PASSWORD]
    assert user(capsys, users, "add", "alice")[0] == 0
    assert UserDatabase(users).nt_hash("alice") == nt_password_hash(PASSWORD)


def test_interactive_passwords_that_differ_change_nothing(
    capsys: pytest.CaptureFixture[str], users: Path, terminal: list[str]
) -> None:
    terminal += [PASSWORD, PASSWORD + "x"]
    fails_with(user(capsys, users, "add", "alice"), "the two passwords differ; nothing was changed")
    assert not users.exists()


def test_duplicate_user_fails_before_asking_for_a_password(
    capsys: pytest.CaptureFixture[str], users: Path, terminal: list[str]
) -> None:
    terminal += [PASSWORD, PASSWORD]
    user(capsys, users, "add", "alice")
    fails_with(user(capsys, users, "add", "alice"), f"{users}: user 'alice' already exists")


def test_no_password_source_without_a_terminal(capsys: pytest.CaptureFixture[str], users: Path) -> None:
    fails_with(
        user(capsys, users, "add", "alice"),
        "no password: stdin is not a terminal; use --password-file FILE (- for stdin) or $PYSSTP_PASSWORD",
    )


def test_database_path_from_the_environment(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYSSTP_USERS", str(users))
    assert run(capsys, "user", "add", "alice") == (0, f"added user 'alice' to {users}\n", "")
    assert UserDatabase(users).entry("alice") is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["add", "bob", "--address", "10.0.0.999"],
            "user 'bob': address '10.0.0.999' is not an IPv4 address",
        ),
        (["add", "bob", "--route", "10.1.2.3/8"], "route '10.1.2.3/8' has host bits set"),
        (["add", "bob", "--max-sessions", "0"], "max_sessions is 0"),
        (["add", "bob", "--rate-in", "fast"], "--rate-in: 'fast' is not a bit rate like 10M, 512k or 0"),
        (["set", "alice"], "nothing to set: give --rate-in and/or --rate-out"),
        (["set", "nobody", "--rate-out", "1M"], "no user 'nobody'"),
        (["add", ""], "a user name cannot be empty"),
        (["del", "nobody"], "no user 'nobody'"),
        (["passwd", "nobody"], "no user 'nobody'"),
        (["enable", "nobody"], "no user 'nobody'"),
        (
            ["add", "bob", "--password-file", "/nonexistent/pw"],
            "/nonexistent/pw: cannot read the password file",
        ),
    ],
)
def test_mistakes_are_one_line(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None, argv: list[str], message: str
) -> None:
    user(capsys, users, "add", "alice")
    before = users.read_bytes()
    fails_with(user(capsys, users, *argv), message)
    assert users.read_bytes() == before


def test_empty_password_file_is_refused(capsys: pytest.CaptureFixture[str], users: Path) -> None:
    password_file = users.parent.parent / "empty.pw"
    password_file.write_text("\n")
    fails_with(
        user(capsys, users, "add", "alice", "--password-file", str(password_file)), "the password is empty"
    )


def test_missing_or_broken_database_is_one_line(capsys: pytest.CaptureFixture[str], users: Path) -> None:
    fails_with(user(capsys, users, "list"), f"{users}: no such file")
    users.parent.mkdir()
    users.write_text('[users.bob]\nnt_hash = "xyz"\n')
    users.chmod(0o600)
    fails_with(user(capsys, users, "list"), f"{users}: user 'bob': nt_hash is not 32 hexadecimal digits")


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["user", "add", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "pysstp user add branch1 --address 10.77.0.50 --route 192.168.50.0/24" in out
    assert "--config" in out
    assert "--password-file" in out


# -- the acceptance test of the server issue: add, connect; del, the next connect fails ----------------


def dial(db: UserDatabase, password: str) -> Conversation:
    conv = Conversation.make(client_config(username="CORP\\alice", password=password), credentials=db)
    conv.start()
    conv.advance(10)
    return conv


def test_added_user_connects_and_deleted_user_does_not(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None
) -> None:
    user(capsys, users, "add", "alice")
    db = UserDatabase(users)  # the running server's copy

    up = dial(db, PASSWORD).events("server", LinkUp)
    assert len(up) == 1
    assert isinstance(up[0], LinkUp)
    assert up[0].user == "alice"

    user(capsys, users, "del", "alice")
    assert db.reload_if_changed() is True
    conv = dial(db, PASSWORD)
    assert not conv.events("server", LinkUp)
    assert conv.events("server", AuthenticationFailed)


@pytest.mark.parametrize("action", ["add", "passwd"])
@pytest.mark.parametrize("answered", [0, 1])
def test_end_of_input_at_a_password_prompt_is_one_line(
    capsys: pytest.CaptureFixture[str],
    users: Path,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    answered: int,
) -> None:
    """Ctrl-D at the first or the second prompt: one line, nothing changed."""
    UserDatabase(users, create=True).add("bob", PASSWORD)
    before = users.read_bytes()
    typed = [PASSWORD] * answered

    def getpass_until_eof(prompt: str = "") -> str:
        if not typed:
            raise EOFError
        return typed.pop(0)

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(getpass, "getpass", getpass_until_eof)
    name = "alice" if action == "add" else "bob"
    fails_with(
        user(capsys, users, action, name),
        "no password: the input ended at the prompt (Ctrl-D); or use --password-file FILE (- for stdin) "
        "or $PYSSTP_PASSWORD; nothing was changed",
    )
    assert users.read_bytes() == before


@pytest.fixture
def server_toml(tmp_path: Path, users: Path) -> Path:
    """A server.toml naming ``users`` (relative to itself) and a pool 10.9.0.0/24 (server 10.9.0.1)."""
    users.parent.mkdir(parents=True, exist_ok=True)
    config = users.parent / "server.toml"
    config.write_text(f'users = "{users.name}"\n\n[pool]\nnetwork = "10.9.0.0/24"\n')
    return config


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("10.77.0.5", "10.77.0.5 is outside the pool 10.9.0.0/24"),
        ("10.9.0.1", "10.9.0.1 is the server's own tunnel address"),
        ("10.9.0.255", "10.9.0.255 is the network or broadcast address of the pool 10.9.0.0/24"),
    ],
)
def test_add_refuses_a_fixed_address_the_server_of_config_cannot_route(
    capsys: pytest.CaptureFixture[str],
    users: Path,
    password_env: None,
    server_toml: Path,
    address: str,
    problem: str,
) -> None:
    result = run(capsys, "user", "add", "bob", "--address", address, "--config", str(server_toml))
    fails_with(result, f"--address: {problem}; the server could not route it to this user")
    assert not users.exists()


def test_config_names_the_database_and_the_pool_an_address_must_lie_in(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None, server_toml: Path
) -> None:
    assert run(capsys, "user", "add", "bob", "--address", "10.9.0.5", "--config", str(server_toml))[0] == 0
    entry = UserDatabase(users).entry("bob")
    assert entry is not None and str(entry.address) == "10.9.0.5"
    code, out, _ = run(capsys, "user", "list", "--config", str(server_toml))
    assert code == 0 and "10.9.0.5" in out


def test_add_with_push_routes_and_domain(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None
) -> None:
    flags = ["--push-route", "10.99.0.0/16", "--push-route", "2001:db8:99::/48", "--domain", "corp.example"]
    assert user(capsys, users, "add", "dave", *flags)[0] == 0
    entry = UserDatabase(users).entry("dave")
    assert entry is not None
    assert [str(n) for n in entry.push_routes] == ["10.99.0.0/16", "2001:db8:99::/48"]
    assert entry.domain == "corp.example"
    fails_with(user(capsys, users, "add", "erin", "--domain", "not a domain"), "is not a domain name")


def test_set_changes_pushed_routes_and_domain(
    capsys: pytest.CaptureFixture[str], users: Path, password_env: None
) -> None:
    assert user(capsys, users, "add", "dave", "--rate-in", "2M")[0] == 0
    code, out, _ = user(
        capsys, users, "set", "dave", "--push-route", "10.99.0.0/16", "--domain", "corp.example"
    )
    assert code == 0
    assert out == (
        f"user 'dave' in {users}: rate in 2 Mbit/s, rate out the server's, pushed routes 10.99.0.0/16, "
        "domain corp.example\n"
    )
    entry = UserDatabase(users).entry("dave")
    assert entry is not None and entry.rate_in == 2_000_000
    assert [str(n) for n in entry.push_routes] == ["10.99.0.0/16"] and entry.domain == "corp.example"
    # '' clears back to the server's.
    assert user(capsys, users, "set", "dave", "--push-route", "", "--domain", "")[0] == 0
    entry = UserDatabase(users).entry("dave")
    assert entry is not None and (entry.push_routes, entry.domain) == ((), "")
    fails_with(user(capsys, users, "set", "dave", "--push-route", "10.1.2.3/8"), "is not a network")
