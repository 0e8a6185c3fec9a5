"""Knowledge federations of real nodes on 127.0.0.1: start, link with tiers, stop and restart on the same home."""
from __future__ import annotations

import pytest

from core.config import Settings
from core.identity import Identity
from core.node import Node

from ..conftest import address, wait_until


class Federation:
    """Nodes by name, each with its own home under ``root``; restartable on the same home and port."""

    def __init__(self, root):
        self.root = root
        self.nodes: dict[str, Node] = {}

    async def start(self, name: str, port: int = 0, **settings) -> Node:
        home = self.root / name
        if not home.exists():
            home.mkdir()
            Identity.generate(name).save(home)
        settings = {"listen": f"127.0.0.1:{port}", "discovery": False, **settings}
        node = Node(home, Identity.load(home), Settings(**settings))
        await node.start()
        self.nodes[name] = node
        return node

    async def stop(self, name: str) -> int:
        """Stop a node; returns the port it listened on (to restart it there)."""
        node = self.nodes.pop(name)
        port = node.transport.port
        await node.stop()
        return port

    async def close(self) -> None:
        for name in list(self.nodes):
            await self.stop(name)


async def link(dialer: Node, target: Node, dialer_sees: str, target_sees: str | None) -> None:
    """``dialer`` adds ``target`` by address; each side sets the other's tier (None: left unknown)."""
    await dialer.add_peer(address(target))
    await wait_until(lambda: dialer.identity.id in target.connections)
    if target_sees is not None:
        target.trust(dialer.identity.id, target_sees)
    dialer.trust(target.identity.id, dialer_sees)


def kn(node: Node):
    return node.service("knowledge")


async def settle(*nodes: Node, timeout: float = 20.0) -> None:
    """Wait until no knowledge work is queued or in flight on any of ``nodes``."""
    await wait_until(lambda: all(kn(n).pending() == 0 for n in nodes), timeout=timeout)


def counters(node: Node, peer: Node | None = None) -> dict:
    view = kn(node).engine.counters.view()
    if peer is None:
        return view["total"]
    return view["peers"].get(peer.identity.id, {"sent": 0, "received": 0, "accepted": 0,
                                                 "duplicates": 0, "rejected": {}})


@pytest.fixture
async def fed(tmp_path):
    federation = Federation(tmp_path)
    yield federation
    await federation.close()
