"""Reductions over any set of dimensions, scans, and the helpers that normalise axes.

Reductions that need their own kernel are primitives (sum, prod, amax/amin, argmax/argmin, var, all/any,
cumsum/cumprod); mean, std, logsumexp, norm and count_nonzero are compositions, and max/min along a dim
is argmax/argmin followed by ``pick_along_axis`` (so the values' gradient goes to the returned index).
Kernels call the backend's reductions directly; float16/bfloat16 accumulate in float32.
"""
from __future__ import annotations

import builtins
import math
import warnings
from collections import namedtuple
from typing import Sequence

import numpy as np

from ...backends import CPU
from .. import dtypes
from ..creation import arange
from ..dispatch import bind
from ..errors import DTypeError, EmberError, IndexingError
from ..primitive import Primitive
from ..tensor import Tensor, Tracer
from . import elementwise as ew

__all__ = ["sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "var", "std", "var_mean",
           "std_mean", "logsumexp", "norm", "cumsum", "cumprod", "all", "any", "count_nonzero", "nansum",
           "nanmean", "logcumsumexp", "cummax", "cummin", "aminmax", "diff", "cov", "corrcoef", "quantile",
           "nanquantile", "dist", "cdist", "trapezoid", "trapz", "cumulative_trapezoid", "renorm"]

_HALF_NP = (dtypes.float16.np, dtypes.bfloat16.np)
_INT64_NP = dtypes.int64.np


# -- axes ---------------------------------------------------------------------------------------------
def normalize_axis(axis: int, ndim: int, op: str = "reduce", operand=None) -> int:
    """A non-negative axis index, or IndexingError naming the op and the valid range."""
    size = builtins.max(ndim, 1)
    if not -size <= axis < size:
        raise IndexingError(op, f"dimension {axis} is out of range for a tensor of {ndim} dimensions "
                            f"(expected in [{-size}, {size - 1}])", (operand,) if operand is not None else ())
    return axis % ndim if ndim else 0


def normalize_axes(axis, ndim: int, op: str = "reduce", operand=None) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; None means every axis."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    axes = tuple(sorted({normalize_axis(a, ndim, op, operand) for a in axis}))
    return axes if ndim else ()


def reduce_dims(dim, x: Tensor, op: str) -> tuple[int, ...]:
    """PyTorch's `dim` argument as sorted axes: None or () mean all; a repeated dim is an error."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return tuple(range(x.ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    axes = [normalize_axis(d, x.ndim, op, x) for d in dims]
    for a in axes:
        if axes.count(a) > 1:
            raise IndexingError(op, f"dim {a} appears multiple times in the list of dims {tuple(dims)}", (x,))
    return tuple(sorted(axes)) if x.ndim else ()


def _numel(shape: Sequence[int], axes: tuple[int, ...]) -> int:
    return math.prod(shape[a] for a in axes)


def _check_nonempty(x: Tensor, axes: tuple[int, ...], op: str) -> None:
    for a in axes:
        if x.shape[a] == 0:
            raise IndexingError(op, f"expected reduction dim {a} to have non-zero size", (x,))
    if x.numel() == 0 and not axes:
        raise IndexingError(op, "expected a non-empty tensor", (x,))


def _require_float(x: Tensor, op: str) -> None:
    if not x.dtype.is_floating_point:
        raise DTypeError(op, f"expected a floating point input, got {x.dtype}; convert it first or pass "
                         "dtype=", (x,))


def expand_reduced(g: Tensor, shape: Sequence[int], axis: tuple[int, ...], keepdims: bool) -> Tensor:
    """Broadcast a reduced cotangent `g` back to the input `shape`."""
    from .movement import broadcast_to, reshape

    if not keepdims:
        kept = [1 if i in axis else s for i, s in enumerate(shape)]
        g = reshape(g, tuple(kept))
    return broadcast_to(g, tuple(shape))


def _squeeze(x: Tensor, axis: tuple[int, ...]) -> Tensor:
    from .movement import reshape

    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axis))


# -- batching ------------------------------------------------------------------------------------------
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


def _reduction(name: str, impl, vjp, jvp) -> Primitive:
    """A reduction primitive with ``axis``/``keepdims`` attributes and the standard batching rule."""
    prim = Primitive(name, impl, vjp=vjp, jvp=jvp)
    prim.batch = batch_reduction(lambda x, axis, keepdims, **attrs: bind(prim, x, axis=axis,
                                                                         keepdims=keepdims, **attrs))
    return prim


def _no_tangent(prim: Primitive):
    """JVP of an op with an integer or bool result: no tangent."""
    def jvp(primals, tangents, **attrs):
        return bind(prim, *primals, **attrs), None

    return jvp


# -- sum and prod --------------------------------------------------------------------------------------
def _acc_dtypes(in_np, dtype):
    """(accumulator, result) NumPy dtypes: ints and bools give int64, halves accumulate in float32."""
    out = dtype.np if dtype is not None else (_INT64_NP if in_np.kind in "biu" else in_np)
    return (dtypes.float32.np if out in _HALF_NP else out), out


def _accumulating_impl(name: str):
    def impl(xp, x, axis, keepdims, dtype=None):
        acc, out = _acc_dtypes(x.dtype, dtype)
        result = getattr(xp, name)(x, axis=axis, keepdims=keepdims, dtype=acc)
        return xp.asarray(result).astype(out, copy=False)

    return impl


def _like_input(g: Tensor, x: Tensor) -> Tensor:
    return g if g.dtype is x.dtype else ew.convert(g, x.dtype)


def _sum_vjp(g, out, x, axis, keepdims, dtype=None):
    return (_like_input(expand_reduced(g, x.shape, axis, keepdims), x),)


def _sum_jvp(primals, tangents, axis, keepdims, dtype=None):
    attrs = dict(axis=axis, keepdims=keepdims, dtype=dtype)
    return bind(sum_p, primals[0], **attrs), bind(sum_p, tangents[0], **attrs)


sum_p = _reduction("reduce_sum", _accumulating_impl("sum"), _sum_vjp, _sum_jvp)


def _generated_reduce(kind: str, x, axis, keepdims, correction: float = 0.0):
    """`kind` of `x` over `axis` by the backend's generated reduction kernels, when they are registered
    and apply: the row kernel for the trailing axes (or all of them), the column kernel for leading
    ones; else None."""
    if not axis:
        return None
    k = len(axis)
    if k < x.ndim and axis == tuple(range(k)):
        out = CPU.column_reduce(kind, x, k, correction) if CPU.column_reduce is not None else None
        return out.reshape((1,) * k + out.shape) if out is not None and keepdims else out
    if CPU.row_reduce is None or axis != tuple(range(x.ndim - k, x.ndim)):
        return None
    if k == x.ndim and not x.flags.c_contiguous and x.flags.f_contiguous:
        x = x.ravel(order="K")  # every element: the order of memory serves as well (a view)
    out = CPU.row_reduce(kind, x, builtins.min(k, x.ndim), correction)
    if out is not None and keepdims:
        out = out.reshape(out.shape + (1,) * k)
    return out


def _sum_cpu(x, axis, keepdims, dtype=None):
    """The CPU kernel of ``reduce_sum``: large float arrays summed over their leading axes (a bias's
    gradient), their trailing axes or all of them go to the backend's generated column or row kernels
    (all cores; as accurate as NumPy or more), the rest to NumPy."""
    out = _generated_reduce("sum", x, tuple(axis), keepdims) if dtype is None else None
    return out if out is not None else sum_p.impl(np, x, axis=axis, keepdims=keepdims, dtype=dtype)


sum_p.kernels["cpu"] = _sum_cpu


def _others_product(x: Tensor, axis: tuple[int, ...]) -> Tensor:
    """Each element's product of the other elements of its slice, without dividing by zero.

    Zeros are set aside; the factor they contribute stays a function of them (numerically 0 or 1), so
    second derivatives are right too.
    """
    def over_slice(prim, v):
        return expand_reduced(bind(prim, v, axis=axis, keepdims=True), x.shape, axis, True)

    zero = ew.eq(x, 0)
    nonzero = ew.where(zero, 1.0, x)
    n_zero = over_slice(sum_p, zero)
    zeros_sum = over_slice(sum_p, ew.where(zero, x, 0.0))
    one_zero = ew.where(zero, 1.0, zeros_sum)         # a nonzero element times the single zero
    two_zeros = ew.where(zero, zeros_sum - x, 0.0)    # a zero element times the other zero
    factor = ew.where(n_zero == 1, one_zero, ew.where(n_zero == 2, two_zeros, 0.0))
    return over_slice(prod_p, nonzero) / nonzero * ew.where(n_zero == 0, 1.0, factor)


def _prod_vjp(g, out, x, axis, keepdims, dtype=None):
    g = _like_input(expand_reduced(g, x.shape, axis, keepdims), x)
    return (g * _others_product(x, axis),)


def _prod_jvp(primals, tangents, axis, keepdims, dtype=None):
    x, t = primals[0], tangents[0]
    out = bind(prod_p, x, axis=axis, keepdims=keepdims, dtype=dtype)
    return out, bind(sum_p, t * _others_product(x, axis), axis=axis, keepdims=keepdims, dtype=dtype)


prod_p = _reduction("reduce_prod", _accumulating_impl("prod"), _prod_vjp, _prod_jvp)


def sum(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Sum over `dim` (an int, a tuple, or None / () for all dimensions).

    Args:
        x: input tensor.
        dim: dimension(s) to reduce.
        keepdim: keep reduced dimensions with size 1.
        dtype: result dtype (the input is accumulated in it). By default ints and bools give int64.

    Returns:
        The sums.

    Example:
        >>> ember.tensor([[1, 2], [3, 4]]).sum(1).tolist()
        [3, 7]
    """
    axis = reduce_dims(dim, x, "sum")
    dtype = dtypes.as_dtype(dtype) if dtype is not None else None
    return bind(sum_p, x, axis=axis, keepdims=bool(keepdim), dtype=dtype)


def prod(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Product over `dim`; the gradient is exact with zeros in the input (no division by zero).

    Args:
        x: input tensor.
        dim: dimension(s) to reduce (None for all).
        keepdim: keep reduced dimensions with size 1.
        dtype: result dtype. By default ints and bools give int64.

    Returns:
        The products.

    Example:
        >>> ember.tensor([[1.0, 2.0], [3.0, 4.0]]).prod(0).tolist()
        [3.0, 8.0]
    """
    axis = reduce_dims(dim, x, "prod")
    dtype = dtypes.as_dtype(dtype) if dtype is not None else None
    return bind(prod_p, x, axis=axis, keepdims=bool(keepdim), dtype=dtype)


def mean(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Mean over `dim`; the input must be floating point (or `dtype` given), as in PyTorch.

    Args:
        x: input tensor.
        dim: dimension(s) to reduce (None for all).
        keepdim: keep reduced dimensions with size 1.
        dtype: convert the input to this dtype first.

    Returns:
        The means (float16/bfloat16 inputs are summed in float32).

    Example:
        >>> ember.tensor([[1.0, 2.0], [3.0, 4.0]]).mean(0).tolist()
        [2.0, 3.0]
    """
    if dtype is not None:
        x = ew.convert(x, dtype)
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        raise DTypeError("mean", f"could not infer the output dtype: the input must be floating point or "
                         f"complex, got {x.dtype}; pass dtype=", (x,))
    axis = reduce_dims(dim, x, "mean")
    n = _numel(x.shape, axis)
    if x.dtype.np in _HALF_NP:
        total = bind(sum_p, x, axis=axis, keepdims=bool(keepdim), dtype=dtypes.float32)
        return ew.convert(total / n, x.dtype)
    return bind(sum_p, x, axis=axis, keepdims=bool(keepdim), dtype=None) / n


# -- amax / amin ---------------------------------------------------------------------------------------
def _extreme_impl(name: str):
    def impl(xp, x, axis, keepdims):
        return xp.asarray(getattr(xp, name)(x, axis=axis, keepdims=keepdims))

    return impl


def _ties(x: Tensor, out: Tensor, axis, keepdims) -> tuple[Tensor, Tensor]:
    """The mask of elements equal to their slice's extreme, and the tie count (shaped like `out`)."""
    mask = ew.eq(x, expand_reduced(out, x.shape, axis, keepdims))
    return mask, bind(sum_p, mask, axis=axis, keepdims=keepdims, dtype=None)


def _extreme_vjp(g, out, x, axis, keepdims):
    mask, count = _ties(x, out, axis, keepdims)
    return (ew.where(mask, expand_reduced(g / count, x.shape, axis, keepdims), 0.0),)


def _extreme_jvp(prim: Primitive):
    def jvp(primals, tangents, axis, keepdims):
        x, t = primals[0], tangents[0]
        out = bind(prim, x, axis=axis, keepdims=keepdims)
        mask, count = _ties(x, out, axis, keepdims)
        return out, bind(sum_p, ew.where(mask, t, 0.0), axis=axis, keepdims=keepdims, dtype=None) / count

    return jvp


amax_p = _reduction("reduce_max", _extreme_impl("amax"), _extreme_vjp, None)
amin_p = _reduction("reduce_min", _extreme_impl("amin"), _extreme_vjp, None)
amax_p.jvp = _extreme_jvp(amax_p)
amin_p.jvp = _extreme_jvp(amin_p)


def _extreme_cpu(kind: str, prim: Primitive):
    """The CPU kernel of ``reduce_max``/``reduce_min``: the generated row- or column-reduction kernel for
    large float arrays reduced over trailing axes (or all) or leading ones, else NumPy."""
    def kernel(x, axis, keepdims):
        out = _generated_reduce(kind, x, tuple(axis), keepdims)
        return out if out is not None else prim.impl(np, x, axis=axis, keepdims=keepdims)

    return kernel


amax_p.kernels["cpu"] = _extreme_cpu("max", amax_p)
amin_p.kernels["cpu"] = _extreme_cpu("min", amin_p)


def _extreme(prim: Primitive, x: Tensor, dim, keepdim: bool, op: str) -> Tensor:
    axis = reduce_dims(dim, x, op)
    _check_nonempty(x, axis, op)
    return bind(prim, x, axis=axis, keepdims=bool(keepdim))


def amax(x: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """Maximum over `dim` (() or None for all); the gradient is split evenly among tied maxima.

    Args:
        x: input tensor.
        dim: dimension(s) to reduce.
        keepdim: keep reduced dimensions with size 1.

    Returns:
        The maxima.

    Example:
        >>> ember.tensor([[1.0, 5.0], [3.0, 4.0]]).amax(1).tolist()
        [5.0, 4.0]
    """
    return _extreme(amax_p, x, dim, keepdim, "amax")


def amin(x: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """Minimum over `dim` (() or None for all); the gradient is split evenly among tied minima.

    Args and Returns as in :func:`amax`.

    Example:
        >>> ember.tensor([[1.0, 5.0], [3.0, 4.0]]).amin(1).tolist()
        [1.0, 3.0]
    """
    return _extreme(amin_p, x, dim, keepdim, "amin")


# -- argmax / argmin and max / min with indices --------------------------------------------------------
def _arg_impl(name: str):
    def impl(xp, x, axis, keepdims):
        return xp.asarray(getattr(xp, name)(x, axis=axis, keepdims=keepdims)).astype(_INT64_NP, copy=False)

    return impl


def _arg_batch(prim: Primitive):
    def rule(values, bdims, axis, keepdims):
        from .movement import moveaxis, reshape

        x = moveaxis(values[0], bdims[0], 0)
        if axis is not None:
            return bind(prim, x, axis=axis + 1, keepdims=keepdims), 0
        out = bind(prim, reshape(x, (x.shape[0], -1)), axis=1, keepdims=False)
        if keepdims:
            out = reshape(out, (x.shape[0],) + (1,) * (x.ndim - 1))
        return out, 0

    return rule


# Integer results carry no gradient: no VJP, so nothing is recorded on the tape.
argmax_p = Primitive("argmax", _arg_impl("argmax"))
argmin_p = Primitive("argmin", _arg_impl("argmin"))
for _prim in (argmax_p, argmin_p):
    _prim.jvp = _no_tangent(_prim)
    _prim.batch = _arg_batch(_prim)


def _arg(prim: Primitive, x: Tensor, dim, keepdim: bool, op: str) -> Tensor:
    if x.dtype is dtypes.bool_:
        raise DTypeError(op, "does not support bool input (as in PyTorch); convert it first", (x,))
    if dim is None or x.ndim == 0:
        if x.numel() == 0:
            raise IndexingError(op, "expected reduction dim to be specified for an empty input", (x,))
        if dim is not None:
            normalize_axis(dim, x.ndim, op, x)  # a 0-d tensor accepts dim 0 or -1
        return bind(prim, x, axis=None, keepdims=bool(keepdim))
    axis = normalize_axis(dim, x.ndim, op, x)
    _check_nonempty(x, (axis,), op)
    return bind(prim, x, axis=axis, keepdims=bool(keepdim))


def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index (int64) of the first maximum along `dim`, or in the flattened tensor when `dim` is None.

    Args:
        x: input tensor.
        dim: the dimension to reduce, or None.
        keepdim: keep the reduced dimension(s) with size 1.

    Returns:
        An int64 tensor of indices.

    Example:
        >>> ember.tensor([[1.0, 5.0], [3.0, 2.0]]).argmax(1).tolist()
        [1, 0]
    """
    return _arg(argmax_p, x, dim, keepdim, "argmax")


def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index (int64) of the first minimum along `dim`, or in the flattened tensor when `dim` is None.

    Args and Returns as in :func:`argmax`.

    Example:
        >>> ember.tensor([[1.0, 5.0], [3.0, 2.0]]).argmin(1).tolist()
        [0, 1]
    """
    return _arg(argmin_p, x, dim, keepdim, "argmin")


def _pick_impl(xp, x, index, axis):
    return xp.take_along_axis(x, index, axis=axis)


def _pick_vjp(g, out, x, index, axis):
    from .movement import reshape

    if not (isinstance(x, Tensor) and x._requires_grad):
        return None, None
    n = x.shape[axis]
    positions = reshape(arange(n, device=x.device), tuple(n if i == axis else 1 for i in range(x.ndim)))
    return ew.where(ew.eq(positions, index), g, 0.0), None


def _pick_jvp(primals, tangents, axis):
    x, index = primals
    return bind(pick_p, x, index, axis=axis), bind(pick_p, tangents[0], index, axis=axis)


def _batched_at_0(v, bdim, size):
    from .movement import broadcast_to, moveaxis, reshape

    if bdim is not None:
        return moveaxis(v, bdim, 0)
    return broadcast_to(reshape(v, (1,) + tuple(v.shape)), (size,) + tuple(v.shape))


def _pick_batch(values, bdims, axis):
    size = next(v.shape[b] for v, b in zip(values, bdims) if b is not None)
    x, index = (_batched_at_0(v, b, size) for v, b in zip(values, bdims))
    return bind(pick_p, x, index, axis=axis + 1), 0


# The value at a given index along an axis (index has size 1 there): the gradient goes to that index only.
pick_p = Primitive("pick_along_axis", _pick_impl, vjp=_pick_vjp, jvp=_pick_jvp, batch=_pick_batch,
                   nondiff_inputs=(1,))

max_result = namedtuple("max", ("values", "indices"))
min_result = namedtuple("min", ("values", "indices"))


def _with_index(arg: Primitive, x: Tensor, dim: int, keepdim: bool, op: str, result):
    axis = normalize_axis(dim, x.ndim, op, x)
    if x.ndim == 0:
        return result(ew.clone(x), bind(arg, x, axis=None, keepdims=False))
    _check_nonempty(x, (axis,), op)
    index = bind(arg, x, axis=axis, keepdims=True)
    values = bind(pick_p, x, index, axis=axis)
    if keepdim:
        return result(values, index)
    return result(_squeeze(values, (axis,)), _squeeze(index, (axis,)))


def max(x: Tensor, dim=None, keepdim: bool = False):
    """The maximum of all elements, or ``(values, indices)`` along `dim`, or ``maximum(x, other)``.

    Args:
        x: input tensor.
        dim: None for the overall maximum (gradient split evenly among ties); an int for a namedtuple
            ``(values, indices)`` whose values' gradient goes to the returned (first) index; a tensor
            for the elementwise maximum.
        keepdim: keep the reduced dimension with size 1.

    Returns:
        A tensor, or a ``max(values, indices)`` namedtuple.

    Example:
        >>> ember.tensor([[1.0, 5.0], [3.0, 2.0]]).max(dim=1).indices.tolist()
        [1, 0]
    """
    if isinstance(dim, Tensor):
        return ew.maximum(x, dim)
    if dim is None:
        return _extreme(amax_p, x, None, False, "max")
    return _with_index(argmax_p, x, dim, keepdim, "max", max_result)


def min(x: Tensor, dim=None, keepdim: bool = False):
    """The minimum of all elements, or ``(values, indices)`` along `dim`, or ``minimum(x, other)``.

    Args and Returns as in :func:`max`, with a ``min(values, indices)`` namedtuple.

    Example:
        >>> ember.tensor([[1.0, 5.0], [3.0, 2.0]]).min(dim=1).values.tolist()
        [1.0, 2.0]
    """
    if isinstance(dim, Tensor):
        return ew.minimum(x, dim)
    if dim is None:
        return _extreme(amin_p, x, None, False, "min")
    return _with_index(argmin_p, x, dim, keepdim, "min", min_result)


# -- variance ------------------------------------------------------------------------------------------
def _var_impl(xp, x, axis, keepdims, correction):
    acc = dtypes.float32.np if x.dtype in _HALF_NP else None
    if _numel(x.shape, axis) - correction > 0:
        out = xp.var(x, axis=axis, keepdims=keepdims, ddof=correction, dtype=acc)
    else:  # NaN or Inf, as in PyTorch; the front end has warned
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = xp.var(x, axis=axis, keepdims=keepdims, ddof=correction, dtype=acc)
    return xp.asarray(out).astype(x.dtype, copy=False)


def _centered(x: Tensor, axis) -> Tensor:
    return x - bind(sum_p, x, axis=axis, keepdims=True, dtype=None) / _numel(x.shape, axis)


def _var_scale(x: Tensor, axis, correction) -> float:
    dof = _numel(x.shape, axis) - correction
    return math.inf if dof == 0 else 2.0 / dof


def _var_vjp(g, out, x, axis, keepdims, correction):
    scale = _var_scale(x, axis, correction)
    return (expand_reduced(g, x.shape, axis, keepdims) * (_centered(x, axis) * scale),)


def _var_jvp(primals, tangents, axis, keepdims, correction):
    x, t = primals[0], tangents[0]
    out = bind(var_p, x, axis=axis, keepdims=keepdims, correction=correction)
    dot = bind(sum_p, _centered(x, axis) * t, axis=axis, keepdims=keepdims, dtype=None)
    return out, dot * _var_scale(x, axis, correction)


var_p = _reduction("reduce_var", _var_impl, _var_vjp, _var_jvp)


def _var_cpu(x, axis, keepdims, correction):
    """The CPU kernel of ``reduce_var``: the generated row- or column-reduction kernel (one read of the
    input) for large float arrays reduced over trailing axes (or all) or leading ones, else NumPy."""
    out = _generated_reduce("var", x, tuple(axis), keepdims, correction)
    return out if out is not None else _var_impl(np, x, axis=axis, keepdims=keepdims, correction=correction)


var_p.kernels["cpu"] = _var_cpu


def _variance(x: Tensor, dim, unbiased, keepdim: bool, correction, op: str) -> Tensor:
    """The variance with PyTorch's argument forms; errors and warnings name `op`."""
    if isinstance(dim, bool):  # var(x, False): the older positional `unbiased`
        unbiased, dim = dim, None
    if unbiased is not None and correction is not None:
        raise EmberError(op, "pass either unbiased or correction, not both", (x,))
    c = correction if correction is not None else (0 if unbiased is False else 1)
    _require_float(x, op)
    axis = reduce_dims(dim, x, op)
    if _numel(x.shape, axis) - c <= 0:
        warnings.warn(f"{op}(): degrees of freedom is <= 0", RuntimeWarning, stacklevel=3)
    return bind(var_p, x, axis=axis, keepdims=bool(keepdim), correction=c)


def var(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Tensor:
    """Variance over `dim`: ``sum((x - mean)**2) / (N - correction)``.

    Args:
        x: floating point input.
        dim: dimension(s) to reduce (None for all). ``var(x, False)`` reads as the older ``unbiased`` flag.
        unbiased: older spelling: True means correction=1, False correction=0.
        keepdim: keep reduced dimensions with size 1.
        correction: difference between the sample size and the degrees of freedom (default 1).

    Returns:
        The variances (NaN or Inf with a warning when N - correction <= 0).

    Example:
        >>> ember.tensor([1.0, 2.0, 3.0, 4.0]).var(correction=0).item()
        1.25
    """
    return _variance(x, dim, unbiased, keepdim, correction, "var")


# the square root of a variance, with derivative 0 where the variance is 0 (constant data), as
# PyTorch's std backward masks it, instead of 0 * inf = NaN
_std_root_p = ew.elementwise("std_root", "where(x == 0, 0, sqrt(x))", ew.FLOAT)


def _std_root(v: Tensor) -> Tensor:
    return ew.apply(_std_root_p, v)


def std(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: float | None = None) -> Tensor:
    """Standard deviation over `dim`: ``sqrt(var(x, dim, correction=correction))``.

    Args as in :func:`var`. Returns the standard deviations.

    Example:
        >>> ember.tensor([1.0, 3.0]).std(correction=0).item()
        1.0
    """
    return _std_root(_variance(x, dim, unbiased, keepdim, correction, "std"))


def var_mean(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
             correction: float | None = None) -> tuple[Tensor, Tensor]:
    """``(var(x, dim), mean(x, dim))`` with the same arguments as :func:`var`.

    Example:
        >>> [t.item() for t in ember.var_mean(ember.tensor([1.0, 3.0]))]
        [2.0, 2.0]
    """
    variance = _variance(x, dim, unbiased, keepdim, correction, "var_mean")
    return variance, mean(x, None if isinstance(dim, bool) else dim, keepdim)


def std_mean(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
             correction: float | None = None) -> tuple[Tensor, Tensor]:
    """``(std(x, dim), mean(x, dim))`` with the same arguments as :func:`std`.

    Example:
        >>> [t.item() for t in ember.std_mean(ember.tensor([1.0, 3.0]), correction=0)]
        [1.0, 2.0]
    """
    variance = _variance(x, dim, unbiased, keepdim, correction, "std_mean")
    return _std_root(variance), mean(x, None if isinstance(dim, bool) else dim, keepdim)


# -- logsumexp and norm --------------------------------------------------------------------------------
def logsumexp(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x), dim))`` computed stably (the slice maximum is taken out first).

    Args:
        x: input tensor (integers are converted to the default float dtype).
        dim: dimension(s) to reduce (None for all).
        keepdim: keep reduced dimensions with size 1.

    Returns:
        The log-sum-exps.

    Example:
        >>> round(ember.tensor([1000.0, 1000.0], dtype=ember.float64).logsumexp(0).item(), 4)
        1000.6931
    """
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        x = ew.convert(x, dtypes.get_default_dtype())
    axis = reduce_dims(dim, x, "logsumexp")
    if _numel(x.shape, axis) == 0:
        return ew.log(bind(sum_p, ew.exp(x), axis=axis, keepdims=bool(keepdim), dtype=None))
    top = bind(amax_p, x, axis=axis, keepdims=True)
    top = ew.where(ew.isfinite(top), top, 0.0)  # all -inf (or an inf) in a slice: no shift
    total = bind(sum_p, ew.exp(x - top), axis=axis, keepdims=bool(keepdim), dtype=None)
    return ew.log(total) + (top if keepdim else _squeeze(top, axis))


def _safe_root(s: Tensor, p: float) -> Tensor:
    """``s ** (1/p)`` with a zero (not NaN) gradient where s == 0."""
    zero = s == 0
    safe = ew.where(zero, 1.0, s)
    root = ew.sqrt(safe) if p == 2 else safe ** (1.0 / p)
    return ew.where(zero, 0.0, root)


def _safe_power(a: Tensor, p: float) -> Tensor:
    """``a ** p`` for a >= 0 with a zero gradient where a == 0."""
    zero = a == 0
    return ew.where(zero, 0.0, ew.where(zero, 1.0, a) ** p)


def _vector_norm(x: Tensor, p, axis: tuple[int, ...], keepdim: bool) -> Tensor:
    if p == "fro" or p == 2:
        return _safe_root(bind(sum_p, x * x, axis=axis, keepdims=keepdim, dtype=None), 2)
    if p == math.inf or p == -math.inf:
        op = amax_p if p > 0 else amin_p
        _check_nonempty(x, axis, "norm")
        return bind(op, ew.abs(x), axis=axis, keepdims=keepdim)
    if p == 1:
        return bind(sum_p, ew.abs(x), axis=axis, keepdims=keepdim, dtype=None)
    if p == 0:
        # x * 0 where x == 0 keeps the count differentiable, with a zero gradient as in PyTorch
        return bind(sum_p, ew.where(x != 0, 1.0, x * 0.0), axis=axis, keepdims=keepdim, dtype=None)
    total = bind(sum_p, _safe_power(ew.abs(x), p), axis=axis, keepdims=keepdim, dtype=None)
    return _safe_root(total, p)


def norm(x: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Vector p-norm over `dim` (all dimensions by default), as ``torch.norm`` / ``linalg.vector_norm``.

    Args:
        x: floating point input.
        p: "fro" or 2 (Euclidean), 1, inf (max abs), -inf (min abs), 0 (count of nonzeros) or any p > 0.
        dim: dimension(s) to reduce (None for all).
        keepdim: keep reduced dimensions with size 1.
        dtype: convert the input to this dtype first.

    Returns:
        The norms. The gradient at a zero vector (and at zero elements for p < 1) is 0, as in PyTorch.

    Example:
        >>> ember.tensor([3.0, 4.0]).norm().item()
        5.0
    """
    if dtype is not None:
        x = ew.convert(x, dtype)
    _require_float(x, "norm")
    if not (p == "fro" or (isinstance(p, (int, float)) and not isinstance(p, bool)
                           and (p >= 0 or p == -math.inf))):
        raise EmberError("norm", f"unsupported p={p!r}: expected 'fro', inf, -inf or a number >= 0", (x,))
    axis = reduce_dims(dim, x, "norm")
    if x.dtype.np in _HALF_NP:  # squares and powers overflow in half precision
        return ew.convert(_vector_norm(ew.convert(x, dtypes.float32), p, axis, bool(keepdim)), x.dtype)
    return _vector_norm(x, p, axis, bool(keepdim))


def count_nonzero(x: Tensor, dim=None) -> Tensor:
    """Number of nonzero elements over `dim` (int64).

    Example:
        >>> ember.count_nonzero(ember.tensor([[0.0, 1.0], [2.0, 3.0]]), dim=0).tolist()
        [1, 2]
    """
    axis = reduce_dims(dim, x, "count_nonzero")
    return bind(sum_p, x != 0, axis=axis, keepdims=False, dtype=None)


# -- all / any -----------------------------------------------------------------------------------------
def _logical_impl(name: str):
    def impl(xp, x, axis, keepdims):
        out = xp.asarray(getattr(xp, name)(x, axis=axis, keepdims=keepdims))
        return out.astype(x.dtype) if x.dtype == xp.uint8 else out  # uint8 stays uint8, as in PyTorch

    return impl


all_p = _reduction("reduce_all", _logical_impl("all"), None, None)
any_p = _reduction("reduce_any", _logical_impl("any"), None, None)
all_p.jvp = _no_tangent(all_p)
any_p.jvp = _no_tangent(any_p)


def all(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element over `dim` is nonzero (bool; uint8 input gives uint8).

    Example:
        >>> ember.tensor([[1.0, 0.0], [2.0, 3.0]]).all(1).tolist()
        [False, True]
    """
    return bind(all_p, x, axis=reduce_dims(dim, x, "all"), keepdims=bool(keepdim))


def any(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where some element over `dim` is nonzero (bool; uint8 input gives uint8).

    Example:
        >>> ember.tensor([[1.0, 0.0], [0.0, 0.0]]).any(1).tolist()
        [True, False]
    """
    return bind(any_p, x, axis=reduce_dims(dim, x, "any"), keepdims=bool(keepdim))


# -- scans ---------------------------------------------------------------------------------------------
def _scan_impl(name: str):
    def impl(xp, x, axis, reverse):
        if x.ndim == 0:
            return impl(xp, x.reshape(1), 0, reverse).reshape(())
        acc = dtypes.float32.np if x.dtype in _HALF_NP else None
        src = xp.flip(x, axis) if reverse else x
        out = getattr(xp, name)(src, axis=axis, dtype=acc)
        return (xp.flip(out, axis) if reverse else out).astype(x.dtype, copy=False)

    return impl


def _scan_batch(prim: Primitive):
    def rule(values, bdims, axis, reverse):
        from .movement import moveaxis

        return bind(prim, moveaxis(values[0], bdims[0], 0), axis=axis + 1, reverse=reverse), 0

    return rule


def _cumsum_vjp(g, out, x, axis, reverse):
    return (bind(cumsum_p, g, axis=axis, reverse=not reverse),)


def _cumsum_jvp(primals, tangents, axis, reverse):
    return (bind(cumsum_p, primals[0], axis=axis, reverse=reverse),
            bind(cumsum_p, tangents[0], axis=axis, reverse=reverse))


def _zero_parts(x: Tensor, axis: int, reverse: bool):
    """Zero mask, x with zeros replaced by 1, the running product of that and the running zero count."""
    zero = ew.eq(x, 0)
    nonzero = ew.where(zero, 1.0, x)
    count = bind(cumsum_p, ew.convert(zero, x.dtype), axis=axis, reverse=reverse)
    return zero, nonzero, bind(cumprod_p, nonzero, axis=axis, reverse=reverse), count


def _cumprod_vjp(g, out, x, axis, reverse):
    # d out_i / d x_k is out'_i / x'_k (primes: zeros replaced by 1) while no zero other than x_k
    # precedes i, else 0: two masked reverse sums, with no division by zero.
    zero, nonzero, running, count = _zero_parts(x, axis, reverse)
    weighted = g * running
    before_zero = bind(cumsum_p, ew.where(count == 0, weighted, 0.0), axis=axis, reverse=not reverse)
    at_first_zero = bind(cumsum_p, ew.where(count == 1, weighted, 0.0), axis=axis, reverse=not reverse)
    return (ew.where(zero, at_first_zero, before_zero / nonzero),)


def _cumprod_jvp(primals, tangents, axis, reverse):
    x, t = primals[0], tangents[0]
    zero, nonzero, running, count = _zero_parts(x, axis, reverse)
    no_zero = bind(cumsum_p, t / nonzero, axis=axis, reverse=reverse)
    one_zero = bind(cumsum_p, ew.where(zero, t, 0.0), axis=axis, reverse=reverse)
    rate = ew.where(count == 0, no_zero, ew.where(count == 1, one_zero, 0.0))
    return bind(cumprod_p, x, axis=axis, reverse=reverse), running * rate


cumsum_p = Primitive("cumsum", _scan_impl("cumsum"), vjp=_cumsum_vjp, jvp=_cumsum_jvp)
cumprod_p = Primitive("cumprod", _scan_impl("cumprod"), vjp=_cumprod_vjp, jvp=_cumprod_jvp)
cumsum_p.batch = _scan_batch(cumsum_p)
cumprod_p.batch = _scan_batch(cumprod_p)


def _scan(prim: Primitive, x: Tensor, dim: int, dtype, op: str) -> Tensor:
    axis = normalize_axis(dim, x.ndim, op, x)
    if dtype is not None:
        x = ew.convert(x, dtype)
    elif not (x.dtype.is_floating_point or x.dtype.is_complex):
        x = ew.convert(x, dtypes.int64)  # ints and bools accumulate in int64, as in PyTorch
    return bind(prim, x, axis=axis, reverse=False)


def cumsum(x: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running sum along `dim` (ints and bools give int64).

    Example:
        >>> ember.tensor([1, 2, 3]).cumsum(0).tolist()
        [1, 3, 6]
    """
    return _scan(cumsum_p, x, dim, dtype, "cumsum")


def cumprod(x: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running product along `dim` (ints and bools give int64); the gradient is exact with zeros.

    Example:
        >>> ember.tensor([1.0, 2.0, 3.0]).cumprod(0).tolist()
        [1.0, 2.0, 6.0]
    """
    return _scan(cumprod_p, x, dim, dtype, "cumprod")


def _doubling_scan(values: list[Tensor], dim: int, combine) -> list[Tensor]:
    """An inclusive scan along `dim` in ceil(log2 n) rounds, each combining every position with the one
    `2**r` places before it (Hillis and Steele): `combine(earlier, later)` of lists of tensors. Built of
    differentiable operations (slices, concatenation and what `combine` uses)."""
    from .movement import cat, narrow

    n, by = values[0].shape[dim], 1
    while by < n:
        earlier = [narrow(v, dim, 0, n - by) for v in values]
        later = [narrow(v, dim, by, n - by) for v in values]
        values = [cat([narrow(v, dim, 0, by), c], dim) for v, c in zip(values, combine(earlier, later))]
        by *= 2
    return values


def logcumsumexp(x: Tensor, dim: int) -> Tensor:
    """``log(cumsum(exp(x)))`` along `dim`, computed stably (a running :func:`~ember.logaddexp`).

    Example:
        >>> import ember
        >>> [round(v, 4) for v in ember.logcumsumexp(ember.tensor([-1000.0, 0.0, 0.0]), 0).tolist()]
        [-1000.0, 0.0, 0.6931]
    """
    if not x.dtype.is_floating_point:
        raise DTypeError("logcumsumexp", f"expected a floating point input, got {x.dtype}", (x,))
    if x.ndim == 0:
        return x
    dim = normalize_axis(dim, x.ndim, "logcumsumexp", x)
    return _doubling_scan([x], dim, lambda a, b: [ew.logaddexp(a[0], b[0])])[0]


cummax_result = namedtuple("cummax", ["values", "indices"])
cummin_result = namedtuple("cummin", ["values", "indices"])


def _cumulative_extreme(x: Tensor, dim: int, largest: bool, op: str):
    from ..creation import zeros
    from .movement import broadcast_to, reshape

    result = cummax_result if largest else cummin_result
    if x.ndim == 0:
        return result(x, zeros((), dtype=dtypes.int64, device=x.device))
    dim = normalize_axis(dim, x.ndim, op, x)
    shape = [1] * x.ndim
    shape[dim] = x.shape[dim]
    index = broadcast_to(reshape(arange(x.shape[dim], device=x.device), tuple(shape)), tuple(x.shape))
    floating = x.dtype.is_floating_point

    def combine(earlier, later):
        (v0, i0), (v1, i1) = earlier, later
        better = ew.gt(v0, v1) if largest else ew.lt(v0, v1)  # ties keep the later index, as PyTorch
        if floating:  # a NaN, once met, is carried on (with its index)
            better = ew.logical_or(better, ew.logical_and(ew.isnan(v0), ew.logical_not(ew.isnan(v1))))
        return [ew.where(better, v0, v1), ew.where(better, i0, i1)]

    values, indices = _doubling_scan([x, index], dim, combine)
    return result(values, indices)


def cummax(x: Tensor, dim: int):
    """Running maximum along `dim` and the index where it was reached, as a namedtuple
    ``(values, indices)``; values are differentiable (the gradient goes to that index). NaN propagates.

    Example:
        >>> import ember
        >>> ember.cummax(ember.tensor([1.0, 3.0, 2.0, 3.0]), 0).indices.tolist()
        [0, 1, 1, 3]
    """
    return _cumulative_extreme(x, dim, True, "cummax")


def cummin(x: Tensor, dim: int):
    """Running minimum along `dim` and the index where it was reached (see :func:`cummax`).

    Example:
        >>> import ember
        >>> ember.cummin(ember.tensor([2.0, 1.0, 3.0]), 0).values.tolist()
        [2.0, 1.0, 1.0]
    """
    return _cumulative_extreme(x, dim, False, "cummin")


aminmax_result = namedtuple("aminmax", ["min", "max"])


def aminmax(x: Tensor, *, dim: int | None = None, keepdim: bool = False):
    """The minimum and maximum together, as a namedtuple ``(min, max)``.

    Example:
        >>> import ember
        >>> ember.aminmax(ember.tensor([3, 1, 2])).max.item()
        3
    """
    axes = () if dim is None else dim
    return aminmax_result(amin(x, axes, keepdim), amax(x, axes, keepdim))


def diff(x: Tensor, n: int = 1, dim: int = -1, prepend: Tensor | None = None,
         append: Tensor | None = None) -> Tensor:
    """The `n`-th forward difference along `dim` (after concatenating `prepend` and `append` there);
    booleans give their exclusive or, as in PyTorch.

    Example:
        >>> import ember
        >>> ember.diff(ember.tensor([1, 4, 9, 16]), n=2).tolist()
        [2, 2]
    """
    from .movement import cat, narrow

    dim = normalize_axis(dim, x.ndim, "diff", x)
    if n < 0:
        raise EmberError("diff", f"order must be non-negative, got {n}", (x,))
    parts = [t for t in (prepend, x, append) if t is not None]
    if len(parts) > 1:
        x = cat(parts, dim)
    for _ in range(n):
        size = x.shape[dim]
        if size == 0:
            break
        later, earlier = narrow(x, dim, 1, size - 1), narrow(x, dim, 0, size - 1)
        x = ew.logical_xor(later, earlier) if x.dtype is dtypes.bool_ else ew.sub(later, earlier)
    return x


def _trapezoid_parts(y: Tensor, x: Tensor | None, dx: float, dim: int, op: str):
    """The pieces of the trapezoidal rule along `dim`: the mean of neighbouring `y` and the spacing."""
    from .movement import narrow, reshape

    dim = normalize_axis(dim, y.ndim, op, y)
    n = y.shape[dim]
    mid = ew.mul(ew.add(narrow(y, dim, 1, n - 1), narrow(y, dim, 0, n - 1)), 0.5) if n else y
    if x is None:
        return mid, dx, dim
    if x.ndim == 1:
        if x.shape[0] != n:
            raise EmberError(op, f"x has {x.shape[0]} points for {n} along dimension {dim}", (y, x))
        shape = [1] * y.ndim
        shape[dim] = n - 1
        return mid, reshape(diff(x), tuple(shape)), dim
    return mid, diff(x, dim=dim), dim


def trapezoid(y: Tensor, x: Tensor | None = None, *, dx: float = 1.0, dim: int = -1) -> Tensor:
    """The integral of `y` along `dim` by the trapezoidal rule, at points `x` (1-D, or shaped like `y`)
    or spaced `dx` apart.

    Example:
        >>> import ember
        >>> ember.trapezoid(ember.tensor([0.0, 1.0, 4.0])).item()
        3.0
    """
    mid, step, dim = _trapezoid_parts(y, x, dx, dim, "trapezoid")
    return sum(ew.mul(mid, step), dim)


trapz = trapezoid


def cumulative_trapezoid(y: Tensor, x: Tensor | None = None, *, dx: float = 1.0, dim: int = -1) -> Tensor:
    """The running integral of :func:`trapezoid` (one value fewer than `y` along `dim`).

    Example:
        >>> import ember
        >>> ember.cumulative_trapezoid(ember.tensor([0.0, 1.0, 4.0])).tolist()
        [0.5, 3.0]
    """
    mid, step, dim = _trapezoid_parts(y, x, dx, dim, "cumulative_trapezoid")
    return cumsum(ew.mul(mid, step), dim)


def renorm(input: Tensor, p: float, dim: int, maxnorm: float) -> Tensor:
    """`input` with each slice along `dim` whose p-norm exceeds `maxnorm` scaled down to that norm.

    Example:
        >>> import ember
        >>> ember.renorm(ember.tensor([[3.0, 4.0], [0.3, 0.4]]), 2, 0, 1.0).tolist()
        [[0.6000000238418579, 0.800000011920929], [0.30000001192092896, 0.4000000059604645]]
    """
    dim = normalize_axis(dim, input.ndim, "renorm", input)
    others = tuple(d for d in range(input.ndim) if d != dim)
    size = norm(input, p, others, keepdim=True)
    scale = ew.where(ew.gt(size, maxnorm), ew.div(maxnorm, ew.add(size, 1e-7)), 1.0)
    return ew.mul(input, ew.convert(scale, input.dtype))


def dist(input: Tensor, other: Tensor, p: float = 2) -> Tensor:
    """The p-norm of ``input - other`` (broadcast), a 0-d tensor.

    Example:
        >>> import ember
        >>> ember.dist(ember.tensor([0.0, 0.0]), ember.tensor([3.0, 4.0])).item()
        5.0
    """
    return norm(ew.sub(input, other), p)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0) -> Tensor:
    """The p-norm distance between each row of `x1` (..., P, M) and each row of `x2` (..., R, M): a
    (..., P, R) tensor (batch dimensions broadcast).

    Example:
        >>> import ember
        >>> ember.cdist(ember.tensor([[0.0, 0.0]]), ember.tensor([[3.0, 4.0], [0.0, 1.0]])).tolist()
        [[5.0, 1.0]]
    """
    from .movement import unsqueeze

    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise EmberError("cdist", f"expected (..., P, M) and (..., R, M) with the same M, got shapes "
                         f"{tuple(x1.shape)} and {tuple(x2.shape)}", (x1, x2))
    return norm(ew.sub(unsqueeze(x1, -2), unsqueeze(x2, -3)), p, -1)


def cov(x: Tensor, *, correction: int = 1, fweights: Tensor | None = None,
        aweights: Tensor | None = None) -> Tensor:
    """Covariance of the variables in the rows of `x` (observations in columns), as ``torch.cov``: with
    integer frequency weights `fweights` and observation weights `aweights`; `correction` 1 gives the
    unbiased estimate.

    Example:
        >>> import ember
        >>> ember.cov(ember.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])).tolist()
        [[1.0, -1.0], [-1.0, 1.0]]
    """
    from .linalg import matmul
    from .movement import reshape, transpose

    if x.ndim > 2:
        raise EmberError("cov", f"expected at most 2 dimensions, got shape {tuple(x.shape)}", (x,))
    if x.ndim < 2:
        x = reshape(x, (1, -1))
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        x = ew.convert(x, dtypes.get_default_dtype())
    w = None
    for given in (fweights, aweights):
        if given is not None:
            if given.ndim != 1 or given.shape[0] != x.shape[1]:
                raise EmberError("cov", f"weights must be 1-D with {x.shape[1]} entries, got shape "
                                 f"{tuple(given.shape)}", (x, given))
            w = given if w is None else ew.mul(w, given)
    if w is None:
        total = x.shape[1]
        mean_ = mean(x, 1, keepdim=True)
        centred = ew.sub(x, mean_)
        denom = builtins.max(total - correction, 0)
        return ew.div(matmul(centred, transpose(centred, 0, 1)), denom)
    w = ew.convert(w, x.dtype)
    total = sum(w)
    mean_ = ew.div(sum(ew.mul(x, w), 1, keepdim=True), total)
    centred = ew.sub(x, mean_)
    if correction == 0:
        denom = total
    elif aweights is None:
        denom = ew.sub(total, correction)
    else:
        weighted = sum(ew.mul(w, ew.convert(aweights, x.dtype)))
        denom = ew.sub(total, ew.div(ew.mul(weighted, correction), total))
    denom = ew.maximum(denom, 0)
    return ew.div(matmul(ew.mul(centred, w), transpose(centred, 0, 1)), denom)


def corrcoef(x: Tensor) -> Tensor:
    """Pearson correlation coefficients of the variables in the rows of `x`, clipped to [-1, 1].

    Example:
        >>> import ember
        >>> ember.corrcoef(ember.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])).tolist()
        [[1.0, -1.0], [-1.0, 1.0]]
    """
    from .movement import diagonal, reshape

    c = cov(x)
    if c.ndim == 0 or tuple(c.shape) == (1, 1):
        return ew.div(c, c)
    d = ew.sqrt(diagonal(c))
    out = ew.div(ew.div(c, reshape(d, (-1, 1))), reshape(d, (1, -1)))
    return ew.clamp(out, -1.0, 1.0)


def _quantile(x: Tensor, q, dim, keepdim: bool, interpolation: str, op: str, skip_nan: bool) -> Tensor:
    from ..creation import tensor as make
    from .indexing import gather, sort
    from .movement import broadcast_to, moveaxis, reshape, squeeze

    modes = ("linear", "lower", "higher", "midpoint", "nearest")
    if interpolation not in modes:
        raise EmberError(op, f"interpolation must be one of {modes}, got {interpolation!r}", (x,))
    if not x.dtype.is_floating_point:
        raise DTypeError(op, f"expected a floating point input, got {x.dtype}", (x,))
    one_q = not isinstance(q, (Tensor, list, tuple))
    if not isinstance(q, Tensor):  # numbers are checked here; a tensor of them where it is concrete
        values = [q] if one_q else list(q)
        if not builtins.all(0 <= v <= 1 for v in values):
            raise EmberError(op, f"q values must be in [0, 1], got {q}", (x,))
    qs = q if isinstance(q, Tensor) else make(q, dtype=x.dtype, device=x.device)
    if qs.ndim > 1:
        raise EmberError(op, f"q must be a number or 1-D, got shape {tuple(qs.shape)}", (x, qs))
    qs = ew.convert(reshape(qs, (-1,)), x.dtype)
    if isinstance(q, Tensor) and not isinstance(q, Tracer) and bool(any(ew.logical_or(ew.lt(qs, 0),
                                                                                     ew.gt(qs, 1)))):
        raise EmberError(op, "q values must be in [0, 1]", (qs,))
    ndim = x.ndim
    if dim is None:
        x, dim = reshape(x, (-1,)), 0
    else:
        dim = normalize_axis(dim, x.ndim, op, x)
    xs = moveaxis(sort(x, dim).values, dim, -1)  # (..., n), NaNs last
    n = xs.shape[-1]
    if n == 0:
        raise EmberError(op, "quantile of an empty slice", (x,))
    nan = ew.isnan(xs)
    if skip_nan:
        count = sum(ew.logical_not(nan), -1, keepdim=True)  # (..., 1)
        last = ew.maximum(ew.sub(ew.convert(count, xs.dtype), 1), 0)
    else:
        last = n - 1
    rank = ew.mul(reshape(qs, (-1,) + (1,) * xs.ndim), last)  # (Q, ..., 1)
    if interpolation in ("lower", "higher", "nearest"):
        rank = {"lower": ew.floor, "higher": ew.ceil, "nearest": ew.round}[interpolation](rank)
    lo, hi = ew.floor(rank), ew.ceil(rank)
    shape = (qs.shape[0],) + tuple(xs.shape[:-1]) + (1,)
    table = broadcast_to(xs, (qs.shape[0],) + tuple(xs.shape))

    def pick(r: Tensor) -> Tensor:
        return gather(table, -1, broadcast_to(ew.convert(ew.clamp(r, 0, n - 1), dtypes.int64), shape))

    low, high = pick(lo), pick(hi)
    frac = ew.where(ew.eq(hi, lo), 0.0, 0.5) if interpolation == "midpoint" else ew.sub(rank, lo)
    value = ew.where(ew.eq(frac, 0), low, ew.add(low, ew.mul(ew.sub(high, low), frac)))
    missing = ew.eq(count, 0) if skip_nan else any(nan, -1, keepdim=True)
    value = ew.where(missing, float("nan"), value)  # (Q, ..., 1)
    if not keepdim:
        value = squeeze(value, -1)
    elif ndim != x.ndim:  # all elements: every dimension kept as 1
        value = reshape(value, (value.shape[0],) + (1,) * ndim)
    else:
        value = moveaxis(value, -1, dim + 1)
    return reshape(value, tuple(value.shape[1:])) if one_q else value


def quantile(x: Tensor, q, dim: int | None = None, keepdim: bool = False, *,
             interpolation: str = "linear") -> Tensor:
    """The `q`-th quantiles (a number or a 1-D tensor of them, in [0, 1]) of `x` along `dim` (all elements
    when None), interpolated as `interpolation` says; the quantile dimension comes first when `q` is a
    tensor, as in PyTorch. NaN where a slice holds NaN (:func:`nanquantile` skips them).

    Example:
        >>> import ember
        >>> ember.quantile(ember.tensor([1.0, 2.0, 3.0, 4.0]), 0.5).item()
        2.5
    """
    return _quantile(x, q, dim, keepdim, interpolation, "quantile", False)


def nanquantile(x: Tensor, q, dim: int | None = None, keepdim: bool = False, *,
                interpolation: str = "linear") -> Tensor:
    """:func:`quantile` of the values that are not NaN (NaN where all are)."""
    return _quantile(x, q, dim, keepdim, interpolation, "nanquantile", True)


# -- used by the other families ------------------------------------------------------------------------
def sum_to_shape(g: Tensor, shape: Sequence[int]) -> Tensor:
    """Sum `g` over the dimensions that broadcasting added or stretched, giving `shape`."""
    from .movement import reshape

    shape = tuple(shape)
    gshape = tuple(g.shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    stretched = tuple(i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1)
    axes = tuple(range(lead)) + stretched
    out = bind(sum_p, g, axis=axes, keepdims=True, dtype=None) if axes else g
    return reshape(out, shape)


def nansum(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """:func:`sum` with NaNs counted as zero.

    Example:
        >>> import ember
        >>> ember.nansum(ember.tensor([1.0, float("nan"), 2.0])).item()
        3.0
    """
    if x.dtype.is_floating_point:
        x = ew.where(ew.isnan(x), 0, x)
    return sum(x, dim, keepdim, dtype=dtype)


def nanmean(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """:func:`mean` of the values that are not NaN (NaN where all are).

    Example:
        >>> import ember
        >>> ember.nanmean(ember.tensor([1.0, float("nan"), 2.0])).item()
        1.5
    """
    if dtype is not None:
        x = ew.convert(x, dtypes.as_dtype(dtype))
    if not x.dtype.is_floating_point:
        raise DTypeError("nanmean", f"expected a floating point input or dtype, got {x.dtype}", (x,))
    present = ew.logical_not(ew.isnan(x))
    return ew.div(nansum(x, dim, keepdim), sum(present, dim, keepdim))


TENSOR_METHODS = {
    "sum": sum, "mean": mean, "prod": prod, "amax": amax, "amin": amin, "max": max, "min": min,
    "nansum": nansum, "nanmean": nanmean, "logcumsumexp": logcumsumexp, "cummax": cummax, "cummin": cummin,
    "aminmax": aminmax, "diff": diff, "cov": cov, "corrcoef": corrcoef, "quantile": quantile,
    "nanquantile": nanquantile, "dist": dist, "renorm": renorm,
    "argmax": argmax, "argmin": argmin, "var": var, "std": std, "logsumexp": logsumexp, "norm": norm,
    "cumsum": cumsum, "cumprod": cumprod, "all": all, "any": any, "count_nonzero": count_nonzero,
}
