"""Federated learning end to end in one process (no network): quality, robustness, privacy.

Ten IID clients on digits, one local epoch per round, the same code paths a
worker and a coordinator use (train_local, apply_attack, aggregate,
PrivacyAccountant). Accuracy is the mean over the last five rounds, so one
lucky or unlucky round does not decide a test.
"""
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pytest

from core.learning.aggregators import aggregate
from core.learning.attacks import apply_attack
from core.learning.data import load_dataset, partition
from core.learning.models import build_model, get_weights
from core.learning.privacy import PrivacyAccountant
from core.learning.tensors import flatten, unflatten
from core.learning.train import TrainConfig, evaluate, train_local

CLIENTS, ROUNDS, ATTACKERS = 10, 20, 2


@dataclass
class Run:
    initial: float
    accuracy: list[float] = field(default_factory=list)
    epsilon: list[float] = field(default_factory=list)

    @property
    def settled(self) -> float:
        return float(np.mean(self.accuracy[-5:]))


@lru_cache(maxsize=1)
def digits():
    ds = load_dataset("digits", seed=0)
    return ds, partition(ds.y_train, CLIENTS, "iid", seed=0)


@lru_cache(maxsize=None)
def simulate(aggregator: str, attackers: int = 0, dp_noise: float | None = None) -> Run:
    ds, parts = digits()
    shape = (ds.n_features, ds.n_classes, ds.image_shape)
    g = get_weights(build_model("mlp", *shape, seed=0))
    spec = {k: (v.shape, "float32") for k, v in g.items()}
    run = Run(initial=evaluate(g, ds.X_test, ds.y_test, "mlp", *shape)[1])
    accountant = PrivacyAccountant(dp_noise, sample_rate=1.0) if dp_noise else None
    rng = np.random.default_rng(0)
    for rnd in range(ROUNDS):
        updates, counts = [], []
        for c, idx in enumerate(parts):
            cfg = TrainConfig(model="mlp", epochs=1, lr=0.05, batch=8, seed=rnd * 100 + c,
                              dp_clip=0.5 if dp_noise else None, dp_noise=dp_noise)
            res = train_local(g, ds.X_train[idx], ds.y_train[idx], cfg, *shape)
            w = apply_attack("sign_flip", g, res.weights, rng) if c < attackers else res.weights
            updates.append(flatten(w))
            counts.append(1 if dp_noise else res.n_examples)  # DP: equal weights (see privacy.py)
        result = aggregate(aggregator, updates, counts, f=ATTACKERS, reference=flatten(g))
        g = unflatten(result.vector, spec)
        run.accuracy.append(evaluate(g, ds.X_test, ds.y_test, "mlp", *shape)[1])
        if accountant:
            accountant.step()
            run.epsilon.append(accountant.epsilon())
    return run


def test_fedavg_on_iid_digits_reaches_93_percent_within_20_rounds():
    run = simulate("fedavg")
    assert run.initial < 0.2
    assert max(run.accuracy) >= 0.93
    assert run.settled >= 0.93


@pytest.mark.parametrize("aggregator", ["krum", "median", "trimmed-mean"])
def test_robust_aggregators_shrug_off_two_sign_flippers(aggregator):
    clean, attacked = simulate(aggregator), simulate(aggregator, ATTACKERS)
    assert attacked.settled >= clean.settled - 0.03
    assert attacked.settled >= 0.85


def test_fedavg_collapses_under_two_sign_flippers():
    clean, attacked = simulate("fedavg"), simulate("fedavg", ATTACKERS)
    assert attacked.settled < clean.settled - 0.5


def test_dp_training_still_learns_and_spends_more_epsilon_every_round():
    run = simulate("fedavg", dp_noise=1.0)
    assert run.settled > run.initial + 0.1
    assert all(a < b for a, b in zip(run.epsilon, run.epsilon[1:]))
    assert len(run.epsilon) == ROUNDS and run.epsilon[0] > 0
