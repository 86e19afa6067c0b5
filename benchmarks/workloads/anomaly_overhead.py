"""Anomaly-mode overhead: an MLP training step (forward, cross-entropy, backward) with
``ember.autograd.detect_anomaly()`` on, against the same step with it off, in ms/step.

The target is the issue's: anomaly mode on costs at most 2x eager.
"""
from __future__ import annotations

import ember
import ember.nn as nn
import ember.nn.functional as F

from ..harness import Row, Target, compare


def run(quick: bool = False) -> list[Row]:
    ember.manual_seed(0)
    batch, width = (8, 16) if quick else (64, 256)
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, 10))
    x = ember.randn(batch, 64)
    y = ember.randint(0, 10, (batch,))

    def step():
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()

    def step_with_anomaly():
        with ember.autograd.detect_anomaly():
            step()

    times = compare({"anomaly on": step_with_anomaly, "anomaly off": step}, warmup=1 if quick else 5,
                    repeat=1 if quick else 7, number=1 if quick else 20)
    ms = {k: v * 1e3 for k, v in times.items()}
    return [Row("anomaly_overhead", f"MLP step, batch {batch}", "ms/step", ms.pop("anomaly on"), ms,
                Target("anomaly off", 2.0))]
