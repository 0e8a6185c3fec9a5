"""Real nodes on 127.0.0.1 in one event loop, each with its own home."""
from __future__ import annotations

import pytest

from core.config import Settings
from core.identity import Identity
from core.node import Node


@pytest.fixture
async def make_node(tmp_path):
    """``await make_node("alice", mode=..., min_mode=...)`` -> a started Node; all stopped at the end."""
    nodes: list[Node] = []

    async def factory(name: str, **settings) -> Node:
        home = tmp_path / name
        home.mkdir()
        Identity.generate(name).save(home)
        settings.setdefault("listen", "127.0.0.1:0")
        settings.setdefault("discovery", False)
        node = Node(home, Identity.load(home), Settings(**settings))
        await node.start()
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        await node.stop()


def address(node: Node) -> str:
    return f"127.0.0.1:{node.transport.port}"


async def wait_until(predicate, timeout: float = 10.0, step: float = 0.02) -> None:
    """Poll a condition of real node state (events may fire before a test starts waiting)."""
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)
