"""Learning admits what peers send through the one admission step: one report per refusal, over real sockets."""
from __future__ import annotations

import pytest

from core import events as ev
from core.errors import InvalidSignature

from .test_learning_bad_input import _rogue_federation, unchanged
from .test_learning_hardening import _forged_round, _joined


async def test_a_round_with_a_bad_signature_is_refused_and_reported_once(make_node):
    coord, workers, task = await _joined(make_node, 1)
    worker = workers[0]
    seen = []
    worker.events.on(ev.MESSAGE_REJECTED, seen.append)
    forged = dict(_forged_round(coord, task), sig=bytes(64))
    with pytest.raises(InvalidSignature):   # the coordinator is told the failed step's error
        await coord.request(worker.identity.id, "ml.round", forged)
    [event] = seen   # reported by the admission step, not a second time by the node
    assert event.data["type"] == "ml.round" and event.data["code"] == "bad_signature"
    assert event.data["peer"] == coord.identity.id
    # a worker does not hold its coordinator to account with reputation (as before)
    assert worker.peers.get(coord.identity.id).reputation >= 0.5


async def test_a_rejected_update_emits_one_event_naming_the_task(make_node):
    seen: list = []

    async def make_observed(name, **settings):
        node = await make_node(name, **settings)
        if name == "coord":
            node.events.on(ev.MESSAGE_REJECTED, seen.append)
        return node

    def bad_signature(ann, rogue, ctx):
        return dict(unchanged(ann, rogue, ctx), sig=bytes(64))

    coord, rogue, task, replies = await _rogue_federation(make_observed, bad_signature)
    assert replies and all(r["accepted"] is False and r["reason"] == "bad_signature" for r in replies)
    mine = [e for e in seen if e.data["peer"] == rogue.identity.id]
    assert len(mine) == task.rejections["bad_signature"] >= 1   # one event per rejected update
    assert all(e.data["task"] == task.id and e.data["code"] == "bad_signature" for e in mine)
    assert coord.peers.get(rogue.identity.id).reputation < 0.5
