"""Two-level aggregation math: what a group's aggregator forwards and how the coordinator combines it.

Sum-based rules (FedAvg, FedProx) compose exactly: a group forwards the
weighted SUM of its members' deltas (update minus the global weights) and
its total weight, never an average, and the coordinator divides the sum of
the sums by the sum of the weights, which is the flat weighted mean.
Robust rules run within each group (on the group's updates) and then, over
the groups' results, the rule the rules table names as ``across`` (see
:mod:`core.learning.rules` for what each composition guarantees).

Pure numpy (torch only through :func:`core.learning.aggregators.aggregate`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.errors import BadRequest

from .rules import rule

OUTLIER_FACTOR = 3.0   # robust rules: farther than this times the median distance is an outlier


@dataclass
class Partial:
    """One group's result: ``vector`` is a float64 delta (sum-based: the weighted sum of the
    members' deltas; robust: the group's aggregate delta) and ``weight`` the total weight
    (sum-based) or the number of updates the group aggregated (robust)."""
    vector: np.ndarray
    weight: float


def aggregate_flats(name: str, flats: Sequence[np.ndarray], counts: Sequence[int], f: int,
                    reference: np.ndarray) -> tuple[np.ndarray, set[int], set[int]]:
    """Run rule ``name`` over flat updates: (aggregate, indices it kept, indices that are outliers).

    An outlier (robust rules, 3 updates or more) lies farther from the aggregate than
    OUTLIER_FACTOR times the median distance.
    """
    from .aggregators import aggregate
    result = aggregate(name, flats, counts, f, reference=reference)
    outliers: set[int] = set()
    if rule(name).robust and len(flats) >= 3:
        dist = np.array([float(np.linalg.norm(x - result.vector)) for x in flats])
        cut = OUTLIER_FACTOR * float(np.median(dist))
        outliers = {i for i in range(len(flats)) if dist[i] > cut > 0}
    return result.vector, set(result.kept), outliers


def group_partial(name: str, flats: Sequence[np.ndarray], counts: Sequence[int], f: int,
                  reference: np.ndarray) -> tuple[Partial, set[int], set[int]]:
    """What a group forwards for its accepted updates ``flats`` (absolute weights), with kept/outliers."""
    if not flats:
        raise BadRequest("a group with no accepted update has nothing to forward")
    ref = np.asarray(reference, dtype=np.float32)
    if rule(name).composes_exactly:
        total = np.zeros(ref.size, dtype=np.float64)
        for x, c in zip(flats, counts, strict=True):
            total += float(c) * (np.asarray(x, dtype=np.float32) - ref).astype(np.float64)
        weight = float(sum(counts))
        if weight <= 0:
            raise BadRequest("example counts must not all be zero")
        return Partial(total, weight), {i for i, c in enumerate(counts) if c > 0}, set()
    vector, kept, outliers = aggregate_flats(name, flats, counts, f, ref)
    delta = (np.asarray(vector, dtype=np.float32) - ref).astype(np.float64)
    return Partial(delta, float(len(flats))), kept, outliers


def across_f(groups: int) -> int:
    """How many groups' results the trimmed mean across groups trims per side."""
    return max(1, groups // 5) if groups >= 3 else 0


def combine(name: str, partials: Sequence[Partial]) -> np.ndarray:
    """The combined delta (float64) of the groups' partials under rule ``name``."""
    if not partials:
        raise BadRequest("no group forwarded a result")
    r = rule(name)
    if r.composes_exactly:
        weight = sum(p.weight for p in partials)
        if not weight > 0:
            raise BadRequest("the groups' total weight is not positive")
        total = np.zeros_like(partials[0].vector, dtype=np.float64)
        for p in partials:
            total += p.vector
        return total / weight
    if len(partials) == 1:
        return np.asarray(partials[0].vector, dtype=np.float64)
    from .aggregators import aggregate
    result = aggregate(r.across, [np.asarray(p.vector, dtype=np.float32) for p in partials],
                       f=across_f(len(partials)))
    return result.vector.astype(np.float64)


def assign_groups(workers: Sequence[str], aggregators: Sequence[str],
                  reach: dict[str, set[str]] | None = None,
                  previous: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Deal ``workers`` (in their slot order) to ``aggregators``; groups left empty are omitted.

    Without ``reach``: round-robin. With ``reach`` (aggregator -> the workers it can take
    updates from): a worker stays with its ``previous`` aggregator if that one reaches it and
    holds less than a fair share (groups stay stable, a worker an aggregator banned does not
    start afresh in another group, and an aggregator that comes back gets workers again), else
    goes to the least loaded one that reaches it (ties: the first in ``aggregators``); a worker
    no aggregator reaches is left out.
    """
    if not aggregators:
        return {}
    previous = previous or {}
    fair = -(-len(workers) // len(aggregators))
    groups: dict[str, list[str]] = {a: [] for a in aggregators}
    for i, w in enumerate(workers):
        if reach is None:
            groups[aggregators[i % len(aggregators)]].append(w)
            continue
        candidates = [a for a in aggregators if w in reach.get(a, ())]
        if previous.get(w) in candidates and len(groups[previous[w]]) < fair:
            groups[previous[w]].append(w)
        elif candidates:
            groups[min(candidates, key=lambda a: len(groups[a]))].append(w)
    return {a: g for a, g in groups.items() if g}
