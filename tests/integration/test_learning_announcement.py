"""What a round costs (real nodes on 127.0.0.1): one signed ``ml.round`` that every worker verifies and
reads its own entry from, a small MLP's short local round trained on the worker's loop, and one
held-out pass per commit that also gives the next round's reference loss."""
from __future__ import annotations

import threading

import pytest

from core.errors import MalformedMessage
from core.learning import coordinator as coordinator_module
from core.signed import seal

from .test_learning_hardening import _forged_round, _joined
from .test_learning_support import federation, run_task


async def test_a_round_is_signed_once_and_each_worker_trains_its_own_partition(make_node, monkeypatch):
    coord, workers = await federation(make_node, 3)
    announced: list[dict] = []

    def recording_seal(identity, kind, body, **kw):
        if kind == "ml.round":
            announced.append(body)
        return seal(identity, kind, body, **kw)

    monkeypatch.setattr(coordinator_module, "seal", recording_seal)
    status = await run_task(coord, rounds=2, min_clients=3, deadline=20.0, seed=3)
    assert status["state"] == "done"
    assert [body["round"] for body in announced] == [1, 2]        # one signature per round, not per worker
    ids = {w.identity.id for w in workers}
    for body in announced:
        assert set(body["assign"]) == ids
        assert sorted(entry["partition"] for entry in body["assign"].values()) == [0, 1, 2]
    for record in status["history"]:
        assert {w: e["status"] for w, e in record["workers"].items()} == dict.fromkeys(ids, "accepted")


async def test_a_round_that_assigns_nothing_to_a_worker_is_refused_by_it(make_node):
    coord, workers, task = await _joined(make_node, 2)
    envelope = _forged_round(coord, task)
    body = dict(envelope["body"])
    body["assign"] = {w: e for w, e in body["assign"].items() if w != workers[0].identity.id}
    with pytest.raises(MalformedMessage, match="assigns nothing to this node"):
        await coord.request(workers[0].identity.id, "ml.round", seal(coord.identity, "ml.round", body))
    # the worker named in the same announcement takes it
    assert await coord.request(workers[1].identity.id, "ml.round", seal(coord.identity, "ml.round", body)) \
        == {"ok": True}


@pytest.mark.parametrize("batch, on_loop", [(64, True), (8, False)])
async def test_a_short_local_round_of_a_small_mlp_trains_on_the_workers_loop(make_node, monkeypatch, batch, on_loop):
    from core.learning.worker import WorkerRole
    coord, workers = await federation(make_node, 3)
    threads: list[int] = []
    train = WorkerRole._train

    def recording_train(self, *args):
        threads.append(threading.get_ident())
        return train(self, *args)

    monkeypatch.setattr(WorkerRole, "_train", recording_train)
    # 3 workers share digits' 1,437 training rows: 479 each, 8 steps of 64 (60 of 8) per epoch
    status = await run_task(coord, rounds=2, min_clients=3, deadline=20.0, seed=3, batch=batch, epochs=1)
    assert status["state"] == "done" and status["accuracy"] > 0.2   # well above chance (0.1)
    assert len(threads) == 6
    assert all((t == threading.get_ident()) == on_loop for t in threads)


async def test_the_commit_check_gives_the_next_rounds_reference_loss(make_node, monkeypatch):
    from core.learning import train
    coord, workers = await federation(make_node, 2)
    passes: list[int] = []
    logits = train.logits

    def counting_logits(weights, X, *args, **kw):
        passes.append(len(X))
        return logits(weights, X, *args, **kw)

    monkeypatch.setattr(train, "logits", counting_logits)
    status = await run_task(coord, rounds=3, min_clients=2, deadline=20.0, seed=3)
    assert status["state"] == "done" and len(status["history"]) == 3
    n_test = len(coord.service("learning").tasks[status["task"]].data.y_test)
    half = (n_test + 1) // 2
    # round 1: the initial model's loss and reference, in one pass; per round: each update's validation
    # and the commit
    assert sorted(passes) == sorted([n_test] + [half] * 2 * 3 + [n_test] * 3)
