"""Reductions of a (4096, 1024) float32 matrix over each axis and over both: sum, mean, amax and
(unbiased) var.

Each library reads its own copy of the matrix (16 MB each, 48 MB together, more than the last-level
cache), so none finds the data left in cache by the one timed before it."""
from __future__ import annotations

import numpy as np
import torch

import ember

from ..harness import Row, Target, compare, skipped

_NUMPY = {"sum": lambda x, d: x.sum(d), "mean": lambda x, d: x.mean(d), "amax": lambda x, d: x.max(d),
          "var": lambda x, d: x.var(d, ddof=1)}


def run(quick: bool = False) -> list[Row]:
    shape = (64, 32) if quick else (4096, 1024)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ex, tx, xn = ember.tensor(x.copy()), torch.from_numpy(x.copy()), x.copy()
    rows = []
    for op, np_fn in _NUMPY.items():
        for dim in (0, 1, None):
            case = f"{op}(dim={dim}) of {shape[0]}x{shape[1]}"
            if not hasattr(ex, op):
                rows.append(skipped("reduce_large", case, f"Tensor.{op} does not exist yet"))
                continue
            ember_fn, torch_fn = getattr(ex, op), getattr(tx, op)
            times = compare({
                "ember": lambda f=ember_fn, d=dim: f() if d is None else f(d),
                "numpy": lambda f=np_fn, d=dim: f(xn, d),
                "torch": lambda f=torch_fn, d=dim: f() if d is None else f(d),
            }, warmup=1 if quick else 3, repeat=1 if quick else 15)
            ms = {k: v * 1e3 for k, v in times.items()}
            rows.append(Row("reduce_large", case, "ms", ms.pop("ember"), ms, Target("numpy", 1.2)))
    return rows
