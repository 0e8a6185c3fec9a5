"""The seed topology's links that two-level training relies on."""
from __future__ import annotations

import pytest

from core.app import cluster_plan


@pytest.mark.parametrize("nodes", [10, 20, 50])
def test_every_worker_also_dials_a_second_aggregator_to_move_to(nodes):
    planned = cluster_plan.plan(nodes, "seed")
    aggs = [n.name for n in planned if n.role == "aggregator"]
    for worker in (n for n in planned if n.role == "worker"):
        dialled = [a for a in worker.dials if a in aggs]
        assert dialled[0] == aggs[worker.group]
        assert len(set(dialled)) == min(2, len(aggs)), worker.name
