"""Convolution and pooling with PyTorch's functional names and signatures.

Convolutions and window pooling bind the primitives of ``ember._core.primitives.conv``; adaptive
average pooling is a product with per-dimension bin-averaging matrices, and adaptive max pooling
reduces one spatial dimension at a time (the first maximum of a rectangle in row-major order is the
first row holding the maximum, at that row's first maximum, so the separable reduction picks the same
element as PyTorch).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..._core import creation
from ..._core.dispatch import bind
from ..._core.errors import DTypeError, ShapeError
from ..._core.primitives import conv as cp
from ..._core.primitives import indexing, linalg, movement, reduce
from ..._core.tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "adaptive_max_pool3d", "unfold", "fold", "same_padding"]


# -- argument normalisation --------------------------------------------------------------------------
def _tuple(value, nd: int, name: str, op: str) -> tuple[int, ...]:
    """An int or a sequence of `nd` ints as a tuple of `nd` ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * nd
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * nd
    if len(value) != nd:
        raise ShapeError(op, f"{name} must be an int or a tuple of {nd} ints, got {value}")
    return value


def same_padding(kernel: Sequence[int], dilation: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """The (low, high) padding per dim that keeps the size at stride 1; the extra element goes high.

    Example:
        >>> same_padding((4,), (1,))
        ((1, 2),)
    """
    pairs = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def _batched(op: str, x: Tensor, nd: int) -> tuple[Tensor, bool]:
    """`x` with a batch dim (added for an unbatched input) and whether one was added."""
    if x.ndim == nd + 1:
        return movement.unsqueeze(x, 0), True
    if x.ndim != nd + 2:
        raise ShapeError(op, f"expected a {nd + 1}-d (unbatched) or {nd + 2}-d (batched) input, got shape "
                         f"{tuple(x.shape)}", (x,))
    return x, False


def _unbatched(out: Tensor, squeeze: bool) -> Tensor:
    return movement.squeeze(out, 0) if squeeze else out


def _check_float(op: str, *tensors: Tensor) -> None:
    first = tensors[0]
    for t in tensors:
        if not t.dtype.is_floating_point:
            raise DTypeError(op, f"expected floating point tensors, got {t.dtype}", tensors)
        if t.dtype is not first.dtype:
            raise DTypeError(op, f"input type ({first.dtype}) and weight type ({t.dtype}) should be the same",
                             tensors)


def _check_weight(op: str, x: Tensor, w: Tensor, nd: int, groups: int, transposed: bool) -> None:
    if w.ndim != nd + 2:
        raise ShapeError(op, f"expected a {nd + 2}-d weight, got weight of shape {tuple(w.shape)}", (x, w))
    if groups < 1:
        raise ShapeError(op, f"groups must be a positive integer, got {groups}", (x, w))
    expected = w.shape[0] if transposed else w.shape[1] * groups
    if x.shape[1] != expected:
        raise ShapeError(op, f"expected input of shape {tuple(x.shape)} to have {expected} channels for "
                         f"weight of shape {tuple(w.shape)} and groups={groups}, but it has {x.shape[1]}",
                         (x, w))
    if w.shape[0] % groups:
        raise ShapeError(op, f"weight of shape {tuple(w.shape)}: {w.shape[0]} channels are not divisible "
                         f"by groups={groups}", (x, w))


def _add_bias(op: str, out: Tensor, bias: Tensor | None, nd: int) -> Tensor:
    if bias is None:
        return out
    if tuple(bias.shape) != (out.shape[1],):
        raise ShapeError(op, f"expected a bias of shape ({out.shape[1]},), got {tuple(bias.shape)}",
                         (out, bias))
    return out + movement.reshape(bias, (1, out.shape[1]) + (1,) * nd)


def _conv_padding(op: str, padding, kernel, stride, dilation, nd: int):
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding != "same":
            raise ShapeError(op, f"padding must be 'valid', 'same', an int or a tuple of ints, got "
                             f"{padding!r}")
        if any(s != 1 for s in stride):
            raise ShapeError(op, f"padding='same' is not supported for strided convolutions "
                             f"(stride={stride})")
        return same_padding(kernel, dilation)
    pad = _tuple(padding, nd, "padding", op)
    if any(p < 0 for p in pad):
        raise ShapeError(op, f"padding must be non-negative, got {pad}")
    return tuple((p, p) for p in pad)


def _check_window(op: str, x: Tensor, w: Tensor | None, spatial, kernel, padding, dilation) -> None:
    for n, k, (lo, hi), d in zip(spatial, kernel, padding, dilation):
        if n + lo + hi < d * (k - 1) + 1:
            shapes = f"input of shape {tuple(x.shape)}"
            if w is not None:
                shapes += f" and weight of shape {tuple(w.shape)}"
            raise ShapeError(op, f"{shapes}: the (dilated) kernel size {d * (k - 1) + 1} can't be greater "
                             f"than the padded input size {n + lo + hi}", (x,) if w is None else (x, w))


# -- convolution -------------------------------------------------------------------------------------
def _conv(op: str, nd: int, input: Tensor, weight: Tensor, bias, stride, padding, dilation, groups) -> Tensor:
    x, squeeze = _batched(op, input, nd)
    _check_float(op, x, weight)
    _check_weight(op, x, weight, nd, int(groups), transposed=False)
    kernel = tuple(weight.shape[2:])
    stride, dilation = _tuple(stride, nd, "stride", op), _tuple(dilation, nd, "dilation", op)
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ShapeError(op, f"stride {stride} and dilation {dilation} must be positive", (x, weight))
    pads = _conv_padding(op, padding, kernel, stride, dilation, nd)
    _check_window(op, x, weight, x.shape[2:], kernel, pads, dilation)
    out = cp.conv_general(x, weight, stride, pads, dilation, int(groups))
    return _unbatched(_add_bias(op, out, bias, nd), squeeze)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-d cross-correlation, as ``torch.nn.functional.conv1d``.

    Args:
        input: (N, C_in, L) or unbatched (C_in, L).
        weight: (C_out, C_in / groups, k).
        bias: optional (C_out,).
        stride, dilation: int or 1-tuple.
        padding: int, 1-tuple, 'valid' (none) or 'same' (output length = input length; the odd extra
            element of padding goes at the end, as PyTorch does).
        groups: split input and output channels into this many independent groups.

    Returns:
        (N, C_out, L_out) with ``L_out = (L + 2·padding - dilation·(k-1) - 1) // stride + 1``.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.conv1d(ember.ones(1, 1, 5), ember.ones(1, 1, 3)).tolist()
        [[[3.0, 3.0, 3.0]]]
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-d cross-correlation, as ``torch.nn.functional.conv2d``.

    Args:
        input: (N, C_in, H, W) or unbatched (C_in, H, W).
        weight: (C_out, C_in / groups, kH, kW).
        bias: optional (C_out,).
        stride, dilation: int or pair.
        padding: int, pair, 'valid' or 'same' (see :func:`conv1d`).
        groups: number of channel groups (``groups = C_in`` with ``C_out = k·C_in`` is depthwise).

    Returns:
        (N, C_out, H_out, W_out).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.conv2d(ember.ones(1, 2, 4, 4), ember.ones(3, 2, 3, 3), padding=1).shape
        (1, 3, 4, 4)
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """3-d cross-correlation, as ``torch.nn.functional.conv3d``.

    Args:
        input: (N, C_in, D, H, W) or unbatched (C_in, D, H, W).
        weight: (C_out, C_in / groups, kD, kH, kW).
        bias, stride, padding, dilation, groups: as in :func:`conv2d`, with triples.

    Returns:
        (N, C_out, D_out, H_out, W_out).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.conv3d(ember.ones(1, 1, 3, 3, 3), ember.ones(2, 1, 2, 2, 2)).shape
        (1, 2, 2, 2, 2)
    """
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(op: str, nd: int, input: Tensor, weight: Tensor, bias, stride, padding, output_padding,
                    groups, dilation) -> Tensor:
    x, squeeze = _batched(op, input, nd)
    _check_float(op, x, weight)
    _check_weight(op, x, weight, nd, int(groups), transposed=True)
    kernel = tuple(weight.shape[2:])
    stride, dilation = _tuple(stride, nd, "stride", op), _tuple(dilation, nd, "dilation", op)
    pad, out_pad = _tuple(padding, nd, "padding", op), _tuple(output_padding, nd, "output_padding", op)
    for s, d, p in zip(stride, dilation, out_pad):
        if not 0 <= p < max(s, d):
            raise ShapeError(op, f"output_padding {out_pad} must be smaller than stride {stride} or dilation "
                             f"{dilation}", (x, weight))
    out_sp = tuple((n - 1) * s - 2 * p + d * (k - 1) + op_ + 1
                   for n, s, p, d, k, op_ in zip(x.shape[2:], stride, pad, dilation, kernel, out_pad))
    if any(n <= 0 for n in out_sp) or any(p < 0 for p in pad):
        raise ShapeError(op, f"input of shape {tuple(x.shape)} and weight of shape {tuple(weight.shape)} "
                         f"give a non-positive output size {out_sp}", (x, weight))
    pairs = tuple((p, p) for p in pad)
    out = cp.conv_transpose_general(x, weight, out_sp, stride, pairs, dilation, int(groups))
    return _unbatched(_add_bias(op, out, bias, nd), squeeze)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """1-d transposed convolution (the gradient of :func:`conv1d` in its input), as PyTorch's.

    Args:
        input: (N, C_in, L) or unbatched (C_in, L).
        weight: (C_in, C_out / groups, k).
        bias: optional (C_out,).
        stride, padding, dilation: those of the convolution being transposed.
        output_padding: extra length added at the end of the output (< stride or dilation).
        groups: number of channel groups.

    Returns:
        (N, C_out, L_out), ``L_out = (L-1)·stride - 2·padding + dilation·(k-1) + output_padding + 1``.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.conv_transpose1d(ember.ones(1, 1, 3), ember.ones(1, 1, 2)).tolist()
        [[[1.0, 2.0, 2.0, 1.0]]]
    """
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding,
                           groups, dilation)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-d transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    Args and Returns as in :func:`conv_transpose1d`, with pairs and (N, C, H, W) tensors.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.conv_transpose2d(ember.ones(1, 4, 3, 3), ember.ones(4, 2, 3, 3), stride=2, padding=1,
        ...                    output_padding=1).shape
        (1, 2, 6, 6)
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding,
                           groups, dilation)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """3-d transposed convolution, as ``torch.nn.functional.conv_transpose3d``.

    Args and Returns as in :func:`conv_transpose1d`, with triples and (N, C, D, H, W) tensors.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.conv_transpose3d(ember.ones(1, 1, 2, 2, 2), ember.ones(1, 1, 2, 2, 2)).shape
        (1, 1, 3, 3, 3)
    """
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding,
                           groups, dilation)


# -- window pooling ----------------------------------------------------------------------------------
def _pool_geometry(op: str, x: Tensor, nd: int, kernel_size, stride, padding, dilation, ceil_mode: bool):
    """Kernel, stride, dilation, (low, high) padding that yields PyTorch's output size, and that size."""
    kernel = _tuple(kernel_size, nd, "kernel_size", op)
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        _tuple(stride, nd, "stride", op)
    pad, dilation = _tuple(padding, nd, "padding", op), _tuple(dilation, nd, "dilation", op)
    if any(k < 1 for k in kernel) or any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ShapeError(op, f"kernel_size {kernel}, stride {stride} and dilation {dilation} must be "
                         "positive", (x,))
    if any(p < 0 or 2 * p > d * (k - 1) + 1 for p, k, d in zip(pad, kernel, dilation)):
        raise ShapeError(op, f"padding {pad} should be non-negative and at most half of the effective "
                         f"kernel size (kernel_size {kernel}, dilation {dilation})", (x,))
    pairs, out_sp = [], []
    for n, k, s, p, d in zip(x.shape[-nd:], kernel, stride, pad, dilation):
        span = n + 2 * p - d * (k - 1) - 1
        if span < 0:
            raise ShapeError(op, f"input of shape {tuple(x.shape)} is too small for kernel_size {kernel} "
                             f"with padding {pad} and dilation {dilation}", (x,))
        m = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (m - 1) * s >= n + p:  # the last window must start inside the input or left pad
            m -= 1
        pairs.append((p, max((m - 1) * s + d * (k - 1) + 1 - n - p, 0)))
        out_sp.append(m)
    return kernel, stride, dilation, tuple(pairs), tuple(out_sp)


def _pool_input(op: str, input: Tensor, nd: int) -> Tensor:
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(op, f"expected a {nd + 1}-d (unbatched) or {nd + 2}-d (batched) input, got shape "
                         f"{tuple(input.shape)}", (input,))
    if any(s == 0 for s in input.shape[-nd:]):
        raise ShapeError(op, f"expected non-empty spatial dimensions, got shape {tuple(input.shape)}",
                         (input,))
    return input


def _pad_spatial(x: Tensor, pairs, value) -> Tensor:
    if all(lo == 0 and hi == 0 for lo, hi in pairs):
        return x
    flat = [v for lo_hi in reversed(pairs) for v in lo_hi]
    return movement.pad(x, flat, value=value)


def _max_pool(op: str, nd: int, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x = _pool_input(op, input, nd)
    if not x.dtype.is_floating_point:
        raise DTypeError(op, f"expected a floating point input, got {x.dtype}", (x,))
    kernel, stride, dilation, pairs, _ = _pool_geometry(op, x, nd, kernel_size, stride, padding, dilation,
                                                        ceil_mode)
    attrs = dict(kernel=kernel, stride=stride, dilation=dilation)
    xp = _pad_spatial(x, pairs, float("-inf"))
    out = bind(cp.max_pool_p, xp, **attrs)
    if not return_indices:
        return out
    arg = bind(cp.pool_argmax_p, xp, out, **attrs)
    index = bind(cp.pool_indices_p, arg, in_spatial=tuple(x.shape[-nd:]), pad_lo=tuple(lo for lo, _ in pairs),
                 **attrs)
    return out, index


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """1-d max pooling, as ``torch.nn.functional.max_pool1d``.

    Args:
        input: (N, C, L) or (C, L).
        kernel_size: window length.
        stride: window step (default: `kernel_size`).
        padding: implicit -inf padding on both sides (at most half the kernel).
        dilation: spacing of the window's elements.
        ceil_mode: round the output length up (a last partial window is kept if it starts inside the
            input or the left padding).
        return_indices: also return the flat index (into the input's spatial dims) of each maximum.

    Returns:
        The pooled tensor, or (pooled, indices). The gradient goes to the first maximum of each window.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.max_pool1d(ember.tensor([[[1.0, 3.0, 2.0, 0.0]]]), 2).tolist()
        [[[3.0, 2.0]]]
    """
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """2-d max pooling, as ``torch.nn.functional.max_pool2d``.

    Args and Returns as in :func:`max_pool1d`, with pairs and (N, C, H, W) tensors; indices are
    ``h·W + w``.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.max_pool2d(ember.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
        [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """3-d max pooling, as ``torch.nn.functional.max_pool3d``.

    Args and Returns as in :func:`max_pool1d`, with triples and (N, C, D, H, W) tensors.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.max_pool3d(ember.ones(1, 1, 4, 4, 4), 2).shape
        (1, 1, 2, 2, 2)
    """
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def _avg_divisor(n: int, k: int, s: int, p: int, m: int, include_pad: bool) -> np.ndarray:
    """Per-output window sizes along one dim, with PyTorch's clipping rules."""
    start = np.arange(m) * s - p
    end = np.minimum(start + k, n + p)
    if include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, n) - np.maximum(start, 0)).astype(np.float64)


def _avg_pool(op: str, nd: int, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    x = _pool_input(op, input, nd)
    if not x.dtype.is_floating_point:
        raise DTypeError(op, f"expected a floating point input, got {x.dtype}", (x,))
    kernel, stride, _, pairs, out_sp = _pool_geometry(op, x, nd, kernel_size, stride, padding, 1, ceil_mode)
    attrs = dict(kernel=kernel, stride=stride, dilation=(1,) * nd)
    sums = bind(cp.pool_sum_p, _pad_spatial(x, pairs, 0.0), **attrs)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ShapeError(op, "divisor_override must be non-zero", (x,))
        return sums / float(divisor_override)
    divisor = np.ones((), np.float64)
    for n, k, s, (p, _), m in zip(x.shape[-nd:], kernel, stride, pairs, out_sp):
        divisor = np.multiply.outer(divisor, _avg_divisor(n, k, s, p, m, count_include_pad))
    return sums / creation.tensor(divisor, dtype=x.dtype, device=x.device)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """1-d average pooling, as ``torch.nn.functional.avg_pool1d``.

    Args:
        input: (N, C, L) or (C, L).
        kernel_size, stride (default `kernel_size`), padding: the windows (zero padding).
        ceil_mode: round the output length up.
        count_include_pad: count padded zeros in each window's divisor.

    Returns:
        The window means.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.avg_pool1d(ember.tensor([[[1.0, 3.0, 2.0, 0.0]]]), 2).tolist()
        [[[2.0, 1.0]]]
    """
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """2-d average pooling, as ``torch.nn.functional.avg_pool2d``.

    Args and Returns as in :func:`avg_pool1d`, with pairs; `divisor_override` replaces every divisor.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.avg_pool2d(ember.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
        [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """3-d average pooling, as ``torch.nn.functional.avg_pool3d``.

    Args and Returns as in :func:`avg_pool2d`, with triples.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.avg_pool3d(ember.ones(1, 1, 4, 4, 4), 2).shape
        (1, 1, 2, 2, 2)
    """
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


# -- adaptive pooling --------------------------------------------------------------------------------
def _bins(n: int, m: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive bins: [floor(i·n/m), ceil((i+1)·n/m))."""
    return [(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]


def _output_size(op: str, x: Tensor, nd: int, output_size) -> tuple[int, ...]:
    if output_size is None or isinstance(output_size, (int, np.integer)):
        sizes = (output_size,) * nd
    else:
        sizes = tuple(output_size)
        if len(sizes) == 1:
            sizes *= nd
        if len(sizes) != nd:
            raise ShapeError(op, f"output_size must be an int or a tuple of {nd} values, got {output_size}",
                             (x,))
    sizes = tuple(n if s is None else int(s) for s, n in zip(sizes, x.shape[-nd:]))
    if any(s <= 0 for s in sizes):
        raise ShapeError(op, f"output_size must be positive, got {sizes}", (x,))
    return sizes


_LETTERS = "uvwxyz"


def _adaptive_avg(op: str, nd: int, input: Tensor, output_size) -> Tensor:
    x = _pool_input(op, input, nd)
    if not x.dtype.is_floating_point:
        raise DTypeError(op, f"expected a floating point input, got {x.dtype}", (x,))
    sizes = _output_size(op, x, nd, output_size)
    ins, outs = _LETTERS[:nd], _LETTERS[nd:2 * nd].upper()
    mats = []
    for n, m in zip(x.shape[-nd:], sizes):
        a = np.zeros((m, n))
        for i, (lo, hi) in enumerate(_bins(n, m)):
            a[i, lo:hi] = 1.0 / (hi - lo)
        mats.append(creation.tensor(a, dtype=x.dtype, device=x.device))
    terms = ",".join(o + i for i, o in zip(ins, outs))
    return linalg.einsum(f"...{ins},{terms}->...{outs}", x, *mats)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """1-d adaptive average pooling: `output_size` bins ``[floor(i·L/out), ceil((i+1)·L/out))``.

    Args:
        input: (N, C, L) or (C, L).
        output_size: number of bins.

    Returns:
        The bin means, (N, C, output_size).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.adaptive_avg_pool1d(ember.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]]), 2).tolist()
        [[[2.0, 4.0]]]
    """
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """2-d adaptive average pooling; `output_size` is an int, a pair, or a pair with None (keep size).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.adaptive_avg_pool2d(ember.ones(1, 3, 7, 5), (2, None)).shape
        (1, 3, 2, 5)
    """
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d(input: Tensor, output_size) -> Tensor:
    """3-d adaptive average pooling (see :func:`adaptive_avg_pool2d`).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.adaptive_avg_pool3d(ember.ones(1, 2, 5, 5, 5), 2).shape
        (1, 2, 2, 2, 2)
    """
    return _adaptive_avg("adaptive_avg_pool3d", 3, input, output_size)


def _bin_table(n: int, m: int) -> np.ndarray:
    """(m, widest bin) positions of each bin, the last one repeated to pad short bins."""
    bins = _bins(n, m)
    width = max(hi - lo for lo, hi in bins)
    return np.array([[min(lo + j, hi - 1) for j in range(width)] for lo, hi in bins], dtype=np.int64)


def _reduce_last(x: Tensor, flat: Tensor | None, m: int, inner: int):
    """Adaptive max over the last dim of `x` into `m` bins, carrying the flat index of each winner."""
    table = _bin_table(x.shape[-1], m)
    width = table.shape[1]
    idx = creation.tensor(table.reshape(-1), device=x.device)
    windows = movement.reshape(indexing.index_select(x, -1, idx), tuple(x.shape[:-1]) + (m, width))
    values, pick = reduce.max(windows, dim=-1)
    starts = movement.reshape(creation.arange(m, device=x.device) * width, (m,))
    pos = indexing.take(idx, pick + starts)
    if flat is None:
        return values, pos
    fwin = movement.reshape(indexing.index_select(flat, -1, idx), tuple(flat.shape[:-1]) + (m, width))
    chosen = movement.squeeze(indexing.gather(fwin, -1, movement.unsqueeze(pick, -1)), -1)
    return values, pos * inner + chosen


def _adaptive_max(op: str, nd: int, input: Tensor, output_size, return_indices: bool):
    x = _pool_input(op, input, nd)
    if not x.dtype.is_floating_point:
        raise DTypeError(op, f"expected a floating point input, got {x.dtype}", (x,))
    sizes = _output_size(op, x, nd, output_size)
    spatial = tuple(x.shape[-nd:])
    flat = None
    for d in reversed(range(nd)):  # reduce W, then H, then D: the flat index grows by one dim each time
        axis = x.ndim - nd + d
        xm = movement.movedim(x, axis, -1)
        fm = movement.movedim(flat, axis, -1) if flat is not None else None
        values, flat = _reduce_last(xm, fm, sizes[d], math.prod(spatial[d + 1:]))
        x, flat = movement.movedim(values, -1, axis), movement.movedim(flat, -1, axis)
    return (x, flat) if return_indices else x


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """1-d adaptive max pooling over PyTorch's bins (see :func:`adaptive_avg_pool1d`).

    Args:
        input: (N, C, L) or (C, L).
        output_size: number of bins.
        return_indices: also return the index of each maximum.

    Returns:
        The bin maxima, or (maxima, indices).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.adaptive_max_pool1d(ember.tensor([[[1.0, 5.0, 3.0, 4.0, 2.0]]]), 2).tolist()
        [[[5.0, 4.0]]]
    """
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """2-d adaptive max pooling; indices are ``h·W + w`` as in PyTorch.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.adaptive_max_pool2d(ember.arange(16.0).reshape(1, 1, 4, 4), 1).tolist()
        [[[[15.0]]]]
    """
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool3d(input: Tensor, output_size, return_indices: bool = False):
    """3-d adaptive max pooling (see :func:`adaptive_max_pool2d`).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.adaptive_max_pool3d(ember.ones(1, 1, 5, 5, 5), 2).shape
        (1, 1, 2, 2, 2)
    """
    return _adaptive_max("adaptive_max_pool3d", 3, input, output_size, return_indices)


# -- unfold / fold -----------------------------------------------------------------------------------
def _one_hot_kernel(x: Tensor, channels: int, kernel: tuple[int, ...]) -> Tensor:
    """(C·K, 1, *kernel) weights whose output channel c·K + k copies kernel offset k of channel c."""
    taps = math.prod(kernel)
    eye = np.tile(np.eye(taps), (channels, 1)).reshape((channels * taps, 1) + kernel)
    return creation.tensor(eye, dtype=x.dtype, device=x.device)


def _block_args(op: str, kernel_size, dilation, padding, stride, x: Tensor):
    args = [_tuple(v, 2, name, op) for v, name in ((kernel_size, "kernel_size"), (dilation, "dilation"),
                                                   (padding, "padding"), (stride, "stride"))]
    kernel, dilation, pad, stride = args
    if any(k < 1 for k in kernel) or any(d < 1 for d in dilation) or any(s < 1 for s in stride) or \
            any(p < 0 for p in pad):
        raise ShapeError(op, f"kernel_size {kernel}, dilation {dilation} and stride {stride} must be "
                         f"positive and padding {pad} non-negative", (x,))
    return kernel, dilation, tuple((p, p) for p in pad), stride


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sliding local blocks of a (N, C, H, W) batch as columns (im2col), as ``torch.nn.functional.unfold``.

    Args:
        input: (N, C, H, W) or (C, H, W).
        kernel_size, dilation, padding, stride: the blocks, as in :func:`conv2d`.

    Returns:
        (N, C·kH·kW, L) with L the number of block positions; row ``c·kH·kW + k`` holds kernel offset k
        of channel c.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.unfold(ember.arange(9.0).reshape(1, 1, 3, 3), 2).tolist()
        [[[0.0, 1.0, 3.0, 4.0], [1.0, 2.0, 4.0, 5.0], [3.0, 4.0, 6.0, 7.0], [4.0, 5.0, 7.0, 8.0]]]
    """
    x, squeeze = _batched("unfold", input, 2)
    _check_float("unfold", x)
    kernel, dilation, pads, stride = _block_args("unfold", kernel_size, dilation, padding, stride, x)
    _check_window("unfold", x, None, x.shape[2:], kernel, pads, dilation)
    channels = x.shape[1]
    out = cp.conv_general(x, _one_hot_kernel(x, channels, kernel), stride, pads, dilation, channels)
    return _unbatched(movement.reshape(out, (out.shape[0], out.shape[1], -1)), squeeze)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sum sliding local blocks back into a (N, C, H, W) batch (col2im), as ``torch.nn.functional.fold``.

    The adjoint of :func:`unfold`: overlapping blocks add up.

    Args:
        input: (N, C·kH·kW, L) or (C·kH·kW, L).
        output_size: (H, W) of the result.
        kernel_size, dilation, padding, stride: the blocks, as in :func:`unfold`.

    Returns:
        (N, C, H, W).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.fold(ember.ones(1, 4, 4), (3, 3), 2).tolist()
        [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]
    """
    op = "fold"
    if input.ndim not in (2, 3):
        raise ShapeError(op, f"expected a 2-d (unbatched) or 3-d (batched) input, got shape "
                         f"{tuple(input.shape)}", (input,))
    squeeze = input.ndim == 2
    x = movement.unsqueeze(input, 0) if squeeze else input
    _check_float(op, x)
    kernel, dilation, pads, stride = _block_args(op, kernel_size, dilation, padding, stride, x)
    size = _tuple(output_size, 2, "output_size", op)
    _check_window(op, x, None, size, kernel, pads, dilation)
    blocks = tuple(cp.out_length(n + lo + hi, k, s, d) for n, k, (lo, hi), s, d in
                   zip(size, kernel, pads, stride, dilation))
    taps = math.prod(kernel)
    if x.shape[1] % taps or x.shape[2] != math.prod(blocks):
        raise ShapeError(op, f"input of shape {tuple(input.shape)} does not hold C·{taps} rows and "
                         f"{math.prod(blocks)} blocks for output_size {size} and kernel_size {kernel}",
                         (input,))
    channels = x.shape[1] // taps
    cols = movement.reshape(x, (x.shape[0], x.shape[1]) + blocks)
    out = cp.conv_transpose_general(cols, _one_hot_kernel(x, channels, kernel), size, stride, pads, dilation,
                                    channels)
    return _unbatched(out, squeeze)
