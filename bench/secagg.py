"""Cost of one secure-aggregation round with 10 workers, against a plain sum of the same updates.

Prints JSON. For each vector size (the digits MLP 64-32-10, 2,410 params, and
1M params) it times every step of the protocol in one process (all parties
run serially, so ``total_ms`` is the CPU time the whole round costs) and the
floors measured in the same run: a plain float32 sum of the 10 updates and
raw AES-256-CTR keystream (the PRG every mask comes from). A second
scenario has one worker drop after sharing its keys, which makes the
coordinator recompute that worker's pairwise masks.

    .venv/bin/python bench/secagg.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.learning.secagg import (SecAggCoordinator, SecAggParams, SecAggWorker,  # noqa: E402
                                  default_threshold, expand_mask)

WORKERS = 10
SIZES = {"digits_mlp": 64 * 32 + 32 + 32 * 10 + 10, "1M": 1_000_000}


def one_round(dim: int, inputs: list[np.ndarray], drop_after_sharing: int = 0) -> dict[str, float]:
    """Run a full round; returns milliseconds per step (summed over all parties)."""
    ids = [f"w{i:02d}" for i in range(WORKERS)]
    params = SecAggParams(round_id=secrets.token_bytes(16), threshold=default_threshold(WORKERS), dim=dim)
    times: dict[str, float] = {}

    def timed(step, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        times[step] = times.get(step, 0.0) + (time.perf_counter() - start) * 1e3
        return out

    workers = {i: SecAggWorker(i, params) for i in ids}
    coordinator = SecAggCoordinator(params, ids)
    for i in ids:
        coordinator.add_advertisement(i, timed("advertise", workers[i].advertise))
    roster = coordinator.roster()
    for i in ids:
        coordinator.add_shares(i, timed("share_keys", workers[i].share_keys, roster))
    relay = coordinator.relay()
    for i in ids:
        timed("receive_shares", workers[i].receive_shares, relay[i])
    maskers = ids[drop_after_sharing:]
    for i, vec in zip(maskers, inputs, strict=False):   # dropped workers send no input
        data = timed("masked_input", workers[i].masked_input, vec)
        timed("coordinator_collect", coordinator.add_masked_input, i, data)
    request = coordinator.unmask_request()
    for i in request["survivors"]:
        response = timed("unmask", workers[i].unmask, request["survivors"], request["dropped"])
        coordinator.add_unmask_response(i, response)
    timed("coordinator_result", coordinator.result)
    times["masked_input_per_worker"] = times["masked_input"] / len(maskers)
    times["total"] = sum(v for k, v in times.items() if k != "masked_input_per_worker")
    return times


def plain_sum_ms(inputs: list[np.ndarray]) -> float:
    start = time.perf_counter()
    total = np.zeros_like(inputs[0])
    for vec in inputs:
        total += vec
    return (time.perf_counter() - start) * 1e3


def prg_ms(dim: int) -> float:
    start = time.perf_counter()
    expand_mask(secrets.token_bytes(32), dim + 1)
    return (time.perf_counter() - start) * 1e3


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    report = {"workers": WORKERS, "threshold": default_threshold(WORKERS), "repeat": args.repeat, "sizes": {}}
    for name, dim in SIZES.items():
        inputs = [rng.normal(0, 0.1, dim).astype(np.float32) for _ in range(WORKERS)]
        full = median_of([one_round(dim, inputs) for _ in range(args.repeat)])
        dropout = median_of([one_round(dim, inputs[1:], drop_after_sharing=1) for _ in range(args.repeat)])
        plain = statistics.median(plain_sum_ms(inputs) for _ in range(max(args.repeat, 5)))
        prg = statistics.median(prg_ms(dim) for _ in range(max(args.repeat, 5)))
        report["sizes"][name] = {
            "params": dim,
            "plain_sum_ms": round(plain, 3),
            "aes_ctr_prg_ms_per_mask": round(prg, 3),
            "secagg_ms": full,
            "secagg_one_dropout_ms": dropout,
            "ratio_total_vs_plain_sum": round(full["total"] / plain, 1),
            "ratio_worker_masking_vs_plain_sum": round(full["masked_input_per_worker"] / plain, 1),
            "ratio_total_vs_prg_floor": round(full["total"] / prg, 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
