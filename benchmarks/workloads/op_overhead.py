"""Per-op dispatch cost: ``a + b`` on 4-element float32 tensors, in microseconds per op."""
from __future__ import annotations

import numpy as np
import torch

import ember

from ..harness import Row, Target, compare


def run(quick: bool = False) -> list[Row]:
    a_np = np.arange(4, dtype=np.float32)
    b_np = np.ones(4, dtype=np.float32)
    a, b = ember.tensor(a_np), ember.tensor(b_np)
    ta, tb = torch.from_numpy(a_np.copy()), torch.from_numpy(b_np.copy())
    times = compare({"ember": lambda: a + b, "torch": lambda: ta + tb, "numpy": lambda: a_np + b_np},
                    warmup=1 if quick else 1000, repeat=1 if quick else 9, number=10 if quick else 20000)
    us = {k: v * 1e6 for k, v in times.items()}
    return [Row("op_overhead", "a + b, 4 x float32", "us/op", us.pop("ember"), us, Target("torch", 2.0))]
