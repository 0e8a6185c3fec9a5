"""Attack simulation on workers, so users can watch robust aggregation work.

* ``sign_flip``: send ``global - scale * (trained - global)`` (default scale 4).
* ``noise``: send ``global + N(0, s^2)`` with ``s = scale * RMS(delta)`` (default
  scale 10): a random update much larger than an honest one.
* ``label_flip``: poison the data instead (:func:`flip_labels` before
  training); the trained weights are sent unchanged.
"""
from __future__ import annotations

import math

import numpy as np

from core.errors import BadRequest

DEFAULT_SCALE = {"sign_flip": 4.0, "noise": 10.0, "label_flip": 1.0}
ATTACKS = tuple(DEFAULT_SCALE)


def check_attack(kind: str) -> str:
    """Return ``kind`` if it names a known attack, else raise BadRequest."""
    if kind not in DEFAULT_SCALE:
        raise BadRequest(f"unknown attack {kind!r}: choose one of {', '.join(ATTACKS)}")
    return kind


def flip_labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Map class ``c`` to ``n_classes - 1 - c`` (a label-flipping poisoner)."""
    return (n_classes - 1 - np.asarray(y)).astype(np.int64)


def apply_attack(kind: str, global_weights: dict[str, np.ndarray],
                 trained_weights: dict[str, np.ndarray], rng: np.random.Generator,
                 scale: float | None = None) -> dict[str, np.ndarray]:
    """The weights a malicious worker sends instead of ``trained_weights``."""
    check_attack(kind)
    scale = DEFAULT_SCALE[kind] if scale is None else float(scale)
    if not math.isfinite(scale) or scale < 0:
        raise BadRequest(f"attack scale must be a non-negative number (got {scale})")
    if kind == "label_flip":
        return {k: np.array(v, dtype=np.float32) for k, v in trained_weights.items()}
    deltas = {k: np.asarray(trained_weights[k], np.float64) - np.asarray(g, np.float64)
              for k, g in global_weights.items()}
    if kind == "sign_flip":
        return {k: (np.asarray(g, np.float64) - scale * deltas[k]).astype(np.float32)
                for k, g in global_weights.items()}
    n = sum(d.size for d in deltas.values())
    rms = math.sqrt(sum(float(np.square(d).sum()) for d in deltas.values()) / max(n, 1))
    sigma = scale * max(rms, 1e-3)
    return {k: (np.asarray(g, np.float64) + rng.normal(0.0, sigma, size=np.shape(g))).astype(np.float32)
            for k, g in global_weights.items()}
