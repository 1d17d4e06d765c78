"""``pysstp pki``: the five-minute CA, and the PEM readers the server and client use."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pysstp.aaa.local import StaticCredentials
from pysstp.aaa.pki import read_certificates, read_crls, read_identity, read_private_key
from pysstp.cli import main
from pysstp.errors import ConfigError
from pysstp.ppp.auth.eap import EapAuthenticator, EapPeer
from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings, EapTlsServerSettings
from pysstp.ppp.constants import AuthMethod

from helpers.auth_wire import Conversation


def pki(capsys: pytest.CaptureFixture[str], directory: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["pki", *argv, "--dir", str(directory)])
    out, err = capsys.readouterr()
    return code, out, err


def test_five_minutes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "pki"
    assert pki(capsys, ca, "init")[0] == 0
    assert stat.S_IMODE((ca / "ca.key").stat().st_mode) == 0o600
    assert pki(capsys, ca, "server", "vpn.example.test")[0] == 0
    assert pki(capsys, ca, "user", "alice", "--email", "alice@example.test")[0] == 0
    (tmp_path / "pass").write_text("s3cret\n")
    assert pki(capsys, ca, "user", "bob", "--passphrase-file", str(tmp_path / "pass"))[0] == 0
    code, out, _ = pki(capsys, ca, "revoke", "bob")
    assert code == 0 and "revoked bob.pem" in out
    assert pki(capsys, ca, "crl")[0] == 0

    [bob_certificate] = read_certificates(ca / "bob.pem")
    [crl] = read_crls(ca / "crl.pem")
    assert crl.get_revoked_certificate_by_serial_number(bob_certificate.serial_number) is not None

    server = EapTlsServerSettings(
        read_identity(ca / "vpn.example.test.pem", ca / "vpn.example.test.key"),
        read_certificates(ca / "ca.pem"),
        crls=read_crls(ca / "crl.pem"),
    )

    def login(user: str, passphrase: bytes | None = None) -> Conversation:
        peer = EapTlsPeerSettings(
            read_identity(ca / f"{user}.pem", ca / f"{user}.key", passphrase),
            read_certificates(ca / "ca.pem"),
            server_name="vpn.example.test",
        )
        methods = (AuthMethod.EAP_TLS,)
        return Conversation(
            EapAuthenticator(eap_methods=methods, eap_tls=server),
            EapPeer(user, "", eap_methods=methods, eap_tls=peer),
            StaticCredentials({}),
        ).run()

    server_event, _client = login("alice").succeeded()
    assert server_event.user == "alice"
    server_failure, _client_failure = login("bob", b"s3cret").failed()
    assert "certificate revoked (CN=bob)" in server_failure.reason


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "pki"
    code, _, err = pki(capsys, ca, "user", "alice")
    assert code == 1 and err == f"pysstp: {ca}: no CA here; create one with `pysstp pki init --dir {ca}`\n"
    pki(capsys, ca, "init")
    code, _, err = pki(capsys, ca, "init")
    assert code == 1 and err.startswith("pysstp: ") and "never overwrites" in err
    code, _, err = pki(capsys, ca, "revoke", "nobody")
    assert code == 1 and "cannot read the certificate file" in err


def test_key_reader_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "pki"
    pki(capsys, ca, "init")
    (tmp_path / "pass").write_text("right\n")
    pki(capsys, ca, "user", "carol", "--passphrase-file", str(tmp_path / "pass"))
    key = ca / "carol.key"
    with pytest.raises(ConfigError, match="wrong passphrase"):
        read_private_key(key, b"wrong")
    with pytest.raises(ConfigError, match="is encrypted; give its passphrase"):
        read_private_key(key)
    with pytest.raises(ConfigError, match="not encrypted, but a passphrase"):
        read_private_key(ca / "ca.key", b"x")
    with pytest.raises(ConfigError, match="not a PEM private key"):
        read_private_key(ca / "ca.pem")
    with pytest.raises(ConfigError, match="cannot read the private key"):
        read_private_key(ca / "missing.key")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        read_certificates(key)
    with pytest.raises(ConfigError, match="does not belong"):
        read_identity(ca / "ca.pem", key, b"right")
    with pytest.raises(ConfigError, match="not a PEM CRL"):
        read_crls(ca / "ca.pem")
