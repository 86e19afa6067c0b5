"""The Python side of the fused attention kernels: cached operand layouts (read-only, bounded, clearable)
and kernels called with plain integers give the same values as before."""
from __future__ import annotations

import numpy as np
import pytest

from ember.compiler.codegen import attention as kernel
from ember.nn.functional._attention_kernel import _attention_numpy, _grads_numpy

from helpers import assert_close


@pytest.fixture(autouse=True)
def _cold_cache():
    kernel.clear_layout_cache()
    yield
    kernel.clear_layout_cache()


def _needs_kernel():
    if kernel._library("float") is None:
        pytest.skip("no C compiler")


def _offsets_by_address(a: np.ndarray, lead: tuple, rows: int, cols: int) -> np.ndarray:
    """Each batch entry's element offset from the address of its first element (the reference)."""
    full = np.broadcast_to(a, lead + (rows, cols))
    base = a.__array_interface__["data"][0]
    entries = [full[idx] for idx in np.ndindex(*lead)]
    return np.array([(e.__array_interface__["data"][0] - base) // a.itemsize for e in entries], np.int64)


def _layout_cases(rng) -> list:
    x = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)
    return [(x, (2, 5), 3, 4),
            (np.swapaxes(x, 1, 2), (2, 3), 5, 4),  # heads split by a transpose
            (rng.standard_normal((2, 1, 1, 5)), (2, 3), 4, 5),  # a padding mask
            (rng.standard_normal((4, 5)), (2, 3), 4, 5),  # one mask for every entry
            (rng.standard_normal((4, 1)), (2, 3), 4, 5),
            (rng.standard_normal((3, 4)), (), 3, 4)]


def test_cached_layouts_are_shared_read_only_and_match_the_array_addresses(rng):
    for a, lead, rows, cols in _layout_cases(rng):
        offsets, rs, cs = kernel._layout(a, lead, rows, cols)
        again = kernel._layout(a, lead, rows, cols)
        assert again[0] is offsets and again[1:] == (rs, cs)
        assert not offsets.flags.writeable
        with pytest.raises(ValueError):
            offsets[0] = 1
        np.testing.assert_array_equal(offsets, _offsets_by_address(a, lead, rows, cols))
        full = np.broadcast_to(a, lead + (rows, cols))
        assert (rs, cs) == tuple(s // a.itemsize for s in full.strides[-2:])


def test_arrays_of_one_shape_with_other_strides_get_their_own_layout(rng):
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    dense, swapped = x, np.swapaxes(x, 1, 2)
    assert kernel._layout(dense, (2, 4), 4, 3)[1] != kernel._layout(swapped, (2, 4), 4, 3)[1]
    assert len(kernel._LAYOUTS) == 2


def test_the_layout_cache_is_bounded_and_cleared(rng, monkeypatch):
    monkeypatch.setattr(kernel, "MAX_LAYOUTS", 3)
    for n in range(1, 11):
        kernel._layout(np.zeros((n, 2, 3)), (n,), 2, 3)
        assert 1 <= len(kernel._LAYOUTS) <= 3
    kernel.clear_layout_cache()
    assert not kernel._LAYOUTS


def _run(q, k, v, mask, g, causal):
    out = np.empty(q.shape[:-1] + (v.shape[-1],), q.dtype)
    lead, (L, E), (S, Ev) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
    packed = np.empty(lead + (L * E + S * E + S * Ev,), q.dtype)
    assert kernel.attention(q, k, v, mask, 0.3, causal, out)
    assert kernel.attention_grad(q, k, v, mask, g, out, 0.3, causal, packed)
    return out, packed


@pytest.mark.parametrize("mask_shape", [None, (2, 1, 1, 6), (5, 6), (5, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_are_the_same_with_a_cold_and_a_warm_layout_cache(rng, mask_shape, dtype):
    _needs_kernel()
    q = rng.standard_normal((2, 5, 3, 4)).astype(dtype).swapaxes(1, 2)  # transposed heads
    k, v = rng.standard_normal((2, 3, 6, 4)).astype(dtype), rng.standard_normal((2, 3, 6, 7)).astype(dtype)
    g = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    mask = None if mask_shape is None else rng.standard_normal(mask_shape).astype(dtype)
    causal = mask is None
    cold = _run(q, k, v, mask, g, causal)
    assert kernel._LAYOUTS
    warm = _run(q, k, v, mask, g, causal)
    for a, b in zip(cold, warm):
        np.testing.assert_array_equal(a, b)
    extra = () if mask is None else (mask,)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert_close(warm[0], _attention_numpy(np, q, k, v, *extra, scale=0.3, causal=causal), rtol=tol, atol=tol)
    want = _grads_numpy(np, g, warm[0], q, k, v, *extra, scale=0.3, causal=causal)
    assert_close(warm[1], want, rtol=10 * tol, atol=10 * tol)


def test_a_strided_feature_axis_is_copied_and_a_strided_output_refused(rng):
    _needs_kernel()
    q = rng.standard_normal((2, 5, 8))[..., ::2]  # feature stride 2: copied before the call
    out, _ = _run(q, q, q, None, np.zeros((2, 5, 4)), False)
    assert_close(out, _attention_numpy(np, q, q, q, scale=0.3, causal=False), rtol=1e-12, atol=1e-12)
    strided_out = np.empty((2, 5, 8))[..., ::2]
    with pytest.raises(ValueError, match="last axis must be contiguous"):
        kernel.attention(q, q, q, None, 0.3, False, strided_out)


def test_the_kernels_declare_their_argument_types(rng):
    _needs_kernel()
    for t in ("float", "double"):
        lib = kernel._library(t)
        for name, types in kernel._ARGTYPES.items():
            assert getattr(lib, f"{name}_{t}").argtypes == types
