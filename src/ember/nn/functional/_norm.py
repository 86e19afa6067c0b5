"""Normalisation: layer, batch, instance, group and RMS norm.

``layer_norm`` is on the hot path of transformers, so its core (normalising over the trailing axes) is
a primitive with a fused NumPy kernel, ``normalize``. Its VJP is a second primitive, ``normalize_grad``,
with its own fused kernel; the VJP and JVP of that one are those of its decomposition in ember ops, so
every order of differentiation works. The Jacobian of the normalisation is symmetric, so the JVP of
``normalize`` is ``normalize_grad`` applied to the tangent. The other norms are compositions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..._core import dtypes
from ..._core.autograd import no_grad
from ..._core.dispatch import bind
from ..._core.errors import ShapeError
from ..._core.primitive import Primitive
from ..._core.primitives import elementwise as ew
from ..._core.primitives import movement, reduce
from ..._core.tensor import Tensor
from ...backends import CPU
from ...compiler.codegen import rows
from ._rules import decomposed_jvp, decomposed_vjp

__all__ = ["layer_norm", "batch_norm", "instance_norm", "group_norm", "rms_norm"]

_HALF_NP = (dtypes.float16.np, dtypes.bfloat16.np)


# -- the normalize primitive ----------------------------------------------------------------------
def _features(x, n: int) -> int:
    """The number of features: the product of the last `n` axes of `x`."""
    return int(np.prod(x.shape[x.ndim - n:])) if n else 1


def _rows(x, n: int):
    """`x` viewed as (rows, features), the features being its last `n` axes, in a float compute dtype."""
    x2 = x.reshape(-1, _features(x, n))
    return x2.astype(np.float32) if x2.dtype in _HALF_NP else x2


def _row_dot(xp, a, b):
    """Row-wise dot products of two (rows, features) arrays, as a (rows, 1) column (batched BLAS)."""
    return xp.matmul(a[:, None, :], b[:, :, None])[:, 0]


def _centered_rstd(xp, empty, x2, eps: float):
    """(x - mean, 1 / sqrt(var + eps)) over the rows of `x2`; the means are a BLAS matrix-vector product."""
    feat = max(x2.shape[1], 1)
    xc = xp.subtract(x2, (x2 @ xp.full(x2.shape[1], 1.0 / feat, dtype=x2.dtype))[:, None],
                     out=empty(x2.shape, x2.dtype))
    return xc, 1.0 / xp.sqrt(_row_dot(xp, xc, xc) / feat + eps)


def _normalize_kernel(xp, empty, x, n, eps):
    if x.size == 0:
        return x.copy()
    xc, rstd = _centered_rstd(xp, empty, _rows(x, n), eps)
    xc *= rstd
    return xc.reshape(x.shape).astype(x.dtype, copy=False)


def _normalize_grad_kernel(xp, empty, g, x, n, eps):
    # dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), written on x - mean to save a pass
    if x.size == 0:
        return xp.zeros_like(x)
    xc, rstd = _centered_rstd(xp, empty, _rows(x, n), eps)
    g2 = _rows(g, n)
    feat = max(g2.shape[1], 1)
    mean_g = (g2 @ xp.full(feat, 1.0 / feat, dtype=g2.dtype))[:, None]
    proj = _row_dot(xp, g2, xc) * (rstd * rstd / feat)
    out = xp.multiply(g2, rstd, out=empty(g2.shape, xc.dtype))
    out -= mean_g * rstd
    xc *= proj * rstd
    out -= xc
    return out.reshape(x.shape).astype(x.dtype, copy=False)


def _normalize_impl(xp, x, n, eps):
    return _normalize_kernel(xp, xp.empty, x, n, eps)


def _normalize_grad_impl(xp, g, x, n, eps):
    return _normalize_grad_kernel(xp, xp.empty, g, x, n, eps)


def _axes(x: Tensor, n: int) -> tuple[int, ...]:
    return tuple(range(x.ndim - n, x.ndim))


def _normalize_ref(x: Tensor, n: int, eps: float) -> Tensor:
    """The normalisation in ember ops (the decomposition of ``normalize``)."""
    axes = _axes(x, n)
    xc = x - reduce.mean(x, axes, keepdim=True)
    return xc * ew.rsqrt(reduce.mean(xc * xc, axes, keepdim=True) + eps)


def _normalize_grad_ref(g: Tensor, x: Tensor, n: int, eps: float) -> Tensor:
    """The VJP of the normalisation in ember ops (the decomposition of ``normalize_grad``)."""
    axes = _axes(x, n)
    xc = x - reduce.mean(x, axes, keepdim=True)
    rstd = ew.rsqrt(reduce.mean(xc * xc, axes, keepdim=True) + eps)
    xhat = xc * rstd
    proj = reduce.mean(g * xhat, axes, keepdim=True)
    return (g - reduce.mean(g, axes, keepdim=True) - xhat * proj) * rstd


def _to_front(v: Tensor, b: int | None, size: int) -> Tensor:
    if b is None:
        return movement.broadcast_to(movement.unsqueeze(v, 0), (size,) + tuple(v.shape))
    return movement.moveaxis(v, b, 0) if b != 0 else v


def _normalize_vjp(g, out, x, n, eps):
    return (bind(normalize_grad_p, g, x, n=n, eps=eps),)


def _normalize_jvp(primals, tangents, n, eps):
    x, t = primals[0], tangents[0]
    return bind(normalize_p, x, n=n, eps=eps), bind(normalize_grad_p, t, x, n=n, eps=eps)


def _normalize_batch(values, bdims, n, eps):
    return bind(normalize_p, _to_front(values[0], bdims[0], 0), n=n, eps=eps), 0


def _normalize_grad_batch(values, bdims, n, eps):
    size = next(v.shape[b] for v, b in zip(values, bdims) if b is not None)
    g, x = (_to_front(v, b, size) for v, b in zip(values, bdims))
    return bind(normalize_grad_p, g, x, n=n, eps=eps), 0


normalize_p = Primitive("normalize", _normalize_impl, vjp=_normalize_vjp, jvp=_normalize_jvp,
                        batch=_normalize_batch, decomp=_normalize_ref,
                        doc="(x - mean) / sqrt(var + eps) over the last n axes")
normalize_grad_p = Primitive("normalize_grad", _normalize_grad_impl, vjp=decomposed_vjp(_normalize_grad_ref),
                             jvp=decomposed_jvp(_normalize_grad_ref), batch=_normalize_grad_batch,
                             decomp=_normalize_grad_ref, doc="the VJP of normalize")


def _normalize_cpu(x, n, eps):
    """CPU kernel: the generated one-pass row kernel when it applies, else the NumPy kernel."""
    if x.size >= rows.MIN_ELEMENTS and n and rows.supported(x):
        out = CPU.pool.empty(x.shape, x.dtype)
        if rows.normalize(x, _features(x, n), eps, out):
            return out
    return _normalize_kernel(np, CPU.pool.empty, x, n, eps)


def _normalize_grad_cpu(g, x, n, eps):
    """CPU kernel of ``normalize_grad``, like :func:`_normalize_cpu`."""
    if x.size >= rows.MIN_ELEMENTS and n and rows.supported(g, x):
        out = CPU.pool.empty(x.shape, x.dtype)
        if rows.normalize_grad(g, x, _features(x, n), eps, out):
            return out
    return _normalize_grad_kernel(np, CPU.pool.empty, g, x, n, eps)


# On the CPU the large temporaries come from the backend's buffer pool (no fresh pages to fault in).
normalize_p.kernels["cpu"] = _normalize_cpu
normalize_grad_p.kernels["cpu"] = _normalize_grad_cpu


# -- layer norm backward pieces (bound by the compiler's norm-gradient pass) ---------------------------
# ``normalize_grad_scaled(g, x, w)`` is ``normalize_grad(g * w, x)`` (the input gradient of a layer norm
# with weight `w`) and ``norm_param_grads(g, x)`` is ``[sum(g * normalize(x)), sum(g)]`` over the rows
# (its weight and bias gradients), both one pass over `g` and `x` in generated row kernels. Their
# derivatives and batching rules are those of their decompositions.
def _feature_shape(x, n: int) -> tuple[int, ...]:
    return tuple(x.shape[x.ndim - n:])


def _scaled_ref(g: Tensor, x: Tensor, w: Tensor, n: int, eps: float) -> Tensor:
    return bind(normalize_grad_p, g * w, x, n=n, eps=eps)


def _param_grads_ref(g: Tensor, x: Tensor, n: int, eps: float, keep: int = 0) -> Tensor:
    """The decomposition; the first `keep` axes (batching) are not summed."""
    axes = tuple(range(keep, x.ndim - n))
    xhat = bind(normalize_p, x, n=n, eps=eps)
    return movement.stack([reduce.sum(g * xhat, axes), reduce.sum(g, axes)], keep)


def _scaled_impl(xp, g, x, w, n, eps):
    return _normalize_grad_kernel(xp, xp.empty, g * w, x, n, eps)


def _param_grads_impl(xp, g, x, n, eps):
    axes = tuple(range(x.ndim - n))
    return xp.stack([(g * _normalize_kernel(xp, xp.empty, x, n, eps)).sum(axes), g.sum(axes)]).astype(x.dtype)


def _scaled_cpu(g, x, w, n, eps):
    if x.size >= rows.MIN_ELEMENTS and n and rows.supported(g, x) and w.dtype == x.dtype:
        out = CPU.pool.empty(x.shape, x.dtype)
        if rows.normalize_grad_scaled(g, x, np.ascontiguousarray(w), eps, out):
            return out
    return _scaled_impl(np, g, x, w, n, eps)


def _param_grads_cpu(g, x, n, eps):
    if x.size >= rows.MIN_ELEMENTS and n and rows.supported(g, x):
        out = np.empty((2,) + _feature_shape(x, n), x.dtype)
        if rows.norm_param_grads(g, x, _features(x, n), eps, out):
            return out
    return _param_grads_impl(np, g, x, n, eps)


def _scaled_batch(values, bdims, n, eps):
    size = next(v.shape[b] for v, b in zip(values, bdims) if b is not None)
    g, x = (_to_front(v, b, size) for v, b in zip(values[:2], bdims[:2]))
    w, b = values[2], bdims[2]
    if b is None:
        return bind(normalize_grad_scaled_p, g, x, w, n=n, eps=eps), 0
    w = movement.moveaxis(w, b, 0) if b else w
    w = movement.reshape(w, (size,) + (1,) * (x.ndim - 1 - n) + tuple(w.shape[1:]))
    return bind(normalize_grad_p, g * w, x, n=n, eps=eps), 0


def _param_grads_batch(values, bdims, n, eps):
    size = next(v.shape[b] for v, b in zip(values, bdims) if b is not None)
    g, x = (_to_front(v, b, size) for v, b in zip(values, bdims))
    return _param_grads_ref(g, x, n, eps, keep=1), 0


normalize_grad_scaled_p = Primitive(
    "normalize_grad_scaled", _scaled_impl, vjp=decomposed_vjp(_scaled_ref), jvp=decomposed_jvp(_scaled_ref),
    batch=_scaled_batch, decomp=_scaled_ref, doc="normalize_grad(g * w, x): a layer norm's input gradient")
normalize_grad_scaled_p.kernels["cpu"] = _scaled_cpu
norm_param_grads_p = Primitive(
    "norm_param_grads", _param_grads_impl, vjp=decomposed_vjp(_param_grads_ref),
    jvp=decomposed_jvp(_param_grads_ref), batch=_param_grads_batch, decomp=_param_grads_ref,
    doc="[sum(g * normalize(x)), sum(g)] over the rows: a layer norm's weight and bias gradients")
norm_param_grads_p.kernels["cpu"] = _param_grads_cpu


def _normalize(x: Tensor, n: int, eps: float) -> Tensor:
    if not x.dtype.is_floating_point:
        x = ew.convert(x, dtypes.get_default_dtype())
    return bind(normalize_p, x, n=n, eps=float(eps))


# -- layer norm -----------------------------------------------------------------------------------
def _shape_tuple(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing `normalized_shape` dimensions, then scale and shift.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance.

    Args:
        input: tensor whose last dimensions equal `normalized_shape`.
        normalized_shape: the shape of the normalised trailing dimensions.
        weight, bias: optional tensors of shape `normalized_shape`.
        eps: added to the variance.

    Example:
        >>> F.layer_norm(ember.tensor([[1.0, 3.0]]), (2,), eps=0.0).tolist()
        [[-1.0, 1.0]]
    """
    shape = _shape_tuple(normalized_shape)
    n = len(shape)
    if tuple(input.shape[input.ndim - n:]) != shape or input.ndim < n:
        raise ShapeError("layer_norm", f"normalized_shape {shape} does not match the trailing dimensions "
                         f"of the input shape {tuple(input.shape)}", (input,))
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ShapeError("layer_norm", f"{name} has shape {tuple(p.shape)}, expected {shape}", (input, p))
    out = _normalize(input, n, eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def rms_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """``x / sqrt(mean(x², trailing dims) + eps) * weight``; `eps` None uses the dtype's machine epsilon.

    Example:
        >>> F.rms_norm(ember.tensor([[3.0, 4.0]]), (2,), eps=0.0).tolist()
        [[0.8485281467437744, 1.1313709020614624]]
    """
    shape = _shape_tuple(normalized_shape)
    n = len(shape)
    if tuple(input.shape[input.ndim - n:]) != shape or input.ndim < n:
        raise ShapeError("rms_norm", f"normalized_shape {shape} does not match the trailing dimensions "
                         f"of the input shape {tuple(input.shape)}", (input,))
    if eps is None:
        eps = float(np.finfo(input.dtype.np).eps)
    ms = reduce.mean(input * input, _axes(input, n), keepdim=True)
    out = input * ew.rsqrt(ms + eps)
    return out if weight is None else out * weight


# -- batch / instance / group norm ----------------------------------------------------------------
def _channel_view(p: Tensor, ndim: int) -> Tensor:
    """A per-channel tensor (C,) shaped to broadcast against (N, C, *)."""
    return movement.reshape(p, (p.shape[0],) + (1,) * (ndim - 2))


def _affine(out: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    if weight is not None:
        out = out * _channel_view(weight, out.ndim)
    if bias is not None:
        out = out + _channel_view(bias, out.ndim)
    return out


def _update_running(running: Tensor | None, stat: Tensor, momentum: float | Tensor) -> None:
    if running is None:
        return
    with no_grad():
        new = running * (1.0 - momentum) + ew.convert(stat.detach(), running.dtype) * momentum
        running.copy_(new)


def _check_channels(op: str, input: Tensor, tensors: dict) -> int:
    if input.ndim < 2:
        raise ShapeError(op, f"expected an input with at least 2 dimensions (N, C, ...), got shape "
                         f"{tuple(input.shape)}", (input,))
    c = input.shape[1]
    for name, t in tensors.items():
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(op, f"{name} has shape {tuple(t.shape)} but the input has {c} channels "
                             f"(input shape {tuple(input.shape)})", (input, t))
    return c


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dimension 1) over the batch and spatial dimensions.

    In training (or without running statistics) the batch statistics are used and, when given, the
    running statistics are updated in place: ``running = (1 - momentum) * running + momentum * stat``
    with the unbiased variance. Otherwise the running statistics normalise.

    Args:
        input: tensor of shape (N, C, *).
        running_mean, running_var: (C,) buffers or None.
        weight, bias: optional (C,) affine parameters.
        training: use and update batch statistics.
        momentum: weight of the new statistic in the running average.
        eps: added to the variance.

    Example:
        >>> F.batch_norm(ember.tensor([[1.0], [3.0]]), None, None, training=True, eps=0.0).tolist()
        [[-1.0], [1.0]]
    """
    _check_channels("batch_norm", input, {"running_mean": running_mean, "running_var": running_var,
                                          "weight": weight, "bias": bias})
    axes = (0,) + tuple(range(2, input.ndim))
    count = input.numel() // max(input.shape[1], 1)
    if training or running_mean is None or running_var is None:
        if training and count <= 1:
            raise ShapeError("batch_norm", f"expected more than 1 value per channel when training, got "
                             f"input shape {tuple(input.shape)}", (input,))
        mean = reduce.mean(input, axes, keepdim=True)
        xc = input - mean
        var = reduce.mean(xc * xc, axes, keepdim=True)
        out = xc * ew.rsqrt(var + eps)
        if training:
            flat_mean = movement.reshape(mean, (-1,))
            _update_running(running_mean, flat_mean, momentum)
            _update_running(running_var, movement.reshape(var, (-1,)) * (count / max(count - 1, 1)), momentum)
    else:
        rm = _channel_view(running_mean, input.ndim)
        rv = _channel_view(running_var, input.ndim)
        out = (input - rm) * ew.rsqrt(rv + eps)
    return _affine(out, weight, bias)


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each sample over its spatial dimensions.

    With running statistics and `use_input_stats`, they are updated with the batch mean of the
    per-instance statistics; without `use_input_stats` they normalise instead.

    Example:
        >>> F.instance_norm(ember.tensor([[[1.0, 3.0]]]), eps=0.0).tolist()
        [[[-1.0, 1.0]]]
    """
    _check_channels("instance_norm", input, {"running_mean": running_mean, "running_var": running_var,
                                             "weight": weight, "bias": bias})
    if input.ndim < 3:
        raise ShapeError("instance_norm", f"expected an input of shape (N, C, *spatial), got "
                         f"{tuple(input.shape)}", (input,))
    n, c = input.shape[0], input.shape[1]
    spatial = input.numel() // max(n * c, 1)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ShapeError("instance_norm", "use_input_stats=False needs running_mean and running_var",
                             (input,))
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    if spatial <= 1:
        raise ShapeError("instance_norm", f"expected more than 1 spatial element when training, got input "
                         f"shape {tuple(input.shape)}", (input,))
    flat = movement.reshape(input, (n, c, spatial))
    out = movement.reshape(_normalize(flat, 1, eps), input.shape)
    if running_mean is not None or running_var is not None:
        with no_grad():
            means = reduce.mean(flat, 2)
            variances = reduce.var(flat, 2, correction=1)
            _update_running(running_mean, reduce.mean(means, 0), momentum)
            _update_running(running_var, reduce.mean(variances, 0), momentum)
    return _affine(out, weight, bias)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over groups of channels (and the spatial dimensions) of each sample.

    Args:
        input: tensor of shape (N, C, *) with C divisible by `num_groups`.
        num_groups: number of channel groups.
        weight, bias: optional (C,) affine parameters.

    Example:
        >>> F.group_norm(ember.tensor([[1.0, 3.0]]), 1, eps=0.0).tolist()
        [[-1.0, 1.0]]
    """
    c = _check_channels("group_norm", input, {"weight": weight, "bias": bias})
    if num_groups <= 0 or c % num_groups:
        raise ShapeError("group_norm", f"expected the number of channels ({c}) to be divisible by "
                         f"num_groups ({num_groups})", (input,))
    n = input.shape[0]
    flat = movement.reshape(input, (n, num_groups, -1))
    out = movement.reshape(_normalize(flat, 1, eps), input.shape)
    return _affine(out, weight, bias)

