"""Weights on the wire: safetensors bytes (never pickle) and strict validation.

:func:`decode` is the one gate every update from the network passes: it
checks size, format, the exact set of names, shapes, dtypes and finiteness
against the model's weight spec before anything else touches the numbers.
"""
from __future__ import annotations

import numpy as np

from core.errors import UpdateRejected

Spec = dict[str, tuple[tuple[int, ...], str]]

REASONS = ("too_large", "malformed", "shape", "dtype", "non_finite")   # what decode rejects for


def encode(weights: dict[str, np.ndarray]) -> bytes:
    """Serialise weights to safetensors bytes (the format sorts names; :func:`decode` restores spec order)."""
    from safetensors.numpy import save
    return save({k: np.ascontiguousarray(v) for k, v in weights.items()})


def decode(data: bytes, spec: Spec, max_bytes: int) -> dict[str, np.ndarray]:
    """Parse and validate safetensors bytes against ``spec``; raise :class:`UpdateRejected`.

    Missing or unexpected names are ``malformed`` (the payload is not an
    update of this model); the returned dict follows the spec's order.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UpdateRejected("malformed", f"update payload must be bytes, not {type(data).__name__}")
    if len(data) > max_bytes:
        raise UpdateRejected("too_large", f"update is {len(data)} bytes, the limit is {max_bytes}")
    from safetensors.numpy import load
    try:
        arrays = load(bytes(data))
    # Untrusted bytes: whatever the parser trips on (SafetensorError, an
    # unsupported dtype's TypeError, ...) means the same thing to us.
    except Exception as exc:
        raise UpdateRejected("malformed", f"update is not valid safetensors data: {exc}") from exc
    missing = [k for k in spec if k not in arrays]
    extra = sorted(k for k in arrays if k not in spec)
    if missing or extra:
        raise UpdateRejected("malformed", f"update does not match the model: missing {missing}, unexpected {extra}")
    out = {}
    for name, (shape, dtype) in spec.items():
        arr = arrays[name]
        if arr.dtype != np.dtype(dtype):
            raise UpdateRejected("dtype", f"weight {name!r} is {arr.dtype}, expected {dtype}")
        if arr.shape != tuple(shape):
            raise UpdateRejected("shape", f"weight {name!r} has shape {arr.shape}, expected {tuple(shape)}")
        if not np.isfinite(arr).all():
            raise UpdateRejected("non_finite", f"weight {name!r} contains NaN or infinite values")
        out[name] = arr
    return out


def flatten(weights: dict[str, np.ndarray]) -> np.ndarray:
    """Concatenate weights (in dict order) into one float32 vector."""
    if not weights:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in weights.values()])


def unflatten(vec: np.ndarray, spec: Spec) -> dict[str, np.ndarray]:
    """Split a flat vector back into named arrays following ``spec``'s order and shapes."""
    vec = np.asarray(vec)
    if vec.ndim != 1:
        raise UpdateRejected("shape", f"expected a flat vector, got shape {vec.shape}")
    sizes = [int(np.prod(shape)) for shape, _ in spec.values()]
    if sum(sizes) != vec.size:
        raise UpdateRejected("shape", f"vector has {vec.size} values, the model has {sum(sizes)}")
    out, at = {}, 0
    for (name, (shape, dtype)), size in zip(spec.items(), sizes, strict=True):
        out[name] = vec[at:at + size].astype(dtype, copy=True).reshape(shape)
        at += size
    return out
