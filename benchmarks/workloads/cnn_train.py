"""CNN training step: 3 × (conv 3×3 pad 1 + ReLU + maxpool 2) with 32/64/128 channels on 64×3×32×32 images,
then flatten + linear to 10 classes, cross-entropy, Adam; float32, ms per step.

One timed call is one full step (forward, loss, backward, update), eager and compiled (see
:mod:`.training`). Ember's initial weights are copied into the PyTorch model and the first losses are
checked to agree before timing.
"""
from __future__ import annotations

import numpy as np
import torch

import ember
from ember import nn

from ..harness import Row
from .training import copy_weights, training_rows


def _layers(lib, channels: tuple[int, ...], side: int, classes: int) -> list:
    layers = []
    for a, b in zip(channels[:-1], channels[1:]):
        layers += [lib.Conv2d(a, b, 3, padding=1), lib.ReLU(), lib.MaxPool2d(2)]
    side //= 2 ** (len(channels) - 1)
    return layers + [lib.Flatten(), lib.Linear(channels[-1] * side * side, classes)]


def run(quick: bool = False) -> list[Row]:
    batch, side, channels = (4, 8, (3, 4, 8, 8)) if quick else (64, 32, (3, 32, 64, 128))
    ember.manual_seed(0)
    model = nn.Sequential(*_layers(nn, channels, side, 10))
    peer = torch.nn.Sequential(*_layers(torch.nn, channels, side, 10))
    copy_weights(model, peer)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, channels[0], side, side), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    case = f"3x(conv3x3+ReLU+pool) {'/'.join(map(str, channels[1:]))} ch, {batch}x3x{side}x{side}, Adam"
    return training_rows("cnn_train", case, model, peer, lambda m: ember.optim.Adam(m.parameters(), lr=1e-3),
                         lambda m: torch.optim.Adam(m.parameters(), lr=1e-3), x, y, quick,
                         eager_limit=2.0, jit_limit=1.0)
