"""Matrix products: matmul (batched, broadcasting), dot, outer, einsum."""
from __future__ import annotations

from ..dispatch import bind
from ..errors import ShapeError
from ..primitive import Primitive
from ..tensor import Tensor
from .reduce import sum_to_shape

__all__ = ["matmul"]


def _matmul_impl(xp, a, b):
    return xp.matmul(a, b)


def _mT(x: Tensor) -> Tensor:
    from .movement import transpose

    return transpose(x, -1, -2)


def _matmul_vjp(g, out, a, b):
    from .movement import reshape

    ga = gb = None
    a2 = reshape(a, (1,) + tuple(a.shape)) if a.ndim == 1 else a
    b2 = reshape(b, tuple(b.shape) + (1,)) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = reshape(g2, tuple(g2.shape[:-1]) + (1,) + tuple(g2.shape[-1:])) if b.ndim > 1 else \
            reshape(g2, (1,))
    if b.ndim == 1:
        g2 = reshape(g2, tuple(g2.shape) + (1,))
    if isinstance(a, Tensor) and a._requires_grad:
        ga = sum_to_shape(matmul(g2, _mT(b2)), a2.shape)
        ga = reshape(ga, a.shape)
    if isinstance(b, Tensor) and b._requires_grad:
        gb = sum_to_shape(matmul(_mT(a2), g2), b2.shape)
        gb = reshape(gb, b.shape)
    return ga, gb


def _matmul_jvp(primals, tangents):
    a, b = primals
    ta, tb = tangents
    out = matmul(a, b)
    parts = []
    if ta is not None:
        parts.append(matmul(ta, b))
    if tb is not None:
        parts.append(matmul(a, tb))
    return out, parts[0] if len(parts) == 1 else parts[0] + parts[1]


def _matmul_batch(values, bdims):
    from .movement import moveaxis, reshape

    a, b = (moveaxis(v, d, 0) if d is not None else v for v, d in zip(values, bdims))
    da, db = bdims
    la, lb = a.ndim - (da is not None), b.ndim - (db is not None)
    if la == 1:  # a logical vector becomes a (1, k) matrix
        a = reshape(a, tuple(a.shape[:-1]) + (1,) + tuple(a.shape[-1:]))
    if lb == 1:  # a logical vector becomes a (k, 1) matrix
        b = reshape(b, tuple(b.shape) + (1,))
    rank = max(la, lb, 2)
    if da is not None:
        a = reshape(a, (a.shape[0],) + (1,) * (rank - max(la, 2)) + tuple(a.shape[1:]))
    if db is not None:
        b = reshape(b, (b.shape[0],) + (1,) * (rank - max(lb, 2)) + tuple(b.shape[1:]))
    out = matmul(a, b)
    if la == 1:
        out = reshape(out, tuple(out.shape[:-2]) + tuple(out.shape[-1:]))
    if lb == 1:
        out = reshape(out, tuple(out.shape[:-1]))
    return out, 0


matmul_p = Primitive("matmul", _matmul_impl, vjp=_matmul_vjp, jvp=_matmul_jvp, batch=_matmul_batch)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics: 1-d operands are vectors, leading dims broadcast."""
    from .elementwise import convert
    from .. import dtypes

    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul", "both arguments must have at least one dimension", (a, b))
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ShapeError("matmul", f"inner dimensions do not match: {tuple(a.shape)} @ {tuple(b.shape)} "
                         f"({k_a} != {k_b})", (a, b))
    if a.dtype is not b.dtype:
        dt = dtypes.promote(a.dtype, b.dtype)
        a, b = convert(a, dt), convert(b, dt)
    return bind(matmul_p, a, b)


TENSOR_METHODS = {"matmul": matmul}
