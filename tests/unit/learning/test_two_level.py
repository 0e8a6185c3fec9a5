"""The math of two-level aggregation: what a group forwards, how the groups combine, what that guarantees."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import BadRequest, MalformedMessage
from core.learning import protocol
from core.learning.aggregators import aggregate
from core.learning.compose import Partial, across_f, assign_groups, combine, group_partial
from core.learning.rules import RULES

SUM_RULES = [n for n, r in RULES.items() if r.sum_based]
ROBUST_RULES = [n for n, r in RULES.items() if r.robust]


def _updates(n: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=d).astype(np.float32)
    flats = [(ref + rng.normal(scale=0.1, size=d)).astype(np.float32) for _ in range(n)]
    counts = [int(c) for c in rng.integers(1, 300, size=n)]
    return ref, flats, counts


def _two_level(name, ref, flats, counts, sizes, f=0):
    partials, at = [], 0
    for size in sizes:
        partial, _, _ = group_partial(name, flats[at:at + size], counts[at:at + size], f, ref)
        partials.append(partial)
        at += size
    return ref.astype(np.float64) + combine(name, partials)


@pytest.mark.parametrize("name", SUM_RULES)
@pytest.mark.parametrize("sizes", [(3, 3), (1, 5), (2, 2, 2), (6,), (4, 1, 1)])
def test_sum_based_rules_compose_exactly(name, sizes):
    ref, flats, counts = _updates(sum(sizes), 500, seed=len(sizes))
    flat = aggregate(name, flats, counts, reference=ref).vector
    np.testing.assert_allclose(_two_level(name, ref, flats, counts, sizes), flat, rtol=0, atol=1e-6)


def test_a_group_forwards_a_weighted_sum_and_its_total_weight_not_an_average():
    ref = np.zeros(2, dtype=np.float32)
    partial, kept, outliers = group_partial(SUM_RULES[0], [np.array([1, 0], np.float32),
                                                           np.array([0, 1], np.float32)], [3, 1], 0, ref)
    np.testing.assert_allclose(partial.vector, [3.0, 1.0])
    assert partial.weight == 4.0 and kept == {0, 1} and outliers == set()


def test_every_rule_says_how_it_composes():
    for r in RULES.values():
        assert r.two_level, r.name
        if r.sum_based:
            assert r.composes_exactly and r.across == ""
        else:
            assert not r.composes_exactly and RULES[r.across].robust


def test_median_of_medians_tolerates_fewer_attackers_than_a_flat_median():
    """4 attackers among 9 (a minority): the flat median stays honest, the median of 3 group
    medians does not when the attackers hold a majority of 2 groups (what README says)."""
    honest, evil = np.float32(1.0), np.float32(-100.0)
    values = [evil, evil, honest, evil, evil, honest, honest, honest, honest]
    flats = [np.array([v], np.float32) for v in values]
    ref = np.zeros(1, np.float32)
    name = next(n for n, r in RULES.items() if r.robust and r.across == n and not r.takes_f)  # the median
    flat = aggregate(name, flats, [1] * 9, reference=ref).vector
    assert flat[0] == honest
    two = _two_level(name, ref, flats, [1] * 9, (3, 3, 3))
    assert two[0] == evil
    # the same 4 attackers spread so that each group keeps an honest majority: the median holds
    spread = [evil, honest, honest, evil, honest, honest, evil, evil, honest]
    two = _two_level(name, ref, [np.array([v], np.float32) for v in spread], [1] * 9, (3, 3, 3))
    assert two[0] != evil


@pytest.mark.parametrize("name", ROBUST_RULES)
def test_robust_rules_within_groups_resist_one_attacker_per_group(name):
    """Groups of 5 (Krum tolerating f=1 needs 2f+3 = 5 updates in each group)."""
    ref, flats, counts = _updates(15, 50, seed=3)
    for i in (0, 5, 10):   # one sign-flipped, scaled update in each group
        flats[i] = (ref - 20 * (flats[i] - ref)).astype(np.float32)
    honest = np.mean([flats[i] for i in range(15) if i % 5], axis=0)
    two = _two_level(name, ref, flats, counts, (5, 5, 5), f=1)
    assert float(np.linalg.norm(two - honest)) < 0.5 * float(np.linalg.norm(flats[0] - honest))
    assert float(np.max(np.abs(two - honest))) < 0.5


def test_trimmed_mean_across_groups_trims_from_three_groups_on():
    assert [across_f(g) for g in (1, 2, 3, 5, 10)] == [0, 0, 1, 1, 2]
    name = next(n for n, r in RULES.items() if r.robust and r.across == n and r.takes_f)  # trimmed mean
    parts = [Partial(np.array([v]), 3.0) for v in (1.0, 2.0, 1000.0)]
    assert combine(name, parts)[0] == pytest.approx(2.0)


def test_one_group_passes_through_and_none_is_an_error():
    p = Partial(np.array([0.5, -0.5]), 2.0)
    np.testing.assert_allclose(combine(ROBUST_RULES[0], [p]), p.vector)
    with pytest.raises(BadRequest):
        combine(SUM_RULES[0], [])
    with pytest.raises(BadRequest):
        group_partial(SUM_RULES[0], [], [], 0, np.zeros(2, np.float32))


def test_workers_are_dealt_round_robin_and_empty_groups_left_out():
    assert assign_groups(["w0", "w1", "w2", "w3", "w4"], ["a", "b"]) == {"a": ["w0", "w2", "w4"], "b": ["w1", "w3"]}
    assert assign_groups(["w0"], ["a", "b", "c"]) == {"a": ["w0"]}
    assert assign_groups(["w0"], []) == {}


def test_groups_are_dealt_only_to_aggregators_that_reach_the_worker():
    reach = {"a": {"w0", "w1", "w2"}, "b": {"w1", "w2", "w3"}, "c": set()}
    # least loaded first (ties: the first aggregator); w4 is reached by none and left out
    assert assign_groups(["w0", "w1", "w2", "w3", "w4"], ["a", "b", "c"], reach) == {
        "a": ["w0", "w2"], "b": ["w1", "w3"]}
    # a's workers move to b when a is gone
    assert assign_groups(["w0", "w1", "w2"], ["b"], reach) == {"b": ["w1", "w2"]}
    # a worker stays with its previous aggregator while that one reaches it
    assert assign_groups(["w1", "w2"], ["a", "b"], reach, {"w1": "a", "w2": "a"}) == {"a": ["w1"], "b": ["w2"]}
    # ... up to a fair share: an aggregator that comes back gets workers again
    both = {"a": {"w1", "w2", "w3", "w4"}, "b": {"w1", "w2", "w3", "w4"}}
    assert assign_groups(["w1", "w2", "w3", "w4"], ["a", "b"], both, dict.fromkeys(["w1", "w2", "w3", "w4"], "b")) \
        == {"a": ["w3", "w4"], "b": ["w1", "w2"]}


# -- the messages --------------------------------------------------------------------------
TASK = "0123456789abcdef"


def _partial_body(**over):
    body = {"task": TASK, "round": 1, "round_id": b"r" * 16, "vector": b"\0" * 16, "weight": 5.0, "loss": 0.3,
            "workers": {"p" * 64: {"status": "accepted", "n_examples": 5, "used": True}}}
    body.update(over)
    return body


def test_a_partial_is_parsed_and_its_malformed_forms_refused():
    pb = protocol.parse_partial(_partial_body(), 1 << 20)
    assert pb.weight == 5.0 and pb.workers["p" * 64]["status"] == "accepted"
    bad = [dict(vector=None), dict(weight=0.0), dict(weight=float("nan")), dict(weight=-1.0),
           dict(workers={"p": {"status": "great"}}), dict(workers={"p": {"status": "accepted"}}),
           dict(workers=[]), dict(round=0), dict(task="nope")]
    for over in bad:
        with pytest.raises(MalformedMessage):
            protocol.parse_partial(_partial_body(**over), 1 << 20)


def test_a_group_round_is_parsed_and_its_malformed_forms_refused():
    body = {"task": TASK, "round": 2, "attempt": 0, "round_id": b"r" * 16, "weights": b"w", "deadline": 30.0,
            "weight_cap": 100, "spec": {}, "group": {"a" * 64: 0, "b" * 64: 1}}
    assert protocol.parse_group_round(body, 1 << 20).group == {"a" * 64: 0, "b" * 64: 1}
    for over in (dict(group={}), dict(group={"x": 0}), dict(group={"a" * 64: -1}), dict(round_id=b"r"),
                 dict(deadline=0), dict(weight_cap=0)):
        with pytest.raises(MalformedMessage):
            protocol.parse_group_round({**body, **over}, 1 << 20)


def test_a_spec_names_distinct_peer_ids_as_aggregators_with_or_without_secure_aggregation():
    protocol.TaskSpec.from_dict({"aggregators": ["a" * 64, "b" * 64]})
    for bad in (["a" * 64, "a" * 64], ["nope"], "a" * 64, ["a" * 64] * 0 + [f"{i:064x}" for i in range(65)]):
        with pytest.raises(BadRequest):
            protocol.TaskSpec.from_dict({"aggregators": bad})
    # secure aggregation runs inside each group (tests/integration/test_learning_two_level.py)
    assert protocol.TaskSpec.from_dict({"aggregators": ["a" * 64], "secure_agg": True, "validate": False}).secure_agg
