"""The 50-node fault drill of issue 11 (bench/fault_drill.py): up, chat, training through killed
and restarted workers and an aggregator, down with no process left."""
from __future__ import annotations

import json

import pytest

from bench.fault_drill import KILLED_WORKERS, MIN_ROUNDS, PSS_LIMIT_MB, Drill


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fifty_node_fault_drill(tmp_path):
    out = Drill(tmp_path / "drill").run()
    print(json.dumps(out))   # the drill's numbers in the CI log (pytest -s / -rP)
    assert out["roles"] == {"bootstrap": 3, "aggregator": 5, "worker": 40, "client": 2}
    assert out["chat"]["delivered"]
    assert out["rounds_committed"] >= MIN_ROUNDS
    killed = out["killed"]
    assert len(killed["workers"]) == KILLED_WORKERS
    history = list(zip(out["groups_per_round"], out["accepted_per_round"], strict=True))
    # rounds went on while they were down: the dead aggregator's workers moved to the other four
    # (history[i] is round i + 1; the round open at the kill may have lost the aggregator's group)
    down_rounds = history[killed["after_round"] + 1:killed["restart_from_round"]]
    assert down_rounds and all(g == 4 and a == 40 - KILLED_WORKERS for g, a in down_rounds)
    # ... and a round after the restart had every worker through every aggregator again
    assert (5, 40) in history[killed["restarted_after_round"]:]
    assert out["processes_left"] == []
    assert out["pss_total_mb"] < PSS_LIMIT_MB
