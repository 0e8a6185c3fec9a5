"""Where a blocking learning step runs: on the event loop when the model is small, else in a thread.

Decoding, validating or averaging a small model's weights takes a fraction of a
millisecond (digits MLP, 2,410 parameters: validation ~0.25 ms), less than the
hop to a worker thread. Worse, while such a thread runs Python/torch code the
loop thread waits for the GIL after every socket send or select (up to the
5 ms switch interval): profiled on a coordinator validating 10 updates per
round, ``socket.send`` averaged 4 ms and a round took 2-3x as long as with
validation off. Steps on a model of at most ``INLINE_PARAMS`` parameters
therefore run inline; larger ones keep the event loop free.
"""
from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

T = TypeVar("T")

INLINE_PARAMS = 50_000   # ~0.2 MB of float32: decode + validate stays well under a millisecond


async def run(fn: Callable[..., T], *args, params: int) -> T:
    """``fn(*args)``: inline for a model of at most INLINE_PARAMS parameters, else in a thread."""
    if params <= INLINE_PARAMS:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)
