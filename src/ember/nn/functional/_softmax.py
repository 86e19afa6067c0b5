"""The ``softmax`` primitive: softmax over the last axis, with a generated one-pass row kernel on the CPU.

Attention weights and classifier outputs go through it. ``safe=True`` (attention) gives zeros for a row
with no finite entry (every key masked) instead of NaN. The VJP ``y * (g - sum(g * y))`` and the JVP
``y * (t - sum(y * t))`` are written in ember ops on ``y = softmax(x)``, so every order of
differentiation works; batching moves the batch axis to the front.
"""
from __future__ import annotations

import numpy as np

from ..._core.dispatch import bind
from ..._core.primitive import Primitive
from ..._core.primitives import elementwise as ew
from ..._core.primitives import movement, reduce
from ..._core.tensor import Tensor
from ...backends import CPU
from ...compiler.codegen import rows

_ROW_KERNEL_MIN = 4096  # elements; below this the NumPy passes are cheaper than the ctypes call


def _softmax_numpy(xp, x, safe):
    if x.size == 0:
        return x.copy()
    top = x.max(-1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        e = xp.exp(x - xp.where(xp.isfinite(top), top, 0))
        total = e.sum(-1, keepdims=True)
        if safe:
            total = xp.where(top == -np.inf, 1, total)
        return (e / total).astype(x.dtype, copy=False)


def _softmax_cpu(x, safe):
    if x.size >= _ROW_KERNEL_MIN and rows.supported(x):
        out = CPU.pool.empty(x.shape, x.dtype)
        if rows.softmax(x, safe, out):
            return out
    return _softmax_numpy(np, x, safe)


def _softmax_ref(x: Tensor, safe: bool) -> Tensor:
    """The softmax in ember ops (the decomposition of the primitive)."""
    top = reduce.amax(x, -1, keepdim=True).detach()
    e = ew.exp(x - ew.where(ew.isfinite(top), top, 0.0))
    total = reduce.sum(e, -1, keepdim=True)
    if safe:
        total = ew.where(top == float("-inf"), 1.0, total)
    return e / total


def _softmax_vjp(g, out, x, safe):
    y = bind(softmax_p, x, safe=safe)
    return ((g - reduce.sum(g * y, -1, keepdim=True)) * y,)


def _softmax_jvp(primals, tangents, safe):
    y = bind(softmax_p, primals[0], safe=safe)
    t = tangents[0]
    return y, y * (t - reduce.sum(y * t, -1, keepdim=True))


def _softmax_batch(values, bdims, safe):
    x, b = values[0], bdims[0]
    return bind(softmax_p, movement.moveaxis(x, b, 0) if b != 0 else x, safe=safe), 0


softmax_p = Primitive("softmax", _softmax_numpy, vjp=_softmax_vjp, jvp=_softmax_jvp, batch=_softmax_batch,
                      decomp=_softmax_ref, doc="softmax over the last axis (safe: all -inf rows give zeros)")
softmax_p.kernels["cpu"] = _softmax_cpu


def softmax_last(x: Tensor, safe: bool = False) -> Tensor:
    """Softmax over the last axis of floating-point `x` (with `safe`, all ``-inf`` rows give zeros)."""
    return bind(softmax_p, x, safe=bool(safe))
