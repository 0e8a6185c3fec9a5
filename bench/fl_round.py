"""Round time of federated learning over loopback vs the floor, printed as JSON.

Setup: digits, MLP, FedAvg, no privacy options. One headless coordinator
process and N worker processes (``covey --headless``, real sockets), the
task started with ``covey ml start``; the round time is the coordinator's
``seconds`` per round (rounds 2.. so process warm-up is excluded), median.

Floor: the same training in one process with no network: a plain loop that
trains the N local models (one after another, torch on one thread) and
averages them, timed per round.

Also reported: the same networked run with ``--secure-agg`` (its overhead
per round against the plain one).

Two levels (``--aggregators K``): K more node processes aggregate the
workers' groups (every worker connects to every aggregator; the task is
started with ``--aggregators``); reported as ``two_level_round_s`` and its
ratio against the same floor.

Usage: python bench/fl_round.py [--workers 10] [--rounds 8] [--aggregators K]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_nodes import stop_processes  # bench/ is the script directory

REPO = Path(__file__).resolve().parents[1]


def progress(text: str) -> None:
    print(f"fl_round {time.strftime('%H:%M:%S')}: {text}", file=sys.stderr, flush=True)


def covey(home: Path, command: str, **params):
    """One command on the node of ``home`` through its control API (in-process client: a CLI
    process per call made the set-up of 50 nodes take minutes)."""
    from core.app.client import call
    return call(home, command, params, timeout=60.0)


def spawn_node(home: Path, env: dict) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "core.app.cli", "--home", str(home), "--headless",
                             "--listen", "127.0.0.1:0", "--log-level", "warning"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_node(home: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (home / "control.json").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"node in {home} did not start")
        time.sleep(0.1)


def networked(workers: int, rounds: int, secure: bool, validate: bool = True, aggregators: int = 0):
    env = {**os.environ, "COVEY_DISCOVERY": "0", "COVEY_ML_AUTO_JOIN": "1", "PYTHONPATH": str(REPO)}
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            coord_home = Path(tmp) / "coord"
            agg_homes = [Path(tmp) / f"a{i}" for i in range(aggregators)]
            homes = [Path(tmp) / f"w{i}" for i in range(workers)]
            from core.app.cluster import _node_config
            for home in [coord_home, *agg_homes, *homes]:   # all at once; each is waited for below
                home.mkdir(parents=True)
                _node_config(home, workers + aggregators + 1)   # loopback: every peer comes from 127.0.0.1
                procs.append(spawn_node(home, env))
            for home, proc in zip([coord_home, *agg_homes, *homes], procs, strict=True):
                wait_node(home, proc)
            progress(f"{len(procs)} nodes up")
            coord = covey(coord_home, "id")
            port = coord["listen"][0].rsplit(":", 1)[1]

            def join(home: Path, *others: str) -> dict:
                """The node of ``home`` adds the coordinator (trusted CORE) and the ``others`` (addresses)."""
                covey(home, "peers.add", address=f"127.0.0.1:{port}")
                covey(home, "peers.trust", peer=coord["id"], tier="core")
                for address in others:
                    covey(home, "peers.add", address=address)
                return covey(home, "id")
            aggs = []
            for home in agg_homes:
                ident = join(home)
                aggs.append((home, ident["id"], ident["listen"][0]))
            worker_ids, worker_addresses = [], []
            for home in homes:
                ident = join(home, *(address for _, _, address in aggs))
                worker_ids.append(ident["id"])
                worker_addresses.append(ident["listen"][0])
            if secure:   # a worker shares its secure-aggregation keys only with workers its user vouches for
                for home, me in zip(homes, worker_ids, strict=True):
                    for other, address in zip(worker_ids, worker_addresses, strict=True):
                        if other != me:
                            covey(home, "peers.add", address=address, key=other)
                            covey(home, "peers.trust", peer=other, tier="sandbox")
            for agg_home, _, _ in aggs:
                for wid in worker_ids:
                    covey(agg_home, "peers.trust", peer=wid, tier="core")
            deadline = time.monotonic() + 60
            while sum(p["connected"] for p in covey(coord_home, "peers.list")) < workers + aggregators:
                if time.monotonic() > deadline:
                    raise RuntimeError("workers did not connect")
                time.sleep(0.2)
            for p in covey(coord_home, "peers.list"):
                covey(coord_home, "peers.trust", peer=p["id"], tier="core")
            options: dict = {"rounds": rounds, "min_clients": workers, "seed": 0}
            if secure:
                options["secure_agg"] = True
            elif not validate:
                options["validate"] = "off"
            if aggs:
                options["aggregators"] = ",".join(agg_id for _, agg_id, _ in aggs)
            task = covey(coord_home, "ml.start", **options)["task"]
            progress(f"task {task} started")
            deadline = time.monotonic() + 600
            while (status := covey(coord_home, "ml.status", task=task))["state"] == "running":
                if time.monotonic() > deadline:
                    raise RuntimeError("task did not finish")
                time.sleep(0.5)
            if status["state"] != "done":
                raise RuntimeError(f"task ended {status['state']}: {status.get('error')}")
            return [h["seconds"] for h in status["history"]], status["accuracy"]
        finally:
            stop_processes(procs)


def floor(workers: int, rounds: int) -> tuple[list[float], float]:
    """Same training (same data split and config), one process, no network."""
    import numpy as np
    from core.learning.aggregators import aggregate
    from core.learning.data import load_dataset, partition
    from core.learning.models import build_model, get_weights
    from core.learning.protocol import TaskSpec
    from core.learning.tensors import flatten, unflatten
    from core.learning.train import TrainConfig, evaluate, train_local
    spec = TaskSpec(seed=0)
    ds = load_dataset(spec.dataset, seed=spec.seed)
    parts = partition(ds.y_train, workers, spec.partition, seed=spec.seed)
    w = get_weights(build_model("mlp", ds.n_features, ds.n_classes, ds.image_shape, seed=0))
    wspec = {k: (v.shape, "float32") for k, v in w.items()}
    times = []
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        ups, counts = [], []
        for i, idx in enumerate(parts):
            cfg = TrainConfig("mlp", epochs=spec.epochs, lr=spec.lr, batch=spec.batch, seed=r * 1009 + i)
            res = train_local(w, ds.X_train[idx], ds.y_train[idx], cfg, ds.n_features, ds.n_classes,
                              ds.image_shape)
            ups.append(flatten(res.weights))
            counts.append(res.n_examples)
        w = unflatten(aggregate("fedavg", ups, counts).vector, wspec)
        times.append(time.perf_counter() - t0)
    _, acc = evaluate(w, ds.X_test, ds.y_test, "mlp", ds.n_features, ds.n_classes, ds.image_shape)
    return times, float(np.round(acc, 4))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--no-secagg", action="store_true")
    ap.add_argument("--aggregators", type=int, default=0, help="also run two levels through K aggregators")
    ap.add_argument("--validate", choices=("on", "off"), default="on",
                    help="per-update validation on the coordinator (the floor has none)")
    ap.add_argument("--two-level-only", action="store_true", help="with --aggregators: skip the one-level run")
    a = ap.parse_args()
    floor_times, floor_acc = floor(a.workers, a.rounds)
    out = {"workers": a.workers, "rounds": a.rounds, "validate": a.validate,
           "floor_round_s": round(statistics.median(floor_times[1:]), 4), "floor_accuracy": floor_acc,
           "floor_round_min_s": round(min(floor_times[1:]), 4), "load_avg_1m": round(os.getloadavg()[0], 2)}
    if not (a.two_level_only and a.aggregators):
        net_times, net_acc = networked(a.workers, a.rounds, secure=False, validate=a.validate == "on")
        out.update(network_round_s=round(statistics.median(net_times[1:]), 4), network_accuracy=net_acc,
                   network_round_min_s=round(min(net_times[1:]), 4))
        out["ratio"] = round(out["network_round_s"] / out["floor_round_s"], 3)
        # the fastest round of each: less at the mercy of other processes on a shared machine
        out["ratio_min"] = round(out["network_round_min_s"] / out["floor_round_min_s"], 3)
    if a.aggregators:
        two_times, two_acc = networked(a.workers, a.rounds, secure=False, validate=a.validate == "on",
                                       aggregators=a.aggregators)
        out["aggregators"] = a.aggregators
        out["two_level_round_s"] = round(statistics.median(two_times[1:]), 4)
        out["two_level_accuracy"] = two_acc
        out["two_level_ratio"] = round(out["two_level_round_s"] / out["floor_round_s"], 3)
        out["two_level_ratio_min"] = round(min(two_times[1:]) / out["floor_round_min_s"], 3)
    if not a.no_secagg and "network_round_s" in out:
        sa_times, sa_acc = networked(a.workers, a.rounds, secure=True)
        out["secagg_round_s"] = round(statistics.median(sa_times[1:]), 4)
        out["secagg_accuracy"] = sa_acc
        out["secagg_overhead_ratio"] = round(out["secagg_round_s"] / out["network_round_s"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
