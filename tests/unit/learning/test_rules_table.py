"""The aggregation rules table is the one place a rule's properties are declared, and learning's
SQL lives in one module (core/learning/db.py)."""
from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import BadRequest
from core.learning import aggregators, db, protocol, rules
from core.learning.rules import RULES

ROOT = Path(__file__).resolve().parents[3]
RULES_FILE = ROOT / "core" / "learning" / "rules.py"
DB_FILE = ROOT / "core" / "learning" / "db.py"
NAMES = set(RULES)


def sources(*areas: str):
    for area in areas:
        for path in sorted((ROOT / area).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _names_in(node) -> list[str]:
    items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", [])
    return [e.value for e in items if isinstance(e, ast.Constant) and e.value in NAMES]


def rule_lists_outside_the_table(*areas: str) -> list[str]:
    """Collections of two or more rule names, and comparisons against a rule name, outside rules.py."""
    found = []
    for path, tree in sources(*areas):
        if path == RULES_FILE:
            continue
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) and len(_names_in(node)) >= 2:
                found.append(f"{where} lists {sorted(_names_in(node))}")
            elif isinstance(node, ast.Compare):
                for operand in [node.left, *node.comparators]:
                    if isinstance(operand, ast.Constant) and operand.value in NAMES:
                        found.append(f"{where} compares with {operand.value!r}")
    return found


def test_no_module_but_the_table_lists_rules_or_tests_for_one_by_name():
    assert rule_lists_outside_the_table("core", "desktop") == []


def test_the_scan_would_see_a_list_or_a_comparison(tmp_path, monkeypatch):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "m.py").write_text('ROBUST = {"krum", "median"}\nOK = agg == "fedprox"\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert len(rule_lists_outside_the_table("core")) == 2


def test_every_name_list_is_the_table_itself():
    assert rules.AGGREGATORS == tuple(RULES)
    assert protocol.AGGREGATORS is rules.AGGREGATORS and aggregators.AGGREGATORS is rules.AGGREGATORS
    assert protocol.RULES is RULES
    assert rules.SECURE_AGG_RULES == ("fedavg", "fedprox")
    assert {n for n, r in RULES.items() if r.robust} == {"krum", "multikrum", "median", "trimmed-mean"}
    for r in RULES.values():
        assert r.secure_agg == r.sum_based == (not r.reads_each_update)
        assert r.label and r.help


def test_an_unknown_rule_is_refused_naming_the_choices():
    with pytest.raises(BadRequest, match="choose one of fedavg, fedprox, krum"):
        rules.rule("mean-ish")
    with pytest.raises(BadRequest):
        rules.rule(None)


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_rule_runs_a_strategy_around_a_pure_module_level_function(name):
    strategy = aggregators.STRATEGIES[RULES[name].strategy]
    function = strategy.function
    assert getattr(aggregators, function.__name__) is function   # a plain function of aggregators.py
    rng = np.random.default_rng(3)
    ups = [rng.normal(size=6).astype(np.float32) for _ in range(7)]
    before = [u.copy() for u in ups]
    first = aggregators.aggregate(name, ups, [1] * 7, f=1)
    again = aggregators.aggregate(name, ups, [1] * 7, f=1)
    assert all(np.array_equal(a, b) for a, b in zip(ups, before, strict=True))   # the input is not touched
    assert np.array_equal(first.vector, again.vector) and first.kept == again.kept
    x = aggregators.stack(ups)
    direct = {"weighted_mean": lambda: function(x, [1] * 7), "krum": lambda: function(x, 1)[0],
              "multikrum": lambda: function(x, 1)[0], "median": lambda: function(x),
              "trimmed_mean": lambda: function(x, 1 / 7)}[strategy.name]()
    assert np.allclose(first.vector, direct.numpy(), atol=1e-6)


def test_every_strategy_serves_a_rule():
    assert {r.strategy for r in RULES.values()} == set(aggregators.STRATEGIES)


def _with(monkeypatch, name, **changes):
    monkeypatch.setitem(RULES, name, dataclasses.replace(RULES[name], **changes))


def test_the_secure_aggregation_refusal_follows_the_table(monkeypatch):
    """The CLI (ml.start -> start_task) and the GUI form both ask TaskSpec, which asks the table."""
    fields = {"aggregator": "median", "secure_agg": True, "validate": False}
    with pytest.raises(BadRequest, match="cannot run median"):
        protocol.TaskSpec.from_dict(fields)
    _with(monkeypatch, "median", sum_based=True)
    assert protocol.TaskSpec.from_dict(fields).secure_agg
    _with(monkeypatch, "fedavg", sum_based=False)
    with pytest.raises(BadRequest, match="cannot run fedavg"):
        protocol.TaskSpec.from_dict({"secure_agg": True, "validate": False})


def test_f_proximal_weight_and_minimum_updates_follow_the_table(monkeypatch):
    assert protocol.TaskSpec.from_dict({"aggregator": "median"}).f(10) == 0
    _with(monkeypatch, "median", takes_f=True)
    assert protocol.TaskSpec.from_dict({"aggregator": "median"}).f(10) == 2
    _with(monkeypatch, "fedavg", prox_mu=0.5)
    assert protocol.TaskSpec.from_dict({}).prox_mu == 0.5
    _with(monkeypatch, "median", min_updates=4)
    with pytest.raises(BadRequest, match="median needs at least 4 updates"):
        aggregators.aggregate("median", [np.zeros(2, np.float32)] * 3)


def test_the_form_light_modules_load_neither_numpy_nor_torch():
    code = ("import sys, core.learning.protocol, core.learning.rules; "
            "print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


# -- the round record -----------------------------------------------------------------
def test_a_round_record_keeps_its_shape_and_status_shows_its_public_fields():
    record = protocol.RoundRecord(round=1, accuracy=0.9, loss=0.3, accepted=2, rejected=1, missing=0,
                                  reasons={"validation": 1}, seconds=0.5, epsilon=None, attempt=0,
                                  workers={"p": {"slot": 0, "status": "accepted"}}, secure_agg=False,
                                  at=1.0).to_dict()
    assert list(record) == ["round", "accuracy", "loss", "accepted", "rejected", "missing", "reasons",
                            "seconds", "epsilon", "attempt", "workers", "secure_agg", "at", "groups"]
    assert record["groups"] == {}   # one level; two-level rounds record each group
    assert list(protocol.round_view(record)) == ["round", "accuracy", "loss", "accepted", "rejected",
                                                 "seconds", "epsilon", "reasons", "workers", "groups"]
    assert protocol.round_view({"round": 3})["accuracy"] is None   # an older checkpoint's record


# -- learning's SQL ---------------------------------------------------------------------
def test_only_db_py_names_learning_tables():
    found = []
    for path, tree in sources("core", "desktop"):
        if path == DB_FILE:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
                    t in node.value for t in ("ml_tasks", "ml_participants", "ml_memberships")):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_the_service_declares_the_migrations_of_db_py():
    from core.learning.service import LearningService
    assert LearningService.migrations is db.MIGRATIONS


def test_db_round_trips_tasks_participants_and_memberships(tmp_path):
    from core.learning.worker import Membership
    from core.store import Store
    with Store(tmp_path / "covey.db") as store:
        store.ensure_schema("learning", db.MIGRATIONS)
        db.save_task(store, "a" * 16, {"rounds": 2}, "running", None, 1.0)
        db.save_task(store, "b" * 16, {"rounds": 3}, "running", None, 0.5)
        db.save_task(store, "a" * 16, {"rounds": 2}, "failed", "boom", 1.0)
        rows = db.load_tasks(store)
        assert [r["id"] for r in rows] == ["b" * 16, "a" * 16]   # oldest first
        assert (rows[1]["state"], rows[1]["error"], db.spec_of(rows[1])) == ("failed", "boom", {"rounds": 2})
        db.add_participant(store, "a" * 16, "p1", 0)
        db.add_participant(store, "a" * 16, "p2", 1)
        db.add_participant(store, "b" * 16, "p1", 0)
        assert db.load_participants(store, "a" * 16) == {"p1": 0, "p2": 1}
        m = Membership("c" * 16, "coord", {"rounds": 4}, "joined", 2, None, 3)
        db.save_membership(store, m)
        m.last_round = 4
        db.save_membership(store, m)
        assert [Membership(**f) for f in db.load_memberships(store)] == [m]
        m.last_round = 5   # a worker's round records only its last round
        db.save_last_round(store, m.task, 5)
        assert [Membership(**f) for f in db.load_memberships(store)] == [m]
