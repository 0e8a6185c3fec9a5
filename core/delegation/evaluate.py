"""``model.evaluate``: weights sent with the task, scored on the executor's named dataset.

The weights are safetensors bytes, validated against the model's weight spec
(core.learning.tensors.decode) before use. The predictions digest is sha256
of the predicted classes as little-endian int64, in the order of the rows
evaluated (the learning code's seeded test split, or all rows in file order).
"""
from __future__ import annotations

import hashlib

import numpy as np

from core.errors import BadRequest
from core.learning import data, tensors
from core.learning.inference import predict
from core.learning.models import weight_spec
from core.learning.train import evaluate as score

from core.delegation.datasets import load_rows


def evaluation_rows(spec: str, split: str) -> tuple[np.ndarray, np.ndarray, data.Dataset]:
    """(X, y, dataset) to evaluate on: the seeded test split or every row."""
    ds = data.load_dataset(spec, seed=0)
    if split == "test":
        return ds.X_test, ds.y_test, ds
    X, y = load_rows(spec)
    return X, y, ds


def evaluate(spec: str, args: dict) -> dict:
    """Loss, accuracy, row count and predictions digest of ``args['weights']``."""
    X, y, ds = evaluation_rows(spec, args["split"])
    model, hidden = args["model"], args["hidden"]
    wspec = weight_spec(model, ds.n_features, ds.n_classes, ds.image_shape, hidden)
    try:
        weights = tensors.decode(args["weights"], wspec, len(args["weights"]))
    except tensors.UpdateRejected as exc:
        raise BadRequest(f"model.evaluate: the weights do not fit a {model} (hidden {hidden}) on "
                         f"dataset {args['dataset']!r} ({ds.n_features} features, "
                         f"{ds.n_classes} classes): {exc}") from exc
    loss, accuracy = score(weights, X, y, model, ds.n_features, ds.n_classes, ds.image_shape, hidden)
    preds = predict(weights, X, model, ds.n_features, ds.n_classes, ds.image_shape, hidden)
    return {"dataset": args["dataset"], "split": args["split"], "model": model, "rows": int(len(X)),
            "loss": loss, "accuracy": accuracy,
            "predictions_sha256": hashlib.sha256(preds.astype("<i8").tobytes()).hexdigest()}
