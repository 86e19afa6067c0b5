"""ONNX elementwise, reduction and tensor-manipulation operators written with ember ops.

Each function takes ``(inputs, attrs)``: the node's inputs as tensors (None for absent optional ones)
and its :class:`Attrs`; it returns one tensor or a tuple of them. The table in ``ops.py`` names them.
"""
from __future__ import annotations

import math
from functools import reduce as _fold

import numpy as np

from .._core import creation, dtypes
from .._core.primitives import elementwise as ew
from .._core.primitives import indexing, linalg, movement
from .._core.primitives import reduce as red
from .._core.tensor import Tensor
from ..nn import functional as F
from ._common import (
    Attrs,
    UnsupportedOperatorError,
    axis_of,
    dtype_of,
    opt,
    static,
    static_ints,
    static_scalar,
)


def _is_int(x: Tensor) -> bool:
    return not (x.dtype.is_floating_point or x.dtype.is_complex)


def const(value, like: Tensor) -> Tensor:
    """`value` as a tensor of `like`'s dtype and device."""
    return creation.tensor(np.asarray(value), dtype=like.dtype, device=like.device)


# -- elementwise ---------------------------------------------------------------------------------------
def _legacy_broadcast(a: Tensor, b: Tensor, attrs: Attrs) -> Tensor:
    """Opsets before 7 align `b` with `a` starting at ``axis`` (``broadcast=1``) instead of at the end."""
    if attrs.opset >= 7 or not attrs.get("broadcast", 0) or "axis" not in attrs:
        return b
    axis = axis_of(attrs["axis"], a.ndim, attrs)
    trailing = a.ndim - axis - b.ndim
    return movement.reshape(b, tuple(b.shape) + (1,) * trailing) if trailing > 0 else b


def binary(fn):
    """An op rule applying `fn` to two broadcast inputs (with the legacy broadcast attributes)."""
    def rule(inputs, attrs: Attrs):
        a, b = inputs[0], inputs[1]
        return fn(a, _legacy_broadcast(a, b, attrs))
    return rule


def unary(fn):
    """An op rule applying `fn` to the one input."""
    return lambda inputs, attrs: fn(inputs[0])


def variadic(fn):
    """Max, Min, Sum: fold `fn` over any number of broadcast inputs."""
    return lambda inputs, attrs: _fold(fn, [x for x in inputs if x is not None])


def mean_op(inputs, attrs: Attrs) -> Tensor:
    xs = [x for x in inputs if x is not None]
    return _fold(ew.add, xs) / len(xs)


def div_op(a: Tensor, b: Tensor) -> Tensor:
    if _is_int(a) and _is_int(b):
        return ew.div(a, b, rounding_mode="trunc")
    return ew.div(a, b)


def pow_op(a: Tensor, b: Tensor) -> Tensor:
    out = ew.pow(a, b)
    return out if out.dtype == a.dtype else out.to(a.dtype)  # ONNX: the result has the base's type


def mod_op(inputs, attrs: Attrs) -> Tensor:
    a, b = inputs[0], inputs[1]
    if not attrs.get("fmod", 0):
        return ew.remainder(a, b)
    if _is_int(a):
        return a - b * ew.div(a, b, rounding_mode="trunc")
    return a - b * ew.trunc(a / b)


def clip_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    if attrs.opset < 11:
        lo, hi = attrs.get("min", -math.inf), attrs.get("max", math.inf)
        return ew.clamp(x, None if lo == -math.inf else lo, None if hi == math.inf else hi)
    return ew.clamp(x, opt(inputs, 1), opt(inputs, 2))


def prelu_op(inputs, attrs: Attrs) -> Tensor:
    x, slope = inputs
    # Opset 6 shares a 1-d slope along the channels (dimension 1); later opsets broadcast it numpy-style.
    if attrs.opset < 7 and slope.ndim == 1 and slope.shape[0] > 1 and x.ndim >= 2:
        slope = movement.reshape(slope, (slope.shape[0],) + (1,) * (x.ndim - 2))
    return ew.where(x < 0, x * slope, x)


def _selu(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    alpha = attrs.get("alpha", 1.67326319217681884765625)
    gamma = attrs.get("gamma", 1.05070102214813232421875)
    return gamma * ew.where(x > 0, x, alpha * ew.expm1(x))


def _elu(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    return ew.where(x > 0, x, attrs.get("alpha", 1.0) * ew.expm1(x))


def _celu(inputs, attrs: Attrs) -> Tensor:
    x, alpha = inputs[0], attrs.get("alpha", 1.0)
    return ew.maximum(x, 0.0 * x) + ew.minimum(0.0 * x, alpha * ew.expm1(x / alpha))


def _hard_sigmoid(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    return ew.clamp(attrs.get("alpha", 0.2) * x + attrs.get("beta", 0.5), 0.0, 1.0)


def _hard_swish(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    return x * ew.clamp(x / 6.0 + 0.5, 0.0, 1.0)


def _leaky_relu(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    return ew.where(x >= 0, x, attrs.get("alpha", 0.01) * x)


def _thresholded_relu(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    return ew.where(x > attrs.get("alpha", 1.0), x, 0.0 * x)


def _shrink(inputs, attrs: Attrs) -> Tensor:
    x, lambd, bias = inputs[0], attrs.get("lambd", 0.5), attrs.get("bias", 0.0)
    return ew.where(x < -lambd, x + bias, ew.where(x > lambd, x - bias, 0.0 * x))


def _gelu(inputs, attrs: Attrs) -> Tensor:
    return F.gelu(inputs[0], approximate=attrs.get("approximate", "none"))


def _mish(inputs, attrs: Attrs) -> Tensor:
    return inputs[0] * ew.tanh(ew.softplus(inputs[0]))


def _softsign(inputs, attrs: Attrs) -> Tensor:
    return inputs[0] / (ew.abs(inputs[0]) + 1.0)


def _is_inf(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    pos, neg = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    inf = ew.isinf(x)
    if pos and neg:
        return inf
    if not pos and not neg:
        return ew.logical_and(inf, ew.logical_not(inf))
    return ew.logical_and(inf, x > 0 if pos else x < 0)


def cast_op(inputs, attrs: Attrs) -> Tensor:
    return inputs[0].to(dtype_of(attrs["to"], attrs))


def cast_like_op(inputs, attrs: Attrs) -> Tensor:
    return inputs[0].to(inputs[1].dtype)


def where_op(inputs, attrs: Attrs) -> Tensor:
    return ew.where(inputs[0], inputs[1], inputs[2])


# -- matrix products -----------------------------------------------------------------------------------
def gemm_op(inputs, attrs: Attrs) -> Tensor:
    a, b, c = inputs[0], inputs[1], opt(inputs, 2)
    if attrs.get("transA", 0):
        a = movement.transpose(a, 0, 1)
    if attrs.get("transB", 0):
        b = movement.transpose(b, 0, 1)
    out = linalg.matmul(a, b)
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        out = out * alpha
    if c is not None and beta != 0.0:
        out = out + (c if beta == 1.0 else c * beta)
    return out


def matmul_op(inputs, attrs: Attrs) -> Tensor:
    return linalg.matmul(inputs[0], inputs[1])


def einsum_op(inputs, attrs: Attrs) -> Tensor:
    return linalg.einsum(attrs["equation"].replace(" ", ""), *inputs)


# -- reductions ----------------------------------------------------------------------------------------
def _reduce_axes(inputs, attrs: Attrs, input_since: int) -> tuple[int, ...] | None:
    """The reduced axes (None: leave the input as it is), from the attribute or the second input."""
    x = inputs[0]
    axes = static_ints(opt(inputs, 1), attrs, "axes") if attrs.opset >= input_since else attrs.get("axes")
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return None
        return tuple(range(x.ndim))
    return tuple(sorted({axis_of(a, x.ndim, attrs) for a in axes}))


def reduction(fn, input_since: int = 18):
    """A Reduce* rule: `fn(x, axes, keepdim)`; the axes moved from attribute to input at `input_since`."""
    def rule(inputs, attrs: Attrs):
        x = inputs[0]
        axes = _reduce_axes(inputs, attrs, input_since)
        if axes is None:
            return x
        return fn(x, axes, bool(attrs.get("keepdims", 1)))
    return rule


def _prod(x: Tensor, axes, keepdim: bool) -> Tensor:
    for a in reversed(axes):
        x = red.prod(x, a, keepdim=True)
    return x if keepdim else movement.reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


REDUCTIONS = {
    "ReduceSum": (red.sum, 13),
    "ReduceMean": (red.mean, 18),
    "ReduceMax": (red.amax, 18),
    "ReduceMin": (red.amin, 18),
    "ReduceProd": (_prod, 18),
    "ReduceL1": (lambda x, a, k: red.sum(ew.abs(x), a, keepdim=k), 18),
    "ReduceL2": (lambda x, a, k: ew.sqrt(red.sum(x * x, a, keepdim=k)), 18),
    "ReduceSumSquare": (lambda x, a, k: red.sum(x * x, a, keepdim=k), 18),
    "ReduceLogSum": (lambda x, a, k: ew.log(red.sum(x, a, keepdim=k)), 18),
    "ReduceLogSumExp": (lambda x, a, k: red.logsumexp(x, a, keepdim=k), 18),
}


def arg_reduce(largest: bool):
    """ArgMax / ArgMin with ``axis``, ``keepdims`` and ``select_last_index``."""
    def rule(inputs, attrs: Attrs):
        x = inputs[0]
        axis = axis_of(attrs.get("axis", 0), x.ndim, attrs)
        keep = bool(attrs.get("keepdims", 1))
        fn = red.argmax if largest else red.argmin
        if not attrs.get("select_last_index", 0):
            return fn(x, axis, keepdim=keep)
        return (x.shape[axis] - 1) - fn(movement.flip(x, axis), axis, keepdim=keep)
    return rule


def _coerced(fn, inputs, attrs: Attrs) -> Tensor:
    """Softmax-like ops: opsets before 13 flatten to 2-d at ``axis`` (default 1) and work on the rows."""
    x = inputs[0]
    if attrs.opset >= 13:
        return fn(x, axis_of(attrs.get("axis", -1), x.ndim, attrs))
    axis = axis_of(attrs.get("axis", 1), x.ndim, attrs) if x.ndim else 0
    rows = movement.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))
    return movement.reshape(fn(rows, 1), tuple(x.shape))


def _hardmax(x: Tensor, axis: int) -> Tensor:
    index = red.argmax(x, axis, keepdim=True)
    positions = movement.reshape(creation.arange(x.shape[axis], device=x.device),
                                 (-1,) + (1,) * (x.ndim - axis - 1))
    return ew.eq(positions, index).to(x.dtype)


def softmax_op(inputs, attrs):
    return _coerced(lambda x, d: F.softmax(x, d), inputs, attrs)


def log_softmax_op(inputs, attrs):
    return _coerced(lambda x, d: F.log_softmax(x, d), inputs, attrs)


def hardmax_op(inputs, attrs):
    return _coerced(_hardmax, inputs, attrs)


def cumsum_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    axis = axis_of(int(static_scalar(inputs[1], attrs, "axis")), x.ndim, attrs)
    reverse = attrs.get("reverse", 0)
    if reverse:
        x = movement.flip(x, axis)
    out = red.cumsum(x, axis)
    if attrs.get("exclusive", 0):
        out = out - x
    return movement.flip(out, axis) if reverse else out


def topk_op(inputs, attrs: Attrs):
    x = inputs[0]
    k = int(static_scalar(opt(inputs, 1), attrs, "K", attrs.get("k")))
    axis = axis_of(attrs.get("axis", -1), x.ndim, attrs)
    values, indices = indexing.topk(x, k, axis, largest=bool(attrs.get("largest", 1)),
                                    sorted=bool(attrs.get("sorted", 1)))
    return values, indices


# -- shapes and layout ---------------------------------------------------------------------------------
def reshape_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    shape = attrs.get("shape") if attrs.opset < 5 else static_ints(inputs[1], attrs, "shape")
    if not attrs.get("allowzero", 0):  # 0 copies the input's dimension
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return movement.reshape(x, tuple(shape))


def flatten_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        raise attrs.error(f"axis {attrs.get('axis', 1)} is out of range for rank {x.ndim}", (x,))
    return movement.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def transpose_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    perm = attrs.get("perm") or tuple(reversed(range(x.ndim)))
    return movement.permute(x, tuple(perm))


def _axes_arg(inputs, attrs: Attrs, since: int) -> list[int] | None:
    return static_ints(opt(inputs, 1), attrs, "axes") if attrs.opset >= since else attrs.get("axes")


def squeeze_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    axes = _axes_arg(inputs, attrs, 13)
    if axes is None:
        return movement.squeeze(x)
    axes = {axis_of(a, x.ndim, attrs) for a in axes}
    if any(x.shape[a] != 1 for a in axes):
        raise attrs.error(f"cannot squeeze axes {sorted(axes)} of shape {tuple(x.shape)}: not all have "
                          "size 1", (x,))
    return movement.reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


def unsqueeze_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    axes = _axes_arg(inputs, attrs, 13) or []
    rank = x.ndim + len(axes)
    shape = list(x.shape)
    for a in sorted(axis_of(a, rank, attrs) for a in axes):
        shape.insert(a, 1)
    return movement.reshape(x, tuple(shape))


def concat_op(inputs, attrs: Attrs) -> Tensor:
    xs = [x for x in inputs if x is not None]
    return movement.cat(xs, axis_of(attrs.get("axis", 0), xs[0].ndim, attrs))


def split_op(inputs, attrs: Attrs):
    x = inputs[0]
    axis = axis_of(attrs.get("axis", 0), x.ndim, attrs)
    sizes = static_ints(opt(inputs, 1), attrs, "split") if attrs.opset >= 13 else attrs.get("split")
    n = x.shape[axis]
    if not sizes:
        parts = attrs.get("num_outputs", attrs.n_outputs)
        chunk = -(-n // parts)
        sizes = [min(chunk, n - i * chunk) for i in range(parts)]
    if sum(sizes) != n:
        raise attrs.error(f"split sizes {list(sizes)} do not add up to dimension {axis} of shape "
                          f"{tuple(x.shape)}", (x,))
    return tuple(movement.split(x, list(sizes), axis))


def slice_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    if attrs.opset < 10:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = static_ints(inputs[1], attrs, "starts"), static_ints(inputs[2], attrs, "ends")
        axes, steps = static_ints(opt(inputs, 3), attrs, "axes"), static_ints(opt(inputs, 4), attrs, "steps")
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    key = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise attrs.error("slice steps must be non-zero", (x,))
        key[axis_of(a, x.ndim, attrs)] = slice(s, e, st)  # Python slices clamp as ONNX specifies
    return x[tuple(key)]


def _normalized_indices(index: Tensor, n: int) -> Tensor:
    return ew.where(index < 0, index + n, index)


def gather_op(inputs, attrs: Attrs) -> Tensor:
    x, index = inputs
    axis = axis_of(attrs.get("axis", 0), x.ndim, attrs)
    flat = movement.reshape(_normalized_indices(index, x.shape[axis]), (-1,))
    picked = indexing.index_select(x, axis, flat)
    return movement.reshape(picked, tuple(x.shape[:axis]) + tuple(index.shape) + tuple(x.shape[axis + 1:]))


def gather_elements_op(inputs, attrs: Attrs) -> Tensor:
    x, index = inputs
    axis = axis_of(attrs.get("axis", 0), x.ndim, attrs)
    return indexing.gather(x, axis, _normalized_indices(index, x.shape[axis]))


def gather_nd_op(inputs, attrs: Attrs) -> Tensor:
    x, index = inputs
    if attrs.get("batch_dims", 0):
        raise attrs.error("batch_dims other than 0 is not supported", (x,), UnsupportedOperatorError)
    k = index.shape[-1]
    parts = [_normalized_indices(movement.squeeze(movement.narrow(index, -1, i, 1), -1), x.shape[i])
             for i in range(k)]
    return x[tuple(parts)]


def scatter_elements_op(inputs, attrs: Attrs) -> Tensor:
    x, index, updates = inputs
    axis = axis_of(attrs.get("axis", 0), x.ndim, attrs)
    index = _normalized_indices(index, x.shape[axis])
    reduction_ = attrs.get("reduction", "none")
    if reduction_ == "none":
        return indexing.scatter(x, axis, index, updates)
    names = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}
    return indexing.scatter_reduce(x, axis, index, updates, names[reduction_])


def expand_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    shape = static_ints(inputs[1], attrs, "shape")
    return movement.broadcast_to(x, movement.broadcast_shapes(tuple(x.shape), tuple(shape)))


def tile_op(inputs, attrs: Attrs) -> Tensor:
    return movement.tile(inputs[0], tuple(static_ints(inputs[1], attrs, "repeats")))


def shape_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    dims = list(x.shape)[slice(attrs.get("start", 0), attrs.get("end"))]
    return creation.tensor(np.array(dims, dtype=np.int64), device=x.device)


def size_op(inputs, attrs: Attrs) -> Tensor:
    return creation.tensor(np.array(inputs[0].numel(), dtype=np.int64), device=inputs[0].device)


def constant_op(inputs, attrs: Attrs) -> Tensor:
    for key, kind in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                      ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return creation.tensor(np.asarray(attrs[key], dtype=kind))
    raise attrs.error(f"only dense values are supported, got attributes {sorted(attrs)}",
                      cls=UnsupportedOperatorError)


def constant_of_shape_op(inputs, attrs: Attrs) -> Tensor:
    shape = tuple(static_ints(inputs[0], attrs, "input"))
    value = attrs.get("value", np.zeros(1, np.float32))
    return creation.tensor(np.full(shape, value.reshape(-1)[0], dtype=value.dtype))


def range_op(inputs, attrs: Attrs) -> Tensor:
    names = ("start", "limit", "delta")
    start, limit, delta = (static(x, attrs, n).reshape(()) for x, n in zip(inputs, names))
    return creation.tensor(np.arange(start, limit, delta, dtype=start.dtype))


def _pad_pairs(x: Tensor, pairs, mode: str, value, attrs: Attrs) -> Tensor:
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if mode not in modes:
        raise attrs.error(f"pad mode {mode!r} is not supported", (x,), UnsupportedOperatorError)
    flat = [int(v) for lo_hi in reversed(pairs) for v in lo_hi]
    if modes[mode] == "constant":
        return movement.pad(x, flat, value=value)
    return movement.pad(x, flat, mode=modes[mode])


def pad_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    if attrs.opset < 11:
        pads, value, axes = list(attrs.get("pads", attrs.get("paddings"))), attrs.get("value", 0.0), None
    else:
        pads = static_ints(inputs[1], attrs, "pads")
        value = static_scalar(opt(inputs, 2), attrs, "constant_value", 0)
        axes = static_ints(opt(inputs, 3), attrs, "axes")
    axes = list(range(x.ndim)) if axes is None else [axis_of(a, x.ndim, attrs) for a in axes]
    if len(pads) != 2 * len(axes):
        raise attrs.error(f"pads {pads} must hold a begin and an end amount for each of {len(axes)} axes",
                          (x,))
    pairs = [(0, 0)] * x.ndim
    for i, a in enumerate(axes):
        pairs[a] = (pads[i], pads[i + len(axes)])
    return _pad_pairs(x, pairs, attrs.get("mode", "constant"), value, attrs)


def depth_to_space_op(inputs, attrs: Attrs) -> Tensor:
    x, b = inputs[0], attrs["blocksize"]
    n, c, h, w = x.shape
    if attrs.get("mode", "DCR") == "DCR":
        y = movement.permute(movement.reshape(x, (n, b, b, c // (b * b), h, w)), (0, 3, 4, 1, 5, 2))
    else:
        y = movement.permute(movement.reshape(x, (n, c // (b * b), b, b, h, w)), (0, 1, 4, 2, 5, 3))
    return movement.reshape(y, (n, c // (b * b), h * b, w * b))


def space_to_depth_op(inputs, attrs: Attrs) -> Tensor:
    x, b = inputs[0], attrs["blocksize"]
    n, c, h, w = x.shape
    y = movement.permute(movement.reshape(x, (n, c, h // b, b, w // b, b)), (0, 3, 5, 1, 2, 4))
    return movement.reshape(y, (n, c * b * b, h // b, w // b))


def trilu_op(inputs, attrs: Attrs) -> Tensor:
    k = int(static_scalar(opt(inputs, 1), attrs, "k", 0))
    return movement.triu(inputs[0], k) if attrs.get("upper", 1) else movement.tril(inputs[0], k)


def nonzero_op(inputs, attrs: Attrs) -> Tensor:
    return movement.transpose(indexing.nonzero(inputs[0]), 0, 1)


def one_hot_op(inputs, attrs: Attrs) -> Tensor:
    index, depth, values = inputs
    depth = int(static_scalar(depth, attrs, "depth"))
    axis = attrs.get("axis", -1)
    axis = axis + index.ndim + 1 if axis < 0 else axis
    index = movement.unsqueeze(_normalized_indices(index, depth), axis)
    positions = movement.reshape(creation.arange(depth, device=index.device),
                                 (-1,) + (1,) * (index.ndim - axis - 1))
    off, on = movement.narrow(values, 0, 0, 1), movement.narrow(values, 0, 1, 1)
    return ew.where(ew.eq(index.to(dtypes.int64), positions), on, off)


def identity_op(inputs, attrs: Attrs) -> Tensor:
    return inputs[0]


def dropout_op(inputs, attrs: Attrs):
    """Inference semantics (as ONNX runtimes use): the input unchanged and an all-true mask."""
    x = inputs[0]
    training = opt(inputs, 2)
    if training is not None and static_scalar(training, attrs, "training_mode"):
        ratio = float(static_scalar(opt(inputs, 1), attrs, "ratio", 0.5))
        return F.dropout(x, ratio, training=True)
    if attrs.n_outputs > 1:
        return x, creation.ones(*x.shape, dtype=dtypes.bool_, device=x.device)
    return x
