"""`covey demo`: a small local federation, shown end to end.

Starts four headless nodes (a seed and three workers) under a demo
directory, connects them with pinned keys as CORE peers, and trains the
digits MLP together with FedAvg while printing progress; then stops them.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from core.app import cluster
from core.app.client import call


def run(directory: Path | None = None, nodes: int = 4, rounds: int = 10, out=sys.stdout) -> dict:
    """Run the demo; returns the final training status (accuracy per round in ``history``)."""
    from core.learning.follow import follow_status
    directory = directory or Path(tempfile.mkdtemp(prefix="covey-demo-"))
    say = lambda text: (out.write(text + "\n"), out.flush())  # noqa: E731
    say(f"starting {nodes} nodes in {directory} ...")
    state = cluster.up(directory, nodes, "star", progress=None)  # node-0 coordinates, the rest join it
    try:
        for row in state["nodes"]:
            say(f"  {row['name']:<7} {row['role']:<5} {row['address']}  id {row['id'][:16]}…  {row['rss_mb']} MB")
        seed, workers = state["nodes"][0], state["nodes"][1:]
        homes = {n["name"]: Path(n["home"]) for n in cluster.load_state(directory)["nodes"]}
        for w in workers:
            call(homes[w["name"]], "ml.auto-join", {"mode": "on"})
        peers = call(homes[seed["name"]], "peers.list", {})
        say(f"{seed['name']} sees {sum(p['connected'] for p in peers)} connected CORE peers "
            f"({', '.join(sorted({p['mode'] for p in peers if p['mode']}))} encryption)")
        say(f"training the digits MLP for {rounds} rounds with FedAvg over {len(workers)} workers ...")
        start = call(homes[seed["name"]], "ml.start", {"rounds": rounds, "min_clients": len(workers)})
        final = follow_status(lambda: call(homes[seed["name"]], "ml.status", {"task": start["task"]}),
                              start, out)
        say(f"final test accuracy {final.get('accuracy')} after {final.get('round')} rounds")
        return final
    finally:
        cluster.down(directory)
        say("stopped the demo nodes")
