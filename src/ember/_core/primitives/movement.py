"""Shape and layout primitives: reshape, broadcast, transpose, slice, pad, cat, flip, roll, repeat, diagonal.

Views (reshape, transpose, slice, diagonal, squeeze…) share storage with their base, as in PyTorch, so an
in-place write through one is seen by the other and bumps their shared version counter. Everything else
here (cat, stack, split, chunk, pad modes, repeat, tile, tril…) is composed from these primitives.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ...backends import CPU
from .. import dtypes
from ..creation import _note_created, arange, tensor, zeros_like
from ..dispatch import bind
from ..errors import DTypeError, EmberError, IndexingError, ShapeError
from ..primitive import Primitive
from ..tensor import Tensor, Tracer
from .elementwise import clone, convert, where
from .reduce import normalize_axes, normalize_axis, sum_to_shape

__all__ = ["reshape", "broadcast_to", "broadcast_shapes", "permute", "transpose", "moveaxis", "movedim",
           "swapaxes", "swapdims", "t", "squeeze", "unsqueeze", "flatten", "unflatten", "narrow", "cat",
           "concatenate", "concat", "stack", "hstack", "vstack", "dstack", "atleast_1d", "atleast_2d",
           "atleast_3d", "split", "chunk", "unbind", "tensor_split", "pad", "flip", "fliplr", "flipud",
           "roll", "tile", "repeat_interleave", "tril", "triu", "diagonal", "diag", "diag_embed",
           "broadcast_tensors", "ravel", "select", "rot90", "column_stack", "hsplit", "vsplit", "dsplit",
           "block_diag", "diagflat", "vander"]


def _shape_arg(shape) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _ints(first, rest: tuple = ()) -> tuple[int, ...]:
    """Accept ``f(x, 0, 1)``, ``f(x, (0, 1))`` and ``f(x, 0)`` alike."""
    if isinstance(first, (tuple, list)):
        return tuple(int(v) for v in first) + tuple(int(v) for v in rest)
    return (int(first),) + tuple(int(v) for v in rest)


def _insert(values: tuple, pos: int, value) -> tuple:
    return values[:pos] + (value,) + values[pos:]


def _shift(dims: tuple[int, ...], bdim: int) -> tuple[int, ...]:
    """Logical dims of a batched value whose batch dimension sits at `bdim`, as physical dims."""
    return tuple(d + (d >= bdim) for d in dims)


def _inverse(perm: Sequence[int]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


# -- reshape --------------------------------------------------------------------------------------------
def _reshape_vjp(g, out, x, shape):
    return (reshape(g, x.shape),)


def _reshape_jvp(primals, tangents, shape):
    return reshape(primals[0], shape), reshape(tangents[0], shape)


def _reshape_batch(values, bdims, shape):
    x = moveaxis(values[0], bdims[0], 0)
    return reshape(x, (x.shape[0],) + shape), 0


reshape_p = Primitive("reshape", lambda xp, x, shape: xp.reshape(x, shape), vjp=_reshape_vjp,
                      jvp=_reshape_jvp, batch=_reshape_batch, view=True, reads=())
reshape_p.array_method = lambda shape: ("reshape", shape)


def infer_shape(shape: tuple[int, ...], numel: int, operand=None, op: str = "reshape") -> tuple[int, ...]:
    """Resolve one -1 in `shape` and check that the element count matches."""
    if shape.count(-1) > 1:
        raise ShapeError(op, f"only one dimension can be inferred, got shape {shape}", (operand,))
    if any(s < -1 for s in shape):
        raise ShapeError(op, f"invalid negative size in shape {shape}", (operand,))
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if known == 0 or numel % known:
            raise ShapeError(op, f"shape {shape} is invalid for input of size {numel}", (operand,))
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise ShapeError(op, f"shape {shape} is invalid for input of size {numel}", (operand,))
    return shape


def _concrete_layout(x: Tensor) -> Tensor | None:
    """The tensor whose memory layout `x` has: itself, or for a value of a transform that computes its
    values eagerly as it traces (``ember.jit``), that value; None for other tracers (no layout)."""
    while isinstance(x, Tracer):
        if not getattr(x._trace, "concrete_layouts", False):
            return None
        x = x.val
    return x


def _viewable(x: Tensor, shape: tuple[int, ...]) -> bool:
    """True if the backend can give `x` the new shape without copying (tracers without a layout: decided
    per value)."""
    x = _concrete_layout(x)
    if x is None:
        return True
    try:
        x._data.reshape(shape, copy=False)
    except ValueError:
        return False
    except TypeError:  # an array module without reshape(copy=...): only contiguous data is sure to work
        return bool(x._data.flags.c_contiguous)
    return True


def _dense_batch(values, bdims):
    return bind(dense_copy_p, values[0]), bdims[0]


dense_copy_p = Primitive("contiguous", lambda xp, x: xp.array(x, order="C", copy=True),
                         vjp=lambda g, out, x: (g,), jvp=lambda p, tg: (bind(dense_copy_p, p[0]), tg[0]),
                         batch=_dense_batch, doc="A row-major copy (clone keeps the input's memory order).",
                         reads=())


def reshape(x: Tensor, *shape) -> Tensor:
    """``x`` with a new shape of the same number of elements (one dimension may be -1).

    A view when the data layout allows it, else a copy (as ``torch.reshape``).

    Args:
        x: input tensor.
        shape: the new shape, as ints or one tuple.

    Returns:
        A tensor of the new shape.

    Example:
        >>> import ember
        >>> ember.arange(6).reshape(2, -1).shape
        (2, 3)
    """
    shape = infer_shape(_shape_arg(shape), x.numel(), x)
    if shape == tuple(x.shape):
        return x
    if not _viewable(x, shape):
        x = bind(dense_copy_p, x)  # a fresh row-major copy: the view below never pretends to alias `x`
    return bind(reshape_p, x, shape=shape)


def view(x: Tensor, *shape) -> Tensor:
    """``x`` with a new shape, always sharing its storage (ShapeError if the layout does not allow it).

    Example:
        >>> import ember
        >>> ember.zeros(2, 3).view(-1).shape
        (6,)
    """
    if len(shape) == 1 and isinstance(shape[0], (dtypes.DType, np.dtype, type)):
        raise DTypeError("view", "reinterpreting the bytes as another dtype is not supported", (x,))
    target = infer_shape(_shape_arg(shape), x.numel(), x, "view")
    if not _viewable(x, target):
        raise ShapeError("view", f"view size {target} is not compatible with the input's size and stride "
                         f"(its dimensions span non-contiguous memory); use .reshape(...) instead", (x,))
    return reshape(x, target)


def view_as(x: Tensor, other: Tensor) -> Tensor:
    """``x.view(other.shape)``."""
    return view(x, tuple(other.shape))


def reshape_as(x: Tensor, other: Tensor) -> Tensor:
    """``x.reshape(other.shape)``."""
    return reshape(x, tuple(other.shape))


def squeeze(x: Tensor, dim=None) -> Tensor:
    """Remove dimensions of size 1 (all of them, or those of `dim` that have size 1), as a view.

    Args:
        x: input tensor.
        dim: an int, a tuple of ints, or None for every dimension.

    Returns:
        The squeezed view; dimensions in `dim` whose size is not 1 are kept (as in PyTorch).

    Example:
        >>> import ember
        >>> ember.zeros(2, 1, 3, 1).squeeze(1).shape
        (2, 3, 1)
    """
    axes = normalize_axes(dim, x.ndim, "squeeze", x)
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if not (i in axes and s == 1)))


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a dimension of size 1 at position `dim` (in ``[-ndim-1, ndim]``), as a view.

    Example:
        >>> import ember
        >>> ember.zeros(2, 3).unsqueeze(-1).shape
        (2, 3, 1)
    """
    d = normalize_axis(dim, x.ndim + 1, "unsqueeze", x)
    return reshape(x, tuple(x.shape[:d]) + (1,) + tuple(x.shape[d:]))


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions `start_dim`..`end_dim` (inclusive) into one; a 0-d tensor becomes 1-d.

    Example:
        >>> import ember
        >>> ember.zeros(2, 3, 4).flatten(1).shape
        (2, 12)
    """
    if x.ndim == 0:
        return reshape(x, (1,))
    lo = normalize_axis(start_dim, x.ndim, "flatten", x)
    hi = normalize_axis(end_dim, x.ndim, "flatten", x)
    if lo > hi:
        raise IndexingError("flatten", f"start_dim ({start_dim}) cannot come after end_dim ({end_dim})", (x,))
    shape = tuple(x.shape)
    return reshape(x, shape[:lo] + (math.prod(shape[lo:hi + 1]),) + shape[hi + 1:])


def unflatten(x: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """Split dimension `dim` into `sizes` (one of which may be -1).

    Example:
        >>> import ember
        >>> ember.zeros(2, 12).unflatten(1, (3, -1)).shape
        (2, 3, 4)
    """
    d = normalize_axis(dim, x.ndim, "unflatten", x)
    sizes = infer_shape(tuple(int(s) for s in sizes), x.shape[d], x, "unflatten")
    return reshape(x, tuple(x.shape[:d]) + sizes + tuple(x.shape[d + 1:]))


# -- broadcast_to ---------------------------------------------------------------------------------------
def _broadcast_vjp(g, out, x, shape):
    return (sum_to_shape(g, x.shape),)


def _broadcast_jvp(primals, tangents, shape):
    return broadcast_to(primals[0], shape), broadcast_to(tangents[0], shape)


def _broadcast_batch(values, bdims, shape):
    x = moveaxis(values[0], bdims[0], 0)
    lead = len(shape) - (len(x.shape) - 1)
    x = reshape(x, (x.shape[0],) + (1,) * lead + tuple(x.shape[1:]))
    return broadcast_to(x, (x.shape[0],) + shape), 0


broadcast_p = Primitive("broadcast_to", lambda xp, x, shape: xp.broadcast_to(x, shape), vjp=_broadcast_vjp,
                        jvp=_broadcast_jvp, batch=_broadcast_batch, view=True, reads=())


def broadcast_shapes(*shapes: Sequence[int], op: str = "broadcast", operands=()) -> tuple[int, ...]:
    """The NumPy/PyTorch broadcast of `shapes`, or ShapeError naming them."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        size = 1
        for s in shapes:
            d = s[i - ndim + len(s)] if i - ndim + len(s) >= 0 else 1
            if d != 1:
                if size not in (1, d):
                    raise ShapeError(op, f"shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be "
                                     "broadcast together", operands)
                size = d
        out.append(size)
    return tuple(out)


def broadcast_to(x: Tensor, *shape) -> Tensor:
    """``x`` broadcast to `shape` (a read-only view); -1 keeps an existing dimension's size.

    Args:
        x: input tensor.
        shape: target shape (ints or one tuple); its trailing dimensions line up with `x`'s.

    Returns:
        The expanded view (``Tensor.expand`` is the same function).

    Example:
        >>> import ember
        >>> ember.zeros(3, 1).expand(-1, 4).shape
        (3, 4)
    """
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError("broadcast_to", f"cannot expand shape {tuple(x.shape)} to {shape}: the target has "
                         "fewer dimensions", (x,))
    if -1 in shape[:lead]:
        raise ShapeError("broadcast_to", f"the size -1 is not allowed in a leading, non-existing dimension "
                         f"(target {shape}, input {tuple(x.shape)})", (x,))
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    if shape == tuple(x.shape):
        return x
    if broadcast_shapes(x.shape, shape, op="broadcast_to", operands=(x,)) != shape:
        raise ShapeError("broadcast_to", f"cannot broadcast shape {tuple(x.shape)} to {shape}", (x,))
    return bind(broadcast_p, x, shape=shape)


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    """``x.expand(other.shape)``."""
    return broadcast_to(x, tuple(other.shape))


# -- transpose ------------------------------------------------------------------------------------------
def _transpose_vjp(g, out, x, perm):
    return (permute(g, _inverse(perm)),)


def _transpose_jvp(primals, tangents, perm):
    return permute(primals[0], perm), permute(tangents[0], perm)


def _transpose_batch(values, bdims, perm):
    x = moveaxis(values[0], bdims[0], 0)
    return permute(x, (0,) + tuple(p + 1 for p in perm)), 0


transpose_p = Primitive("transpose", lambda xp, x, perm: xp.transpose(x, perm), vjp=_transpose_vjp,
                        jvp=_transpose_jvp, batch=_transpose_batch, view=True, reads=())
transpose_p.array_method = lambda perm: ("transpose", perm)


def permute(x: Tensor, *dims) -> Tensor:
    """``x`` with its dimensions reordered (a view).

    Example:
        >>> import ember
        >>> ember.zeros(2, 3, 4).permute(2, 0, 1).shape
        (4, 2, 3)
    """
    perm = tuple(normalize_axis(d, x.ndim, "permute", x) for d in _shape_arg(dims))
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError("permute", f"dims {perm} are not a permutation of {x.ndim} dimensions", (x,))
    if perm == tuple(range(x.ndim)):
        return x
    return bind(transpose_p, x, perm=perm)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """``x`` with dimensions `dim0` and `dim1` swapped (a view; ``swapaxes``/``swapdims`` are aliases).

    Example:
        >>> import ember
        >>> ember.zeros(2, 3).transpose(0, 1).shape
        (3, 2)
    """
    perm = list(range(x.ndim))
    d0, d1 = normalize_axis(dim0, x.ndim, "transpose", x), normalize_axis(dim1, x.ndim, "transpose", x)
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return permute(x, tuple(perm))


swapaxes = swapdims = transpose


def movedim(x: Tensor, source, destination) -> Tensor:
    """``x`` with dimension(s) `source` moved to position(s) `destination`; the others keep their order.

    Args:
        x: input tensor.
        source: an int or a sequence of distinct ints.
        destination: as many ints as `source`.

    Returns:
        The permuted view.

    Example:
        >>> import ember
        >>> ember.zeros(2, 3, 4).movedim(0, -1).shape
        (3, 4, 2)
    """
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise ShapeError("movedim", f"source {src} and destination {dst} must have the same length", (x,))
    src = tuple(normalize_axis(d, x.ndim, "movedim", x) for d in src)
    dst = tuple(normalize_axis(d, x.ndim, "movedim", x) for d in dst)
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ShapeError("movedim", f"repeated dims in source {src} or destination {dst}", (x,))
    rest = iter(d for d in range(x.ndim) if d not in src)
    placed = dict(zip(dst, src))
    return permute(x, tuple(placed[i] if i in placed else next(rest) for i in range(x.ndim)))


moveaxis = movedim


def t(x: Tensor) -> Tensor:
    """The transpose of a matrix; tensors with fewer than 2 dimensions are returned as they are.

    Example:
        >>> import ember
        >>> ember.zeros(2, 3).t().shape
        (3, 2)
    """
    if x.ndim > 2:
        raise ShapeError("t", f"expects a tensor with <= 2 dimensions, got {x.ndim}; use .mT or "
                         ".transpose(dim0, dim1)", (x,))
    return x if x.ndim < 2 else transpose(x, 0, 1)


# -- slice and its transpose, pad ------------------------------------------------------------------------
def _span(n: int, interior: int) -> int:
    """Extent of `n` elements placed `interior` apart."""
    return n + interior * max(n - 1, 0)


def _slice_impl(xp, x, starts, stops, steps):
    return x[tuple(slice(a, b, s) for a, b, s in zip(starts, stops, steps))]


def _slice_vjp(g, out, x, starts, stops, steps):
    config = []
    for n, a, b, s in zip(x.shape, starts, stops, steps):
        m = len(range(a, b, s))
        config.append((a, n - a - _span(m, s - 1), s - 1))
    return (bind(pad_p, g, config=tuple(config), value=0),)


def _slice_jvp(primals, tangents, **attrs):
    return bind(slice_p, primals[0], **attrs), bind(slice_p, tangents[0], **attrs)


def _slice_batch(values, bdims, starts, stops, steps):
    x, b = values[0], bdims[0]
    return bind(slice_p, x, starts=_insert(starts, b, 0), stops=_insert(stops, b, x.shape[b]),
                steps=_insert(steps, b, 1)), b


slice_p = Primitive("slice", _slice_impl, vjp=_slice_vjp, jvp=_slice_jvp, batch=_slice_batch, view=True,
                    doc="x[a0:b0:s0, ...] with static, normalised bounds (0 <= a <= b <= n, s >= 1).",
                    reads=())


def _pad_impl(xp, x, config, value):
    shape = tuple(lo + hi + _span(n, it) for n, (lo, hi, it) in zip(x.shape, config))
    out = xp.full(shape, value, dtype=x.dtype)
    out[tuple(slice(lo, lo + _span(n, it), it + 1) for n, (lo, hi, it) in zip(x.shape, config))] = x
    return out


def _pad_vjp(g, out, x, config, value):
    starts = tuple(lo for lo, _, _ in config)
    stops = tuple(lo + _span(n, it) for n, (lo, _, it) in zip(x.shape, config))
    return (bind(slice_p, g, starts=starts, stops=stops, steps=tuple(it + 1 for _, _, it in config)),)


def _pad_jvp(primals, tangents, config, value):
    out = bind(pad_p, primals[0], config=config, value=value)
    return out, bind(pad_p, tangents[0], config=config, value=0)


def _pad_batch(values, bdims, config, value):
    return bind(pad_p, values[0], config=_insert(config, bdims[0], (0, 0, 0)), value=value), bdims[0]


pad_p = Primitive("pad", _pad_impl, vjp=_pad_vjp, jvp=_pad_jvp, batch=_pad_batch,
                  doc="Constant padding by (low, high, interior) >= 0 per dimension; the VJP of slice.",
                  reads=())


def static_slice(x: Tensor, starts: Sequence[int], stops: Sequence[int],
                 steps: Sequence[int] | None = None) -> Tensor:
    """``x[starts[0]:stops[0]:steps[0], ...]`` with Python slice semantics for the bounds (a view).

    Args:
        x: input tensor.
        starts, stops, steps: one entry per leading dimension (the rest are taken whole); bounds may be
            negative or out of range and are clipped as in Python; steps must be positive.

    Returns:
        The sliced view (the ``slice`` primitive, which ``__getitem__`` can build on).

    Example:
        >>> import ember
        >>> static_slice(ember.arange(10), (1,), (8,), (3,)).tolist()
        [1, 4, 7]
    """
    steps = (1,) * len(starts) if steps is None else tuple(steps)
    if not len(starts) == len(stops) == len(steps) or len(starts) > x.ndim:
        raise ShapeError("slice", f"got {len(starts)} starts, {len(stops)} stops and {len(steps)} steps "
                         f"for a tensor of {x.ndim} dimensions", (x,))
    if any(int(s) <= 0 for s in steps):
        raise IndexingError("slice", f"slice steps must be positive, got {tuple(steps)}", (x,))
    norm = [slice(int(a), int(b), int(s)).indices(n) for a, b, s, n in zip(starts, stops, steps, x.shape)]
    norm += [(0, n, 1) for n in x.shape[len(norm):]]
    norm = [(a, max(a, b), s) for a, b, s in norm]
    if all(a == 0 and b == n and s == 1 for (a, b, s), n in zip(norm, x.shape)):
        return x
    return bind(slice_p, x, starts=tuple(a for a, _, _ in norm), stops=tuple(b for _, b, _ in norm),
                steps=tuple(s for _, _, s in norm))


def _slice_dim(x: Tensor, dim: int, start: int, stop: int, step: int = 1) -> Tensor:
    """Slice one (normalised) dimension."""
    starts, stops, steps = [0] * x.ndim, list(x.shape), [1] * x.ndim
    starts[dim], stops[dim], steps[dim] = start, stop, step
    return static_slice(x, starts, stops, steps)


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """The view ``x[..., start:start + length, ...]`` along `dim` (`start` may be negative).

    Example:
        >>> import ember
        >>> ember.arange(6).narrow(0, 2, 3).tolist()
        [2, 3, 4]
    """
    d = normalize_axis(dim, x.ndim, "narrow", x)
    n, start, length = x.shape[d], int(start), int(length)
    if not -n <= start <= n:
        raise IndexingError("narrow", f"start {start} is out of range for dimension {dim} of size {n}", (x,))
    start = start + n if start < 0 else start
    if length < 0 or start + length > n:
        raise IndexingError("narrow", f"start ({start}) + length ({length}) exceeds dimension {dim} of size "
                            f"{n}", (x,))
    return _slice_dim(x, d, start, start + length)


def _pad_constant(x: Tensor, pairs: list[tuple[int, int]], value) -> Tensor:
    """Pad (or crop, for negative amounts) each dimension by its (low, high) pair with `value`."""
    crop = [(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(pairs, x.shape)]
    if any(b < a for a, b in crop):
        raise ShapeError("pad", f"negative padding {pairs} removes more than the input shape "
                         f"{tuple(x.shape)}", (x,))
    x = static_slice(x, [a for a, _ in crop], [b for _, b in crop])
    config = tuple((max(lo, 0), max(hi, 0), 0) for lo, hi in pairs)
    if all(c == (0, 0, 0) for c in config):
        return x
    return bind(pad_p, x, config=config, value=value)


def _pad_edges(x: Tensor, d: int, lo: int, hi: int, mode: str) -> Tensor:
    """Reflect, replicate or circular padding of one dimension, composed of slices, flips and cat."""
    n = x.shape[d]
    limit = {"reflect": n - 1, "circular": n, "replicate": math.inf if n else 0}[mode]
    if lo < 0 or hi < 0 or max(lo, hi) > limit:
        raise ShapeError("pad", f"{mode} padding ({lo}, {hi}) is invalid for dimension {d} of size {n}: "
                         f"amounts must be in [0, {limit}]", (x,))
    if mode == "reflect":
        left, right = flip(_slice_dim(x, d, 1, lo + 1), d), flip(_slice_dim(x, d, n - 1 - hi, n - 1), d)
    elif mode == "circular":
        left, right = _slice_dim(x, d, n - lo, n), _slice_dim(x, d, 0, hi)
    else:
        edge = list(x.shape)
        left = broadcast_to(_slice_dim(x, d, 0, 1), tuple(edge[:d] + [lo] + edge[d + 1:]))
        right = broadcast_to(_slice_dim(x, d, n - 1, n), tuple(edge[:d] + [hi] + edge[d + 1:]))
    return cat([p for p, k in ((left, lo), (x, 1), (right, hi)) if k], d)


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value=None) -> Tensor:
    """Pad `x` as ``torch.nn.functional.pad``.

    Args:
        x: input tensor.
        pad: ``(left, right)`` amounts for the last dimension, then for the one before it, and so on
            (an even number of ints); negative amounts crop in "constant" mode.
        mode: "constant" (fill with `value`), "reflect" (mirror without repeating the edge), "replicate"
            (repeat the edge) or "circular" (wrap around).
        value: the fill value of "constant" mode (default 0).

    Returns:
        The padded tensor (differentiable in every mode).

    Example:
        >>> import ember
        >>> ember.pad(ember.tensor([1, 2, 3]), (1, 2), mode="reflect").tolist()
        [2, 1, 2, 3, 2, 1]
    """
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError("pad", f"padding {pad} must hold (left, right) pairs for at most {x.ndim} "
                         "dimensions", (x,))
    pairs = [(0, 0)] * (x.ndim - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(len(pad) - 2, -1, -2)]
    if mode == "constant":
        value = 0 if value is None else value
        return _pad_constant(x, pairs, value.item() if isinstance(value, Tensor) else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise EmberError("pad", "mode must be 'constant', 'reflect', 'replicate' or 'circular', "
                         f"got {mode!r}", (x,))
    if value is not None:
        raise EmberError("pad", f"value is only used by mode='constant', not {mode!r}", (x,))
    for d, (lo, hi) in enumerate(pairs):
        if lo or hi:
            x = _pad_edges(x, d, lo, hi, mode)
    return x


# -- cat and what is built on it --------------------------------------------------------------------------
def _cat_vjp(g, out, *inputs, dim):
    grads, offset = [], 0
    for x in inputs:
        n = x.shape[dim]
        wanted = isinstance(x, Tensor) and x._requires_grad
        grads.append(_slice_dim(g, dim, offset, offset + n) if wanted else None)
        offset += n
    return tuple(grads)


def _cat_jvp(primals, tangents, dim):
    filled = [zeros_like(p) if tg is None else tg for p, tg in zip(primals, tangents)]
    return bind(cat_p, *primals, dim=dim), bind(cat_p, *filled, dim=dim)


def _cat_batch(values, bdims, dim):
    size = next(v.shape[b] for v, b in zip(values, bdims) if b is not None)
    moved = [moveaxis(v, b, 0) if b is not None else broadcast_to(unsqueeze(v, 0), (size,) + tuple(v.shape))
             for v, b in zip(values, bdims)]
    return bind(cat_p, *moved, dim=dim + 1), 0


def _cat_impl(xp, *arrays, dim):
    if xp is not np:
        return xp.concatenate(arrays, axis=dim)
    # NumPy lays the result out like its inputs; a row-major result keeps later reshapes views, and a
    # pooled one reuses memory already mapped (a large fresh array costs page faults on every call)
    shape = list(arrays[0].shape)
    shape[dim] = sum(a.shape[dim] for a in arrays)
    return np.concatenate(arrays, axis=dim, out=CPU.pool.empty(tuple(shape), np.result_type(*arrays)))


cat_p = Primitive("cat", _cat_impl, vjp=_cat_vjp, jvp=_cat_jvp, batch=_cat_batch, reads=())


def _check_cat(tensors: list, d: int) -> None:
    first = tensors[0]
    for i, x in enumerate(tensors[1:], 1):
        a, b = tuple(first.shape), tuple(x.shape)
        if len(a) != len(b) or a[:d] + a[d + 1:] != b[:d] + b[d + 1:]:
            raise ShapeError("cat", f"sizes of tensors must match except in dimension {d}: expected {a} but "
                             f"got {b} for tensor {i}", tuple(tensors))


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension, promoting their dtypes as ``torch.cat`` does.

    Args:
        tensors: a non-empty sequence of tensors whose shapes agree except along `dim` (1-d empty tensors
            are skipped, as in PyTorch).
        dim: the dimension to join along.

    Returns:
        A new tensor (``concatenate`` and ``concat`` are aliases).

    Example:
        >>> import ember
        >>> ember.cat([ember.zeros(2, 3), ember.ones(1, 3)]).shape
        (3, 3)
    """
    tensors = list(tensors)
    if not tensors or not all(isinstance(x, Tensor) for x in tensors):
        raise ShapeError("cat", "expected a non-empty sequence of tensors", tuple(tensors))
    dtype = tensors[0].dtype
    for x in tensors[1:]:
        dtype = dtypes.promote(dtype, x.dtype)
    kept = [x for x in tensors if not (x.ndim == 1 and x.shape[0] == 0)] or tensors[:1]
    if any(x.ndim == 0 for x in kept):
        raise ShapeError("cat", "zero-dimensional tensors cannot be concatenated", tuple(tensors))
    d = normalize_axis(dim, kept[0].ndim, "cat", kept[0])
    _check_cat(kept, d)
    kept = [convert(x, dtype) for x in kept]
    return bind(cat_p, *kept, dim=d) if len(kept) > 1 else clone(kept[0])


concatenate = concat = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new dimension `dim`.

    Example:
        >>> import ember
        >>> ember.stack([ember.zeros(2, 3), ember.ones(2, 3)], dim=1).shape
        (2, 2, 3)
    """
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack", "expected a non-empty sequence of tensors")
    for i, x in enumerate(tensors[1:], 1):
        if tuple(x.shape) != tuple(tensors[0].shape):
            raise ShapeError("stack", f"expects each tensor to be equal size, but got "
                             f"{tuple(tensors[0].shape)} at entry 0 and {tuple(x.shape)} at entry {i}",
                             tuple(tensors))
    d = normalize_axis(dim, tensors[0].ndim + 1, "stack", tensors[0])
    return cat([unsqueeze(x, d) for x in tensors], d)


def atleast_1d(x: Tensor) -> Tensor:
    """`x` with at least one dimension (a 0-d tensor becomes shape (1,)); others are returned as they are.

    Example:
        >>> import ember
        >>> ember.atleast_1d(ember.tensor(3.0)).shape
        (1,)
    """
    return reshape(x, (1,)) if x.ndim == 0 else x


def atleast_2d(x: Tensor) -> Tensor:
    """`x` with at least two dimensions: shape (n,) becomes (1, n) and a 0-d tensor (1, 1).

    Example:
        >>> import ember
        >>> ember.atleast_2d(ember.zeros(3)).shape
        (1, 3)
    """
    return reshape(x, (1,) * (2 - x.ndim) + tuple(x.shape)) if x.ndim < 2 else x


def atleast_3d(x: Tensor) -> Tensor:
    """`x` with at least three dimensions: (n,) becomes (1, n, 1) and (r, c) becomes (r, c, 1).

    Example:
        >>> import ember
        >>> ember.atleast_3d(ember.zeros(2, 3)).shape
        (2, 3, 1)
    """
    if x.ndim >= 3:
        return x
    shape = {0: (1, 1, 1), 1: (1,) + tuple(x.shape) + (1,), 2: tuple(x.shape) + (1,)}[x.ndim]
    return reshape(x, shape)


def hstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dimension 1 (dimension 0 if every tensor is 1-d), as ``torch.hstack``.

    Example:
        >>> import ember
        >>> ember.hstack([ember.zeros(2), ember.ones(3)]).shape
        (5,)
    """
    tensors = [atleast_1d(x) for x in tensors]
    return cat(tensors, 0 if all(x.ndim == 1 for x in tensors) else 1)


def vstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dimension 0 after making each tensor at least 2-d, as ``torch.vstack``.

    Example:
        >>> import ember
        >>> ember.vstack([ember.zeros(3), ember.ones(3)]).shape
        (2, 3)
    """
    return cat([atleast_2d(x) for x in tensors], 0)


def dstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dimension 2 after making each tensor at least 3-d, as ``torch.dstack``.

    Example:
        >>> import ember
        >>> ember.dstack([ember.zeros(2, 3), ember.ones(2, 3)]).shape
        (2, 3, 2)
    """
    return cat([atleast_3d(x) for x in tensors], 2)


def _split_at(x: Tensor, d: int, bounds: Sequence[int]) -> tuple[Tensor, ...]:
    """Views of `x` between consecutive boundaries along dimension `d`."""
    return tuple(_slice_dim(x, d, a, b) for a, b in zip(bounds[:-1], bounds[1:]))


def _bounds(sizes: Sequence[int]) -> list[int]:
    out = [0]
    for s in sizes:
        out.append(out[-1] + s)
    return out


def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into views along `dim`: chunks of an int size (the last may be smaller), or the listed sizes.

    Example:
        >>> import ember
        >>> [p.shape for p in ember.zeros(5, 2).split(2)]
        [(2, 2), (2, 2), (1, 2)]
    """
    d = normalize_axis(dim, x.ndim, "split", x)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size < 0 or (size == 0 and n):
            raise ShapeError("split", f"split_size must be a positive integer, got {size}", (x,))
        sizes = [min(size, n - i) for i in range(0, n, size)] if n else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ShapeError("split", f"split sizes {sizes} must be non-negative and sum exactly to the size "
                             f"{n} of dimension {dim}", (x,))
    return _split_at(x, d, _bounds(sizes))


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into at most `chunks` views of size ``ceil(n / chunks)`` along `dim` (the last may be smaller).

    Example:
        >>> import ember
        >>> [p.shape for p in ember.zeros(6).chunk(4)]
        [(2,), (2,), (2,)]
    """
    if chunks <= 0:
        raise ShapeError("chunk", f"chunks must be greater than 0, got {chunks}", (x,))
    d = normalize_axis(dim, x.ndim, "chunk", x)
    n = x.shape[d]
    if n == 0:
        return _split_at(x, d, [0] * (chunks + 1))
    return split(x, -(-n // chunks), d)


def tensor_split(x: Tensor, indices_or_sections, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into views along `dim` at the given indices, or into `sections` near-equal parts.

    Example:
        >>> import ember
        >>> [p.shape for p in ember.zeros(7).tensor_split(3)]
        [(3,), (2,), (2,)]
    """
    d = normalize_axis(dim, x.ndim, "tensor_split", x)
    n = x.shape[d]
    if isinstance(indices_or_sections, Tensor):
        indices_or_sections = indices_or_sections.tolist()
    if isinstance(indices_or_sections, int):
        sections = indices_or_sections
        if sections <= 0:
            raise ShapeError("tensor_split", f"number of sections must be positive, got {sections}", (x,))
        q, r = divmod(n, sections)
        return _split_at(x, d, _bounds([q + 1] * r + [q] * (sections - r)))
    bounds = [0] + [min(max(i + n if i < 0 else i, 0), n) for i in indices_or_sections] + [n]
    return tuple(_slice_dim(x, d, a, max(a, b)) for a, b in zip(bounds[:-1], bounds[1:]))


def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The views ``x.select(dim, i)`` for each `i`, as a tuple.

    Example:
        >>> import ember
        >>> [p.tolist() for p in ember.tensor([[1, 2], [3, 4]]).unbind(1)]
        [[1, 3], [2, 4]]
    """
    d = normalize_axis(dim, x.ndim, "unbind", x)
    return tuple(squeeze(p, d) for p in _split_at(x, d, list(range(x.shape[d] + 1))))


# -- flip, roll -------------------------------------------------------------------------------------------
def _flip_batch(values, bdims, dims):
    return bind(flip_p, values[0], dims=_shift(dims, bdims[0])), bdims[0]


flip_p = Primitive("flip", lambda xp, x, dims: xp.flip(x, axis=dims).copy(),
                   vjp=lambda g, out, x, dims: (bind(flip_p, g, dims=dims),),
                   jvp=lambda p, tg, dims: (bind(flip_p, p[0], dims=dims), bind(flip_p, tg[0], dims=dims)),
                   batch=_flip_batch, reads=())


def flip(x: Tensor, dims, *more_dims) -> Tensor:
    """A copy of `x` with the order of elements reversed along `dims` (an int or a tuple).

    Example:
        >>> import ember
        >>> ember.tensor([[1, 2], [3, 4]]).flip(0, 1).tolist()
        [[4, 3], [2, 1]]
    """
    axes = tuple(normalize_axis(d, x.ndim, "flip", x) for d in _ints(dims, more_dims))
    if len(set(axes)) != len(axes):
        raise IndexingError("flip", f"dims {axes} appear more than once", (x,))
    return bind(flip_p, x, dims=tuple(sorted(axes)))


def fliplr(x: Tensor) -> Tensor:
    """``flip(x, 1)``: columns in reverse order (for tensors of at least two dimensions).

    Example:
        >>> import ember
        >>> ember.tensor([[1, 2], [3, 4]]).fliplr().tolist()
        [[2, 1], [4, 3]]
    """
    if x.ndim < 2:
        raise ShapeError("fliplr", "input must be at least 2-d", (x,))
    return flip(x, 1)


def flipud(x: Tensor) -> Tensor:
    """``flip(x, 0)``: rows in reverse order (for tensors of at least one dimension).

    Example:
        >>> import ember
        >>> ember.tensor([[1, 2], [3, 4]]).flipud().tolist()
        [[3, 4], [1, 2]]
    """
    if x.ndim < 1:
        raise ShapeError("flipud", "input must be at least 1-d", (x,))
    return flip(x, 0)


def _roll_batch(values, bdims, shifts, dims):
    return bind(roll_p, values[0], shifts=shifts, dims=_shift(dims, bdims[0])), bdims[0]


def _roll_vjp(g, out, x, shifts, dims):
    return (bind(roll_p, g, shifts=tuple(-s for s in shifts), dims=dims),)


roll_p = Primitive("roll", lambda xp, x, shifts, dims: xp.roll(x, shifts, axis=dims), vjp=_roll_vjp,
                   jvp=lambda p, tg, **a: (bind(roll_p, p[0], **a), bind(roll_p, tg[0], **a)),
                   batch=_roll_batch, reads=())


def roll(x: Tensor, shifts, dims=None) -> Tensor:
    """Shift elements cyclically by `shifts` along `dims` (over the flattened tensor when `dims` is None).

    Example:
        >>> import ember
        >>> ember.tensor([1, 2, 3, 4]).roll(1).tolist()
        [4, 1, 2, 3]
    """
    shifts = _ints(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise ShapeError("roll", f"got {len(shifts)} shifts but no dims", (x,))
        return reshape(roll(flatten(x), shifts, 0), tuple(x.shape))
    axes = tuple(normalize_axis(d, x.ndim, "roll", x) for d in _ints(dims))
    if len(axes) != len(shifts):
        raise ShapeError("roll", f"shifts {shifts} and dims {axes} must have the same length", (x,))
    return bind(roll_p, x, shifts=shifts, dims=axes)


# -- repeat, tile, repeat_interleave ------------------------------------------------------------------------
def repeat(x: Tensor, *sizes) -> Tensor:
    """A copy of `x` tiled `sizes[i]` times along dimension i; extra sizes add leading dimensions.

    Example:
        >>> import ember
        >>> ember.tensor([1, 2]).repeat(2, 2).tolist()
        [[1, 2, 1, 2], [1, 2, 1, 2]]
    """
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim or any(s < 0 for s in sizes):
        raise ShapeError("repeat", f"repeat sizes {sizes} must be non-negative and at least as many as the "
                         f"{x.ndim} dimensions of the tensor", (x,))
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    # (1, s0, 1, s1, ...) broadcast to (r0, s0, r1, s1, ...) then merged pairwise: one copy, grads sum
    spread = reshape(x, tuple(v for s in shape for v in (1, s)))
    tiled = broadcast_to(spread, tuple(v for r, s in zip(sizes, shape) for v in (r, s)))
    out = reshape(tiled, tuple(r * s for r, s in zip(sizes, shape)))
    # without a real repetition the reshapes above are views of `x`; repeat always returns new storage
    return clone(out) if x.numel() == 0 or all(r <= 1 for r in sizes) else out


def tile(x: Tensor, dims, *more_dims) -> Tensor:
    """Repeat `x` `dims[i]` times along each dimension; missing leading entries of `dims` count as 1.

    Example:
        >>> import ember
        >>> ember.zeros(2, 3).tile(2).shape
        (2, 6)
    """
    dims = _ints(dims, more_dims)
    return repeat(x, (1,) * (x.ndim - len(dims)) + dims)


def _segment_sum_impl(xp, g, repeats, dim):
    out = xp.zeros(g.shape[:dim] + (len(repeats),) + g.shape[dim + 1:], dtype=g.dtype)
    nonzero = [i for i, r in enumerate(repeats) if r > 0]
    if nonzero:
        starts = _bounds([repeats[i] for i in nonzero])[:-1]
        index = (slice(None),) * dim + (nonzero,)
        out[index] = xp.add.reduceat(g, starts, axis=dim)
    return out


def _interleave_batch(prim):
    def rule(values, bdims, repeats, dim):
        b = bdims[0]
        return bind(prim, values[0], repeats=repeats, dim=dim + (dim >= b)), b

    return rule


repeat_interleave_p = Primitive(
    "repeat_interleave", lambda xp, x, repeats, dim: xp.repeat(x, repeats, axis=dim),
    vjp=lambda g, out, x, **a: (bind(segment_sum_p, g, **a),),
    jvp=lambda p, tg, **a: (bind(repeat_interleave_p, p[0], **a), bind(repeat_interleave_p, tg[0], **a)),
    reads=())
segment_sum_p = Primitive(
    "segment_sum", _segment_sum_impl, vjp=lambda g, out, x, **a: (bind(repeat_interleave_p, g, **a),),
    jvp=lambda p, tg, **a: (bind(segment_sum_p, p[0], **a), bind(segment_sum_p, tg[0], **a)),
    doc="Sums of consecutive runs of `repeats[i]` entries along `dim`: the transpose of repeat_interleave.",
    reads=())
repeat_interleave_p.batch = _interleave_batch(repeat_interleave_p)
segment_sum_p.batch = _interleave_batch(segment_sum_p)


def repeat_interleave(x: Tensor, repeats=None, dim: int | None = None, *,
                      output_size: int | None = None) -> Tensor:
    """Repeat each element of `x` along `dim` (over the flattened tensor when `dim` is None).

    Args:
        x: input tensor (or, called with one integer tensor, the repeats: the result is then
            ``repeat_interleave(arange(len(x)), x)``).
        repeats: an int, or an integer tensor / sequence with one count per element along `dim`.
        dim: the dimension to repeat along.
        output_size: the total length along `dim`, checked if given.

    Returns:
        A new tensor.

    Example:
        >>> import ember
        >>> ember.tensor([1, 2, 3]).repeat_interleave(ember.tensor([1, 0, 2])).tolist()
        [1, 3, 3]
    """
    if repeats is None:
        return repeat_interleave(arange(x.shape[0] if x.ndim else 1, device=x.device), x, 0)
    if dim is None:
        x, dim = flatten(x), 0
    d = normalize_axis(dim, x.ndim, "repeat_interleave", x)
    n = x.shape[d] if x.ndim else 1
    counts = repeats.reshape(-1).tolist() if isinstance(repeats, Tensor) else repeats
    counts = [int(counts)] * n if isinstance(counts, int) else [int(c) for c in counts]
    counts = counts * n if len(counts) == 1 else counts
    if len(counts) != n or any(c < 0 for c in counts):
        raise ShapeError("repeat_interleave", f"repeats must be non-negative and hold 1 or {n} entries (the "
                         f"size of dimension {dim}), got {len(counts)}", (x,))
    if output_size is not None and output_size != sum(counts):
        raise ShapeError("repeat_interleave", f"output_size {output_size} does not match the total number of "
                         f"repeats {sum(counts)}", (x,))
    return bind(repeat_interleave_p, atleast_1d(x), repeats=tuple(counts), dim=d)


# -- triangles and diagonals --------------------------------------------------------------------------------
def _zero_for(x: Tensor):
    """A Python zero that keeps `x`'s dtype under promotion."""
    return False if x.dtype is dtypes.bool_ else 0


def _triangle(x: Tensor, keep: np.ndarray) -> Tensor:
    return where(_note_created(tensor(keep, device=x.device)), x, _zero_for(x))


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dimensions (entries with ``col - row <= diagonal``); zeros above.

    Example:
        >>> import ember
        >>> ember.ones(2, 2).tril().tolist()
        [[1.0, 0.0], [1.0, 1.0]]
    """
    if x.ndim < 2:
        raise ShapeError("tril", f"input must be at least 2-d, got {x.ndim} dimensions", (x,))
    return _triangle(x, np.tri(x.shape[-2], x.shape[-1], int(diagonal), dtype=bool))


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dimensions (entries with ``col - row >= diagonal``); zeros below.

    Example:
        >>> import ember
        >>> ember.ones(2, 2).triu().tolist()
        [[1.0, 1.0], [0.0, 1.0]]
    """
    if x.ndim < 2:
        raise ShapeError("triu", f"input must be at least 2-d, got {x.ndim} dimensions", (x,))
    return _triangle(x, ~np.tri(x.shape[-2], x.shape[-1], int(diagonal) - 1, dtype=bool))


def _diagonal_impl(xp, x, offset, dim1, dim2):
    # NumPy's diagonal view is read-only; rebuild it from strides so writes reach the base (as PyTorch)
    n = xp.diagonal(x, offset, dim1, dim2).shape[-1]
    y = xp.moveaxis(x, (dim1, dim2), (-2, -1))[..., max(-offset, 0):, max(offset, 0):]
    strides = y.strides[:-2] + (y.strides[-2] + y.strides[-1],)
    return xp.lib.stride_tricks.as_strided(y, y.shape[:-2] + (n,), strides)


def _embed_diagonal(g: Tensor, offset: int, rows: int, cols: int) -> Tensor:
    """Put the last dimension of `g` on diagonal `offset` of zero (rows, cols) matrices."""
    n = g.shape[-1]
    square = where(tensor(np.eye(n, dtype=bool), device=g.device), unsqueeze(g, -1), _zero_for(g))
    r0, c0 = max(-offset, 0), max(offset, 0)
    pairs = [(0, 0)] * (g.ndim - 1) + [(r0, rows - r0 - n), (c0, cols - c0 - n)]
    return _pad_constant(square, pairs, 0)


def _diagonal_vjp(g, out, x, offset, dim1, dim2):
    rest = [d for d in range(x.ndim) if d not in (dim1, dim2)]
    full = _embed_diagonal(g, offset, x.shape[dim1], x.shape[dim2])
    return (permute(full, _inverse(rest + [dim1, dim2])),)


def _diagonal_batch(values, bdims, offset, dim1, dim2):
    b = bdims[0]
    d1, d2 = _shift((dim1, dim2), b)
    out = bind(diagonal_p, values[0], offset=offset, dim1=d1, dim2=d2)
    return out, b - (d1 < b) - (d2 < b)


diagonal_p = Primitive("diagonal", _diagonal_impl, vjp=_diagonal_vjp,
                       jvp=lambda p, tg, **a: (bind(diagonal_p, p[0], **a), bind(diagonal_p, tg[0], **a)),
                       batch=_diagonal_batch, view=True, reads=())


def diagonal(x: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """Diagonal `offset` of the matrices in dims (`dim1`, `dim2`), as the last dimension of a view.

    Example:
        >>> import ember
        >>> ember.arange(9).reshape(3, 3).diagonal(1).tolist()
        [1, 5]
    """
    d1, d2 = normalize_axis(dim1, x.ndim, "diagonal", x), normalize_axis(dim2, x.ndim, "diagonal", x)
    if d1 == d2 or x.ndim < 2:
        raise IndexingError("diagonal", f"dim1 and dim2 must be two different dimensions, got {dim1} and "
                            f"{dim2} for a tensor of {x.ndim} dimensions", (x,))
    return bind(diagonal_p, x, offset=int(offset), dim1=d1, dim2=d2)


def diag_embed(x: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """Matrices whose diagonal `offset` (in output dims `dim1`, `dim2`) holds the last dimension of `x`.

    Example:
        >>> import ember
        >>> ember.diag_embed(ember.tensor([1, 2])).tolist()
        [[1, 0], [0, 2]]
    """
    if x.ndim < 1:
        raise ShapeError("diag_embed", "input must be at least 1-d", (x,))
    d1 = normalize_axis(dim1, x.ndim + 1, "diag_embed", x)
    d2 = normalize_axis(dim2, x.ndim + 1, "diag_embed", x)
    if d1 == d2:
        raise IndexingError("diag_embed", f"dim1 and dim2 must differ, got {dim1} and {dim2}", (x,))
    m = x.shape[-1] + abs(int(offset))
    return movedim(_embed_diagonal(x, int(offset), m, m), (-2, -1), (d1, d2))


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """A square matrix with vector `x` on diagonal `diagonal`, or a copy of that diagonal of matrix `x`.

    Example:
        >>> import ember
        >>> ember.diag(ember.tensor([[1, 2], [3, 4]])).tolist()
        [1, 4]
    """
    if x.ndim == 1:
        return diag_embed(x, diagonal)
    if x.ndim == 2:
        return clone(bind(diagonal_p, x, offset=int(diagonal), dim1=0, dim2=1))
    raise ShapeError("diag", f"expects a 1-d or 2-d tensor, got {x.ndim} dimensions", (x,))


# -- memory layout -----------------------------------------------------------------------------------------
def is_contiguous(x: Tensor) -> bool:
    """True if the elements of `x` are laid out densely in row-major order."""
    x = _concrete_layout(x)
    return x is None or bool(x._data.flags.c_contiguous)


def contiguous(x: Tensor) -> Tensor:
    """`x` itself if it is row-major contiguous, else a contiguous copy.

    Example:
        >>> import ember
        >>> ember.zeros(2, 3).t().contiguous().is_contiguous()
        True
    """
    return x if is_contiguous(x) else bind(dense_copy_p, x)


def broadcast_tensors(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors broadcast to their common shape (views).

    Example:
        >>> import ember
        >>> [tuple(t.shape) for t in ember.broadcast_tensors(ember.ones(3, 1), ember.ones(4))]
        [(3, 4), (3, 4)]
    """
    shape = broadcast_shapes(*(tuple(t.shape) for t in tensors), op="broadcast_tensors", operands=tensors)
    return tuple(broadcast_to(t, shape) for t in tensors)


def ravel(x: Tensor) -> Tensor:
    """`x` flattened to one dimension (a view where the layout allows)."""
    return reshape(x, (-1,))


def select(x: Tensor, dim: int, index: int) -> Tensor:
    """The slice at `index` along `dim`, with that dimension removed (``x[..., index, ...]``).

    Example:
        >>> import ember
        >>> ember.select(ember.arange(6).reshape(2, 3), 1, -1).tolist()
        [2, 5]
    """
    dim = normalize_axis(dim, x.ndim, "select", x)
    size = x.shape[dim]
    if not -size <= index < size:
        raise IndexingError("select", f"index {index} is out of range for dimension {dim} with size {size}",
                            (x,))
    return squeeze(narrow(x, dim, index % size, 1), dim)


def rot90(x: Tensor, k: int = 1, dims: Sequence[int] = (0, 1)) -> Tensor:
    """`x` rotated by 90 degrees `k` times in the plane of `dims`, from the first towards the second.

    Example:
        >>> import ember
        >>> ember.rot90(ember.tensor([[1, 2], [3, 4]])).tolist()
        [[2, 4], [1, 3]]
    """
    if len(dims) != 2:
        raise ShapeError("rot90", f"expected two dimensions, got {tuple(dims)}", (x,))
    a, b = (normalize_axis(d, x.ndim, "rot90", x) for d in dims)
    if a == b:
        raise ShapeError("rot90", f"the two dimensions must differ, got {tuple(dims)}", (x,))
    k %= 4
    if k == 1:
        return transpose(flip(x, b), a, b)
    if k == 2:
        return flip(x, (a, b))
    if k == 3:
        return flip(transpose(x, a, b), b)
    return x


def column_stack(tensors: Sequence[Tensor]) -> Tensor:
    """1-D tensors as columns (others as they are) side by side: ``hstack`` of ``(n, 1)`` columns."""
    return hstack([reshape(t, (-1, 1)) if t.ndim <= 1 else t for t in tensors])


def _split_along(x: Tensor, sections, dim: int, op: str, min_ndim: int) -> tuple[Tensor, ...]:
    if x.ndim < min_ndim:
        raise ShapeError(op, f"expected at least {min_ndim} dimensions, got shape {tuple(x.shape)}", (x,))
    if isinstance(sections, int) and x.shape[dim] % sections:
        raise ShapeError(op, f"dimension {dim} of size {x.shape[dim]} does not split into {sections} equal "
                         "parts", (x,))
    return tensor_split(x, sections, dim)


def hsplit(x: Tensor, sections) -> tuple[Tensor, ...]:
    """Split along the columns: dimension 1, or 0 for 1-D tensors (equal parts, or at the indices)."""
    return _split_along(x, sections, 1 if x.ndim > 1 else 0, "hsplit", 1)


def vsplit(x: Tensor, sections) -> tuple[Tensor, ...]:
    """Split along dimension 0 of a tensor of at least 2 dimensions."""
    return _split_along(x, sections, 0, "vsplit", 2)


def dsplit(x: Tensor, sections) -> tuple[Tensor, ...]:
    """Split along dimension 2 of a tensor of at least 3 dimensions."""
    return _split_along(x, sections, 2, "dsplit", 3)


def diagflat(x: Tensor, offset: int = 0) -> Tensor:
    """A matrix with the elements of `x` (flattened) on its `offset`-th diagonal.

    Example:
        >>> import ember
        >>> ember.diagflat(ember.tensor([[1, 2]])).tolist()
        [[1, 0], [0, 2]]
    """
    return diag(reshape(x, (-1,)), offset)


def vander(x: Tensor, N: int | None = None, increasing: bool = False) -> Tensor:
    """The Vandermonde matrix of the 1-D `x`: columns ``x**(N-1), ..., x, 1`` (the other way round with
    `increasing`), N defaulting to ``len(x)``.

    Example:
        >>> import ember
        >>> ember.vander(ember.tensor([1, 2, 3]), 3).tolist()
        [[1, 1, 1], [4, 2, 1], [9, 3, 1]]
    """
    from .elementwise import pow as _pow

    if x.ndim != 1:
        raise ShapeError("vander", f"expected a 1-D tensor, got shape {tuple(x.shape)}", (x,))
    n = x.shape[0] if N is None else N
    if n < 0:
        raise ShapeError("vander", f"N must be non-negative, got {n}", (x,))
    if x.dtype is dtypes.bool_:
        x = convert(x, dtypes.int64)
    powers = arange(n, dtype=dtypes.int64 if not x.dtype.is_floating_point else x.dtype, device=x.device)
    if not increasing:
        powers = flip(powers, 0)
    return _pow(reshape(x, (-1, 1)), reshape(powers, (1, -1)))


def block_diag(*tensors: Tensor) -> Tensor:
    """The tensors (0-, 1- or 2-D) as blocks on the diagonal of a matrix, zeros elsewhere.

    Example:
        >>> import ember
        >>> ember.block_diag(ember.ones(1, 1), 2 * ember.ones(1, 2)).tolist()
        [[1.0, 0.0, 0.0], [0.0, 2.0, 2.0]]
    """
    from .. import dtypes as _dtypes

    blocks = [reshape(t, (1, -1)) if t.ndim < 2 else t for t in tensors]
    if any(b.ndim != 2 for b in blocks):
        raise ShapeError("block_diag", "expected tensors of at most 2 dimensions, got shapes "
                         f"{[tuple(t.shape) for t in tensors]}", tensors)
    if not blocks:
        return zeros_like(tensor([[]]))
    dtype = blocks[0].dtype
    for b in blocks[1:]:
        dtype = _dtypes.promote(dtype, b.dtype)
    width = sum(b.shape[1] for b in blocks)
    rows, left = [], 0
    for b in blocks:
        n, m = b.shape
        rows.append(pad(convert(b, dtype), (left, width - left - m)))
        left += m
    return cat(rows, 0)


TENSOR_METHODS = {
    "ravel": ravel, "select": select, "diagflat": diagflat, "rot90": rot90, "hsplit": hsplit,
    "vsplit": vsplit, "dsplit": dsplit,
    "reshape": reshape, "view": view, "view_as": view_as, "reshape_as": reshape_as,
    "broadcast_to": broadcast_to, "expand": broadcast_to, "expand_as": expand_as,
    "permute": permute, "transpose": transpose, "swapaxes": swapaxes, "swapdims": swapdims,
    "moveaxis": moveaxis, "movedim": movedim, "t": t, "squeeze": squeeze, "unsqueeze": unsqueeze,
    "flatten": flatten, "unflatten": unflatten, "narrow": narrow, "split": split, "chunk": chunk,
    "tensor_split": tensor_split, "unbind": unbind, "flip": flip, "fliplr": fliplr, "flipud": flipud,
    "roll": roll, "repeat": repeat, "tile": tile, "repeat_interleave": repeat_interleave, "tril": tril,
    "triu": triu, "diagonal": diagonal, "diag": diag, "diag_embed": diag_embed, "contiguous": contiguous,
    "is_contiguous": is_contiguous,
}
TENSOR_INPLACE = {"tril_": tril, "triu_": triu}

stop_gradient_p = Primitive(
    "stop_gradient", lambda xp, x: x, vjp=lambda g, out, x: (None,),
    jvp=lambda primals, tangents: (stop_gradient(primals[0]), None),
    batch=lambda values, bdims: (stop_gradient(values[0]), bdims[0]), view=True, nondiff_inputs=(0,),
    reads=(), doc="The value of its operand, through which no derivative flows (``Tensor.detach`` of a "
                  "traced value, JAX's ``lax.stop_gradient``).")
stop_gradient_p.unview = lambda base, value: value


leaf_update_p = Primitive(
    "leaf_update", lambda xp, new, leaf: new, vjp=lambda g, out, new, leaf: (None, g),
    jvp=lambda primals, tangents: (primals[0], tangents[1]),
    batch=lambda values, bdims: (values[0], bdims[0]), view=True, nondiff_inputs=(0,),
    reads=(), doc="The value of its first operand, with derivatives flowing to the second as if it were "
                  "that: a leaf tensor given new values in place without recording (``with no_grad(): "
                  "w.clamp_(...)``) still collects the gradients of what reads it afterwards.")


def stop_gradient(x: Tensor) -> Tensor:
    """`x`'s value with no derivative flowing through it, in every transform: the traced form of
    ``Tensor.detach`` (eager tensors detach without it)."""
    return bind(stop_gradient_p, x)


reshape_p.unview = lambda base, value, shape: reshape(value, base.shape)
transpose_p.unview = lambda base, value, perm: permute(value, tuple(perm.index(i) for i in range(len(perm))))
