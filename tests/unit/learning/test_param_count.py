"""The parameter count a worker checks against its budget is computed without building the model."""
from __future__ import annotations

import pytest

from core.errors import BadRequest
from core.learning.models import count_parameters, n_parameters, weight_spec


@pytest.mark.parametrize("args", [("mlp", 64, 10, None, 32), ("mlp", 20, 2, None, 5),
                                  ("cnn", 64, 10, (8, 8), 32), ("cnn", 35, 3, (5, 7), 7)])
def test_the_count_equals_the_built_models(args):
    assert count_parameters(*args) == n_parameters(weight_spec(*args))


def test_a_huge_model_is_counted_not_built_and_a_bad_one_refused():
    assert count_parameters("mlp", 10**7, 1000, None, 4096) == 10**7 * 4096 + 4096 + 4096 * 1000 + 1000
    with pytest.raises(BadRequest):
        count_parameters("cnn", 64, 10, None, 32)
