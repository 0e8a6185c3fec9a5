"""Where a blocking learning step runs: on the event loop when the model is small, else in a thread.

Decoding, validating or averaging a small model's weights takes a fraction of a
millisecond (digits MLP, 2,410 parameters: validation ~0.25 ms), less than the
hop to a worker thread. Worse, while such a thread runs Python/torch code the
loop thread waits for the GIL after every socket send or select (up to the
5 ms switch interval): profiled on a coordinator validating 10 updates per
round, ``socket.send`` averaged 4 ms and a round took 2-3x as long as with
validation off. Steps on a model of at most ``INLINE_PARAMS`` parameters
therefore run inline; larger ones keep the event loop free.

The same holds for a worker's local round of a small MLP (the digits MLP on a
simulated partition: 4-18 optimizer steps, ~0.5-2 ms): trained in a thread, it
paid two thread hand-offs per round, and on two loaded cores each hand-off
waited behind every other runnable process. Measured with 10 workers on the
shared machine, interleaved A/B (``bench/fl_round.py``): round ratio 1.77 /
2.43 / 3.18 / 3.0 in a thread against 1.37 / 1.48 / 2.53 / 2.35 inline.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    from .protocol import TaskSpec

T = TypeVar("T")

INLINE_PARAMS = 50_000   # ~0.2 MB of float32: decode + validate stays well under a millisecond
INLINE_STEPS = 32        # optimizer steps of a small MLP's local round trained on the loop (~3 ms at most)


async def run(fn: Callable[..., T], *args, params: int) -> T:
    """``fn(*args)``: inline for a model of at most INLINE_PARAMS parameters, else in a thread."""
    if params <= INLINE_PARAMS:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


def trains_inline(spec: TaskSpec, examples: int | None) -> bool:
    """Whether a worker trains its local round of ``spec`` on ``examples`` rows (None: unknown) on
    the event loop: an MLP of at most INLINE_PARAMS parameters, for at most INLINE_STEPS optimizer
    steps (a CNN's convolutions cost far more per parameter, so it always trains in a thread)."""
    if examples is None:
        return False
    steps = -(-examples // max(spec.batch, 1)) * spec.epochs
    return spec.model == "mlp" and spec.n_params() <= INLINE_PARAMS and steps <= INLINE_STEPS
