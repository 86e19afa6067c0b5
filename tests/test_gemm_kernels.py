"""The generated packed GEMM and its window-packing convolutions against NumPy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember._core.primitives import conv as ref
from ember.compiler.codegen import build, gemm, window

pytestmark = pytest.mark.skipif(not build.compiler_available(), reason="no C compiler")


@pytest.fixture(params=["tuned", "tiny blocks"])
def blocking(request, monkeypatch):
    """Run each test with the tuned blocking and with blocks small enough that every product spans
    several reduction blocks and column blocks (and the split-reduction path); the latter also takes
    every stride-1 input gradient as a convolution, whatever its width."""
    if request.param == "tiny blocks":
        monkeypatch.setattr(gemm, "KC_MAX", 5)
        monkeypatch.setattr(gemm, "NC_PANELS", 1)
        monkeypatch.setattr(gemm, "MC_PANELS", 2)
        monkeypatch.setattr(gemm, "KC_DOT", 7)
        monkeypatch.setattr(window, "MIN_RUN", 1)
    return request.param


def _layout(a: np.ndarray, kind: str) -> np.ndarray:
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "reversed":
        return np.ascontiguousarray(a[..., ::-1, ::-1])[..., ::-1, ::-1]
    if kind == "sliced":
        big = np.zeros(a.shape[:-2] + (a.shape[-2] * 2, a.shape[-1] + 3), a.dtype)
        big[..., ::2, 1:-2] = a
        return big[..., ::2, 1:-2]
    return a


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 40), k=st.integers(1, 70), n=st.integers(1, 120), batch=st.integers(0, 2),
       dtype=st.sampled_from([np.float32, np.float64]),
       layouts=st.tuples(*[st.sampled_from(["c", "fortran", "reversed", "sliced"])] * 2),
       seed=st.integers(0, 2**16))
def test_matmul_matches_numpy(blocking, m, k, n, batch, dtype, layouts, seed):
    rng = np.random.default_rng(seed)
    lead = (batch,) if batch else ()
    a = rng.standard_normal(lead + (m, k)).astype(dtype)
    b = rng.standard_normal(lead + (k, n)).astype(dtype)
    out = gemm.matmul(_layout(a, layouts[0]), _layout(b, layouts[1]))
    assert out.shape == lead + (m, n) and out.flags.c_contiguous
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, a @ b, rtol=tol, atol=tol * np.sqrt(k))


@pytest.mark.parametrize("shape", [(8, 64, 48), (37, 70, 101), (300, 100, 50), (9, 256, 260)])
@pytest.mark.parametrize("layouts", [("c", "c"), ("c", "fortran"), ("fortran", "c"), ("fortran", "fortran")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_of_transposed_operands_match_numpy(shape, layouts, dtype):
    """Contiguous rows of A and contiguous columns of B pack through in-register transposes of whole
    vector blocks (reductions past a few vectors, every column and row remainder)."""
    m, k, n = shape
    rng = np.random.default_rng(m + k + n)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    out = gemm.matmul(_layout(a, layouts[0]), _layout(b, layouts[1]))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, a @ b, rtol=tol, atol=tol * np.sqrt(k))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(leads=st.sampled_from([((3,), ()), ((2, 3), ()), ((), (2,)), ((2, 1), (4,)), ((1,), (3,)),
                              ((2, 3), (2, 3)), ((3, 1, 2), (1, 4, 1))]),
       m=st.integers(1, 30), k=st.integers(1, 40), n=st.integers(1, 60), permuted=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_batched_matmul_broadcasts_as_numpy(blocking, leads, m, k, n, permuted, dtype, seed):
    # batch dims broadcast as np.matmul's; a 2-D right operand folds the batch into rows when the
    # left one's strides allow (else each batch runs on its own)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(leads[0] + (m, k)).astype(dtype)
    b = rng.standard_normal(leads[1] + (k, n)).astype(dtype)
    if permuted and a.ndim > 2:  # batch dims that do not fold: rows outermost in memory
        a = np.moveaxis(np.ascontiguousarray(np.moveaxis(a, -2, 0)), 0, -2)
    expected = np.matmul(a, b)
    out = np.full(expected.shape, np.nan, dtype)
    assert gemm.matmul(a, b, out) is out
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * np.sqrt(k))


def test_the_matmul_primitive_runs_on_the_gemm(monkeypatch):
    import ember
    from ember._core.primitives import linalg

    assert linalg.matmul_p.kernels["cpu"] is gemm._matmul_cpu
    calls = []
    real = gemm.matmul
    monkeypatch.setattr(gemm, "matmul", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 128, 96)).astype(np.float32)
    b = rng.standard_normal((96, 128)).astype(np.float32)
    assert a.shape[0] * a.shape[1] * 96 * 128 >= gemm.MIN_WORK
    np.testing.assert_allclose((ember.tensor(a) @ ember.tensor(b)).numpy(), a @ b, rtol=1e-5, atol=1e-4)
    assert calls == [1]
    small = ember.tensor(a[0, :2, :3]) @ ember.tensor(b[:3, :2])  # below MIN_WORK: NumPy's BLAS
    np.testing.assert_allclose(small.numpy(), a[0, :2, :3] @ b[:3, :2], rtol=1e-6)
    assert calls == [1]


def test_long_reductions_with_few_columns_split_the_reduction(blocking):
    # a weight gradient's shape: few output columns, a reduction thousands long
    rng = np.random.default_rng(0)
    a = rng.standard_normal((9, 5000))
    b = rng.standard_normal((5000, 7))
    np.testing.assert_allclose(gemm.matmul(a, b), a @ b, rtol=1e-12, atol=1e-10)
    np.testing.assert_array_equal(gemm.matmul(a[:, :0], b[:0]), np.zeros((9, 7)))


@pytest.mark.parametrize("case", [
    # (N, C, *S), O, kernel, stride, padding, dilation, groups
    ((2, 3, 9, 9), 8, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((2, 8, 9, 9), 5, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),  # weight gradient through the GEMM
    ((2, 12, 7, 6), 4, (3, 3), (2, 2), ((1, 0), (0, 1)), (1, 1), 2),
    ((3, 4, 11, 10), 6, (2, 3), (2, 1), ((0, 1), (2, 1)), (1, 2), 2),
    ((2, 2, 6, 6), 4, (5, 5), (1, 1), ((4, 4), (4, 4)), (1, 1), 1),  # padding wider than the image
    ((2, 3, 9, 8), 4, (3, 3), (1, 1), ((3, 0), (0, 3)), (1, 1), 1),  # padding past the kernel's reach
    ((2, 6, 7, 7), 6, (3, 3), (1, 1), ((0, 0), (0, 0)), (2, 1), 3),
    ((2, 5, 40), 9, (3,), (1,), ((1, 1),), (1,), 1),  # rows longer than a packed panel
    ((2, 4, 5, 20), 6, (3, 3), (1, 1), ((1, 1), (0, 2)), (1, 1), 1),
    ((1, 4, 5, 6, 7), 8, (2, 3, 2), (1, 2, 1), ((1, 0), (1, 1), (0, 1)), (2, 1, 1), 2),
    # "same" stride-1 convolutions: windows loaded as shifted vectors of the image (flat geometry)
    ((5, 3, 5, 5), 7, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),  # vectors straddle two images
    ((3, 4, 3, 3), 5, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),  # images shorter than a vector
    ((2, 4, 9, 9), 6, (3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2), 2),  # dilated, grouped
    ((2, 3, 4, 5, 6), 5, (3, 3, 3), (1, 1, 1), ((1, 1), (1, 1), (1, 1)), (1, 1, 1), 1),
    ((2, 18, 6, 7), 20, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    ((2, 2, 12, 11), 3, (7, 5), (1, 1), ((3, 3), (2, 2)), (1, 1), 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["c", "channel-major", "reversed"])
def test_convolutions_match_numpy(blocking, case, dtype, layout):
    shape, out_channels, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    if layout == "channel-major":
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    elif layout == "reversed":
        x = np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    w = rng.standard_normal((out_channels, shape[1] // groups) + kernel).astype(dtype)
    attrs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    out = window._conv_cpu(x, w, **attrs)
    np.testing.assert_allclose(out, ref._conv_impl(np, x, w, **attrs), **tol)
    g = rng.standard_normal(out.shape).astype(dtype)
    if layout == "channel-major":
        g = np.ascontiguousarray(g.swapaxes(0, 1)).swapaxes(0, 1)
    np.testing.assert_allclose(window._input_grad_cpu(g, w, in_spatial=shape[2:], **attrs),
                               ref._input_grad_impl(np, g, w, in_spatial=shape[2:], **attrs), **tol)
    np.testing.assert_allclose(window._weight_grad_cpu(x, g, kernel=kernel, **attrs),
                               ref._weight_grad_impl(np, x, g, kernel=kernel, **attrs), **tol)


@given(n=st.integers(1, 4), c=st.integers(1, 9), o=st.integers(1, 20), h=st.integers(1, 9),
       w=st.integers(1, 19), k=st.sampled_from([(1, 1), (3, 3), (1, 3), (3, 1), (5, 3)]),
       dil=st.integers(1, 2), groups=st.sampled_from([1, 2]), dtype=st.sampled_from([np.float32, np.float64]),
       channel_major=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_same_padded_convolutions_match_numpy(blocking, n, c, o, h, w, k, dil, groups, dtype, channel_major,
                                              seed):
    """Stride-1 convolutions padded to keep the image's size (the windows as shifted vectors of the
    image, masked at the borders and where a vector runs into the next image): forward and both
    gradients."""
    rng = np.random.default_rng(seed)
    c, o = c * groups, o * groups
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    if channel_major:
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    wt = rng.standard_normal((o, c // groups) + k).astype(dtype)
    padding = tuple((dil * (s - 1) // 2, dil * (s - 1) - dil * (s - 1) // 2) for s in k)
    attrs = dict(stride=(1, 1), padding=padding, dilation=(dil, dil), groups=groups)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    out = window._conv_cpu(x, wt, **attrs)
    assert out.shape == (n, o, h, w)
    np.testing.assert_allclose(out, ref._conv_impl(np, x, wt, **attrs), **tol)
    g = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(window._input_grad_cpu(g, wt, in_spatial=(h, w), **attrs),
                               ref._input_grad_impl(np, g, wt, in_spatial=(h, w), **attrs), **tol)
    np.testing.assert_allclose(window._weight_grad_cpu(x, g, kernel=k, **attrs),
                               ref._weight_grad_impl(np, x, g, kernel=k, **attrs), **tol)


def test_without_the_library_convolutions_keep_blas(monkeypatch):
    monkeypatch.setattr(gemm, "_LIB", {"f": None, "d": None})
    assert not gemm.supports(np.ones(2, np.float32))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    attrs = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    np.testing.assert_allclose(window._conv_cpu(x, w, **attrs), ref._conv_impl(np, x, w, **attrs), rtol=1e-5,
                               atol=1e-5)
