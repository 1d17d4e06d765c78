"""`pysstp connect` option parsing, password sources, profiles and the messages users read."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from pysstp.cli import build_parser, main
from pysstp.client.app import backoff_delay
from pysstp.client.login import Login
from pysstp.client.report import auth_failure, describe, setup_failure, summary
from pysstp.client.settings import (
    ClientSettings,
    TlsSettings,
    parse_pin,
    parse_proxy,
    parse_target,
    settings_from_args,
)
from pysstp.client.tls import CertificateInfo, name_matches, refusal_message
from pysstp.client.tunnel import resolv_conf
from pysstp.commands.connect import read_login, read_profile
from pysstp.errors import ConfigError
from pysstp.link import ABORTED_AFTER_BINDING, LinkDown, LinkUp
from pysstp.ppp.constants import AuthMethod, Phase
from pysstp.ppp.events import AuthenticationFailed, PhaseChanged
from pysstp.sstp.constants import HashProtocol

from helpers.loopback import make_certificate

PIN = "ab" * 32


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["connect", *argv])


def settings(*argv: str) -> ClientSettings:
    """As ``pysstp connect`` builds them: the profile read, the environment passed in."""
    args = parse(*argv)
    return settings_from_args(args, read_profile(args.config, args.target), os.environ)


def login(*argv: str) -> Login:
    """The login ``pysstp connect`` reads for these flags."""
    return read_login(settings(*argv), os.environ)


@pytest.fixture(autouse=True)
def no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYSSTP_PASSWORD", raising=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://vpn.example.com:8443/", ("vpn.example.com", 8443)),
        ("https://vpn.example.com", ("vpn.example.com", 443)),
        ("https://[2001:db8::1]:4443/", ("2001:db8::1", 4443)),
        ("vpn.example.com", ("vpn.example.com", 443)),
        ("vpn.example.com:8443", ("vpn.example.com", 8443)),
        ("192.0.2.1:444", ("192.0.2.1", 444)),
        ("[2001:db8::1]:4443", ("2001:db8::1", 4443)),
        ("2001:db8::1", ("2001:db8::1", 443)),
    ],
)
def test_target(text: str, expected: tuple[str, int]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "host:0",
        "host:99999",
        "host:x",
        ":443",
        "[::1",
        "[::1]x",
        "http://h/",
        "https://h/sra/",
        "https://h:x/",
    ],
)
def test_bad_target(text: str) -> None:
    with pytest.raises(ValueError, match=r"port|HOST|host"):
        parse_target(text)


def test_the_url_form_is_taken_apart_or_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    s = settings("https://vpn.example.com:8443/", "--user", "u")
    assert (s.host, s.port) == ("vpn.example.com", 8443)
    assert main(["connect", "ftp://vpn.example.com/", "--user", "u"]) == 1
    assert capsys.readouterr().err == (
        "pysstp: 'ftp://vpn.example.com/': give the server as HOST[:PORT] (or https://HOST[:PORT]/)\n"
    )


def test_password_from_file_env_and_insecure_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from file\nsecond line\n")
    assert login("h", "--user", "u", "--password-file", str(tmp_path / "pw")).password == "from file"
    assert login("h", "--user", "u", "--password-insecure-cmdline", "flag").password == "flag"
    monkeypatch.setenv("PYSSTP_PASSWORD", "from env")
    assert login("h", "--user", "u").password == "from env"


def test_password_is_never_a_plain_flag() -> None:
    with pytest.raises(SystemExit):
        parse("h", "--user", "u", "--password", "x")


def test_no_password_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(ConfigError, match="--password-file"):
        login("h", "--user", "u")


def test_password_prompt_without_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "typed")
    assert login("h", "--user", "CORP\\alice").password == "typed"
    assert prompts == ["Password for CORP\\alice: "]


def test_ctrl_d_at_the_password_prompt_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def end_of_input(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", end_of_input)
    monkeypatch.setattr("pysstp.commands.connect.has_capability", lambda capability: True)
    assert main(["connect", "h", "--user", "alice", "--pin-sha256", PIN]) == 1
    assert capsys.readouterr().err == (
        "pysstp: no password: the input ended at the prompt (Ctrl-D); or use --password-file FILE "
        "(- for stdin) or $PYSSTP_PASSWORD\n"
    )


def test_full_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSSTP_PASSWORD", "pw")
    s = settings(
        "vpn:8443", "--user", "CORP\\alice", "--auth", "eap-mschapv2", "--auth", "pap", "--pin-sha256",
        PIN.upper(), "--sni", "front.example", "--tls-min", "1.3", "--route", "10.1.0.0/16", "--route",
        "10.2.0.0/16", "--default-route", "--dns", "--ifname", "vpn0", "--reconnect", "--max-attempts", "5",
        "--mru", "4091",
    )  # fmt: skip
    assert (s.host, s.port, s.user) == ("vpn", 8443, "CORP\\alice")
    assert s.auth_methods == (AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP)
    assert s.tls.pin_sha256 == bytes.fromhex(PIN)
    assert s.tls_name == "front.example"
    assert s.routes == (IPv4Network("10.1.0.0/16"), IPv4Network("10.2.0.0/16"))
    assert (s.default_route, s.dns, s.ifname, s.reconnect, s.max_attempts) == (True, True, "vpn0", True, 5)
    assert s.mru == 4091
    assert "pw" not in repr(s)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pin-sha256", "abcd"], "64 hex digits"),
        (["--insecure", "--pin-sha256", PIN], "cannot be combined"),
        (["--sni", "a", "--no-sni"], "contradict"),
        (["--route", "10.1.0.1/16"], "host bits"),
        (["--ifname", "much-too-long-name"], "too long"),
        (["--max-attempts", "-1"], "max-attempts"),
        (["--mru", "4096"], "between 576 and 4091"),
        (["--proxy", "socks5://p:1080"], "http://"),
    ],
)
def test_bad_flags_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str) -> None:
    monkeypatch.setenv("PYSSTP_PASSWORD", "pw")
    with pytest.raises(ConfigError, match=message):
        settings("h", "--user", "u", *argv)


def test_no_user() -> None:
    with pytest.raises(ConfigError, match="--user"):
        settings("h")


def test_pin_accepts_colons() -> None:
    assert parse_pin(":".join(["AB"] * 32)) == bytes.fromhex(PIN)


def test_proxy_url() -> None:
    proxy = parse_proxy("http://us%40er:p%3Ass@proxy.lan:3128")
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == ("proxy.lan", 3128, "us@er", "p:ss")
    assert parse_proxy("proxy.lan").port == 8080


def test_profile_with_flags_over_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSSTP_PASSWORD", "pw")
    config = tmp_path / "client.toml"
    config.write_text(
        '[work]\nserver = "vpn.corp:8443"\nuser = "CORP\\\\alice"\nroute = ["10.9.0.0/16"]\n'
        'pin-sha256 = "' + PIN + '"\ndns = true\n'
    )
    s = settings("work", "--config", str(config), "--ifname", "work0")
    assert (s.host, s.port, s.user, s.ifname, s.dns) == ("vpn.corp", 8443, "CORP\\alice", "work0", True)
    assert s.routes == (IPv4Network("10.9.0.0/16"),)
    # A target that is not a profile is a host name.
    assert settings("other.host", "--config", str(config), "--user", "u").host == "other.host"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[work]\nserver = "h"\nuser = "u"\npassword = "x"\n', "no passwords"),
        ('[work]\nserver = "h"\nuser = "u"\ncolour = "red"\n', "unknown setting.*colour"),
        ('[work]\nuser = "u"\n', "server"),
        ('[work]\nserver = "h"\nuser = "u"\ndns = "yes"\n', "true or false"),
        ("[work\n", "not valid TOML"),
    ],
)
def test_bad_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str) -> None:
    monkeypatch.setenv("PYSSTP_PASSWORD", "pw")
    config = tmp_path / "client.toml"
    config.write_text(body)
    with pytest.raises(ConfigError, match=message):
        settings("work", "--config", str(config))


# -- messages ----------------------------------------------------------------------------------------


def test_auth_failure_names_the_fix() -> None:
    event = AuthenticationFailed("alice", AuthMethod.MSCHAP_V2, "E=691 R=0", 691)
    assert auth_failure(event) == (
        "authentication failed (E=691) with MS-CHAPv2 as 'alice': wrong user name or password"
    )
    down = LinkDown("authentication failed: E=691", True)
    assert setup_failure(down, event, Phase.AUTHENTICATE, False) == auth_failure(event)


def test_auth_failure_quotes_the_servers_own_words() -> None:
    """A RADIUS Reply-Message reaches the user; pysstp's own generic 'Access denied' adds nothing."""
    locked = "wrong user name or password (E=691); server says 'Account locked until Monday'"
    event = AuthenticationFailed("alice", AuthMethod.MSCHAP_V2, locked, 691)
    assert auth_failure(event) == (
        "authentication failed (E=691) with MS-CHAPv2 as 'alice': wrong user name or password; "
        "server says 'Account locked until Monday'"
    )
    generic = "wrong user name or password (E=691); server says 'Access denied'"
    assert auth_failure(AuthenticationFailed("alice", AuthMethod.MSCHAP_V2, generic, 691)) == (
        "authentication failed (E=691) with MS-CHAPv2 as 'alice': wrong user name or password"
    )


def test_auth_failure_of_an_unanswered_authentication_service_does_not_blame_the_password() -> None:
    event = AuthenticationFailed("alice", AuthMethod.MSCHAP_V2, "E=645 R=0", 645)
    assert auth_failure(event) == (
        "authentication failed (E=645) with MS-CHAPv2 as 'alice': the server could not check the login "
        "(its authentication service did not answer); try again later"
    )


def test_unsupported_auth_is_explained() -> None:
    down = LinkDown("server offers only EAP-TLS authentication; we accept only MS-CHAPv2", True)
    assert "pysstp supports" in setup_failure(down, None, Phase.ESTABLISH, False)


def test_abort_after_our_binding_is_explained() -> None:
    down = LinkDown(f"peer aborted the call (invalid frame received) {ABORTED_AFTER_BINDING}", True)
    text = setup_failure(down, None, Phase.NETWORK, False)
    assert text.startswith("SSTP: the server did not accept our crypto binding: peer aborted the call")
    assert "TLS-intercepting proxy" in text


def test_summary_line() -> None:
    up = LinkUp(
        user="alice",
        auth_method=AuthMethod.MSCHAP_V2,
        hash_protocol=HashProtocol.SHA256,
        local_address=IPv4Address("10.0.0.5"),
        peer_address=IPv4Address("10.0.0.1"),
        dns_servers=(IPv4Address("10.0.0.1"),),
        mtu=1400,
    )
    assert summary(up, "sstp0") == "connected: 10.0.0.5 via sstp0, DNS 10.0.0.1, MS-CHAPv2, SHA-256 binding"


def test_phase_changes_are_detail() -> None:
    step = describe(PhaseChanged(Phase.NETWORK))
    assert step is not None and step.level == logging.DEBUG


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    assert backoff_delay(1, lambda: 0.0) == 0.5
    assert backoff_delay(1, lambda: 1.0) == 1.0
    assert backoff_delay(4, lambda: 1.0) == 8.0
    assert backoff_delay(50, lambda: 1.0) == 60.0


def test_certificate_description_and_flag(tmp_path: Path) -> None:
    _, _, der = make_certificate(tmp_path, "sstp.test")
    fingerprint = hashlib.sha256(der).hexdigest()
    info = CertificateInfo.from_der(der)
    assert info.subject == info.issuer == "CN=sstp.test"
    assert info.names == ("sstp.test", "127.0.0.1")
    message = refusal_message("127.0.0.1:443", "self-signed certificate", der, TlsSettings())
    assert f"--pin-sha256 {fingerprint}" in message
    assert f"{fingerprint[:2]}:{fingerprint[2:4]}".upper() in message and "valid:" in message


def test_name_matching(tmp_path: Path) -> None:
    _, _, der = make_certificate(tmp_path, "*.corp.example")
    assert name_matches(der, "vpn.corp.example")
    assert name_matches(der, "VPN.Corp.Example.")
    assert not name_matches(der, "corp.example")
    assert not name_matches(der, "a.vpn.corp.example")
    assert name_matches(der, "127.0.0.1")
    assert not name_matches(der, "127.0.0.2")


def test_resolv_conf_keeps_search_and_options() -> None:
    old = "# comment\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
    new = resolv_conf([IPv4Address("10.77.0.1")], old, "sstp0")
    assert new.splitlines()[1:] == ["nameserver 10.77.0.1", "search corp.example", "options edns0"]


# -- the shape (issue 11, part 3) --------------------------------------------------------------------


def test_client_never_imports_commands() -> None:
    import ast

    import pysstp.client

    for module in Path(pysstp.client.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("pysstp.commands"), f"{module.name} imports {node.module}"


def test_building_settings_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_prompt(prompt: str) -> str:
        raise AssertionError("the settings asked for a password")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    missing = tmp_path / "missing"
    s = settings(
        "h", "--user", "u", "--password-file", str(missing), "--cert", str(missing / "c.pem"),
        "--key", str(missing / "c.key"), "--eap-ca", str(missing / "ca.pem"),
    )  # fmt: skip
    assert s.password_file == missing and s.tls.cert == missing / "c.pem"
    # The command reads them, with one line for what is missing.
    with pytest.raises(ConfigError, match=r"c\.key: cannot read the private key"):
        read_login(s, {})


def test_profile_and_flag_mistakes_read_as_the_servers_do(tmp_path: Path) -> None:
    config = tmp_path / "client.toml"
    config.write_text('[work]\nserver = "h"\nuser = "u"\npasword-file = "pw"\nmru = 10\n')
    with pytest.raises(ConfigError) as caught:
        settings("work", "--config", str(config))
    assert str(caught.value) == (
        f"{config} [work]: unknown setting 'pasword-file' (did you mean 'password-file'?)"
    )
    config.write_text('[work]\nserver = "h"\nuser = "u"\nmru = 10\n')
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(str(config))} \[work\]: mru: must be between 576 and \d+, not 10$"
    ):
        settings("work", "--config", str(config))
    with pytest.raises(ConfigError, match=r"^--mru: must be between 576 and \d+, not 10$"):
        settings("h", "--user", "u", "--mru", "10")
    # A relative path in a profile is relative to the profile's file, as in server.toml.
    config.write_text('[work]\nserver = "h"\nuser = "u"\nca-file = "corp.pem"\n')
    assert settings("work", "--config", str(config)).tls.ca_file == tmp_path / "corp.pem"


def test_reconnect_after_kick_goes_with_reconnect() -> None:
    assert settings("h", "--user", "u", "--reconnect", "--reconnect-after-kick").reconnect_after_kick
    with pytest.raises(ConfigError, match=r"^--reconnect-after-kick goes with --reconnect$"):
        settings("h", "--user", "u", "--reconnect-after-kick")


def test_connect_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["connect", "--help"])
    text = capsys.readouterr().out
    assert "\nexamples:\n  pysstp connect vpn.example.com --user alice" in text
    assert "https://vpn.example.com:8443/" in text and "--reconnect-after-kick" in text and "130" in text
