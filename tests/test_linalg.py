"""Matrix products, driven by one table: values vs NumPy and PyTorch, gradients and JVPs vs finite
differences, vmap vs a loop; then matmul's rank/batching combinations, dtypes and error messages."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ember
from ember.errors import DTypeError, ShapeError
from ember.func import hessian, jvp, vmap

from helpers import TORCH_DTYPES, assert_close, check_grad, check_jvp, check_vmap, np_of, t64, torch


@dataclass
class Case:
    name: str
    fn: Callable            # ember function
    ref: Callable           # NumPy reference
    torch_fn: Callable      # PyTorch reference
    shapes: tuple           # operand shapes


def _einsum(eq: str, ref: Callable | None = None) -> Case:
    ref = ref or (lambda *xs: np.einsum(eq, *xs))
    return lambda *shapes: Case(f"einsum[{eq}]", lambda *xs: ember.einsum(eq, *xs), ref,
                                lambda *xs: torch.einsum(eq, *xs), shapes)


CASES = [
    Case("matmul-2d-2d", ember.matmul, np.matmul, torch.matmul, ((3, 4), (4, 2))),
    Case("matmul-1d-2d", ember.matmul, np.matmul, torch.matmul, ((4,), (4, 2))),
    Case("matmul-2d-1d", ember.matmul, np.matmul, torch.matmul, ((3, 4), (4,))),
    Case("matmul-1d-1d", ember.matmul, np.matmul, torch.matmul, ((4,), (4,))),
    Case("matmul-3d-2d", ember.matmul, np.matmul, torch.matmul, ((2, 3, 4), (4, 2))),
    Case("matmul-bcast", ember.matmul, np.matmul, torch.matmul, ((2, 1, 3, 4), (3, 4, 2))),
    Case("matmul-1d-3d", ember.matmul, np.matmul, torch.matmul, ((4,), (2, 4, 3))),
    Case("matmul-3d-1d", ember.matmul, np.matmul, torch.matmul, ((2, 3, 4), (4,))),
    _einsum("ij,jk->ik")((2, 3), (3, 4)),
    _einsum("ij,jk")((2, 3), (3, 4)),
    _einsum("bij,bjk->bik")((2, 2, 3), (2, 3, 2)),
    _einsum("ii->i")((3, 3)),
    _einsum("ii")((3, 3)),
    _einsum("iij->j")((3, 3, 2)),
    _einsum("ij->")((2, 3)),
    _einsum("ba")((2, 3)),
    _einsum("ij->ji")((2, 3)),
    _einsum("i,j->ij")((2,), (3,)),
    _einsum("i,i")((4,), (4,)),
    _einsum("bi,i")((2, 3), (3,)),
    _einsum("ij,ij,ij->i")((2, 3), (2, 3), (2, 3)),
    _einsum("ij,j->i")((3, 1), (4,)),
    _einsum("...ij,...jk")((2, 1, 3, 4), (3, 4, 2)),
    _einsum("...ij->...ji")((2, 3, 4)),
    _einsum("...i->", np.sum)((2, 3)),
    _einsum("i...->...")((2, 3)),
    _einsum("bn,anm,bm->ba")((2, 3), (2, 3, 4), (2, 4)),
    Case("dot", ember.dot, np.dot, torch.dot, ((4,), (4,))),
    Case("vdot", ember.vdot, np.vdot, torch.vdot, ((4,), (4,))),
    Case("outer", ember.outer, np.outer, torch.outer, ((3,), (2,))),
    Case("ger", ember.ger, np.outer, torch.outer, ((3,), (2,))),
    Case("mm", ember.mm, np.matmul, torch.mm, ((3, 4), (4, 2))),
    Case("bmm", ember.bmm, np.matmul, torch.bmm, ((2, 3, 4), (2, 4, 2))),
    Case("mv", ember.mv, np.matmul, torch.mv, ((3, 4), (4,))),
    Case("inner", ember.inner, np.inner, torch.inner, ((2, 3), (4, 3))),
    Case("inner-1d", ember.inner, np.inner, torch.inner, ((3,), (3,))),
    Case("inner-0d", ember.inner, np.inner, torch.inner, ((), (3,))),
    Case("tensordot-2", ember.tensordot, np.tensordot, torch.tensordot, ((2, 3, 4), (3, 4, 2))),
    Case("tensordot-lists", lambda a, b: ember.tensordot(a, b, ([0, 2], [1, 0])),
         lambda a, b: np.tensordot(a, b, ([0, 2], [1, 0])),
         lambda a, b: torch.tensordot(a, b, ([0, 2], [1, 0])), ((2, 3, 4), (4, 2, 3))),
    Case("tensordot-0", lambda a, b: ember.tensordot(a, b, 0), lambda a, b: np.tensordot(a, b, 0),
         lambda a, b: torch.tensordot(a, b, 0), ((2,), (3,))),
    Case("kron", ember.kron, np.kron, torch.kron, ((2, 3), (2, 2))),
    Case("kron-ranks", ember.kron, np.kron, torch.kron, ((2, 3), (4,))),
]
IDS = [c.name for c in CASES]


def _inputs(case: Case, rng) -> list[np.ndarray]:
    return [rng.standard_normal(s) for s in case.shapes]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_match_numpy_and_torch(case, rng):
    xs = _inputs(case, rng)
    want = case.ref(*xs)
    for dtype, tol in [(np.float64, 1e-12), (np.float32, 1e-5)]:
        got = case.fn(*[ember.tensor(x.astype(dtype)) for x in xs])
        assert got.dtype is ember._core.dtypes.from_numpy(dtype)
        assert tuple(got.shape) == np.shape(want)
        assert_close(got, want, rtol=tol * 10, atol=tol * 10)
    assert_close(case.fn(*[t64(x) for x in xs]), case.torch_fn(*[torch.tensor(x) for x in xs]).numpy(),
                 rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_match_finite_differences_to_second_order(case, rng):
    check_grad(case.fn, _inputs(case, rng))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jvp_matches_finite_differences(case, rng):
    check_jvp(case.fn, _inputs(case, rng))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_matches_loop(case, rng):
    n = len(case.shapes)
    for batched in itertools.product([False, True], repeat=n):
        if not any(batched):
            continue
        xs = [rng.standard_normal((2,) + s if b else s) for s, b in zip(case.shapes, batched)]
        check_vmap(case.fn, xs, [0 if b else None for b in batched])
    # the batch dimension last instead of first
    xs = [np.moveaxis(rng.standard_normal((2,) + s), 0, -1) for s in case.shapes]
    check_vmap(case.fn, xs, [-1] * n)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_tensors_requiring_grad_give_the_same_values_and_gradient_matches_torch(case, rng):
    xs = _inputs(case, rng)
    ts = [t64(x).requires_grad_() for x in xs]
    out = case.fn(*ts)
    w = rng.standard_normal(tuple(out.shape))
    (out * t64(w)).sum().backward()
    tt = [torch.tensor(x, requires_grad=True) for x in xs]
    (case.torch_fn(*tt) * torch.tensor(w)).sum().backward()
    for t, r in zip(ts, tt):
        assert_close(t.grad, r.grad.numpy(), rtol=1e-10, atol=1e-10)


# -- matmul: every combination of logical ranks and batched operands under vmap ---------------------------
def _logical_shape(rank: int, side: str) -> tuple:
    k = 4
    if side == "a":
        return {1: (k,), 2: (3, k), 3: (2, 3, k)}[rank]
    return {1: (k,), 2: (k, 5), 3: (1, k, 5)}[rank]


@pytest.mark.parametrize("ra", [1, 2, 3])
@pytest.mark.parametrize("rb", [1, 2, 3])
@pytest.mark.parametrize("dims", [(0, None), (None, 0), (0, 0), (-1, 1)], ids=["a", "b", "both", "moved"])
def test_matmul_vmap_every_rank_and_batching_combination(ra, rb, dims, rng):
    xs = []
    for rank, side, d in zip((ra, rb), "ab", dims):
        shape = _logical_shape(rank, side)
        if d is None:
            xs.append(rng.standard_normal(shape))
        else:
            xs.append(np.moveaxis(rng.standard_normal((3,) + shape), 0, d))
    check_vmap(ember.matmul, xs, list(dims), rtol=1e-12, atol=1e-12)


@given(hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=3, max_side=4))
def test_matmul_shapes_follow_numpy(shapes):
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal(s) for s in shapes.input_shapes)
    got = ember.matmul(t64(a), t64(b))
    assert tuple(got.shape) == shapes.result_shape
    assert_close(got, np.matmul(a, b), rtol=1e-12, atol=1e-12)


def test_vmap_of_grad_and_jvp_of_grad_compose_through_matmul(rng):
    a = rng.standard_normal((3, 3))
    f = lambda x: ember.matmul(x, ember.matmul(t64(a), x))
    assert_close(hessian(f)(t64(rng.standard_normal(3))), a + a.T, rtol=1e-12, atol=1e-12)
    g = lambda x: ember.einsum("i,ij,j", x, t64(a), x)
    xs = rng.standard_normal((4, 3))
    per_sample = vmap(ember.func.grad(g))(t64(xs))
    assert_close(per_sample, xs @ (a + a.T), rtol=1e-12, atol=1e-12)
    v = rng.standard_normal(3)
    _, hvp = jvp(ember.func.grad(g), (t64(xs[0]),), (t64(v),))
    assert_close(hvp, (a + a.T) @ v, rtol=1e-12, atol=1e-12)


# -- dtypes --------------------------------------------------------------------------------------------------
_DT = [ember.int32, ember.int64, ember.float16, ember.bfloat16, ember.float32, ember.float64]


@pytest.mark.parametrize("da", _DT)
@pytest.mark.parametrize("db", _DT)
def test_matmul_result_dtype_is_torch_promotion(da, db):
    a, b = ember.ones(2, 3, dtype=da), ember.ones(3, 2, dtype=db)
    want = torch.result_type(torch.ones(2, 3, dtype=TORCH_DTYPES[da]), torch.ones(3, 2, dtype=TORCH_DTYPES[db]))
    out = ember.matmul(a, b)
    assert TORCH_DTYPES[out.dtype] == want
    assert out.tolist() == [[3, 3], [3, 3]]


@pytest.mark.parametrize("dtype", _DT)
def test_same_dtype_products_match_torch_dtype_and_values(dtype, rng):
    a = rng.integers(-3, 4, (3, 5)).astype(np.float32)
    b = rng.integers(-3, 4, (5, 2)).astype(np.float32)
    ta, tb = (torch.tensor(x).to(TORCH_DTYPES[dtype]) for x in (a, b))
    ea, eb = (ember.tensor(x, dtype=dtype) for x in (a, b))
    for got, want in [(ember.matmul(ea, eb), torch.matmul(ta, tb)),
                      (ember.einsum("ij,jk->ik", ea, eb), torch.einsum("ij,jk->ik", ta, tb))]:
        assert TORCH_DTYPES[got.dtype] == want.dtype
        assert_close(got.double(), want.double().numpy())


def test_half_precision_matmul_accumulates_in_float32(rng):
    a = rng.uniform(0, 1, (4, 512)).astype(np.float32)
    b = rng.uniform(0, 1, (512, 3)).astype(np.float32)
    got = ember.matmul(ember.tensor(a, dtype=ember.float16), ember.tensor(b, dtype=ember.float16))
    want = torch.matmul(torch.tensor(a).half(), torch.tensor(b).half())
    assert_close(got.float(), want.float().numpy(), rtol=2e-3, atol=0)


def test_einsum_promotes_mixed_operands():
    out = ember.einsum("i,i->", ember.ones(3, dtype=ember.int64), ember.ones(3, dtype=ember.float32))
    assert out.dtype is ember.float32 and float(out) == 3.0


# -- storage and methods -----------------------------------------------------------------------------------
def test_einsum_result_owns_its_storage():
    x = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
    for eq in ["ij->ji", "ii->i", "ij->ij"]:
        y = ember.einsum(eq, x)
        y.add_(10.0)
        assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_vector_dot_product_is_a_writable_0d_tensor():
    y = ember.ones(3) @ ember.ones(3)
    assert y.shape == () and isinstance(y.numpy(), np.ndarray)
    y.add_(1.0)
    assert float(y) == 4.0


def test_tensor_methods(rng):
    a, b, v = t64(rng.standard_normal((3, 4))), t64(rng.standard_normal((4, 2))), t64(rng.standard_normal(4))
    assert_close(a.mm(b), np_of(a) @ np_of(b))
    assert_close(a.matmul(b), np_of(a) @ np_of(b))
    assert_close(a @ v, np_of(a) @ np_of(v))
    assert_close(a.mv(v), np_of(a) @ np_of(v))
    assert_close(v.dot(v), np_of(v) @ np_of(v))
    assert_close(v.vdot(v), np_of(v) @ np_of(v))
    assert_close(v.outer(v), np.outer(np_of(v), np_of(v)))
    assert_close(v.ger(v), np.outer(np_of(v), np_of(v)))
    assert_close(a.inner(a), np.inner(np_of(a), np_of(a)))
    assert_close(a.kron(b), np.kron(np_of(a), np_of(b)))
    c = t64(rng.standard_normal((2, 3, 4)))
    assert_close(c.bmm(t64(rng.standard_normal((2, 4, 1)))).shape, (2, 3, 1))


# -- errors ----------------------------------------------------------------------------------------------------
def _raises(cls, fn, *needles):
    with pytest.raises(cls) as info:
        fn()
    msg = str(info.value)
    for needle in needles + ("test_linalg.py",):
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_matmul_inner_dimension_mismatch_names_op_and_both_shapes():
    _raises(ShapeError, lambda: ember.matmul(ember.ones(2, 3), ember.ones(4, 5)), "matmul", "(2, 3)", "(4, 5)")
    _raises(ShapeError, lambda: ember.ones(2, 3) @ ember.ones(2), "matmul", "(2, 3)", "(2,)")


def test_matmul_rejects_0d_operands():
    _raises(ShapeError, lambda: ember.matmul(ember.ones(()), ember.ones(3)), "matmul", "at least one dimension")
    _raises(ShapeError, lambda: ember.ones(3) @ 2.0, "matmul", "at least one dimension")


def test_matmul_batch_dims_must_broadcast():
    _raises(ShapeError, lambda: ember.matmul(ember.ones(2, 3, 4), ember.ones(5, 4, 3)), "matmul", "(2,)",
            "(5,)")


def test_matmul_rejects_bool_like_torch():
    b = ember.ones(2, 2, dtype=ember.bool)
    _raises(DTypeError, lambda: ember.matmul(b, b), "matmul", "bool")


@pytest.mark.parametrize("eq, shapes, needles", [
    ("ij,jk->ik", [(2, 3)], ["einsum", "1 operands"]),
    ("ij,jk->ik", [(2, 3), (4, 5)], ["einsum", "'j'", "(2, 3) and (4, 5)"]),
    ("ijk->i", [(2, 3)], ["einsum", "'ijk'", "names 3 dimensions"]),
    ("i1->i", [(2, 3)], ["einsum", "invalid subscript"]),
    ("ij->ik", [(2, 3)], ["einsum", "'k'"]),
    ("ij->ii", [(2, 2)], ["einsum", "'i'"]),
    ("ii->i", [(2, 3)], ["einsum", "repeated"]),
    ("i->j->k", [(2,)], ["einsum", "more than one"]),
])
def test_einsum_bad_equations_raise_shape_error(eq, shapes, needles):
    _raises(ShapeError, lambda: ember.einsum(eq, *[ember.ones(s) for s in shapes]), *needles)


@pytest.mark.parametrize("fn, shapes, needles", [
    (ember.dot, [(2, 3), (3,)], ["dot", "1-d", "(2, 3)"]),
    (ember.dot, [(2,), (3,)], ["dot", "(2,) and (3,)"]),
    (ember.mm, [(2, 3, 4), (4, 2)], ["mm", "2-d"]),
    (ember.mm, [(2, 3), (4, 2)], ["mm", "(2, 3)", "(4, 2)"]),
    (ember.bmm, [(2, 3, 4), (3, 4, 2)], ["bmm", "batch"]),
    (ember.mv, [(2, 3), (2,)], ["mv", "(2, 3)", "(2,)"]),
    (ember.outer, [(2, 3), (2,)], ["outer", "1-d"]),
    (ember.inner, [(2, 3), (2,)], ["inner", "(2, 3) and (2,)"]),
    (lambda a, b: ember.tensordot(a, b, 1), [(2, 3), (2, 3)], ["tensordot", "(2, 3)", "3 != 2"]),
    (lambda a, b: ember.tensordot(a, b, ([0], [0, 1])), [(2, 3), (2, 3)], ["tensordot", "same number"]),
    (lambda a, b: ember.tensordot(a, b, 3), [(2, 3), (2, 3)], ["tensordot", "dims=3"]),
])
def test_products_name_op_and_shapes_in_errors(fn, shapes, needles):
    _raises(ShapeError, lambda: fn(*[ember.ones(s) for s in shapes]), *needles)


def test_vdot_conjugates_its_first_operand_as_torch():
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(4) + 1j * rng.standard_normal(4) for _ in range(2))
    np.testing.assert_allclose(ember.vdot(ember.tensor(a), ember.tensor(b)).numpy(),
                               torch.vdot(torch.from_numpy(a), torch.from_numpy(b)).numpy(), rtol=1e-12)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    ea, eb = (ember.tensor(v, requires_grad=True) for v in (a, b))
    torch.vdot(ta, tb).abs().backward()
    ember.vdot(ea, eb).abs().backward()
    np.testing.assert_allclose(ea.grad.numpy(), ta.grad.resolve_conj().numpy(), rtol=1e-10)
    np.testing.assert_allclose(eb.grad.numpy(), tb.grad.resolve_conj().numpy(), rtol=1e-10)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))
def test_einsum_matrix_chain_matches_matmul(n, k, m):
    rng = np.random.default_rng(n * 16 + k * 4 + m)
    a, b, c = rng.standard_normal((n, k)), rng.standard_normal((k, m)), rng.standard_normal((m, n))
    got = ember.einsum("ij,jk,kl->il", t64(a), t64(b), t64(c))
    assert_close(got, a @ b @ c, rtol=1e-12, atol=1e-12)


def test_matmul_gradient_for_a_transposed_operand_is_row_major_and_exact():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((5, 4)), rng.standard_normal((3, 4))
    check_grad(lambda a, b: ember.matmul(a, b.t()), [x, w])
    wt = t64(w).requires_grad_()
    (ember.matmul(t64(x), wt.t()) ** 2).sum().backward()
    tw = torch.tensor(w, requires_grad=True)
    (torch.tensor(x) @ tw.t()).pow(2).sum().backward()
    assert wt.grad.is_contiguous()
    np.testing.assert_allclose(wt.grad.numpy(), tw.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_trace_addmm_baddbmm_match_torch_and_differentiate(rng):
    m = rng.standard_normal((4, 4))
    assert_close(ember.trace(t64(m)), np.trace(m))
    assert_close(t64(m).trace(), torch.trace(torch.from_numpy(m)).numpy())
    check_grad(ember.trace, [m])
    with pytest.raises(ShapeError, match="trace"):
        ember.trace(ember.ones(2, 2, 2))
    cases = [("addmm", [(3,), (2, 4), (4, 3)]), ("addmm", [(2, 3), (2, 4), (4, 3)]),
             ("baddbmm", [(1, 2, 3), (5, 2, 4), (5, 4, 3)])]
    for name, shapes in cases:
        xs = [rng.standard_normal(s) for s in shapes]
        for beta, alpha in [(1, 1), (0.5, -2.0), (0, 1)]:
            ours = getattr(ember, name)(*map(t64, xs), beta=beta, alpha=alpha)
            theirs = getattr(torch, name)(*map(torch.from_numpy, xs), beta=beta, alpha=alpha)
            assert_close(ours, theirs.numpy())
            assert_close(getattr(t64(xs[0]), name)(*map(t64, xs[1:]), beta=beta, alpha=alpha), theirs.numpy())
        check_grad(lambda a, b, c, n=name: getattr(ember, n)(a, b, c, beta=0.5, alpha=2.0), xs)
        jitted = ember.jit(lambda a, b, c, n=name: getattr(ember, n)(a, b, c, alpha=2.0))
        assert_close(jitted(*map(t64, xs)), getattr(torch, name)(*map(torch.from_numpy, xs), alpha=2.0).numpy())
    nan_input = np.full((2, 3), np.nan)  # beta=0 ignores the input's values, as PyTorch does
    assert not np.isnan(np_of(ember.addmm(t64(nan_input), t64(np.ones((2, 4))), t64(np.ones((4, 3))), beta=0))).any()


def test_cross_matches_torch_and_differentiates(rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((1, 3))
    assert_close(ember.cross(t64(a), t64(b)), torch.cross(torch.from_numpy(a), torch.from_numpy(b).expand(4, 3),
                                                         dim=1).numpy())
    a, b = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    assert_close(t64(a).cross(t64(b)), torch.linalg.cross(torch.from_numpy(a), torch.from_numpy(b), dim=0).numpy())
    check_grad(lambda x, y: ember.cross(x, y, dim=0), [a, b])
    assert_close(ember.jit(lambda x, y: ember.cross(x, y, 0))(t64(a), t64(b)),
                 torch.linalg.cross(torch.from_numpy(a), torch.from_numpy(b), dim=0).numpy())
    with pytest.raises(ShapeError, match="cross"):
        ember.cross(ember.ones(2, 4), ember.ones(2, 4))
    with pytest.raises(ShapeError, match="size 4"):
        ember.cross(ember.ones(3, 4), ember.ones(3, 4), dim=1)


def test_addmv_vander_diagflat_match_torch(rng):
    m, v, b = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(3)
    assert_close(ember.addmv(t64(b), t64(m), t64(v), beta=0.5, alpha=2),
                 torch.addmv(*map(torch.from_numpy, (b, m, v)), beta=0.5, alpha=2).numpy())
    check_grad(lambda x, y, z: ember.addmv(x, y, z, alpha=-1), [b, m, v])
    for values, n, increasing in [(np.array([1, 2, 3]), None, False), (np.array([0.5, -2.0]), 4, True)]:
        np.testing.assert_array_equal(ember.vander(ember.tensor(values), n, increasing).numpy(),
                                      torch.vander(torch.from_numpy(values), n, increasing).numpy())
    np.testing.assert_array_equal(ember.diagflat(t64(m[:2, :2]), -1).numpy(),
                                  torch.diagflat(torch.from_numpy(m[:2, :2]), -1).numpy())
