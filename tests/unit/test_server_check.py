"""`pysstp server --check`: every file and certificate checked, one line per problem, nothing changed."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pysstp.aaa.pki import issue_server, make_ca, make_crl
from pysstp.cli import main

from helpers.loopback import make_certificate


def write_pair(directory: Path, name: str, pem: bytes, key: bytes) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(pem)
    key_path.write_bytes(key)
    return cert_path, key_path


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, list[str]]:
    """Run ``pysstp server --check`` with a certificate, an empty user database and ``extra``; return the
    exit code, stdout and the lines of stderr."""
    cert, key, _ = make_certificate(tmp_path)
    users = tmp_path / "users.toml"
    if not users.exists():
        users.write_text("")
        users.chmod(0o600)
    args = [
        "server", "--check", "--cert", str(cert), "--key", str(key), "--users", str(users),
        "--control-socket", str(tmp_path / "ctl.sock"), "--state-dir", str(tmp_path / "state"), *extra,
    ]  # fmt: skip
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err.splitlines()


def test_a_good_configuration_is_ok_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(tmp_path, capsys)
    assert (code, out, err) == (0, "configuration OK\n", [])
    assert not (tmp_path / "ctl.sock").exists() and not (tmp_path / "state").exists()


def test_each_problem_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long_ago = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    ca = make_ca("Old CA", days=30, start=long_ago)
    ca_path, _ = write_pair(tmp_path, "ca", ca.certificate_pem(), ca.key_pem())
    crl = tmp_path / "crl.pem"
    crl.write_bytes(make_crl(ca, [], days=1, start=long_ago).public_bytes(serialization.Encoding.PEM))
    eap = issue_server(ca, "vpn.example.com", days=30, start=long_ago)
    eap_cert, _ = write_pair(tmp_path, "eap", eap.certificate_pem(), eap.key_pem())
    (tmp_path / "other").mkdir()
    _, other_key, _ = make_certificate(tmp_path / "other")
    (tmp_path / "users.toml").write_text("[alice]\nnt_hash = 'nope'\n")
    (tmp_path / "users.toml").chmod(0o600)
    code, out, err = check(
        tmp_path, capsys,
        "--auth", "eap-tls", "--eap-ca", str(ca_path), "--eap-crl", str(crl),
        "--eap-cert", str(eap_cert), "--eap-key", str(other_key),
        "--http-page", str(tmp_path / "missing.html"),
    )  # fmt: skip
    assert code == 1 and out == ""
    assert all(line.startswith("pysstp: ") for line in err), err
    text = "\n".join(err)
    assert "users.toml" in text
    assert f"{other_key}" in text  # the EAP key does not belong to the EAP certificate
    assert "missing.html" in text
    assert f"eap_tls.ca {ca_path}: the certificate CN=Old CA expired on 2020-01-31" in text
    assert f"eap_tls.cert {eap_cert}: the certificate CN=vpn.example.com expired on 2020-01-31" in text
    assert f"eap_tls.crl {crl}: the CRL of CN=Old CA expired on 2020-01-02" in text
    assert len(err) == 6, err


def test_a_key_that_does_not_match_and_a_certificate_not_yet_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    ca = make_ca("Future CA", start=later)
    server = issue_server(ca, "vpn.example.com", start=later)
    cert, _ = write_pair(tmp_path, "future", server.certificate_pem(), server.key_pem())
    _, ca_key = write_pair(tmp_path, "ca", ca.certificate_pem(), ca.key_pem())
    code, _, err = check(tmp_path, capsys, "--cert", str(cert), "--key", str(ca_key))
    assert code == 1
    assert len(err) == 2, err
    assert err[0].startswith(f"pysstp: cannot use certificate {cert} with key {ca_key}")
    assert err[1] == (
        f"pysstp: tls.cert {cert}: the certificate CN=vpn.example.com is not valid yet "
        f"({later - datetime.timedelta(hours=1):%Y-%m-%d})"
    )


def test_a_fixed_address_the_server_cannot_route_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    users = tmp_path / "users.toml"
    users.write_text(f'[users.carol]\nnt_hash = "{"0" * 32}"\naddress = "172.16.0.5"\n')
    users.chmod(0o600)
    code, _, err = check(tmp_path, capsys)
    assert code == 1
    assert err == ["pysstp: user 'carol' gets no session: its fixed address 172.16.0.5 is outside the pool "
                   "10.77.0.0/24"]  # fmt: skip


def test_an_unreadable_dae_secret_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    missing = tmp_path / "missing.secret"
    code, out, err = check(tmp_path, capsys, "--dae-client", f"192.0.2.10={missing}")
    assert (code, out) == (1, "")
    assert err == [
        f"pysstp: cannot read the RADIUS secret file {missing}: No such file or directory; "
        "put the shared secret on its first line"
    ]
    code, _, err = check(tmp_path, capsys, "--dae-client", f"192.0.2.10={empty}")
    assert code == 1
    assert err == [
        f"pysstp: the RADIUS secret file {empty} is empty; put the shared secret on its first line"
    ]
