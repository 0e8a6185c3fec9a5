"""Every bad update is rejected with its reason, counted, costs reputation, and the round goes on.

A coordinator, two honest workers and one rogue participant (a real node
whose ml.round handler is replaced so it can send crafted updates).
"""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from core.identity import Identity
from core.learning import protocol as proto
from core.learning.models import weight_spec
from core.learning.tensors import decode, encode
from core.signed import Verifier, seal

from .conftest import wait_until
from .test_learning_support import federation


def _weights(ann: proto.RoundAnnouncement) -> dict[str, np.ndarray]:
    spec = proto.TaskSpec.from_dict(ann.spec)
    wspec = weight_spec(spec.model, spec.n_features, spec.n_classes, tuple(spec.image_shape), spec.hidden)
    return {k: v.copy() for k, v in decode(ann.weights, wspec, 1 << 24).items()}


def _body(ann, **payload) -> dict:
    return {"task": ann.task, "round": ann.round, "round_id": ann.round_id, "n_examples": 100,
            "loss": 0.5, **payload}


def _first_key(w):
    return next(iter(w))


def wrong_shape(ann, rogue, ctx):
    w = _weights(ann)
    k = _first_key(w)
    w[k] = w[k].reshape(-1)  # same values, wrong shape
    return seal(rogue.identity, "ml.update", _body(ann, weights=encode(w)))


def wrong_dtype(ann, rogue, ctx):
    w = _weights(ann)
    k = _first_key(w)
    w[k] = w[k].astype(np.float64)
    return seal(rogue.identity, "ml.update", _body(ann, weights=encode(w)))


def nan_values(ann, rogue, ctx):
    w = _weights(ann)
    w[_first_key(w)][0, 0] = np.nan
    return seal(rogue.identity, "ml.update", _body(ann, weights=encode(w)))


def inf_values(ann, rogue, ctx):
    w = _weights(ann)
    w[_first_key(w)][0, 0] = np.inf
    return seal(rogue.identity, "ml.update", _body(ann, weights=encode(w)))


def truncated(ann, rogue, ctx):
    data = encode(_weights(ann))
    return seal(rogue.identity, "ml.update", _body(ann, weights=data[: len(data) // 2]))


def oversized(ann, rogue, ctx):
    w = _weights(ann)
    w["padding"] = np.zeros(1 << 20, dtype=np.float32)  # 4 MiB more than the model has
    return seal(rogue.identity, "ml.update", _body(ann, weights=encode(w)))


def non_participant(ann, rogue, ctx):
    stranger = Identity.generate("stranger")
    return seal(stranger, "ml.update", _body(ann, weights=encode(_weights(ann))))


def unchanged(ann, rogue, ctx):
    """A well-formed update (the global weights sent back)."""
    return seal(rogue.identity, "ml.update", _body(ann, weights=encode(_weights(ann))))


def replayed(ann, rogue, ctx):
    """Round 1: an honest update (kept); round 2: that same envelope again."""
    if ann.round == 1:
        ctx["first"] = unchanged(ann, rogue, ctx)
    return ctx["first"]


CASES = [
    (wrong_shape, "shape"),
    (wrong_dtype, "dtype"),
    (nan_values, "non_finite"),
    (inf_values, "non_finite"),
    (truncated, "malformed"),
    (oversized, "too_large"),
    (non_participant, "not_participant"),
    (replayed, "replay"),
]


async def _rogue_federation(make_node, craft, *, late: bool = False, deadline: float = 20.0):
    coord, workers = await federation(make_node, 3)
    rogue = workers[2]
    replies: list[dict] = []
    ctx: dict = {}
    verifier = Verifier()

    async def act(ann):
        if late:  # hold the update until the round has closed without us
            task = coord.service("learning").tasks[ann.task]
            await wait_until(lambda: task.round >= ann.round, 30)
        envelope = craft(ann, rogue, ctx)
        replies.append(await rogue.request(coord.identity.id, "ml.update", envelope))

    def on_round(peer_id, envelope):
        _, body = verifier.open(envelope, "ml.round")
        ann = proto.parse_round(body, 1 << 26, rogue.identity.id)
        rogue.service("learning").spawn(act(ann))
        return {"ok": True}

    rogue.on_message("ml.round", on_round)
    started = await coord.service("learning").start_task(rounds=2, min_clients=2, deadline=deadline, seed=1)
    task = coord.service("learning").tasks[started["task"]]
    await wait_until(lambda: task.state != "running" and len(replies) >= (2 if craft is replayed else 1), 60)
    return coord, rogue, task, replies


@pytest.mark.parametrize("craft,reason", CASES, ids=[c[0].__name__ for c in CASES])
async def test_bad_update_is_rejected_with_reason_counted_and_costs_reputation(make_node, craft, reason):
    coord, rogue, task, replies = await _rogue_federation(make_node, craft)
    bad = replies[-1]
    assert bad["accepted"] is False and bad["reason"] == reason
    assert task.rejections[reason] >= 1
    if reason == "replay":  # a replay may be anyone resending an honest message: no reputation cost
        assert coord.peers.get(rogue.identity.id).reputation >= 0.5
    else:
        assert coord.peers.get(rogue.identity.id).reputation < 0.5
    # the rounds went on with the honest workers
    assert task.state == "done" and [h["round"] for h in task.history] == [1, 2]
    bad_round = task.history[-1] if craft is replayed else task.history[0]
    assert bad_round["accepted"] == 2 and bad_round["rejected"] == 1
    assert bad_round["reasons"] == {reason: 1}
    assert bad_round["workers"][rogue.identity.id]["status"] == "rejected"


async def test_update_after_the_deadline_is_rejected_as_late_and_the_round_closed_without_it(make_node):
    coord, rogue, task, replies = await _rogue_federation(make_node, unchanged, late=True, deadline=1.5)
    assert replies[0] == {"accepted": False, "reason": "late", "message": replies[0]["message"]}
    assert task.rejections["late"] >= 1
    assert coord.peers.get(rogue.identity.id).reputation < 0.5
    first = task.history[0]
    assert first["accepted"] == 2 and first["workers"][rogue.identity.id]["status"] == "missing"
    assert task.state == "done"
