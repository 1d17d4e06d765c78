"""Certificate settings: `pysstp connect --cert/--key/--eap-ca` and the server's [eap_tls] and client
certificate keys, down to the loaded objects and the one-line errors."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pysstp.cli import build_parser, main
from pysstp.client.login import Login
from pysstp.client.settings import ClientSettings, settings_from_args
from pysstp.commands.connect import read_login
from pysstp.errors import ConfigError
from pysstp.ppp.auth.eap_tls import IdentitySource
from pysstp.ppp.auth.tls_tunnel import TlsVersion
from pysstp.ppp.constants import AuthMethod
from pysstp.server.build import load_eap_tls, load_peap
from pysstp.server.config import EAP_TLS_EXAMPLE, add_arguments, load
from pysstp.server.config import settings_from_args as server_settings

from helpers.certlab import lab


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab's CA, CRL, server and alice (key encrypted with 'secret') as PEM files."""
    monkeypatch.delenv("PYSSTP_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    the_lab = lab()
    (tmp_path / "ca.pem").write_bytes(the_lab.ca.certificate_pem())
    (tmp_path / "crl.pem").write_bytes(the_lab.crl.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(the_lab.server.certificate_pem())
    (tmp_path / "server.key").write_bytes(the_lab.server.key_pem())
    (tmp_path / "alice.pem").write_bytes(the_lab.alice.certificate_pem())
    (tmp_path / "alice.key").write_bytes(the_lab.alice.key_pem(b"secret"))
    (tmp_path / "pass").write_text("secret\n")
    (tmp_path / "wrong").write_text("nope\n")
    return tmp_path


def connect(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["connect", "vpn.example.test", *argv])


def client_settings(args: argparse.Namespace) -> tuple[ClientSettings, Login]:
    settings = settings_from_args(args)
    return settings, read_login(settings, {})


def test_client_eap_tls_needs_no_password_and_takes_the_user_from_the_certificate(files: Path) -> None:
    settings, login = client_settings(
        connect(
            "--auth", "eap-tls",
            "--cert", str(files / "alice.pem"),
            "--key", str(files / "alice.key"),
            "--key-passphrase-file", str(files / "pass"),
            "--eap-ca", str(files / "ca.pem"),
            "--eap-server-name", "vpn.example.test",
        )
    )  # fmt: skip
    assert login.user == "alice" and login.password == ""
    assert settings.auth_methods == (AuthMethod.EAP_TLS,)
    assert login.eap_tls is not None and login.eap_tls.server_name == "vpn.example.test"
    assert login.eap_tls.trusted_cas == (lab().ca.certificate,)
    assert login.certificate is not None
    assert login.certificate.identity.certificate == lab().alice.certificate


def test_client_eap_ca_defaults_to_ca_file(files: Path) -> None:
    _, login = client_settings(
        connect(
            "--user", "bob", "--password-file", str(files / "pass"),
            "--cert", str(files / "alice.pem"), "--key", str(files / "alice.key"),
            "--key-passphrase-file", str(files / "pass"), "--ca-file", str(files / "ca.pem"),
        )
    )  # fmt: skip
    assert login.user == "bob" and login.password == "secret"
    assert login.eap_tls is not None and login.eap_tls.trusted_cas == (lab().ca.certificate,)


def test_client_peap_checks_the_server_with_the_ca_file(files: Path) -> None:
    _, login = client_settings(
        connect(
            "--auth", "peap", "--user", "alice", "--password-file", str(files / "pass"),
            "--ca-file", str(files / "ca.pem"), "--eap-server-name", "vpn.example.test",
        )
    )  # fmt: skip
    assert login.password == "secret" and login.eap_tls is None
    assert login.peap is not None and login.peap.trusted_cas == (lab().ca.certificate,)
    assert login.peap.server_name == "vpn.example.test"


def test_client_without_peap_has_no_peap_settings(files: Path) -> None:
    _, login = client_settings(connect("--user", "alice", "--password-file", str(files / "pass")))
    assert login.peap is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--auth", "eap-tls"], "--auth eap-tls needs your certificate: --cert FILE --key FILE"),
        (
            ["--auth", "eap-tls", "--cert", "{d}/alice.pem"],
            "--cert and --key go together: the certificate and its private key",
        ),
        (
            ["--auth", "eap-tls", "--cert", "{d}/alice.pem", "--key", "{d}/alice.key"],
            "no passphrase for {d}/alice.key: stdin is not a terminal; use --key-passphrase-file FILE",
        ),
        (
            ["--auth", "eap-tls", "--cert", "{d}/alice.pem", "--key", "{d}/alice.key",
             "--key-passphrase-file", "{d}/wrong"],
            "{d}/alice.key: wrong passphrase for the private key",
        ),
        (
            ["--auth", "eap-tls", "--cert", "{d}/alice.pem", "--key", "{d}/missing.key"],
            "{d}/missing.key: cannot read the private key: No such file or directory",
        ),
        (
            ["--auth", "eap-tls", "--cert", "{d}/ca.pem", "--key", "{d}/server.key"],
            "{d}/server.key: the private key does not belong to CN=pysstp test CA ({d}/ca.pem)",
        ),
        (
            ["--user", "x", "--eap-ca", "{d}/ca.pem"],
            "--eap-ca and --eap-server-name are for EAP-TLS (give --cert and --key too) or --auth peap",
        ),
    ],
)  # fmt: skip
def test_client_mistakes_are_one_line(
    files: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    argv = ["connect", "vpn.example.test", "--password-file", str(files / "pass")]
    argv += [flag.format(d=files) for flag in flags]
    assert main(argv) == 1
    assert capsys.readouterr().err == f"pysstp: {message.format(d=files)}\n"


def server(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--cert", "s.pem", "--key", "s.key", *flags])


def test_server_eap_tls_settings_load(files: Path) -> None:
    settings = server_settings(
        server(
            "--cert", str(files / "server.pem"), "--key", str(files / "server.key"),
            "--auth", "eap-tls,mschapv2",
            "--eap-ca", str(files / "ca.pem"), "--eap-crl", str(files / "crl.pem"),
            "--eap-identity", "san-email", "--eap-require-user", "--eap-tls-max", "1.2",
        )
    )  # fmt: skip
    assert settings.auth_methods == (AuthMethod.EAP_TLS, AuthMethod.MSCHAP_V2)
    eap = load_eap_tls(settings)
    assert eap is not None
    assert eap.identity.certificate == lab().server.certificate
    assert eap.trusted_cas == (lab().ca.certificate,) and eap.crls == (lab().crl,)
    assert eap.identity_source is IdentitySource.SAN_EMAIL and eap.require_known_user
    assert eap.max_version is TlsVersion.TLS1_2


def test_server_peap_shows_the_eap_certificate_else_the_https_one(files: Path) -> None:
    cert = ("--cert", str(files / "server.pem"), "--key", str(files / "server.key"))
    settings = server_settings(server(*cert, "--auth", "peap,mschapv2", "--eap-fragment-size", "500"))
    assert settings.auth_methods == (AuthMethod.PEAP, AuthMethod.MSCHAP_V2)
    peap = load_peap(settings)
    assert peap is not None and peap.identity.certificate == lab().server.certificate
    assert peap.fragment_size == 500
    assert load_eap_tls(settings) is None  # PEAP needs no CA for client certificates
    assert load_peap(server_settings(server(*cert, "--auth", "mschapv2"))) is None


def test_server_peap_behind_a_tls_terminator_needs_an_eap_certificate() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    offload = ["--tls-offload", "--binding-sha256", "ab" * 32, "--binding-sha1", "cd" * 20, "--auth", "peap"]
    with pytest.raises(ConfigError, match=r"^auth method 'peap' needs a certificate of its own behind a TLS"):
        server_settings(parser.parse_args(offload))
    settings = server_settings(parser.parse_args([*offload, "--eap-cert", "e.pem", "--eap-key", "e.key"]))
    assert settings.eap_tls.cert == Path("e.pem")


def test_server_example_loads(files: Path) -> None:
    config = files / "server.toml"
    config.write_text(EAP_TLS_EXAMPLE)
    values = load(config)
    assert values["auth_methods"] == (AuthMethod.EAP_TLS, AuthMethod.MSCHAP_V2)
    assert values["eap_tls.identity"] is IdentitySource.COMMON_NAME


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--auth", "eap-tls"], "auth method 'eap-tls' needs the CA that signs user certificates"),
        (["--eap-cert", "e.pem"], "set both eap_tls.cert and eap_tls.key"),
        (["--verify-client-certificate", "require"], "verify-client-certificate 'require' needs the CA"),
    ],
)
def test_server_mistakes(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        server_settings(server(*flags))


def test_server_unreadable_eap_files(files: Path) -> None:
    cert = ("--cert", str(files / "server.pem"), "--key", str(files / "server.key"))
    settings = server_settings(server(*cert, "--auth", "eap-tls", "--eap-ca", str(files / "nothing.pem")))
    with pytest.raises(ConfigError, match=r"nothing\.pem: cannot read the CA file"):
        load_eap_tls(settings)
