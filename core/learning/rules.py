"""The aggregation rules and their properties, declared once.

Every module that needs to know something about a rule (is it sum-based, may
secure aggregation run it, is it robust, does it take ``f``, what the GUI calls
it) reads it from :data:`RULES`; nothing else lists rule names. Each rule runs
as a strategy of :mod:`core.learning.aggregators` (``strategy`` names it), a
thin wrapper around one pure function over the list of updates.

Pure: no numpy, no torch, so the CLI, the task spec and the GUI form import it
for free.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.errors import BadRequest


@dataclass(frozen=True)
class Rule:
    """One aggregation rule and what the rest of Covey needs to know about it."""
    name: str
    label: str               # how the GUI names it
    help: str                # one line for the GUI's tooltip
    strategy: str            # the strategy in aggregators.STRATEGIES that runs it
    sum_based: bool          # a weighted mean of the updates: computable from their sum alone
    robust: bool             # bounds what a few Byzantine updates can do; far-off updates count as outliers
    takes_f: bool = False    # its result depends on f, the Byzantine updates to tolerate (default N/5)
    min_updates: int = 1     # fewer accepted updates cannot be aggregated by it
    prox_mu: float = 0.0     # the proximal weight workers train with when the task sets none
    # Two-level aggregation (workers -> group aggregators -> coordinator): the rule that combines
    # the groups' results ("" for a sum-based rule, whose partial sums compose exactly), and what
    # the composition guarantees, against the flat rule over all N updates (README).
    across: str = ""
    two_level: str = ""

    @property
    def secure_agg(self) -> bool:
        """Whether secure aggregation can serve it: the coordinator sees only the sum of the updates."""
        return self.sum_based

    @property
    def composes_exactly(self) -> bool:
        """Whether two-level aggregation gives the flat result: groups forward weighted partial sums."""
        return self.sum_based

    @property
    def reads_each_update(self) -> bool:
        """Whether it must look at every single update (what secure aggregation hides)."""
        return not self.sum_based


_EXACT = ("exact: each group forwards its weighted partial sum and total weight, the coordinator "
          "divides the sum of the sums by the sum of the weights (the flat result up to float rounding)")
RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("fedavg", "FedAvg", "Mean of the updates weighted by example counts",
         strategy="weighted_mean", sum_based=True, robust=False, two_level=_EXACT),
    Rule("fedprox", "FedProx",
         "FedAvg with a proximal term that keeps local training near the global model",
         strategy="weighted_mean", sum_based=True, robust=False, prox_mu=0.01, two_level=_EXACT),
    Rule("krum", "Krum", "Robust: picks the update closest to its neighbours; tolerates a few attackers",
         strategy="krum", sum_based=False, robust=True, takes_f=True, min_updates=3, across="median",
         two_level="Krum in each group (a group of n tolerates f <= (n-3)/2), then the coordinate-wise "
                   "median of the groups' picks: safe while more than half of the groups hold at most "
                   "their f attackers, so the worst placement breaks it with about N/4 attackers where "
                   "a flat Krum tolerates (N-3)/2"),
    Rule("multikrum", "Multi-Krum", "Robust: averages the updates Krum ranks best; tolerates a few attackers",
         strategy="multikrum", sum_based=False, robust=True, takes_f=True, min_updates=3, across="median",
         two_level="Multi-Krum in each group (a group of n tolerates f <= (n-3)/2; a smaller group "
                   "keeps every update), then the coordinate-wise median of the groups' results: safe "
                   "while more than half of the groups hold at most their f attackers"),
    Rule("median", "Median", "Robust: coordinate-wise median; tolerates a minority of attackers",
         strategy="median", sum_based=False, robust=True, across="median",
         two_level="median of the group medians: stays within the honest values while more than half "
                   "of the groups have an honest majority, so G groups of n can be broken by "
                   "(G//2+1)*(n//2+1) attackers (about N/4) where a flat median needs N/2"),
    Rule("trimmed-mean", "Trimmed mean", "Robust: drops the extremes of each coordinate, then averages",
         strategy="trimmed_mean", sum_based=False, robust=True, takes_f=True, across="trimmed-mean",
         two_level="trimmed mean in each group (trims f per side), then a trimmed mean of the groups' "
                   "results (trims max(1, G//5) per side from 3 groups on): safe while at most that many "
                   "groups hold more than their f attackers"),
)}

AGGREGATORS: tuple[str, ...] = tuple(RULES)
SECURE_AGG_RULES: tuple[str, ...] = tuple(n for n, r in RULES.items() if r.secure_agg)


def rule(name: str) -> Rule:
    """The rule called ``name``; BadRequest (naming the choices) for an unknown name."""
    found = RULES.get(name) if isinstance(name, str) else None
    if found is None:
        raise BadRequest(f"unknown aggregator {name!r}: choose one of {', '.join(AGGREGATORS)}")
    return found
