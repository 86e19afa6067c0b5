"""Indexing: ``x[key]`` and ``x[key] = v``, gather/scatter, index_* ops, masks, sorting and searching.

Five primitives carry everything differentiable:

- ``getitem`` (a view): basic indexing by ints, slices and new axes; ``slice_scatter`` is its adjoint.
- ``index``: advanced indexing of the *leading* dimensions by integer tensors of one common shape B,
  giving ``B + x.shape[k:]``; ``index_put`` (assign or accumulate) is its adjoint, and
  ``index_reduce`` (prod / amax / amin) covers the remaining scatter reductions.

Public ops move the indexed dimensions to the front with a view (``permute``), apply one of these and
move them back, so gather, scatter, index_select, take, masks and sort values share the same rules.
Sort, unique, nonzero and searchsorted produce int64 indices and are not differentiable.
"""
from __future__ import annotations

import operator
from collections import namedtuple
from typing import Any

import numpy as np

from .. import dtypes
from ..creation import arange, full, full_like, tensor, zeros
from ..dispatch import bind
from ..errors import DTypeError, IndexingError, ShapeError, TraceError
from ..inplace import inplace
from ..primitive import Primitive
from ..tensor import Tensor, Tracer
from .elementwise import clamp, convert, div, eq, logical_and, where
from .movement import broadcast_shapes, broadcast_to, moveaxis, permute, reshape
from .reduce import normalize_axis

__all__ = ["gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add", "index_copy",
           "index_fill", "index_put", "masked_fill", "masked_select", "take", "take_along_dim", "sort",
           "argsort", "topk", "unique", "nonzero", "argwhere", "searchsorted", "bucketize", "kthvalue",
           "median", "nanmedian", "isin", "bincount", "histc", "msort", "unravel_index", "slice_scatter",
           "select_scatter", "diagonal_scatter", "masked_scatter", "mode", "unique_consecutive"]

_FULL = (None, None, None)  # the slice ``:`` as a hashable attribute entry

sort_result = namedtuple("sort", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])


# -- helpers -------------------------------------------------------------------------------------------
def _wants(x: Any) -> bool:
    return isinstance(x, Tensor) and x._requires_grad


def _zeros(shape_of: Tensor, like: Tensor) -> Tensor:
    """Zeros shaped like `shape_of` with `like`'s dtype: under jit a node that reads `shape_of`, so that
    its shape follows dynamic dimensions (a constant made with ``zeros`` would have the traced shape)."""
    return full_like(shape_of, 0, dtype=like.dtype)


def _np_key(index: tuple) -> tuple:
    # A trailing Ellipsis keeps NumPy returning 0-d arrays (views) rather than scalars.
    return tuple(slice(*e) if isinstance(e, tuple) else e for e in index) + (Ellipsis,)


def _inverse(perm) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def _host(t: Tensor) -> np.ndarray | None:
    """The concrete values of `t`, or None where a transform hides them (range checks are then skipped)."""
    try:
        return np.asarray(t)
    except TraceError:
        return None


def _check_range(idx: Tensor, size: int, dim: int, x: Tensor, op: str, negative: bool = True) -> None:
    arr = _host(idx)
    if arr is None or arr.size == 0:
        return
    lo, hi = int(arr.min()), int(arr.max())
    low = -size if negative else 0
    if lo < low or hi >= size:
        bad = hi if hi >= size else lo
        raise IndexingError(op, f"index {bad} is out of range for dimension {dim} with size {size} "
                            f"(tensor shape {tuple(x.shape)})", (x,))


def _int_index(index: Any, op: str, operands: tuple) -> Tensor:
    if not isinstance(index, Tensor):
        index = tensor(index)
    if index.dtype.kind != dtypes._INT:
        raise DTypeError(op, f"expected an integer index tensor, got {index.dtype}", operands + (index,))
    return index


# -- batching helpers ----------------------------------------------------------------------------------
def _batch_size(values, bdims) -> int:
    return next(v.shape[b] for v, b in zip(values, bdims) if b is not None)


def _moved(v: Tensor, b: int | None, n: int, dest: int) -> Tensor:
    """`v` with its batch dimension at `dest`; an unbatched `v` is broadcast along a new one there."""
    if b is not None:
        return moveaxis(v, b, dest)
    shape = tuple(v.shape)
    v = reshape(v, shape[:dest] + (1,) + shape[dest:])
    return broadcast_to(v, shape[:dest] + (n,) + shape[dest:])


def _batch_arange(n: int, shape, device) -> Tensor:
    """An index selecting batch entry i in row i, broadcast to ``(n,) + shape``."""
    ar = reshape(arange(n, device=device), (n,) + (1,) * len(shape))
    return broadcast_to(ar, (n,) + tuple(shape))


# -- getitem (basic indexing, a view) and its adjoint slice_scatter -------------------------------------
def _getitem_impl(xp, x, index):
    return x[_np_key(index)]


def _slice_scatter_impl(xp, base, src, index):
    out = base.copy()
    out[_np_key(index)] = src
    return out


def _getitem_vjp(g, out, x, index):
    return (bind(slice_scatter_p, _zeros(x, g), g, index=index),)


def _getitem_batch(values, bdims, index):
    return bind(getitem_p, moveaxis(values[0], bdims[0], 0), index=(_FULL,) + index), 0


def _slice_scatter_vjp(g, out, base, src, index):
    gb = bind(slice_scatter_p, g, _zeros(src, g), index=index) if _wants(base) else None
    gs = bind(getitem_p, g, index=index) if _wants(src) else None
    return gb, gs


def _slice_scatter_jvp(primals, tangents, index):
    base, src = primals
    tb = tangents[0] if tangents[0] is not None else _zeros(base, base)
    ts = tangents[1] if tangents[1] is not None else _zeros(src, base)
    return bind(slice_scatter_p, base, src, index=index), bind(slice_scatter_p, tb, ts, index=index)


def _slice_scatter_batch(values, bdims, index):
    n = _batch_size(values, bdims)
    base, src = (_moved(v, b, n, 0) for v, b in zip(values, bdims))
    return bind(slice_scatter_p, base, src, index=(_FULL,) + index), 0


getitem_p = Primitive("getitem", _getitem_impl, vjp=_getitem_vjp, batch=_getitem_batch, view=True,
                      jvp=lambda p, t, index: (bind(getitem_p, p[0], index=index),
                                               bind(getitem_p, t[0], index=index)), reads=())
getitem_p.array_method = lambda index: ("__getitem__", _np_key(index))
slice_scatter_p = Primitive("slice_scatter", _slice_scatter_impl, vjp=_slice_scatter_vjp,
                            jvp=_slice_scatter_jvp, batch=_slice_scatter_batch, reads=())


# -- index (advanced indexing of the leading dims) and its adjoint index_put ----------------------------
def _index_impl(xp, x, *idx):
    try:
        return x[tuple(idx) + (Ellipsis,)]
    except IndexError as exc:
        raise IndexingError("index", f"{exc} (tensor shape {tuple(x.shape)})") from None


def _accumulate_rows(out, values, rows) -> bool:
    """``out[rows] += values`` for one integer index array of the first axis (an embedding's gradient,
    the index of any rank: a batch of token sequences), summing the values of repeated rows in one
    sorted pass rather than with ``np.add.at`` (an order of magnitude slower); False where this does not
    apply (other layouts, indices out of range: ``add.at`` reports)."""
    n = out.shape[0] if out.ndim else 0
    if rows.ndim < 1 or out.ndim < 1 or values.shape != rows.shape + out.shape[1:] or not rows.size \
            or rows.dtype.kind not in "iu" or rows.min() < -n or rows.max() >= n:
        return False
    rows = rows.reshape(-1)
    order = np.argsort(rows % n, kind="stable")
    keys = (rows % n)[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    sums = np.add.reduceat(values.reshape(rows.size, -1)[order], starts, axis=0)
    flat = out.reshape(n, -1)
    flat[keys[starts]] += sums.astype(out.dtype, copy=False)
    return True


def _index_put_impl(xp, x, values, *idx, accumulate):
    out = x.copy()
    try:
        if accumulate and xp is np and len(idx) == 1 and _accumulate_rows(out, np.asarray(values), idx[0]):
            return out
        if accumulate:
            xp.add.at(out, tuple(idx), values)
        else:
            out[tuple(idx)] = values
    except IndexError as exc:
        raise IndexingError("index_put", f"{exc} (tensor shape {tuple(x.shape)})") from None
    return out


def _index_vjp(g, out, x, *idx):
    gx = bind(index_put_p, _zeros(x, g), g, *idx, accumulate=True) if _wants(x) else None
    return (gx,) + (None,) * len(idx)


def _index_batch(values, bdims):
    x, idx = values[0], values[1:]
    n = _batch_size(values, bdims)
    if all(b is None for b in bdims[1:]):  # the batch dim of x rides along after the indexed dims
        return bind(index_p, moveaxis(x, bdims[0], len(idx)), *idx), idx[0].ndim
    x = _moved(x, bdims[0], n, 0)
    idx = [_moved(i, b, n, 0) for i, b in zip(idx, bdims[1:])]
    return bind(index_p, x, _batch_arange(n, idx[0].shape[1:], x.device), *idx), 0


def _index_put_vjp(g, out, x, values, *idx, accumulate):
    gx = gv = None
    if _wants(x):
        gx = g if accumulate else bind(index_put_p, g, _zeros(values, g), *idx, accumulate=False)
    if _wants(values):
        gv = bind(index_p, g, *idx)
    return (gx, gv) + (None,) * len(idx)


def _index_put_jvp(primals, tangents, accumulate):
    x, values, idx = primals[0], primals[1], primals[2:]
    tx = tangents[0] if tangents[0] is not None else _zeros(x, x)
    tv = tangents[1] if tangents[1] is not None else _zeros(values, x)
    return (bind(index_put_p, x, values, *idx, accumulate=accumulate),
            bind(index_put_p, tx, tv, *idx, accumulate=accumulate))


def _scatter_batch(prim: Primitive):
    """Batching rule of ``prim(x, values, *idx, **attrs)`` with ``values`` shaped ``B + x.shape[k:]``."""
    def rule(values, bdims, **attrs):
        n = _batch_size(values, bdims)
        x, v, idx = values[0], values[1], values[2:]
        if all(b is None for b in bdims[2:]):
            k, nb = len(idx), idx[0].ndim
            return bind(prim, _moved(x, bdims[0], n, k), _moved(v, bdims[1], n, nb), *idx, **attrs), k
        idx = [_moved(i, b, n, 0) for i, b in zip(idx, bdims[2:])]
        ar = _batch_arange(n, idx[0].shape[1:], x.device)
        return bind(prim, _moved(x, bdims[0], n, 0), _moved(v, bdims[1], n, 0), ar, *idx, **attrs), 0

    return rule


index_p = Primitive("index", _index_impl, vjp=_index_vjp, batch=_index_batch,
                    jvp=lambda p, t: (bind(index_p, *p), bind(index_p, t[0], *p[1:])))
index_put_p = Primitive("index_put", _index_put_impl, vjp=_index_put_vjp, jvp=_index_put_jvp)
index_put_p.batch = _scatter_batch(index_put_p)


# -- index_reduce: scatter with prod / amax / amin -----------------------------------------------------
_UFUNC = {"prod": "multiply", "amax": "maximum", "amin": "minimum"}


def _index_reduce_impl(xp, x, values, *idx, reduce):
    out = x.copy()
    getattr(xp, _UFUNC[reduce]).at(out, tuple(idx), values)
    return out


def _extreme_partials(out, x, values, idx):
    """d out / d x and d out / d values of amax/amin: ties share the gradient evenly (as PyTorch)."""
    at_x = convert(eq(x, out), out.dtype)
    at_v = convert(eq(values, bind(index_p, out, *idx)), out.dtype)
    count = clamp(bind(index_put_p, at_x, at_v, *idx, accumulate=True), min=1.0)
    return at_x / count, at_v / bind(index_p, count, *idx)


def _prod_partials(out, x, values, idx):
    """Partials of a scatter product, exact where factors are zero (no division by zero)."""
    x0, v0 = eq(x, 0), eq(values, 0)
    zeros_x = bind(index_put_p, convert(x0, x.dtype), convert(v0, x.dtype), *idx, accumulate=True)
    x1, v1 = where(x0, 1.0, x), where(v0, 1.0, values)
    nonzero_prod = bind(index_reduce_p, x1, v1, *idx, reduce="prod")
    px = where(eq(zeros_x, 0), nonzero_prod / x1, where(logical_and(x0, eq(zeros_x, 1)), nonzero_prod, 0.0))
    zv, pv = bind(index_p, zeros_x, *idx), bind(index_p, nonzero_prod, *idx)
    return px, where(eq(zv, 0), pv / v1, where(logical_and(v0, eq(zv, 1)), pv, 0.0))


def _reduce_partials(out, x, values, idx, reduce):
    if reduce == "prod":
        return _prod_partials(out, x, values, idx)
    return _extreme_partials(out, x, values, idx)


def _index_reduce_vjp(g, out, x, values, *idx, reduce):
    px, pv = _reduce_partials(out, x, values, idx, reduce)
    gx = g * px if _wants(x) else None
    gv = bind(index_p, g, *idx) * pv if _wants(values) else None
    return (gx, gv) + (None,) * len(idx)


def _index_reduce_jvp(primals, tangents, reduce):
    x, values, idx = primals[0], primals[1], primals[2:]
    out = bind(index_reduce_p, x, values, *idx, reduce=reduce)
    px, pv = _reduce_partials(out, x, values, idx, reduce)
    tx = tangents[0] * px if tangents[0] is not None else _zeros(x, out)
    if tangents[1] is not None:
        tx = bind(index_put_p, tx, tangents[1] * pv, *idx, accumulate=True)
    return out, tx


index_reduce_p = Primitive("index_reduce", _index_reduce_impl, vjp=_index_reduce_vjp, jvp=_index_reduce_jvp)
index_reduce_p.batch = _scatter_batch(index_reduce_p)


# -- parsing an index ----------------------------------------------------------------------------------
def _classify(k: Any, op: str, x: Tensor) -> Any:
    """One index entry as Ellipsis, None, bool, int, a (start, stop, step) tuple or an index tensor."""
    if k is None or k is Ellipsis or isinstance(k, bool):
        return k
    if isinstance(k, slice):
        parts = tuple(None if v is None else operator.index(v) for v in (k.start, k.stop, k.step))
        if parts[2] == 0:
            raise IndexingError(op, "slice step cannot be zero", (x,))
        return parts
    if isinstance(k, Tensor):
        if k.dtype.kind not in (dtypes._INT, dtypes._BOOL):
            raise IndexingError(op, f"tensors used as indices must be integer or bool, got {k.dtype}", (x, k))
        return k
    if isinstance(k, (list, tuple, np.ndarray)):
        arr = np.asarray(k)
        if arr.dtype.kind not in "biu" and arr.size:
            raise IndexingError(op, f"index arrays must hold integers or bools, got {arr.dtype}", (x,))
        return tensor(arr if arr.size else arr.astype(np.int64), device=x.device)
    try:
        return operator.index(k)
    except TypeError:
        raise IndexingError(op, f"unsupported index of type {type(k).__name__}", (x,)) from None


def _span(k: Any) -> int:
    if k is None or k is Ellipsis or isinstance(k, bool):
        return 0
    if isinstance(k, Tensor) and k.dtype is dtypes.bool_:
        return k.ndim
    return 1


def _mask_indices(mask: Tensor, d: int, x: Tensor, op: str) -> list[Tensor]:
    if tuple(mask.shape) != tuple(x.shape[d:d + mask.ndim]):
        raise IndexingError(op, f"the shape of the mask {tuple(mask.shape)} at index {d} does not match the "
                            f"shape of the indexed tensor {tuple(x.shape)}", (x, mask))
    nz = bind(nonzero_p, mask)
    return [bind(getitem_p, nz, index=(_FULL, j)) for j in range(mask.ndim)]


def _parse(x: Tensor, key: Any, op: str) -> tuple[tuple, list]:
    """Split `key` into a basic index (a view of `x`) and advanced entries ``(dim of the view, index
    tensor, dim of x)``; ints are applied first, so they never count as advanced (as in PyTorch)."""
    items = [_classify(k, op, x) for k in (key if isinstance(key, tuple) else (key,))]
    items = [bool(k.item()) if isinstance(k, Tensor) and k.dtype is dtypes.bool_ and k.ndim == 0 else k
             for k in items]
    consumed = sum(_span(k) for k in items)
    if consumed > x.ndim:
        raise IndexingError(op, f"too many indices for a tensor of {x.ndim} dimensions ({consumed} given)",
                            (x,))
    if sum(k is Ellipsis for k in items) > 1:
        raise IndexingError(op, "an index can only have a single ellipsis ('...')", (x,))
    basic: list = []
    adv: list = []
    d = o = 0
    for k in items:
        if k is Ellipsis:
            fill = x.ndim - consumed
            basic += [_FULL] * fill
            d, o = d + fill, o + fill
        elif k is None or isinstance(k, bool):
            basic.append(None)
            if k is False:
                adv.append((o, zeros(0, dtype=dtypes.int64, device=x.device), None))
            o += 1
        elif isinstance(k, int):
            size = x.shape[d]
            if not -size <= k < size:
                raise IndexingError(op, f"index {k} is out of range for dimension {d} with size {size} "
                                    f"(tensor shape {tuple(x.shape)})", (x,))
            basic.append(k)
            d += 1
        elif isinstance(k, tuple):
            basic.append(k)
            d, o = d + 1, o + 1
        elif k.dtype is dtypes.bool_:
            for j, nz in enumerate(_mask_indices(k, d, x, op)):
                basic.append(_FULL)
                adv.append((o + j, nz, d + j))
            d, o = d + k.ndim, o + k.ndim
        else:
            basic.append(_FULL)
            adv.append((o, k, d))
            d, o = d + 1, o + 1
    return tuple(basic), adv


def _basic_view(x: Tensor, basic: tuple, force: bool) -> Tensor:
    if not force and all(b == _FULL for b in basic):
        return x
    return bind(getitem_p, x, index=basic)


def _advanced(y: Tensor, adv: list, x: Tensor, op: str):
    """Broadcast and range-check the advanced indices; return (dims, indices, front perm, result perm)."""
    dims = [o for o, _, _ in adv]
    shape = broadcast_shapes(*[tuple(t.shape) for _, t, _ in adv], op=op, operands=(x,))
    idx = []
    for o, t, d in adv:
        if d is not None:
            _check_range(t, y.shape[o], d, x, op)
        idx.append(broadcast_to(t, shape))
    rest = [i for i in range(y.ndim) if i not in dims]
    front = tuple(dims + rest)
    nb = len(shape)
    if dims == list(range(dims[0], dims[0] + len(dims))):  # adjacent: the result dims stay in place
        before = dims[0]
        back = tuple(range(nb, nb + before)) + tuple(range(nb)) + tuple(range(nb + before, nb + len(rest)))
    else:
        back = tuple(range(nb + len(rest)))
    return idx, front, back


# -- __getitem__ / __setitem__ / index_put -------------------------------------------------------------
def getitem(x: Tensor, key: Any) -> Tensor:
    """``x[key]`` with PyTorch semantics: ints, slices (any step), None, Ellipsis, integer tensors, lists
    or arrays (advanced indexing) and boolean masks. Basic indexing returns a view.

    Example:
        >>> import ember
        >>> x = ember.arange(6).reshape(2, 3)
        >>> x[1, ::-1].tolist(), x[:, [0, 0]].tolist()
        ([5, 4, 3], [[0, 0], [3, 3]])
    """
    basic, adv = _parse(x, key, "__getitem__")
    y = _basic_view(x, basic, force=not adv)
    front0, scalars, adv = _scalar_selects(y, adv, x, "__getitem__")
    if scalars:
        y = bind(index_p, permute(y, front0), *scalars)
    if not adv:
        return y
    idx, front, back = _advanced(y, adv, x, "__getitem__")
    return permute(bind(index_p, permute(y, front), *idx), back)


def _scalar_selects(y: Tensor, adv: list, x: Tensor, op: str) -> tuple[tuple, list, list]:
    """Split off 0-d integer tensor indices, which select like ints (as in PyTorch) before the others
    are placed; return (the permutation bringing their dims to the front, them, the other entries)."""
    scalars = [e for e in adv if e[1].ndim == 0]
    if not scalars:
        return (), [], adv
    dims = [o for o, _, _ in scalars]
    for o, t, d in scalars:
        _check_range(t, y.shape[o], d, x, op)
    front = tuple(dims + [i for i in range(y.ndim) if i not in dims])
    rest = [(o - sum(s < o for s in dims), t, d) for o, t, d in adv if t.ndim != 0]
    return front, [t for _, t, _ in scalars], rest


def _fit(value: Any, shape: tuple, like: Tensor, op: str) -> Tensor:
    """`value` as a tensor of `like`'s dtype broadcast to `shape` (extra leading 1s are dropped)."""
    if not isinstance(value, Tensor):
        value = tensor(value, dtype=like.dtype, device=like.device)
    value = convert(value, like.dtype)
    vshape = tuple(value.shape)
    while len(vshape) > len(shape) and vshape[0] == 1:
        vshape = vshape[1:]
    if vshape != tuple(value.shape):
        value = reshape(value, vshape)
    try:
        ok = broadcast_shapes(vshape, shape) == tuple(shape)
    except ShapeError:
        ok = False
    if not ok:
        raise ShapeError(op, f"shape mismatch: value of shape {vshape} cannot be broadcast to the indexing "
                         f"result of shape {tuple(shape)}", (like, value))
    return broadcast_to(value, shape)


def _assign(x: Tensor, key: Any, value: Any, accumulate: bool = False, op: str = "__setitem__") -> Tensor:
    """The out-of-place result of ``x[key] = value`` (or ``+=`` with `accumulate`)."""
    if (not accumulate and isinstance(key, Tensor) and key.dtype is dtypes.bool_
            and tuple(key.shape) == tuple(x.shape) and x.ndim
            and (not isinstance(value, Tensor) or value.ndim == 0)):
        # a full-size mask and one value: an elementwise choice, with no count of selected elements
        # (which ember.jit could not follow from call to call)
        return where(key, _fit(value, (), x, op), x)
    basic, adv = _parse(x, key, op)
    y = _basic_view(x, basic, force=False)
    front0, scalars, adv = _scalar_selects(y, adv, x, op)
    y2 = bind(index_p, permute(y, front0), *scalars) if scalars else y
    if adv:
        idx, front, back = _advanced(y2, adv, x, op)
        yf = permute(y2, front)
        result_shape = tuple(idx[0].shape) + tuple(yf.shape[len(idx):])
        result_shape = tuple(result_shape[i] for i in back)
        v = permute(_fit(value, result_shape, x, op), _inverse(back))
        new = permute(bind(index_put_p, yf, v, *idx, accumulate=accumulate), _inverse(front))
    else:
        new = _fit(value, tuple(y2.shape), x, op)
        new = y2 + new if accumulate else new
    if scalars:
        new = bind(index_put_p, permute(y, front0), new, *scalars, accumulate=False)
        new = permute(new, _inverse(front0))
    if y is x:
        return broadcast_to(new, tuple(x.shape))
    return bind(slice_scatter_p, x, new, index=basic)


def setitem(x: Tensor, key: Any, value: Any) -> None:
    """``x[key] = value`` in place (differentiable in `x` and `value`); `value` broadcasts to ``x[key]``.

    Example:
        >>> import ember
        >>> x = ember.zeros(3)
        >>> x[[0, 2]] = 1.0
        >>> x.tolist()
        [1.0, 0.0, 1.0]
    """

    def setitem(x, key, value):
        return _assign(x, key, value)

    inplace(x, setitem, key, _unaliased(value, x))


def _unaliased(value: Any, x: Tensor) -> Any:
    """`value` with storage and version of its own if it is a view of `x` (as in ``x[i] += v``), so that
    the write into `x` does not invalidate it as a saved input; its autograd history is kept."""
    if not isinstance(value, Tensor) or isinstance(value, Tracer) or value._vc is not x._vc or x._vc is None:
        return value
    out = Tensor._make(value._data.copy(), value._dtype, value._device)
    out._node, out._requires_grad = value._node, value._requires_grad
    return out


def index_put(x: Tensor, indices: tuple, values: Any, accumulate: bool = False) -> Tensor:
    """Out-of-place ``x[indices] = values`` (``+=`` with repeated indices summed when `accumulate`).

    Args:
        x: the tensor to write into (not modified).
        indices: a tuple of integer or boolean index tensors, as in ``x[indices]``.
        values: broadcastable to ``x[indices]``.
        accumulate: add instead of assigning.

    Returns:
        A new tensor shaped like `x`.

    Example:
        >>> import ember
        >>> ember.index_put(ember.zeros(3), (ember.tensor([0, 0]),), ember.tensor(1.0), True).tolist()
        [2.0, 0.0, 0.0]
    """
    return _assign(x, tuple(indices), values, accumulate, "index_put")


# -- gather / scatter ----------------------------------------------------------------------------------
def _grid(index: Tensor, dim: int) -> list[Tensor]:
    """Index tensors addressing every position of `index` with `index` itself along `dim`."""
    shape = tuple(index.shape)
    out = []
    for d, n in enumerate(shape):
        if d == dim:
            out.append(index)
            continue
        if isinstance(index, Tracer):  # positions derived from `index`, so tracing sees their shape
            from .reduce import cumsum

            out.append(cumsum(full_like(index, 1), d) - 1)
            continue
        view = tuple(n if i == d else 1 for i in range(len(shape)))
        out.append(broadcast_to(reshape(arange(n, device=index.device), view), shape))
    return out


def _dim_index_args(x: Tensor, dim: int, index: Any, op: str, other=None, other_name="src"):
    """Validate a gather/scatter call; return (x, dim, index) with 0-d operands seen as 1-d."""
    index = _int_index(index, op, (x,))
    operands = (x, index) + ((other,) if isinstance(other, Tensor) else ())
    if index.ndim != max(x.ndim, 1) and not (index.ndim == 0 and x.ndim == 0):
        raise ShapeError(op, f"index should have the same number of dimensions as input: index has "
                         f"{index.ndim}, input {x.ndim} (shapes {tuple(index.shape)} and {tuple(x.shape)})",
                         operands)
    dim = normalize_axis(dim, x.ndim, op, x)
    xs = tuple(x.shape) or (1,)
    ishape = tuple(index.shape) or (1,)
    for d, (n, m) in enumerate(zip(ishape, xs)):
        if d != dim and n > m:
            raise ShapeError(op, f"index {ishape} is larger than input {xs} in dimension {d}", operands)
    if isinstance(other, Tensor):
        oshape = tuple(other.shape) or (1,)
        if len(oshape) != len(ishape) or any(n > m for n, m in zip(ishape, oshape)):
            raise ShapeError(op, f"index {ishape} must not be larger than {other_name} {oshape} in any "
                             "dimension", operands)
    _check_range(index, xs[dim], dim, x, op, negative=False)
    return dim, reshape(index, ishape)


def gather(x: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    """Values of `x` along `dim` at `index`: ``out[i][j] = x[index[i][j]][j]`` for ``dim=0``.

    Args:
        x: input tensor.
        dim: the dimension to index.
        index: int64 tensor with as many dimensions as `x` and no larger elsewhere.

    Returns:
        A tensor shaped like `index`; repeated indices accumulate in the gradient.

    Example:
        >>> import ember
        >>> ember.gather(ember.tensor([[1, 2], [3, 4]]), 1, ember.tensor([[0, 0], [1, 0]])).tolist()
        [[1, 1], [4, 3]]
    """
    dim, idx = _dim_index_args(x, dim, index, "gather")
    out = bind(index_p, reshape(x, tuple(x.shape) or (1,)), *_grid(idx, dim))
    return reshape(out, tuple(index.shape))


def _src_values(x: Tensor, src: Any, idx: Tensor) -> Tensor:
    """The part of `src` that a scatter reads (its leading ``idx.shape`` block), in `x`'s dtype."""
    if not isinstance(src, Tensor):
        return full(tuple(idx.shape), src, dtype=x.dtype, device=x.device)
    src = convert(reshape(src, tuple(src.shape) or (1,)), x.dtype)
    if tuple(src.shape) != tuple(idx.shape):
        src = bind(getitem_p, src, index=tuple((0, n, 1) for n in idx.shape))
    return src


def _scatter_into(x, dim, index, src, op, accumulate=False, reduce=None, include_self=True) -> Tensor:
    dim, idx = _dim_index_args(x, dim, index, op, src)
    x1 = reshape(x, tuple(x.shape) or (1,))
    values = _src_values(x, src, idx)
    grid = _grid(idx, dim)
    if reduce is None:
        out = bind(index_put_p, x1, values, *grid, accumulate=accumulate)
    else:
        if not include_self:
            x1 = bind(index_put_p, x1, full(tuple(idx.shape), _identity(reduce, x.dtype), dtype=x.dtype,
                                            device=x.device), *grid, accumulate=False)
        out = bind(index_reduce_p, x1, values, *grid, reduce=reduce)
    return reshape(out, tuple(x.shape))


def _identity(reduce: str, dt: dtypes.DType):
    if reduce == "prod":
        return 1
    if dt.kind == dtypes._FLOAT:
        return float("-inf") if reduce == "amax" else float("inf")
    info = np.iinfo(dt.np)
    return int(info.min) if reduce == "amax" else int(info.max)


def scatter(x: Tensor, dim: int, index: Tensor, src: Any = None, *, value: Any = None,
            reduce: str | None = None) -> Tensor:
    """Out-of-place ``x[index[i][j]][j] = src[i][j]`` (for ``dim=0``); `src` may be a tensor or a scalar.

    With repeated indices the last write wins. ``reduce="add"``/``"multiply"`` combine instead.

    Example:
        >>> import ember
        >>> ember.scatter(ember.zeros(2, 2), 0, ember.tensor([[1, 0]]), 5.0).tolist()
        [[0.0, 5.0], [5.0, 0.0]]
    """
    src = value if src is None else src
    if reduce == "add":
        return _scatter_into(x, dim, index, src, "scatter", accumulate=True)
    if reduce == "multiply":
        return _scatter_into(x, dim, index, src, "scatter", reduce="prod")
    if reduce is not None:
        raise DTypeError("scatter", f"reduce must be None, 'add' or 'multiply', got {reduce!r}", (x,))
    return _scatter_into(x, dim, index, src, "scatter")


def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """Out-of-place ``x[index[i][j]][j] += src[i][j]`` (for ``dim=0``), summing repeated indices.

    Example:
        >>> import ember
        >>> ember.scatter_add(ember.zeros(3), 0, ember.tensor([0, 0, 2]), ember.ones(3)).tolist()
        [2.0, 0.0, 1.0]
    """
    return _scatter_into(x, dim, index, src, "scatter_add", accumulate=True)


def scatter_reduce(x: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    """Scatter `src` into `x` along `dim`, combining values at one position with `reduce`.

    Args:
        reduce: "sum", "prod", "mean", "amax" or "amin".
        include_self: whether the values of `x` at scattered positions take part.

    Example:
        >>> import ember
        >>> x = ember.tensor([1.0, 5.0])
        >>> ember.scatter_reduce(x, 0, ember.tensor([0, 0]), ember.tensor([3.0, 2.0]), "amax").tolist()
        [3.0, 5.0]
    """
    op = "scatter_reduce"
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise DTypeError(op, f"reduce must be one of sum, prod, mean, amax, amin; got {reduce!r}", (x,))
    if reduce in ("prod", "amax", "amin"):
        return _scatter_into(x, dim, index, src, op, reduce=reduce, include_self=include_self)
    base = x if include_self else _scatter_into(x, dim, index, 0, op)
    total = _scatter_into(base, dim, index, src, op, accumulate=True)
    if reduce == "sum":
        return total
    ones = full(tuple(index.shape), 1, dtype=x.dtype, device=x.device)
    count = _scatter_into(full(tuple(x.shape), int(include_self), dtype=x.dtype, device=x.device), dim,
                          index, ones, op, accumulate=True)
    count = where(eq(count, 0), 1, count)
    return total / count if x.dtype.kind >= dtypes._FLOAT else div(total, count, rounding_mode="floor")


def take_along_dim(x: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """Values of `x` at `indices` along `dim` (the two broadcast elsewhere); flattened if `dim` is None.

    Example:
        >>> import ember
        >>> x = ember.tensor([[10, 30, 20]])
        >>> ember.take_along_dim(x, ember.argsort(x, dim=1), dim=1).tolist()
        [[10, 20, 30]]
    """
    indices = _int_index(indices, "take_along_dim", (x,))
    if dim is None:
        return gather(reshape(x, (-1,)), 0, reshape(indices, (-1,)))
    if indices.ndim != x.ndim:
        raise ShapeError("take_along_dim", f"input and indices should have the same number of dimensions, "
                         f"got {x.ndim} and {indices.ndim}", (x, indices))
    dim = normalize_axis(dim, x.ndim, "take_along_dim", x)
    xs, js = list(x.shape), list(indices.shape)
    xs[dim] = js[dim] = 1
    common = list(broadcast_shapes(tuple(xs), tuple(js), op="take_along_dim", operands=(x, indices)))
    xb = broadcast_to(x, tuple(common[:dim] + [x.shape[dim]] + common[dim + 1:]))
    ib = broadcast_to(indices, tuple(common[:dim] + [indices.shape[dim]] + common[dim + 1:]))
    return gather(xb, dim, ib)


def take(x: Tensor, index: Tensor) -> Tensor:
    """Elements of `x` seen as 1-d at `index` (any shape; negative indices count from the end).

    Example:
        >>> import ember
        >>> ember.take(ember.tensor([[1, 2], [3, 4]]), ember.tensor([0, -1])).tolist()
        [1, 4]
    """
    index = _int_index(index, "take", (x,))
    flat = reshape(x, (-1,))
    _check_range(index, flat.shape[0], 0, flat, "take")
    return bind(index_p, flat, index)


# -- index_select / index_add / index_copy / index_fill ----------------------------------------------
def _along(x: Tensor, dim: int, index: Any, op: str) -> tuple[int, Tensor]:
    index = _int_index(index, op, (x,))
    if index.ndim > 1:
        raise ShapeError(op, f"index should be 0-d or 1-d, got shape {tuple(index.shape)}", (x, index))
    dim = normalize_axis(dim, x.ndim, op, x)
    _check_range(index, (tuple(x.shape) or (1,))[dim], dim, x, op, negative=False)
    return dim, reshape(index, (-1,))


def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """The slices of `x` along `dim` at the positions in the 1-d `index`.

    Example:
        >>> import ember
        >>> ember.index_select(ember.tensor([[1, 2], [3, 4]]), 1, ember.tensor([1, 1])).tolist()
        [[2, 2], [4, 4]]
    """
    dim, idx = _along(x, dim, index, "index_select")
    if x.ndim == 0:
        return bind(index_p, reshape(x, (1,)), idx)
    return moveaxis(bind(index_p, moveaxis(x, dim, 0), idx), 0, dim)


def _index_write(x, dim, index, source, op, accumulate, exact=True) -> Tensor:
    dim, idx = _along(x, dim, index, op)
    x1 = reshape(x, tuple(x.shape) or (1,))
    want = list(x1.shape)
    want[dim] = idx.shape[0]
    if exact and isinstance(source, Tensor) and tuple(source.shape or (1,)) != tuple(want):
        raise ShapeError(op, f"source should have shape {tuple(want)} (input with dimension {dim} of size "
                         f"{idx.shape[0]}), got {tuple(source.shape)}", (x, source))
    src = moveaxis(_fit(source, tuple(want), x, op), dim, 0)
    out = bind(index_put_p, moveaxis(x1, dim, 0), src, idx, accumulate=accumulate)
    return reshape(moveaxis(out, 0, dim), tuple(x.shape))


def index_add(x: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1) -> Tensor:
    """Out-of-place ``x.index_select(dim, index) += alpha * source``, summing repeated indices.

    Example:
        >>> import ember
        >>> ember.index_add(ember.zeros(3), 0, ember.tensor([0, 0]), ember.tensor([1.0, 2.0])).tolist()
        [3.0, 0.0, 0.0]
    """
    source = source if alpha == 1 else source * alpha
    return _index_write(x, dim, index, source, "index_add", accumulate=True)


def index_copy(x: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """Out-of-place copy of the slices of `source` into `x` along `dim` at `index`.

    Example:
        >>> import ember
        >>> ember.index_copy(ember.zeros(3), 0, ember.tensor([2]), ember.tensor([7.0])).tolist()
        [0.0, 0.0, 7.0]
    """
    return _index_write(x, dim, index, source, "index_copy", accumulate=False)


def index_fill(x: Tensor, dim: int, index: Tensor, value: Any) -> Tensor:
    """Out-of-place fill of the slices of `x` along `dim` at `index` with a scalar or 0-d tensor.

    Example:
        >>> import ember
        >>> ember.index_fill(ember.zeros(3), 0, ember.tensor([1]), 4.0).tolist()
        [0.0, 4.0, 0.0]
    """
    return _index_write(x, dim, index, value, "index_fill", accumulate=False, exact=False)


# -- masks ---------------------------------------------------------------------------------------------
def _bool_mask(mask: Any, op: str, x: Tensor) -> Tensor:
    mask = mask if isinstance(mask, Tensor) else tensor(mask, device=x.device)
    if mask.dtype is not dtypes.bool_:
        raise DTypeError(op, f"expected a boolean mask, got {mask.dtype}", (x, mask))
    return mask


def masked_fill(x: Tensor, mask: Tensor, value: Any) -> Tensor:
    """`x` with `value` (a scalar or 0-d tensor, differentiable) where the boolean `mask` is true.

    Example:
        >>> import ember
        >>> ember.masked_fill(ember.tensor([1.0, 2.0]), ember.tensor([True, False]), 0.0).tolist()
        [0.0, 2.0]
    """
    mask = _bool_mask(mask, "masked_fill", x)
    if broadcast_shapes(tuple(mask.shape), tuple(x.shape), op="masked_fill", operands=(x, mask)) != x.shape:
        raise ShapeError("masked_fill", f"mask of shape {tuple(mask.shape)} does not broadcast to the input "
                         f"shape {tuple(x.shape)}", (x, mask))
    if isinstance(value, Tensor):
        if value.ndim:
            raise ShapeError("masked_fill", f"only a 0-d value tensor is supported, got shape "
                             f"{tuple(value.shape)}", (x, value))
        value = convert(value, x.dtype)
    else:
        value = full((), value, dtype=x.dtype, device=x.device)
    return where(mask, value, x)


def masked_select(x: Tensor, mask: Tensor) -> Tensor:
    """The elements of `x` where `mask` is true, as a 1-d tensor (the two broadcast together).

    Example:
        >>> import ember
        >>> ember.masked_select(ember.tensor([1, 2, 3]), ember.tensor([True, False, True])).tolist()
        [1, 3]
    """
    mask = _bool_mask(mask, "masked_select", x)
    shape = broadcast_shapes(tuple(x.shape), tuple(mask.shape), op="masked_select", operands=(x, mask))
    shape = shape or (1,)
    return getitem(broadcast_to(reshape(x, tuple(x.shape) or (1,)), shape),
                   broadcast_to(reshape(mask, tuple(mask.shape) or (1,)), shape))


# -- sorting -------------------------------------------------------------------------------------------
def _argsort_impl(xp, x, dim, descending):
    if not descending:
        return xp.argsort(x, axis=dim, kind="stable").astype(xp.int64)
    # Stable descending order: sort the reversed array ascending, reverse, and map positions back.
    idx = xp.argsort(xp.flip(x, axis=dim), axis=dim, kind="stable")
    return (x.shape[dim] - 1 - xp.flip(idx, axis=dim)).astype(xp.int64)


def _argsort_batch(values, bdims, dim, descending):
    return bind(argsort_p, moveaxis(values[0], bdims[0], 0), dim=dim + 1, descending=descending), 0


argsort_p = Primitive("argsort", _argsort_impl, batch=_argsort_batch, nondiff_inputs=(0,))


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The int64 indices that sort `x` along `dim` (always stable: ties keep their order; NaN sorts
    as the largest value).

    Example:
        >>> import ember
        >>> ember.argsort(ember.tensor([3.0, 1.0, 2.0])).tolist()
        [1, 2, 0]
    """
    if x.ndim == 0:
        return zeros((), dtype=dtypes.int64, device=x.device)
    dim = normalize_axis(dim, x.ndim, "argsort", x)
    return bind(argsort_p, x, dim=dim, descending=bool(descending))


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """`x` sorted along `dim`, as a namedtuple ``(values, indices)``; values are differentiable.

    Example:
        >>> import ember
        >>> ember.sort(ember.tensor([3.0, 1.0, 2.0]), descending=True).values.tolist()
        [3.0, 2.0, 1.0]
    """
    indices = argsort(x, dim, descending, stable)
    if x.ndim == 0:
        return sort_result(x, indices)
    return sort_result(gather(x, dim, indices), indices)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """The `k` largest (or smallest) elements along `dim`, as a namedtuple ``(values, indices)``
    (always in sorted order).

    Example:
        >>> import ember
        >>> ember.topk(ember.tensor([1.0, 5.0, 3.0]), 2).indices.tolist()
        [1, 2]
    """
    size = (tuple(x.shape) or (1,))[normalize_axis(dim, x.ndim, "topk", x)]
    if not 0 <= k <= size:
        raise IndexingError("topk", f"k={k} is out of range for dimension {dim} with size {size}", (x,))
    order = argsort(x, dim, descending=largest)
    if x.ndim == 0:
        return topk_result(x, order)
    dim = normalize_axis(dim, x.ndim, "topk", x)
    indices = bind(getitem_p, order, index=(_FULL,) * dim + ((0, k, 1),))
    return topk_result(gather(x, dim, indices), indices)


order_result = namedtuple("order_statistic", ["values", "indices"])


def _pick(x: Tensor, dim: int, rank: Tensor | int, keepdim: bool):
    """The element of rank `rank` (0-based; an int, or an int64 tensor of one rank per slice, shaped as
    `x` with `dim` kept as 1) along `dim` in sorted order, as ``(values, indices)``."""
    from .movement import squeeze

    order = argsort(x, dim)
    if isinstance(rank, int):
        shape = list(x.shape)
        shape[dim] = 1
        rank = full(tuple(shape), rank, dtype=dtypes.int64, device=x.device)
    indices = gather(order, dim, rank)
    values = gather(x, dim, indices)
    if not keepdim:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    return order_result(values, indices)


def _of_all(fn, x: Tensor, op: str) -> Tensor:
    """`fn` (median or nanmedian) of all the elements of `x`: the value only, 0-d."""
    flat = reshape(x, (-1,))
    if flat.shape[0] == 0:
        raise IndexingError(op, "median of an empty tensor", (x,))
    return fn(flat, 0).values


def isin(elements: Any, test_elements: Any, *, assume_unique: bool = False, invert: bool = False) -> Tensor:
    """Elementwise: whether each of `elements` occurs in `test_elements` (by sorting the test values and
    searching them, so it compiles); returns bool.

    Example:
        >>> import ember
        >>> ember.isin(ember.tensor([1, 2, 3, 4]), ember.tensor([2, 4])).tolist()
        [False, True, False, True]
    """
    from .elementwise import logical_not

    elements = elements if isinstance(elements, Tensor) else tensor(elements)
    test = test_elements if isinstance(test_elements, Tensor) else tensor(test_elements,
                                                                          device=elements.device)
    flat = reshape(test, (-1,))
    if flat.shape[0] == 0:
        found = full(tuple(elements.shape), False, dtype=dtypes.bool_, device=elements.device)
    else:
        ordered = sort(flat).values
        at = clamp(searchsorted(ordered, elements), 0, flat.shape[0] - 1)
        found = eq(reshape(gather(ordered, 0, reshape(at, (-1,))), tuple(elements.shape)), elements)
    return logical_not(found) if invert else found


def bincount(x: Tensor, weights: Tensor | None = None, minlength: int = 0) -> Tensor:
    """How often each value 0, 1, ... occurs in the non-negative 1-D integer tensor `x` (the sums of
    `weights` there, if given); the length is ``max(x) + 1`` (at least `minlength`), which depends on the
    values, so this does not compile.

    Example:
        >>> import ember
        >>> ember.bincount(ember.tensor([0, 1, 1, 3])).tolist()
        [1, 2, 0, 1]
    """
    from .reduce import amax, amin

    if x.ndim != 1 or x.dtype.is_floating_point or x.dtype.is_complex or x.dtype is dtypes.bool_:
        raise DTypeError("bincount", f"expected a 1-D integer tensor, got {x.dtype} of shape "
                         f"{tuple(x.shape)}", (x,))
    if x.shape[0] and int(amin(x).item()) < 0:
        raise IndexingError("bincount", "values must be non-negative", (x,))
    length = max(int(amax(x).item()) + 1 if x.shape[0] else 0, minlength)
    if weights is None:
        source, dtype = full((x.shape[0],), 1, dtype=dtypes.int64, device=x.device), dtypes.int64
    else:
        if tuple(weights.shape) != tuple(x.shape):
            raise ShapeError("bincount", f"weights of shape {tuple(weights.shape)} for input of shape "
                             f"{tuple(x.shape)}", (x, weights))
        dtype = weights.dtype if weights.dtype.is_floating_point else dtypes.float64
        source = convert(weights, dtype)
    return scatter_add(zeros((length,), dtype=dtype, device=x.device), 0, convert(x, dtypes.int64), source)


def histc(x: Tensor, bins: int = 100, min: float = 0, max: float = 0) -> Tensor:
    """A histogram of `x` with `bins` equal bins over [min, max] (the data's range when both are 0);
    values outside are ignored, and the maximum falls in the last bin.

    Example:
        >>> import ember
        >>> ember.histc(ember.tensor([1.0, 2.0, 1.0]), bins=4, min=0, max=3).tolist()
        [0.0, 2.0, 1.0, 0.0]
    """
    from .elementwise import floor, ge, le, mul, sub
    from .reduce import amax, amin

    if not x.dtype.is_floating_point:
        raise DTypeError("histc", f"expected a floating point input, got {x.dtype}", (x,))
    if bins < 1:
        raise IndexingError("histc", f"bins must be positive, got {bins}", (x,))
    lo, hi = float(min), float(max)
    if lo == hi and x.numel():
        lo, hi = float(amin(x).item()), float(amax(x).item())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise IndexingError("histc", f"max ({hi}) must not be below min ({lo})", (x,))
    flat = reshape(x, (-1,))
    inside = logical_and(ge(flat, lo), le(flat, hi))
    at = convert(clamp(floor(mul(sub(flat, lo), bins / (hi - lo))), 0, bins - 1), dtypes.int64)
    counts = scatter_add(zeros((bins,), dtype=x.dtype, device=x.device), 0, at, convert(inside, x.dtype))
    return counts


mode_result = namedtuple("mode", ["values", "indices"])


def mode(x: Tensor, dim: int = -1, keepdim: bool = False):
    """The most frequent value along `dim` (the smallest of equally frequent ones) and the index of its
    last occurrence, as a namedtuple ``(values, indices)``; values are differentiable.

    Example:
        >>> import ember
        >>> ember.mode(ember.tensor([3, 1, 3, 2, 1, 3])).values.item()
        3
    """
    from .elementwise import ne, sub
    from .movement import cat, moveaxis, narrow, squeeze
    from .reduce import argmax, cumsum

    if x.ndim == 0:
        return mode_result(x, zeros((), dtype=dtypes.int64, device=x.device))
    dim = normalize_axis(dim, x.ndim, "mode", x)
    moved = moveaxis(x, dim, -1)
    n = moved.shape[-1]
    if n == 0:
        raise IndexingError("mode", f"dimension {dim} is empty", (x,))
    ordered = sort(moved, -1)
    values, order = ordered.values, ordered.indices
    edge = full_like(narrow(values, -1, 0, 1), True, dtype=dtypes.bool_)
    change = ne(narrow(values, -1, 1, n - 1), narrow(values, -1, 0, n - 1))  # between i - 1 and i
    starts, ends = cat([edge, change], -1), cat([change, edge], -1)
    run = sub(cumsum(starts, -1), 1)  # which run of equal values each position is in
    lengths = scatter_add(full_like(run, 0), -1, run, full_like(run, 1))
    score = where(ends, gather(lengths, -1, run), -1)  # each run's length, at its last position
    at = argmax(score, -1, keepdim=True)  # the first longest run: the smallest value
    picked, index = gather(values, -1, at), gather(order, -1, at)
    if keepdim:
        return mode_result(moveaxis(picked, -1, dim), moveaxis(index, -1, dim))
    return mode_result(squeeze(picked, -1), squeeze(index, -1))


def unique_consecutive(x: Tensor, return_inverse: bool = False, return_counts: bool = False,
                       dim: int | None = None):
    """`x` with each run of equal consecutive elements (slices along `dim` when given) reduced to one;
    with `return_inverse`, where each element went, and with `return_counts`, the run lengths. The
    result's size depends on the values, so this does not compile.

    Example:
        >>> import ember
        >>> ember.unique_consecutive(ember.tensor([1, 1, 2, 2, 3, 1, 1])).tolist()
        [1, 2, 3, 1]
    """
    a = x.numpy()
    if dim is None:
        flat = a.reshape(-1)
        keep = np.ones(flat.shape[0], dtype=bool)
        if flat.shape[0]:
            keep[1:] = flat[1:] != flat[:-1]
        values, axis_len = flat[keep], flat.shape[0]
        inverse = (np.cumsum(keep) - 1).reshape(a.shape)
    else:
        dim = normalize_axis(dim, x.ndim, "unique_consecutive", x)
        moved = np.moveaxis(a, dim, 0)
        axis_len = moved.shape[0]
        keep = np.ones(axis_len, dtype=bool)
        if axis_len:
            keep[1:] = (moved[1:] != moved[:-1]).reshape(axis_len - 1, -1).any(axis=1)
        values = np.moveaxis(moved[keep], 0, dim)
        inverse = np.cumsum(keep) - 1
    out = [tensor(np.ascontiguousarray(values), device=x.device)]
    if return_inverse:
        out.append(tensor(inverse.astype(np.int64), device=x.device))
    if return_counts:
        starts = np.flatnonzero(keep)
        out.append(tensor(np.diff(np.append(starts, axis_len)).astype(np.int64), device=x.device))
    return out[0] if len(out) == 1 else tuple(out)


def msort(x: Tensor) -> Tensor:
    """`x` sorted along its first dimension (the values)."""
    return sort(x, 0).values


def unravel_index(indices: Any, shape) -> tuple[Tensor, ...]:
    """The coordinates in an array of `shape` of each flat (row-major) index, one int64 tensor per
    dimension.

    Example:
        >>> import ember
        >>> [t.tolist() for t in ember.unravel_index(ember.tensor([5, 7]), (3, 4))]
        [[1, 1], [1, 3]]
    """
    from .elementwise import floor_divide, ge, lt, remainder
    from .reduce import any as _any

    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    flat = indices if isinstance(indices, Tensor) else tensor(indices)
    if flat.dtype.is_floating_point or flat.dtype.is_complex or flat.dtype is dtypes.bool_:
        raise DTypeError("unravel_index", f"expected integer indices, got {flat.dtype}", (flat,))
    total = int(np.prod(shape)) if shape else 1
    if not isinstance(flat, Tracer) and bool(_any(logical_and(ge(flat, -total), lt(flat, total)) == 0)):
        raise IndexingError("unravel_index", f"indices out of range for shape {shape}", (flat,))
    flat = convert(flat, dtypes.int64)
    flat = remainder(flat, total) if total else flat  # negative indices count from the end
    coords = []
    for size in reversed(shape):
        coords.append(remainder(flat, size))
        flat = floor_divide(flat, size)
    return tuple(reversed(coords))


def masked_scatter(input: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    """A copy of `input` whose positions where `mask` (broadcast) is true take the elements of `source`
    in order (row-major), as PyTorch's ``masked_scatter``; differentiable in `input` and `source`.

    Example:
        >>> import ember
        >>> ember.masked_scatter(ember.zeros(4), ember.tensor([True, False, True, False]),
        ...                      ember.tensor([1.0, 2.0, 3.0])).tolist()
        [1.0, 0.0, 2.0, 0.0]
    """
    from .reduce import cumsum

    if mask.dtype is not dtypes.bool_:
        raise DTypeError("masked_scatter", f"mask must be bool, got {mask.dtype}", (mask,))
    shape = tuple(input.shape)
    full_mask = broadcast_to(mask, broadcast_shapes(shape, tuple(mask.shape), op="masked_scatter",
                                                    operands=(input, mask)))
    flat_source = reshape(source, (-1,))
    if not isinstance(mask, Tracer):  # (a traced mask has no values to count: the gather clamps instead)
        count = int(np.count_nonzero(np.broadcast_to(np.asarray(mask._data), tuple(full_mask.shape))))
        if count > flat_source.shape[0]:
            raise ShapeError("masked_scatter", f"source has {flat_source.shape[0]} elements for {count} true "
                             "positions of the mask", (input, mask, source))
    if flat_source.shape[0] == 0:
        return input
    order = cumsum(reshape(convert(full_mask, dtypes.int64), (-1,)), 0)  # the source index + 1 at each
    taken = gather(flat_source, 0, clamp(order - 1, 0, flat_source.shape[0] - 1))
    return where(full_mask, reshape(convert(taken, input.dtype), shape), input)


def slice_scatter(input: Tensor, src: Tensor, dim: int = 0, start: int | None = None, end: int | None = None,
                  step: int = 1) -> Tensor:
    """A copy of `input` with ``input[start:end:step]`` along `dim` replaced by `src` (differentiable in
    both).

    Example:
        >>> import ember
        >>> ember.slice_scatter(ember.zeros(4), ember.ones(2), start=1, end=3).tolist()
        [0.0, 1.0, 1.0, 0.0]
    """
    dim = normalize_axis(dim, input.ndim, "slice_scatter", input)
    index = (_FULL,) * dim + ((start, end, step),)
    expected = tuple(np.empty(input.shape, dtype=np.bool_)[_np_key(index)].shape)
    if tuple(src.shape) != expected:
        raise ShapeError("slice_scatter", f"src of shape {tuple(src.shape)} for a slice of shape {expected}",
                         (input, src))
    return bind(slice_scatter_p, input, convert(src, input.dtype), index=index)


def select_scatter(input: Tensor, src: Tensor, dim: int, index: int) -> Tensor:
    """A copy of `input` with the slice at `index` along `dim` replaced by `src` (of the slice's shape).

    Example:
        >>> import ember
        >>> ember.select_scatter(ember.zeros(2, 2), ember.ones(2), 0, 1).tolist()
        [[0.0, 0.0], [1.0, 1.0]]
    """
    dim = normalize_axis(dim, input.ndim, "select_scatter", input)
    size = input.shape[dim]
    if not -size <= index < size:
        raise IndexingError("select_scatter", f"index {index} is out of range for dimension {dim} with size "
                            f"{size}", (input,))
    from .movement import unsqueeze

    i = index % size
    return slice_scatter(input, unsqueeze(src, dim), dim, i, i + 1)


def diagonal_scatter(input: Tensor, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """A copy of `input` with its diagonal `offset` in `dim1`, `dim2` replaced by `src` (shaped as
    ``input.diagonal(offset, dim1, dim2)``).

    Example:
        >>> import ember
        >>> ember.diagonal_scatter(ember.zeros(2, 3), ember.ones(2), 1).tolist()
        [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    from .elementwise import sub
    from .movement import diagonal, unsqueeze

    d1 = normalize_axis(dim1, input.ndim, "diagonal_scatter", input)
    d2 = normalize_axis(dim2, input.ndim, "diagonal_scatter", input)
    expected = tuple(diagonal(input, offset, d1, d2).shape)
    if tuple(src.shape) != expected:
        raise ShapeError("diagonal_scatter", f"src of shape {tuple(src.shape)} for a diagonal of shape "
                         f"{expected}", (input, src))
    rows = arange(input.shape[d1], device=input.device)
    cols = arange(input.shape[d2], device=input.device)
    on = eq(sub(unsqueeze(cols, 0), unsqueeze(rows, 1)), offset)  # (rows, cols): the diagonal
    shape = [1] * input.ndim
    shape[d1], shape[d2] = input.shape[d1], input.shape[d2]
    on = reshape(on if d1 < d2 else permute(on, (1, 0)), tuple(shape))
    return where(on, _diagonal_values(input, convert(src, input.dtype), d1, d2, offset), input)


def _diagonal_values(input: Tensor, src: Tensor, d1: int, d2: int, offset: int) -> Tensor:
    """`src` (the diagonal's values, last axis along the diagonal) spread over `input`'s shape so that
    each diagonal position holds its value (the other positions hold something of no use)."""
    from .movement import diag_embed, moveaxis, pad

    n1, n2 = input.shape[d1], input.shape[d2]
    square = diag_embed(src, offset)  # (..., L + |offset|, L + |offset|), the diagonal where it belongs
    size = square.shape[-1]
    square = pad(square, (0, max(n2 - size, 0), 0, max(n1 - size, 0)))[..., :n1, :n2]
    return moveaxis(square, (-2, -1), (d1, d2))


def kthvalue(x: Tensor, k: int, dim: int = -1, keepdim: bool = False):
    """The `k`-th smallest element (1-based) along `dim`, as a namedtuple ``(values, indices)``;
    values are differentiable. NaN counts as the largest value.

    Example:
        >>> import ember
        >>> ember.kthvalue(ember.tensor([3.0, 1.0, 2.0]), 2).values.item()
        2.0
    """
    if x.ndim == 0:
        x = reshape(x, (1,))
    dim = normalize_axis(dim, x.ndim, "kthvalue", x)
    if not 1 <= k <= x.shape[dim]:
        raise IndexingError("kthvalue", f"k={k} is out of range for dimension {dim} with size {x.shape[dim]}",
                            (x,))
    return _pick(x, dim, k - 1, keepdim)


def median(x: Tensor, dim: int | None = None, keepdim: bool = False):
    """The lower median: of all elements (a 0-d tensor) when `dim` is None, else along `dim` as a
    namedtuple ``(values, indices)``. A slice holding NaN has median NaN (at the first NaN's index), as
    in PyTorch; :func:`nanmedian` skips NaNs.

    Example:
        >>> import ember
        >>> ember.median(ember.tensor([4.0, 1.0, 3.0, 2.0])).item()
        2.0
    """
    from .elementwise import isnan
    from .reduce import any as _any
    from .reduce import argmax

    if dim is None:
        return _of_all(median, x, "median")
    if x.ndim == 0:
        x = reshape(x, (1,))
    dim = normalize_axis(dim, x.ndim, "median", x)
    result = _pick(x, dim, (x.shape[dim] - 1) // 2, keepdim)
    if not x.dtype.is_floating_point:
        return result
    nan = isnan(x)
    has_nan = _any(nan, dim, keepdim)
    values = where(has_nan, float("nan"), result.values)
    first_nan = argmax(convert(nan, dtypes.int64), dim, keepdim)
    return order_result(values, where(has_nan, first_nan, result.indices))


def nanmedian(x: Tensor, dim: int | None = None, keepdim: bool = False):
    """:func:`median` of the values that are not NaN (NaN where all are).

    Example:
        >>> import ember
        >>> ember.nanmedian(ember.tensor([4.0, float("nan"), 1.0, 3.0])).item()
        3.0
    """
    from .elementwise import isnan, logical_not, maximum, sub
    from .reduce import sum as _sum

    if dim is None:
        return _of_all(nanmedian, x, "nanmedian")
    if not x.dtype.is_floating_point:
        return median(x, dim, keepdim)
    if x.ndim == 0:
        x = reshape(x, (1,))
    dim = normalize_axis(dim, x.ndim, "nanmedian", x)
    count = _sum(logical_not(isnan(x)), dim, keepdim=True)  # NaNs sort last: rank (count - 1) // 2
    rank = div(maximum(sub(count, 1), 0), 2, rounding_mode="floor")
    return _pick(x, dim, convert(rank, dtypes.int64), keepdim)


# -- unique / nonzero / searchsorted (data-dependent shapes or int results; not differentiable) --------
def _unique_impl(xp, x, dim, part):
    values, inverse, counts = xp.unique(x, return_inverse=True, return_counts=True, axis=dim)
    if part == "values":
        return values
    if part == "inverse":
        return inverse.reshape(x.shape if dim is None else (x.shape[dim],)).astype(xp.int64)
    return counts.astype(xp.int64)


unique_p = Primitive("unique", _unique_impl, nondiff_inputs=(0,))
nonzero_p = Primitive("nonzero", lambda xp, x: xp.argwhere(x).astype(xp.int64), nondiff_inputs=(0,))


def unique(x: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
           dim: int | None = None):
    """The distinct values of `x` (or distinct slices along `dim`), in ascending order.

    Returns:
        The values, or a tuple adding the int64 inverse (position of each input element in the values)
        and/or the int64 counts. Not differentiable.

    Example:
        >>> import ember
        >>> ember.unique(ember.tensor([3, 1, 3]), return_counts=True)[1].tolist()
        [1, 2]
    """
    if dim is not None:
        dim = normalize_axis(dim, x.ndim, "unique", x)
    out = [bind(unique_p, x, dim=dim, part="values")]
    if return_inverse:
        out.append(bind(unique_p, x, dim=dim, part="inverse"))
    if return_counts:
        out.append(bind(unique_p, x, dim=dim, part="counts"))
    return out[0] if len(out) == 1 else tuple(out)


def nonzero(x: Tensor, *, as_tuple: bool = False):
    """The int64 indices of the non-zero elements: an ``(n, x.ndim)`` tensor, or one 1-d tensor per
    dimension with `as_tuple`.

    Example:
        >>> import ember
        >>> ember.nonzero(ember.tensor([[0, 1], [1, 0]])).tolist()
        [[0, 1], [1, 0]]
    """
    out = bind(nonzero_p, x if x.ndim or not as_tuple else reshape(x, (1,)))
    if not as_tuple:
        return out
    return tuple(bind(getitem_p, out, index=(_FULL, j)) for j in range(out.shape[1]))


def argwhere(x: Tensor) -> Tensor:
    """The int64 indices of the non-zero elements, one row per element (``nonzero(x)``).

    Example:
        >>> import ember
        >>> ember.argwhere(ember.tensor([0, 2, 3])).tolist()
        [[1], [2]]
    """
    return bind(nonzero_p, x)


def _searchsorted_impl(xp, seq, values, right):
    side = "right" if right else "left"
    if seq.ndim == 1:
        return xp.asarray(xp.searchsorted(seq, values, side=side), dtype=xp.int64)
    rows_s = seq.reshape(-1, seq.shape[-1])
    rows_v = values.reshape(-1, values.shape[-1])
    out = xp.empty(rows_v.shape, dtype=xp.int64)
    for i in range(rows_s.shape[0]):
        out[i] = xp.searchsorted(rows_s[i], rows_v[i], side=side)
    return out.reshape(values.shape)


def _searchsorted_batch(values, bdims, right):
    seq, v = values
    if bdims[0] is None and seq.ndim == 1:
        return bind(searchsorted_p, seq, v, right=right), bdims[1]
    n = _batch_size(values, bdims)
    seq, v = _moved(seq, bdims[0], n, 0), _moved(v, bdims[1], n, 0)
    if seq.ndim == 2:  # a 1-d sequence per batch entry: each entry's values become one row
        out = bind(searchsorted_p, seq, reshape(v, (n, -1)), right=right)
        return reshape(out, tuple(v.shape)), 0
    return bind(searchsorted_p, seq, v, right=right), 0


searchsorted_p = Primitive("searchsorted", _searchsorted_impl, batch=_searchsorted_batch,
                           nondiff_inputs=(0, 1))


def searchsorted(sorted_sequence: Tensor, input: Any, *, out_int32: bool = False, right: bool = False,
                 side: str | None = None, sorter: Tensor | None = None) -> Tensor:
    """Indices at which `input` would be inserted into the innermost dimension of `sorted_sequence`
    to keep it sorted (the first such index, or the last with ``right=True`` / ``side="right"``).

    Example:
        >>> import ember
        >>> ember.searchsorted(ember.tensor([1, 3, 5]), ember.tensor([3, 6])).tolist()
        [1, 3]
    """
    op = "searchsorted"
    values = input if isinstance(input, Tensor) else tensor(input, device=sorted_sequence.device)
    if side is not None:
        right = side == "right"
    if sorter is not None:
        sorted_sequence = take_along_dim(sorted_sequence, sorter, dim=-1)
    seq = sorted_sequence
    if seq.ndim > 1 and tuple(seq.shape[:-1]) != tuple(values.shape[:-1]):
        raise ShapeError(op, f"the leading dimensions of the sorted sequence {tuple(seq.shape)} and of the "
                         f"input {tuple(values.shape)} must match", (seq, values))
    out = bind(searchsorted_p, seq, values, right=bool(right))
    return convert(out, dtypes.int32) if out_int32 else out


def bucketize(input: Any, boundaries: Tensor, *, out_int32: bool = False, right: bool = False) -> Tensor:
    """The index of the bucket of each element of `input`, for the sorted 1-d `boundaries`.

    Example:
        >>> import ember
        >>> ember.bucketize(ember.tensor([0.5, 2.0]), ember.tensor([1.0, 2.0])).tolist()
        [0, 1]
    """
    if boundaries.ndim != 1:
        raise ShapeError("bucketize", f"boundaries must be 1-d, got shape {tuple(boundaries.shape)}",
                         (boundaries,))
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


# -- Tensor methods ------------------------------------------------------------------------------------
def _setitem_method(self: Tensor, key: Any, value: Any) -> None:
    setitem(self, key, value)


TENSOR_METHODS = {
    "__getitem__": getitem, "__setitem__": _setitem_method, "gather": gather, "scatter": scatter,
    "scatter_add": scatter_add, "scatter_reduce": scatter_reduce, "index_select": index_select,
    "index_add": index_add, "index_copy": index_copy, "index_fill": index_fill, "index_put": index_put,
    "masked_fill": masked_fill, "masked_select": masked_select, "take": take,
    "take_along_dim": take_along_dim, "sort": sort, "argsort": argsort, "topk": topk, "unique": unique,
    "nonzero": nonzero, "argwhere": argwhere, "kthvalue": kthvalue, "median": median, "nanmedian": nanmedian,
    "bincount": bincount, "histc": histc, "msort": msort, "masked_scatter": masked_scatter, "mode": mode,
    "unique_consecutive": unique_consecutive,
    "slice_scatter": slice_scatter, "select_scatter": select_scatter, "diagonal_scatter": diagonal_scatter,
}

TENSOR_INPLACE = {
    "masked_fill_": masked_fill, "scatter_": scatter, "scatter_add_": scatter_add,
    "scatter_reduce_": scatter_reduce, "index_add_": index_add, "index_copy_": index_copy,
    "index_fill_": index_fill, "index_put_": index_put, "masked_scatter_": masked_scatter,
}

getitem_p.unview = lambda base, value, index: bind(slice_scatter_p, base, value, index=index)
