"""The generated row reductions behind ``reduce_sum``/``reduce_max``/``reduce_min``/``reduce_var`` over
trailing axes: within float rounding of the exact results (sums and variances more accurate than
NumPy's float32 ones), NumPy's special values, results independent of how rows are shared among threads,
through eager ops, keepdim, gradients and compiled graphs; the cases left to NumPy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.backends import CPU
from ember.compiler.codegen import build, reductions

needs_cc = pytest.mark.skipif(not build.compiler_available(), reason="no C compiler")


def _sized(lead: list[int], trail: list[int]) -> tuple[list[int], list[int]]:
    """`lead` and `trail` adjusted so the array has between the kernel's minimum and 2^19 elements."""
    if not lead:
        return lead, trail if int(np.prod(trail)) >= reductions.MIN_ELEMENTS else [reductions.MIN_ELEMENTS + trail[0]]
    per = int(np.prod(lead[1:] + trail))
    first = min(max(lead[0], -(-reductions.MIN_ELEMENTS // per)), max(1, (1 << 19) // per))
    return [first] + lead[1:], trail


@needs_cc
@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=0, max_size=2),
       st.lists(st.integers(1, 3000), min_size=1, max_size=2).filter(lambda t: int(np.prod(t)) <= 1 << 16),
       st.sampled_from([np.float32, np.float64]), st.sampled_from(reductions.KINDS), st.integers(0, 2**16))
def test_row_reductions_match_the_exact_results(lead, trail, dtype, kind, seed):
    lead, trail = _sized(lead, trail)
    shape = tuple(lead + trail)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * rng.uniform(0.1, 10) + rng.uniform(-20, 20)).astype(dtype)
    axes = tuple(range(len(shape) - len(trail), len(shape)))
    ddof = 1.0 if np.prod(trail) > 1 else 0.0
    got = reductions.row_reduce(kind, x, len(trail), ddof)
    assert got is not None and got.dtype == x.dtype and got.shape == shape[:len(shape) - len(trail)]
    eps = np.finfo(dtype).eps
    if kind in ("max", "min"):  # exact
        np.testing.assert_array_equal(got, getattr(x, kind)(axes))
        return
    wide = x.astype(np.longdouble)
    if kind == "sum":
        exact = wide.sum(axes)
        if dtype == np.float32:  # runs of 4 float additions per lane, then double: a 4-eps bound
            bound = 2 * eps * np.abs(exact) + 4 * eps * np.abs(wide).sum(axes)
        else:  # double lanes, then a tree and the blocks in order
            bound = 64 * eps * np.abs(wide).sum(axes)
        assert np.all(np.abs(got - exact) <= bound)
        worst = np.abs(x.sum(axes) - exact).max()  # NumPy's own error in the same dtype
        assert np.abs(got - exact).max() <= max(2 * worst, 4 * eps * float(np.abs(exact).max()))
        return
    exact = wide.var(axes, ddof=ddof)
    np.testing.assert_allclose(got, exact.astype(np.float64), rtol=16 * eps, atol=0)
    worst = np.abs(x.var(axes, ddof=ddof) - exact).max()  # NumPy's own error in the same dtype
    assert np.abs(got - exact).max() <= max(worst, 16 * eps * float(np.abs(exact).max()))


@needs_cc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_follow_numpy(dtype):
    x = np.random.default_rng(1).standard_normal((8, 5000)).astype(dtype)
    x[1, 17] = np.nan
    x[2, 4999] = np.inf
    x[3, 10], x[3, 2100] = np.inf, -np.inf
    x[4] = -0.0
    x[5, 3000] = -np.inf
    x[6] = 2.5  # a constant row: variance exactly 0
    with np.errstate(invalid="ignore"):
        for kind, ref in (("sum", x.sum(1)), ("max", x.max(1)), ("min", x.min(1))):
            got = reductions.row_reduce(kind, x, 1)
            np.testing.assert_array_equal(got[1:7], ref[1:7])
            np.testing.assert_allclose(got, ref, rtol=1e-5)  # the other rows: within float32 rounding
            assert np.signbit(got[4]) == np.signbit(ref[4])  # a row of -0.0 sums to +0.0, as in NumPy
        var = reductions.row_reduce("var", x, 1, 1.0)
        ref = x.var(1, ddof=1)
    np.testing.assert_array_equal(np.isnan(var), np.isnan(ref))  # NaN/inf rows are NaN
    assert var[6] == 0.0
    np.testing.assert_allclose(var[[0, 4, 7]], ref[[0, 4, 7]], rtol=1e-5)


@needs_cc
@pytest.mark.parametrize("kind", reductions.KINDS)
def test_results_do_not_depend_on_how_rows_are_shared(kind):
    """A long row alone (its blocks spread over the threads) and among many rows (whole rows per thread)
    combines the same block partials in the same order: the same bits."""
    n = 9 * reductions.BLOCK + 123
    row = np.random.default_rng(2).standard_normal(n).astype(np.float32) + 3
    alone = reductions.row_reduce(kind, row, 1, 1.0)
    many = reductions.row_reduce(kind, np.tile(row, (64, 1)), 1, 1.0)
    assert alone.shape == () and many.shape == (64,)
    assert np.all(many.view(np.uint32) == alone.view(np.uint32))


def test_other_cases_are_left_to_numpy():
    x = np.ones((400, 300), np.float32)
    assert reductions.row_reduce("sum", x.T, 1) is None  # not row-major
    assert reductions.row_reduce("sum", x.astype(np.int64), 1) is None
    assert reductions.row_reduce("sum", x.astype(np.float16), 1) is None
    assert reductions.row_reduce("sum", np.ones((10, 300), np.float32), 1) is None  # small
    assert reductions.row_reduce("sum", x, 0) is None and reductions.row_reduce("sum", x, 3) is None
    assert reductions.row_reduce("prod", x, 1) is None
    assert reductions.row_reduce("var", np.ones((40000, 1), np.float32), 1, 1.0) is None  # n - correction = 0


@pytest.fixture
def counted(monkeypatch):
    """The kinds the row-reduction kernel computed (None where it declined)."""
    calls: list = []
    kernel = CPU.row_reduce

    def wrapper(kind, x, axes, correction=0.0):
        out = kernel(kind, x, axes, correction)
        calls.append(kind if out is not None else None)
        return out

    monkeypatch.setattr(CPU, "row_reduce", wrapper)
    return calls


@needs_cc
@pytest.mark.parametrize("keepdim", [False, True])
def test_eager_reductions_over_trailing_dims_use_the_kernel_and_match_torch(counted, keepdim):
    xn = np.random.default_rng(3).standard_normal((16, 64, 256)).astype(np.float32)
    x, t = ember.tensor(xn), torch.from_numpy(xn)
    for dim in ((2,), (1, 2), None):
        tdim = dim if dim is not None else (0, 1, 2)
        cases = [(x.sum(dim, keepdim=keepdim), t.sum(tdim, keepdim=keepdim)),
                 (x.mean(dim, keepdim=keepdim), t.mean(tdim, keepdim=keepdim)),
                 (x.amax(dim, keepdim=keepdim), t.amax(tdim, keepdim=keepdim)),
                 (x.amin(dim, keepdim=keepdim), t.amin(tdim, keepdim=keepdim)),
                 (x.var(dim, keepdim=keepdim), t.var(tdim, keepdim=keepdim)),
                 (x.std(dim, correction=0, keepdim=keepdim), t.std(tdim, correction=0, keepdim=keepdim))]
        for got, want in cases:
            assert tuple(got.shape) == tuple(want.shape)
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-5, atol=1e-5)
    assert counted.count("sum") == 6 and counted.count("max") == 3 and counted.count("min") == 3
    assert counted.count("var") == 6 and None not in counted
    counted.clear()
    x.sum(0), x.amax(1), x.var(0)  # leading or middle axes: NumPy (or the column-sum kernel)
    assert counted == []


@needs_cc
def test_reductions_over_every_axis_of_a_transposed_tensor_use_the_kernel(counted):
    xn = np.random.default_rng(4).standard_normal((300, 400)).astype(np.float32)
    x = ember.tensor(xn).t()
    np.testing.assert_allclose(x.sum().item(), xn.astype(np.float64).sum(), rtol=1e-6)
    assert x.amax().item() == xn.max() and counted == ["sum", "max"]


@needs_cc
def test_gradients_through_kernel_reductions_match_torch(counted):
    xn = np.random.default_rng(5).standard_normal((64, 700)).astype(np.float64)
    x = ember.tensor(xn, requires_grad=True)
    t = torch.from_numpy(xn).requires_grad_()
    (x.var(1) * x.amax(1) + x.sum(1) * x.amin(1)).sum().backward()
    (t.var(1) * t.amax(1) + t.sum(1) * t.amin(1)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert {"sum", "max", "min", "var"} <= set(counted)


@needs_cc
def test_compiled_reductions_use_the_kernel(counted):
    xn = np.random.default_rng(6).standard_normal((512, 96)).astype(np.float32)

    def stats(x):
        return x.var(1), x.amax(1), x.sum(), x.amin(-1)

    compiled = ember.jit(stats)
    for got, want in zip(compiled(ember.tensor(xn)), stats(ember.tensor(xn))):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert {"sum", "max", "min", "var"} <= set(counted)
