"""Federated learning under attack (issue 6, findings 4, 9, 10, 11), with real nodes on 127.0.0.1.

- 4: a stranger's flood of signed updates never reaches the replay memory;
  stale copies cost no reputation.
- 9: a coordinator cannot make a worker open a local path, change the spec
  after join, keep a worker after the user lowered it, or push a model over
  the worker's parameter budget.
- 10: a worker refuses a secure-aggregation roster with an identity it does
  not trust, a roster below the minimum, and a plain round in a secure task.
- 11: inflated example counts are refused; a secure-aggregation participant
  that inflates its weight or vector does not move the model.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from core import events as ev
from core.errors import CoveyError, RefusedByPolicy
from core.identity import Identity
from core.learning import protocol as proto
from core.learning.tensors import encode
from core.signed import seal

from .conftest import address, wait_until
from .test_learning_bad_input import _body, _rogue_federation, _weights, unchanged
from .test_learning_support import federation, introduce, run_task


# -- 4: admission of signed updates ------------------------------------------------
async def test_a_strangers_flood_of_signed_updates_neither_enters_the_replay_memory_nor_stops_training(make_node):
    coord, workers = await federation(make_node, 2, auto_join=False)   # they join after the flood
    stranger = await make_node("stranger")
    await stranger.add_peer(address(coord))
    await wait_until(lambda: coord.identity.id in stranger.connected_peers(), 10)
    started = await coord.service("learning").start_task(rounds=2, min_clients=2, deadline=20.0, seed=3)
    task = coord.service("learning").tasks[started["task"]]
    task.verifier.max_entries = 20   # a small memory, so 40 envelopes overflow it
    throwaways = [Identity.generate(f"throwaway{i}") for i in range(20)]
    body = {"task": task.id, "round": 1, "round_id": bytes(16), "n_examples": 1, "loss": 0.0,
            "weights": b"x"}
    ahead = time.time() + 100   # inside the old +120 s skew: it raised the shared replay floor

    async def send(signer):
        try:
            await stranger.request(coord.identity.id, "ml.update", seal(signer, "ml.update", body, now=ahead))
        except CoveyError:
            pass  # a refusal is fine: what counts is what the coordinator kept

    # all at once, as a flood arrives (one at a time, the stranger would be banned after three)
    await asyncio.gather(*(send(s) for s in [stranger.identity] * 20 + throwaways))
    await wait_until(lambda: all(task.id in w.service("learning").worker.members for w in workers), 30)
    for w in workers:
        await w.service("learning").join(task.id)
    await wait_until(lambda: task.state != "running", 60, step=0.05)
    assert task.state == "done" and [h["round"] for h in task.history] == [1, 2]
    for w in workers:
        record = coord.peers.get(w.identity.id)
        assert not record.banned and record.reputation >= 0.5
    assert task.verifier.remembers(stranger.identity.id) == 0
    assert all(task.verifier.remembers(t.id) == 0 for t in throwaways)


def stale(ann, rogue, ctx):
    """A well-formed update stamped 200 s ago (a copy kept and resent later)."""
    return seal(rogue.identity, "ml.update", _body(ann, weights=encode(_weights(ann))), now=time.time() - 200)


async def test_a_stale_update_is_rejected_without_a_reputation_cost(make_node):
    coord, rogue, task, replies = await _rogue_federation(make_node, stale)
    assert replies[0]["accepted"] is False and replies[0]["reason"] == "stale"
    assert coord.peers.get(rogue.identity.id).reputation >= 0.5
    assert task.state == "done"


# -- 9: a worker is not its coordinator's puppet --------------------------------------
async def _joined(make_node, n: int = 3, **options):
    """A coordinator whose one-round task is done, and ``n`` workers (who trust each other) still joined."""
    coord, workers = await federation(make_node, n)
    introduce(workers)
    status = await run_task(coord, rounds=1, min_clients=n, deadline=20.0, seed=4, **options)
    assert status["state"] == "done"
    return coord, workers, coord.service("learning").tasks[status["task"]]


def _forged_round(coord, task, *, spec: dict | None = None, secagg: dict | None = None, number: int = 2) -> dict:
    """A round the coordinator seals itself, as its own code would, but with what the test chooses."""
    entry = {"partition": 0, "attack": None, "secagg": secagg, "aggregator": None}
    body = {"task": task.id, "round": number, "attempt": 0, "round_id": bytes(range(16)),
            "weights": encode(task.weights), "deadline": 20.0, "n_partitions": 3, "weight_cap": 1000,
            "spec": spec if spec is not None else task.spec.to_dict(),
            "assign": {worker: entry for worker in task.participants}}
    return seal(coord.identity, "ml.round", body)


@pytest.mark.parametrize("change", ["private_file", "learning_rate"])
async def test_a_round_with_another_spec_than_the_one_joined_is_refused(make_node, tmp_path, change):
    coord, workers, task = await _joined(make_node)
    private = tmp_path / "private.csv"
    rows = np.random.default_rng(0).random((50, 64))
    np.savetxt(private, np.column_stack([rows, np.arange(50) % 10]), delimiter=",",
               header=",".join([f"f{i}" for i in range(64)] + ["label"]), comments="")
    spec = task.spec.to_dict()
    spec.update({"dataset": str(private)} if change == "private_file" else {"lr": 5.0})
    with pytest.raises(RefusedByPolicy):
        await coord.request(workers[0].identity.id, "ml.round", _forged_round(coord, task, spec=spec))


async def test_an_invitation_naming_a_local_path_is_refused(make_node, tmp_path):
    coord, workers = await federation(make_node, 1, auto_join=False)
    spec = proto.TaskSpec(dataset=str(tmp_path / "secret.csv"), n_features=64, n_classes=10).to_dict()
    with pytest.raises(RefusedByPolicy, match="opens no file"):
        await coord.request(workers[0].identity.id, "ml.invite", {"task": "ab" * 8, "spec": spec})


async def test_a_worker_stops_working_for_a_coordinator_it_lowered(make_node):
    coord, workers, task = await _joined(make_node)
    worker = workers[0]
    assert await coord.request(worker.identity.id, "ml.round", _forged_round(coord, task)) == {"ok": True}
    worker.peers.set_tier(coord.identity.id, "unknown")
    with pytest.raises(CoveyError):
        await coord.request(worker.identity.id, "ml.round", _forged_round(coord, task, number=3))


async def test_an_invitation_over_the_parameter_budget_is_shown_and_join_refuses_it(make_node):
    coord, workers = await federation(make_node, 1, auto_join=False)
    worker = workers[0]
    spec = proto.TaskSpec(n_features=60_000, n_classes=10, hidden=100).to_dict()   # 6,001,110 parameters
    await coord.request(worker.identity.id, "ml.invite", {"task": "cd" * 8, "spec": spec})
    view = worker.service("learning").status("cd" * 8)
    assert view["params"] == 6_001_110 and view["max_params"] == 5_000_000 and view["within_budget"] is False
    with pytest.raises(RefusedByPolicy, match="budget"):
        await worker.service("learning").join("cd" * 8)
    assert worker.service("learning").worker.members["cd" * 8].state == "invited"


async def test_a_raised_budget_holds_at_once_and_after_a_restart(make_node):
    from core.learning.worker import MAX_PARAMS_SETTING
    coord, workers = await federation(make_node, 1, auto_join=False)
    worker = workers[0]
    spec = proto.TaskSpec(n_features=60_000, n_classes=10, hidden=100).to_dict()   # 6,001,110 parameters
    await coord.request(worker.identity.id, "ml.invite", {"task": "cd" * 8, "spec": spec})
    role = worker.service("learning").worker
    assert role.max_params == 5_000_000        # read (and kept) before the change
    role.set_max_params(7_000_000)
    assert worker.service("learning").status("cd" * 8)["within_budget"] is True
    assert worker.store.get_setting(MAX_PARAMS_SETTING) == 7_000_000   # what a restarted node reads


# -- 10: secure aggregation among participants the workers know -------------------------
def _retries(coord) -> list[str]:
    reasons: list[str] = []
    coord.events.on(ev.ML_STATE, lambda e: reasons.append(e.data["reason"]) if "retry" in e.data else None)
    return reasons


async def test_a_roster_with_an_identity_the_workers_do_not_trust_is_refused(make_node):
    coord, workers = await federation(make_node, 3)
    honest, sybil = workers[:2], workers[2]    # the coordinator's own extra identity
    introduce(honest)
    reasons = _retries(coord)
    started = await coord.service("learning").start_task(rounds=1, min_clients=3, deadline=5.0, seed=7, secure_agg=True,
                                              validate=False)
    task = coord.service("learning").tasks[started["task"]]
    await wait_until(lambda: reasons or task.round >= 1, 60)
    await task.halt()
    assert task.round == 0 and task.history == []
    assert any("secure aggregation" in r for r in reasons)


async def test_a_roster_smaller_than_three_known_participants_is_refused(make_node):
    coord, workers = await federation(make_node, 2)
    introduce(workers)
    reasons = _retries(coord)
    started = await coord.service("learning").start_task(rounds=1, min_clients=2, deadline=5.0, seed=8, secure_agg=True,
                                              validate=False)
    task = coord.service("learning").tasks[started["task"]]

    class TwoIsEnough(proto.TaskSpec):   # a coordinator that lowers the minimum on its side
        round_minimum = 2

    task.spec = TwoIsEnough(**task.spec.to_dict())
    await wait_until(lambda: reasons or task.round >= 1, 60)
    await task.halt()
    assert task.round == 0 and task.history == []


async def test_a_task_joined_as_secure_never_gets_a_plain_round(make_node):
    coord, workers, task = await _joined(make_node, secure_agg=True, validate=False)
    with pytest.raises(RefusedByPolicy, match="secure"):
        await coord.request(workers[0].identity.id, "ml.round", _forged_round(coord, task, secagg=None))


# -- 11: example counts and weights ---------------------------------------------------------
def inflated(ann, rogue, ctx):
    """The global model back, claiming 10^9 examples (it would freeze FedAvg)."""
    return seal(rogue.identity, "ml.update", {**_body(ann, weights=encode(_weights(ann))), "n_examples": 10**9})


async def test_an_inflated_example_count_is_refused_and_the_round_goes_on(make_node):
    coord, rogue, task, replies = await _rogue_federation(make_node, inflated)
    assert replies[0]["accepted"] is False and replies[0]["reason"] == "example_count"
    assert task.state == "done" and task.history[0]["accepted"] == 2
    assert task.history[0]["workers"][rogue.identity.id]["status"] == "rejected"


def _cheat(rogue, how: str) -> None:
    """Make ``rogue`` a secure-aggregation participant that tampers with its masked input."""
    worker = rogue.service("learning").worker
    honest_on_round = worker._on_round

    def on_round(peer_id, envelope):
        reply = honest_on_round(peer_id, envelope)
        work = worker._rounds[envelope["body"]["round_id"]]
        honest_masked, params = work.sa.masked_input, work.sa.params

        def masked_input(vec, weight):
            data = np.frombuffer(honest_masked(vec, weight), dtype="<u4").copy()
            if how == "weight":
                extra = np.zeros(data.size, dtype=np.float64)
                extra[-1] = 50.0                                    # 50 times the largest allowed weight
            elif how == "vector":
                extra = np.append(np.asarray(vec, np.float64) * 2000.0, 0.0)   # far beyond the clip
            else:                                                   # within the clip, but harmful
                extra = np.append(np.clip(-100.0 * np.asarray(vec, np.float64), -params.clip, params.clip), 0.0)
            data += np.rint(extra * params.scale).astype(np.int64).astype(np.uint32)
            return data.astype("<u4").tobytes()

        work.sa.masked_input = masked_input
        return reply

    rogue.on_message("ml.round", on_round)


@pytest.mark.parametrize("how", ["weight", "vector", "harmful"])
async def test_a_secure_aggregation_participant_that_inflates_its_input_does_not_move_the_model(make_node, how):
    coord, workers = await federation(make_node, 3)
    introduce(workers)
    _cheat(workers[2], how)
    reasons = _retries(coord)
    started = await coord.service("learning").start_task(rounds=1, min_clients=3, deadline=10.0, seed=9, secure_agg=True,
                                              validate=False)
    task = coord.service("learning").tasks[started["task"]]
    await wait_until(lambda: reasons or task.round >= 1, 60)
    await task.halt()
    assert task.round == 0 and task.history == []
    assert any("sum is refused" in r or "far above" in r for r in reasons), reasons
