"""Random numbers: Philox known answers, determinism and generator state, statistics (fixed seeds,
generous bounds), shapes/dtypes/ranges vs PyTorch, normal's gradient, in-place fills, errors."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from scipy import stats

import ember
from ember._core.random import blocks_needed, dropout_mask, philox4x32, philox_words
from ember.errors import DeviceError, DTypeError, EmberError, ShapeError

from helpers import TORCH_DTYPES, check_grad, np_of, t64, torch


def gen(seed: int = 0) -> ember.Generator:
    return ember.Generator().manual_seed(seed)


# -- Philox4x32-10 ----------------------------------------------------------------------------------------
# Random123's known-answer vectors: counter words, key words, expected output words.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KAT, ids=["zeros", "ones", "pi"])
def test_philox4x32_10_matches_known_answer_vectors(counter, key, expected):
    words = philox4x32(np, [np.array([c], dtype=np.uint32) for c in counter], key)
    assert tuple(int(w[0]) for w in words) == expected
    assert all(w.dtype == np.uint32 for w in words)


def test_philox_is_vectorised_over_counters():
    counters = [np.array([KAT[0][0][i], KAT[1][0][i]], dtype=np.uint32) for i in range(4)]
    both = philox4x32(np, counters, (0, 0))
    single = philox4x32(np, [np.array([0xFFFFFFFF], dtype=np.uint32)] * 4, (0, 0))
    assert [int(w[0]) for w in both] == list(KAT[0][2])
    assert [int(w[1]) for w in both] == [int(w[0]) for w in single]


def test_stream_words_depend_only_on_block_index():
    seed = 0x1234_5678_9ABC
    long = philox_words(np, seed, 0, 40)
    assert np.array_equal(philox_words(np, seed, 3, 12), long[12:24])
    assert np.array_equal(philox_words(np, seed, 2, 5), long[8:13])
    c0 = np.arange(10, dtype=np.uint32)
    zero = np.zeros(10, dtype=np.uint32)
    blocks = np.stack(philox4x32(np, (c0, zero, zero, zero), (seed & 0xFFFFFFFF, seed >> 32)), axis=-1)
    assert np.array_equal(blocks.reshape(-1), long)


def test_float_bits_come_from_the_top_of_each_word():
    g = gen(7)
    words = philox_words(np, 7, 0, 8)
    assert np_of(ember.rand(8, generator=g)).tolist() == ((words >> 8) * 2.0 ** -24).tolist()
    both = (words[0::2].astype(np.uint64) << 32) | words[1::2]
    want = (both >> 11).astype(np.float64) * 2.0 ** -53
    assert np_of(ember.rand(4, generator=g.manual_seed(7), dtype=ember.float64)).tolist() == want.tolist()


# -- determinism and generator state ---------------------------------------------------------------------
SAMPLERS = {
    "rand": lambda g: ember.rand(3, 5, generator=g),
    "rand64": lambda g: ember.rand(7, generator=g, dtype=ember.float64),
    "randn": lambda g: ember.randn(2, 3, generator=g),
    "randint": lambda g: ember.randint(-5, 5, (11,), generator=g),
    "randint_wide": lambda g: ember.randint(0, 2 ** 40, (5,), generator=g),
    "normal": lambda g: ember.normal(2.0, 3.0, (6,), generator=g),
    "bernoulli": lambda g: ember.bernoulli(ember.full((9,), 0.5), generator=g),
    "multinomial": lambda g: ember.multinomial(ember.ones(3, 6), 4, generator=g),
    "multinomial_repl": lambda g: ember.multinomial(ember.ones(6), 8, True, generator=g),
    "randperm": lambda g: ember.randperm(9, generator=g),
    "uniform_": lambda g: ember.zeros(5).uniform_(-1, 1, generator=g),
    "normal_": lambda g: ember.zeros(5).normal_(generator=g),
    "exponential_": lambda g: ember.zeros(5).exponential_(generator=g),
    "bernoulli_": lambda g: ember.zeros(5).bernoulli_(0.3, generator=g),
    "random_": lambda g: ember.zeros(5, dtype=ember.int32).random_(100, generator=g),
    "dropout_mask": lambda g: dropout_mask((4, 4), 0.5, g),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_same_seed_gives_identical_numbers_and_different_seeds_differ(name):
    draw = SAMPLERS[name]
    a = [np_of(draw(gen(11))) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    g = gen(11)
    first, second = np_of(draw(g)), np_of(draw(g))
    assert np.array_equal(first, a[0])
    others = [np_of(draw(gen(s))) for s in (12, 13, 14)]
    assert any(not np.array_equal(a[0], o) for o in others)
    assert any(not np.array_equal(first, x) for x in [second] + others)


def test_generators_are_independent_of_the_default_one():
    ember.manual_seed(5)
    want = np_of(ember.rand(4))
    ember.manual_seed(5)
    g = gen(5)
    ember.randn(100, generator=g)
    assert np.array_equal(np_of(ember.rand(4)), want)
    assert np.array_equal(np_of(ember.rand(4, generator=gen(5))), want)


def test_state_is_seed_and_offset_and_round_trips():
    g = gen(3)
    state = g.get_state()
    assert state.dtype is ember.int64 and state.tolist() == [3, 0]
    ember.rand(10, generator=g)  # ten float32 values = three blocks of four words
    assert g.get_state().tolist() == [3, 3]
    saved = g.get_state()
    a = np_of(ember.randn(5, generator=g))
    g.set_state(saved)
    assert np.array_equal(np_of(ember.randn(5, generator=g)), a)
    other = ember.Generator().set_state(saved)
    assert other.initial_seed() == 3 and np.array_equal(np_of(ember.randn(5, generator=other)), a)


@pytest.mark.parametrize("seed", [-1, 2 ** 63, 2 ** 64 - 1, -2 ** 63])
def test_any_64_bit_seed_round_trips_through_the_int64_state(seed):
    g = gen(seed)
    assert g.initial_seed() == seed % 2 ** 64
    a = np_of(ember.rand(6, generator=g))
    restored = ember.Generator().set_state(gen(seed).get_state())
    assert np.array_equal(np_of(ember.rand(6, generator=restored)), a)


def test_default_generator_functions_follow_torch():
    assert ember.manual_seed(9) is ember.default_generator
    assert ember.initial_seed() == 9
    state = ember.get_rng_state()
    a = np_of(ember.rand(3))
    ember.set_rng_state(state)
    assert np.array_equal(np_of(ember.rand(3)), a)
    s = ember.seed()
    assert isinstance(s, int) and ember.initial_seed() == s and 0 <= s < 2 ** 63
    g = ember.Generator()
    assert g.seed() == g.initial_seed()
    ember.manual_seed(0)


def test_results_depend_only_on_the_sequence_of_draws():
    g = gen(4)
    split = np.concatenate([np_of(ember.rand(4, generator=g)), np_of(ember.rand(4, generator=g))])
    assert np.array_equal(split, np_of(ember.rand(8, generator=gen(4))))
    g = gen(4)
    ember.randint(0, 3, (5,), generator=g)  # two blocks, the second only partly used
    assert np.array_equal(np_of(ember.rand(4, generator=g)), np_of(ember.rand(12, generator=gen(4)))[8:])


def test_randn_values_do_not_depend_on_the_dtype_beyond_rounding():
    a = np_of(ember.randn(101, generator=gen(2), dtype=ember.float64))
    b = np_of(ember.randn(101, generator=gen(2), dtype=ember.float32))
    assert np.array_equal(a.astype(np.float32), b)
    assert blocks_needed("normal", (101,), ember.float32, (0.0, 1.0)) == 51


# -- statistics (fixed seeds, so these cannot flake) ----------------------------------------------------
N = 100_000


def test_uniform_and_normal_pass_kolmogorov_smirnov():
    for dtype in (ember.float32, ember.float64):
        u = np_of(ember.rand(N, generator=gen(1), dtype=dtype)).astype(np.float64)
        assert stats.kstest(u, "uniform").pvalue > 1e-3
        z = np_of(ember.randn(N, generator=gen(1), dtype=dtype)).astype(np.float64)
        assert stats.kstest(z, "norm").pvalue > 1e-3
        assert abs(z.mean()) < 0.02 and abs(z.var() - 1) < 0.02
    x = np_of(ember.normal(2.0, 0.5, (N,), generator=gen(3)))
    assert abs(x.mean() - 2.0) < 0.01 and abs(x.std() - 0.5) < 0.01


def test_uniform_exponential_and_complex_moments():
    x = np_of(ember.empty(N).uniform_(-2.0, 4.0, generator=gen(4)))
    assert x.min() >= -2.0 and x.max() < 4.0 and abs(x.mean() - 1.0) < 0.03 and abs(x.var() - 3.0) < 0.05
    e = np_of(ember.empty(N, dtype=ember.float64).exponential_(2.0, generator=gen(5)))
    assert e.min() >= 0 and abs(e.mean() - 0.5) < 0.01
    assert stats.kstest(e, "expon", args=(0, 0.5)).pvalue > 1e-3
    c = np_of(ember.randn(N, dtype=ember.complex128, generator=gen(6)))
    assert abs(np.mean(np.abs(c) ** 2) - 1.0) < 0.02 and abs(c.real.var() - 0.5) < 0.01
    assert abs(np.corrcoef(c.real, c.imag)[0, 1]) < 0.02


def test_randint_is_uniform_over_its_range():
    for low, high in [(0, 7), (-3, 2), (0, 2 ** 40)]:
        x = np_of(ember.randint(low, high, (N,), generator=gen(7)))
        assert x.min() >= low and x.max() < high
        if high - low < 10:
            counts = np.bincount(x - low, minlength=high - low)
            assert stats.chisquare(counts).pvalue > 1e-3
        else:
            assert stats.kstest(x / 2 ** 40, "uniform").pvalue > 1e-3


def test_bernoulli_and_dropout_rates():
    p = ember.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=ember.float64)
    draws = np_of(ember.bernoulli(ember.broadcast_to(p, (N // 5, 5)), generator=gen(8)))
    assert set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.mean(axis=0), np_of(p), atol=0.01)
    assert draws[:, 0].sum() == 0 and draws[:, 4].min() == 1
    keep = np_of(dropout_mask((N,), 0.3, gen(9)))
    assert keep.dtype == np.bool_ and abs(keep.mean() - 0.7) < 0.01
    assert np_of(dropout_mask((10,), 0.0)).all() and not np_of(dropout_mask((10,), 1.0)).any()
    tiny = np_of(ember.bernoulli(ember.full((N,), 1e-6, dtype=ember.float64), generator=gen(10)))
    assert tiny.sum() <= 5  # 53-bit uniforms keep small probabilities small


def test_multinomial_frequencies_match_the_weights():
    w = np.array([1.0, 0.0, 2.0, 3.0, 4.0])
    p = w / w.sum()
    x = np_of(ember.multinomial(t64(w), N, replacement=True, generator=gen(11)))
    assert x.dtype == np.int64 and x.shape == (N,)
    assert stats.chisquare(np.bincount(x, minlength=5)[[0, 2, 3, 4]], N * p[[0, 2, 3, 4]]).pvalue > 1e-3
    rows = np_of(ember.multinomial(ember.tensor(np.tile(w, (N // 4, 1))), 2, generator=gen(12)))
    assert (rows[:, 0] != rows[:, 1]).all() and (rows != 1).all()
    second = np.array([sum(p[i] * p[j] / (1 - p[i]) for i in range(5) if i != j) for j in range(5)])
    np.testing.assert_allclose(np.bincount(rows[:, 0], minlength=5) / len(rows), p, atol=0.01)
    np.testing.assert_allclose(np.bincount(rows[:, 1], minlength=5) / len(rows), second, atol=0.01)


def test_multinomial_without_replacement_takes_every_positive_category_once():
    w = ember.tensor([[0.0, 5.0, 1.0, 1e-3], [1.0, 1.0, 1.0, 1.0]])
    x = np_of(ember.multinomial(w, 3, generator=gen(13)))
    assert sorted(x[0].tolist()) == [1, 2, 3] and len(set(x[1].tolist())) == 3
    assert np_of(ember.multinomial(ember.tensor([0.0, 0.0, 1.0]), 4, True)).tolist() == [2] * 4


def test_randperm_is_a_uniform_permutation():
    assert sorted(np_of(ember.randperm(1000, generator=gen(14))).tolist()) == list(range(1000))
    firsts = np.array([np_of(ember.randperm(4, generator=gen(s)))[0] for s in range(2000)])
    assert stats.chisquare(np.bincount(firsts, minlength=4)).pvalue > 1e-3
    assert ember.randperm(0).shape == (0,)


# -- shapes, dtypes and ranges vs PyTorch ------------------------------------------------------------------
CALLS = [
    ("rand", lambda m: m.rand(2, 3)), ("rand_tuple", lambda m: m.rand((4,))), ("rand_0d", lambda m: m.rand(())),
    ("rand_f64", lambda m: m.rand(2, dtype=m.float64)), ("rand_half", lambda m: m.rand(3, dtype=m.float16)),
    ("rand_bf16", lambda m: m.rand(3, dtype=m.bfloat16)), ("rand_c64", lambda m: m.rand(2, dtype=m.complex64)),
    ("randn", lambda m: m.randn([2, 2])), ("randn_c128", lambda m: m.randn(2, dtype=m.complex128)),
    ("randint_high", lambda m: m.randint(5, (3,))), ("randint", lambda m: m.randint(-2, 5, (2, 2))),
    ("randint_i32", lambda m: m.randint(0, 9, (3,), dtype=m.int32)),
    ("randint_bool", lambda m: m.randint(0, 2, (3,), dtype=m.bool)),
    ("randint_float", lambda m: m.randint(-3, 3, (3,), dtype=m.float32)),
    ("randint_like", lambda m: m.randint_like(m.zeros(2, 3), 5)),
    ("randint_like_i8", lambda m: m.randint_like(m.zeros(2, dtype=m.int8), -3, 3)),
    ("rand_like", lambda m: m.rand_like(m.zeros(3, dtype=m.float64))),
    ("randn_like", lambda m: m.randn_like(m.zeros(2, 1), dtype=m.float16)),
    ("randperm", lambda m: m.randperm(6)), ("randperm_f32", lambda m: m.randperm(6, dtype=m.float32)),
    ("normal_ff", lambda m: m.normal(1.0, 2.0, (2, 3))),
    ("normal_tt", lambda m: m.normal(m.zeros(2, 3), m.ones(3))),
    ("normal_tf", lambda m: m.normal(m.zeros(3, dtype=m.float64), 1.0)),
    ("normal_ft", lambda m: m.normal(0.0, m.ones(4))),
    ("bernoulli", lambda m: m.bernoulli(m.full((2, 2), 0.5))),
    ("bernoulli_p", lambda m: m.bernoulli(m.zeros(3, dtype=m.float64), 0.5)),
    ("bernoulli_method", lambda m: m.full((2,), 0.5).bernoulli()),
    ("multinomial", lambda m: m.multinomial(m.ones(5), 3)),
    ("multinomial_2d", lambda m: m.ones(2, 5).multinomial(7, True)),
    ("bernoulli_int", lambda m: m.zeros(4, dtype=m.int32).bernoulli_(0.5)),
    ("random_i8", lambda m: m.zeros(50, dtype=m.int8).random_()),
    ("random_to", lambda m: m.zeros(50).random_(3)), ("random_from_to", lambda m: m.zeros(50).random_(3, 5)),
    ("random_half", lambda m: m.zeros(50, dtype=m.float16).random_()),
]


@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_shapes_and_dtypes_match_torch(name, call):
    got, want = call(ember), call(torch)
    assert tuple(got.shape) == tuple(want.shape)
    assert TORCH_DTYPES[got.dtype] == want.dtype


@pytest.mark.parametrize("dtype", [ember.float16, ember.bfloat16, ember.float32, ember.float64])
def test_rand_stays_in_the_half_open_unit_interval_at_every_precision(dtype):
    x = np_of(ember.rand(20_000, dtype=dtype, generator=gen(15)).double())
    assert x.min() >= 0.0 and x.max() < 1.0
    assert len(np.unique(x)) > (200 if dtype in (ember.float16, ember.bfloat16) else 19_000)


def test_random_fills_cover_the_ranges_torch_uses():
    x = np_of(ember.zeros(2000, dtype=ember.int8).random_(generator=gen(16)))
    assert x.min() >= 0 and x.max() <= 127 and x.max() > 120
    y = np_of(ember.zeros(2000, dtype=ember.float16).random_(generator=gen(16)))
    assert y.min() >= 0 and y.max() <= 2 ** 11 and (y == np.round(y)).all()
    b = np_of(ember.zeros(100, dtype=ember.bool).random_(generator=gen(16)))
    assert b.any() and not b.all()


@given(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
def test_every_sampler_honours_the_requested_shape(shape):
    g = gen(0)
    for t in [ember.rand(shape, generator=g), ember.randn(*shape, generator=g),
              ember.randint(0, 3, shape, generator=g), ember.normal(0.0, 1.0, shape, generator=g)]:
        assert tuple(t.shape) == shape
    assert tuple(dropout_mask(shape, 0.5, g).shape) == shape


def test_requires_grad_and_device_keywords():
    x = ember.rand(3, requires_grad=True, device="cpu")
    assert x.requires_grad and x.is_leaf and x.device == ember.device("cpu")
    assert ember.randn(2, generator=gen(0)).device == ember.device("cpu")
    with pytest.raises(DTypeError):
        ember.randint(0, 3, (2,), requires_grad=True)


# -- normal's gradient ---------------------------------------------------------------------------------
def test_normal_is_differentiable_in_mean_and_std():
    def f(mean, std):
        return ember.normal(mean, std, generator=gen(17))

    check_grad(f, [np.array([0.5, -1.0, 2.0]), np.array([[1.0, 0.5, 2.0], [0.3, 0.7, 1.1]])])
    mean = t64([1.0, 2.0]).requires_grad_()
    std = t64([0.5, 3.0]).requires_grad_()
    ember.normal(mean, std, generator=gen(18)).sum().backward()
    eps = np_of(ember.randn(2, generator=gen(18), dtype=ember.float64))
    assert np_of(mean.grad).tolist() == [1.0, 1.0]
    np.testing.assert_allclose(np_of(std.grad), eps)


def test_normal_with_tensor_scale_only_differentiates_the_std():
    std = ember.tensor([1.0, 2.0], requires_grad=True)
    out = ember.normal(3.0, std, generator=gen(19))
    out.sum().backward()
    eps = np_of(ember.randn(2, generator=gen(19)))
    np.testing.assert_allclose(np_of(out), 3.0 + np.array([1.0, 2.0]) * eps, rtol=1e-6)
    np.testing.assert_allclose(np_of(std.grad), eps, rtol=1e-6)


# -- in-place fills ----------------------------------------------------------------------------------------
def test_inplace_fills_write_through_views_and_bump_the_version():
    base = ember.zeros(2, 3)
    view = base.reshape(6)
    before = base._version
    assert view.uniform_(5.0, 6.0, generator=gen(20)) is view
    x = np_of(base)
    assert (x >= 5.0).all() and (x < 6.0).all() and base._version > before
    assert np.array_equal(x.reshape(6), np_of(ember.empty(6).uniform_(5.0, 6.0, generator=gen(20))))


def test_inplace_fills_initialise_leaves_without_recording():
    w = ember.zeros(4, requires_grad=True)
    w.normal_(0.0, 0.02, generator=gen(21))
    assert w.is_leaf and w.requires_grad and w.grad_fn is None
    assert 0 < np.abs(np_of(w)).max() < 0.2


def test_a_saved_tensor_refilled_in_place_is_caught_by_backward():
    x = ember.ones(3, requires_grad=True)
    y = x * 2
    z = y * y
    y.uniform_()
    with pytest.raises(ember.errors.AutogradError, match="modified by an in-place operation"):
        z.sum().backward()


def test_broadcast_views_cannot_be_filled():
    v = ember.broadcast_to(ember.zeros(1), (3,))
    with pytest.raises(EmberError, match="uniform_"):
        v.uniform_()


# -- errors ------------------------------------------------------------------------------------------------
ERRORS = [
    (lambda: ember.randint(5, 5, (3,)), EmberError, "randint", "low=5"),
    (lambda: ember.randint(0, 300, (3,), dtype=ember.uint8), EmberError, "randint", "uint8"),
    (lambda: ember.randint(10), EmberError, "randint", "size"),
    (lambda: ember.randint_like(ember.zeros(2), 4, 1), EmberError, "randint_like", "low=4"),
    (lambda: ember.rand(3, dtype=ember.int64), DTypeError, "rand", "int64"),
    (lambda: ember.randn(2, -1), ShapeError, "randn", "negative"),
    (lambda: ember.normal(0.0, -1.0, (2,)), EmberError, "normal", "std"),
    (lambda: ember.normal(ember.zeros(2), ember.tensor([1.0, -1.0])), EmberError, "normal", "std"),
    (lambda: ember.normal(ember.zeros(2), ember.ones(3)), ShapeError, "normal", "(2,)"),
    (lambda: ember.normal(0.0, 1.0), EmberError, "normal", "size"),
    (lambda: ember.bernoulli(ember.tensor([0.5, 1.5])), EmberError, "bernoulli", "[0, 1]"),
    (lambda: ember.bernoulli(ember.tensor([1, 0])), DTypeError, "bernoulli", "int64"),
    (lambda: ember.zeros(2).bernoulli_(2.0), EmberError, "bernoulli_", "2.0"),
    (lambda: ember.multinomial(ember.ones(2), 3), EmberError, "multinomial", "without replacement"),
    (lambda: ember.multinomial(ember.tensor([1.0, -1.0]), 1), EmberError, "multinomial", "non-negative"),
    (lambda: ember.multinomial(ember.tensor([[1.0, 1.0], [0.0, 0.0]]), 1), EmberError, "multinomial", "sum"),
    (lambda: ember.multinomial(ember.ones(2, 2, 2), 1), ShapeError, "multinomial", "(2, 2, 2)"),
    (lambda: ember.randperm(-1), EmberError, "randperm", "-1"),
    (lambda: ember.randperm(300, dtype=ember.uint8), EmberError, "randperm", "uint8"),
    (lambda: ember.zeros(2, dtype=ember.int32).uniform_(), DTypeError, "uniform_", "int32"),
    (lambda: ember.zeros(2).uniform_(2.0, 1.0), EmberError, "uniform_", "from=2.0"),
    (lambda: ember.zeros(2).exponential_(0.0), EmberError, "exponential_", "lambd"),
    (lambda: ember.zeros(2).random_(5, 5), EmberError, "random_", "low=5"),
    (lambda: dropout_mask((2,), 1.5), EmberError, "dropout", "1.5"),
    (lambda: ember.Generator().set_state(ember.zeros(2)), EmberError, "set_state", "int64"),
    (lambda: ember.Generator().set_state(ember.tensor([1, -1])), EmberError, "set_state", "offset"),
    (lambda: ember.manual_seed(2 ** 64), EmberError, "manual_seed", "seed"),
    (lambda: ember.manual_seed("x"), DTypeError, "manual_seed", "str"),
    (lambda: ember.rand(2, generator=object()), EmberError, "rand", "Generator"),
]


@pytest.mark.parametrize("call,cls,op,detail", ERRORS, ids=[f"{e[2]}-{i}" for i, e in enumerate(ERRORS)])
def test_bad_input_raises_ember_error_naming_the_op(call, cls, op, detail):
    with pytest.raises(cls) as info:
        call()
    msg = str(info.value)
    assert msg.startswith(op + ":") and detail in msg and "test_random.py" in msg


def test_generator_device_must_match_the_output_device():
    g = ember.Generator()
    g.device = ember.device("cpu:1")  # stands in for a generator of another device
    with pytest.raises(DeviceError, match="rand"):
        ember.rand(2, generator=g, device="cpu")


def test_sampling_goes_through_registered_primitives():
    from ember._core.primitive import PRIMITIVES

    assert PRIMITIVES["random_sample"].vjp is None and PRIMITIVES["multinomial"].vjp is None
    assert blocks_needed("uniform", (3, 5), ember.float64, (0.0, 1.0)) == 8
