"""The generated window kernels (pooling, im2col/col2im) against the NumPy kernels they replace."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember._core.primitives import conv as ref
from ember.compiler.codegen import build, gemm, window

pytestmark = pytest.mark.skipif(not build.compiler_available(), reason="no C compiler")

# Each pooling window compiles its own library: a fixed set (1-d to 3-d, overlapping, dilated, a
# window too large to unroll) keeps the builds few while shapes, strides, dtypes and data vary.
WINDOWS = [((3,), (2,), (1,)), ((2,), (1,), (2,)), ((2, 2), (2, 2), (1, 1)), ((3, 2), (1, 2), (2, 1)),
           ((3, 3), (2, 2), (1, 1)), ((9, 9), (3, 2), (1, 1)), ((2, 3, 2), (1, 2, 2), (1, 1, 2)),
           ((1, 2, 2), (2, 2, 2), (1, 1, 1))]


@pytest.fixture(autouse=True)
def _small_inputs_too(monkeypatch):
    monkeypatch.setattr(window, "MIN_ELEMENTS", 0)


@st.composite
def pool_case(draw):
    kernel, stride, dilation = draw(st.sampled_from(WINDOWS))
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 4)) for k, d in zip(kernel, dilation))
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    strided = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return lead + spatial, kernel, stride, dilation, dtype, strided, seed


def _input(shape, dtype, strided, seed, nan=True):
    rng = np.random.default_rng(seed)
    x = (np.round(rng.standard_normal(shape) * 2) / 2).astype(dtype)  # halves: many ties
    if nan and rng.random() < 0.5:
        x.flat[rng.integers(x.size)] = np.nan
    if strided:  # the same values behind a non-contiguous view
        x = np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 0, -1)), 0, -1)
    return x


@settings(max_examples=80, deadline=None)
@given(pool_case())
def test_pooling_kernels_match_numpy(case):
    shape, kernel, stride, dilation, dtype, strided, seed = case
    x = _input(shape, dtype, strided, seed)
    attrs = dict(kernel=kernel, stride=stride, dilation=dilation)
    out = window._max_pool_cpu(x, **attrs)
    np.testing.assert_array_equal(out, ref._max_pool_impl(np, x, **attrs))
    arg = window._argmax_cpu(x, out, **attrs)
    expected = ref._argmax_impl(np, x, out, **attrs)
    assert arg.dtype == expected.dtype
    np.testing.assert_array_equal(arg, expected)
    np.testing.assert_array_equal(window._gather_cpu(x, arg, **attrs), ref._gather_impl(np, x, arg, **attrs))
    np.testing.assert_array_equal(window._sum_pool_cpu(x, **attrs), ref._sum_pool_impl(np, x, **attrs))
    g = _input(out.shape, dtype, strided, seed + 1, nan=False)
    in_sp = shape[-len(kernel):]
    tol = dict(rtol=1e-5, atol=1e-6)  # overlapping windows may add in another order
    np.testing.assert_allclose(window._scatter_cpu(g, arg, in_sp, **attrs),
                               ref._scatter_impl(np, g, arg, in_sp, **attrs), **tol)
    np.testing.assert_allclose(window._sum_pool_t_cpu(g, in_sp, **attrs),
                               ref._sum_pool_t_impl(np, g, in_sp, **attrs), **tol)


@st.composite
def conv_case(draw):
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    spatial = tuple(max(1, d * (k - 1) + 1 - lo - hi + draw(st.integers(0, 3)))
                    for k, d, (lo, hi) in zip(kernel, dilation, padding))
    groups = draw(st.sampled_from([1, 2]))
    channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 2))
    batch = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (batch, channels) + spatial, out_channels, kernel, stride, padding, dilation, groups, dtype, \
        draw(st.booleans()), draw(st.integers(0, 2**16))


@settings(max_examples=60, deadline=None)
@given(conv_case())
def test_convolution_kernels_match_numpy(case):
    shape, out_channels, kernel, stride, padding, dilation, groups, dtype, strided, seed = case
    x = _input(shape, dtype, strided, seed, nan=False)
    w = _input((out_channels, shape[1] // groups) + kernel, dtype, False, seed + 1, nan=False)
    attrs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    padded = [n + lo + hi for n, (lo, hi) in zip(shape[2:], padding)]
    if any(n < d * (k - 1) + 1 for n, k, d in zip(padded, kernel, dilation)):
        return  # no window fits
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    out = window._conv_cpu(x, w, **attrs)
    np.testing.assert_allclose(out, ref._conv_impl(np, x, w, **attrs), **tol)
    g = _input(out.shape, dtype, strided, seed + 2, nan=False)
    np.testing.assert_allclose(window._input_grad_cpu(g, w, in_spatial=shape[2:], **attrs),
                               ref._input_grad_impl(np, g, w, in_spatial=shape[2:], **attrs), **tol)
    np.testing.assert_allclose(window._weight_grad_cpu(x, g, kernel=kernel, **attrs),
                               ref._weight_grad_impl(np, x, g, kernel=kernel, **attrs), **tol)


def test_col2im_is_the_transpose_of_im2col():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 9))
    args = ((3, 2), (2, 1), ((1, 2), (0, 1)), (1, 2))
    cols, out_sp = window.im2col(x, *args, groups=1)
    c = rng.standard_normal(cols.shape)
    back = window.col2im(c.reshape(-1, c.shape[-1]), 2, 4, (7, 9), out_sp, *args)
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-12)


def test_transposed_convolution_with_output_padding_keeps_unreached_positions_zero():
    rng = np.random.default_rng(1)
    x = ember.tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    w = ember.tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32))
    out = ember.nn.functional.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    import torch

    expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x.numpy()), torch.from_numpy(w.numpy()),
                                                    stride=2, padding=1, output_padding=1)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_half_precision_and_missing_compiler_keep_the_numpy_kernels(monkeypatch):
    x = np.arange(32, dtype=np.float16).reshape(1, 2, 4, 4)
    np.testing.assert_array_equal(window._max_pool_cpu(x, (2, 2), (2, 2), (1, 1)),
                                  ref._max_pool_impl(np, x, (2, 2), (2, 2), (1, 1)))
    monkeypatch.setattr(window, "_LIBS", {})
    monkeypatch.setattr(window, "try_build", lambda source: None)
    monkeypatch.setattr(gemm, "_LIB", {"f": None, "d": None})
    y = x.astype(np.float32)
    np.testing.assert_array_equal(window._max_pool_cpu(y, (2, 2), (2, 2), (1, 1)),
                                  ref._max_pool_impl(np, y, (2, 2), (2, 2), (1, 1)))
    w = np.ones((3, 2, 3, 3), np.float32)
    attrs = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    np.testing.assert_array_equal(window._conv_cpu(y, w, **attrs), ref._conv_impl(np, y, w, **attrs))


def test_max_pool_gradient_through_the_kernels_matches_torch():
    import torch

    rng = np.random.default_rng(2)
    data = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    x = ember.tensor(data, requires_grad=True)
    ember.nn.functional.max_pool2d(x, 3, stride=2, padding=1).sum().backward()
    t = torch.from_numpy(data).requires_grad_()
    torch.nn.functional.max_pool2d(t, 3, stride=2, padding=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)
