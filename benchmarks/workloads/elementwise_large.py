"""Eager elementwise throughput: ``gelu_tanh(x * w + b)`` on 4M float32 values (w, b of the same shape)."""
from __future__ import annotations

import numpy as np
import torch

import ember

from ..harness import Row, Target, compare


def _numpy(x, w, b):
    y = x * w + b
    return 0.5 * y * (1 + np.tanh(0.7978845608 * (y + 0.044715 * y ** 3)))


def run(quick: bool = False) -> list[Row]:
    n = 1 << 12 if quick else 1 << 22
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    ex, ew, eb = (ember.tensor(v) for v in (x, w, b))
    tx, tw, tb = (torch.from_numpy(v.copy()) for v in (x, w, b))
    times = compare({
        "ember": lambda: ember.gelu_tanh(ex * ew + eb),
        "numpy": lambda: _numpy(x, w, b),
        "torch": lambda: torch.nn.functional.gelu(tx * tw + tb, approximate="tanh"),
    }, warmup=1 if quick else 3, repeat=1 if quick else 9)
    ms = {k: v * 1e3 for k, v in times.items()}
    return [Row("elementwise_large", f"gelu_tanh(x*w+b), {n} x float32", "ms", ms.pop("ember"), ms,
                Target("numpy", 1.2))]
