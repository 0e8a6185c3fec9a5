"""Which learning steps run on the event loop and which go to a thread."""
from __future__ import annotations

import threading

from core.learning import offload
from core.learning.protocol import TaskSpec

DIGITS = dict(n_features=64, n_classes=10, image_shape=[8, 8])


def test_a_small_mlps_short_local_round_trains_on_the_loop():
    spec = TaskSpec(model="mlp", batch=16, epochs=2, **DIGITS)
    assert offload.trains_inline(spec, 143)          # 10 simulated workers: 18 steps
    assert offload.trains_inline(spec, 29)           # 50 simulated workers: 4 steps


def test_long_rounds_large_models_cnns_and_own_files_train_in_a_thread():
    assert not offload.trains_inline(TaskSpec(model="mlp", batch=16, epochs=2, **DIGITS), 720)   # 90 steps
    assert not offload.trains_inline(TaskSpec(model="mlp", epochs=50, **DIGITS), 143)
    assert not offload.trains_inline(TaskSpec(model="mlp", hidden=1024, **DIGITS), 143)         # 77k params
    assert not offload.trains_inline(TaskSpec(model="cnn", **DIGITS), 29)
    assert not offload.trains_inline(TaskSpec(model="mlp", **DIGITS), None)   # rows unknown: its own file


async def test_run_keeps_small_models_on_the_calling_thread_and_sends_large_ones_away():
    here = threading.get_ident()
    assert await offload.run(threading.get_ident, params=offload.INLINE_PARAMS) == here
    assert await offload.run(threading.get_ident, params=offload.INLINE_PARAMS + 1) != here
