"""The client's DHCPINFORM (pysstp.client.inform) against the server's responder, the data path's part in it
(pysstp.client.tunnel), the search line and --no-server-routes."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp import dhcp, udp
from pysstp.client import inform as client_inform
from pysstp.client import tunnel as tunnel_module
from pysstp.client.inform import InformExchange
from pysstp.client.settings import ClientSettings, settings_from_args
from pysstp.client.tunnel import Tunnel, resolv_conf
from pysstp.nd import Advertised
from pysstp.net.changes import NetworkChanges
from pysstp.server import inform
from pysstp.server.inform import Push, Session

LOCAL = IPv4Address("10.77.0.2")
SERVER = IPv4Address("10.77.0.1")
SESSION = Session(
    LOCAL,
    SERVER,
    IPv4Network("10.77.0.0/24"),
    (),
    Push(routes=(IPv4Network("10.99.0.0/16"),), domain="corp.example"),
)


def test_request_is_a_windows_inform_with_a_local_mac() -> None:
    exchange = InformExchange(LOCAL)
    datagram = udp.parse(exchange.request())
    assert (datagram.source, datagram.destination) == (LOCAL, udp.BROADCAST)
    assert (datagram.source_port, datagram.destination_port) == (68, 67)
    message = dhcp.parse(datagram.payload)
    assert message.message_type is dhcp.MessageType.INFORM
    assert message.option(dhcp.Option.USER_CLASS) == b"RRAS.Microsoft"
    assert message.ciaddr == LOCAL and message.xid == exchange.xid
    # Locally administered unicast: bit 1 of the first byte set, bit 0 clear.
    assert message.chaddr[0] & 0x03 == 0x02 and message.chaddr[:6] == exchange.mac


def test_the_servers_answer_is_recognised() -> None:
    exchange = InformExchange(LOCAL)
    reply = inform.respond(exchange.request(), SESSION)
    assert reply is not None and exchange.is_candidate(reply)
    configuration = exchange.answer(reply)
    assert configuration is not None
    assert configuration.domain == "corp.example"
    assert [route.network for route in configuration.routes] == [IPv4Network("10.99.0.0/16")]


def test_answers_to_others_are_not_taken() -> None:
    exchange = InformExchange(LOCAL)
    other = InformExchange(LOCAL)
    reply = inform.respond(other.request(), SESSION)
    assert reply is not None and exchange.answer(reply) is None
    # Other traffic to the client is not even a candidate.
    dns = udp.build(udp.Datagram(SERVER, LOCAL, 53, 40000, b"x"))
    assert not exchange.is_candidate(dns)
    assert not exchange.is_candidate(bytes.fromhex("6000") + bytes(60))


def test_a_broken_answer_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", "pysstp.client")
    exchange = InformExchange(LOCAL)
    broken = udp.build(udp.Datagram(SERVER, LOCAL, 67, 68, b"\x02" + bytes(50)))
    assert exchange.is_candidate(broken) and exchange.answer(broken) is None
    assert "ignored an answer from the server" in caplog.text


def test_tunnel_takes_the_answer_out_of_the_data_path() -> None:
    async def run() -> None:
        tunnel = Tunnel(ClientSettings(host="vpn.example", user="u"), NetworkChanges())
        exchange = InformExchange(LOCAL)
        answered = tunnel.expect(exchange)
        reply = inform.respond(exchange.request(), SESSION)
        assert reply is not None
        other = udp.build(udp.Datagram(SERVER, LOCAL, 53, 40000, b"x"))
        assert tunnel._take_answer([memoryview(other), memoryview(reply)]) == [memoryview(other)]
        assert answered.done() and answered.result().domain == "corp.example"
        tunnel.stop_expecting()
        assert tunnel._exchange is None

    asyncio.run(run())


def test_ask_retries_then_gives_up(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(client_inform, "ANSWER_WAIT", 0.01)
    sent: list[bytes] = []

    async def run() -> dhcp.Configuration | None:
        answered: asyncio.Future[dhcp.Configuration] = asyncio.get_running_loop().create_future()
        return await client_inform.ask(InformExchange(LOCAL), sent.append, answered)

    caplog.set_level("INFO", "pysstp.client")
    assert asyncio.run(run()) is None
    assert len(sent) == client_inform.ATTEMPTS
    assert "did not answer DHCPINFORM" in caplog.text


def test_ask_returns_the_answer() -> None:
    async def run() -> dhcp.Configuration | None:
        answered: asyncio.Future[dhcp.Configuration] = asyncio.get_running_loop().create_future()
        exchange = InformExchange(LOCAL)

        def send(packet: bytes) -> None:
            reply = inform.respond(packet, SESSION)
            assert reply is not None
            configuration = exchange.answer(reply)
            assert configuration is not None
            answered.set_result(configuration)

        return await client_inform.ask(exchange, send, answered)

    result = asyncio.run(run())
    assert result is not None and result.domain == "corp.example"


def test_resolv_conf_puts_the_servers_domain_first() -> None:
    old = "nameserver 192.0.2.53\nsearch home.example\noptions edns0\n"
    new = resolv_conf([SERVER], old, "sstp0", search=("corp.example",))
    assert new.splitlines()[1:] == [
        "nameserver 10.77.0.1",
        "search corp.example home.example",
        "options edns0",
    ]


def test_no_server_routes_flag() -> None:
    import argparse

    from pysstp.client.settings import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from_args(parser.parse_args(["vpn.example", "--user", "u"])).server_routes
    assert not settings_from_args(
        parser.parse_args(["vpn.example", "--user", "u", "--no-server-routes"])
    ).server_routes


def test_pushed_dns_goes_into_resolv_conf_and_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\nsearch home.example\n")
    monkeypatch.setattr(tunnel_module, "RESOLV_CONF", resolv)
    monkeypatch.setattr(tunnel_module, "_resolvectl_command", lambda: None)
    changes = NetworkChanges()
    tunnel = Tunnel(ClientSettings(host="vpn.example", user="u", dns=True), changes)
    tunnel.tun = SimpleNamespace(name="sstp0")  # type: ignore[assignment]
    tunnel._apply_dns([SERVER])
    assert "search" not in resolv.read_text().split("nameserver 10.77.0.1")[0]
    tunnel.apply_pushed(dhcp.Configuration(server=SERVER, domain="corp.example"))
    assert "search corp.example home.example" in resolv.read_text()
    tunnel._advertisement(Advertised(dns=(IPv6Address("2001:db8::53"),), domains=("lab.example",)))
    text = resolv.read_text()
    assert "nameserver 2001:db8::53" in text and "search corp.example lab.example home.example" in text
    tunnel.withdraw_pushed()
    assert resolv.read_text().splitlines()[1:] == ["nameserver 10.77.0.1", "search home.example"]
    changes.undo()
    assert resolv.read_text() == "nameserver 192.0.2.53\nsearch home.example\n"


def test_pushed_domain_needs_dns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    monkeypatch.setattr(tunnel_module, "RESOLV_CONF", resolv)
    monkeypatch.setattr(tunnel_module, "_resolvectl_command", lambda: None)
    tunnel = Tunnel(ClientSettings(host="vpn.example", user="u"), NetworkChanges())
    tunnel.tun = SimpleNamespace(name="sstp0")  # type: ignore[assignment]
    tunnel.apply_pushed(dhcp.Configuration(server=SERVER, domain="corp.example"))
    assert resolv.read_text() == "nameserver 192.0.2.53\n"


@given(st.binary(max_size=400))
def test_the_data_path_check_never_raises(data: bytes) -> None:
    exchange = InformExchange(LOCAL)
    header = udp.build(udp.Datagram(SERVER, LOCAL, 67, 68, b""))[:20]
    for packet in (data, header + data):
        if exchange.is_candidate(packet):
            assert exchange.answer(packet) is None or isinstance(exchange.answer(packet), dhcp.Configuration)
