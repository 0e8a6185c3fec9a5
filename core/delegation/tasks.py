"""The task types an executor runs: argument checks (parent and child) and entry points (child).

``check`` runs in the node before a task is queued and again in the child;
``run`` runs only in the child process. Heavy imports (numpy, scikit-learn,
torch) happen inside ``run``, so an ``echo`` child starts fast.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from core.delegation.args import Args
from core.delegation.errors import UnknownTaskType
from core.delegation.limits import MiB, Limits

MAX_WEIGHTS_BYTES = 8 * MiB
MAX_TEXT = 64 * 1024
_ECHO_KEYS = frozenset({"text"})


@dataclass(frozen=True)
class TaskType:
    """One kind of task: what it needs, how it is checked and run, and its default limits."""
    name: str
    summary: str
    check: Callable[[Any], dict]             # raw args (any value) -> normalized args, raises BadRequest
    run: Callable[[dict, dict], dict]        # (args, context) -> JSON-compatible result
    limits: Limits = field(default_factory=Limits)
    needs_dataset: bool = False
    quality_keys: tuple[str, ...] = ()       # result fields copied into the proof's quality
    # False only for types that compute nothing from their input (echo): they run in the
    # node, skipping a ~40 ms process start, still admitted, rate-limited and proved.
    isolated: bool = True


# -- echo ---------------------------------------------------------------------------
def _check_echo(raw: dict) -> dict:
    if type(raw) is dict and raw.keys() == _ECHO_KEYS:   # the plain case at once (else: the same checks, named)
        text = raw["text"]
        if type(text) is str and len(text) <= MAX_TEXT:
            return {"text": text}
    a = Args("echo", raw)
    out = {"text": a.str("text", MAX_TEXT)}
    a.done()
    return out


def _run_echo(args: dict, ctx: dict) -> dict:
    return {"text": args["text"], "length": len(args["text"])}


# -- bench.probe ---------------------------------------------------------------------
def _check_probe(raw: dict) -> dict:
    a = Args("bench.probe", raw)
    out = {"ms": a.int("ms", 1, 5000, 200), "n": a.int("n", 8, 512, 128)}
    a.done()
    return out


def probe_matrices(n: int):
    """The two seeded n x n float64 matrices bench.probe multiplies."""
    import numpy as np
    rng = np.random.default_rng(n)
    return rng.standard_normal((n, n)), rng.standard_normal((n, n))


def _run_probe(args: dict, ctx: dict) -> dict:
    n, budget = args["n"], args["ms"] / 1000.0
    a, b = probe_matrices(n)
    iterations, start = 0, time.perf_counter()
    while True:
        c = a @ b
        iterations += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            break
    flops = 2 * n ** 3 * iterations
    return {"n": n, "iterations": iterations, "seconds": elapsed, "flops": flops,
            "ops_per_s": flops / elapsed, "checksum": float(c.sum())}


# -- dataset and model tasks (implementations in their own modules) -------------------
def _check_dataset_name(a: Args) -> str:
    return a.str("dataset", 64)


def _check_digest(raw: dict) -> dict:
    a = Args("dataset.digest", raw)
    out = {"dataset": _check_dataset_name(a)}
    a.done()
    return out


def _check_stats(raw: dict) -> dict:
    a = Args("dataset.stats", raw)
    out: dict[str, Any] = {"dataset": _check_dataset_name(a)}
    column = raw.get("column")
    out["column"] = a.str("column", 5) if column == "label" else a.int("column", 0, 1_000_000)
    out["quantiles"] = a.floats("quantiles", 1, 32, 0.0, 1.0, [0.25, 0.5, 0.75])
    out["bins"] = a.int("bins", 1, 256, 10)
    out["noise_sigma"] = a.float("noise_sigma", 0.0, 1e9, 0.0)
    given = a.optional("range") and raw["range"] is not None  # null means "not given"
    out["range"] = a.floats("range", 2, 2, -1e300, 1e300) if given else None
    if out["range"] is not None and not out["range"][0] < out["range"][1]:
        raise a.bad("range", "[low, high] with low < high", out["range"])
    if out["noise_sigma"] > 0 and out["range"] is None:
        raise a.bad("range", "given when noise_sigma > 0 (else the histogram edges "
                              "would reveal the exact minimum and maximum)", None)
    a.done()
    return out


def _check_evaluate(raw: dict) -> dict:
    a = Args("model.evaluate", raw)
    out = {"dataset": _check_dataset_name(a),
           "model": a.str("model", 16, "mlp", choices=("mlp", "cnn")),
           "hidden": a.int("hidden", 1, 4096, 32),
           "weights": a.bytes("weights", MAX_WEIGHTS_BYTES),
           "split": a.str("split", 8, "test", choices=("test", "all"))}
    a.done()
    return out


def _run_digest(args: dict, ctx: dict) -> dict:
    from core.delegation.datasets import digest
    return digest(ctx["dataset_spec"], args)


def _run_stats(args: dict, ctx: dict) -> dict:
    from core.delegation.datasets import stats
    return stats(ctx["dataset_spec"], args)


def _run_evaluate(args: dict, ctx: dict) -> dict:
    from core.delegation.evaluate import evaluate
    return evaluate(ctx["dataset_spec"], args)


TASK_TYPES: dict[str, TaskType] = {t.name: t for t in (
    TaskType("echo", "returns the text it was given", _check_echo, _run_echo,
             Limits(cpu_seconds=5, memory_bytes=256 * MiB, wall_seconds=10), isolated=False),
    TaskType("dataset.digest", "row count, schema hash and Merkle root of a named dataset",
             _check_digest, _run_digest, Limits(cpu_seconds=60, memory_bytes=1024 * MiB,
                                               wall_seconds=90), needs_dataset=True),
    TaskType("dataset.stats", "count, mean, quantiles and histogram of a column (optional noise)",
             _check_stats, _run_stats, Limits(cpu_seconds=60, memory_bytes=1024 * MiB,
                                             wall_seconds=90), needs_dataset=True),
    TaskType("model.evaluate", "loss, accuracy and prediction digest of given weights on local data",
             _check_evaluate, _run_evaluate, Limits(cpu_seconds=60, memory_bytes=3072 * MiB,
                                                   wall_seconds=90),
             needs_dataset=True, quality_keys=("accuracy", "loss")),
    TaskType("bench.probe", "a short measured matrix-multiply job (ops/s)",
             _check_probe, _run_probe, Limits(cpu_seconds=10, memory_bytes=512 * MiB,
                                             wall_seconds=20), quality_keys=("ops_per_s",)),
)}


def task_type(name, types: dict[str, TaskType] | None = None) -> TaskType:
    """The registered type ``name``; UnknownTaskType (listing the known ones) otherwise."""
    types = TASK_TYPES if types is None else types
    found = types.get(name) if isinstance(name, str) else None
    if found is None:
        raise UnknownTaskType(f"unknown task type {name!r:.40}: this executor runs "
                              f"{', '.join(sorted(types))}", task_type=str(name)[:40])
    return found


def describe() -> list[dict]:
    """The task types for `covey tasks types`."""
    return [{"type": t.name, "summary": t.summary, "needs_dataset": t.needs_dataset,
             "isolated": t.isolated, "limits": t.limits.to_dict()} for t in TASK_TYPES.values()]
