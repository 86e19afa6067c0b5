"""MLP training step: 784→1024→1024→10 with ReLU, cross-entropy, SGD (momentum 0.9), batch 256, float32.

One timed call is one full step: forward, loss, backward and the optimiser update, for Ember eager,
Ember compiled (``ember.jit`` of the whole step) and PyTorch eager (see :mod:`.training`). Ember's
initial weights are copied into the PyTorch model, and the first losses of every candidate are checked
against PyTorch's before timing.
"""
from __future__ import annotations

import numpy as np
import torch

import ember
from ember import nn

from ..harness import Row
from .training import copy_weights, training_rows


def run(quick: bool = False) -> list[Row]:
    batch, sizes = (16, (784, 64, 64, 10)) if quick else (256, (784, 1024, 1024, 10))
    ember.manual_seed(0)
    layers, peers = [], []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        peers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            peers.append(torch.nn.ReLU())
    model, peer = nn.Sequential(*layers), torch.nn.Sequential(*peers)
    copy_weights(model, peer)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], batch)
    case = f"MLP {'-'.join(map(str, sizes))}, batch {batch}, SGD momentum"
    # compiled: <= 1.05x PyTorch eager (PyTorch is at the BLAS limit here)
    return training_rows("mlp_train", case, model, peer,
                         lambda m: ember.optim.SGD(m.parameters(), lr=0.01, momentum=0.9),
                         lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9),
                         x, y, quick, eager_limit=1.3, jit_limit=1.05)
