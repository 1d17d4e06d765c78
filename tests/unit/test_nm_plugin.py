"""The NetworkManager plugin without NetworkManager: ``vpn.data``/``vpn.secrets`` <-> client settings and
profiles, the signal dictionaries, the ``.name`` file, and the connection dictionaries of import/export."""

from __future__ import annotations

import asyncio
import stat
import sys
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest
from dbus_fast import Variant

from pysstp.cli import main
from pysstp.client.settings import ClientSettings
from pysstp.dhcp import ClasslessRoute, Configuration
from pysstp.errors import ConfigError
from pysstp.link import Ipv6Up, LinkUp
from pysstp.nd import Advertised, NdError, read_options
from pysstp.net.changes import NetworkChanges
from pysstp.nm.connection import connection_dict, vpn_setting_of
from pysstp.nm.plugin import NAME_FILE, POLICY_FILE, install, name_file, uninstall
from pysstp.nm.report import generic_config, in_addr, ip4_config, ip6_config
from pysstp.nm.service import vpn_setting
from pysstp.nm.tunnel import ReportingTunnel
from pysstp.nm.vpn_setting import (
    SERVICE_TYPE,
    SecretFlags,
    VpnSetting,
    asks_every_time,
    client_settings,
    from_profile,
    missing_secrets,
    never_default,
    to_profile,
    wants_ipv6,
)
from pysstp.ppp.constants import AuthMethod, Protocol
from pysstp.server.ipv6 import router_advertisement

PIN = "ab" * 32


def test_vpn_data_becomes_the_settings_pysstp_connect_would_have() -> None:
    data = {
        "gateway": "vpn.example.com:8443",
        "user": "CORP\\alice",
        "auth": "mschapv2, eap-mschapv2",
        "pin-sha256": PIN,
        "sni": "vpn.example.com",
        "mru": "1400",
        "no-sni": "no",
        "proxy": "http://proxy.example:3128",
        "never-default": "yes",
        "password-flags": "0",
    }
    settings = client_settings(data, {"password": "s3cret"}, "work")
    assert (settings.host, settings.port, settings.user) == ("vpn.example.com", 8443, "CORP\\alice")
    assert settings.auth_methods == (AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2)
    assert settings.tls.pin_sha256 == bytes.fromhex(PIN)
    assert settings.mru == 1400 and settings.password == "s3cret"
    assert settings.proxy is not None and settings.proxy.port == 3128
    # NetworkManager applies routes and DNS; the plugin carries IPv4 only.
    assert not settings.default_route and not settings.dns and not settings.ipv6 and not settings.routes


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"user": "alice"}, "no gateway; add vpn.data gateway=HOST[:PORT]"),
        ({"gateway": "h", "user": "alice", "dns": "yes"}, "unknown key 'dns'"),
        ({"gateway": "h", "user": "alice", "insecure": "true"}, "insecure must be yes or no, not 'true'"),
        ({"gateway": "h", "user": "alice", "mru": "big"}, "mru must be a number, not 'big'"),
        ({"gateway": "h", "user": "alice", "auth": "telnet"}, "auth"),
        ({"gateway": "h"}, "no user name"),
    ],
)
def test_a_mistake_in_vpn_data_is_one_line_naming_the_key(data: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        client_settings(data, {}, "work")
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "secrets", "missing"),
    [
        ({"gateway": "h", "user": "alice"}, {}, ["password"]),
        ({"gateway": "h", "user": "alice", "password-flags": "2"}, {}, ["password"]),
        ({"gateway": "h", "user": "alice"}, {"password": "pw"}, []),
        ({"gateway": "h", "user": "alice", "password-flags": "4"}, {}, []),
        (
            {"gateway": "h", "auth": "eap-tls", "cert": "/c.pem", "key": "/c.key", "user": "alice"},
            {},
            [],
        ),
        ({"gateway": "h", "bogus": "x"}, {}, []),  # Connect reports the mistake instead
    ],
)
def test_need_secrets_asks_for_a_password_only_when_one_is_needed(
    data: dict[str, str], secrets: dict[str, str], missing: list[str]
) -> None:
    assert missing_secrets(data, secrets, "work") == missing


def test_relative_files_of_a_profile_are_stored_absolute() -> None:
    table = {"server": "h", "cert": "alice.pem", "key": "/etc/pysstp/alice.key", "key-passphrase-file": "-"}
    setting, _ = from_profile(table, None, Path("/etc/pysstp"))
    assert setting.data["cert"] == "/etc/pysstp/alice.pem"
    assert setting.data["key"] == "/etc/pysstp/alice.key"
    assert setting.data["key-passphrase-file"] == "-"


def test_password_flags_and_never_default() -> None:
    assert (
        VpnSetting({"password-flags": "3"}).password_flags == SecretFlags.AGENT_OWNED | SecretFlags.NOT_SAVED
    )
    assert VpnSetting({}).password_flags == SecretFlags.NONE
    assert never_default({"never-default": "yes"}) and not never_default({})
    assert asks_every_time({"password-flags": "2"}) and not asks_every_time({"password-flags": "1"})


def test_a_profile_becomes_vpn_data_with_notes_for_what_networkmanager_does_itself() -> None:
    table = {
        "server": "vpn.example.com",
        "user": "alice",
        "password-file": "/root/.vpnpass",
        "route": ["10.1.0.0/16"],
        "dns": True,
        "mru": 1400,
        "auth": ["mschapv2"],
        "insecure": False,
    }
    setting, notes = from_profile(table, "pw")
    assert setting.data == {
        "gateway": "vpn.example.com",
        "user": "alice",
        "mru": "1400",
        "auth": "mschapv2",
        "insecure": "no",
        "never-default": "yes",
        "password-flags": "0",
    }
    assert setting.secrets == {"password": "pw"}
    assert setting.routes == (IPv4Network("10.1.0.0/16"),)
    assert [note.split(":")[0] for note in notes] == ["password-file", "dns"]
    asked, _ = from_profile({"server": "h", "user": "a", "default-route": True}, None)
    assert asked.data["password-flags"] == "2" and asked.data["never-default"] == "no"
    with pytest.raises(ConfigError, match="colour: not a key"):
        from_profile({"server": "h", "colour": "blue"}, None)


def test_export_gives_back_the_profile_without_the_password() -> None:
    table = {"server": "vpn.example.com:8443", "user": "alice", "mru": 1400, "auth": ["mschapv2", "pap"]}
    setting, _ = from_profile({**table, "route": ["10.1.0.0/16"]}, "pw")
    assert to_profile(setting) == {**table, "default-route": False, "route": ["10.1.0.0/16"]}


def test_the_connection_dict_round_trips_through_networkmanagers_form() -> None:
    setting, _ = from_profile({"server": "h", "user": "a", "route": ["10.1.0.0/16"]}, "pw")
    made = connection_dict("office", setting)
    assert made["vpn"]["service-type"].value == SERVICE_TYPE
    assert made["connection"]["id"].value == "office" and made["connection"]["type"].value == "vpn"
    assert made["vpn"]["secrets"].value == {"password": "pw"}
    back = vpn_setting_of(made)
    assert (back.data, back.routes) == (setting.data, setting.routes)
    assert vpn_setting(made) == (dict(setting.data), {"password": "pw"}, "office")
    assert vpn_setting({}) == ({}, {}, "pysstp")


def up(dns: tuple[IPv4Address, ...] = (IPv4Address("10.0.0.53"),)) -> LinkUp:
    return LinkUp(
        user="alice",
        auth_method=AuthMethod.MSCHAP_V2,
        hash_protocol=None,
        local_address=IPv4Address("10.0.0.7"),
        peer_address=IPv4Address("10.0.0.1"),
        dns_servers=dns,
        mtu=1400,
    )


def test_addresses_go_as_networkmanager_reads_in_addr_t() -> None:
    assert in_addr(IPv4Address("10.0.0.1")).to_bytes(4, sys.byteorder) == bytes([10, 0, 0, 1])


def test_the_config_signal_names_the_tun_gateway_and_mtu() -> None:
    config = generic_config("sstp0", "192.0.2.10", 1400)
    assert config["tundev"] == Variant("s", "sstp0")
    assert config["gateway"] == Variant("u", in_addr(IPv4Address("192.0.2.10")))
    assert config["mtu"] == Variant("u", 1400)
    assert (config["has-ip4"].value, config["has-ip6"].value) == (True, False)
    assert generic_config("sstp0", "2001:db8::1", 1400)["gateway"].signature == "ay"


def test_the_ip4_config_signal_has_the_ipcp_address_peer_and_dns() -> None:
    config = ip4_config(up(), never_default=True)
    assert config["address"].value == in_addr(IPv4Address("10.0.0.7"))
    assert config["ptp"].value == config["gateway"].value == in_addr(IPv4Address("10.0.0.1"))
    assert config["prefix"].value == 32
    assert config["dns"] == Variant("au", [in_addr(IPv4Address("10.0.0.53"))])
    assert config["never-default"].value is True
    assert "routes" not in config and "domains" not in config
    pushed = ip4_config(up(()), False, [IPv4Network("10.9.0.0/16")], ["corp.example"])
    assert pushed["routes"].value == [[in_addr(IPv4Address("10.9.0.0")), 16, 0, 0]]
    assert pushed["domains"].value == ["corp.example"] and pushed["dns"].value == []


def test_install_writes_a_name_file_networkmanager_accepts_and_uninstall_removes_it(tmp_path: Path) -> None:
    names, policies = tmp_path / "VPN", tmp_path / "system.d"
    written = install(names, policies, Path("/opt/pysstp/bin/pysstp-nm-service"))
    assert written == [names / NAME_FILE, policies / POLICY_FILE]
    text = (names / NAME_FILE).read_text()
    assert f"service={SERVICE_TYPE}\n" in text and "program=/opt/pysstp/bin/pysstp-nm-service\n" in text
    assert stat.S_IMODE((names / NAME_FILE).stat().st_mode) == 0o644
    assert f'<allow own_prefix="{SERVICE_TYPE}"/>' in (policies / POLICY_FILE).read_text()
    assert uninstall(names, policies) == written
    assert uninstall(names, policies) == []
    assert name_file(Path("/x")).startswith("[VPN Connection]\n")


def test_pysstp_nm_install_and_uninstall_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--name-dir", str(tmp_path), "--no-policy"]
    assert main(["nm", "install", *args, "--program", "/usr/bin/pysstp-nm-service"]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / NAME_FILE}\n"
    assert main(["nm", "uninstall", *args]) == 0
    assert capsys.readouterr().out == f"removed {tmp_path / NAME_FILE}\n"


def test_pysstp_nm_import_names_the_profile_when_the_file_has_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profiles = tmp_path / "client.toml"
    profiles.write_text('[a]\nserver = "h"\n[b]\nserver = "h"\n')
    assert main(["nm", "import", str(profiles)]) == 1
    assert "name the profile to import: one of a, b" in capsys.readouterr().err


def test_pysstp_nm_import_checks_the_profile_before_adding_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profiles = tmp_path / "client.toml"
    profiles.write_text('[work]\nserver = "h"\nuser = "alice"\nmru = 5\n')
    assert main(["nm", "import", str(profiles)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pysstp: {profiles} [work]: ") and "mru" in err and err.count("\n") == 1


LOCAL_IID = bytes.fromhex("021122fffe334455")
PEER_IID = bytes.fromhex("0000000000000001")
PREFIX = IPv6Network("fd78:78::/64")


def test_the_ip6_config_signal_has_the_slaac_address_from_the_advertised_prefix() -> None:
    config = ip6_config(LOCAL_IID, PEER_IID, Advertised(prefix=PREFIX), never_default=True)
    assert IPv6Address(bytes(config["address"].value)) == IPv6Address("fd78:78::211:22ff:fe33:4455")
    assert config["prefix"] == Variant("u", 64)
    assert IPv6Address(bytes(config["gateway"].value)) == IPv6Address("fe80::1")
    assert config["never-default"].value is True
    assert "dns" not in config and "domains" not in config and "routes" not in config
    pushed = Advertised((IPv6Address("fd78:78::53"),), ("corp.test",), (IPv6Network("fd99:99::/48"),), PREFIX)
    config = ip6_config(LOCAL_IID, PEER_IID, pushed, never_default=True)
    assert config["dns"] == Variant("aay", [IPv6Address("fd78:78::53").packed])
    assert config["domains"] == Variant("as", ["corp.test"])
    assert config["routes"].value == [[IPv6Address("fd99:99::").packed, 48, bytes(16), 0]]
    # A server with link-local IPv6 only: the address IPv6CP's identifier gives.
    link_local = ip6_config(LOCAL_IID, PEER_IID, Advertised(), never_default=False)
    assert IPv6Address(bytes(link_local["address"].value)) == IPv6Address("fe80::211:22ff:fe33:4455")
    assert generic_config("sstp0", "192.0.2.10", 1400, has_ip6=True)["has-ip6"].value is True


def test_the_connections_ipv6_method_decides_whether_ipv6cp_is_offered() -> None:
    assert wants_ipv6("auto") and not wants_ipv6("ignore") and not wants_ipv6("disabled")
    data = {"gateway": "h", "user": "alice"}
    assert client_settings(data, {}, "work", ipv6=True).ipv6
    assert not client_settings(data, {}, "work").ipv6


def test_the_advertised_prefix_is_read_from_a_router_advertisement() -> None:
    packet = router_advertisement(PREFIX, source=IPv6Address("fe80::1"), mtu=1400)
    assert read_options(packet[40:]).prefix == PREFIX
    with pytest.raises(NdError):
        read_options(packet[40 : 40 + 16 + 20])  # the prefix option cut short
    assert (
        read_options(router_advertisement(None, source=IPv6Address("fe80::1"), mtu=1400)[40:]).prefix is None
    )


class Reports:
    """What the tunnel reported, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    def config(self, up: LinkUp, ifname: str, has_ip6: bool) -> None:
        self.sent.append(("config", has_ip6))

    def ip6(self, ipv6: Ipv6Up, advertised: Advertised) -> None:
        self.sent.append(("ip6", advertised.prefix))

    def pushed(self, routes: Sequence[IPv4Network], domains: Sequence[str]) -> None:
        self.sent.append(("pushed", (list(routes), list(domains))))


class FakeTun:
    name = "sstp9"

    def write_batch(self, packets: list[memoryview]) -> None:
        pass


def reporting_tunnel(reports: Reports, ipv6: bool = True) -> ReportingTunnel:
    settings = ClientSettings(host="h", user="alice", ipv6=ipv6)
    tunnel = ReportingTunnel(settings, NetworkChanges(), reports)
    tunnel.tun = FakeTun()  # type: ignore[assignment]
    return tunnel


async def test_config_waits_for_ipv6cp_and_ip6_config_for_the_advertisement() -> None:
    reports = Reports()
    tunnel = reporting_tunnel(reports)
    tunnel.apply(up())
    assert reports.sent == []  # IPv6CP has not settled
    tunnel.network_up(Ipv6Up(LOCAL_IID, PEER_IID))
    assert reports.sent == [("config", True)]
    advertisement = router_advertisement(PREFIX, source=IPv6Address("fe80::1"), mtu=1400)
    tunnel.deliver(None, [memoryview(b"\x45" + bytes(40)), memoryview(advertisement)])  # type: ignore[arg-type]
    assert reports.sent == [("config", True), ("ip6", PREFIX)]
    tunnel.close()


async def test_a_rejected_ipv6cp_reports_ipv4_only_at_once() -> None:
    reports = Reports()
    tunnel = reporting_tunnel(reports)
    tunnel.apply(up())
    tunnel.network_down(Protocol.IPV6CP)
    assert reports.sent == [("config", False)]
    tunnel.close()
    reports = Reports()
    tunnel = reporting_tunnel(reports, ipv6=False)
    tunnel.apply(up())
    assert reports.sent == [("config", False)]
    tunnel.close()


async def test_without_an_advertisement_the_link_local_address_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pysstp.nm.tunnel.RA_WAIT", 0.0)
    reports = Reports()
    tunnel = reporting_tunnel(reports)
    tunnel.network_up(Ipv6Up(LOCAL_IID, PEER_IID))  # IPv6CP first, the call up after
    tunnel.apply(up())
    assert reports.sent == [("config", True)]
    while len(reports.sent) < 2:
        await asyncio.sleep(0.01)
    assert reports.sent == [("config", True), ("ip6", None)]
    tunnel.close()


async def test_the_servers_routes_and_domain_are_reported_without_a_default_route() -> None:
    reports = Reports()
    tunnel = reporting_tunnel(reports, ipv6=False)
    tunnel.apply(up())
    route = ClasslessRoute(IPv4Network("10.99.0.0/16"), IPv4Address("0.0.0.0"))
    default = ClasslessRoute(IPv4Network("0.0.0.0/0"), IPv4Address("0.0.0.0"))
    server = IPv4Address("10.0.0.1")
    tunnel.apply_pushed(Configuration(server, routes=(default, route), domain="corp.test"))
    assert reports.sent[-1] == ("pushed", ([IPv4Network("10.99.0.0/16")], ["corp.test"]))
    tunnel.apply_pushed(Configuration(server, routes=(default,)))  # nothing left to report
    assert len(reports.sent) == 2
    tunnel.close()
