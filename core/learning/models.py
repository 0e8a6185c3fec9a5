"""The model registry: small networks every node can build identically.

Weights travel as ``dict[str, np.ndarray]`` (float32) in the model's
``state_dict`` order, so two nodes that build the same model from the same
arguments agree on names, shapes and order without exchanging code.
"""
from __future__ import annotations

import threading
import weakref
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np

from core.errors import BadRequest

if TYPE_CHECKING:  # torch is heavy: import it only when a model is built
    import torch

DEFAULT_HIDDEN = 32
_GLOBAL_RNG = threading.Lock()   # held while a model is seeded and initialised

ImageShape = tuple[int, int]  # (height, width) of an image dataset


def as_image_shape(value: Sequence[int] | None) -> ImageShape | None:
    """``[height, width]`` (a task spec's list, or a tuple) as a hashable pair; None or empty -> None."""
    if not value:
        return None
    h, w = value
    return h, w


def _build_mlp(n_features: int, n_classes: int, image_shape: ImageShape | None, hidden: int):
    from torch import nn
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


def _build_cnn(n_features: int, n_classes: int, image_shape: ImageShape | None, hidden: int):
    from torch import nn
    if image_shape is None:
        raise BadRequest("the cnn model needs an image dataset (such as digits); use mlp for tabular data")
    h, w = image_shape
    if h * w != n_features:
        raise BadRequest(f"image shape {h}x{w} does not match {n_features} features")
    if h < 2 or w < 2:
        raise BadRequest(f"image shape {h}x{w} is too small for the cnn model (at least 2x2)")
    return nn.Sequential(
        nn.Unflatten(1, (1, h, w)),
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * (h // 2) * (w // 2), hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


MODELS = {"mlp": _build_mlp, "cnn": _build_cnn}


def _check_args(name: str, n_features: int, n_classes: int, hidden: int) -> None:
    if name not in MODELS:
        raise BadRequest(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}")
    if n_features < 1 or n_classes < 2:
        raise BadRequest(f"a model needs at least 1 feature and 2 classes (got {n_features} and {n_classes})")
    if not 1 <= hidden <= 4096:
        raise BadRequest(f"hidden size must be between 1 and 4096 (got {hidden})")


def build_model(name: str, n_features: int, n_classes: int,
                image_shape: ImageShape | None = None, seed: int = 0,
                hidden: int = DEFAULT_HIDDEN) -> "torch.nn.Module":
    """Build model ``name`` with deterministic initial weights for ``seed``."""
    import torch
    _check_args(name, n_features, n_classes, hidden)
    image_shape = as_image_shape(image_shape)  # callers may pass the spec's list
    # Initialisation draws from torch's one global generator: one thread at a time seeds and draws
    # (concurrent builds drew from each other's seeds, and a GC pause inside the generator's lock
    # deadlocked two warming-up workers of one process against the GIL).
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):  # do not disturb the caller's RNG
        torch.manual_seed(seed)
        return MODELS[name](n_features, n_classes, image_shape, hidden)


def get_weights(model) -> dict[str, np.ndarray]:
    """The model's parameters and buffers as float32 numpy copies, in state_dict order."""
    return {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v, _ in _state(model)}


def set_weights(model, weights: dict[str, np.ndarray]) -> None:
    """Load ``weights`` (as produced by :func:`get_weights`) into ``model`` in place."""
    import torch
    state = _state(model)
    if len(state) != len(weights) or any(k != name for k, (name, _, _) in zip(weights, state, strict=True)):
        names = [name for name, _, _ in state]
        missing = sorted(set(names) - set(weights))
        extra = sorted(set(weights) - set(names))
        raise BadRequest(f"weights do not fit the model (missing {missing}, unexpected {extra})")
    with torch.no_grad():
        for k, target, shape in state:
            src = np.asarray(weights[k])
            if src.shape != shape:
                raise BadRequest(f"weight {k!r} has shape {src.shape}, the model expects {shape}")
            # torch.tensor copies, so read-only arrays (e.g. decoded from bytes) are fine
            target.copy_(torch.tensor(src, dtype=target.dtype))


_states: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _state(model) -> list[tuple[str, "torch.Tensor", tuple[int, ...]]]:
    """``(name, tensor, shape)`` of the model's state_dict, kept per model: building the
    state_dict walks every module in Python, which cost more than copying a small model's
    weights (the coordinator loads weights for every update it validates). The tensors share
    their storage with the parameters and buffers, which a model built here never replaces."""
    state = _states.get(model)
    if state is None:
        state = _states[model] = [(k, v, tuple(v.shape)) for k, v in model.state_dict().items()]
    return state


@lru_cache(maxsize=32)
def _spec(model_name: str, n_features: int, n_classes: int, image_shape: ImageShape | None, hidden: int):
    model = build_model(model_name, n_features, n_classes, image_shape, hidden=hidden)
    return tuple((k, tuple(v.shape), "float32") for k, v in model.state_dict().items())


def weight_spec(model_name: str, n_features: int, n_classes: int,
                image_shape: ImageShape | None = None,
                hidden: int = DEFAULT_HIDDEN) -> dict[str, tuple[tuple[int, ...], str]]:
    """``name -> (shape, dtype)`` of the model's weights, in order; used to validate updates."""
    image_shape = as_image_shape(image_shape)  # callers may pass the spec's list
    return {k: (shape, dtype) for k, shape, dtype in
            _spec(model_name, n_features, n_classes, image_shape, hidden)}


def n_parameters(spec: dict[str, tuple[tuple[int, ...], str]]) -> int:
    """Total number of scalars described by a weight spec."""
    return int(sum(int(np.prod(shape)) for shape, _ in spec.values()))


def count_parameters(model_name: str, n_features: int, n_classes: int,
                     image_shape: ImageShape | None = None, hidden: int = DEFAULT_HIDDEN) -> int:
    """How many scalars the model has, by arithmetic (nothing is built, so a huge model costs nothing).

    Equals ``n_parameters(weight_spec(...))``; a model that cannot be built
    raises BadRequest as :func:`build_model` would.
    """
    _check_args(model_name, n_features, n_classes, hidden)
    head = hidden * n_classes + n_classes
    if model_name == "mlp":
        return n_features * hidden + hidden + head
    if image_shape is None:
        raise BadRequest("the cnn model needs an image dataset (such as digits); use mlp for tabular data")
    h, w = image_shape
    if h * w != n_features or h < 2 or w < 2:
        raise BadRequest(f"image shape {h}x{w} does not fit the cnn model with {n_features} features")
    convs = (1 * 8 * 9 + 8) + (8 * 16 * 9 + 16)
    return convs + 16 * (h // 2) * (w // 2) * hidden + hidden + head
