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


async def test_a_round_that_arrives_before_the_join_reply_is_handled_is_taken(make_node):
    """The coordinator counts a worker in as soon as it answers the join; its first round can reach
    the worker before the worker has handled that answer (a busy loop). The worker takes the round
    and trains once the answer is in, instead of refusing it (which cost the round a retry, or left
    the worker out of it)."""
    import asyncio
    coord, workers = await federation(make_node, 1, auto_join=False)
    worker = workers[0]
    real_request = worker.request

    async def slow_to_handle_the_join_reply(peer, kind, body, **kw):
        reply = await real_request(peer, kind, body, **kw)
        if kind == "ml.join":
            await asyncio.sleep(1.5)   # the reply is in; this node is busy before it handles it
        return reply
    worker.request = slow_to_handle_the_join_reply
    learning = coord.service("learning")
    started = await learning.start_task(rounds=1, min_clients=1, seed=4, deadline=30.0)
    await wait_until(lambda: started["task"] in worker.service("learning").worker.members, 10)
    await worker.service("learning").join(started["task"])
    task = learning.tasks[started["task"]]
    await wait_until(lambda: task.state != "running", 60, step=0.05)
    assert task.state == "done"
    assert task.history[0]["attempt"] == 0, "the first round was refused and retried"
    assert task.history[0]["accepted"] == 1
