"""Server settings: defaults, server.toml, flags, and the messages a mistake gets."""

from __future__ import annotations

import argparse
import dataclasses
import ssl
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_address
from pathlib import Path

import pytest

from pysstp.errors import ConfigError
from pysstp.ppp.constants import AuthMethod
from pysstp.server import config
from pysstp.server.config import (
    EXAMPLE_CONFIG,
    HELP_EPILOG,
    Ipv6Settings,
    ServerSettings,
    add_arguments,
    load,
    settings_from_args,
)
from pysstp.sstp.constants import HashProtocol

CERT_FLAGS = ["--cert", "/etc/pysstp/fullchain.pem", "--key", "/etc/pysstp/key.pem"]


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="pysstp server")
    add_arguments(result)
    return result


def settings(*flags: str) -> ServerSettings:
    return settings_from_args(parser().parse_args(list(flags)))


@pytest.fixture
def toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A server.toml path relative to the working directory, so messages name it as a user would."""
    monkeypatch.chdir(tmp_path)
    return Path("server.toml")


def load_text(path: Path, text: str) -> dict[str, object]:
    path.write_text(text)
    return load(path)


def test_defaults() -> None:
    result = settings(*CERT_FLAGS)
    assert result == dataclasses.replace(
        ServerSettings(),
        tls=dataclasses.replace(
            ServerSettings().tls, cert=Path("/etc/pysstp/fullchain.pem"), key=Path("/etc/pysstp/key.pem")
        ),
    )
    assert result.listen == ("0.0.0.0", "::")
    assert result.port == 443
    assert result.tls.min_version is ssl.TLSVersion.TLSv1_2
    assert result.tls.hash_protocols == HashProtocol.SHA1 | HashProtocol.SHA256
    assert result.pool.network == IPv4Network("10.77.0.0/24")
    assert result.pool.server_address == IPv4Address("10.77.0.1")
    assert result.pool.dns == ()
    assert result.ipv6 == Ipv6Settings(enabled=False, prefix=None)
    assert result.auth_methods == (AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2)
    assert result.users == Path("/etc/pysstp/users.toml")
    assert (
        result.limits.max_sessions,
        result.limits.max_sessions_per_user,
        result.limits.max_handshakes,
    ) == (
        1000,
        0,
        256,
    )
    assert (
        result.limits.negotiation_timeout,
        result.limits.handshake_timeout,
        result.limits.idle_timeout,
    ) == (
        60.0,
        10.0,
        0.0,
    )
    assert result.limits.connections_per_source_per_minute == 60
    assert (result.keepalive, result.mru, result.max_peer_mru) == (60.0, 1500, 1500)
    assert result.forwarding == config.ForwardingSettings(mode="route", egress=None, mss_clamp=True)
    assert result.tun_name == "sstp0"
    assert (result.log.level, result.log.format) == ("info", "text")
    assert result.control_socket == Path("/run/pysstp/server.sock")
    assert (result.http.redirect, result.http.page) == (None, None)


def test_legacy_profile_serves_tls12_aes256_cbc_and_rsa_key_exchange_for_routeros() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers(config.TlsSettings(profile="legacy").cipher_list)
    names = {cipher["name"] for cipher in context.get_ciphers()}
    assert {"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-SHA"} <= names
    assert {"AES256-GCM-SHA384", "AES256-SHA"} <= names
    assert not any("RC4" in name or "3DES" in name or "NULL" in name for name in names)


def test_default_profile_offers_tls12_only_ecdhe_with_aead() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers(config.TlsSettings().cipher_list)
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == set(config.INTERMEDIATE_CIPHERS.split(":"))
    assert all(c["aead"] for c in context.get_ciphers())
    assert all(c["kea"] == "kx-ecdhe" for c in context.get_ciphers() if c["protocol"] == "TLSv1.2")


def test_explicit_ciphers_replace_the_profile() -> None:
    assert config.TlsSettings(profile="legacy", ciphers="ECDHE+AESGCM").cipher_list == "ECDHE+AESGCM"


def test_every_setting_has_a_key_and_a_flag() -> None:
    """Every leaf of ServerSettings is in the table, so it can be set from the file and by a flag."""

    def leaves(obj: object, prefix: str = "") -> list[str]:
        result = []
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            section = dataclasses.is_dataclass(value) and f.name in config._SECTIONS
            result += leaves(value, f"{prefix}{f.name}.") if section else [prefix + f.name]
        return result

    assert sorted(leaves(ServerSettings())) == sorted(config._BY_KEY)
    flags = {action.option_strings[0] for action in parser()._actions}
    assert {setting.flag for setting in config._BY_KEY.values()} <= flags


def test_backend_is_local_by_default_and_by_name(toml_file: Path) -> None:
    assert settings(*CERT_FLAGS).backend == "local"
    assert settings(*CERT_FLAGS, "--backend", "local").backend == "local"
    assert load_text(toml_file, 'backend = "local"\n') == {"backend": "local"}


def test_example_config_loads(toml_file: Path) -> None:
    toml_file.write_text(EXAMPLE_CONFIG)
    result = settings("--config", str(toml_file))
    assert result.tls.cert == Path("/etc/pysstp/fullchain.pem")
    assert result.pool.dns == (IPv4Address("1.1.1.1"), IPv4Address("9.9.9.9"))
    assert result.users == Path("/etc/pysstp/users.toml")


def test_help_shows_examples_and_every_flag() -> None:
    result = argparse.ArgumentParser(
        prog="pysstp server", epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(result)
    text = result.format_help()
    assert "pysstp server --config /etc/pysstp/server.toml" in text
    assert "pysstp server --cert fullchain.pem --key key.pem --pool 10.77.0.0/24 --dns 1.1.1.1" in text
    assert '  network = "10.77.0.0/24"' in text
    for flag in ("--listen", "--no-mss-clamp", "--tls-min", "--hash", "--auth", "--control-socket"):
        assert flag in text
    assert "[pool.network; default: 10.77.0.0/24]" in " ".join(text.split())  # argparse wraps lines


def test_full_file(toml_file: Path) -> None:
    values = load_text(
        toml_file,
        """
listen = ["192.0.2.1", "2001:db8::1"]
port = 8443
users = "users.toml"
auth_methods = ["eap-mschapv2", "pap"]
ipv6 = "2001:db8:77::/64"
keepalive = 30
mru = 1400
max_peer_mru = 4091
tun_name = "vpn0"
control_socket = "/run/vpn.sock"

[tls]
cert = "certs/fullchain.pem"
key = "/keys/key.pem"
min_version = "1.3"
hash_protocols = ["sha256"]

[pool]
network = "10.9.0.0/16"
server_address = "192.168.100.1"
dns = ["10.9.0.53"]

[limits]
max_sessions = 50
idle_timeout = 0.5

[forwarding]
mode = "nat"
egress = "eth0"
mss_clamp = false

[log]
level = "debug"
format = "json"

[http]
redirect = "https://example.com/"
""",
    )
    assert values["tls.cert"] == Path("certs/fullchain.pem")  # relative to the file's directory (".")
    result = settings("--config", str(toml_file))
    assert result.listen == ("192.0.2.1", "2001:db8::1")
    assert result.port == 8443
    assert result.auth_methods == (AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP)
    assert result.ipv6 == Ipv6Settings(enabled=True, prefix=IPv6Network("2001:db8:77::/64"))
    assert result.keepalive == 30.0
    assert result.tls.min_version is ssl.TLSVersion.TLSv1_3
    assert result.tls.hash_protocols == HashProtocol.SHA256
    assert result.tls.key == Path("/keys/key.pem")
    assert result.pool.server_address == IPv4Address("192.168.100.1")
    assert result.limits.max_sessions == 50
    assert result.limits.idle_timeout == 0.5
    assert result.limits.max_handshakes == 256
    assert result.forwarding == config.ForwardingSettings(mode="nat", egress="eth0", mss_clamp=False)
    assert (result.log.level, result.log.format) == ("debug", "json")
    assert result.http.redirect == "https://example.com/"


def test_relative_paths_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "server.toml"
    path.parent.mkdir()
    values = load_text(path, 'users = "users.toml"\n[tls]\ncert = "../certs/c.pem"\n')
    assert values["users"] == tmp_path / "etc" / "users.toml"
    assert values["tls.cert"] == tmp_path / "etc" / "../certs/c.pem"


def test_flags_override_the_file(toml_file: Path) -> None:
    toml_file.write_text(
        EXAMPLE_CONFIG + '\n[forwarding]\nmode = "nat"\negress = "eth0"\n[limits]\nmax_sessions = 5\n'
    )
    result = settings(
        "--config",
        str(toml_file),
        "--pool",
        "172.20.0.0/22",
        "--dns",
        "8.8.8.8,8.8.4.4",
        "--dns",
        "9.9.9.9",
        "--forwarding",
        "route",
        "--no-mss-clamp",
        "--port",
        "4443",
        "--auth",
        "pap",
        "--hash",
        "sha1",
        "--ipv6",
        "link-local",
        "--idle-timeout",
        "300",
    )
    assert result.pool.network == IPv4Network("172.20.0.0/22")
    assert result.pool.server_address == IPv4Address("172.20.0.1")  # follows the pool given by flag
    assert result.pool.dns == tuple(IPv4Address(a) for a in ("8.8.8.8", "8.8.4.4", "9.9.9.9"))
    assert result.forwarding == config.ForwardingSettings(mode="route", egress="eth0", mss_clamp=False)
    assert result.limits.max_sessions == 5  # from the file
    assert result.port == 4443
    assert result.auth_methods == (AuthMethod.PAP,)
    assert result.tls.hash_protocols == HashProtocol.SHA1
    assert result.ipv6 == Ipv6Settings(enabled=True)
    assert result.limits.idle_timeout == 300.0
    assert result.tls.cert == Path("/etc/pysstp/fullchain.pem")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[pool]\nnetmask = "255.255.255.0"\n',
            "server.toml: unknown setting 'pool.netmask' (did you mean 'pool.network'?)",
        ),
        (
            'network = "10.0.0.0/24"\n',
            "server.toml: unknown setting 'network' (did you mean 'pool.network'?)",
        ),
        (
            '[pools]\nnetwork = "10.0.0.0/24"\n',
            "pools: network: expected a table with network = \"CIDR\", not '10.0.0.0/24' (the default "
            "pool is [pool])",
        ),
        ("colour = 1\n", "server.toml: unknown setting 'colour'"),
        ('pool = "10.0.0.0/24"\n', "server.toml: pool: expected a table ([pool] section)"),
        (
            '[pool]\nnetwork = "10.0.0.0/33"\n',
            "server.toml: pool.network: '10.0.0.0/33' is not an IPv4 network such as 10.77.0.0/24",
        ),
        ('[pool]\nnetwork = "10.0.0.1/24"\n', "has host bits set"),
        ('[pool]\nnetwork = "224.0.0.0/24"\n', "not a unicast network"),
        ('[pool]\ndns = ["1.1.1.1", "dns.example"]\n', "pool.dns: 'dns.example' is not an IPv4 address"),
        ('[pool]\ndns = ["1.1.1.1", "1.1.1.1"]\n', "pool.dns: lists '1.1.1.1' twice"),
        ('[pool]\nserver_address = "0.0.0.0"\n', "pool.server_address: 0.0.0.0 is not a unicast address"),
        ('[forwarding]\nmode = "bridge"\n', "forwarding.mode: must be one of 'route', 'nat', not 'bridge'"),
        ("[tls]\nmin_version = 1.2\n", "tls.min_version: expected a string, not a number (1.2)"),
        ('[tls]\nmin_version = "1.1"\n', "tls.min_version: must be one of '1.2', '1.3', not '1.1'"),
        ('[tls]\nciphers = "NOPE"\n', "tls.ciphers: OpenSSL selects no cipher from 'NOPE'"),
        ("[tls]\nhash_protocols = []\n", "tls.hash_protocols: must not be empty"),
        ('[tls]\nhash_protocols = "sha1"\n', "tls.hash_protocols: expected a list, not a string ('sha1')"),
        ('port = "443"\n', "server.toml: port: expected an integer, not a string ('443')"),
        ("port = true\n", "port: expected an integer, not true/false (True)"),
        ("port = 70000\n", "port: must be between 1 and 65535, not 70000"),
        ("[port]\nnumber = 1\n", "port: expected an integer, not a table"),
        ("mru = 100\n", "mru: must be between 576 and 4091, not 100"),
        ("keepalive = 0\n", "keepalive: must be more than 0 seconds, not 0"),
        ("keepalive = inf\n", "keepalive: must be more than 0 seconds, not inf"),
        ("[limits]\nidle_timeout = -1\n", "limits.idle_timeout: must be 0 (off) or more seconds, not -1"),
        ("[limits]\nmax_sessions = 0\n", "limits.max_sessions: must be at least 1, not 0"),
        ('auth_methods = ["chap"]\n', "auth_methods: 'chap' needs the plaintext password"),
        (
            'auth_methods = ["mschap"]\n',
            "must be one of 'mschapv2', 'eap-mschapv2', 'eap-tls', 'peap', 'pap', not 'mschap'",
        ),
        ("auth_methods = []\n", "auth_methods: must not be empty"),
        ('ipv6 = "on"\n', "ipv6: must be 'off', 'link-local' or an IPv6 prefix"),
        ('ipv6 = "2001:db8::/48"\n', "ipv6: the announced prefix must be a /64, not /48"),
        ('ipv6 = "fe80::/64"\n', "not a global or unique-local prefix"),
        ('listen = ["localhost"]\n', "listen: 'localhost' is not an IP address"),
        ('tun_name = "a-very-long-name0"\n', "tun_name: 'a-very-long-name0' is not a valid interface name"),
        ('[forwarding]\negress = "eth 0"\n', "forwarding.egress: 'eth 0' is not a valid interface name"),
        ('[forwarding]\nmss_clamp = "yes"\n', "forwarding.mss_clamp: expected true or false, not a string"),
        ('[http]\nredirect = "example.com"\n', "http.redirect: must be an absolute http:// or https:// URL"),
        ('[tls]\ncert = ""\n', "tls.cert: must not be empty"),
        ("port = \n", "server.toml: not valid TOML"),
        ('backend = "ldap"\n', "backend: must be one of 'local', 'radius', not 'ldap'"),
    ],
)
def test_file_mistakes(toml_file: Path, text: str, message: str) -> None:
    toml_file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(toml_file)
    assert message in str(info.value)


def test_missing_file_is_a_config_error(toml_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"^server.toml: cannot read: No such file or directory$"):
        settings("--config", str(toml_file))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--port", "https"], "--port: expected an integer, not 'https'"),
        (["--port", "0"], "--port: must be between 1 and 65535, not 0"),
        (["--idle-timeout", "soon"], "--idle-timeout: expected a number of seconds, not 'soon'"),
        (["--dns", "1.1.1.1,nope"], "--dns: 'nope' is not an IPv4 address"),
        (["--auth", "mschapv2,mschapv2"], "--auth: lists 'mschapv2' twice"),
        (["--log-format", "xml"], "--log-format: must be one of 'text', 'json', not 'xml'"),
        (["--tls-min", "1.0"], "--tls-min: must be one of '1.2', '1.3', not '1.0'"),
    ],
)
def test_flag_mistakes(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(*CERT_FLAGS, *flags)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "no certificate: set tls.cert in the config file or use --cert FILE"),
        (["--cert", "c.pem"], "no private key: set tls.key in the config file or use --key FILE"),
        ([*CERT_FLAGS, "--forwarding", "nat"], "forwarding mode 'nat' needs an egress interface"),
        ([*CERT_FLAGS, "--pool", "10.0.0.0/31"], "address pool 10.0.0.0/31 is too small"),
        ([*CERT_FLAGS, "--pool", "10.0.0.0/32"], "address pool 10.0.0.0/32 is too small"),
        (
            [*CERT_FLAGS, "--pool", "10.0.0.0/30", "--server-address", "10.0.0.3"],
            "server address 10.0.0.3 is the broadcast address of pool 10.0.0.0/30",
        ),
        (
            [*CERT_FLAGS, "--http-redirect", "https://example.com/", "--http-page", "index.html"],
            "set http.redirect or http.page, not both",
        ),
        ([*CERT_FLAGS, "--control-socket", "/run/" + "x" * 110], "longer than 107 bytes"),
    ],
)
def test_merged_result_is_checked(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(*flags)


def test_server_address_outside_the_pool_is_accepted() -> None:
    result = settings(*CERT_FLAGS, "--pool", "10.0.0.0/30", "--server-address", "192.168.0.1")
    assert result.pool.server_address == IPv4Address("192.168.0.1")
    assert result.pool.network == IPv4Network("10.0.0.0/30")


# -- dynamic authorization and on_limit ------------------------------------------------------------------


def test_dae_clients_and_on_limit_from_the_file(toml_file: Path) -> None:
    toml_file.write_text(
        EXAMPLE_CONFIG
        + '\n[limits]\non_limit = "replace"\n'
        + '[dae]\nlisten = "127.0.0.1"\nport = 3800\n'
        + '[dae.clients]\n"192.0.2.10" = "/etc/pysstp/nps.secret"\n"2001:db8::5" = "/etc/pysstp/fr.secret"\n'
    )
    result = settings("--config", str(toml_file))
    assert result.limits.on_limit == "replace"
    assert (result.dae.listen, result.dae.port) == ("127.0.0.1", 3800)
    assert result.dae.clients == (
        config.DaeClientSettings(IPv4Address("192.0.2.10"), Path("/etc/pysstp/nps.secret")),
        config.DaeClientSettings(ip_address("2001:db8::5"), Path("/etc/pysstp/fr.secret")),
    )


def test_dae_clients_from_flags() -> None:
    result = settings(*CERT_FLAGS, "--dae-client", "192.0.2.10=/s/a", "--dae-client", "192.0.2.11=/s/b")
    assert [str(c.address) for c in result.dae.clients] == ["192.0.2.10", "192.0.2.11"]
    assert ServerSettings().dae.clients == () and ServerSettings().limits.on_limit == "deny"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[dae.clients]\n"radius" = "/etc/s"\n', "dae.clients: 'radius' is not an IP address"),
        (
            '[dae.clients]\n"192.0.2.1" = "s.secret"\n',
            "the secret file of 192.0.2.1 must be an absolute path",
        ),
        ('[dae]\nclients = ["192.0.2.1"]\n', 'dae.clients: expected a table of "ADDRESS" = "SECRET-FILE"'),
        ('[limits]\non_limit = "kick"\n', "limits.on_limit: must be one of 'deny', 'replace', not 'kick'"),
    ],
)
def test_dae_and_on_limit_mistakes(toml_file: Path, text: str, message: str) -> None:
    toml_file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(toml_file)
    assert message in str(info.value)


def test_a_dae_client_flag_without_a_file_says_what_is_expected() -> None:
    with pytest.raises(ConfigError) as info:
        settings(*CERT_FLAGS, "--dae-client", "192.0.2.10")
    assert str(info.value) == "--dae-client: expected ADDRESS=SECRET-FILE, not '192.0.2.10'"


def test_drain_timeout_from_file_and_flag(toml_file: Path) -> None:
    assert ServerSettings().limits.drain_timeout == 300.0
    toml_file.write_text("[limits]\ndrain_timeout = 60\n")
    assert settings(*CERT_FLAGS, "--config", str(toml_file)).limits.drain_timeout == 60.0
    assert (
        settings(*CERT_FLAGS, "--config", str(toml_file), "--drain-timeout", "5").limits.drain_timeout == 5.0
    )
    toml_file.write_text("[limits]\ndrain_timeout = 0\n")
    with pytest.raises(ConfigError) as info:
        load(toml_file)
    assert "limits.drain_timeout: must be more than 0 seconds, not 0" in str(info.value)


def test_metrics_are_off_unless_an_address_is_set(toml_file: Path) -> None:
    assert settings(*CERT_FLAGS).metrics.listen is None
    toml_file.write_text(EXAMPLE_CONFIG + '\n[metrics]\nlisten = "[::1]:9090"\n')
    assert settings("--config", str(toml_file)).metrics.listen == ("::1", 9090)
    assert settings("--config", str(toml_file), "--metrics", "0.0.0.0:9100").metrics.listen == (
        "0.0.0.0",
        9100,
    )


@pytest.mark.parametrize(
    "text", ["localhost:9090", "::1:9090", "[127.0.0.1]:9090", "127.0.0.1", "[::1]:0", "127.0.0.1:x"]
)
def test_a_metrics_address_is_addr_colon_port(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(*CERT_FLAGS, "--metrics", text)
    assert str(info.value) == (
        "--metrics: expected ADDR:PORT with an IP address and a port from 1 to 65535 (such as 127.0.0.1:9090 "
        f"or [::1]:9090), not {text!r}"
    )


# -- workers ---------------------------------------------------------------------------------------


def test_workers_from_the_file_and_the_flag(toml_file: Path) -> None:
    assert ServerSettings().workers == 1
    toml_file.write_text(EXAMPLE_CONFIG.replace("[tls]", 'workers = "auto"\n\n[tls]'))
    assert settings("--config", str(toml_file)).workers == "auto"
    assert settings("--config", str(toml_file), "--workers", "3").workers == 3
    assert settings(*CERT_FLAGS, "--workers", "auto").workers == "auto"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], '--workers: must be between 1 and 64 or "auto", not 0'),
        (["--workers", "many"], "--workers: expected an integer or \"auto\", not 'many'"),
        (
            ["--workers", "2", "--dae-client", "192.0.2.1=/s/a"],
            "dynamic authorization (dae.clients) needs workers = 1",
        ),
        (["--workers", "auto", "--ipv6", "2001:db8:1::/64"], "ipv6 = 2001:db8:1::/64 needs workers = 1"),
    ],
)
def test_workers_mistakes(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(*CERT_FLAGS, *flags)
    assert message in str(info.value)


def test_workers_in_the_file_must_be_a_number_or_auto(toml_file: Path) -> None:
    toml_file.write_text("workers = true\n")
    with pytest.raises(ConfigError) as info:
        load(toml_file)
    assert 'workers: expected an integer or "auto", not true/false (True)' in str(info.value)
