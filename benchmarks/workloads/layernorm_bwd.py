"""Layer norm forward and backward on (64, 128, 256) float32: the gradients of ``sum(layer_norm(x) * g)``
with respect to the input, weight and bias, compiled with ``ember.jit`` (of ``ember.func.vjp``) and in
Ember eager mode, against PyTorch eager (``loss.backward()``) in the same run."""
from __future__ import annotations

import numpy as np
import torch

import ember
import ember.nn.functional as F
from ember.func import vjp

from ..harness import Row, Target, compare


def _ember_grads(x, w, b, g):
    out, pull = vjp(lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b), x, w, b)
    return pull(g)


def run(quick: bool = False) -> list[Row]:
    shape = (4, 8, 16) if quick else (64, 128, 256)
    rng = np.random.default_rng(0)
    xn, gn = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    wn, bn = (rng.standard_normal(shape[-1]).astype(np.float32) for _ in range(2))
    x, g, w, b = (ember.tensor(a) for a in (xn, gn, wn, bn))
    compiled = ember.jit(_ember_grads)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xn, wn, bn))
    tg = torch.tensor(gn)

    def torch_step():
        tx.grad = tw.grad = tb.grad = None
        (torch.nn.functional.layer_norm(tx, (shape[-1],), tw, tb) * tg).sum().backward()
        return tx.grad

    # Same numbers first: the compiled gradients against PyTorch's.
    got = compiled(x, w, b, g)
    torch_step()
    for mine, ref in zip(got, (tx.grad, tw.grad, tb.grad)):
        np.testing.assert_allclose(mine.numpy(), ref.numpy(), rtol=1e-3, atol=1e-3)
    warmup, repeat = (1, 1) if quick else (3, 11)
    times = compare({"compiled": lambda: compiled(x, w, b, g), "eager": lambda: _ember_grads(x, w, b, g),
                     "torch": torch_step}, warmup=warmup, repeat=repeat)
    ms = {k: v * 1e3 for k, v in times.items()}
    case = f"layer_norm fwd+bwd {shape} float32"
    return [Row("layernorm_bwd", case + ": jit vs torch", "ms", ms["compiled"],
                {"torch": ms["torch"], "eager": ms["eager"]}, Target("torch", 1.0))]
