"""Matrix products: two primitives, ``matmul`` and ``einsum``, and the products built on them
(dot, vdot, outer/ger, mm, bmm, mv, inner, tensordot, kron).

``einsum`` carries its equation as an attribute in one canonical form: explicit output, no ellipsis,
one size per letter. The public function does the parsing (implicit output, ``...``, broadcasting of
size-1 dimensions), so the VJP, JVP and batching rules only ever see plain letters.
"""
from __future__ import annotations

import string
from typing import Sequence

import numpy as np

from ...backends.numpy_backend import CPU
from .. import dtypes
from ..dispatch import bind
from ..errors import DTypeError, ShapeError
from ..primitive import Primitive
from ..tensor import Tensor
from .reduce import normalize_axis, sum_to_shape

__all__ = ["matmul", "einsum", "dot", "vdot", "outer", "ger", "mm", "bmm", "mv", "inner", "tensordot",
           "kron", "trace", "addmm", "baddbmm", "cross", "addmv"]

_HALF_NP = (dtypes.float16.np, dtypes.bfloat16.np)
_LETTERS = string.ascii_uppercase + string.ascii_lowercase


def _as_tensor(x) -> Tensor:
    if isinstance(x, Tensor):
        return x
    from ..creation import tensor

    return tensor(x)


def _promoted(*operands: Tensor) -> list[Tensor]:
    """Operands cast to their common dtype (PyTorch's result_type)."""
    from .elementwise import convert

    dt = dtypes.result_type(*operands)
    return [x if x.dtype is dt else convert(x, dt) for x in operands]


def _shapes(*operands: Tensor) -> str:
    return " and ".join(str(tuple(x.shape)) for x in operands)


def _run_half_in_float32(xp, fn, arrays):
    """Run `fn` on half-precision arrays in float32 and cast back: NumPy has no bfloat16 loop for these
    products and its float16 loop accumulates in float16."""
    if arrays and arrays[0].dtype in _HALF_NP:
        dt = arrays[0].dtype
        return xp.asarray(fn(*(a.astype(xp.float32) for a in arrays))).astype(dt)
    return xp.asarray(fn(*arrays))


# -- matmul ---------------------------------------------------------------------------------------------
def _matmul_impl(xp, a, b):
    return _run_half_in_float32(xp, xp.matmul, (a, b))


def _matmul_cpu(a, b):
    """matmul writing into a pooled buffer (large results reuse memory instead of faulting in pages)."""
    if a.dtype != b.dtype or a.dtype.itemsize == 2 or a.ndim < 2 or b.ndim < 2:
        return _matmul_impl(np, a, b)
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    return np.matmul(a, b, out=CPU.pool.empty(shape, a.dtype))


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
    if a.dtype.is_complex or b.dtype.is_complex:  # the conjugate transposes, as PyTorch's gradients
        from .elementwise import conj

        a2, b2 = conj(a2), conj(b2)
    if isinstance(a, Tensor) and a._requires_grad:
        ga = sum_to_shape(matmul(g2, _mT(b2)), a2.shape)
        ga = reshape(ga, a.shape)
    if isinstance(b, Tensor) and b._requires_grad:
        if _transposed_matrix(b2) and a2.ndim == g2.ndim == 2:
            # b is a transposed view (a linear layer's weight.T): (aᵀ g) as (gᵀ a)ᵀ, so that the
            # gradient reaching the weight through the transpose is row-major, with no copy
            gb = _mT(matmul(_mT(g2), a2))
        else:
            gb = sum_to_shape(matmul(_mT(a2), g2), b2.shape)
        gb = reshape(gb, b.shape)
    return ga, gb


def _transposed_matrix(x: Tensor) -> bool:
    """True for an eager 2-D tensor that is a transposed view of a row-major matrix."""
    data = getattr(x, "_data", None)
    return x.ndim == 2 and isinstance(data, np.ndarray) and not data.flags.c_contiguous \
        and data.T.flags.c_contiguous


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
matmul_p.kernels["cpu"] = _matmul_cpu


def _check_matmul(op: str, a: Tensor, b: Tensor) -> None:
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(op, f"both arguments must have at least one dimension, got shapes {_shapes(a, b)}",
                         (a, b))
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ShapeError(op, f"inner dimensions do not match: {tuple(a.shape)} @ {tuple(b.shape)} "
                         f"({k_a} != {k_b})", (a, b))
    if a.ndim > 2 and b.ndim > 2:
        from .movement import broadcast_shapes

        broadcast_shapes(a.shape[:-2], b.shape[:-2], op=op, operands=(a, b))
    for x in (a, b):
        if x.dtype is dtypes.bool_:
            raise DTypeError(op, "bool tensors are not supported (as in PyTorch); convert to an integer or "
                             "floating dtype first", (a, b))


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics.

    1-d operands are vectors (a leading 1 is added to the first, a trailing 1 to the second, and removed
    from the result); the leading (batch) dimensions of operands with more than two broadcast. Mixed
    dtypes promote as in :func:`ember.result_type` (PyTorch raises instead).

    Args:
        a: tensor of shape ``(..., n, k)`` or ``(k,)``.
        b: tensor of shape ``(..., k, m)`` or ``(k,)``.

    Returns:
        The product, of shape ``broadcast(...) + (n, m)`` with the vector dimensions dropped.

    Example:
        >>> import ember
        >>> ember.matmul(ember.ones(2, 3), ember.ones(3)).tolist()
        [3.0, 3.0]
    """
    a, b = _as_tensor(a), _as_tensor(b)
    _check_matmul("matmul", a, b)
    a, b = _promoted(a, b)
    return bind(matmul_p, a, b)


# -- einsum ---------------------------------------------------------------------------------------------
def _einsum_impl(xp, *arrays, equation):
    out = _run_half_in_float32(xp, lambda *xs: xp.einsum(equation, *xs, optimize=len(xs) > 1), arrays)
    if len(arrays) == 1:  # one-operand einsum may return a view of its input (transpose, diagonal)
        out = out.copy()
    return out


def _split(equation: str) -> tuple[list[str], str]:
    lhs, out = equation.split("->")
    return lhs.split(","), out


def _join(terms: Sequence[str], out: str) -> str:
    return ",".join(terms) + "->" + out


def _fresh_letters(used: str):
    return (c for c in _LETTERS if c not in used)


def _einsum_letters(terms: Sequence[str], out: str, operands: Sequence[Tensor]) -> Tensor:
    """Bind einsum on an equation already in canonical form (plain letters, explicit output)."""
    return bind(einsum_p, *operands, equation=_join(terms, out))


def _operand_grad(g: Tensor, operands: tuple, terms: list[str], out: str, k: int) -> Tensor:
    """The cotangent of operand `k`: an einsum of `g` with the other operands.

    A letter repeated in operand `k` (a diagonal or trace) is renamed and tied to the original by an
    identity matrix; letters the forward summed away and nothing else carries are broadcast back.
    """
    from ..creation import eye
    from .movement import broadcast_to, reshape

    x = operands[k]
    fresh = _fresh_letters(_join(terms, out))
    args = [g] + [o for j, o in enumerate(operands) if j != k]
    subs = [out] + [s for j, s in enumerate(terms) if j != k]
    target = ""
    for pos, c in enumerate(terms[k]):
        if c in target:
            f = next(fresh)
            args.append(eye(x.shape[pos], dtype=g.dtype, device=g.device))
            subs.append(c + f)
            target += f
        else:
            target += c
    carried = set("".join(subs))
    kept = "".join(c for c in target if c in carried)
    grad = _einsum_letters(subs, kept, args)
    if kept != target:
        grad = reshape(grad, tuple(s if c in carried else 1 for c, s in zip(target, x.shape)))
        grad = broadcast_to(grad, tuple(x.shape))
    return grad


def _einsum_vjp(g, out, *operands, equation):
    terms, out_sub = _split(equation)
    grads = []
    for k, x in enumerate(operands):
        if isinstance(x, Tensor) and x._requires_grad:
            grads.append(_operand_grad(g, operands, terms, out_sub, k))
        else:
            grads.append(None)
    return tuple(grads)


def _einsum_jvp(primals, tangents, equation):
    out = bind(einsum_p, *primals, equation=equation)
    total = None
    for k, t in enumerate(tangents):  # einsum is linear in each operand
        if t is None:
            continue
        args = list(primals)
        args[k] = t
        term = bind(einsum_p, *args, equation=equation)
        total = term if total is None else total + term
    return out, total


def _einsum_batch(values, bdims, equation):
    from .movement import moveaxis

    terms, out = _split(equation)
    letter = next(_fresh_letters(equation), None)
    if letter is None:
        raise ShapeError("einsum", f"no letter left to name the vmap dimension in {equation!r}")
    new_terms, args = [], []
    for v, d, s in zip(values, bdims, terms):
        if d is None:
            new_terms.append(s)
            args.append(v)
        else:
            new_terms.append(letter + s)
            args.append(moveaxis(v, d, 0))
    return _einsum_letters(new_terms, letter + out, args), 0


einsum_p = Primitive("einsum", _einsum_impl, vjp=_einsum_vjp, jvp=_einsum_jvp, batch=_einsum_batch)


def _parse_terms(equation: str, operands: tuple) -> tuple[list[str], str | None]:
    """Input terms and the explicit output (None if implicit), with syntax checked."""
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise ShapeError("einsum", f"equation {equation!r} has more than one '->'", operands)
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ShapeError("einsum", f"equation {equation!r} has {len(terms)} operand terms but "
                         f"{len(operands)} operands were given", operands)
    for term in terms + ([out] if arrow else []):
        body = term.replace("...", "", 1)
        if not all(c in _LETTERS for c in body):
            raise ShapeError("einsum", f"invalid subscript {term!r} in {equation!r}: use letters a-z, A-Z "
                             "and at most one '...' per term", operands)
    return terms, (out if arrow else None)


def _expand_ellipsis(equation: str, terms: list[str], out: str | None, operands: tuple):
    """Replace '...' by fresh letters (right-aligned across operands, as broadcasting aligns)."""
    counts = []
    for term, x in zip(terms, operands):
        named = len(term.replace("...", ""))
        n = x.ndim - named
        if n < 0 or (n > 0 and "..." not in term):
            raise ShapeError("einsum", f"subscript {term!r} of {equation!r} names {named} dimensions but the "
                             f"operand has {x.ndim}", operands)
        counts.append(n)
    width = max(counts, default=0)
    letters = "".join(c for c, _ in zip(_fresh_letters(equation), range(width)))
    if len(letters) < width:
        raise ShapeError("einsum", f"too many dimensions under '...' in {equation!r}", operands)
    terms = [t.replace("...", letters[width - n:] if n else "") for t, n in zip(terms, counts)]
    if out is None:
        once = [c for c in sorted(set("".join(terms))) if "".join(terms).count(c) == 1 and c not in letters]
        out = letters + "".join(once)
    else:
        out = out.replace("...", letters)
    return terms, out


def _letter_sizes(equation: str, terms: list[str], operands: tuple) -> dict[str, int]:
    """The size of each letter; size-1 dimensions broadcast, any other mismatch is an error."""
    sizes: dict[str, int] = {}
    for term, x in zip(terms, operands):
        for c, s in zip(term, x.shape):
            if term.count(c) > 1 and s != x.shape[term.index(c)]:
                raise ShapeError("einsum", f"subscript {c!r} is repeated in {term!r} of {equation!r} but "
                                 f"the dimensions have different sizes {tuple(x.shape)}", operands)
            old = sizes.get(c, 1)
            if old != s and 1 not in (old, s):
                raise ShapeError("einsum", f"subscript {c!r} of {equation!r} has size {old} in one operand "
                                 f"and {s} in another (shapes {_shapes(*operands)})", operands)
            sizes[c] = max(old, s)
    return sizes


def einsum(equation: str, *operands: Tensor) -> Tensor:
    """Einstein summation, as ``torch.einsum`` / ``numpy.einsum``.

    Letters name dimensions; a letter shared by operands multiplies them along that dimension and a
    letter absent from the output is summed. Without ``->`` the output holds, after the ``...``
    dimensions, the letters that appear exactly once, in alphabetical order. A letter repeated in one
    operand takes its diagonal (``"ii->i"``, or the trace ``"ii"``). ``...`` stands for the remaining
    dimensions, which broadcast; dimensions of size 1 broadcast against any size.

    Args:
        equation: e.g. ``"ij,jk->ik"``, ``"bij,bjk"``, ``"...ij->...ji"``.
        operands: the tensors (or a single list of them, as PyTorch also accepts).

    Returns:
        The contraction, in the operands' promoted dtype.

    Example:
        >>> import ember
        >>> ember.einsum("ij,j->i", ember.ones(2, 3), ember.ones(3)).tolist()
        [3.0, 3.0]
        >>> float(ember.einsum("ii", ember.eye(3)))
        3.0
    """
    from .movement import broadcast_to

    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = tuple(_as_tensor(x) for x in operands)
    if not operands:
        raise ShapeError("einsum", "at least one operand is required")
    terms, out = _parse_terms(equation, operands)
    terms, out = _expand_ellipsis(equation, terms, out, operands)
    known = set("".join(terms))
    for c in out:
        if c not in known or out.count(c) > 1:
            raise ShapeError("einsum", f"output subscript {c!r} of {equation!r} must appear in an input "
                             "and only once in the output", operands)
    sizes = _letter_sizes(equation, terms, operands)
    operands = tuple(broadcast_to(x, tuple(sizes[c] for c in t)) for x, t in zip(operands, terms))
    return _einsum_letters(terms, out, _promoted(*operands))


# -- products built on matmul and einsum --------------------------------------------------------------------
def _require_ndim(op: str, expected: Sequence[int], *operands: Tensor) -> None:
    if tuple(x.ndim for x in operands) != tuple(expected):
        want = " and ".join(f"{n}-d" for n in expected)
        got = " and ".join(f"{x.ndim}-d" for x in operands)
        raise ShapeError(op, f"expected {want} tensors, got {got} tensors of shapes {_shapes(*operands)}",
                         operands)


def dot(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of two 1-d tensors of equal length.

    Example:
        >>> import ember
        >>> float(ember.dot(ember.tensor([1.0, 2.0]), ember.tensor([3.0, 4.0])))
        11.0
    """
    a, b = _as_tensor(a), _as_tensor(b)
    _require_ndim("dot", (1, 1), a, b)
    if a.shape != b.shape:
        raise ShapeError("dot", f"the vectors have different lengths: shapes {_shapes(a, b)}", (a, b))
    _check_matmul("dot", a, b)
    return bind(matmul_p, *_promoted(a, b))


def vdot(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of two 1-d tensors, conjugating the first: ``sum(conj(a) * b)``.

    Example:
        >>> import ember
        >>> float(ember.vdot(ember.tensor([1.0, 2.0]), ember.tensor([3.0, 4.0])))
        11.0
        >>> ember.vdot(ember.tensor([1j]), ember.tensor([1j])).item()
        (1+0j)
    """
    from .elementwise import conj

    a, b = _as_tensor(a), _as_tensor(b)
    _require_ndim("vdot", (1, 1), a, b)
    if a.shape != b.shape:
        raise ShapeError("vdot", f"the vectors have different lengths: shapes {_shapes(a, b)}", (a, b))
    _check_matmul("vdot", a, b)
    return bind(matmul_p, *_promoted(conj(a), b))


def outer(a: Tensor, b: Tensor) -> Tensor:
    """Outer product of two 1-d tensors: ``out[i, j] = a[i] * b[j]``.

    Example:
        >>> import ember
        >>> ember.outer(ember.tensor([1.0, 2.0]), ember.tensor([1.0, 10.0])).tolist()
        [[1.0, 10.0], [2.0, 20.0]]
    """
    from .elementwise import mul
    from .movement import reshape

    a, b = _as_tensor(a), _as_tensor(b)
    _require_ndim("outer", (1, 1), a, b)
    return mul(reshape(a, (a.shape[0], 1)), reshape(b, (1, b.shape[0])))


ger = outer


def mm(a: Tensor, b: Tensor) -> Tensor:
    """Product of two matrices, ``(n, k) @ (k, m) -> (n, m)`` (no broadcasting).

    Example:
        >>> import ember
        >>> ember.mm(ember.ones(2, 3), ember.ones(3, 4)).shape
        (2, 4)
    """
    a, b = _as_tensor(a), _as_tensor(b)
    _require_ndim("mm", (2, 2), a, b)
    _check_matmul("mm", a, b)
    return bind(matmul_p, *_promoted(a, b))


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix product, ``(B, n, k) @ (B, k, m) -> (B, n, m)``; batch sizes must be equal.

    Example:
        >>> import ember
        >>> ember.bmm(ember.ones(5, 2, 3), ember.ones(5, 3, 4)).shape
        (5, 2, 4)
    """
    a, b = _as_tensor(a), _as_tensor(b)
    _require_ndim("bmm", (3, 3), a, b)
    if a.shape[0] != b.shape[0]:
        raise ShapeError("bmm", f"batch sizes differ: shapes {_shapes(a, b)}", (a, b))
    _check_matmul("bmm", a, b)
    return bind(matmul_p, *_promoted(a, b))


def mv(a: Tensor, v: Tensor) -> Tensor:
    """Matrix-vector product, ``(n, k) @ (k,) -> (n,)``.

    Example:
        >>> import ember
        >>> ember.mv(ember.ones(2, 3), ember.ones(3)).tolist()
        [3.0, 3.0]
    """
    a, v = _as_tensor(a), _as_tensor(v)
    _require_ndim("mv", (2, 1), a, v)
    _check_matmul("mv", a, v)
    return bind(matmul_p, *_promoted(a, v))


def _tensordot_dims(a: Tensor, b: Tensor, dims) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if isinstance(dims, int):
        if not 0 <= dims <= min(a.ndim, b.ndim):
            raise ShapeError("tensordot", f"dims={dims} must be in [0, {min(a.ndim, b.ndim)}] for shapes "
                             f"{_shapes(a, b)}", (a, b))
        return tuple(range(a.ndim - dims, a.ndim)), tuple(range(dims))
    try:
        da, db = dims
    except (TypeError, ValueError):
        raise ShapeError("tensordot", f"dims must be an int or a pair of lists of dimensions, got {dims!r}",
                         (a, b)) from None
    da = (da,) if isinstance(da, int) else tuple(da)
    db = (db,) if isinstance(db, int) else tuple(db)
    if len(da) != len(db):
        raise ShapeError("tensordot", f"both operands must contract the same number of dimensions, got "
                         f"{list(da)} and {list(db)}", (a, b))
    da = tuple(normalize_axis(d, a.ndim, "tensordot", a) for d in da)
    db = tuple(normalize_axis(d, b.ndim, "tensordot", b) for d in db)
    if len(set(da)) != len(da) or len(set(db)) != len(db):
        raise ShapeError("tensordot", f"a dimension is repeated in dims {dims!r}", (a, b))
    return da, db


def tensordot(a: Tensor, b: Tensor, dims=2) -> Tensor:
    """Sum of products over the given dimensions of `a` and `b`.

    Args:
        a, b: the tensors.
        dims: an int ``d`` (contract the last ``d`` dimensions of `a` with the first ``d`` of `b`) or a
            pair of lists ``([dims of a], [dims of b])``.

    Returns:
        A tensor whose dimensions are the free dimensions of `a` followed by those of `b`.

    Example:
        >>> import ember
        >>> ember.tensordot(ember.ones(2, 3, 4), ember.ones(3, 4, 5), dims=2).shape
        (2, 5)
        >>> ember.tensordot(ember.ones(3, 2), ember.ones(3, 4), dims=([0], [0])).shape
        (2, 4)
    """
    a, b = _as_tensor(a), _as_tensor(b)
    da, db = _tensordot_dims(a, b, dims)
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise ShapeError("tensordot", f"contracted dimensions {i} of {tuple(a.shape)} and {j} of "
                             f"{tuple(b.shape)} have different sizes ({a.shape[i]} != {b.shape[j]})", (a, b))
    if a.ndim + b.ndim - len(da) > len(_LETTERS):
        raise ShapeError("tensordot", f"too many dimensions for shapes {_shapes(a, b)}", (a, b))
    letters = iter(_LETTERS)
    ta = "".join(next(letters) for _ in range(a.ndim))
    tb = "".join(ta[da[db.index(j)]] if j in db else next(letters) for j in range(b.ndim))
    free_a = "".join(c for i, c in enumerate(ta) if i not in da)
    free_b = "".join(c for j, c in enumerate(tb) if j not in db)
    return _einsum_letters([ta, tb], free_a + free_b, _promoted(a, b))


def inner(a: Tensor, b: Tensor) -> Tensor:
    """Inner product over the last dimension: shape ``a.shape[:-1] + b.shape[:-1]`` (a product if either
    operand is 0-d).

    Example:
        >>> import ember
        >>> ember.inner(ember.ones(2, 3), ember.ones(4, 3)).shape
        (2, 4)
    """
    from .elementwise import mul

    a, b = _as_tensor(a), _as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return mul(a, b)
    if a.shape[-1] != b.shape[-1]:
        raise ShapeError("inner", f"the last dimensions differ: shapes {_shapes(a, b)} "
                         f"({a.shape[-1]} != {b.shape[-1]})", (a, b))
    return tensordot(a, b, ([a.ndim - 1], [b.ndim - 1]))


def kron(a: Tensor, b: Tensor) -> Tensor:
    """Kronecker product: block ``i`` of the result is ``a[i] * b`` (the rank is the larger of the two).

    Example:
        >>> import ember
        >>> ember.kron(ember.eye(2), ember.ones(2, 2)).tolist()[0]
        [1.0, 1.0, 0.0, 0.0]
    """
    from .elementwise import mul
    from .movement import reshape

    a, b = _as_tensor(a), _as_tensor(b)
    nd = max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + tuple(a.shape)
    sb = (1,) * (nd - b.ndim) + tuple(b.shape)
    pa = tuple(s for n in sa for s in (n, 1))  # (a0, 1, a1, 1, ...)
    pb = tuple(s for n in sb for s in (1, n))  # (1, b0, 1, b1, ...)
    out = mul(reshape(a, pa), reshape(b, pb))
    return reshape(out, tuple(x * y for x, y in zip(sa, sb)))


def trace(x: Tensor) -> Tensor:
    """Sum of the main diagonal of a 2-D tensor.

    Example:
        >>> import ember
        >>> ember.trace(ember.tensor([[1.0, 2.0], [3.0, 4.0]])).item()
        5.0
    """
    from .movement import diagonal
    from .reduce import sum as _sum

    if x.ndim != 2:
        raise ShapeError("trace", f"expected a 2-D tensor, got shape {tuple(x.shape)}", (x,))
    return _sum(diagonal(x))


def _scaled_sum(input: Tensor, product: Tensor, beta, alpha) -> Tensor:
    """``beta * input + alpha * product``; with beta 0 the values of `input` (NaNs included) are ignored
    and only its shape broadcasts, as in PyTorch."""
    from .elementwise import add, mul
    from .movement import broadcast_shapes, broadcast_to

    if alpha != 1:
        product = mul(product, alpha)
    if beta == 0:
        shape = broadcast_shapes(tuple(input.shape), tuple(product.shape))
        return product if tuple(product.shape) == shape else broadcast_to(product, shape) + 0
    return add(input if beta == 1 else mul(input, beta), product)


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """``beta * input + alpha * (mat1 @ mat2)`` for 2-D `mat1`, `mat2` (`input` broadcasts).

    Example:
        >>> import ember
        >>> ember.addmm(ember.ones(2, 2), ember.eye(2), ember.eye(2), beta=2).tolist()
        [[3.0, 2.0], [2.0, 3.0]]
    """
    if mat1.ndim != 2 or mat2.ndim != 2:
        raise ShapeError("addmm", f"expected 2-D matrices, got shapes {tuple(mat1.shape)} and "
                         f"{tuple(mat2.shape)}", (mat1, mat2))
    return _scaled_sum(input, mm(mat1, mat2), beta, alpha)


def addmv(input: Tensor, mat: Tensor, vec: Tensor, *, beta=1, alpha=1) -> Tensor:
    """``beta * input + alpha * (mat @ vec)`` for a 2-D `mat` and 1-D `vec` (`input` broadcasts).

    Example:
        >>> import ember
        >>> ember.addmv(ember.ones(2), ember.eye(2), ember.tensor([1.0, 2.0]), alpha=3).tolist()
        [4.0, 7.0]
    """
    return _scaled_sum(input, mv(mat, vec), beta, alpha)


def baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """``beta * input + alpha * (batch1 @ batch2)`` for 3-D batches (`input` broadcasts).

    Example:
        >>> import ember
        >>> ember.baddbmm(ember.zeros(1, 2, 2), ember.ones(3, 2, 1), ember.ones(3, 1, 2)).shape
        (3, 2, 2)
    """
    return _scaled_sum(input, bmm(batch1, batch2), beta, alpha)


def cross(input: Tensor, other: Tensor, dim: int | None = None) -> Tensor:
    """The cross product of 3-vectors along `dim` (after broadcasting; None: the first dimension of size
    3, as ``torch.cross``).

    Example:
        >>> import ember
        >>> ember.cross(ember.tensor([1.0, 0.0, 0.0]), ember.tensor([0.0, 1.0, 0.0])).tolist()
        [0.0, 0.0, 1.0]
    """
    from ..creation import tensor
    from .elementwise import mul, sub
    from .indexing import index_select
    from .movement import broadcast_shapes, broadcast_to

    shape = broadcast_shapes(tuple(input.shape), tuple(other.shape), op="cross", operands=(input, other))
    if dim is None:
        dim = next((d for d, n in enumerate(shape) if n == 3), None)
        if dim is None:
            raise ShapeError("cross", f"no dimension of size 3 in the broadcast shape {shape}",
                             (input, other))
    dim = normalize_axis(dim, len(shape), "cross", input)
    if shape[dim] != 3:
        raise ShapeError("cross", f"dimension {dim} has size {shape[dim]}, expected 3 (shapes "
                         f"{tuple(input.shape)} and {tuple(other.shape)})", (input, other))
    a, b = broadcast_to(input, shape), broadcast_to(other, shape)
    nxt, prv = (tensor(order, device=a.device) for order in ([1, 2, 0], [2, 0, 1]))
    return sub(mul(index_select(a, dim, nxt), index_select(b, dim, prv)),
               mul(index_select(a, dim, prv), index_select(b, dim, nxt)))


TENSOR_METHODS = {"addmv": addmv, "cross": cross, "trace": trace, "addmm": addmm, "baddbmm": baddbmm,
                  "matmul": matmul, "mm": mm, "bmm": bmm, "mv": mv, "dot": dot, "vdot": vdot, "outer": outer,
                  "ger": ger, "inner": inner, "kron": kron}
