"""Reductions over any set of axes (sum, …) and the helpers that normalise axes."""
from __future__ import annotations

from typing import Sequence

from .. import dtypes
from ..dispatch import bind
from ..errors import IndexingError
from ..primitive import Primitive
from ..tensor import Tensor

__all__ = ["sum"]

_HALF_NP = (dtypes.float16.np, dtypes.bfloat16.np)


def normalize_axis(axis: int, ndim: int, op: str = "reduce", operand=None) -> int:
    """A non-negative axis index, or IndexingError naming the op and the valid range."""
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise IndexingError(op, f"dimension {axis} is out of range for a tensor of {ndim} dimensions "
                            f"(expected in [{-max(ndim, 1)}, {max(ndim, 1) - 1}])",
                            (operand,) if operand is not None else ())
    return axis % ndim if ndim else 0


def normalize_axes(axis, ndim: int, op: str = "reduce", operand=None) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; None means every axis."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    axes = tuple(sorted({normalize_axis(a, ndim, op, operand) for a in axis}))
    return axes if ndim else ()


def _sum_impl(xp, x, axis, keepdims):
    if x.dtype in _HALF_NP:
        return xp.sum(x, axis=axis, keepdims=keepdims, dtype=xp.float32).astype(x.dtype)
    if x.dtype.kind in "biu":
        return xp.sum(x, axis=axis, keepdims=keepdims, dtype=xp.int64)
    return xp.sum(x, axis=axis, keepdims=keepdims)


def expand_reduced(g: Tensor, shape: Sequence[int], axis: tuple[int, ...], keepdims: bool) -> Tensor:
    """Broadcast a reduced cotangent `g` back to the input `shape`."""
    from .movement import broadcast_to, reshape

    if not keepdims:
        kept = [1 if i in axis else s for i, s in enumerate(shape)]
        g = reshape(g, tuple(kept))
    return broadcast_to(g, tuple(shape))


def _sum_vjp(g, out, x, axis, keepdims):
    return (expand_reduced(g, x.shape, axis, keepdims),)


def _sum_jvp(primals, tangents, axis, keepdims):
    return sum(primals[0], axis, keepdims), sum(tangents[0], axis, keepdims)


def shifted_axes(axis: tuple[int, ...], bdim: int) -> tuple[int, ...]:
    """Axes of the logical (unbatched) tensor expressed for the batched value whose batch dim is `bdim`."""
    return tuple(a + (a >= bdim) for a in axis)


def batch_reduction(fn):
    """The batching rule of a reduction with ``axis``/``keepdims`` attributes: move the batch dim to 0."""
    def rule(values, bdims, axis, keepdims, **attrs):
        from .movement import moveaxis

        x = moveaxis(values[0], bdims[0], 0)
        return fn(x, tuple(a + 1 for a in axis), keepdims, **attrs), 0

    return rule


sum_p = Primitive("reduce_sum", _sum_impl, vjp=_sum_vjp, jvp=_sum_jvp)
sum_p.batch = batch_reduction(lambda x, axis, keepdims: bind(sum_p, x, axis=axis, keepdims=keepdims))


def sum(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Sum over `dim` (an int, a tuple, or None for all dimensions)."""
    from .elementwise import convert

    if dtype is not None:
        x = convert(x, dtype)
    axis = normalize_axes(dim, len(x.shape), "sum", x)
    return bind(sum_p, x, axis=axis, keepdims=bool(keepdim))


def sum_to_shape(g: Tensor, shape: Sequence[int]) -> Tensor:
    """Sum `g` over the dimensions that broadcasting added or stretched, giving `shape`."""
    from .movement import reshape

    shape = tuple(shape)
    gshape = tuple(g.shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1)
    out = bind(sum_p, g, axis=axes, keepdims=True) if axes else g
    return reshape(out, shape)


TENSOR_METHODS = {"sum": sum}
