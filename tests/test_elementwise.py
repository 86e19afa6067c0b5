"""Elementwise ops, driven by one table: values vs NumPy, gradients and JVPs vs finite differences,
vmap vs a loop, semantics (dtype promotion) vs PyTorch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

import ember
from ember.errors import DTypeError

from helpers import TORCH_DTYPES, assert_close, check_grad, check_jvp, check_vmap, np_of, t64, torch


@dataclass
class Op:
    name: str
    fn: Callable            # ember function
    ref: Callable           # NumPy reference
    arity: int = 1
    domain: tuple = (-2.0, 2.0)
    grad: bool = True
    rtol: float = 1e-6


def _sample(rng, shape, domain):
    lo, hi = domain
    return rng.uniform(lo, hi, size=shape)


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


OPS = [
    Op("add", ember.add, np.add, 2), Op("sub", ember.sub, np.subtract, 2), Op("mul", ember.mul, np.multiply, 2),
    Op("div", ember.div, np.divide, 2, (0.5, 2.0)), Op("pow", ember.pow, np.power, 2, (0.5, 2.0)),
    Op("maximum", ember.maximum, np.maximum, 2), Op("minimum", ember.minimum, np.minimum, 2),
    Op("atan2", ember.atan2, np.arctan2, 2, (0.3, 2.0)),
    Op("neg", ember.neg, np.negative), Op("abs", ember.abs, np.abs), Op("exp", ember.exp, np.exp),
    Op("log", ember.log, np.log, domain=(0.2, 3.0)), Op("sin", ember.sin, np.sin), Op("cos", ember.cos, np.cos),
    Op("tan", ember.tan, np.tan, domain=(-1.0, 1.0)), Op("tanh", ember.tanh, np.tanh),
    Op("sinh", ember.sinh, np.sinh), Op("cosh", ember.cosh, np.cosh),
    Op("asin", ember.asin, np.arcsin, domain=(-0.9, 0.9)), Op("acos", ember.acos, np.arccos, domain=(-0.9, 0.9)),
    Op("atan", ember.atan, np.arctan), Op("asinh", ember.asinh, np.arcsinh),
    Op("acosh", ember.acosh, np.arccosh, domain=(1.2, 3.0)), Op("atanh", ember.atanh, np.arctanh, domain=(-0.9, 0.9)),
    Op("sqrt", ember.sqrt, np.sqrt, domain=(0.2, 3.0)), Op("rsqrt", ember.rsqrt, lambda x: 1 / np.sqrt(x), domain=(0.2, 3.0)),
    Op("log1p", ember.log1p, np.log1p, domain=(-0.5, 2.0)), Op("expm1", ember.expm1, np.expm1),
    Op("erf", ember.erf, scipy.special.erf), Op("erfinv", ember.erfinv, scipy.special.erfinv, domain=(-0.9, 0.9)),
    Op("log2", ember.log2, np.log2, domain=(0.2, 3.0)), Op("log10", ember.log10, np.log10, domain=(0.2, 3.0)),
    Op("exp2", ember.exp2, np.exp2), Op("reciprocal", ember.reciprocal, np.reciprocal, domain=(0.5, 2.0)),
    Op("sigmoid", ember.sigmoid, scipy.special.expit), Op("silu", ember.silu, lambda x: x * scipy.special.expit(x)),
    Op("softplus", ember.softplus, lambda x: np.logaddexp(x, 0)),
    Op("gelu", ember.gelu, lambda x: 0.5 * x * (1 + scipy.special.erf(x / math.sqrt(2)))),
    Op("gelu_tanh", ember.gelu_tanh, _gelu_tanh), Op("relu", ember.relu, lambda x: np.maximum(x, 0)),
    Op("logit", ember.logit, scipy.special.logit, domain=(0.1, 0.9)), Op("square", ember.square, np.square),
    Op("floor", ember.floor, np.floor, grad=False), Op("ceil", ember.ceil, np.ceil, grad=False),
    Op("round", ember.round, np.rint, grad=False), Op("trunc", ember.trunc, np.trunc, grad=False),
    Op("sign", ember.sign, np.sign, grad=False),
    Op("remainder", ember.remainder, np.remainder, 2, (0.5, 3.0), grad=False),
    Op("floor_divide", ember.floor_divide, np.floor_divide, 2, (0.5, 3.0), grad=False),
    Op("fmod", ember.fmod, np.fmod, 2, (0.5, 3.0), grad=False),
    Op("hypot", ember.hypot, np.hypot, 2, (0.3, 2.0)),
    Op("logaddexp", ember.logaddexp, np.logaddexp, 2), Op("logaddexp2", ember.logaddexp2, np.logaddexp2, 2),
    Op("xlogy", ember.xlogy, scipy.special.xlogy, 2, (0.2, 2.0)),
    Op("frac", ember.frac, lambda x: x - np.trunc(x), domain=(0.1, 0.9)),
    Op("deg2rad", ember.deg2rad, np.deg2rad), Op("rad2deg", ember.rad2deg, np.rad2deg),
    Op("erfc", ember.erfc, scipy.special.erfc), Op("sinc", ember.sinc, np.sinc, domain=(0.1, 2.0)),
    Op("copysign", ember.copysign, np.copysign, 2, (0.3, 2.0)),
    Op("fmax", ember.fmax, np.fmax, 2), Op("fmin", ember.fmin, np.fmin, 2),
    Op("lgamma", ember.lgamma, scipy.special.gammaln, domain=(0.3, 3.0)),
    Op("digamma", ember.digamma, scipy.special.psi, domain=(0.3, 3.0)),
    Op("ldexp", ember.ldexp, lambda x, e: x * 2.0 ** e, 2, (-2.0, 2.0)),
]
IDS = [op.name for op in OPS]
SHAPES = [[(3, 4), (3, 4)], [(2, 3, 4), (4,)], [(3, 1), (1, 5)]]


def _inputs(op, rng, shapes):
    return [_sample(rng, s, op.domain) for s in shapes[:op.arity]]


@pytest.mark.parametrize("op", OPS, ids=IDS)
@pytest.mark.parametrize("shapes", SHAPES, ids=["same", "bcast", "outer"])
def test_values_match_numpy(op, shapes, rng):
    xs = _inputs(op, rng, shapes)
    for dtype, tol in [(np.float64, 1e-12), (np.float32, 1e-5)]:
        got = op.fn(*[ember.tensor(x.astype(dtype)) for x in xs])
        assert got.dtype is ember._core.dtypes.from_numpy(dtype)
        assert_close(got, op.ref(*xs), rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("op", [o for o in OPS if o.grad], ids=[o.name for o in OPS if o.grad])
def test_gradients_match_finite_differences_to_second_order(op, rng):
    xs = _inputs(op, rng, [(2, 3), (3,)])
    check_grad(op.fn, xs)


@pytest.mark.parametrize("op", [o for o in OPS if o.grad], ids=[o.name for o in OPS if o.grad])
def test_jvp_matches_finite_differences(op, rng):
    xs = _inputs(op, rng, [(2, 3), (2, 3)])
    check_jvp(op.fn, xs)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_vmap_matches_loop(op, rng):
    xs = _inputs(op, rng, [(4, 3), (3,)])
    check_vmap(op.fn, xs, [0] + [None] * (op.arity - 1))
    if op.arity == 2:
        xs = _inputs(op, rng, [(3,), (3, 4)])
        check_vmap(op.fn, xs, [None, 1])


@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       st.sampled_from(["add", "mul", "maximum", "sub"]))
def test_broadcasting_follows_numpy(shapes, name):
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(s) for s in shapes.input_shapes)
    op = next(o for o in OPS if o.name == name)
    got = op.fn(t64(a), t64(b))
    assert tuple(got.shape) == shapes.result_shape
    assert_close(got, op.ref(a, b))


_DT = [ember.bool, ember.uint8, ember.int8, ember.int32, ember.int64, ember.float16, ember.bfloat16,
       ember.float32, ember.float64]


@given(st.sampled_from(_DT), st.sampled_from(_DT), st.booleans(), st.booleans())
def test_promotion_matches_torch(da, db, a0d, b0d):
    shape_a = () if a0d else (2,)
    shape_b = () if b0d else (2,)
    a = ember.ones(shape_a, dtype=da)
    b = ember.ones(shape_b, dtype=db)
    got = (a + b).dtype
    want = torch.result_type(torch.ones(shape_a, dtype=TORCH_DTYPES[da]), torch.ones(shape_b, dtype=TORCH_DTYPES[db]))
    assert TORCH_DTYPES[got] == want


@pytest.mark.parametrize("dtype", _DT)
@pytest.mark.parametrize("scalar", [True, 3, 2.5])
def test_python_scalars_are_weak(dtype, scalar):
    got = (ember.ones(2, dtype=dtype) * scalar).dtype
    want = (torch.ones(2, dtype=TORCH_DTYPES[dtype]) * scalar).dtype
    assert TORCH_DTYPES[got] == want


def test_integer_true_division_gives_float():
    out = ember.tensor([1, 2, 3]) / 2
    assert out.dtype is ember.float32
    assert out.tolist() == [0.5, 1.0, 1.5]
    assert ember.exp(ember.tensor([0, 1])).dtype is ember.float32


@pytest.mark.parametrize("dtype", [ember.float16, ember.bfloat16])
def test_half_precision_transcendentals_match_torch(dtype, rng):
    x = rng.uniform(-2, 2, 64).astype(np.float32)
    torch_fns = {"exp": torch.exp, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "erf": torch.erf,
                 "gelu": torch.nn.functional.gelu}
    for name, torch_fn in torch_fns.items():
        got = getattr(ember, name)(ember.tensor(x, dtype=dtype))
        want = torch_fn(torch.tensor(x, dtype=TORCH_DTYPES[dtype]))
        assert got.dtype is dtype
        assert_close(got.float(), want.float().numpy(), rtol=1e-2, atol=1e-2)


def test_comparisons_and_logical_ops_give_bool():
    a = ember.tensor([1.0, 2.0, 3.0])
    assert (a > 1.5).tolist() == [False, True, True]
    assert ((a > 1.5) & (a < 2.5)).tolist() == [False, True, False]
    assert (~(a > 1.5)).tolist() == [True, False, False]
    assert ember.isnan(ember.tensor([float("nan"), 1.0])).tolist() == [True, False]
    assert (ember.tensor([6, 3]) & 3).tolist() == [2, 3]
    assert (ember.tensor([1, 2]) << 2).tolist() == [4, 8]


def test_bitwise_ops_reject_floats():
    with pytest.raises(ember.errors.DTypeError, match="bitwise_and"):
        ember.bitwise_and(ember.ones(2), ember.ones(2))


def test_clamp_gradient_passes_inside_the_closed_interval():
    x = ember.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    ember.clamp(x, -1.0, 1.0).sum().backward()
    tx = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    torch.clamp(tx, -1.0, 1.0).sum().backward()
    assert x.grad.tolist() == tx.grad.tolist()
    assert ember.clamp(ember.tensor([5.0]), max=2.0).tolist() == [2.0]


def test_where_promotes_and_differentiates():
    c = ember.tensor([True, False])
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = ember.where(c, x, 0)
    y.sum().backward()
    assert y.tolist() == [1.0, 0.0]
    assert x.grad.tolist() == [1.0, 0.0]
    check_grad(lambda a, b: ember.where(a > 0, a * b, b), [np.array([1.0, -1.0, 2.0]), np.array([0.5, 2.0, 3.0])])


def test_nan_to_num_matches_torch():
    x = np.array([np.nan, np.inf, -np.inf, 1.5], dtype=np.float32)
    assert_close(ember.nan_to_num(ember.tensor(x)), torch.nan_to_num(torch.tensor(x)).numpy())
    assert_close(ember.nan_to_num(ember.tensor(x), 0.0, 9.0, -9.0), [0.0, 9.0, -9.0, 1.5])


def test_div_rounding_modes_match_torch():
    a = np.array([-7.0, 7.0, -7.5, 7.5])
    b = np.array([2.0, -2.0, 2.0, 2.0])
    for mode in ["trunc", "floor"]:
        assert_close(ember.div(t64(a), t64(b), rounding_mode=mode),
                     torch.div(torch.tensor(a), torch.tensor(b), rounding_mode=mode).numpy())


def test_maximum_splits_gradient_at_ties_like_torch():
    a = ember.tensor([1.0, 2.0], requires_grad=True)
    b = ember.tensor([1.0, 1.0], requires_grad=True)
    ember.maximum(a, b).sum().backward()
    ta = torch.tensor([1.0, 2.0], requires_grad=True)
    tb = torch.tensor([1.0, 1.0], requires_grad=True)
    torch.maximum(ta, tb).sum().backward()
    assert a.grad.tolist() == ta.grad.tolist() and b.grad.tolist() == tb.grad.tolist()


def test_broadcast_mismatch_raises_shape_error_naming_op_and_shapes():
    with pytest.raises(ember.errors.ShapeError) as info:
        ember.ones(2, 3) + ember.ones(4)
    msg = str(info.value)
    assert "add" in msg and "(2, 3)" in msg and "(4,)" in msg and "test_elementwise.py" in msg


def test_formula_kernels_are_generated_from_the_dsl():
    prim = ember._core.primitive.PRIMITIVES["gelu_tanh"]
    assert prim.formula is not None
    source = ember._core.expr.compile_kernel(prim.formula, prim.params).source
    assert "f_exp" in source and "out=" in source
    x = np.linspace(-3, 3, 11)
    assert_close(ember.gelu_tanh(t64(x)), _gelu_tanh(x), rtol=1e-12)
    assert np_of(ember.gelu_tanh(t64(x))).dtype == np.float64


_INT_DT = [ember.uint8, ember.int8, ember.int16, ember.int32, ember.int64]


@given(st.sampled_from(_INT_DT), st.sampled_from(_INT_DT),
       st.sampled_from(["add", "sub", "mul", "maximum", "minimum", "floor_divide", "remainder", "lt", "eq",
                        "bitwise_and", "bitwise_xor"]),
       hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
def test_integer_ops_match_torch_values_and_dtypes(da, db, name, shapes):
    rng = np.random.default_rng(2)
    a = rng.integers(1, 10, shapes.input_shapes[0])
    b = rng.integers(1, 10, shapes.input_shapes[1])
    got = getattr(ember, name)(ember.tensor(a, dtype=da), ember.tensor(b, dtype=db))
    ta = torch.tensor(a, dtype=TORCH_DTYPES[da])
    tb = torch.tensor(b, dtype=TORCH_DTYPES[db])
    want = getattr(torch, name)(ta, tb)
    assert TORCH_DTYPES[got.dtype] == want.dtype
    np.testing.assert_array_equal(np_of(got), want.numpy())


@given(st.sampled_from([ember.float16, ember.bfloat16, ember.float32, ember.float64]),
       st.sampled_from(["add", "mul", "div", "sub"]))
def test_float_dtypes_keep_their_precision_like_torch(dtype, name):
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.5, 2.0, (2, 8)).astype(np.float32)
    got = getattr(ember, name)(ember.tensor(a, dtype=dtype), ember.tensor(b, dtype=dtype))
    want = getattr(torch, name)(torch.tensor(a, dtype=TORCH_DTYPES[dtype]), torch.tensor(b, dtype=TORCH_DTYPES[dtype]))
    assert TORCH_DTYPES[got.dtype] == want.dtype
    np.testing.assert_allclose(np_of(got.float()), want.float().numpy(), rtol=1e-2 if dtype.itemsize == 2 else 1e-6)


@pytest.mark.parametrize("fn", [ember.relu, lambda t: ember.where(t > 0, t, 0.0), lambda t: ember.clamp(t, -0.5, 0.5),
                                lambda t: ember.maximum(t, ember.zeros(4)), ember.gelu_tanh, ember.sigmoid])
def test_gradients_keep_the_input_dtype(fn):
    x = ember.randn(4, requires_grad=True)
    (g,) = ember.autograd.grad(fn(x).sum(), [x])
    assert g.dtype is ember.float32


def test_integer_relu_and_clamp_stay_integer_like_torch():
    assert ember.relu(ember.tensor([1, -2])).dtype is ember.int64
    assert ember.clamp(ember.tensor([1, 5]), 0, 3).tolist() == [1, 3]


# -- lerp (three operands) ---------------------------------------------------------------------------

@given(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3),
       st.sampled_from([np.float32, np.float64]))
def test_lerp_matches_numpy_and_torch_with_broadcasting(shapes, dtype):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s).astype(dtype) for s in shapes.input_shapes[:2])
    w = rng.uniform(-0.5, 1.5, shapes.input_shapes[2]).astype(dtype)
    got = ember.lerp(ember.tensor(a), ember.tensor(b), ember.tensor(w))
    assert tuple(got.shape) == shapes.result_shape and got.dtype is ember._core.dtypes.from_numpy(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert_close(got, a + w * (b - a), rtol=tol, atol=tol * 10)
    want = torch.lerp(*torch.broadcast_tensors(torch.tensor(a), torch.tensor(b), torch.tensor(w))).numpy()
    assert_close(got, want, rtol=tol, atol=tol)


def test_lerp_gives_the_end_exactly_at_weight_one_and_takes_python_weights():
    start, end = ember.tensor([0.1, 1e8, -3.3]), ember.tensor([0.7, 1.0, 2.9])
    assert np_of(ember.lerp(start, end, 1.0)).tolist() == np_of(end).tolist()
    t = start.clone()
    t.lerp_(end, 0.25)
    assert_close(t, torch.lerp(torch.tensor(np_of(start)), torch.tensor(np_of(end)), 0.25).numpy())
    assert_close(start.lerp(end, 0.0), np_of(start))


def test_lerp_differentiates_and_batches(rng):
    xs = [rng.standard_normal((2, 3)), rng.standard_normal((3,)), rng.uniform(0, 1, (2, 3))]
    check_grad(ember.lerp, xs)
    check_jvp(ember.lerp, [rng.standard_normal((2, 3)) for _ in range(2)] + [rng.uniform(0, 1, (2, 3))])
    check_vmap(ember.lerp, xs, [0, None, 0])
    fn = ember.jit(ember.lerp)
    assert_close(fn(*[t64(x) for x in xs]), np_of(ember.lerp(*[t64(x) for x in xs])), rtol=1e-12)


@pytest.mark.parametrize("name", ["fmod", "hypot", "logaddexp", "logaddexp2", "xlogy"])
def test_new_binary_ops_match_torch_at_the_edges(name):
    special = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 1e30, -7.0], np.float32)
    x, y = np.meshgrid(special, special)
    theirs = getattr(torch, name)(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    fn = getattr(ember, name)
    np.testing.assert_allclose(fn(ember.tensor(x), ember.tensor(y)).numpy(), theirs, rtol=1e-6, equal_nan=True)
    fused = ember.jit(lambda a, b: fn(a, b) * 2.0)  # one generated C kernel
    assert any(n.prim.name.startswith("fused_") for n in fused.lower(ember.tensor(x), ember.tensor(y)).graph.nodes)
    np.testing.assert_allclose(fused(ember.tensor(x), ember.tensor(y)).numpy(), theirs * 2, rtol=1e-6,
                               equal_nan=True)
    ints = np.array([7, -7, 3, -3]), np.array([3, 3, -2, -2])
    if name == "fmod":  # integers keep their dtype, the sign of the dividend
        got = ember.fmod(ember.tensor(ints[0]), ember.tensor(ints[1]))
        assert got.dtype is ember.int64 and got.tolist() == torch.fmod(*map(torch.tensor, ints)).tolist()


def test_new_ops_compile_and_fuse():
    def f(x, y):
        return ember.logaddexp(ember.hypot(x, y), ember.xlogy(y, x.abs() + 1)).frac() + ember.fmod(x, 0.7)

    x, y = (ember.tensor(np.random.default_rng(i).standard_normal((4, 5)).astype(np.float32)) for i in (1, 2))
    jitted = ember.jit(f)
    assert_close(jitted(x, y), np_of(f(x, y)), rtol=1e-5, atol=1e-6)
    assert any(n.prim.name.startswith("fused_") for n in jitted.lower(x, y).graph.nodes)


def test_isclose_allclose_equal_match_torch():
    a = np.array([1.0, np.inf, -np.inf, np.nan, 1.0, 0.0, 5.0], np.float32)
    b = np.array([1.0 + 1e-6, np.inf, np.inf, np.nan, 1.1, 1e-9, 5.0 + 4e-5], np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    for kwargs in [{}, {"equal_nan": True}, {"rtol": 0.2, "atol": 0.0}, {"rtol": 0.0, "atol": 1e-3}]:
        assert ember.isclose(ember.tensor(a), ember.tensor(b), **kwargs).tolist() == \
            torch.isclose(ta, tb, **kwargs).tolist()
        for sl in (slice(0, 2), slice(0, 4), slice(None)):
            assert ember.allclose(ember.tensor(a[sl]), ember.tensor(b[sl]), **kwargs) == \
                torch.allclose(ta[sl], tb[sl], **kwargs)
    assert ember.tensor([1.0, 2.0]).isclose(2.0).tolist() == [False, True]
    assert ember.equal(ember.tensor([1, 2]), ember.tensor([1, 2]))
    assert not ember.equal(ember.tensor([1, 2]), ember.tensor([1, 3]))
    assert not ember.tensor([1.0]).equal(ember.tensor([1.0, 1.0]))


@pytest.mark.parametrize("name", ["copysign", "fmax", "fmin", "heaviside"])
def test_more_binary_ops_match_torch_at_the_edges(name):
    special = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, -7.0], np.float32)
    x, y = np.meshgrid(special, special)
    theirs = getattr(torch, name)(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    fn = getattr(ember, name)
    ours = fn(ember.tensor(x), ember.tensor(y)).numpy()
    np.testing.assert_array_equal(ours, theirs)
    if name in ("copysign", "heaviside"):  # (the sign of a zero from fmax(0.0, -0.0) is unspecified)
        assert np.array_equal(np.signbit(ours), np.signbit(theirs))
    fused = ember.jit(lambda a, b: fn(a, b) * 2.0)
    np.testing.assert_array_equal(fused(ember.tensor(x), ember.tensor(y)).numpy(), theirs * 2)


def test_more_unary_ops_and_predicates_match_torch():
    x = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 30.0, -30.0, 1e-3], np.float32)
    for name in ("erfc", "sinc", "signbit", "isposinf", "isneginf"):
        ours = getattr(ember, name)(ember.tensor(x)).numpy()
        theirs = getattr(torch, name)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7, equal_nan=True)
        assert ours.dtype == theirs.dtype
    assert ember.erfc(ember.tensor([10.0], dtype=ember.float64)).item() > 0  # 1 - erf(10) would be 0


def test_addcmul_addcdiv_clamp_min_max_float_power_match_torch(rng):
    a, b, c = (rng.uniform(0.5, 2.0, s) for s in [(3, 4), (4,), (3, 1)])
    for name in ("addcmul", "addcdiv"):
        ours = getattr(ember, name)(t64(a), t64(b), t64(c), value=-0.5)
        assert_close(ours, getattr(torch, name)(*map(torch.from_numpy, (a, b, c)), value=-0.5).numpy())
        check_grad(lambda x, y, z, n=name: getattr(ember, n)(x, y, z, value=0.7), [a, b, c])
        in_place = t64(a)
        getattr(in_place, name + "_")(t64(b), t64(c), value=2)
        assert_close(in_place, getattr(torch, name)(*map(torch.from_numpy, (a, b, c)), value=2).numpy())
    assert_close(ember.clamp_min(t64(a), 1.0), np.maximum(a, 1.0))
    assert_close(t64(a).clamp_max(1.0), np.minimum(a, 1.0))
    got = ember.float_power(ember.tensor([2, 3]), 0.5)
    assert got.dtype is ember.float64
    np.testing.assert_allclose(got.numpy(), torch.float_power(torch.tensor([2, 3]), 0.5).numpy())
    x = ember.tensor([1.5, -2.0])
    assert (ember.numel(ember.ones(2, 3)), ember.is_tensor(x), ember.is_tensor(1.5)) == (6, True, False)
    assert ember.is_floating_point(x) and not ember.is_complex(x)
    assert ember.sgn(x).tolist() == [1.0, -1.0] and ember.positive(x).tolist() == [1.5, -2.0]
    assert ember.not_equal(x, 1.5).tolist() == [False, True] and x.greater_equal(0).tolist() == [True, False]


def test_special_and_integer_functions_match_torch(rng):
    x = rng.uniform(0.3, 4.0, (3, 4))
    tx = torch.from_numpy(x)
    for n in (0, 1, 3):
        assert_close(ember.polygamma(n, t64(x)), torch.polygamma(n, tx).numpy(), rtol=1e-10)
    check_grad(lambda t: ember.polygamma(1, t), [x])  # its derivative is polygamma(2, x), and so on
    assert_close(ember.mvlgamma(t64(x + 2), 3), torch.mvlgamma(tx + 2, 3).numpy())
    with pytest.raises(DTypeError, match="polygamma"):
        ember.polygamma(-1, t64(x))
    jitted = ember.jit(lambda t: ember.lgamma(t) * 2 + ember.digamma(t))
    assert_close(jitted(t64(x)), 2 * scipy.special.gammaln(x) + scipy.special.psi(x))
    a, b = rng.integers(0, 60, 10), rng.integers(0, 60, 10)
    for name in ("gcd", "lcm"):
        ours = getattr(ember, name)(ember.tensor(a), ember.tensor(b))
        np.testing.assert_array_equal(ours.numpy(), getattr(torch, name)(torch.from_numpy(a), torch.from_numpy(b)).numpy())
    with pytest.raises(DTypeError, match="gcd"):
        ember.gcd(ember.ones(2), ember.ones(2))
    f, g = (rng.standard_normal(6).astype(np.float32) for _ in range(2))
    np.testing.assert_array_equal(ember.nextafter(ember.tensor(f), ember.tensor(g)).numpy(),
                                  torch.nextafter(torch.from_numpy(f), torch.from_numpy(g)).numpy())


def test_exp2_log2_log10_are_exact_at_powers_and_frexp_matches_torch(rng):
    powers = np.arange(-60, 61, dtype=np.float64)
    np.testing.assert_array_equal(ember.exp2(t64(powers)).numpy(), np.exp2(powers))  # exp(x ln 2) was not
    np.testing.assert_array_equal(ember.log2(t64(np.exp2(powers))).numpy(), powers)
    np.testing.assert_array_equal(ember.log10(t64(10.0 ** np.arange(0, 20))).numpy(), np.arange(0, 20.0))
    fused = ember.jit(lambda t: ember.exp2(t) * 2.0)  # the generated C kernel uses the same functions
    np.testing.assert_array_equal(fused(ember.tensor(powers.astype(np.float32))).numpy(),
                                  np.exp2(powers.astype(np.float32)) * 2)
    special = np.array([8.0, 0.3, -5.0, 0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 3.4e38, 1.0, 0.5,
                        2.0 ** -149], np.float32)
    wide = rng.standard_normal(500) * 10.0 ** rng.integers(-300, 300, 500)
    for values in (special, wide, np.array([1e-310, 5e-324, 1.7e308])):
        ours, theirs = ember.frexp(ember.tensor(values)), torch.frexp(torch.from_numpy(values))
        np.testing.assert_array_equal(ours.mantissa.numpy(), theirs.mantissa.numpy())
        np.testing.assert_array_equal(ours.exponent.numpy(), theirs.exponent.numpy())
        assert ours.exponent.dtype is ember.int32
    check_grad(lambda t: ember.frexp(t).mantissa, [rng.uniform(0.6, 0.9, 5) * 2.0 ** rng.integers(-5, 5, 5)])
