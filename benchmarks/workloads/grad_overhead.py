"""Autograd overhead: build a 50-op chain on a 1-element tensor and run backward, in microseconds per op.

The chain is ``y = y * 1.0001 + 0.0001`` repeated 25 times (50 recorded ops), then ``y.backward()``;
the time covers recording the forward ops and running their backward rules.
"""
from __future__ import annotations

import torch

import ember

from ..harness import Row, Target, compare

OPS = 50


def _chain(x):
    y = x
    for _ in range(OPS // 2):
        y = y * 1.0001 + 0.0001
    y.backward()
    return x.grad


def run(quick: bool = False) -> list[Row]:
    ex = ember.ones(1, requires_grad=True)
    tx = torch.ones(1, requires_grad=True)

    def ember_step():
        ex.grad = None
        return _chain(ex)

    def torch_step():
        tx.grad = None
        return _chain(tx)

    times = compare({"ember": ember_step, "torch": torch_step}, warmup=1 if quick else 20,
                    repeat=1 if quick else 9, number=1 if quick else 100)
    us = {k: v * 1e6 / OPS for k, v in times.items()}
    return [Row("grad_overhead", f"{OPS}-op scalar chain + backward", "us/op", us.pop("ember"), us,
                Target("torch", 2.0))]
