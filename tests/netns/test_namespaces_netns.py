"""The tests' own namespaces (needs root): a pair is handed out only once the kernel is done with its
links, so that a test comparing :func:`namespaces.network_state` before and after a client sees only what
the client did."""

from __future__ import annotations

from helpers.namespaces import Pair, netns_pair, settled

__all__ = ["netns_pair"]


def test_a_new_pair_has_settled_links(netns_pair: Pair) -> None:
    # Right after `ip link set up` a veth has no carrier for a while, and its IPv6 link-local address
    # comes (tentative) only with the carrier: state that a test's "before" must not catch.
    assert settled(netns_pair.server, netns_pair.server_link)
    assert settled(netns_pair.client, netns_pair.client_link)
