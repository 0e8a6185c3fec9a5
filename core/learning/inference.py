"""Predictions of given weights on given inputs (for model evaluation by a task executor)."""
from __future__ import annotations

import numpy as np

from core.learning.models import DEFAULT_HIDDEN, ImageShape, as_image_shape, set_weights
from core.learning.train import _pin_threads, _thread_model


def predict(weights: dict[str, np.ndarray], X: np.ndarray, model_name: str, n_features: int,
            n_classes: int, image_shape: ImageShape | None = None,
            hidden: int = DEFAULT_HIDDEN, num_threads: int | None = 1) -> np.ndarray:
    """The predicted class of every row of ``X`` (int64), as :func:`train.evaluate` scores them."""
    import torch

    _pin_threads(num_threads)
    model = _thread_model(model_name, n_features, n_classes, as_image_shape(image_shape), hidden)
    set_weights(model, weights)
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(np.asarray(X, dtype=np.float32)))
    return logits.argmax(1).numpy().astype(np.int64)
