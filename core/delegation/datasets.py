"""``dataset.digest`` and ``dataset.stats``: run in the child on a dataset named in the config.

Rows are the dataset as the learning code sees it (features float32, labels
int64 class indices, validated by core.learning.data), in file order, unsplit.

Digest: ``rows`` count; ``schema`` = sha256 of the canonical JSON of the
column layout; ``merkle_root`` = RFC 6962 Merkle tree hash over the rows,
leaf = sha256(0x00 || row), node = sha256(0x01 || left || right), where a row
is its features as little-endian float32 followed by its label as
little-endian int64.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from core.delegation.encoding import canonical_json
from core.learning import data


def load_rows(spec: str) -> tuple[np.ndarray, np.ndarray]:
    """All rows of ``digits``, ``synthetic`` or a .csv/.npz file, validated, in order."""
    # Same sources and validation as data.load_dataset, without its train/test split.
    if spec == "digits":
        from sklearn.datasets import load_digits
        digits = load_digits()
        X, y = digits.data / 16.0, digits.target
    elif spec == "synthetic":
        from sklearn.datasets import make_classification
        X, y = make_classification(n_samples=2000, n_features=20, n_informative=10,
                                   n_redundant=4, n_classes=4, class_sep=1.5, random_state=0)
    else:
        X, y, _ = data._load_file(spec, "label")
    X, y, _ = data._validate(X, y, os.path.basename(spec))
    return X, y


def row_bytes(X: np.ndarray, y: np.ndarray) -> list[bytes]:
    """Each row's bytes: features as <f4, then the label as <i8."""
    feats = np.ascontiguousarray(X, dtype="<f4")
    labels = np.ascontiguousarray(y, dtype="<i8")
    return [f.tobytes() + l.tobytes() for f, l in zip(feats, labels, strict=True)]


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash (bottom-up: an odd last node moves up unchanged)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def schema_of(X: np.ndarray, y: np.ndarray) -> dict:
    return {"features": int(X.shape[1]), "feature_dtype": "float32", "label_dtype": "int64",
            "classes": int(y.max()) + 1}


def digest(spec: str, args: dict) -> dict:
    """Row count, schema hash and Merkle root of the dataset."""
    X, y = load_rows(spec)
    schema = schema_of(X, y)
    return {"dataset": args["dataset"], "rows": int(len(X)), "schema": schema,
            "schema_hash": hashlib.sha256(canonical_json(schema)).hexdigest(),
            "merkle_root": merkle_root(row_bytes(X, y)).hex()}


def column_values(X: np.ndarray, y: np.ndarray, column) -> np.ndarray:
    """The column as float64: ``"label"`` or a feature index."""
    if column == "label":
        return y.astype(np.float64)
    if column >= X.shape[1]:
        from core.errors import BadRequest
        raise BadRequest(f"dataset.stats: column {column} does not exist "
                         f"(the dataset has {X.shape[1]} feature columns, 0..{X.shape[1] - 1}, and 'label')")
    return X[:, column].astype(np.float64)


def stats(spec: str, args: dict) -> dict:
    """Count, mean, std, quantiles and histogram of one column; Gaussian noise if asked.

    With ``noise_sigma`` > 0 every released number (count, mean, std, each
    quantile, each bin count) gets independent N(0, sigma^2) noise from the
    OS's randomness (the requester cannot choose the seed); the histogram
    range must then come from the request, not from the data.
    """
    X, y = load_rows(spec)
    v = column_values(X, y, args["column"])
    lo, hi = args["range"] if args["range"] is not None else (float(v.min()), float(v.max()))
    if lo == hi:  # a constant column: one bin of width 1 around it
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=args["bins"], range=(lo, hi))
    out: dict[str, Any] = {"count": float(len(v)), "mean": float(v.mean()), "std": float(v.std()),
           "quantiles": [float(q) for q in np.quantile(v, args["quantiles"])],
           "histogram": [float(c) for c in counts]}
    sigma = args["noise_sigma"]
    if sigma > 0:
        rng = np.random.default_rng(int.from_bytes(os.urandom(16), "little"))
        for key in ("count", "mean", "std"):
            out[key] += float(rng.normal(0.0, sigma))
        for key in ("quantiles", "histogram"):
            out[key] = [x + float(rng.normal(0.0, sigma)) for x in out[key]]
    out.update(dataset=args["dataset"], column=args["column"], quantile_levels=args["quantiles"],
               edges=[float(e) for e in edges], noise_sigma=sigma)
    return out
