"""Local training's hand-written SGD step is torch.optim.SGD's rule, without importing torch._dynamo."""
from __future__ import annotations

import subprocess
import sys

import numpy as np


def test_local_training_matches_torch_optim_sgd_with_momentum():
    import torch
    import torch.nn.functional as F
    from core.learning.data import load_dataset
    from core.learning.models import build_model, get_weights, set_weights
    from core.learning.train import TrainConfig, train_local

    d = load_dataset("digits")
    start = get_weights(build_model("mlp", 64, 10))
    ours = train_local(start, d.X_train[:200], d.y_train[:200],
                       TrainConfig("mlp", epochs=2, batch=16, lr=0.05, momentum=0.9, seed=3), 64, 10)

    model = build_model("mlp", 64, 10, seed=3)
    set_weights(model, start)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(3)
    X, y = torch.as_tensor(d.X_train[:200]), torch.as_tensor(d.y_train[:200])
    for _ in range(2):
        order = torch.randperm(200, generator=gen)
        for s in range(0, 200, 16):
            idx = order[s:s + 16]
            opt.zero_grad()
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    reference = get_weights(model)
    for name in reference:
        np.testing.assert_allclose(ours.weights[name], reference[name], rtol=0, atol=1e-6)


def test_a_worker_training_round_does_not_import_torch_dynamo():
    code = ("import sys\nfrom core.learning.train import warm_up\nwarm_up('mlp', 64, 10)\n"
            "print(any(m.startswith('torch._dynamo') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
