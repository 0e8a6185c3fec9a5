"""Every task type through the executor (real child processes), each result checked against an
independent computation and its signed proof verified; floods, busy answers, failure proofs."""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json

import numpy as np
import pytest

from core.delegation.encoding import decode_result
from core.delegation.errors import ExecutorBusy, MemoryLimitExceeded
from core.delegation.executor import Executor
from core.delegation.proofs import raise_for_exit, verify_proof
from core.delegation.request import build_request, open_request
from core.delegation.tasks import TASK_TYPES
from core.errors import BadRequest, RateLimited
from core.identity import Identity
from core.signed import Verifier
from tests.integration.delegation import hostile_child
from tests.unit.delegation.test_deleg_parts import rfc6962  # the independent Merkle tree


@pytest.fixture(scope="module")
def people():
    return Identity.generate("requester"), Identity.generate("executor")


def digits_rows():
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


async def delegate(executor: Executor, requester: Identity, kind: str, args: dict) -> tuple[dict, dict]:
    """Requester builds, executor opens and runs, requester verifies: (result, statement)."""
    sent = build_request(requester, kind, args, timeout=120)
    request = open_request(Verifier(), sent.envelope)
    served = await executor.execute(request)
    statement = verify_proof(json.loads(json.dumps(served.proof)), executor=executor.identity.id,
                             request_digest=sent.digest, result_bytes=served.result_bytes)
    raise_for_exit(statement)
    pred = statement["predicate"]
    assert pred["task"] == sent.task and pred["requester"] == requester.id and pred["type"] == kind
    assert pred["cost"]["wall_seconds"] > 0
    if TASK_TYPES[kind].isolated:  # measured in its child
        assert pred["cost"]["cpu_seconds"] > 0 and pred["cost"]["peak_rss_mb"] > 1
    assert pred["received"] <= pred["started"] <= pred["ended"]
    return decode_result(served.result_bytes), statement


async def test_echo(people):
    result, st = await delegate(Executor(people[1]), people[0], "echo", {"text": "bonjour ✓"})
    assert result == {"text": "bonjour ✓", "length": 9}
    assert st["predicate"]["exit"] == {"status": "ok", "code": None, "message": ""}  # ran inline


async def test_echo_isolated_when_its_type_says_so(people):
    types = {"echo": dataclasses.replace(TASK_TYPES["echo"], isolated=True)}
    sent = build_request(people[0], "echo", {"text": "in a child"}, types=types)
    served = await Executor(people[1], types=types).execute(
        open_request(Verifier(), sent.envelope, types=types))
    assert served.statement["predicate"]["exit"]["code"] == 0   # a child's exit status
    assert served.statement["predicate"]["cost"]["peak_rss_mb"] > 1
    assert decode_result(served.result_bytes)["text"] == "in a child"


async def test_dataset_digest_builtin(people):
    result, _ = await delegate(Executor(people[1], {"hand": "digits"}), people[0], "dataset.digest",
                               {"dataset": "hand"})
    X, y = digits_rows()
    rows = [X[i].astype("<f4").tobytes() + y[i].astype("<i8").tobytes() for i in range(len(X))]
    schema = {"classes": 10, "feature_dtype": "float32", "features": 64, "label_dtype": "int64"}
    assert result["rows"] == 1797
    assert result["schema"] == schema
    assert result["schema_hash"] == hashlib.sha256(
        json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert result["merkle_root"] == rfc6962(rows).hex()


async def test_dataset_digest_of_a_csv_named_in_the_config(people, tmp_path):
    rng = np.random.default_rng(3)
    table = np.column_stack([rng.normal(size=(25, 3)).round(3), rng.integers(0, 2, 25)])
    path = tmp_path / "local.csv"
    np.savetxt(path, table, delimiter=",", header="a,b,c,label", comments="", fmt="%.3f")
    result, _ = await delegate(Executor(people[1], {"local": str(path)}), people[0],
                               "dataset.digest", {"dataset": "local"})
    X, y = table[:, :3].astype(np.float32), table[:, 3].astype(np.int64)
    assert result["rows"] == 25
    assert result["merkle_root"] == rfc6962([X[i].astype("<f4").tobytes() + y[i].astype("<i8").tobytes()
                                             for i in range(25)]).hex()


async def test_dataset_stats_exact(people):
    args = {"dataset": "d", "column": 42, "quantiles": [0.1, 0.5, 0.9], "bins": 8}
    result, _ = await delegate(Executor(people[1], {"d": "digits"}), people[0], "dataset.stats", args)
    v = digits_rows()[0][:, 42].astype(np.float64)
    counts, edges = np.histogram(v, bins=8, range=(v.min(), v.max()))
    assert result["count"] == 1797
    assert result["mean"] == pytest.approx(v.mean(), rel=1e-12)
    assert result["std"] == pytest.approx(v.std(), rel=1e-12)
    assert result["quantiles"] == pytest.approx(list(np.quantile(v, [0.1, 0.5, 0.9])), rel=1e-12)
    assert result["histogram"] == counts.tolist()
    assert result["edges"] == pytest.approx(edges.tolist())
    assert result["noise_sigma"] == 0.0


async def test_dataset_stats_label_column_with_noise(people):
    args = {"dataset": "d", "column": "label", "bins": 10, "range": [0, 10], "noise_sigma": 0.5}
    result, _ = await delegate(Executor(people[1], {"d": "digits"}), people[0], "dataset.stats", args)
    y = digits_rows()[1].astype(np.float64)
    exact = [len(y), y.mean(), y.std(), *np.quantile(y, [0.25, 0.5, 0.75]),
             *np.histogram(y, bins=10, range=(0, 10))[0]]
    noisy = [result["count"], result["mean"], result["std"], *result["quantiles"], *result["histogram"]]
    diffs = np.abs(np.array(noisy) - np.array(exact, dtype=np.float64))
    assert np.all(diffs < 0.5 * 10)   # within 10 sigma: fails with probability ~1e-22
    assert np.count_nonzero(diffs) == len(diffs)  # every released number got noise
    assert result["noise_sigma"] == 0.5 and result["edges"][0] == 0 and result["edges"][-1] == 10


async def test_model_evaluate_matches_a_numpy_forward_pass(people):
    from core.learning import data, tensors
    from core.learning.models import build_model, get_weights
    weights = get_weights(build_model("mlp", 64, 10, (8, 8), seed=7, hidden=16))
    blob = tensors.encode(weights)
    args = {"dataset": "d", "model": "mlp", "hidden": 16, "weights": blob}
    result, st = await delegate(Executor(people[1], {"d": "digits"}), people[0], "model.evaluate", args)
    ds = data.load_dataset("digits", seed=0)
    X, y = ds.X_test.astype(np.float64), ds.y_test
    w1, b1, w2, b2 = (weights[k].astype(np.float64) for k in ("1.weight", "1.bias", "3.weight", "3.bias"))
    logits = np.maximum(X @ w1.T + b1, 0) @ w2.T + b2
    top = logits.max(1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
    preds = logits.argmax(1)
    assert result["rows"] == len(y) == 360
    assert result["loss"] == pytest.approx(-logp[np.arange(len(y)), y].mean(), rel=1e-4)
    assert result["accuracy"] == pytest.approx((preds == y).mean(), abs=1e-6)
    assert result["predictions_sha256"] == hashlib.sha256(preds.astype("<i8").tobytes()).hexdigest()
    assert st["predicate"]["quality"] == {"accuracy": result["accuracy"], "loss": result["loss"]}


async def test_model_evaluate_refuses_weights_of_another_shape(people):
    from core.learning import tensors
    blob = tensors.encode({"w": np.zeros((2, 2), np.float32)})
    sent = build_request(people[0], "model.evaluate", {"dataset": "d", "weights": blob})
    served = await Executor(people[1], {"d": "digits"}).execute(open_request(Verifier(), sent.envelope))
    st = verify_proof(served.proof, executor=people[1].id, request_digest=sent.digest,
                      result_bytes=served.result_bytes)
    assert st["predicate"]["exit"]["status"] == "bad_request"
    with pytest.raises(BadRequest, match="do not fit"):
        raise_for_exit(st)


async def test_bench_probe(people):
    result, st = await delegate(Executor(people[1]), people[0], "bench.probe", {"ms": 30, "n": 32})
    rng = np.random.default_rng(32)
    a, b = rng.standard_normal((32, 32)), rng.standard_normal((32, 32))
    assert result["checksum"] == pytest.approx(float((a @ b).sum()), rel=1e-9)
    assert result["iterations"] >= 1 and result["seconds"] >= 0.030
    assert result["flops"] == 2 * 32 ** 3 * result["iterations"]
    assert result["ops_per_s"] == pytest.approx(result["flops"] / result["seconds"])
    assert st["predicate"]["quality"] == {"ops_per_s": result["ops_per_s"]}


async def test_a_dataset_not_in_the_config_is_refused_before_running(people):
    sent = build_request(people[0], "dataset.digest", {"dataset": "/etc/passwd"})
    executor = Executor(people[1], {"d": "digits"})
    with pytest.raises(BadRequest, match="unknown dataset '/etc/passwd': this executor offers d"):
        await executor.execute(open_request(Verifier(), sent.envelope))
    assert executor.counters["refused_bad_request"] == 1 and executor.queued == 0


async def test_memory_limit_gives_a_signed_failure_proof(people):
    executor = Executor(people[1], types=hostile_child.TYPES, child_module=hostile_child.__name__)
    sent = build_request(people[0], "test.alloc", {"mb": 2048}, types=hostile_child.TYPES)
    request = open_request(Verifier(), sent.envelope, types=hostile_child.TYPES)
    served = await executor.execute(request)
    st = verify_proof(served.proof, executor=people[1].id, request_digest=sent.digest,
                      result_bytes=served.result_bytes)
    assert st["predicate"]["exit"]["status"] == "memory_limit"
    assert decode_result(served.result_bytes)["error"]["code"] == "memory_limit"
    with pytest.raises(MemoryLimitExceeded, match="512 MiB"):
        raise_for_exit(st)


PROBE = {"ms": 1, "n": 8}  # an isolated task: it holds its slot while its child runs


class FrozenClock:
    def __call__(self):
        return 5000.0


async def test_a_flood_from_one_peer_is_refused_while_another_peer_is_served(people):
    flooder, executor_id = people
    other = Identity.generate("other")
    executor = Executor(executor_id, burst=3, per_second=0.01, per_peer=2, max_queued=4,
                        clock=FrozenClock())
    flood = [open_request(Verifier(), build_request(flooder, "bench.probe", PROBE).envelope)
             for i in range(10)]
    polite = open_request(Verifier(), build_request(other, "bench.probe", PROBE).envelope)
    outcomes = await asyncio.gather(*(executor.execute(r) for r in flood + [polite]),
                                    return_exceptions=True)
    mine, theirs = outcomes[:10], outcomes[10]
    assert [type(o).__name__ for o in mine] == \
        ["Served", "Served", "ExecutorBusy"] + ["RateLimited"] * 7
    assert "already has 2 task(s)" in str(mine[2])
    assert "try again in" in str(mine[3]) and mine[3].details["retry_after"] > 0
    assert decode_result(theirs.result_bytes)["n"] == 8
    assert executor.counters["served"] == 3
    assert executor.counters["refused_rate_limited"] == 7
    assert executor.counters["refused_executor_busy"] == 1
    assert executor.queued == 0 and executor.running == 0
    # Once the flood has drained, the same peer is served again (after its bucket refills).
    executor.rate.clock = lambda: 5000.0 + 100
    again = open_request(Verifier(), build_request(flooder, "bench.probe", PROBE).envelope)
    assert decode_result((await executor.execute(again)).result_bytes)["n"] == 8


async def test_a_full_queue_answers_executor_busy(people):
    requester_a, executor_id = people
    executor = Executor(executor_id, max_running=1, max_queued=1, per_peer=5, burst=10)
    peers = [requester_a, Identity.generate("b"), Identity.generate("c")]
    requests = [open_request(Verifier(), build_request(p, "bench.probe", PROBE).envelope)
                for p in peers]
    outcomes = await asyncio.gather(*(executor.execute(r) for r in requests), return_exceptions=True)
    assert isinstance(outcomes[2], ExecutorBusy)
    assert "executor busy: 1 task(s) running and 1 queued (limit 1)" in str(outcomes[2])
    assert [decode_result(o.result_bytes)["n"] for o in outcomes[:2]] == [8, 8]
    assert not isinstance(outcomes[0], RateLimited)


async def test_an_inline_echo_is_served_while_a_child_holds_the_slot(people):
    """An inline type (echo) never waits for the slot a child process holds: it cannot overlap
    anything (it holds the loop), and is still admitted (rate, per-peer share), counted and proved."""
    requester, executor_id = people
    executor = Executor(executor_id, max_running=1, per_peer=2, burst=10)
    probe = asyncio.ensure_future(executor.execute(
        open_request(Verifier(), build_request(requester, "bench.probe", {"ms": 300, "n": 8}).envelope)))
    while executor.running == 0:
        await asyncio.sleep(0.01)
    sent = build_request(requester, "echo", {"text": "now"})
    served = await executor.execute(open_request(Verifier(), sent.envelope))
    assert not probe.done() and executor.running == 1   # the child still runs
    verify_proof(served.proof, executor=executor_id.id, request_digest=sent.digest,
                 result_bytes=served.result_bytes)
    assert decode_result(served.result_bytes) == {"text": "now", "length": 3}
    # an isolated type is not run now (nothing is done: execute() queues it)
    assert executor.execute_now(open_request(Verifier(), build_request(requester, "bench.probe", PROBE).envelope)) is None
    await probe
    assert executor.counters["served"] == 2 and executor.running == 0 and executor.queued == 0
