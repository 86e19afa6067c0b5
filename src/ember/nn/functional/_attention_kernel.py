"""The ``attention`` primitive: ``softmax(q kᵀ · scale + mask) v`` as one operation.

``scaled_dot_product_attention`` binds it when no dropout is asked for: on the CPU a generated C kernel
(:mod:`ember.compiler.codegen.attention`) computes it without materialising the ``(L, S)`` weights.
Operands are ``q (..., L, E)``, ``k (..., S, E)``, ``v (..., S, Ev)`` with equal leading dimensions and an
optional additive float mask broadcastable to ``(..., L, S)``; attributes ``scale`` and ``causal`` (keys
``j <= i``, top-left aligned). A query row with no finite score gives zeros.

The VJP and JVP recompute the weights with ember ops (matmul and the ``softmax`` primitive) and are
themselves differentiable; batching moves the vmapped axis to the front of every operand.
"""
from __future__ import annotations

import numpy as np

from ..._core import creation, dtypes
from ..._core.dispatch import bind
from ..._core.primitive import Primitive
from ..._core.primitives import elementwise as ew
from ..._core.primitives import linalg, movement, reduce
from ..._core.tensor import Tensor
from ...backends import CPU
from ...compiler.codegen import attention as kernel
from ._rules import decomposed_jvp, decomposed_vjp
from ._softmax import softmax_last

_NEG_INF = float("-inf")


def positions(t: Tensor) -> Tensor:
    """0 .. L-1 for the second-to-last dim of `t`, derived from `t` so that tracing sees its length."""
    row = t[(0,) * (t.ndim - 2) + (slice(None), 0)]
    return reduce.cumsum(creation.ones_like(row, dtype=dtypes.int64), 0) - 1


def causal_mask(query: Tensor, key: Tensor) -> Tensor:
    """The top-left aligned lower triangle: query i sees keys j <= i."""
    return movement.unsqueeze(positions(query), -1) >= movement.unsqueeze(positions(key), 0)


# -- the reference (ember ops) and NumPy implementations ------------------------------------------------
def _weights(q: Tensor, k: Tensor, mask: tuple, scale: float, causal: bool) -> Tensor:
    """The attention weights ``softmax(q kᵀ · scale + mask)`` in ember ops."""
    scores = linalg.matmul(q, movement.transpose(k, -2, -1)) * scale
    if mask:
        scores = scores + mask[0]
    if causal:
        scores = ew.where(causal_mask(q, k), scores, _NEG_INF)
    return softmax_last(scores, safe=True)


def _attention_ref(q: Tensor, k: Tensor, v: Tensor, *mask: Tensor, scale: float, causal: bool) -> Tensor:
    """The primitive written with ember ops (its decomposition)."""
    return linalg.matmul(_weights(q, k, mask, scale, causal), v)


def _weights_numpy(xp, q, k, mask, scale, causal):
    """The attention weights with an array module (safe softmax: rows without a key give zeros)."""
    scores = xp.matmul(q, xp.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    if mask:
        scores = scores + mask[0]
    if causal:
        L, S = scores.shape[-2:]
        scores = xp.where(xp.tril(xp.ones((L, S), dtype=bool)), scores, -xp.inf)
    if scores.shape[-1] == 0:  # no key: no weights, and the output is zeros (as in PyTorch)
        return scores.astype(q.dtype, copy=False)
    top = scores.max(-1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        e = xp.exp(scores - xp.where(xp.isfinite(top), top, 0))
        return (e / xp.where(top == -xp.inf, 1, e.sum(-1, keepdims=True))).astype(q.dtype, copy=False)


def _attention_numpy(xp, q, k, v, *mask, scale, causal):
    return xp.matmul(_weights_numpy(xp, q, k, mask, scale, causal), v)


def _heads_last(q) -> bool:
    """True if `q` (N, H, L, E) is a transposed view of an (N, L, H, E) buffer (heads split by a reshape
    and a transpose, as multi-head attention does)."""
    return q.ndim == 4 and q.strides[3] == q.itemsize and q.strides[1] == q.shape[3] * q.itemsize \
        and q.strides[2] == q.shape[1] * q.shape[3] * q.itemsize


def _attention_cpu(q, k, v, *mask, scale, causal):
    m = mask[0] if mask else None
    if kernel.supported(q, k, v, m):
        shape = q.shape[:-1] + (v.shape[-1],)
        if _heads_last(q):  # the output follows the layout of q: transposing it back is then free
            out = CPU.pool.empty((shape[0], shape[2], shape[1], shape[3]), q.dtype).transpose(0, 2, 1, 3)
        else:
            out = CPU.pool.empty(shape, q.dtype)
        if kernel.attention(q, k, v, m, scale, causal, out):
            return out
    return _attention_numpy(np, q, k, v, *mask, scale=scale, causal=causal)


def _attention_abstract(q, k, v, *mask, scale, causal):
    (qs, dt), (vs, _) = q, v
    return tuple(qs[:-1]) + (vs[-1],), dt


# -- the backward primitive: dq, dk and dv in one pass -------------------------------------------------
def _split_grads(packed: Tensor, q: Tensor, k: Tensor, v: Tensor) -> tuple:
    """(dq, dk, dv) from the packed ``lead + (L·E + S·E + S·Ev,)`` gradients."""
    lead = tuple(q.shape[:-2])
    sizes = [q.shape[-2] * q.shape[-1], k.shape[-2] * k.shape[-1], v.shape[-2] * v.shape[-1]]
    parts, start = [], 0
    for size, like in zip(sizes, (q, k, v)):
        part = movement.narrow(packed, -1, start, size)
        parts.append(movement.reshape(part, lead + tuple(like.shape[-2:])))
        start += size
    return tuple(parts)


def _grads_and_ds(g, q, k, v, mask: tuple, scale: float, causal: bool) -> tuple:
    """(dq, dk, dv, dS) in ember ops, with the weights recomputed."""
    p = _weights(q, k, mask, scale, causal)
    dv = linalg.matmul(movement.transpose(p, -2, -1), g)
    dp = linalg.matmul(g, movement.transpose(v, -2, -1))
    ds = (dp - reduce.sum(dp * p, -1, keepdim=True)) * p
    dq = linalg.matmul(ds, k) * scale
    dk = linalg.matmul(movement.transpose(ds, -2, -1), q) * scale
    return dq, dk, dv, ds


def _grads_ref(g, out, q, k, v, *mask, scale, causal):
    """The packed gradients in ember ops (the decomposition of ``attention_grad``)."""
    lead = tuple(q.shape[:-2])
    grads = _grads_and_ds(g, q, k, v, mask, scale, causal)[:3]
    return movement.cat([movement.reshape(d, lead + (-1,)) for d in grads], -1)


def _grads_numpy(xp, g, out, q, k, v, *mask, scale, causal):
    p = _weights_numpy(xp, q, k, mask, scale, causal)
    dv = xp.matmul(xp.swapaxes(p, -1, -2), g)
    dp = xp.matmul(g, xp.swapaxes(v, -1, -2))
    ds = (dp - (dp * p).sum(-1, keepdims=True)) * p
    dq = xp.matmul(ds, k) * scale
    dk = xp.matmul(xp.swapaxes(ds, -1, -2), q) * scale
    lead = q.shape[:-2]
    return xp.concatenate([d.reshape(lead + (-1,)) for d in (dq, dk, dv)], -1).astype(q.dtype, copy=False)


def _grads_cpu(g, out, q, k, v, *mask, scale, causal):
    m = mask[0] if mask else None
    if kernel.supported(q, k, v, m) and g.dtype == out.dtype == q.dtype:
        lead = q.shape[:-2]
        size = q.shape[-2] * q.shape[-1] + k.shape[-2] * k.shape[-1] + v.shape[-2] * v.shape[-1]
        packed = CPU.pool.empty(lead + (size,), q.dtype)
        if kernel.attention_grad(q, k, v, m, g, out, scale, causal, packed):
            return packed
    return _grads_numpy(np, g, out, q, k, v, *mask, scale=scale, causal=causal)


def _grads_abstract(g, out, q, k, v, *mask, scale, causal):
    (qs, dt), (ks, _), (vs, _) = q, k, v
    return tuple(qs[:-2]) + (qs[-2] * qs[-1] + ks[-2] * ks[-1] + vs[-2] * vs[-1],), dt


def _grads_batch(values, bdims, scale, causal):
    size = next(x.shape[b] for x, b in zip(values, bdims) if b is not None)
    moved = [movement.moveaxis(x, b, 0) if b is not None else
             movement.broadcast_to(movement.unsqueeze(x, 0), (size,) + tuple(x.shape))
             for x, b in zip(values[:5], bdims[:5])]
    if len(values) == 6:
        rank = values[2].ndim - (bdims[2] is not None)
        moved.append(_batched_mask(values[5], bdims[5], size, rank))
    return bind(attention_grad_p, *moved, scale=scale, causal=causal), 0


attention_grad_p = Primitive("attention_grad", _grads_numpy, abstract=_grads_abstract,
                             vjp=decomposed_vjp(_grads_ref), jvp=decomposed_jvp(_grads_ref),
                             batch=_grads_batch, decomp=_grads_ref,
                             doc="the gradients of attention w.r.t. q, k and v, packed per batch entry")
attention_grad_p.kernels["cpu"] = _grads_cpu


# -- derivatives and batching ---------------------------------------------------------------------------
def _attention_vjp(g, out, q, k, v, *mask, scale, causal):
    mask_grad = bool(mask) and isinstance(mask[0], Tensor) and mask[0]._requires_grad
    if not mask_grad and g.dtype is q.dtype:  # one fused backward pass (the mask's gradient needs dS)
        packed = bind(attention_grad_p, g, out, q, k, v, *mask, scale=scale, causal=causal)
        return _split_grads(packed, q, k, v) + (None,) * len(mask)
    dq, dk, dv, ds = _grads_and_ds(g, q, k, v, mask, scale, causal)
    return (dq, dk, dv) + ((reduce.sum_to_shape(ds, mask[0].shape),) if mask else ())


def _attention_jvp(primals, tangents, scale, causal):
    q, k, v, *mask = primals
    tq, tk, tv, *tmask = tangents
    p = _weights(q, k, tuple(mask), scale, causal)
    out = linalg.matmul(p, v)
    ds = None
    if tq is not None:
        ds = linalg.matmul(tq, movement.transpose(k, -2, -1)) * scale
    if tk is not None:
        term = linalg.matmul(q, movement.transpose(tk, -2, -1)) * scale
        ds = term if ds is None else ds + term
    if tmask and tmask[0] is not None:
        ds = tmask[0] if ds is None else ds + tmask[0]
    tout = None
    if ds is not None:
        dp = (ds - reduce.sum(p * ds, -1, keepdim=True)) * p
        tout = linalg.matmul(dp, v)
    if tv is not None:
        term = linalg.matmul(p, tv)
        tout = term if tout is None else tout + term
    if tout is None:
        tout = creation.zeros_like(out)
    return out, tout


def _attention_batch(values, bdims, scale, causal):
    size = next(x.shape[b] for x, b in zip(values, bdims) if b is not None)
    rank = values[0].ndim - (bdims[0] is not None)  # the unbatched rank of q (and of k and v)
    moved = []
    for x, b in zip(values[:3], bdims[:3]):
        if b is None:
            x = movement.broadcast_to(movement.unsqueeze(x, 0), (size,) + tuple(x.shape))
        elif b != 0:
            x = movement.moveaxis(x, b, 0)
        moved.append(x)
    if len(values) == 4:
        moved.append(_batched_mask(values[3], bdims[3], size, rank))
    return bind(attention_p, *moved, scale=scale, causal=causal), 0


def _batched_mask(m: Tensor, b: int | None, size: int, rank: int) -> Tensor:
    """A mask with its batch axis (if any) in front and ones padding it to the batched operands' rank."""
    if b is None:
        return movement.reshape(m, (1,) * (rank + 1 - m.ndim) + tuple(m.shape))
    m = movement.moveaxis(m, b, 0) if b != 0 else m
    return movement.reshape(m, (size,) + (1,) * (rank + 1 - m.ndim) + tuple(m.shape[1:]))


attention_p = Primitive("attention", _attention_numpy, abstract=_attention_abstract, vjp=_attention_vjp,
                        jvp=_attention_jvp, batch=_attention_batch, decomp=_attention_ref,
                        doc="softmax(q k^T * scale + mask) v; causal keeps keys j <= i")
attention_p.kernels["cpu"] = _attention_cpu


def fused_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float,
                    causal: bool) -> Tensor | None:
    """``softmax(q kᵀ · scale + mask) v`` through the primitive, or None where it does not apply.

    It applies to float32/float64 operands of one dtype with equal leading dimensions and a mask (bool:
    True = may attend; or float of the same dtype) of at most their rank; anything else is left to the
    caller's composition.
    """
    if q.dtype not in (dtypes.float32, dtypes.float64) or not q.dtype is k.dtype is v.dtype:
        return None
    if not tuple(q.shape[:-2]) == tuple(k.shape[:-2]) == tuple(v.shape[:-2]):
        return None
    operands = (q, k, v)
    if mask is not None:
        if mask.ndim > q.ndim:
            return None
        if mask.dtype.kind == dtypes._BOOL:
            mask = ew.convert(ew.where(mask, 0.0, _NEG_INF), q.dtype)
        elif mask.dtype is not q.dtype:
            return None
        operands += (mask,)
    return bind(attention_p, *operands, scale=float(scale), causal=bool(causal))
