"""The 50-node fault drill (issue 11): up, chat, train through faults, rejoin, down. Prints JSON.

1. ``covey cluster up --nodes 50 --topology seed`` (3 bootstrap, 5 aggregators, 40 workers,
   2 clients).
2. A chat message between two arbitrary nodes (``--seed`` picks them), sent and read with the
   ``covey chat`` CLI; if they are not linked, the sender adds the receiver by address and key
   and each trusts the other, as two users would.
3. A training run (digits, MLP, FedAvg) coordinated by node-0 (a bootstrap: every node
   dials it) across the 40 workers through the 5 aggregators.
4. After round 2: 5 workers and 1 aggregator are SIGKILLed at once; the drill waits for two
   more rounds to commit without them (the dead aggregator's workers are dealt to the
   aggregator each also dials), then restarts the killed nodes and waits until each restarted
   worker's update is accepted again, the restarted aggregator combines a group again and a
   round had all 40 workers through all 5 aggregators; then the run is stopped (rounds take a
   fraction of a second here, so the run is driven by these events, ``--rounds`` only bounds
   it; at least 5 rounds are required).
5. ``covey cluster down``; no process of the cluster may be left.

Reported: wall time, cluster up/down time, per-round seconds (the coordinator's), the peak
total PSS of the cluster's processes (sum of ``Pss`` in ``/proc/<pid>/smaps_rollup``; the
issue's bound is 14 GB) and the load average. Every wait has a deadline and prints progress
to stderr; on any failure the drill stops the cluster it started.

    PYTHONPATH=$PWD python bench/fault_drill.py [--dir DIR] [--rounds 200] [--seed 7]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

COVEY = [sys.executable, "-m", "desktop.launcher"]
NODES = 50
PSS_LIMIT_MB = 14 * 1024
KILLED_WORKERS = 5
MIN_ROUNDS = 5
PHASE_TIMEOUT = 180.0   # seconds for any one phase (a loaded 2-core machine)


class DrillFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"drill {time.strftime('%H:%M:%S')}: {text}", file=sys.stderr, flush=True)


def covey(*args: str, home: Path | None = None, timeout: float = 120.0, json_out: bool = True):
    """Run the ``covey`` CLI; its stderr (progress) passes through. Returns its JSON output."""
    command = [*COVEY, *(("--home", str(home)) if home else ()), *args, *(("--json",) if json_out else ())]
    env = dict(os.environ, COVEY_DISCOVERY="0")
    out = subprocess.run(command, stdout=subprocess.PIPE, stderr=None if args[0] == "cluster" else subprocess.PIPE,
                         text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise DrillFailed(f"covey {' '.join(args)} failed ({out.returncode}): {(out.stderr or '')[-1500:]}")
    return json.loads(out.stdout) if json_out else out.stdout


def wait(what: str, check: Callable[[], object], timeout: float = PHASE_TIMEOUT, every: float = 0.5):
    """Poll ``check`` until it returns something truthy; DrillFailed naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DrillFailed(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def pss_mb(pids: list[int]) -> float:
    """Total PSS of ``pids`` and their children (``/proc/<pid>/smaps_rollup``), MiB."""
    import psutil
    seen: set[int] = set()
    for pid in pids:
        try:
            seen |= {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
        except psutil.Error:
            continue
    total_kb = 0
    for pid in seen:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kb / 1024


class Drill:
    def __init__(self, directory: Path, rounds: int = 200, seed: int = 7) -> None:
        self.dir, self.rounds, self.rng = directory, rounds, random.Random(seed)
        self.out: dict = {"bench": "fault_drill", "nodes": NODES, "rounds": rounds, "seed": seed}
        self.peak_pss = 0.0

    # -- helpers over the control API (in-process client: cheaper than a CLI process per poll)
    def call(self, name: str, command: str, params: dict | None = None, timeout: float = 30.0):
        from core.app.client import call
        return call(self.dir / name, command, params or {}, timeout=timeout)

    def status(self) -> dict:
        from core.app import cluster
        return {n["name"]: n for n in cluster.status(self.dir)["nodes"]}

    def measure_pss(self) -> None:
        from core.app import cluster
        pids = [n["pid"] for n in cluster.load_state(self.dir)["nodes"] if n.get("pid")]
        self.peak_pss = max(self.peak_pss, pss_mb(pids))

    # -- the phases
    def run(self) -> dict:
        t0 = time.monotonic()
        self.out["load_before"] = os.getloadavg()[0]
        try:
            self.up()
            self.chat()
            self.train()
        finally:
            t_down = time.monotonic()
            left = self.down()
            self.out["down_s"] = round(time.monotonic() - t_down, 2)
        self.out["processes_left"] = left
        if left:
            raise DrillFailed(f"cluster down left {len(left)} process(es): {left}")
        self.out["wall_s"] = round(time.monotonic() - t0, 1)
        self.out["pss_total_mb"] = round(self.peak_pss)
        self.out["pss_within_14gb"] = self.peak_pss < PSS_LIMIT_MB
        self.out["load_after"] = os.getloadavg()[0]
        return self.out

    def up(self) -> None:
        say(f"cluster up --nodes {NODES} --topology seed in {self.dir}")
        t = time.monotonic()
        rows = covey("cluster", "up", "--nodes", str(NODES), "--topology", "seed", "--dir", str(self.dir),
                     timeout=600)["nodes"]
        self.out["up_s"] = round(time.monotonic() - t, 1)
        self.nodes = {r["name"]: r for r in rows}
        self.by_role: dict[str, list[str]] = {}
        for r in rows:
            self.by_role.setdefault(r["role"], []).append(r["name"])
        self.out["roles"] = {k: len(v) for k, v in self.by_role.items()}
        if self.out["roles"] != {"bootstrap": 3, "aggregator": 5, "worker": 40, "client": 2}:
            raise DrillFailed(f"unexpected roles {self.out['roles']}")
        self.measure_pss()
        say(f"up in {self.out['up_s']} s; PSS {self.peak_pss:.0f} MiB")

    def chat(self) -> None:
        a, b = self.rng.sample(sorted(self.nodes), 2)
        A, B = self.nodes[a], self.nodes[b]
        home_a, home_b = self.dir / a, self.dir / b
        say(f"chat {a} -> {b}")
        t = time.monotonic()
        peers_a = {p["id"]: p for p in covey("peers", "list", home=home_a)}
        if not peers_a.get(B["id"], {}).get("connected"):
            covey("peers", "add", B["address"], "--key", B["id"], "--name", b, home=home_a)
            covey("peers", "trust", B["id"], "core", home=home_a)
            wait(f"{b} sees {a} connected", lambda: any(
                p["id"] == A["id"] and p["connected"] for p in self.call(b, "peers.list")), timeout=60)
            covey("peers", "trust", A["id"], "core", home=home_b)
        text = f"drill ping {self.rng.randrange(10**9)}"
        covey("chat", "send", B["id"], text, home=home_a)
        got = wait(f"{b} reads the message from {a}", lambda: [
            m for m in covey("chat", "read", A["id"], home=home_b) if m["text"] == text], timeout=60, every=1.0)
        self.out["chat"] = {"from": a, "to": b, "delivered": bool(got), "seconds": round(time.monotonic() - t, 2)}
        say(f"chat delivered in {self.out['chat']['seconds']} s")

    def _task(self) -> dict:
        return self.call("node-0", "ml.status", {"task": self.task}, timeout=30)

    def _rounds(self) -> list[dict]:
        return self._task()["history"]

    def _until_round(self, n: int, why: str) -> list[dict]:
        def check():
            st = self._task()
            if st["state"] != "running" and st["round"] < n:
                raise DrillFailed(f"the task ended {st['state']} at round {st['round']}: {st.get('error')}")
            if st["round"] >= n:
                return st["history"]
            if st["round"] != seen[-1]:
                seen.append(st["round"])
                say(f"round {st['round']} committed")
            return None
        seen = [-1]
        say(f"waiting for round {n} ({why})")
        return wait(f"round {n} ({why})", check)

    def train(self) -> None:
        workers, aggs = self.by_role["worker"], self.by_role["aggregator"]
        for w in workers:
            self.call(w, "ml.auto-join", {"mode": "on"})
        agg_ids = ",".join(self.nodes[a]["id"] for a in aggs)
        started = self.call("node-0", "ml.start", {
            "rounds": self.rounds, "clients": len(workers), "min_clients": len(workers) // 2,
            "deadline": 30.0, "epochs": 1, "seed": 3, "aggregators": agg_ids}, timeout=60)
        self.task = started["task"]
        t_train = time.monotonic()
        say(f"task {self.task}: {self.rounds} rounds, {len(workers)} workers through {len(aggs)} aggregators")
        self._until_round(2, "all up")
        self.measure_pss()
        victims = self.rng.sample(workers, KILLED_WORKERS) + [self.rng.choice(aggs)]
        say(f"killing {', '.join(victims)}")
        covey("cluster", "kill", *victims, "--dir", str(self.dir))
        killed_at = self._task()["round"]
        history = self._until_round(killed_at + 2, "training goes on without them")
        after = [h for h in history if h["round"] > killed_at + 1]
        dead_agg, dead_workers = self.nodes[victims[-1]]["id"], {self.nodes[v]["id"] for v in victims[:-1]}
        for h in after:
            if dead_agg in h["groups"] or dead_workers & {w for w, e in h["workers"].items() if e["status"] == "accepted"}:
                raise DrillFailed(f"round {h['round']} still used a killed node")
        moved = len(after[-1]["groups"]) == len(aggs) - 1 and after[-1]["accepted"] >= len(workers) - KILLED_WORKERS
        say(f"rounds {killed_at + 1}..{after[-1]['round']} committed without them "
            f"({after[-1]['accepted']} updates through {len(after[-1]['groups'])} aggregators)")
        if not moved:
            raise DrillFailed(f"the dead aggregator's workers did not move: {after[-1]['accepted']} updates "
                              f"through {len(after[-1]['groups'])} groups")
        restart_from = self._task()["round"]   # rounds up to this one ran without the killed nodes
        say(f"restarting {', '.join(victims)}")
        covey("cluster", "start", *victims, "--dir", str(self.dir), timeout=300)
        restarted_at = self._task()["round"]
        self.measure_pss()

        def rejoined():
            st = self._task()
            later = [h for h in st["history"] if h["round"] > restarted_at]
            back = {w for h in later for w, e in h["workers"].items() if e["status"] == "accepted"} >= dead_workers
            agg_back = any(h["groups"].get(dead_agg, {}).get("status") == "combined" for h in later)
            whole = any(h["accepted"] == len(workers) and len(h["groups"]) == len(aggs) for h in later)
            if back and agg_back and whole:
                return later
            if st["state"] != "running":
                raise DrillFailed(f"the task ended ({st['state']}) before the restarted nodes took part again "
                                  f"(workers back: {back}, aggregator back: {agg_back}, a whole round: {whole})")
            return None
        rejoin_round = wait("the restarted nodes take part again", rejoined)[-1]["round"]
        say(f"restarted nodes took part again by round {rejoin_round}; a round had all {len(workers)} workers "
            f"through all {len(aggs)} aggregators")
        # The run is event-driven: --rounds is only its upper bound, so it is stopped here.
        self.call("node-0", "ml.stop", {"task": self.task})
        final = wait("the task stops", lambda: (st := self._task())["state"] != "running" and st)
        if final["state"] not in ("stopped", "done") or final["round"] < MIN_ROUNDS:
            raise DrillFailed(f"the task ended {final['state']} at round {final['round']}: {final.get('error')}")
        seconds = [h["seconds"] for h in final["history"]]
        self.out.update(
            train_s=round(time.monotonic() - t_train, 1), rounds_committed=final["round"],
            accuracy=final["accuracy"], round_s_median=round(statistics.median(seconds), 3),
            round_s_max=round(max(seconds), 3), round_s=[round(x, 3) for x in seconds],
            killed={"workers": victims[:-1], "aggregator": victims[-1], "after_round": killed_at,
                    "restart_from_round": restart_from, "restarted_after_round": restarted_at,
                    "back_by_round": rejoin_round},
            groups_per_round=[len(h["groups"]) for h in final["history"]],
            accepted_per_round=[h["accepted"] for h in final["history"]])
        say(f"task {final['state']} after {final['round']} rounds, accuracy {final['accuracy']}, "
            f"median round {self.out['round_s_median']} s")

    def down(self) -> list[int]:
        """``cluster down``; the pids of any process still naming the cluster directory."""
        import psutil
        say("cluster down")
        try:
            covey("cluster", "down", "--dir", str(self.dir), timeout=120)
        except DrillFailed as exc:
            say(str(exc))

        def leftovers() -> list[tuple[int, str]]:
            found = []
            for proc in psutil.process_iter(["cmdline", "status"]):
                cmd = proc.info["cmdline"] or []
                if proc.info["status"] != psutil.STATUS_ZOMBIE and any(str(self.dir) in a for a in cmd):
                    found.append((proc.pid, " ".join(cmd)[-160:]))
            return found
        try:   # a process SIGKILLed a moment ago may still be on its way out
            wait("no process of the cluster left", lambda: not leftovers(), timeout=10, every=0.2)
        except DrillFailed:
            say(f"left: {leftovers()}")
        return [pid for pid, _ in leftovers()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", help="cluster directory (default: a temporary one)")
    ap.add_argument("--rounds", type=int, default=200, help="upper bound of the run")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="covey-drill-") as tmp:
        directory = Path(a.dir).resolve() if a.dir else Path(tmp) / "cluster"
        try:
            out = Drill(directory, a.rounds, a.seed).run()
        except DrillFailed as exc:
            print(json.dumps({"bench": "fault_drill", "failed": str(exc)}))
            raise SystemExit(1) from None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
