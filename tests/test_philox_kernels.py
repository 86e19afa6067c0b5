"""The generated Philox kernels: the reference stream's words and uniform values, bit for bit, for any
seed, offset and length; and the sampling functions on top of them."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember._core import random as R
from ember.backends import CPU
from ember.compiler.codegen import build, philox

needs_cc = pytest.mark.skipif(not build.compiler_available(), reason="no C compiler")
SEEDS = st.integers(0, 2 ** 64 - 1)
OFFSETS = st.one_of(st.integers(0, 1000), st.integers(2 ** 32 - 40, 2 ** 32 + 40), st.integers(0, 2 ** 62))


@needs_cc
@settings(max_examples=40, deadline=None)
@given(SEEDS, OFFSETS, st.integers(philox.MIN_WORDS, 5000))
def test_words_equal_the_reference_stream(seed, offset, count):
    np.testing.assert_array_equal(philox.words(seed, offset, count), R.philox_words(np, seed, offset, count))


@needs_cc
def test_long_draws_shared_by_threads_equal_the_reference():
    count = 4 * philox.MIN_PARALLEL * 3 + 4 * philox.LANES + 3  # several threads' groups and a ragged end
    np.testing.assert_array_equal(philox.words(5, 77, count), R.philox_words(np, 5, 77, count))


@needs_cc
@settings(max_examples=40, deadline=None)
@given(SEEDS, OFFSETS, st.integers(philox.MIN_WORDS, 3000), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([(0.0, 1.0), (-2.5, 3.0), (1e-3, 1e-3 + 2 ** -20), (-1e30, 1e30)]))
def test_uniform_values_equal_the_reference(seed, offset, n, dtype, bounds):
    dt = ember.float32 if dtype is np.float32 else ember.float64
    ours = philox.uniform(seed, offset, (n,), dtype, *bounds)
    ref = R._sample_impl(np, shape=(n,), dist="uniform", dtype=dt, params=bounds, seed=seed, offset=offset)
    assert ours.dtype == ref.dtype
    np.testing.assert_array_equal(ours, ref)


def test_small_draws_and_other_dtypes_are_left_to_the_reference():
    assert philox.words(1, 0, philox.MIN_WORDS - 1) is None
    assert philox.uniform(1, 0, (10,), np.float32, 0.0, 1.0) is None
    assert philox.uniform(1, 0, (5000,), np.float16, 0.0, 1.0) is None
    assert philox.words(1, 2 ** 64, 5000) is None


@needs_cc
@pytest.mark.parametrize("call", [
    lambda g: ember.rand(70, 90, generator=g),
    lambda g: ember.rand(4000, generator=g, dtype=ember.float64),
    lambda g: ember.randn(3000, generator=g),
    lambda g: ember.randint(-5, 9, (4001,), generator=g),
    lambda g: ember.randperm(3000, generator=g),
    lambda g: ember.rand(2000, generator=g, dtype=ember.complex64),
    lambda g: ember.empty(3000).uniform_(-4.0, 2.0, generator=g),
    lambda g: ember.empty(3000).exponential_(2.0, generator=g),
    lambda g: ember.multinomial(ember.rand(8, 600, generator=gen(9)), 500, generator=g),
    lambda g: ember.multinomial(ember.rand(3, 1000, generator=gen(9)) + 0.01, 400, replacement=False,
                                generator=g),
], ids=["rand", "rand64", "randn", "randint", "randperm", "complex", "uniform_", "exponential_",
        "multinomial", "multinomial_no_replacement"])
def test_sampling_functions_give_the_reference_numbers(call, monkeypatch):
    ours = call(gen(3)).numpy().copy()
    monkeypatch.setattr(CPU, "random_words", None)
    monkeypatch.setattr(CPU, "random_uniform", None)
    np.testing.assert_array_equal(ours, call(gen(3)).numpy())


def gen(seed):
    return ember.Generator().manual_seed(seed)


@needs_cc
def test_compiled_draws_use_the_kernels_and_match_eager(monkeypatch):
    calls = []

    def counted(*args):
        calls.append(args[2])
        return philox.uniform(*args)

    monkeypatch.setattr(CPU, "random_uniform", counted)
    compiled = ember.jit(lambda x: ember.nn.functional.dropout(x, 0.25) + ember.rand(*x.shape))
    x = ember.ones(64, 64)
    compiled.lower(x)
    calls.clear()  # (the trace's own draws)
    ember.manual_seed(2)
    ours = compiled(x).numpy()
    assert calls == [(64, 64), (64, 64)]  # the mask's uniforms and rand's, both from the kernel
    ember.manual_seed(2)
    eager = (ember.nn.functional.dropout(x, 0.25) + ember.rand(64, 64)).numpy()
    np.testing.assert_array_equal(ours, eager)
