"""Shared setup for the learning integration tests: a coordinator and N workers on loopback.

(No tests here; the other ``test_learning_*`` modules import these helpers.)
"""
from __future__ import annotations

from .conftest import address, wait_until


async def federation(make_node, n_workers: int, *, tier: str = "core", auto_join: bool = True):
    """A started coordinator and ``n_workers`` workers, connected, trusted both ways."""
    coord = await make_node("coord")
    workers = []
    for i in range(n_workers):
        w = await make_node(f"w{i}")
        w.service("learning").auto_join = auto_join
        await w.add_peer(address(coord))
        w.peers.set_tier(coord.identity.id, "core")
        workers.append(w)
    await wait_until(lambda: len(coord.connected_peers()) == n_workers, 10)
    for w in workers:
        coord.peers.set_tier(w.identity.id, tier)
    return coord, workers


async def run_task(coord, timeout: float = 60.0, **options) -> dict:
    """Start a task on ``coord`` and wait until it ends; returns its final status."""
    started = await coord.service("learning").start_task(**options)
    task = coord.service("learning").tasks[started["task"]]
    await wait_until(lambda: task.state != "running", timeout, step=0.05)
    return task.status()


def introduce(workers, tier: str = "sandbox") -> None:
    """Each worker's user vouches for the others as learning participants (needed for secure aggregation)."""
    for w in workers:
        for other in workers:
            if other is not w:
                w.peers.add_or_update(other.identity.id, name=other.identity.name)
                w.peers.set_tier(other.identity.id, tier)
