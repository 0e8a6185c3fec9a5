"""Local training on a worker (FedAvg / FedProx, optional client-level DP) and evaluation.

Runs off the event loop (a worker thread or process). By default it pins
torch to one thread: on two cores a second thread made small steps up to
10x slower under load.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from core.errors import BadRequest
from core.learning.models import DEFAULT_HIDDEN, ImageShape, as_image_shape, build_model, get_weights, set_weights
from core.learning.tensors import flatten, unflatten


@dataclass
class TrainConfig:
    """What a worker needs to train one round locally."""
    model: str
    epochs: int = 1
    lr: float = 0.05
    batch: int = 32
    prox_mu: float = 0.0       # FedProx proximal weight; 0 is plain FedAvg
    seed: int = 0
    dp_clip: float | None = None   # L2 bound on the client's delta
    dp_noise: float | None = None  # noise multiplier z (std = z * dp_clip)
    momentum: float = 0.9      # local SGD momentum, reset every round
    hidden: int = DEFAULT_HIDDEN
    num_threads: int | None = 1

    def validate(self) -> None:
        """Raise BadRequest on values that cannot train."""
        if not (1 <= self.epochs <= 1000):
            raise BadRequest(f"local epochs must be between 1 and 1000 (got {self.epochs})")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 10):
            raise BadRequest(f"learning rate must be in (0, 10] (got {self.lr})")
        if not (1 <= self.batch <= 65536):
            raise BadRequest(f"batch size must be between 1 and 65536 (got {self.batch})")
        if not (math.isfinite(self.prox_mu) and self.prox_mu >= 0):
            raise BadRequest(f"FedProx mu must be zero or positive (got {self.prox_mu})")
        if not (0 <= self.momentum < 1):
            raise BadRequest(f"momentum must be in [0, 1) (got {self.momentum})")
        if (self.dp_clip is None) != (self.dp_noise is None):
            raise BadRequest("differential privacy needs both a clipping norm and a noise multiplier")
        if self.dp_clip is not None and self.dp_noise is not None:  # both or neither (checked above)
            if not (math.isfinite(self.dp_clip) and self.dp_clip > 0):
                raise BadRequest(f"DP clipping norm must be positive (got {self.dp_clip})")
            if not (math.isfinite(self.dp_noise) and self.dp_noise >= 0):
                raise BadRequest(f"DP noise multiplier must be zero or positive (got {self.dp_noise})")

    @property
    def dp(self) -> bool:
        return self.dp_clip is not None


@dataclass
class LocalResult:
    """A worker's round outcome. Under DP ``weights`` are global + clipped, noised delta."""
    weights: dict[str, np.ndarray]
    n_examples: int
    loss: float          # mean training loss of the last local epoch
    update_norm: float   # L2 norm of the delta actually sent (after DP, if on)
    dp_steps: int        # Gaussian-mechanism applications this round (1 with DP, else 0)
    sample_rate: float   # the rate the worker assumes: 1.0 (every client, every round)


def _pin_threads(n: int | None) -> None:
    import torch
    if n and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def train_local(global_weights: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
                cfg: TrainConfig, n_features: int, n_classes: int,
                image_shape: ImageShape | None = None) -> LocalResult:
    """Train from ``global_weights`` on local data for ``cfg.epochs`` epochs of minibatch SGD."""
    import torch
    import torch.nn.functional as F

    cfg.validate()
    if len(X) == 0 or len(X) != len(y):
        raise BadRequest(f"local data must be non-empty with one label per row ({len(X)} rows, {len(y)} labels)")
    _pin_threads(cfg.num_threads)
    model = _thread_model(cfg.model, n_features, n_classes, as_image_shape(image_shape), cfg.hidden)
    set_weights(model, global_weights)  # every parameter and buffer: nothing of the last use survives
    anchor = [p.detach().clone() for p in model.parameters()] if cfg.prox_mu > 0 else None
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    params = [p for p in model.parameters() if p.requires_grad]
    momentum_buffers: list = [None] * len(params)
    gen = torch.Generator().manual_seed(cfg.seed)
    if not model.training:   # .train()/.eval() walk every module in Python: only on a change
        model.train()
    epoch_loss = 0.0
    for _ in range(cfg.epochs):
        order = torch.randperm(len(Xt), generator=gen)
        total, seen = 0.0, 0
        for start in range(0, len(order), cfg.batch):
            idx = order[start:start + cfg.batch]
            for p in params:
                p.grad = None
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            if anchor is not None:  # FedProx: mu/2 * ||w - w_global||^2
                prox = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True))
                loss = loss + 0.5 * cfg.prox_mu * prox
            loss.backward()
            _sgd_step(params, momentum_buffers, cfg.lr, cfg.momentum)
        epoch_loss = total / max(seen, 1)
    if not math.isfinite(epoch_loss):
        raise BadRequest("local training diverged (loss is not finite): lower the learning rate")

    trained = get_weights(model)
    g = flatten(global_weights)
    delta = flatten(trained) - g
    dp_steps = 0
    if cfg.dp_clip is not None and cfg.dp_noise is not None:  # cfg.dp: validate() made them both or neither
        from core.learning.privacy import clip_and_noise
        rng = np.random.default_rng([cfg.seed, 0xD9])
        delta = clip_and_noise(delta, cfg.dp_clip, cfg.dp_noise, rng)
        spec = {k: (v.shape, "float32") for k, v in trained.items()}
        trained = unflatten(g + delta, spec)
        dp_steps = 1
    return LocalResult(weights=trained, n_examples=int(len(X)), loss=float(epoch_loss),
                       update_norm=float(np.linalg.norm(delta.astype(np.float64))),
                       dp_steps=dp_steps, sample_rate=1.0)


def _sgd_step(params: list, buffers: list, lr: float, momentum: float) -> None:
    """Plain SGD with momentum, as torch.optim.SGD (no dampening, no Nesterov).

    Written out because torch.optim's first step imports torch._dynamo: about a
    second and 70 MB more in every worker process, for a two-line update rule.
    """
    import torch
    with torch.no_grad():
        for i, p in enumerate(params):
            grad = p.grad
            if grad is None:
                continue
            if momentum:
                buf = buffers[i]
                if buf is None:
                    buf = buffers[i] = grad.detach().clone()
                else:
                    buf.mul_(momentum).add_(grad)
                grad = buf
            p.add_(grad, alpha=-lr)


_models: dict[tuple, object] = {}   # (thread ident, shape) -> model
_models_lock = threading.Lock()
_MAX_MODELS = 64


def _thread_model(model_name: str, n_features: int, n_classes: int, image_shape: ImageShape | None,
                  hidden: int):
    """A model of this shape, built once per thread and reused for training and evaluation:
    building one (seeded init) cost more than a local round of the digits MLP. Callers
    always overwrite all its weights first.

    Kept in a module dict keyed by thread id rather than in thread-local storage: torch
    objects destroyed while a QThread exits crashed the process (seen with qasync's
    executor). A new thread that reuses an old id may reuse that model: only one thread
    has a given id at a time.
    """
    key = (threading.get_ident(), model_name, n_features, n_classes, image_shape, hidden)
    model = _models.get(key)
    if model is None:
        model = build_model(model_name, n_features, n_classes, image_shape, hidden=hidden)
        with _models_lock:
            if len(_models) >= _MAX_MODELS:
                _models.pop(next(iter(_models)))
            _models[key] = model
    return model


def logits(weights: dict[str, np.ndarray], X: np.ndarray, model_name: str, n_features: int,
           n_classes: int, image_shape: ImageShape | None = None, hidden: int = DEFAULT_HIDDEN,
           num_threads: int | None = 1):
    """The model's outputs (a torch tensor, no gradient) for every row of ``X`` under ``weights``."""
    import torch

    _pin_threads(num_threads)
    model = _thread_model(model_name, n_features, n_classes, as_image_shape(image_shape), hidden)
    set_weights(model, weights)
    if model.training:
        model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(X, dtype=np.float32)))


def evaluate(weights: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray, model_name: str,
             n_features: int, n_classes: int, image_shape: ImageShape | None = None,
             hidden: int = DEFAULT_HIDDEN, num_threads: int | None = 1) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``weights`` on ``(X, y)``."""

    if len(X) == 0:
        raise BadRequest("cannot evaluate on an empty set")
    out = logits(weights, X, model_name, n_features, n_classes, image_shape, hidden, num_threads)
    return _loss_and_accuracy(out, np.asarray(y, dtype=np.int64))


def held_out_scores(weights: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray, model_name: str,
                    n_features: int, n_classes: int, image_shape: ImageShape | None = None,
                    hidden: int = DEFAULT_HIDDEN) -> tuple[float, float, float]:
    """(loss, accuracy) on ``(X, y)`` and the loss on its even rows (the validation half), from one
    forward pass: a coordinator's commit check also gives the next round's reference loss."""
    if len(X) < 2:
        raise BadRequest("the held-out set needs at least two rows")
    out = logits(weights, X, model_name, n_features, n_classes, image_shape, hidden)
    labels = np.asarray(y, dtype=np.int64)
    loss, acc = _loss_and_accuracy(out, labels)
    return loss, acc, _loss_and_accuracy(out[::2], labels[::2])[0]


def _loss_and_accuracy(out, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of the logits ``out`` against ``labels``."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        yt = torch.as_tensor(labels)
        return float(F.cross_entropy(out, yt)), float((out.argmax(1) == yt).float().mean())


def warm_up(model_name: str, n_features: int, n_classes: int, image_shape: ImageShape | None = None,
            hidden: int = DEFAULT_HIDDEN) -> None:
    """Pay torch's one-time costs (imports, the optimizer's first step: over a second,
    several when many processes start at once) before a round's deadline is running."""
    rng = np.random.default_rng(0)
    X = rng.random((4, n_features), dtype=np.float32)
    y = np.arange(4, dtype=np.int64) % n_classes
    weights = get_weights(build_model(model_name, n_features, n_classes, image_shape, hidden=hidden))
    train_local(weights, X, y, TrainConfig(model_name, batch=2, hidden=hidden), n_features, n_classes,
                image_shape)
