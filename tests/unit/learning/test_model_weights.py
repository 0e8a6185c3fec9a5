"""Loading and reading a model's weights (set_weights keeps the model's state list between calls)."""
from __future__ import annotations

import gc

import numpy as np
import pytest

from core.errors import BadRequest
from core.learning import models
from core.learning.models import build_model, get_weights, set_weights


def test_weights_set_are_read_back_and_in_place_changes_are_seen():
    import torch
    model = build_model("mlp", 64, 10, seed=1)
    other = get_weights(build_model("mlp", 64, 10, seed=2))
    set_weights(model, other)
    for name, value in get_weights(model).items():
        np.testing.assert_array_equal(value, other[name])
    with torch.no_grad():   # training changes the parameters in place: the next read sees it
        for p in model.parameters():
            p.add_(1.0)
    for name, value in get_weights(model).items():
        np.testing.assert_allclose(value, other[name] + 1.0, rtol=0, atol=1e-6)


def test_weights_that_do_not_fit_are_refused_after_good_ones_were_loaded():
    model = build_model("mlp", 64, 10)
    good = get_weights(model)
    set_weights(model, good)
    renamed = {("x" + k if i == 0 else k): v for i, (k, v) in enumerate(good.items())}
    with pytest.raises(BadRequest, match="do not fit"):
        set_weights(model, renamed)
    with pytest.raises(BadRequest, match="do not fit"):
        set_weights(model, dict(list(good.items())[:-1]))
    first = next(iter(good))
    with pytest.raises(BadRequest, match="shape"):
        set_weights(model, {**good, first: np.zeros((3, 3), dtype=np.float32)})


def test_the_kept_state_does_not_keep_a_model_alive():
    model = build_model("mlp", 64, 10)
    set_weights(model, get_weights(model))
    before = len(models._states)
    del model
    gc.collect()
    assert len(models._states) == before - 1


def test_the_shared_model_of_a_thread_is_in_eval_mode_to_evaluate_and_in_train_mode_to_train():
    from core.learning import train
    from core.learning.data import load_dataset
    d = load_dataset("digits")
    weights = get_weights(build_model("mlp", 64, 10))
    model = train._thread_model("mlp", 64, 10, None, models.DEFAULT_HIDDEN)
    for _ in range(2):
        train.evaluate(weights, d.X_test[:20], d.y_test[:20], "mlp", 64, 10)
        assert not model.training and not any(m.training for m in model.modules())
        train.train_local(weights, d.X_train[:20], d.y_train[:20], train.TrainConfig("mlp"), 64, 10)
        assert model.training and all(m.training for m in model.modules())


def test_models_built_in_many_threads_at_once_each_get_their_seeds_weights():
    """Seeded initialisation draws from torch's one global generator: built concurrently (several
    workers of one process warming up), a model must not draw from another thread's seed."""
    from concurrent.futures import ThreadPoolExecutor

    from core.learning.models import build_model, get_weights
    expected = {seed: get_weights(build_model("mlp", 64, 10, seed=seed, hidden=256)) for seed in range(8)}

    def build(seed: int) -> bool:
        got = get_weights(build_model("mlp", 64, 10, seed=seed, hidden=256))
        return all(np.array_equal(got[k], expected[seed][k]) for k in got)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(build, [seed for _ in range(25) for seed in range(8)]))
