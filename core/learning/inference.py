"""Predictions of given weights on given inputs (for model evaluation by a task executor)."""
from __future__ import annotations

import numpy as np

from core.learning.models import DEFAULT_HIDDEN, ImageShape
from core.learning.train import logits


def predict(weights: dict[str, np.ndarray], X: np.ndarray, model_name: str, n_features: int,
            n_classes: int, image_shape: ImageShape | None = None,
            hidden: int = DEFAULT_HIDDEN, num_threads: int | None = 1) -> np.ndarray:
    """The predicted class of every row of ``X`` (int64), as :func:`train.evaluate` scores them."""
    out = logits(weights, X, model_name, n_features, n_classes, image_shape, hidden, num_threads)
    return out.argmax(1).numpy().astype(np.int64)
