"""Datasets a node trains on, and how a simulation splits one among clients.

Built-in: ``digits`` (scikit-learn's 8x8 handwritten digits, offline) and
``synthetic`` (scikit-learn ``make_classification``). Local files: ``.csv``
(header row, numeric columns, one label column) and ``.npz`` (arrays ``X``
and ``y``, loaded with ``allow_pickle=False``). Files are validated before
use; every problem is a :class:`~core.errors.BadRequest` saying what is wrong.
"""
from __future__ import annotations

import csv
import math
import os
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np

from core.errors import BadRequest

MAX_FILE_BYTES = 200 * 1024 * 1024
MIN_SAMPLES = 10
TEST_FRACTION = 0.2
BUILTIN = ("digits", "synthetic")


@dataclass
class Dataset:
    """Train and test arrays (X float32, y int64 in 0..n_classes-1) and their shape."""
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_features: int
    n_classes: int
    image_shape: tuple[int, int] | None
    name: str


def load_dataset(spec: str, seed: int = 0, label_column: str = "label") -> Dataset:
    """Load ``digits``, ``synthetic`` or a ``.csv``/``.npz`` file and split it 80/20 (stratified, seeded)."""
    if not isinstance(spec, str) or not spec:
        raise BadRequest("dataset must be 'digits', 'synthetic' or a path to a .csv or .npz file")
    image_shape = None
    if spec == "digits":
        from sklearn.datasets import load_digits
        digits = load_digits()
        X, y, image_shape = digits.data / 16.0, digits.target, (8, 8)
    elif spec == "synthetic":
        from sklearn.datasets import make_classification
        X, y = make_classification(n_samples=2000, n_features=20, n_informative=10,
                                   n_redundant=4, n_classes=4, class_sep=1.5,
                                   random_state=seed)
    else:
        X, y, image_shape = _load_file(spec, label_column)
        spec = os.path.basename(spec)
    X, y, n_classes = _validate(X, y, spec)
    X_train, X_test, y_train, y_test = _split(X, y, seed)
    return Dataset(X_train, y_train, X_test, y_test, X.shape[1], n_classes, image_shape, spec)


def _load_file(path: str, label_column: str):
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".npz"):
        raise BadRequest(f"dataset {path!r}: unknown dataset name or file type (use digits, synthetic, .csv or .npz)")
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise BadRequest(f"dataset file {path!r} cannot be read: {exc.strerror or exc}") from exc
    if size > MAX_FILE_BYTES:
        raise BadRequest(f"dataset file {path!r} is {size // 2**20} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB")
    if size == 0:
        raise BadRequest(f"dataset file {path!r} is empty")
    return _load_csv(path, label_column) if ext == ".csv" else _load_npz(path)


def _load_csv(path: str, label_column: str):
    with open(path, newline="", encoding="utf-8-sig") as fh:
        try:
            header = next(csv.reader(fh), None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BadRequest(f"dataset file {path!r} is not a readable CSV file: {exc}") from exc
    if not header:
        raise BadRequest(f"dataset file {path!r} is empty")
    header = [h.strip() for h in header]
    if label_column not in header:
        raise BadRequest(f"dataset file {path!r} has no label column {label_column!r} (columns: {', '.join(header[:20])})")
    if len(header) < 2:
        raise BadRequest(f"dataset file {path!r} has a label column but no feature columns")
    try:
        with warnings.catch_warnings():  # "no data" is reported below as a BadRequest
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2,
                               encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"dataset file {path!r} has a non-numeric or missing value: {exc}") from exc
    if table.size == 0:
        raise BadRequest(f"dataset file {path!r} has a header but no rows")
    if table.shape[1] != len(header):
        raise BadRequest(f"dataset file {path!r}: rows have {table.shape[1]} values but the header names {len(header)} columns")
    li = header.index(label_column)
    return np.delete(table, li, axis=1), table[:, li], None


def _load_npz(path: str):
    try:
        with zipfile.ZipFile(path) as zf:  # refuse archives that would inflate past the cap
            inflated = sum(info.file_size for info in zf.infolist())
        if inflated > MAX_FILE_BYTES:
            raise BadRequest(f"dataset file {path!r} inflates to {inflated // 2**20} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB")
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("X", "y") if k not in npz.files]
            if missing:
                raise BadRequest(f"dataset file {path!r} lacks array(s) {', '.join(missing)} (it needs X and y)")
            X, y = npz["X"], npz["y"]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise BadRequest(f"dataset file {path!r} is not a readable .npz file (object arrays are refused): {exc}") from exc
    image_shape = None
    if X.ndim == 3:  # (n, h, w) images
        image_shape = (int(X.shape[1]), int(X.shape[2]))
        X = X.reshape(X.shape[0], -1)
    return X, y, image_shape


def _validate(X, y, name: str):
    X, y = np.asarray(X), np.asarray(y)
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise BadRequest(f"dataset {name!r}: features and labels must be numeric (got {X.dtype} and {y.dtype})")
    if X.ndim != 2 or y.ndim != 1:
        raise BadRequest(f"dataset {name!r}: X must be 2-D (or 3-D images) and y 1-D, got {X.shape} and {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise BadRequest(f"dataset {name!r}: {X.shape[0]} rows of features but {y.shape[0]} labels")
    if X.shape[0] < MIN_SAMPLES or X.shape[1] == 0:
        raise BadRequest(f"dataset {name!r} is too small: {X.shape[0]} rows, {X.shape[1]} features (need {MIN_SAMPLES} rows)")
    X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise BadRequest(f"dataset {name!r} contains NaN or infinite feature values")
    if not np.isfinite(y.astype(np.float64)).all() or np.any(y != np.round(y)):
        raise BadRequest(f"dataset {name!r}: labels must be whole numbers (class indices)")
    # Arbitrary integer labels (e.g. 3 and 7) become class indices 0..K-1 in sorted order.
    classes, y = np.unique(y.astype(np.int64), return_inverse=True)
    if len(classes) < 2:
        raise BadRequest(f"dataset {name!r} has a single class; training needs at least two")
    if len(classes) > 1000:
        raise BadRequest(f"dataset {name!r} has {len(classes)} classes; the limit is 1000 (is the label column right?)")
    return X, y.astype(np.int64), len(classes)


def _split(X, y, seed: int):
    from sklearn.model_selection import train_test_split
    counts = np.bincount(y)
    stratify = y if counts.min() >= 2 and len(counts) <= TEST_FRACTION * len(y) else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=TEST_FRACTION, random_state=seed,
                                              stratify=stratify)
    return (np.ascontiguousarray(X_tr), np.ascontiguousarray(X_te),
            np.ascontiguousarray(y_tr), np.ascontiguousarray(y_te))


# -- partitioning among simulated clients -------------------------------------
def parse_partition(scheme: str) -> tuple[str, float | None]:
    """``"iid"`` -> ``("iid", None)``; ``"dirichlet:ALPHA"`` -> ``("dirichlet", alpha)``."""
    if not isinstance(scheme, str):
        raise BadRequest("partition scheme must be a string such as 'iid' or 'dirichlet:0.5'")
    s = scheme.strip().lower()
    if s == "iid":
        return "iid", None
    kind, sep, arg = s.partition(":")
    if kind == "dirichlet" and sep:
        try:
            alpha = float(arg)
        except ValueError:
            alpha = math.nan
        if math.isfinite(alpha) and alpha > 0:
            return "dirichlet", alpha
        raise BadRequest(f"partition {scheme!r}: dirichlet alpha must be a positive number, e.g. dirichlet:0.5")
    raise BadRequest(f"unknown partition {scheme!r}: use 'iid' or 'dirichlet:ALPHA' (ALPHA > 0; smaller is more skewed)")


def partition(y: np.ndarray, n_clients: int, scheme: str = "iid", seed: int = 0) -> list[np.ndarray]:
    """Split sample indices among ``n_clients``: disjoint, covering all, each client non-empty.

    ``dirichlet:ALPHA`` gives each client class proportions drawn from
    Dirichlet(ALPHA); clients left with fewer than a few samples are topped
    up from the largest client so none trains on nothing.
    """
    kind, alpha = parse_partition(scheme)
    y = np.asarray(y)
    n = len(y)
    if not isinstance(n_clients, (int, np.integer)) or n_clients < 1:
        raise BadRequest(f"number of clients must be a positive integer (got {n_clients!r})")
    if n < n_clients:
        raise BadRequest(f"cannot split {n} samples among {n_clients} clients")
    rng = np.random.default_rng(seed)
    if kind == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(n), n_clients)]
    parts: list[list[int]] = [[] for _ in range(n_clients)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        props = rng.dirichlet(np.full(n_clients, alpha))
        cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
        for client, chunk in enumerate(np.split(idx, cuts)):
            parts[client].extend(chunk.tolist())
    min_size = max(1, min(5, n // n_clients))
    for client in range(n_clients):
        while len(parts[client]) < min_size:
            donor = max(range(n_clients), key=lambda i: len(parts[i]))
            take = rng.integers(len(parts[donor]))
            parts[client].append(parts[donor].pop(take))
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
