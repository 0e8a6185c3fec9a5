"""Secure aggregation over real nodes: the coordinator only gets the sum, and a dropout does not spoil it."""
from __future__ import annotations

import asyncio

import pytest

from core.errors import BadRequest

from .test_learning_support import federation, introduce, run_task


async def test_secure_aggregation_trains_and_the_coordinator_never_sees_single_updates(make_node):
    coord, workers = await federation(make_node, 5)
    introduce(workers)  # a worker shares keys only with participants its user trusts
    status = await run_task(coord, rounds=5, aggregator="fedavg", secure_agg=True, validate=False, seed=5)
    assert status["state"] == "done"
    assert status["accuracy"] > status["history"][0]["accuracy"] > 0.3
    for h in status["history"]:
        assert h["accepted"] == 5
        assert all(w["norm"] is None for w in h["workers"].values())  # no single update to measure


async def test_a_worker_lost_after_sharing_keys_does_not_spoil_the_round(make_node):
    coord, workers = await federation(make_node, 5)
    introduce(workers)
    quitter = workers[4]

    stopping = []

    def vanish(peer_id, body):  # receives the shares, then is gone before masking
        stopping.append(asyncio.ensure_future(quitter.stop()))
        return None

    quitter.on_message("ml.sa.relay", vanish)
    status = await run_task(coord, rounds=2, aggregator="fedavg", secure_agg=True, validate=False,
                            min_clients=3, deadline=3.0, seed=6)
    await asyncio.gather(*stopping)
    assert status["state"] == "done"
    first = status["history"][0]
    assert first["accepted"] == 4 and first["workers"][quitter.identity.id]["status"] == "missing"
    assert first["accuracy"] > 0.3


@pytest.mark.parametrize("aggregator", ["krum", "multikrum", "median", "trimmed-mean"])
async def test_secure_aggregation_with_a_rule_that_must_see_each_update_is_refused(make_node, aggregator):
    coord, _ = await federation(make_node, 1)
    with pytest.raises(BadRequest, match="hides every single update"):
        await coord.service("learning").start_task(aggregator=aggregator, secure_agg=True, validate=False)
