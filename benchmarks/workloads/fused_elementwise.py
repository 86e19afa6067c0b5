"""Fusion and generated C kernels: ``gelu_tanh(x * w + b)`` on 4M float32 values, compiled with
``ember.jit`` (one fused kernel) against Ember eager, and as a fraction of the machine's memory
bandwidth measured in the same run with a large copy (bytes counted as 3 inputs read + 1 output
written; the copy as 1 read + 1 write). The copy is the faster of NumPy's (one thread) and PyTorch's
(all threads), so the fraction is of what the machine's cores can move together. PyTorch eager runs the
same expression beside them."""
from __future__ import annotations

import numpy as np
import torch

import ember

from ..harness import Row, Target, compare, skipped


def _fn(x, w, b):
    return ember.gelu_tanh(x * w + b)


def run(quick: bool = False) -> list[Row]:
    n = 1 << 12 if quick else 1 << 22
    rng = np.random.default_rng(0)
    x, w, b = (ember.tensor(rng.standard_normal(n).astype(np.float32)) for _ in range(3))
    compiled = ember.jit(_fn)
    if not any(nd.prim.name.startswith("fused_") for nd in compiled.lower(x, w, b).graph.nodes):
        return [skipped("fused_elementwise", "gelu_tanh(x*w+b)", "the chain was not fused")]
    src = rng.standard_normal(4 * n).astype(np.float32)  # a copy of 4 arrays' worth of bytes
    dst = np.empty_like(src)
    tsrc, tdst = torch.from_numpy(src), torch.empty(4 * n)
    tx, tw, tb = (torch.from_numpy(t.numpy()) for t in (x, w, b))
    np.testing.assert_allclose(compiled(x, w, b).numpy(), torch.nn.functional.gelu(
        tx * tw + tb, approximate="tanh").numpy(), rtol=1e-5, atol=1e-6)
    warmup, repeat = (1, 1) if quick else (3, 11)
    times = compare({"compiled": lambda: compiled(x, w, b), "eager": lambda: _fn(x, w, b),
                     "torch": lambda: torch.nn.functional.gelu(tx * tw + tb, approximate="tanh"),
                     "copy": lambda: np.copyto(dst, src), "torch copy": lambda: tdst.copy_(tsrc)},
                    warmup=warmup, repeat=repeat)
    ms = {k: v * 1e3 for k, v in times.items()}
    fused_gbs = 4 * n * 4 / times["compiled"] / 1e9
    copy_gbs = 2 * src.nbytes / min(times["copy"], times["torch copy"]) / 1e9
    case = f"gelu_tanh(x*w+b), {n} x float32"
    return [Row("fused_elementwise", case + ": jit vs eager", "ms", ms["compiled"],
                {"eager": ms["eager"], "torch": ms["torch"]}, Target("eager", 1 / 3)),
            Row("fused_elementwise", case + ": bandwidth", "GB/s", fused_gbs, {"copy": copy_gbs},
                Target("copy", 0.7, higher_is_better=True))]
