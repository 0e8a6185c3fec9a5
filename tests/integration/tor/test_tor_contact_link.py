"""With Tor on, a node's contact link names its onion address, and a peer that adds the link
reaches it through tor with the link's id pinned (private Tor network, loopback namespace)."""
from __future__ import annotations

import pytest

from core.node import Node

from ..conftest import wait_until
from .test_tor import add_peer_through_tor

pytestmark = [pytest.mark.tor, pytest.mark.timeout(180),
              pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning"),
              pytest.mark.skipif(not hasattr(Node, "use_tor"), reason="Node.use_tor is not wired in yet")]


async def test_the_link_names_the_onion_and_a_peer_reaches_it_through_tor(make_node, network_torrc, running_tor):
    alice = await make_node("alice", connect_timeout=60.0)
    await alice.use_tor(None, str(network_torrc))
    bob = await make_node("bob", connect_timeout=60.0)
    await bob.use_tor(f"127.0.0.1:{running_tor.control_port}")
    await wait_until(lambda: alice.info()["onion"] is not None, timeout=120)
    onion = alice.info()["onion"]
    link = alice.info()["link"]
    assert link == f"covey://{onion}#{alice.identity.id}"
    view = await add_peer_through_tor(bob, link)
    assert view["id"] == alice.identity.id and view["address"] == onion
    assert bob.peers.get(alice.identity.id).pinned
    assert [s["route"] for s in bob.sessions()] == ["Tor"]
