"""`pysstp connect`: IPv6 settings and summary, the live traffic line, and the proxy from the environment
(no network, no root)."""

from __future__ import annotations

import asyncio
import io
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest

from pysstp.client import live
from pysstp.client.live import Counters, LiveLine, live_line, si
from pysstp.client.report import summary
from pysstp.client.settings import NO_PROXY_ENV, PROXY_ENV, ProxySettings, proxy_from_environment
from pysstp.commands.connect import show_live_line
from pysstp.errors import ConfigError
from pysstp.link import LinkUp
from pysstp.ppp.constants import AuthMethod
from pysstp.sstp.constants import HashProtocol
from test_client_settings import PIN, no_password_env, settings

__all__ = ["no_password_env"]

BASE = ("vpn.example.com", "--user", "alice", "--password-insecure-cmdline", "pw", "--pin-sha256", PIN)


# -- IPv6 ------------------------------------------------------------------------------------------


def test_ipv6_is_offered_by_default_and_no_ipv6_turns_it_off() -> None:
    assert settings(*BASE).ipv6 is True
    assert settings(*BASE, "--no-ipv6").ipv6 is False


def test_route_takes_ipv6_prefixes() -> None:
    s = settings(*BASE, "--route", "fd00:10::/48", "--route", "10.1.0.0/16")
    assert s.routes[0] == IPv6Network("fd00:10::/48")
    with pytest.raises(ConfigError, match="host bits"):
        settings(*BASE, "--route", "fd00:10::1/48")


def test_summary_names_the_ipv6_address() -> None:
    up = LinkUp(
        user="alice",
        auth_method=AuthMethod.MSCHAP_V2,
        hash_protocol=HashProtocol.SHA256,
        local_address=IPv4Address("10.0.0.5"),
        peer_address=IPv4Address("10.0.0.1"),
        dns_servers=(IPv4Address("10.0.0.1"),),
        mtu=1400,
    )
    assert summary(up, "sstp0", IPv6Address("fd77:77::5")) == (
        "connected: 10.0.0.5 and fd77:77::5 via sstp0, DNS 10.0.0.1, MS-CHAPv2, SHA-256 binding"
    )
    v6_only = LinkUp("alice", AuthMethod.PAP, HashProtocol.SHA1, None, None, (), 1400)
    assert summary(v6_only, "sstp0", IPv6Address("fd77:77::5")).startswith("connected: fd77:77::5 via sstp0")


# -- the live line ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "binary", "text"),
    [
        (0, "bit/s", False, "0 bit/s"),
        (999, "bit/s", False, "999 bit/s"),
        (1000, "bit/s", False, "1 kbit/s"),
        (1_234_567, "bit/s", False, "1.23 Mbit/s"),
        (1023, "B", True, "1023 B"),
        (1024, "B", True, "1 KiB"),
        (15 * 1024**2 + 300 * 1024, "B", True, "15.3 MiB"),
        (5 * 1024**5, "B", True, "5120 TiB"),
    ],
)
def test_si(value: float, unit: str, binary: bool, text: str) -> None:
    assert si(value, unit, binary) == text


def test_live_line_rates_over_the_interval_and_totals() -> None:
    before = Counters(bytes_in=1000, bytes_out=500, packets_in=10, packets_out=5)
    after = Counters(bytes_in=1000 + 300_000, bytes_out=500 + 20_000, packets_in=2010, packets_out=505)
    assert live_line(before, after, 2.0) == (
        "in 1.2 Mbit/s, out 80 kbit/s | total in 294 KiB / 2.01k pkts, out 20 KiB / 505 pkts"
    )
    assert live_line(after, after, 0.0).startswith("in 0 bit/s, out 0 bit/s")


async def test_live_line_redraws_in_place_and_ends_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "INTERVAL", 0.01)
    counters = Counters()

    def sample() -> Counters:
        nonlocal counters
        counters = Counters(counters.bytes_in + 100, counters.bytes_out, counters.packets_in + 1, 0)
        return counters

    stream = io.StringIO()
    line = LiveLine(sample, stream)
    line.start()
    await asyncio.sleep(0.1)
    await line.stop()
    text = stream.getvalue()
    assert text.startswith("\rin ") and text.endswith("\n") and text.count("\n") == 1
    assert text.count("\r") >= 2  # redrawn in place, not one line per second


def test_live_line_only_on_a_terminal_and_never_with_json(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdout", Tty())
    assert show_live_line(settings(*BASE))
    assert not show_live_line(settings(*BASE, "--log-format", "json"))
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert not show_live_line(settings(*BASE))


# -- the proxy from the environment ----------------------------------------------------------------


def test_proxy_from_env_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (*PROXY_ENV, *NO_PROXY_ENV):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("https_proxy", "http://bob:s%40cret@proxy.corp:3128")
    assert settings(*BASE).proxy is None
    proxy = settings(*BASE, "--proxy-from-env").proxy
    assert proxy == ProxySettings("proxy.corp", 3128, "bob", "s@cret")
    # --proxy wins over the environment.
    assert settings(*BASE, "--proxy-from-env", "--proxy", "http://other:8080").proxy == ProxySettings(
        "other", 8080
    )


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://p:8080"}, ProxySettings("p", 8080)),
        ({"https_proxy": "p:3128", "HTTPS_PROXY": "http://q:8080"}, ProxySettings("p", 3128)),
        ({"https_proxy": "http://p:8080", "no_proxy": "example.com"}, None),
        ({"https_proxy": "http://p:8080", "no_proxy": ".example.com"}, None),
        ({"https_proxy": "http://p:8080", "NO_PROXY": "*"}, None),
        ({"https_proxy": "http://p:8080", "no_proxy": "other.com, ample.com"}, ProxySettings("p", 8080)),
        ({"https_proxy": "http://p:8080", "no_proxy": "vpn.example.com:443"}, None),
        ({"https_proxy": "http://p:8080", "no_proxy": "sub.vpn.example.com"}, ProxySettings("p", 8080)),
    ],
)
def test_proxy_from_environment(environ: dict[str, str], expected: ProxySettings | None) -> None:
    assert proxy_from_environment("vpn.example.com", environ) == expected


def test_proxy_from_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^\$https_proxy: expected http://.*, not 'socks5://p:1080'$"):
        proxy_from_environment("vpn.example.com", {"https_proxy": "socks5://p:1080"})
