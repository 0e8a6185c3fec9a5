"""Real nodes on 127.0.0.1 for the benchmarks: one started node, or two that may chat; and the
end of node processes a benchmark started."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from core.config import Settings
from core.identity import Identity
from core.node import Node


async def node(root: Path, name: str) -> Node:
    """A started node with a fresh identity under ``root/name`` (no discovery)."""
    home = root / name
    home.mkdir()
    Identity.generate(name).save(home)
    n = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False))
    await n.start()
    return n


async def pair(root: Path) -> tuple[Node, Node]:
    """Two connected nodes that hold each other as EXTERNAL (enough to chat)."""
    a, b = await node(root, "a"), await node(root, "b")
    await a.add_peer(f"127.0.0.1:{b.transport.port}", name="b")
    while a.identity.id not in b.connected_peers():
        await asyncio.sleep(0.01)
    a.peers.set_tier(b.identity.id, "external")
    b.peers.set_tier(a.identity.id, "external")
    return a, b


def stop_processes(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM to every process, then wait up to ``grace`` s for each; SIGKILL to one still running."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
