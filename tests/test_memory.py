"""The CPU buffer pool and the memory statistics API."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import ember
from ember.backends.numpy_backend import MIB, BufferPool, size_class

N = MIB // 4  # float32 elements in 1 MiB (a pooled size; 1 MiB is its own size class)
KEYS = ("current_bytes", "peak_bytes", "allocated_count", "freed_count", "pool_hits", "pool_misses",
        "pool_cached_bytes", "block_bytes", "peak_block_bytes")


@pytest.fixture(autouse=True)
def clean_pool():
    gc.collect()
    ember.empty_cache()
    yield
    gc.collect()
    ember.empty_cache()


def delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in KEYS}


def test_memory_stats_reports_every_key():
    stats = ember.memory_stats()
    assert all(isinstance(stats[k], int) for k in KEYS)
    assert ember.memory_stats("cpu") == stats


def test_freed_buffer_of_same_size_is_reused():
    before = ember.memory_stats()
    x = ember.empty(N)
    del x
    y = ember.empty(N)
    d = delta(before, ember.memory_stats())
    assert (d["pool_misses"], d["pool_hits"], d["allocated_count"], d["freed_count"]) == (1, 1, 2, 1)
    assert y.shape == (N,)


def test_stats_count_tensor_bytes_and_size_class_blocks():
    before = ember.memory_stats()
    x = ember.empty(N + 1)  # its block rounds up to the next size class
    cls = size_class(4 * (N + 1))
    assert cls > MIB
    d = delta(before, ember.memory_stats())
    assert (d["current_bytes"], d["block_bytes"]) == (4 * (N + 1), cls)
    del x
    d = delta(before, ember.memory_stats())
    assert (d["current_bytes"], d["block_bytes"], d["pool_cached_bytes"], d["freed_count"]) == (0, 0, cls, 1)


def test_reset_peak_restarts_from_current_usage():
    ember.reset_peak_memory_stats()
    base = ember.memory_stats()
    assert base["peak_bytes"] == base["current_bytes"]
    x, y = ember.empty(N), ember.empty(N)
    del x, y
    stats = ember.memory_stats()
    assert stats["peak_bytes"] == base["current_bytes"] + 2 * MIB
    assert stats["current_bytes"] == base["current_bytes"]
    ember.reset_peak_memory_stats()
    assert ember.memory_stats()["peak_bytes"] == base["current_bytes"]


def test_no_reuse_while_a_numpy_view_is_alive():
    x = ember.ones(N) + 1.0  # a pooled result
    view = x.numpy()[10:].reshape(-1)[::2]
    del x
    gc.collect()
    before = ember.memory_stats()
    y = ember.full((N,), 5.0) * 3.0  # same size: must not land on the viewed block
    assert delta(before, ember.memory_stats())["pool_hits"] == 0
    assert np.all(view == 2.0)
    assert np.all(y.numpy() == 15.0)
    del view
    z = ember.zeros(N) + 0.0  # the block is free now
    assert ember.memory_stats()["pool_hits"] - before["pool_hits"] == 1
    assert np.all(z.numpy() == 0.0)


def test_buffer_exports_keep_the_block():
    x = ember.empty(N)
    x.numpy()[:] = 4.0
    exported = memoryview(x.numpy())
    del x
    before = ember.memory_stats()
    y = ember.empty(N)
    y.numpy()[:] = -1.0
    assert delta(before, ember.memory_stats())["pool_hits"] == 0
    assert np.all(np.frombuffer(exported, np.float32) == 4.0)


def test_empty_cache_releases_free_blocks():
    x = ember.empty(N)
    del x
    assert ember.memory_stats()["pool_cached_bytes"] >= MIB
    ember.empty_cache()
    before = ember.memory_stats()
    assert before["pool_cached_bytes"] == 0
    ember.empty(N)
    assert delta(before, ember.memory_stats())["pool_misses"] == 1


def test_small_arrays_bypass_the_pool():
    before = ember.memory_stats()
    x = ember.empty(100) + 1.0
    assert delta(before, ember.memory_stats())["allocated_count"] == 0
    assert x.shape == (100,)


def test_cache_limit_returns_blocks_to_the_system():
    pool = BufferPool(threshold=1024, max_cached_bytes=MIB)
    a, b = pool.empty((MIB // 8,), np.float64), pool.empty((MIB // 8,), np.float64)
    del a, b
    stats = pool.stats()
    assert (stats["freed_count"], stats["pool_cached_bytes"]) == (2, MIB)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_pooled_elementwise_results_match_numpy(dtype):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(N) * 10).astype(dtype)
    b = (rng.standard_normal(N) * 10).astype(dtype)
    ea, eb = ember.tensor(a), ember.tensor(b)
    before = ember.memory_stats()
    np.testing.assert_array_equal((ea + eb).numpy(), a + b)
    np.testing.assert_array_equal((ea * eb).numpy(), a * b)
    np.testing.assert_array_equal((ea < eb).numpy(), a < b)
    np.testing.assert_array_equal(ember.maximum(ea, eb).numpy(), np.maximum(a, b))
    assert ember.memory_stats()["allocated_count"] - before["allocated_count"] >= 4


def test_pooled_formula_kernels_match_the_unpooled_path():
    x = np.random.default_rng(1).standard_normal(N).astype(np.float32)
    big = ember.gelu_tanh(ember.tensor(x)).numpy()
    small = np.concatenate([ember.gelu_tanh(ember.tensor(c)).numpy() for c in np.split(x, 256)])
    # large inputs may run a generated C kernel (float32 exp/tanh within a few ulp of NumPy's)
    np.testing.assert_allclose(big, small, rtol=1e-5, atol=1e-6)
    rows = ember.tensor(x.reshape(512, -1))
    col = ember.tensor(np.ones((512, 1), np.float32))
    np.testing.assert_allclose((rows * col + 1.0).numpy(), x.reshape(512, -1) + 1.0)


def test_pooled_buffers_carry_gradients():
    x = ember.tensor(np.full(N, 2.0, np.float32), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(N, 4.0, np.float32))
