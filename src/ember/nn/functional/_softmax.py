"""The ``softmax`` and ``log_softmax`` primitives over the last axis, with generated row kernels on the CPU.

Attention weights and classifier outputs go through it. ``safe=True`` (attention) gives zeros for a row
with no finite entry (every key masked) instead of NaN. The VJP ``y * (g - sum(g * y))`` and the JVP
``y * (t - sum(y * t))`` are written in ember ops on ``y = softmax(x)``, so every order of
differentiation works; batching moves the batch axis to the front. ``log_softmax`` (the core of
cross-entropy) has the VJP ``g - exp(out) * sum(g)`` and the JVP ``t - sum(softmax(x) * t)``.
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
    if x.size >= rows.MIN_ELEMENTS and rows.supported(x):
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


def _log_softmax_numpy(xp, x):
    if x.size == 0:
        return x.copy()
    top = x.max(-1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        shifted = x - xp.where(xp.isfinite(top), top, 0)
        return (shifted - xp.log(xp.exp(shifted).sum(-1, keepdims=True))).astype(x.dtype, copy=False)


def _log_softmax_cpu(x):
    if x.size >= rows.MIN_ELEMENTS and rows.supported(x):
        out = CPU.pool.empty(x.shape, x.dtype)
        if rows.log_softmax(x, out):
            return out
    return _log_softmax_numpy(np, x)


def _log_softmax_ref(x: Tensor) -> Tensor:
    """The log-softmax in ember ops (the decomposition of the primitive)."""
    top = reduce.amax(x, -1, keepdim=True).detach()
    shifted = x - ew.where(ew.isfinite(top), top, 0.0)
    return shifted - ew.log(reduce.sum(ew.exp(shifted), -1, keepdim=True))


def _log_softmax_vjp(g, out, x):
    # exp(log_softmax(x)) rather than softmax(x): under jit the recomputation merges with the forward
    # node (CSE), so the backward reads the forward's output and the logits need not stay alive.
    return (g - ew.exp(bind(log_softmax_p, x)) * reduce.sum(g, -1, keepdim=True),)


def _log_softmax_jvp(primals, tangents):
    x, t = primals[0], tangents[0]
    y = bind(softmax_p, x, safe=False)
    return bind(log_softmax_p, x), t - reduce.sum(y * t, -1, keepdim=True)


def _log_softmax_batch(values, bdims):
    x, b = values[0], bdims[0]
    return bind(log_softmax_p, movement.moveaxis(x, b, 0) if b != 0 else x), 0


log_softmax_p = Primitive("log_softmax", _log_softmax_numpy, vjp=_log_softmax_vjp, jvp=_log_softmax_jvp,
                          batch=_log_softmax_batch, decomp=_log_softmax_ref,
                          doc="log-softmax over the last axis")
log_softmax_p.kernels["cpu"] = _log_softmax_cpu


def log_softmax_last(x: Tensor) -> Tensor:
    """Log-softmax over the last axis of floating-point `x`."""
    return bind(log_softmax_p, x)
