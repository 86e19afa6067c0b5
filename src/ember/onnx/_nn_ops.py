"""ONNX convolution, pooling, normalisation and resizing operators, built on ``ember.nn.functional``.

ONNX gives padding as separate begin and end amounts (``pads = [b1, b2, ..., e1, e2, ...]``) or as
``auto_pad``; the functional ops take symmetric padding, so uneven padding is applied explicitly first.
"""
from __future__ import annotations

import math

import numpy as np

from .._core import creation
from .._core.primitives import elementwise as ew
from .._core.primitives import movement
from .._core.primitives import reduce as red
from .._core.tensor import Tensor
from ..nn import functional as F
from ._common import Attrs, UnsupportedOperatorError, opt, static, static_ints
from ._tensor_ops import _pad_pairs

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _spatial_rank(x: Tensor, attrs: Attrs, table: dict) -> int:
    nd = x.ndim - 2
    if nd not in table:
        raise attrs.error(f"only 1-d, 2-d and 3-d spatial inputs are supported, got shape {tuple(x.shape)}",
                          (x,), UnsupportedOperatorError)
    return nd


def _window_pads(x: Tensor, kernel, strides, dilations, attrs: Attrs) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial dim from ``pads`` or ``auto_pad``."""
    nd = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pairs = []
        for n, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small, large = total // 2, total - total // 2
            pairs.append((small, large) if auto == "SAME_UPPER" else (large, small))
        return pairs
    if auto == "VALID":
        return [(0, 0)] * nd
    pads = attrs.get("pads") or [0] * (2 * nd)
    return [(pads[i], pads[i + nd]) for i in range(nd)]


def _geometry(x: Tensor, kernel, attrs: Attrs):
    nd = len(kernel)
    strides = tuple(attrs.get("strides") or (1,) * nd)
    dilations = tuple(attrs.get("dilations") or (1,) * nd)
    return strides, dilations, _window_pads(x, kernel, strides, dilations, attrs)


def _explicit_pad(x: Tensor, pairs, value: float) -> Tensor:
    return _pad_pairs(x, [(0, 0), (0, 0)] + list(pairs), "constant", value, None)


# -- convolution ---------------------------------------------------------------------------------------
def conv_op(inputs, attrs: Attrs) -> Tensor:
    x, w, b = inputs[0], inputs[1], opt(inputs, 2)
    nd = _spatial_rank(x, attrs, _CONV)
    strides, dilations, pairs = _geometry(x, tuple(w.shape[2:]), attrs)
    if any(lo != hi for lo, hi in pairs):
        x, padding = _explicit_pad(x, pairs, 0.0), 0
    else:
        padding = tuple(lo for lo, _ in pairs)
    return _CONV[nd](x, w, b, stride=strides, padding=padding, dilation=dilations,
                     groups=attrs.get("group", 1))


def _transpose_pads(x: Tensor, kernel, strides, dilations, out_pad, attrs: Attrs):
    """(begin, end) amounts removed from the full transposed-convolution output, per spatial dim."""
    nd = len(kernel)
    full = [s * (n - 1) + op + (k - 1) * d + 1
            for n, k, s, d, op in zip(x.shape[2:], kernel, strides, dilations, out_pad)]
    target = attrs.get("output_shape")
    auto = attrs.get("auto_pad", "NOTSET")
    if target is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        target = [n * s for n, s in zip(x.shape[2:], strides)]
    if target is None:
        pads = attrs.get("pads") or [0] * (2 * nd)
        return [(0, 0)] * nd if auto == "VALID" else [(pads[i], pads[i + nd]) for i in range(nd)]
    target = list(target)[-nd:]
    pairs = []
    for f, t in zip(full, target):
        total = f - t
        small, large = total // 2, total - total // 2
        pairs.append((small, large) if auto == "SAME_UPPER" else (large, small))
    return pairs


def conv_transpose_op(inputs, attrs: Attrs) -> Tensor:
    x, w, b = inputs[0], inputs[1], opt(inputs, 2)
    nd = _spatial_rank(x, attrs, _CONV_T)
    kernel = tuple(w.shape[2:])
    strides = tuple(attrs.get("strides") or (1,) * nd)
    dilations = tuple(attrs.get("dilations") or (1,) * nd)
    out_pad = tuple(attrs.get("output_padding") or (0,) * nd)
    pairs = _transpose_pads(x, kernel, strides, dilations, out_pad, attrs)
    groups = attrs.get("group", 1)
    fits = all(lo == hi >= 0 and op < max(s, d)
               for (lo, hi), op, s, d in zip(pairs, out_pad, strides, dilations))
    if fits:
        return _CONV_T[nd](x, w, b, stride=strides, padding=tuple(lo for lo, _ in pairs),
                           output_padding=out_pad, groups=groups, dilation=dilations)
    # Uneven or negative amounts: compute the full output, then crop (or extend) each side, then add bias.
    full = _CONV_T[nd](x, w, None, stride=strides, padding=0, groups=groups, dilation=dilations)
    out = _explicit_pad(full, [(-lo, op - hi) for (lo, hi), op in zip(pairs, out_pad)], 0.0)
    if b is not None:
        out = out + movement.reshape(b, (-1,) + (1,) * nd)
    return out


# -- pooling -------------------------------------------------------------------------------------------
def _torch_padding(pairs, kernel, dilations) -> tuple[int, ...] | None:
    """Symmetric padding that the functional pools accept (at most half the window), else None."""
    if any(lo != hi or 2 * lo > d * (k - 1) + 1 for (lo, hi), k, d in zip(pairs, kernel, dilations)):
        return None
    return tuple(lo for lo, _ in pairs)


def max_pool_op(inputs, attrs: Attrs):
    x = inputs[0]
    nd = _spatial_rank(x, attrs, _MAX_POOL)
    if attrs.get("storage_order", 0):
        raise attrs.error("storage_order=1 (column-major indices) is not supported", (x,),
                          UnsupportedOperatorError)
    kernel = tuple(attrs["kernel_shape"])
    strides, dilations, pairs = _geometry(x, kernel, attrs)
    ceil = bool(attrs.get("ceil_mode", 0))
    padding = _torch_padding(pairs, kernel, dilations)
    if padding is None:
        x_in, padding = _explicit_pad(x, pairs, -math.inf), 0
    else:
        x_in = x
    want_index = attrs.n_outputs > 1
    out = _MAX_POOL[nd](x_in, kernel, strides, padding, dilations, ceil, return_indices=want_index)
    if not want_index:
        return out
    if x_in is not x:
        raise attrs.error("the Indices output with uneven padding is not supported", (x,),
                          UnsupportedOperatorError)
    values, index = out
    # ONNX indices count over the whole tensor (batch and channel included), not one plane.
    plane = math.prod(x.shape[2:])
    base = creation.arange(x.shape[0] * x.shape[1], device=x.device) * plane
    return values, index + movement.reshape(base, tuple(x.shape[:2]) + (1,) * nd)


def avg_pool_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    nd = _spatial_rank(x, attrs, _AVG_POOL)
    kernel = tuple(attrs["kernel_shape"])
    strides, dilations, pairs = _geometry(x, kernel, attrs)
    if any(d != 1 for d in dilations):
        raise attrs.error(f"dilations {dilations} are not supported", (x,), UnsupportedOperatorError)
    ceil, include = bool(attrs.get("ceil_mode", 0)), bool(attrs.get("count_include_pad", 0))
    padding = _torch_padding(pairs, kernel, dilations)
    if padding is not None:
        return _AVG_POOL[nd](x, kernel, strides, padding, ceil, include)
    sums = _AVG_POOL[nd](_explicit_pad(x, pairs, 0.0), kernel, strides, 0, ceil, True)
    if include:
        return sums
    ones = creation.ones(*((1, 1) + tuple(x.shape[2:])), dtype=x.dtype, device=x.device)
    return sums / _AVG_POOL[nd](_explicit_pad(ones, pairs, 0.0), kernel, strides, 0, ceil, True)


def global_pool(fn):
    """GlobalAveragePool / GlobalMaxPool: reduce every spatial dim, keeping it with size 1."""
    return lambda inputs, attrs: fn(inputs[0], tuple(range(2, inputs[0].ndim)), keepdim=True)


def lp_pool_op(inputs, attrs: Attrs) -> Tensor:
    x, p = inputs[0], attrs.get("p", 2)
    nd = _spatial_rank(x, attrs, _AVG_POOL)
    kernel = tuple(attrs["kernel_shape"])
    strides, dilations, pairs = _geometry(x, kernel, attrs)
    powered = _explicit_pad(ew.abs(x) ** p, pairs, 0.0)
    means = _AVG_POOL[nd](powered, kernel, strides, 0, bool(attrs.get("ceil_mode", 0)), True)
    return (means * math.prod(kernel)) ** (1.0 / p)


def global_lp_pool_op(inputs, attrs: Attrs) -> Tensor:
    x, p = inputs[0], attrs.get("p", 2)
    return red.sum(ew.abs(x) ** p, tuple(range(2, x.ndim)), keepdim=True) ** (1.0 / p)


# -- normalisation -------------------------------------------------------------------------------------
def _channels(v: Tensor, ndim: int) -> Tensor:
    return movement.reshape(v, (-1,) + (1,) * (ndim - 2))


def batch_norm_op(inputs, attrs: Attrs):
    x, scale, bias, mean, var = inputs[:5]
    eps = attrs.get("epsilon", 1e-5)
    if attrs.opset < 9 and not attrs.get("spatial", 1):
        raise attrs.error("spatial=0 (per-activation statistics) is not supported", (x,),
                          UnsupportedOperatorError)
    if not attrs.get("training_mode", 0):
        if attrs.opset < 7 and not attrs.get("is_test", 0) and attrs.n_outputs > 1:
            raise attrs.error("training outputs of opset < 7 are not supported", (x,),
                              UnsupportedOperatorError)
        return F.batch_norm(x, mean, var, scale, bias, training=False, eps=eps)
    axes = (0,) + tuple(range(2, x.ndim))
    batch_mean = red.mean(x, axes)
    centered = x - _channels(batch_mean, x.ndim)
    batch_var = red.mean(centered * centered, axes)
    y = centered * _channels(ew.rsqrt(batch_var + eps) * scale, x.ndim) + _channels(bias, x.ndim)
    if attrs.n_outputs == 1:
        return y
    momentum = attrs.get("momentum", 0.9)  # ONNX weighs the running value by momentum (PyTorch: 1 - momentum)
    return y, mean * momentum + batch_mean * (1 - momentum), var * momentum + batch_var * (1 - momentum)


def instance_norm_op(inputs, attrs: Attrs) -> Tensor:
    x, scale, bias = inputs
    return F.instance_norm(x, weight=scale, bias=bias, eps=attrs.get("epsilon", 1e-5))


def layer_norm_op(inputs, attrs: Attrs):
    x, scale, bias = inputs[0], inputs[1], opt(inputs, 2)
    axis = attrs.get("axis", -1)
    axis = axis + x.ndim if axis < 0 else axis
    eps = attrs.get("epsilon", 1e-5)
    axes = tuple(range(axis, x.ndim))
    mean = red.mean(x, axes, keepdim=True)
    centered = x - mean
    inv_std = ew.rsqrt(red.mean(centered * centered, axes, keepdim=True) + eps)
    y = centered * inv_std * scale
    if bias is not None:
        y = y + bias
    return (y, mean, inv_std)[:max(attrs.n_outputs, 1)] if attrs.n_outputs > 1 else y


def group_norm_op(inputs, attrs: Attrs) -> Tensor:
    x, scale, bias = inputs
    groups = attrs["num_groups"]
    channels = x.shape[1]
    if scale.shape[0] != channels:  # opset 18 gives one scale per group
        scale = movement.repeat_interleave(scale, channels // groups)
        bias = movement.repeat_interleave(bias, channels // groups)
    return F.group_norm(x, groups, scale, bias, eps=attrs.get("epsilon", 1e-5))


def lrn_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    size = attrs["size"]
    alpha, beta, bias = attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), attrs.get("bias", 1.0)
    channels = x.shape[1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    squares = _pad_pairs(x * x, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2), "constant", 0.0, attrs)
    window = movement.narrow(squares, 1, 0, channels)
    for i in range(1, size):
        window = window + movement.narrow(squares, 1, i, channels)
    return x / (bias + (alpha / size) * window) ** beta


def mean_variance_norm_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    axes = tuple(attrs.get("axes", (0, 2, 3)))
    centered = x - red.mean(x, axes, keepdim=True)
    return centered * ew.rsqrt(red.mean(centered * centered, axes, keepdim=True) + 1e-9)


# -- resizing ------------------------------------------------------------------------------------------
def _resize_sizes(x: Tensor, scales, sizes, attrs: Attrs) -> tuple[int, ...]:
    if sizes is not None and len(sizes):
        return tuple(int(s) for s in sizes)
    if scales is None or not len(scales):
        raise attrs.error("one of 'scales' and 'sizes' must be given", (x,))
    return tuple(int(math.floor(n * s)) for n, s in zip(x.shape, scales))


def _interpolate(x: Tensor, out: tuple[int, ...], mode: str, coord: str, nearest: str,
                 attrs: Attrs) -> Tensor:
    if tuple(out[:2]) != tuple(x.shape[:2]):
        raise attrs.error(f"only the spatial dimensions can be resized, got output sizes {out} for input "
                          f"shape {tuple(x.shape)}", (x,), UnsupportedOperatorError)
    if mode == "nearest" and coord == "asymmetric" and nearest == "floor":
        return F.interpolate(x, size=out[2:], mode="nearest")
    spatial = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(x.ndim - 2)
    if mode == "linear" and spatial and coord in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        if coord == "pytorch_half_pixel" and any(n == 1 for n in out[2:]):
            raise attrs.error("pytorch_half_pixel with an output size of 1 is not supported", (x,),
                              UnsupportedOperatorError)
        return F.interpolate(x, size=out[2:], mode=spatial, align_corners=coord == "align_corners")
    raise attrs.error(f"mode={mode!r} with coordinate_transformation_mode={coord!r} and nearest_mode="
                      f"{nearest!r} is not supported", (x,), UnsupportedOperatorError)


def resize_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    if attrs.opset < 11:
        scales, sizes = static(inputs[1], attrs, "scales"), None
    else:
        scale_in, size_in = opt(inputs, 2), opt(inputs, 3)
        scales = None if scale_in is None else static(scale_in, attrs, "scales")
        sizes = static_ints(size_in, attrs, "sizes")
    out = _resize_sizes(x, scales, sizes, attrs)
    coord = attrs.get("coordinate_transformation_mode", "half_pixel" if attrs.opset >= 11 else "asymmetric")
    nearest = attrs.get("nearest_mode", "round_prefer_floor" if attrs.opset >= 11 else "floor")
    return _interpolate(x, out, attrs.get("mode", "nearest"), coord, nearest, attrs)


def upsample_op(inputs, attrs: Attrs) -> Tensor:
    x = inputs[0]
    scales = attrs.get("scales") if attrs.opset < 9 else static(inputs[1], attrs, "scales")
    out = _resize_sizes(x, np.asarray(scales, dtype=np.float64), None, attrs)
    return _interpolate(x, out, attrs.get("mode", "nearest"), "asymmetric", "floor", attrs)
