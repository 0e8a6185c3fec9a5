"""Aggregation rules: small pure functions over a stacked ``[N, D]`` float32 tensor.

Each rule returns the aggregate ``[D]`` (and, for the row-selecting rules,
the indices of the rows it kept). A small strategy per rule says how its
function is called (:data:`STRATEGIES`); :func:`aggregate`, which the
coordinator calls with flat numpy updates, looks the rule up in
:mod:`core.learning.rules` and runs its strategy.

Definitions used here (they differ between papers, so they are pinned down):
* median: coordinate-wise; for even N the mean of the two middle values
  (``torch.median`` alone returns the lower one).
* trimmed mean: per coordinate drop the ``floor(beta*N)`` largest and as many
  smallest values, average the rest.
* Krum (Blanchard et al. 2017): score_i = sum of squared distances to its
  ``N-f-2`` nearest other updates; keep the lowest score. Needs ``N >= 2f+3``.
* Multi-Krum: the ``m`` lowest Krum scores (computed once), averaged
  unweighted; ``m`` defaults to ``N-f``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from core.errors import BadRequest

from .rules import AGGREGATORS as AGGREGATORS  # re-exported for callers that list the rules
from .rules import rule

if TYPE_CHECKING:  # torch loads on first use, so this module stays cheap to import
    from torch import Tensor

log = logging.getLogger(__name__)

# Columns per block for the order statistics: a [N, 4096] block stays in cache.
_BLOCK = 4096


def _check(updates: Tensor) -> tuple[int, int]:
    if updates.ndim != 2 or updates.shape[0] == 0:
        raise BadRequest(f"aggregation needs a non-empty [N, D] tensor (got shape {tuple(updates.shape)})")
    return updates.shape[0], updates.shape[1]


def fedavg(updates: Tensor, counts: Sequence[int]) -> Tensor:
    """Mean of the rows weighted by example counts."""
    import torch
    n, _ = _check(updates)
    w = torch.as_tensor(np.asarray(counts, dtype=np.float64))
    if w.shape != (n,):
        raise BadRequest(f"fedavg needs one example count per update ({len(w)} counts for {n} updates)")
    if bool((w < 0).any()) or float(w.sum()) <= 0:
        raise BadRequest("example counts must be non-negative and not all zero")
    w = (w / w.sum()).to(updates.dtype)
    return torch.mv(updates.T, w)  # one pass over the data (gemv)


def krum_scores(updates: Tensor, f: int) -> Tensor:
    """Krum score of each row (float64): sum of squared distances to its N-f-2 nearest rows."""
    import torch
    n, _ = _check(updates)
    if f < 0 or n < 2 * f + 3:
        raise BadRequest(f"Krum tolerating f={f} faulty updates needs at least {2 * f + 3} updates (got {n})")
    gram = (updates @ updates.T).double()  # the one O(N^2 D) step; the rest is N x N
    sq = gram.diagonal()
    dist = (sq[:, None] + sq[None, :] - 2 * gram).clamp_min_(0)
    # A huge outlier can overflow float32 to inf (and inf - inf = nan): treat it as infinitely far.
    dist = torch.nan_to_num(dist, nan=float("inf"))
    dist.fill_diagonal_(float("inf"))
    nearest = dist.topk(n - f - 2, dim=1, largest=False).values
    return nearest.sum(dim=1)


def krum(updates: Tensor, f: int) -> tuple[Tensor, list[int]]:
    """The single update with the lowest Krum score, and its index."""
    import torch
    best = int(torch.argmin(krum_scores(updates, f)))
    return updates[best].clone(), [best]


def multikrum(updates: Tensor, f: int, m: int | None = None) -> tuple[Tensor, list[int]]:
    """Unweighted mean of the ``m`` updates with the lowest Krum scores, and their indices."""
    import torch
    n, _ = _check(updates)
    m = n - f if m is None else m
    if not 1 <= m <= n:
        raise BadRequest(f"multi-Krum must keep between 1 and {n} updates (got m={m})")
    scores = krum_scores(updates, f)
    kept = sorted(int(i) for i in torch.argsort(scores, stable=True)[:m])
    w = torch.zeros(n, dtype=updates.dtype)
    w[kept] = 1.0 / m
    return torch.mv(updates.T, w), kept


def _median_block(x: Tensor) -> Tensor:
    import torch
    n = x.shape[0]
    lo = x.median(dim=0).values  # the lower middle value, i.e. rank n//2 (1-based: (n+1)//2)
    if n % 2:
        return lo
    # Upper middle value without a second selection: the smallest value above
    # `lo`, unless `lo` itself repeats into the upper half.
    above = torch.where(x > lo, x, torch.inf).amin(dim=0)
    ties = (x <= lo).sum(dim=0) > n // 2
    hi = torch.where(ties, lo, above)
    return lo * 0.5 + hi * 0.5  # not (lo + hi) / 2: that can overflow for huge values


def median(updates: Tensor) -> Tensor:
    """Coordinate-wise median; for even N the mean of the two middle values."""
    import torch
    _, d = _check(updates)
    out = torch.empty(d, dtype=updates.dtype)
    for a in range(0, d, _BLOCK):
        out[a:a + _BLOCK] = _median_block(updates[:, a:a + _BLOCK])
    return out


def trimmed_mean(updates: Tensor, beta: float) -> Tensor:
    """Per coordinate, drop the ``floor(beta*N)`` largest and smallest values and average the rest."""
    import torch
    n, d = _check(updates)
    if not 0 <= beta < 0.5:
        raise BadRequest(f"trimmed-mean beta must be in [0, 0.5) (got {beta})")
    k = int(beta * n)
    if k == 0:
        return updates.mean(dim=0)
    out = torch.empty(d, dtype=updates.dtype)
    # Sorting the middle out (rather than subtracting the extremes from the
    # sum) keeps a 1e30 outlier from cancelling the honest values away.
    for a in range(0, d, _BLOCK):
        block = updates[:, a:a + _BLOCK].T.contiguous().sort(dim=1).values
        out[a:a + _BLOCK] = block[:, k:n - k].mean(dim=1)
    return out


# -- strategies -----------------------------------------------------------------
# Which rule runs which strategy, and every property of a rule, is declared in
# core.learning.rules; a strategy only says how its pure function is called.
class WeightedMean:
    """The base strategy (FedAvg): mean weighted by example counts; the others override what differs."""
    name = "weighted_mean"
    function: Callable[..., Any] = staticmethod(fedavg)   # the pure function over the stacked updates it runs
    left_out = "zero_weight"          # why an update that did not shape the aggregate was left out

    def combine(self, x: Tensor, counts: Sequence[int] | None, f: int, *, beta: float | None,
                m: int | None) -> tuple[Tensor, list[int], int | None]:
        """The aggregate of the stacked updates, the rows it kept, and the f it used (None: no f)."""
        n = x.shape[0]
        counts = [1] * n if counts is None else counts
        return self.function(x, counts), [i for i in range(n) if counts[i] > 0], None


class Krum(WeightedMean):
    """Keeps the update with the lowest Krum score, lowering f to what the updates that came tolerate."""
    name = "krum"
    function = staticmethod(krum)
    left_out = "krum_score"

    def combine(self, x, counts, f, *, beta, m):
        n = x.shape[0]
        f_used = max(0, min(int(f), (n - 3) // 2))
        if f_used != f:
            log.warning("%s: %d updates tolerate at most f=%d (asked f=%d)", self.name, n, f_used, f)
        vec, kept = self.select(x, f_used, m)
        return vec, kept, f_used

    def select(self, x: Tensor, f: int, m: int | None) -> tuple[Tensor, list[int]]:
        return self.function(x, f)


class MultiKrum(Krum):
    """Averages the ``m`` updates with the lowest Krum scores."""
    name = "multikrum"
    function = staticmethod(multikrum)

    def select(self, x, f, m):
        return self.function(x, f, m)


class Median(WeightedMean):
    """Coordinate-wise median of all the updates."""
    name = "median"
    function = staticmethod(median)

    def combine(self, x, counts, f, *, beta, m):
        return self.function(x), list(range(x.shape[0])), None


class TrimmedMean(WeightedMean):
    """Trimmed mean; ``beta`` defaults to f/N (0.1 when f=0)."""
    name = "trimmed_mean"
    function = staticmethod(trimmed_mean)

    def combine(self, x, counts, f, *, beta, m):
        n = x.shape[0]
        if beta is None:
            beta = min(f / n, (n - 1) / (2 * n)) if f > 0 else 0.1
        return self.function(x, beta), list(range(n)), None


STRATEGIES: dict[str, WeightedMean] = {s.name: s for s in (WeightedMean(), Krum(), MultiKrum(), Median(),
                                                            TrimmedMean())}


@dataclass
class AggregateResult:
    """The aggregate vector, the rows that shaped it, and why the others did not."""
    vector: np.ndarray
    kept: list[int]
    rejected: dict[int, str] = field(default_factory=dict)
    f_used: int | None = None


def check_aggregator(name: str) -> str:
    """Return ``name`` if it is a known aggregator, else raise BadRequest."""
    return rule(name).name


def stack(updates: Sequence[np.ndarray], reference: np.ndarray | None = None) -> Tensor:
    """Copy flat updates (minus ``reference``, if given) into one preallocated [N, D] tensor."""
    import torch
    if not updates:
        raise BadRequest("no updates to aggregate")
    d = int(np.asarray(updates[0]).size)
    buf = np.empty((len(updates), d), dtype=np.float32)
    for i, u in enumerate(updates):
        u = np.asarray(u, dtype=np.float32)
        if u.shape != (d,):
            raise BadRequest(f"update {i} has shape {u.shape}, expected ({d},)")
        if reference is None:
            buf[i] = u
        else:
            np.subtract(u, reference, out=buf[i])
    return torch.from_numpy(buf)


def aggregate(name: str, updates: Sequence[np.ndarray], counts: Sequence[int] | None = None,
              f: int = 0, *, beta: float | None = None, m: int | None = None,
              reference: np.ndarray | None = None) -> AggregateResult:
    """Aggregate flat float32 updates with rule ``name``.

    ``f`` is the number of Byzantine updates to tolerate. For the trimmed
    mean, ``beta`` defaults to ``f/N`` (trim f from each end; 0.1 when f=0). If
    too few updates arrived for that ``f``, the largest tolerable ``f`` is used
    and logged (``f_used``), so a round with dropouts still closes.
    ``reference`` (e.g. the global weights) is subtracted before and added
    after, which keeps Krum's distances precise; every rule here is
    translation-equivariant so the result is otherwise the same.
    """
    spec = rule(name)
    n = len(updates)
    if n == 0:
        raise BadRequest("no updates to aggregate")
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float32)
    x = stack(updates, reference)
    if n < spec.min_updates:
        raise BadRequest(f"{name} needs at least {spec.min_updates} updates (got {n})")
    strategy = STRATEGIES[spec.strategy]
    vec, kept, f_used = strategy.combine(x, counts, f, beta=beta, m=m)
    out = vec.numpy().astype(np.float32, copy=False)
    if reference is not None:
        out = out + reference
    kept_set = set(kept)
    rejected = {i: strategy.left_out for i in range(n) if i not in kept_set}
    return AggregateResult(vector=out, kept=kept, rejected=rejected, f_used=f_used)
