"""Behind a load balancer: PROXY protocol (``proxy_protocol``, ``proxy_sources``) and TLS offload
(``tls.offload`` with ``tls.binding_cert`` or ``tls.binding_sha256``/``binding_sha1``)."""

from __future__ import annotations

import argparse
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest

from pysstp.errors import ConfigError
from pysstp.server.build import load_tls
from pysstp.server.config import ServerSettings, add_arguments, settings_from_args
from pysstp.sstp.binding import certificate_hashes
from pysstp.sstp.constants import HashProtocol

from helpers.loopback import make_certificate

CERT_FLAGS = ["--cert", "/etc/pysstp/fullchain.pem", "--key", "/etc/pysstp/key.pem"]
SHA256 = "ab" * 32
SHA1 = ":".join(["cd"] * 20)


def settings(*flags: str) -> ServerSettings:
    parser = argparse.ArgumentParser(prog="pysstp server")
    add_arguments(parser)
    return settings_from_args(parser.parse_args(list(flags)))


def test_off_by_default() -> None:
    result = ServerSettings()
    assert not result.proxy_protocol and result.proxy_sources == ()
    assert not result.tls.offload and result.tls.binding_cert is None


def test_proxy_protocol_from_flags() -> None:
    result = settings(*CERT_FLAGS, "--proxy-protocol", "--proxy-source", "10.0.0.0/24,2001:db8::7")
    assert result.proxy_protocol
    assert result.proxy_sources == (IPv4Network("10.0.0.0/24"), IPv6Network("2001:db8::7/128"))


def test_proxy_protocol_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        'proxy_protocol = true\nproxy_sources = ["192.0.2.10"]\n'
        '[tls]\noffload = true\nbinding_cert = "lb.pem"\n'
    )
    result = settings("--config", str(path))
    assert result.proxy_protocol and result.proxy_sources == (IPv4Network("192.0.2.10/32"),)
    assert result.tls.offload and result.tls.binding_cert == tmp_path / "lb.pem"


def test_offload_with_hashes_needs_no_certificate() -> None:
    result = settings("--tls-offload", "--binding-sha256", SHA256, "--binding-sha1", SHA1)
    assert result.tls.cert is None
    assert result.tls.binding_sha256 == bytes.fromhex(SHA256)
    assert result.tls.binding_sha1 == bytes.fromhex("cd" * 20)


def test_offload_offering_only_sha256_needs_only_its_hash() -> None:
    result = settings("--tls-offload", "--hash", "sha256", "--binding-sha256", SHA256)
    assert result.tls.binding_sha1 is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            [*CERT_FLAGS, "--proxy-protocol"],
            r"^proxy_protocol needs the load balancers allowed to send PROXY headers: set proxy_sources",
        ),
        ([*CERT_FLAGS, "--proxy-source", "10.0.0.5"], r"^proxy_sources is only for proxy_protocol = true"),
        (["--proxy-source", "10.0.0.1/24"], r"'10.0.0.1/24' is not an IP address or network .*host bits"),
        (["--proxy-source", "lb.example"], r"'lb.example' is not an IP address or network"),
        (["--tls-offload"], r"^tls.offload needs the TLS terminator's certificate for the crypto binding"),
        (
            ["--tls-offload", "--binding-sha256", SHA256],
            r"^tls.binding_sha1 \(--binding-sha1\) is needed too",
        ),
        (
            ["--tls-offload", "--binding-cert", "lb.pem", "--binding-sha256", SHA256],
            r"^set tls.binding_cert or tls.binding_sha256/binding_sha1, not both$",
        ),
        ([*CERT_FLAGS, "--binding-cert", "lb.pem"], r"^tls.binding_cert is only for tls.offload = true"),
        (["--binding-sha256", "abc"], r"expected 32 bytes in hex \(64 digits, colons allowed\), not 'abc'"),
        (["--binding-sha1", SHA256], r"expected 20 bytes in hex"),
        (["--binding-sha1", "zz" * 20], r"expected 20 bytes in hex"),
        (
            [
                "--tls-offload",
                "--binding-cert",
                "lb.pem",
                "--verify-client-certificate",
                "require",
                "--client-ca",
                "ca.pem",
            ],
            r"^tls.verify_client_certificate needs TLS in this server",
        ),
        (
            ["--tls-offload", "--binding-cert", "lb.pem", "--auth", "eap-tls", "--eap-ca", "ca.pem"],
            r"^EAP-TLS needs a server certificate: with tls.offload there is no tls.cert",
        ),
    ],
)
def test_mistakes(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(*flags)


def test_offload_binds_to_the_terminators_certificate(tmp_path: Path) -> None:
    cert, _, der = make_certificate(tmp_path)
    context, hashes = load_tls(settings("--tls-offload", "--binding-cert", str(cert)))
    assert context is None
    assert hashes == certificate_hashes(der)


def test_offload_binds_to_the_hashes_given() -> None:
    context, hashes = load_tls(settings("--tls-offload", "--binding-sha256", SHA256, "--binding-sha1", SHA1))
    assert context is None
    assert hashes == {HashProtocol.SHA256: bytes.fromhex(SHA256), HashProtocol.SHA1: bytes.fromhex("cd" * 20)}


def test_without_offload_the_binding_is_the_servers_own_certificate(tmp_path: Path) -> None:
    cert, key, der = make_certificate(tmp_path)
    context, hashes = load_tls(settings("--cert", str(cert), "--key", str(key)))
    assert context is not None
    assert hashes == certificate_hashes(der)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"lb.pem: cannot read the certificate \(tls.binding_cert\): No such file or directory$"),
        ("not a certificate\n", r"lb.pem: not a PEM certificate \(tls.binding_cert\)"),
    ],
)
def test_a_binding_certificate_that_cannot_be_read(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "lb.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_tls(settings("--tls-offload", "--binding-cert", str(path)))
