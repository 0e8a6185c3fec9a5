"""`covey cluster up --nodes 50 --topology seed`: time to up-and-fully-connected, time to
down, and the cluster's memory (RSS and PSS totals). Prints one JSON document.

Floor, measured in the same run: one node started alone to /health (``one_node_s``); the
ratio ``up_per_node_vs_floor`` is the cluster's up time per node against it (below 1 means
the batched start overlaps nodes). Targets (issue 11): up < 60 s, down < 10 s.

    PYTHONPATH=$PWD python bench/cluster.py [--nodes 50] [--topology seed]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

COVEY = [sys.executable, "-m", "desktop.launcher"]


def run(*args: str, timeout: float = 600) -> dict:
    out = subprocess.run([*COVEY, "cluster", *args, "--json"], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"covey cluster {' '.join(args)} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def memory(pids: list[int]) -> tuple[float, float]:
    rss = pss = 0
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--topology", default="seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="covey-bench-cluster-") as tmp:
        floor_dir = Path(tmp) / "floor"
        t0 = time.monotonic()
        run("up", "--nodes", "1", "--dir", str(floor_dir))
        one = time.monotonic() - t0
        run("down", "--dir", str(floor_dir))
        directory = Path(tmp) / "cluster"
        t0 = time.monotonic()
        up = run("up", "--nodes", str(args.nodes), "--topology", args.topology, "--dir", str(directory))
        up_s = time.monotonic() - t0
        rows = up["nodes"]
        rss, pss = memory([r["pid"] for r in rows])
        t0 = time.monotonic()
        down = run("down", "--dir", str(directory))
        down_s = time.monotonic() - t0
        left = [r["pid"] for r in rows if psutil.pid_exists(r["pid"])
                and psutil.Process(r["pid"]).status() != psutil.STATUS_ZOMBIE]
    roles: dict[str, int] = {}
    for r in rows:
        roles[r["role"]] = roles.get(r["role"], 0) + 1
    print(json.dumps({
        "bench": "cluster", "nodes": args.nodes, "topology": args.topology, "roles": roles,
        "one_node_s": round(one, 2), "up_s": round(up_s, 2), "down_s": round(down_s, 2),
        "up_per_node_vs_floor": round(up_s / args.nodes / one, 3),
        "min_peers": min(r["peers"] for r in rows), "max_peers": max(r["peers"] for r in rows),
        "rss_total_mb": round(rss), "pss_total_mb": round(pss),
        "down_sigkilled": down.get("killed"), "processes_left": len(left),
        "targets": {"up_s": 60, "down_s": 10},
        "load_avg_1m": round(psutil.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
