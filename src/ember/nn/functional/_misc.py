"""Embedding lookup, bilinear maps, resampling (interpolate, pixel shuffle) and channel dropout."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import _core
from ..._core import creation, dtypes
from ..._core.autograd import no_grad
from ..._core.errors import DTypeError, IndexingError, ShapeError
from ..._core.primitives import elementwise as ew
from ..._core.primitives import indexing, linalg, movement, reduce
from ..._core.tensor import Tensor

__all__ = ["embedding", "bilinear", "interpolate", "upsample", "pixel_shuffle", "pixel_unshuffle",
           "dropout1d", "dropout2d", "dropout3d", "alpha_dropout"]


# -- embedding ------------------------------------------------------------------------------------
def _renorm_rows(weight: Tensor, index: Tensor, max_norm: float, norm_type: float) -> None:
    """Rescale in place the rows of `weight` used by `index` whose norm exceeds `max_norm`. A row used
    several times is rescaled once per use, each time to the same value, which keeps the indices out of
    Python (so the lookup compiles)."""
    if index.numel() == 0:
        return
    with no_grad():
        sel = ew.convert(movement.reshape(index.detach(), (-1,)), dtypes.int64)
        picked = indexing.index_select(weight, 0, sel)
        norms = reduce.norm(picked, norm_type, 1, keepdim=True)
        scale = ew.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        weight.index_copy_(0, sel, picked * scale)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of `weight` picked by the integer indices in `input`.

    Args:
        input: integer tensor of any shape.
        weight: (num_embeddings, embedding_dim) table.
        padding_idx: the row at this index receives no gradient.
        max_norm: rows used are first renormalised in place to at most this `norm_type`-norm.
        scale_grad_by_freq: divide each row's gradient by its number of occurrences in `input`.
        sparse: accepted for compatibility; gradients are dense.

    Returns:
        Tensor of shape ``input.shape + (embedding_dim,)``.

    Example:
        >>> F.embedding(ember.tensor([1]), ember.tensor([[0.0, 1.0], [2.0, 3.0]])).tolist()
        [[2.0, 3.0]]
    """
    if input.dtype.kind != dtypes._INT:
        raise DTypeError("embedding", f"indices must be an integer tensor, got {input.dtype}",
                         (input, weight))
    if weight.ndim != 2:
        raise ShapeError("embedding", f"weight must be 2-d (num_embeddings, embedding_dim), got shape "
                         f"{tuple(weight.shape)}", (input, weight))
    num = weight.shape[0]
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise IndexingError("embedding", f"padding_idx {padding_idx} must be within the number of "
                                f"embeddings ({num})", (weight,))
        padding_idx %= num
    if max_norm is not None:
        _renorm_rows(weight, input, max_norm, norm_type)
    flat = movement.reshape(input, (-1,))
    out = indexing.index_select(weight, 0, flat)
    if padding_idx is not None:
        out = ew.where(movement.unsqueeze(flat == padding_idx, 1), out.detach(), out)
    if scale_grad_by_freq:
        counts = np.bincount(np.asarray(flat.detach().numpy()) % max(num, 1), minlength=num)
        scale = creation.tensor(1.0 / np.maximum(counts[np.asarray(flat.numpy()) % max(num, 1)], 1),
                                dtype=weight.dtype)
        scale = movement.unsqueeze(scale, 1)
        out = out * scale + out.detach() * (1.0 - scale)  # same value, gradient scaled
    return movement.reshape(out, tuple(input.shape) + (weight.shape[1],))


# -- bilinear -------------------------------------------------------------------------------------
def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y_k = x1ᵀ W_k x2 + b_k``. Shapes: (*, in1), (*, in2), weight (out, in1, in2) -> (*, out).

    Example:
        >>> w = ember.ones(1, 2, 2)
        >>> F.bilinear(ember.tensor([[1.0, 2.0]]), ember.tensor([[1.0, 1.0]]), w).tolist()
        [[6.0]]
    """
    if weight.ndim != 3 or input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2] \
            or tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise ShapeError("bilinear", f"inputs of shapes {tuple(input1.shape)} and {tuple(input2.shape)} do "
                         f"not fit a weight of shape {tuple(weight.shape)} (out, in1, in2)",
                         (input1, input2, weight))
    out = linalg.einsum("...i,kij,...j->...k", input1, weight, input2)
    return out if bias is None else out + bias


# -- interpolation --------------------------------------------------------------------------------
def _spatial_sizes(x: Tensor, size, scale_factor, dims: int) -> tuple[list[int], list[float | None]]:
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: exactly one of size and scale_factor must be given")
    if size is not None:
        sizes = [int(size)] * dims if isinstance(size, (int, np.integer)) else [int(s) for s in size]
        scales: list[float | None] = [None] * dims
    else:
        scales = [float(scale_factor)] * dims if isinstance(scale_factor, (int, float)) \
            else [float(s) for s in scale_factor]
        sizes = [int(math.floor(x.shape[2 + i] * scales[i])) for i in range(dims)]
    if len(sizes) != dims or len(scales) != dims:
        raise ShapeError("interpolate", f"expected {dims} output sizes or scale factors for an input of "
                         f"shape "
                         f"{tuple(x.shape)}", (x,))
    return sizes, scales


def _src_scale(n_in: int, n_out: int, scale: float | None, align_corners: bool) -> float:
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None else n_in / n_out


def _nearest(x: Tensor, d: int, n_out: int, scale: float | None, exact: bool) -> Tensor:
    n_in = x.shape[d]
    s = _src_scale(n_in, n_out, scale, False)
    # single precision index arithmetic, as PyTorch's kernels, so rounding picks the same pixels
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * np.float32(s)) if exact else np.floor(dst * np.float32(s))
    idx = np.minimum(src.astype(np.int64), n_in - 1)
    return indexing.index_select(x, d, creation.tensor(idx))


def _linear(x: Tensor, d: int, n_out: int, scale: float | None, align_corners: bool) -> Tensor:
    n_in = x.shape[d]
    s = _src_scale(n_in, n_out, scale, align_corners)
    dst = np.arange(n_out, dtype=np.float64)
    src = dst * s if align_corners else np.maximum((dst + 0.5) * s - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    lam_np = (src - lo).reshape((n_out,) + (1,) * (x.ndim - 1 - d))
    lam = creation.tensor(lam_np, dtype=x.dtype)
    a = indexing.index_select(x, d, creation.tensor(lo))
    b = indexing.index_select(x, d, creation.tensor(hi))
    return a * (1.0 - lam) + b * lam


_MODES = {"nearest": 0, "nearest-exact": 0, "linear": 1, "bilinear": 2, "trilinear": 3}


def interpolate(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resample the spatial dimensions of an (N, C, *spatial) tensor.

    Args:
        input: tensor of shape (N, C, L), (N, C, H, W) or (N, C, D, H, W).
        size: output spatial size (an int or one per dimension).
        scale_factor: multiplier of the spatial size (instead of `size`).
        mode: 'nearest', 'nearest-exact', or the separable 'linear' (1-d), 'bilinear' (2-d),
            'trilinear' (3-d).
        align_corners: for the linear modes, map the corner pixel centres onto each other.
        recompute_scale_factor: compute the source scale from the output size instead of using
            `scale_factor` directly.

    Example:
        >>> F.interpolate(ember.tensor([[[1.0, 2.0]]]), scale_factor=2).tolist()
        [[[1.0, 1.0, 2.0, 2.0]]]
    """
    if mode not in _MODES:
        raise ValueError(f"interpolate: unsupported mode {mode!r}; expected one of {sorted(_MODES)}")
    if antialias:
        raise ValueError("interpolate: antialias is not supported")
    dims = input.ndim - 2
    if dims < 1 or (_MODES[mode] and _MODES[mode] != dims):
        raise ShapeError("interpolate", f"mode {mode!r} does not fit an input of shape {tuple(input.shape)}",
                         (input,))
    if _MODES[mode] == 0 and align_corners is not None:
        raise ValueError("interpolate: align_corners can only be set with the linear modes")
    sizes, scales = _spatial_sizes(input, size, scale_factor, dims)
    if recompute_scale_factor:
        scales = [None] * dims
    out = input
    for i in range(dims):
        d = 2 + i
        if _MODES[mode] == 0:
            out = _nearest(out, d, sizes[i], scales[i], mode == "nearest-exact")
        else:
            out = _linear(out, d, sizes[i], scales[i], bool(align_corners))
    return out


def upsample(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
             align_corners: bool | None = None) -> Tensor:
    """Older name of :func:`interpolate`.

    Example:
        >>> F.upsample(ember.tensor([[[1.0]]]), size=2).tolist()
        [[[1.0, 1.0]]]
    """
    return interpolate(input, size, scale_factor, mode, align_corners)


# -- pixel shuffle --------------------------------------------------------------------------------
def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C·r², H, W) -> (*, C, H·r, W·r).

    Example:
        >>> F.pixel_shuffle(ember.arange(4.0).reshape(1, 4, 1, 1), 2).reshape(-1).tolist()
        [0.0, 1.0, 2.0, 3.0]
    """
    r = int(upscale_factor)
    if input.ndim < 3 or r <= 0 or input.shape[-3] % (r * r):
        raise ShapeError("pixel_shuffle", f"expected an input of shape (*, C*{r}^2, H, W), got "
                         f"{tuple(input.shape)}", (input,))
    *lead, c, h, w = input.shape
    x = movement.reshape(input, tuple(lead) + (c // (r * r), r, r, h, w))
    k = len(lead)
    x = movement.permute(x, tuple(range(k)) + (k, k + 3, k + 1, k + 4, k + 2))
    return movement.reshape(x, tuple(lead) + (c // (r * r), h * r, w * r))


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H·r, W·r) -> (*, C·r², H, W), the inverse of :func:`pixel_shuffle`.

    Example:
        >>> F.pixel_unshuffle(ember.arange(4.0).reshape(1, 1, 2, 2), 2).reshape(-1).tolist()
        [0.0, 1.0, 2.0, 3.0]
    """
    r = int(downscale_factor)
    if input.ndim < 3 or r <= 0 or input.shape[-1] % r or input.shape[-2] % r:
        raise ShapeError("pixel_unshuffle", f"expected an input of shape (*, C, H*{r}, W*{r}), got "
                         f"{tuple(input.shape)}", (input,))
    *lead, c, h, w = input.shape
    x = movement.reshape(input, tuple(lead) + (c, h // r, r, w // r, r))
    k = len(lead)
    x = movement.permute(x, tuple(range(k)) + (k, k + 2, k + 4, k + 1, k + 3))
    return movement.reshape(x, tuple(lead) + (c * r * r, h // r, w // r))


# -- channel dropout ------------------------------------------------------------------------------
def _channel_dropout(input: Tensor, p: float, training: bool, batched_ndim: int, op: str,
                     generator: Any = None) -> Tensor:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim not in (batched_ndim - 1, batched_ndim):
        raise ShapeError(op, f"expected a {batched_ndim - 1}-d (unbatched) or {batched_ndim}-d (batched) "
                         f"input, got shape {tuple(input.shape)}", (input,))
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    lead = 2 if input.ndim == batched_ndim else 1
    shape = tuple(input.shape[:lead]) + (1,) * (input.ndim - lead)
    mask = _core.random.dropout_mask(shape, p, generator, device=input.device)
    return ew.where(mask, input * (1.0 / (1.0 - p)), 0.0)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an (N, C, L) or (C, L) input with probability `p`, scaling the rest.

    Example:
        >>> F.dropout1d(ember.ones(1, 2, 3), 0.5, training=False).shape
        (1, 2, 3)
    """
    return _channel_dropout(input, p, training, 3, "dropout1d")


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an (N, C, H, W) or (C, H, W) input with probability `p`.

    Example:
        >>> F.dropout2d(ember.ones(1, 2, 3, 3), 0.0).shape
        (1, 2, 3, 3)
    """
    return _channel_dropout(input, p, training, 4, "dropout2d")


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an (N, C, D, H, W) or (C, D, H, W) input with probability `p`.

    Example:
        >>> F.dropout3d(ember.ones(1, 2, 1, 1, 1), 0.0).shape
        (1, 2, 1, 1, 1)
    """
    return _channel_dropout(input, p, training, 5, "dropout3d")


_SELU_NEG = 1.7580993408473766  # scale * alpha of SELU: the value SELU saturates to is -this


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """Dropout for SELU networks: dropped values become SELU's saturation value and an affine map keeps
    the mean and variance.

    Example:
        >>> F.alpha_dropout(ember.ones(3), 0.5, training=False).tolist()
        [1.0, 1.0, 1.0]
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = _core.random.dropout_mask(tuple(input.shape), p, device=input.device)
    a = 1.0 / math.sqrt((_SELU_NEG ** 2 * p + 1) * (1 - p))
    b = _SELU_NEG * a * p
    return ew.where(keep, input * a + b, b - _SELU_NEG * a)

