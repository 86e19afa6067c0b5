"""Dense float32 matrix product, n x n times n x n, in GFLOP/s (2 n^3 flops per product)."""
from __future__ import annotations

import numpy as np
import torch

import ember

from ..harness import Row, Target, compare


def run(quick: bool = False) -> list[Row]:
    n = 64 if quick else 2048
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    ea, eb = ember.tensor(a), ember.tensor(b)
    ta, tb = torch.from_numpy(a.copy()), torch.from_numpy(b.copy())
    times = compare({"ember": lambda: ea @ eb, "numpy": lambda: a @ b, "torch": lambda: ta @ tb},
                    warmup=1, repeat=1 if quick else 7)
    gflops = {k: 2 * n ** 3 / v / 1e9 for k, v in times.items()}
    return [Row("matmul", f"{n}^3 float32", "GFLOP/s", gflops.pop("ember"), gflops,
                Target("numpy", 0.95, higher_is_better=True))]
