"""A task started with fewer eligible workers than a round needs: its status says so at once, and a
worker that connects later gets a share of the data and the rounds run (real nodes on loopback)."""
from __future__ import annotations

from .conftest import address, wait_until
from .test_learning_support import federation


async def test_a_worker_connecting_after_the_start_joins_and_the_rounds_run(make_node):
    coord, workers = await federation(make_node, 1)
    learning = coord.service("learning")
    assert learning.eligible_workers() == [workers[0].identity.id]
    started = await learning.start_task(rounds=2, min_clients=2, seed=4, deadline=60.0)
    task = learning.tasks[started["task"]]
    assert task.spec.clients == 2, "room for the second worker a round needs"
    await wait_until(lambda: task.status()["ready"] == 1, 10)
    status = task.status()
    assert (status["ready"], status["needed"], status["round_open"], status["round"]) == (1, 2, False, 0)

    late = await make_node("late")
    late.service("learning").auto_join = True
    await late.add_peer(address(coord))
    late.peers.set_tier(coord.identity.id, "core")
    await wait_until(lambda: late.identity.id in coord.connected_peers(), 10)
    coord.peers.set_tier(late.identity.id, "core")
    assert sorted(learning.eligible_workers()) == sorted([workers[0].identity.id, late.identity.id])
    await wait_until(lambda: task.state != "running", 60, step=0.05)
    assert task.state == "done" and set(task.participants) == {workers[0].identity.id, late.identity.id}
    assert all(h["accepted"] == 2 for h in task.history)


async def test_status_counts_connected_peers_that_have_not_joined(make_node):
    coord, workers = await federation(make_node, 2, auto_join=False)   # invited, they wait for Join
    learning = coord.service("learning")
    started = await learning.start_task(rounds=1, min_clients=2, seed=4, deadline=60.0)
    task = learning.tasks[started["task"]]
    await wait_until(lambda: len(workers[0].service("learning").worker.members) == 1, 10)
    status = task.status()
    assert (status["ready"], status["not_joined"], status["needed"]) == (0, 2, 2)
    await learning.stop_task(started["task"])
