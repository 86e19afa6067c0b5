"""The generated column kernels behind ``reduce_sum`` (and ``reduce_max``/``reduce_min``/``reduce_var``)
over leading axes: within float rounding of the exact results (no worse than NumPy's), NumPy's special
values, through eager ops, keepdim, gradients of broadcast biases and compiled steps; the cases they
leave to NumPy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.backends import CPU
from ember.compiler.codegen import build, columns

needs_cc = pytest.mark.skipif(not build.compiler_available(), reason="no C compiler")


@needs_cc
@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 70), min_size=1, max_size=2), st.integers(16, 700),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_column_sums_are_as_accurate_as_numpys(lead, cols, dtype, seed):
    rows = int(np.prod(lead))
    lead = [max(lead[0], -(-columns.MIN_ELEMENTS // (cols * rows // lead[0])))] + lead[1:]  # large enough
    x = np.random.default_rng(seed).standard_normal(tuple(lead) + (cols,)).astype(dtype)
    axes = tuple(range(len(lead)))
    got = columns.column_sum(x, len(lead))
    assert got is not None and got.dtype == x.dtype and got.shape == (cols,)
    exact = x.astype(np.longdouble).sum(axes)
    # sequential summation's bound, n eps sum|x|, holds for any grouping of the additions
    bound = x.shape[0] * np.prod(lead[1:]) * np.finfo(dtype).eps * np.abs(x).astype(np.float64).sum(axes)
    assert np.all(np.abs(got - exact) <= bound)
    scale = np.finfo(dtype).eps * float(np.abs(exact).max())
    assert np.abs(got - exact).max() <= 4 * np.abs(x.sum(axes) - exact).max() + scale  # no worse than NumPy


@needs_cc
def test_column_sums_of_signed_zeros_and_specials_follow_numpy():
    """Every partial sum starts at +0.0 as NumPy's does: a column of -0.0 sums to +0.0."""
    x = np.full((40000, 130), -0.0, np.float32)
    x[5, 3], x[7, 4], x[9, 5], x[11, 5] = np.inf, np.nan, np.inf, -np.inf
    got, want = columns.column_sum(x, 1), x.sum(0)
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[0]) and not np.signbit(want[0])  # a column of -0.0 sums to +0.0


def test_the_kernel_leaves_other_cases_to_numpy():
    x = np.ones((400, 300), np.float32)
    assert columns.column_sum(x.T, 1) is None  # not row-major
    assert columns.column_sum(x.astype(np.int64), 1) is None
    assert columns.column_sum(np.ones((40000, 8), np.float32), 1) is None  # too narrow
    assert columns.column_sum(np.ones((10, 300), np.float32), 1) is None  # small
    assert columns.column_sum(x, 0) is None and columns.column_sum(x, 2) is None


@needs_cc
@pytest.mark.parametrize("keepdim", [False, True])
def test_reduce_sum_over_leading_dims_uses_the_kernel(monkeypatch, keepdim):
    calls = []
    kernel = CPU.column_reduce

    def counted(kind, x, axes, correction=0.0):
        out = kernel(kind, x, axes, correction)
        calls.append(kind == "sum" and out is not None)
        return out

    monkeypatch.setattr(CPU, "column_reduce", counted)
    xn = np.random.default_rng(3).standard_normal((16, 64, 256)).astype(np.float32)
    got = ember.tensor(xn).sum((0, 1), keepdim=keepdim)
    want = torch.from_numpy(xn).sum((0, 1), keepdim=keepdim).numpy()
    assert calls == [True] and tuple(got.shape) == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got.numpy(), xn.sum((0, 1), keepdims=keepdim), rtol=1e-5, atol=1e-4)
    ember.tensor(xn).sum(2)  # trailing axes: not a column sum
    assert calls == [True]


@needs_cc
def test_bias_gradients_in_eager_and_compiled_steps_match_torch(monkeypatch):
    calls = []
    kernel = CPU.column_reduce
    monkeypatch.setattr(CPU, "column_reduce",
                        lambda kind, x, axes, c=0.0: calls.append((kind, axes)) or kernel(kind, x, axes, c))
    rng = np.random.default_rng(4)
    xn = rng.standard_normal((512, 96)).astype(np.float32)
    ember.manual_seed(0)
    lin = ember.nn.Linear(96, 320)
    peer = torch.nn.Linear(96, 320)
    with torch.no_grad():
        peer.weight.copy_(torch.from_numpy(lin.weight.detach().numpy()))
        peer.bias.copy_(torch.from_numpy(lin.bias.detach().numpy()))

    def loss_of(x):
        return (lin(x).tanh() ** 2).sum()

    for fn in (loss_of, ember.jit(loss_of)):
        calls.clear()
        lin.zero_grad()
        fn(ember.tensor(xn)).backward()
        peer.zero_grad()
        (peer(torch.from_numpy(xn)).tanh() ** 2).sum().backward()
        np.testing.assert_allclose(lin.bias.grad.numpy(), peer.bias.grad.numpy(), rtol=1e-4, atol=1e-3)
        assert ("sum", 1) in calls  # the bias gradient: the output gradient summed over its rows


@needs_cc
@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 70), min_size=1, max_size=2), st.integers(16, 700),
       st.sampled_from([np.float32, np.float64]), st.sampled_from(["max", "min", "var"]), st.integers(0, 2**16))
def test_column_extremes_and_variances_match_the_exact_results(lead, cols, dtype, kind, seed):
    rows = int(np.prod(lead))
    lead = [max(lead[0], -(-columns.MIN_ELEMENTS // (cols * rows // lead[0])))] + lead[1:]  # large enough
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(tuple(lead) + (cols,)) * rng.uniform(0.1, 10) + rng.uniform(-50, 50)).astype(dtype)
    axes = tuple(range(len(lead)))
    got = columns.column_reduce(kind, x, len(lead), 1.0)
    assert got is not None and got.dtype == x.dtype and got.shape == (cols,)
    if kind != "var":
        np.testing.assert_array_equal(got, getattr(x, kind)(axes))  # exact
        return
    exact = x.astype(np.longdouble).var(axes, ddof=1)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(got, exact.astype(np.float64), rtol=64 * eps if dtype == np.float64 else 8 * eps)
    # no worse than NumPy's float32 variance (float64 inputs: Welford in double, within 64 eps)
    if dtype == np.float32:
        assert np.abs(got - exact).max() <= max(np.abs(x.var(axes, ddof=1) - exact).max(),
                                                8 * eps * float(np.abs(exact).max()))


@needs_cc
def test_column_extremes_and_variances_of_special_values_follow_numpy():
    x = np.random.default_rng(7).standard_normal((3000, 40)).astype(np.float32)
    x[5, 3] = np.nan
    x[2999, 4] = np.nan  # the last row: a NaN in the last thread's block
    x[7, 5], x[1500, 6], x[20, 6] = np.inf, -np.inf, np.inf
    x[:, 7] = 1.25  # a constant column: variance exactly 0
    with np.errstate(invalid="ignore"):
        for kind in ("max", "min"):
            np.testing.assert_array_equal(columns.column_reduce(kind, x, 1), getattr(x, kind)(0))
        var, ref = columns.column_reduce("var", x, 1, 0.0), x.var(0)
    np.testing.assert_array_equal(np.isnan(var), np.isnan(ref))
    assert var[7] == 0.0
    np.testing.assert_allclose(var[8:], ref[8:], rtol=1e-5)
    assert columns.column_reduce("var", np.ones((1, 40000), np.float32), 1, 1.0) is None  # rows - 1 = 0
    assert columns.column_reduce("prod", x, 1) is None


@needs_cc
@pytest.mark.parametrize("keepdim", [False, True])
def test_eager_extremes_and_variances_over_leading_dims_use_the_kernel(monkeypatch, keepdim):
    calls = []
    kernel = CPU.column_reduce
    monkeypatch.setattr(CPU, "column_reduce", lambda kind, x, axes, c=0.0: calls.append(kind) or kernel(kind, x, axes, c))
    xn = np.random.default_rng(8).standard_normal((16, 64, 256)).astype(np.float32)
    x, t = ember.tensor(xn), torch.from_numpy(xn)
    for got, want in ((x.amax((0, 1), keepdim=keepdim), t.amax((0, 1), keepdim=keepdim)),
                      (x.amin(0, keepdim=keepdim), t.amin(0, keepdim=keepdim)),
                      (x.var((0, 1), keepdim=keepdim), t.var((0, 1), keepdim=keepdim)),
                      (x.std(0, keepdim=keepdim), t.std(0, keepdim=keepdim))):
        assert tuple(got.shape) == tuple(want.shape)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert calls == ["max", "min", "var", "var"]


@needs_cc
def test_column_variance_of_columns_far_from_zero_keeps_its_accuracy():
    # Welford on the raw values loses digits in proportion to mean / std (1e6 here); shifted, it does not
    x = np.random.default_rng(3).standard_normal((4000, 33)) + 1e6
    exact = x.astype(np.longdouble).var(0, ddof=1).astype(np.float64)
    np.testing.assert_allclose(columns.column_reduce("var", x, 1, 1.0), exact, rtol=64 * np.finfo(float).eps)
