"""What one call costs in memory: the per-call objects of the core carry no ``__dict__``, and every call
of a server shares its certificate hashes (docs/architecture.md, "Memory per session")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import pytest

from pysstp.link import ServerLink
from pysstp.ppp.constants import AuthMethod
from pysstp.server.session import ServerConnection

from helpers.conversation import Conversation, client_config, pool_network_for_user, server_config

if TYPE_CHECKING:
    from pysstp.server.app import SstpServerApp


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP])
def test_the_objects_of_an_established_call_have_no_instance_dict(method: AuthMethod) -> None:
    conv = Conversation.make(client_config(auth_methods=(method,)), server_config(auth_methods=(method,)))
    conv.start()
    assert conv.server.is_up and conv.client.is_up
    for link in (conv.server, conv.client):
        session = link.session
        objects = [link, link.sstp, session, session.lcp, session.ipcp]
        for held in objects:
            assert held is not None
            assert not hasattr(held, "__dict__"), type(held).__name__


@pytest.mark.parametrize("method", [AuthMethod.MSCHAP_V2, AuthMethod.EAP_MSCHAP_V2, AuthMethod.PAP])
def test_an_established_call_keeps_no_authenticator(method: AuthMethod) -> None:
    conv = Conversation.make(client_config(auth_methods=(method,)), server_config(auth_methods=(method,)))
    conv.start()
    assert conv.server.is_up and conv.client.is_up
    for link in (conv.server, conv.client):
        assert link.session.auth is None
        assert link.session.auth_method is method


def slot_values(held: object) -> dict[str, object]:
    """The values of every slot ``held``'s classes declare (those that are set)."""
    names = {name for cls in type(held).__mro__ for name in getattr(cls, "__slots__", ())}
    return {name: getattr(held, name) for name in names if hasattr(held, name)}


def test_an_established_call_keeps_no_empty_lists_and_no_handshake_state() -> None:
    conv = Conversation.make()
    conv.start()
    assert conv.server.is_up
    link = conv.server
    session = link.session
    for held in (link, link.sstp, session, session.lcp, session.ipcp):
        empty = [name for name, value in slot_values(held).items() if isinstance(value, list) and not value]
        assert not empty, f"{type(held).__name__} keeps empty lists: {empty}"
    # The crypto binding is checked: its nonce and keys, and the HTTP request's parser, are gone.
    assert slot_values(link.sstp)["_nonce"] == b""
    assert slot_values(link.sstp)["_hlak"] is None
    assert slot_values(link.sstp)["_request_parser"] is None


def test_every_call_of_a_server_shares_one_ppp_configuration() -> None:
    config = server_config()
    first, second = (ServerLink(config, network_for_user=pool_network_for_user()) for _ in range(2))
    assert first.session.config is second.session.config
    assert first.session.lcp.config is second.session.lcp.config


def test_every_call_of_a_server_shares_one_mapping_of_certificate_hashes() -> None:
    config = server_config()
    first, second = (ServerLink(config, network_for_user=pool_network_for_user()) for _ in range(2))
    assert first.sstp._cert_hashes is second.sstp._cert_hashes is config.certificate_hashes


async def test_a_server_call_and_what_status_shows_of_it_have_no_instance_dict() -> None:
    server = SimpleNamespace(
        link_config=server_config(),
        deliver=lambda packet: None,
        report=lambda connection, event: None,
        ipv6_prefix=None,
    )
    connection = ServerConnection(cast("SstpServerApp", server))
    for held in (connection, connection.info):
        assert not hasattr(held, "__dict__"), type(held).__name__
    assert connection.authorization is ServerConnection(cast("SstpServerApp", server)).authorization
