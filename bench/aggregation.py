"""Aggregation cost against bare torch floors, and the local FL simulation time. Prints JSON.

Each aggregator is timed against the bare tensor operation it cannot avoid,
measured in the same run on the same data (best of REPEATS, one thread):
fedavg vs ``X.mean(0)``, Krum / Multi-Krum vs ``X @ X.T``, median vs
``torch.median(X, dim=0)``, trimmed mean vs ``torch.sort(X, dim=0)``.
Target: every ratio at most 2.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.learning import aggregators as agg  # noqa: E402

N, D, REPEATS, TARGET = 50, 1_000_000, 3, 2.0


def best_of(fn, repeats=REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def aggregation() -> dict:
    rng = np.random.default_rng(0)
    flat = [rng.standard_normal(D, dtype=np.float32) for _ in range(N)]
    counts = rng.integers(50, 500, size=N).tolist()
    X = agg.stack(flat)
    pairs = {
        "fedavg": (lambda: agg.fedavg(X, counts), "mean", lambda: X.mean(dim=0)),
        "krum": (lambda: agg.krum(X, f=10), "gram", lambda: X @ X.T),
        "multikrum": (lambda: agg.multikrum(X, f=10), "gram", lambda: X @ X.T),
        "median": (lambda: agg.median(X), "torch_median", lambda: torch.median(X, dim=0)),
        "trimmed_mean": (lambda: agg.trimmed_mean(X, 0.1), "torch_sort", lambda: torch.sort(X, dim=0)),
    }
    out = {}
    for name, (fn, floor_name, floor) in pairs.items():
        t_floor, t_fn = best_of(floor), best_of(fn)
        out[name] = {"seconds": round(t_fn, 4), "floor": floor_name, "floor_seconds": round(t_floor, 4),
                     "ratio": round(t_fn / t_floor, 2), "meets_target": t_fn / t_floor <= TARGET}
    t_pre = best_of(lambda: agg.stack(flat))
    t_stack = best_of(lambda: torch.stack([torch.from_numpy(u) for u in flat]))
    out["stack_preallocated"] = {"seconds": round(t_pre, 4), "floor": "torch_stack",
                                 "floor_seconds": round(t_stack, 4), "ratio": round(t_pre / t_stack, 2)}
    return out


def local_simulation(rounds=20, clients=10) -> dict:
    """10 IID clients on digits, FedAvg, MLP, one local epoch per round, no network."""
    from core.learning.data import load_dataset, partition
    from core.learning.models import build_model, get_weights
    from core.learning.tensors import flatten, unflatten
    from core.learning.train import TrainConfig, evaluate, train_local

    t0 = time.perf_counter()
    ds = load_dataset("digits", seed=0)
    parts = partition(ds.y_train, clients, "iid", seed=0)
    shape = (ds.n_features, ds.n_classes, ds.image_shape)
    g = get_weights(build_model("mlp", *shape, seed=0))
    spec = {k: (v.shape, "float32") for k, v in g.items()}
    t_train = t_agg = 0.0
    for rnd in range(rounds):
        t1 = time.perf_counter()
        results = [train_local(g, ds.X_train[i], ds.y_train[i],
                               TrainConfig(model="mlp", lr=0.05, batch=8, seed=rnd * 100 + c), *shape)
                   for c, i in enumerate(parts)]
        t2 = time.perf_counter()
        res = agg.aggregate("fedavg", [flatten(r.weights) for r in results],
                            [r.n_examples for r in results])
        g = unflatten(res.vector, spec)
        t_agg += time.perf_counter() - t2
        t_train += t2 - t1
    _, acc = evaluate(g, ds.X_test, ds.y_test, "mlp", *shape)
    return {"rounds": rounds, "clients": clients, "seconds": round(time.perf_counter() - t0, 3),
            "train_seconds": round(t_train, 3), "aggregate_seconds": round(t_agg, 4),
            "final_accuracy": round(acc, 4)}


def main() -> None:
    torch.set_num_threads(1)
    report = {"bench": "aggregation", "n_updates": N, "dim": D, "threads": 1, "target_ratio": TARGET,
              "aggregators": aggregation(), "local_simulation": local_simulation()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
