"""Two-level aggregation over real nodes on loopback: a coordinator, 2 group aggregators, 6 workers."""
from __future__ import annotations

import numpy as np

from .conftest import address, wait_until
from .test_learning_support import federation, introduce, run_task


async def two_level(make_node, n_workers: int = 6, n_aggregators: int = 2):
    """A federation whose coordinator holds ``n_aggregators`` extra nodes as CORE; every worker is
    connected to every aggregator, and each aggregator trusts the coordinator and the workers."""
    coord, workers = await federation(make_node, n_workers)
    aggs = []
    for i in range(n_aggregators):
        a = await make_node(f"agg{i}")
        await a.add_peer(address(coord))
        a.peers.set_tier(coord.identity.id, "core")
        aggs.append(a)
    await wait_until(lambda: len(coord.connected_peers()) == n_workers + n_aggregators, 10)
    for a in aggs:
        coord.peers.set_tier(a.identity.id, "core")
        for w in workers:
            await w.add_peer(address(a))
        await wait_until(lambda a=a: len(a.connected_peers()) == n_workers + 1, 10)
        for w in workers:
            a.peers.set_tier(w.identity.id, "core")
    return coord, aggs, workers


def _flat(task) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in task.weights.values()])


async def test_fedavg_through_two_aggregators_equals_one_level_and_records_each_group(make_node):
    options = dict(rounds=2, aggregator="fedavg", seed=5, clients=6, deadline=30.0)
    flat_coord, _ = await federation(make_node, 6)
    flat = await run_task(flat_coord, **options)
    coord, aggs, workers = await two_level(_renamed(make_node, "b-"))
    status = await run_task(coord, aggregators=[a.identity.id for a in aggs], **options)
    assert flat["state"] == status["state"] == "done"
    one = flat_coord.service("learning").tasks[flat["task"]]
    two = coord.service("learning").tasks[status["task"]]
    assert [h["attempt"] for h in two.history] == [0, 0]
    np.testing.assert_allclose(_flat(two), _flat(one), rtol=0, atol=1e-4)
    assert abs(status["accuracy"] - flat["accuracy"]) < 1e-3
    ids = {a.identity.id for a in aggs}
    for record in two.history:
        assert set(record["groups"]) == ids
        assert all(g["status"] == "combined" and g["accepted"] == 3 and len(g["workers"]) == 3
                   for g in record["groups"].values())
        assert sum(g["weight"] for g in record["groups"].values()) == sum(
            w["n_examples"] for w in record["workers"].values())
        assert {w["group"] for w in record["workers"].values()} == ids
        assert record["accepted"] == 6 and record["missing"] == 0
    # the updates went through the aggregators: each admitted (and rewarded) its own group
    for a in aggs:
        group = set(two.history[-1]["groups"][a.identity.id]["workers"])
        assert all(a.peers.get(w).reputation > 0.5 for w in group)
    assert all(h["groups"] == {} for h in one.history)


async def test_secure_aggregation_inside_each_group_equals_plain_fedavg(make_node):
    """Each group's aggregator unmasks only its group's weighted sum; the result is the flat FedAvg."""
    options = dict(rounds=2, aggregator="fedavg", seed=5, clients=6, deadline=30.0, validate=False)
    flat_coord, _ = await federation(make_node, 6)
    flat = await run_task(flat_coord, **options)
    coord, aggs, workers = await two_level(_renamed(make_node, "b-"))
    introduce(workers)   # a worker shares keys only with participants its user trusts
    for w in workers:    # ... and takes the secure-aggregation steps only from an aggregator it trusts
        for a in aggs:
            w.peers.set_tier(a.identity.id, "core")
    status = await run_task(coord, aggregators=[a.identity.id for a in aggs], secure_agg=True, **options)
    assert flat["state"] == status["state"] == "done"
    one = flat_coord.service("learning").tasks[flat["task"]]
    two = coord.service("learning").tasks[status["task"]]
    assert [h["attempt"] for h in two.history] == [0, 0]
    # fixed point (2^-16 per masked coordinate) is the only difference from the plain sum
    np.testing.assert_allclose(_flat(two), _flat(one), rtol=0, atol=2e-3)
    assert abs(status["accuracy"] - flat["accuracy"]) < 0.02
    for record in two.history:
        assert record["secure_agg"] and record["accepted"] == 6
        assert all(g["status"] == "combined" and g["accepted"] == 3 for g in record["groups"].values())
        assert sum(g["weight"] for g in record["groups"].values()) == sum(
            w["n_examples"] for w in record["workers"].values())
    for a in aggs:   # an aggregator saw no single update: it measured no update's norm
        forwarded = a.service("learning").aggregator.tasks[status["task"]].forwarded
        assert len(forwarded) == 2
        assert all(e["norm"] is None and e["used"] for f in forwarded for e in f["workers"].values())


async def test_training_goes_on_when_an_aggregator_dies_mid_run(make_node):
    coord, aggs, workers = await two_level(make_node)
    learning = coord.service("learning")
    started = await learning.start_task(rounds=6, seed=6, clients=6, deadline=20.0, epochs=8,
                                        aggregators=[a.identity.id for a in aggs])
    task = learning.tasks[started["task"]]
    await wait_until(lambda: task.round >= 2 and task.current is not None, 60, step=0.01)
    dead = aggs[0].identity.id
    await aggs[0].stop()
    await wait_until(lambda: task.state != "running", 120)
    assert task.state == "done" and [h["round"] for h in task.history] == [1, 2, 3, 4, 5, 6]
    last = task.history[-1]
    alive = aggs[1].identity.id
    # the dead aggregator's workers moved to the other one
    assert set(last["groups"]) == {alive} and len(last["groups"][alive]["workers"]) == 6
    assert last["accepted"] == 6
    for record in task.history[2:]:
        lost = record["groups"].get(dead)
        if lost is not None:   # the round it died in (if it died mid-round) closed with the other group
            assert lost["status"] == "lost"
            assert all(record["workers"][w]["status"] == "missing" for w in lost["workers"])


async def _attacked(make_node, aggregator: str):
    coord, aggs, workers = await two_level(make_node)
    status = await run_task(coord, rounds=10, aggregator=aggregator, seed=0, clients=6, validate=False,
                            attack="sign_flip", attackers=1, aggregators=[a.identity.id for a in aggs],
                            timeout=120)
    assert status["state"] == "done"
    return coord, aggs, status


async def test_median_within_groups_resists_a_sign_flipper_in_one_group(make_node):
    _, _, plain = await _attacked(make_node, "fedavg")
    assert plain["accuracy"] < 0.6   # the attack is strong enough to matter: FedAvg falls
    coord, aggs, status = await _attacked(_renamed(make_node, "b-"), "median")
    task = coord.service("learning").tasks[status["task"]]
    attacker = next(p for p, slot in task.participants.items() if slot == 0)
    groups = {a for h in task.history for a, g in h["groups"].items() if attacker in g["workers"]}
    assert len(groups) == 1, "the attacker stays in one group"
    assert status["accuracy"] >= 0.85
    flagged = [h["workers"][attacker]["status"] for h in task.history]
    assert flagged[0] == "outlier" and all(s in ("outlier", "rejected") for s in flagged)
    # its own aggregator, which saw its updates, lowered its reputation
    agg = next(a for a in aggs if a.identity.id in groups)
    assert agg.peers.get(attacker).reputation < 0.5


def _renamed(make_node, prefix):
    async def factory(name, **settings):
        return await make_node(prefix + name, **settings)
    return factory
