"""The generated column-sum kernel behind ``reduce_sum`` over leading axes: within float rounding of
the exact sums (no worse than NumPy's order), NumPy's special values, through eager sums, keepdim,
gradients of broadcast biases and compiled steps; the cases it leaves to NumPy."""
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
    kernel = CPU.column_sum

    def counted(x, axes):
        out = kernel(x, axes)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(CPU, "column_sum", counted)
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
    kernel = CPU.column_sum
    monkeypatch.setattr(CPU, "column_sum", lambda x, axes: calls.append(axes) or kernel(x, axes))
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
        assert 1 in calls  # the bias gradient: the output gradient summed over its rows
