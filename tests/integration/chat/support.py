"""Shared set-up for the chat integration tests: real nodes on 127.0.0.1 that may chat.

(No tests here; the ``test_chat_*`` modules import these helpers.)
"""
from __future__ import annotations

from core.node import Node

from ..conftest import address, wait_until

__all__ = ["address", "wait_until", "chat_pair", "befriend", "chat", "texts", "Recorder"]


def chat(node: Node):
    return node.service("chat")


async def befriend(a: Node, b: Node, tier: str = "external", name: str | None = None) -> None:
    """``a`` adds ``b`` by address (so a's keeper reconnects) and both trust each other."""
    await a.add_peer(address(b), name=name)
    await wait_until(lambda: b.identity.id in a.connected_peers() and a.identity.id in b.connected_peers())
    a.peers.set_tier(b.identity.id, tier)
    b.peers.set_tier(a.identity.id, tier)


async def chat_pair(make_node, tier: str = "external"):
    """alice and bob, connected (alice keeps bob), each allowing the other to chat."""
    alice, bob = await make_node("alice"), await make_node("bob")
    await befriend(alice, bob, tier, name="bob")
    return alice, bob


def texts(node: Node, peer: Node) -> list[str]:
    """The texts of ``node``'s conversation with ``peer`` (not marking them read)."""
    return [m["text"] for m in chat(node).read(peer.identity.id, mark=False)]


class Recorder:
    """Every event a node emits, kept for assertions (in-process listeners only)."""

    def __init__(self, node: Node):
        self.events = []
        self._off = node.events.on(None, self.events.append)

    def named(self, name: str, **match) -> list:
        return [e for e in self.events if e.name == name
                and all(e.data.get(k) == v for k, v in match.items())]

    def close(self) -> None:
        self._off()
