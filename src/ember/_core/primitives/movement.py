"""Shape and layout primitives: reshape, broadcast, transpose (views where the backend allows)."""
from __future__ import annotations

from typing import Sequence

from ..dispatch import bind
from ..errors import ShapeError
from ..primitive import Primitive
from ..tensor import Tensor
from .reduce import normalize_axis, sum_to_shape

__all__ = ["reshape", "broadcast_to", "broadcast_shapes", "permute", "transpose", "moveaxis"]


def _shape_arg(shape) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


# -- reshape --------------------------------------------------------------------------------------------
def _reshape_vjp(g, out, x, shape):
    return (reshape(g, x.shape),)


def _reshape_jvp(primals, tangents, shape):
    return reshape(primals[0], shape), reshape(tangents[0], shape)


def _reshape_batch(values, bdims, shape):
    x = moveaxis(values[0], bdims[0], 0)
    return reshape(x, (x.shape[0],) + shape), 0


reshape_p = Primitive("reshape", lambda xp, x, shape: xp.reshape(x, shape), vjp=_reshape_vjp,
                      jvp=_reshape_jvp, batch=_reshape_batch, view=True)


def infer_shape(shape: tuple[int, ...], numel: int, operand=None) -> tuple[int, ...]:
    """Resolve one -1 in `shape` and check that the element count matches."""
    if shape.count(-1) > 1:
        raise ShapeError("reshape", f"only one dimension can be inferred, got shape {shape}", (operand,))
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if -1 in shape:
        if known == 0 or numel % known:
            raise ShapeError("reshape", f"shape {shape} is invalid for input of size {numel}", (operand,))
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise ShapeError("reshape", f"shape {shape} is invalid for input of size {numel}", (operand,))
    return shape


def reshape(x: Tensor, *shape) -> Tensor:
    """``x`` with a new shape of the same number of elements (one dimension may be -1)."""
    shape = infer_shape(_shape_arg(shape), x.numel(), x)
    if shape == tuple(x.shape):
        return x
    return bind(reshape_p, x, shape=shape)


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
                        jvp=_broadcast_jvp, batch=_broadcast_batch, view=True)


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
    """``x`` broadcast to `shape` (a read-only view)."""
    shape = _shape_arg(shape)
    shape = tuple(x.shape[i - len(shape) + x.ndim] if s == -1 else s for i, s in enumerate(shape))
    if shape == tuple(x.shape):
        return x
    if broadcast_shapes(x.shape, shape, op="broadcast_to", operands=(x,)) != shape:
        raise ShapeError("broadcast_to", f"cannot broadcast shape {tuple(x.shape)} to {shape}", (x,))
    return bind(broadcast_p, x, shape=shape)


# -- transpose ------------------------------------------------------------------------------------------
def _transpose_vjp(g, out, x, perm):
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return (permute(g, tuple(inverse)),)


def _transpose_jvp(primals, tangents, perm):
    return permute(primals[0], perm), permute(tangents[0], perm)


def _transpose_batch(values, bdims, perm):
    x = moveaxis(values[0], bdims[0], 0)
    return permute(x, (0,) + tuple(p + 1 for p in perm)), 0


transpose_p = Primitive("transpose", lambda xp, x, perm: xp.transpose(x, perm), vjp=_transpose_vjp,
                        jvp=_transpose_jvp, batch=_transpose_batch, view=True)


def permute(x: Tensor, *dims) -> Tensor:
    """``x`` with its dimensions reordered (a view)."""
    perm = tuple(normalize_axis(d, x.ndim, "permute", x) for d in _shape_arg(dims))
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError("permute", f"dims {perm} are not a permutation of {x.ndim} dimensions", (x,))
    if perm == tuple(range(x.ndim)):
        return x
    return bind(transpose_p, x, perm=perm)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """``x`` with dimensions `dim0` and `dim1` swapped."""
    perm = list(range(x.ndim))
    d0, d1 = normalize_axis(dim0, x.ndim, "transpose", x), normalize_axis(dim1, x.ndim, "transpose", x)
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return permute(x, tuple(perm))


def moveaxis(x: Tensor, source: int, destination: int) -> Tensor:
    """``x`` with dimension `source` moved to position `destination`."""
    src = normalize_axis(source, x.ndim, "moveaxis", x)
    dst = normalize_axis(destination, x.ndim, "moveaxis", x)
    if src == dst:
        return x
    perm = [i for i in range(x.ndim) if i != src]
    perm.insert(dst, src)
    return permute(x, tuple(perm))


TENSOR_METHODS = {
    "reshape": reshape, "view": reshape, "broadcast_to": broadcast_to, "expand": broadcast_to,
    "permute": permute, "transpose": transpose, "moveaxis": moveaxis,
}
