"""Faults over real nodes: too few workers (retry), a worker that drops and rejoins, a coordinator restart."""
from __future__ import annotations

from core import events as ev
from core.config import Settings
from core.identity import Identity
from core.node import Node

from .conftest import address, wait_until
from .test_learning_support import federation


async def test_round_below_the_minimum_is_retried_until_enough_workers_are_there(make_node):
    coord, workers = await federation(make_node, 2)
    retries = []
    coord.events.on(ev.ML_STATE, lambda e: retries.append(e.data) if "retry" in e.data else None)
    started = await coord.service("learning").start_task(rounds=2, min_clients=3, clients=3, deadline=2.0, seed=2)
    task = coord.service("learning").tasks[started["task"]]
    await wait_until(lambda: len(retries) >= 1, 20)
    assert task.round == 0 and retries[0]["retry"] == 1 and "3 needed" in retries[0]["reason"]
    late = await make_node("w-late")
    late.service("learning").auto_join = True
    await late.add_peer(address(coord))
    late.peers.set_tier(coord.identity.id, "core")
    await wait_until(lambda: late.identity.id in coord.connected_peers(), 10)
    coord.peers.set_tier(late.identity.id, "core")
    await wait_until(lambda: task.state != "running", 30)
    assert task.state == "done" and [h["accepted"] for h in task.history] == [3, 3]


async def test_a_dropped_worker_is_left_out_then_rejoins_a_later_round(make_node):
    coord, workers = await federation(make_node, 3)
    gone = workers[0]
    gone_id, home = gone.identity.id, gone.home
    started = await coord.service("learning").start_task(rounds=8, min_clients=2, deadline=3.0, seed=3)
    task = coord.service("learning").tasks[started["task"]]
    await wait_until(lambda: task.round >= 2, 30)
    await gone.stop()
    await wait_until(lambda: task.round >= 4, 30)
    back = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False))
    await back.start()
    try:
        await wait_until(lambda: task.state != "running", 60)
    finally:
        await back.stop()
    status = {h["round"]: h["workers"].get(gone_id, {}).get("status") for h in task.history}
    assert task.state == "done" and sorted(status) == list(range(1, 9))
    assert status[1] == "accepted"
    missing_rounds = [r for r, s in status.items() if s in (None, "missing")]
    assert missing_rounds, "rounds ran while the worker was down"
    assert status[8] == "accepted", "the restarted worker took part again"


async def test_a_restarted_coordinator_resumes_from_its_last_checkpoint_without_losing_a_round(tmp_path, make_node):
    home = tmp_path / "coord-home"
    home.mkdir()
    Identity.generate("coord").save(home)
    coord = Node(home, Identity.load(home), Settings(listen="127.0.0.1:0", discovery=False))
    await coord.start()
    port = coord.transport.port
    workers = []
    for i in range(3):
        w = await make_node(f"w{i}")
        w.service("learning").auto_join = True
        await w.add_peer(address(coord))
        w.peers.set_tier(coord.identity.id, "core")
        workers.append(w)
    await wait_until(lambda: len(coord.connected_peers()) == 3, 10)
    for w in workers:
        coord.peers.set_tier(w.identity.id, "core")
    started = await coord.service("learning").start_task(rounds=6, min_clients=3, deadline=10.0, seed=4)
    task_id = started["task"]
    task = coord.service("learning").tasks[task_id]
    await wait_until(lambda: task.round >= 3, 30)
    before = [dict(h) for h in task.history]
    await coord.stop()
    coord = Node(home, Identity.load(home), Settings(listen=f"127.0.0.1:{port}", discovery=False))
    await coord.start()
    try:
        task = coord.service("learning").tasks[task_id]
        await wait_until(lambda: task.state != "running", 60)
    finally:
        await coord.stop()
    rounds = [h["round"] for h in task.history]
    assert task.state == "done" and rounds == [1, 2, 3, 4, 5, 6]
    for old in before:  # every round completed before the restart is kept as it was
        kept = task.history[old["round"] - 1]
        assert kept["accuracy"] == old["accuracy"] and kept["at"] == old["at"]



async def test_a_worker_that_disconnects_mid_round_does_not_hold_the_round_to_its_deadline(make_node):
    """The round closes with the others as soon as a participant's connection drops."""
    import time
    coord, workers = await federation(make_node, 3)
    started = await coord.service("learning").start_task(rounds=3, min_clients=2, deadline=60.0, epochs=30, seed=4)
    task = coord.service("learning").tasks[started["task"]]
    await wait_until(lambda: task.current is not None and task.round >= 1, 60, step=0.01)
    began = time.monotonic()
    await workers[0].stop()
    await wait_until(lambda: task.state != "running", 60)
    assert time.monotonic() - began < 30  # far from the 60 s deadline
    assert task.state == "done" and [h["round"] for h in task.history] == [1, 2, 3]
    assert task.history[-1]["accepted"] == 2
