"""A realistic peer book for GUI tests: trusted, sandboxed, external, banned and offline peers."""
from __future__ import annotations


def populate(window, make_node, run, qtbot, address_of) -> dict:
    """Five real peers of the window's node (bob-laptop verified, mallory banned, erin-nas
    offline), three of them connected; carol-lab selected in the Trust tab."""
    node = window.node
    peers = {}
    for name, tier in (("bob-laptop", "core"), ("carol-lab", "sandbox"), ("dave", "external"),
                       ("mallory", "unknown"), ("erin-nas", "core")):
        other = make_node(name)
        run(node.add_peer(address_of(other), name=name))
        node.trust(other.identity.id, tier)
        peers[name] = other
    node.service("chat").verify(peers["bob-laptop"].identity.id, mark=True)
    run(node.ban(peers["mallory"].identity.id))
    run(peers["erin-nas"].stop())
    qtbot.waitUntil(lambda: window.peers_panel.model.connected_count() == 3)
    window.peers_panel.select_peer(peers["carol-lab"].identity.id)
    return peers
