"""Reductions and scans, driven by op tables: values vs NumPy over random shapes and dims, gradients and
JVPs vs finite differences, vmap vs a loop, semantics (dtypes, shapes, namedtuples, ties) vs PyTorch,
and errors."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

import ember
from ember.errors import DTypeError, EmberError, IndexingError
from ember.func import grad, jvp, vmap

from helpers import TORCH_DTYPES, assert_close, check_grad, check_jvp, check_vmap, np_of, t64, torch


@dataclass
class Red:
    name: str
    fn: Callable            # ember: fn(x, dim, keepdim)
    ref: Callable           # NumPy: ref(a, axis, keepdims)
    sample: str = "normal"  # "normal", "distinct" (no ties, no zeros) or "positive"
    smooth: bool = True     # second derivatives checked


def _np_norm(p):
    def ref(a, axis, keepdims):
        m = np.abs(a)
        if p == math.inf:
            return np.amax(m, axis=axis, keepdims=keepdims)
        if p == -math.inf:
            return np.amin(m, axis=axis, keepdims=keepdims)
        if p == 0:
            return np.sum(m != 0, axis=axis, keepdims=keepdims).astype(a.dtype)
        return np.sum(m ** p, axis=axis, keepdims=keepdims) ** (1 / p)

    return ref


def _norm(p):
    return lambda x, dim, keepdim: ember.norm(x, p, dim, keepdim)


REDUCTIONS = [
    Red("sum", ember.sum, np.sum), Red("mean", ember.mean, np.mean),
    Red("prod", ember.prod, np.prod, "positive"),
    Red("amax", lambda x, d, k: ember.amax(x, d, k), np.amax, "distinct", False),
    Red("amin", lambda x, d, k: ember.amin(x, d, k), np.amin, "distinct", False),
    Red("var", lambda x, d, k: ember.var(x, d, keepdim=k), lambda a, axis, keepdims: np.var(a, axis, ddof=1,
                                                                                              keepdims=keepdims)),
    Red("var_c0", lambda x, d, k: ember.var(x, d, keepdim=k, correction=0), np.var),
    Red("std", lambda x, d, k: ember.std(x, d, keepdim=k),
        lambda a, axis, keepdims: np.std(a, axis, ddof=1, keepdims=keepdims)),
    Red("logsumexp", ember.logsumexp, lambda a, axis, keepdims: np.reshape(  # scipy gives (1,) for 0-d
        scipy.special.logsumexp(a, axis, keepdims=keepdims), np.sum(a, axis, keepdims=keepdims).shape)),
    Red("norm_fro", _norm("fro"), _np_norm(2)), Red("norm_1", _norm(1), _np_norm(1), "distinct", False),
    Red("norm_inf", _norm(math.inf), _np_norm(math.inf), "distinct", False),
    Red("norm_-inf", _norm(-math.inf), _np_norm(-math.inf), "distinct", False),
    Red("norm_3", _norm(3), _np_norm(3), "distinct"), Red("norm_0.5", _norm(0.5), _np_norm(0.5), "distinct"),
]
RED_IDS = [r.name for r in REDUCTIONS]


def _sample(rng, shape, kind):
    if kind == "positive":
        return rng.uniform(0.5, 1.5, shape)
    if kind == "distinct":  # well separated values, away from zero, random signs
        n = int(np.prod(shape))
        mags = 0.5 + 0.25 * rng.permutation(n)
        return (mags * rng.choice([-1.0, 1.0], n)).reshape(shape)
    return rng.standard_normal(shape)


@st.composite
def shapes_and_dims(draw, max_dims=4):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=1, max_side=4))
    n = len(shape)
    single = st.integers(-n, n - 1) if n else st.sampled_from([0, -1])
    several = st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n).map(tuple) if n else \
        st.just(None)
    return shape, draw(st.one_of(st.none(), single, several)), draw(st.booleans())


def _np_axis(dim, ndim):
    if dim is None or ndim == 0:
        return None
    return tuple(d % ndim for d in dim) if isinstance(dim, tuple) else dim % ndim


@pytest.mark.parametrize("op", REDUCTIONS, ids=RED_IDS)
@given(case=shapes_and_dims())
def test_values_and_shapes_match_numpy(op, case):
    shape, dim, keepdim = case
    a = _sample(np.random.default_rng(len(shape)), shape, op.sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # var over one element is NaN, with a warning
        got = op.fn(t64(a), dim, keepdim)
        want = np.asarray(op.ref(a, _np_axis(dim, a.ndim), keepdims=keepdim))
    assert tuple(got.shape) == want.shape
    assert got.dtype is ember.float64
    assert_close(got, want, rtol=1e-10, atol=1e-12)


GRAD_DIMS = [(1, False), ((0, 2), True), (None, False), (-1, True)]


@pytest.mark.parametrize("op", REDUCTIONS, ids=RED_IDS)
@pytest.mark.parametrize("dim,keepdim", GRAD_DIMS, ids=["d1", "d02k", "all", "dlastk"])
def test_gradients_match_finite_differences(op, dim, keepdim, rng):
    x = _sample(rng, (2, 3, 2), op.sample)
    check_grad(lambda t: op.fn(t, dim, keepdim), [x], second_order=op.smooth)


@pytest.mark.parametrize("op", REDUCTIONS, ids=RED_IDS)
@pytest.mark.parametrize("dim,keepdim", GRAD_DIMS[:3], ids=["d1", "d02k", "all"])
def test_jvp_matches_finite_differences(op, dim, keepdim, rng):
    x = _sample(rng, (2, 3, 2), op.sample)
    check_jvp(lambda t: op.fn(t, dim, keepdim), [x])


@pytest.mark.parametrize("op", REDUCTIONS, ids=RED_IDS)
@pytest.mark.parametrize("in_dim", [0, 1, 2])
def test_vmap_matches_loop(op, in_dim, rng):
    x = _sample(rng, (3, 4, 2), op.sample)
    check_vmap(lambda t: op.fn(t, 0, False), [x], [in_dim])
    check_vmap(lambda t: op.fn(t, None, True), [x], [in_dim])


# -- ops along one dimension: max/min with indices, scans ---------------------------------------------------
@dataclass
class Along:
    name: str
    fn: Callable            # ember: fn(x, dim)
    ref: Callable           # NumPy: ref(a, axis)
    sample: str = "normal"
    grad: bool = True


ALONG = [
    Along("max_values", lambda x, d: ember.max(x, d).values, np.amax, "distinct"),
    Along("min_values", lambda x, d: ember.min(x, d).values, np.amin, "distinct"),
    Along("max_indices", lambda x, d: ember.max(x, d).indices, np.argmax, "distinct", False),
    Along("argmax", ember.argmax, np.argmax, grad=False), Along("argmin", ember.argmin, np.argmin, grad=False),
    Along("cumsum", ember.cumsum, np.cumsum), Along("cumprod", ember.cumprod, np.cumprod),
]
ALONG_IDS = [a.name for a in ALONG]


@pytest.mark.parametrize("op", ALONG, ids=ALONG_IDS)
@given(case=shapes_and_dims())
def test_along_values_match_numpy(op, case):
    shape, dim, _ = case
    dim = dim[0] if isinstance(dim, tuple) else (0 if dim is None else dim)
    a = _sample(np.random.default_rng(len(shape)), shape, op.sample)
    got = op.fn(t64(a), dim)
    want = np.asarray(op.ref(a, dim % a.ndim) if a.ndim else op.ref(a.reshape(1), 0).reshape(()))
    assert tuple(got.shape) == want.shape
    assert_close(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("op", [a for a in ALONG if a.grad], ids=[a.name for a in ALONG if a.grad])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_along_gradients_and_jvps_match_finite_differences(op, dim, rng):
    x = _sample(rng, (3, 4, 2), op.sample)
    check_grad(lambda t: op.fn(t, dim), [x])
    check_jvp(lambda t: op.fn(t, dim), [x])


@pytest.mark.parametrize("op", ALONG, ids=ALONG_IDS)
@pytest.mark.parametrize("in_dim", [0, 2])
def test_along_vmap_matches_loop(op, in_dim, rng):
    x = _sample(rng, (3, 4, 2), op.sample)
    check_vmap(lambda t: op.fn(t, 0), [x], [in_dim])
    check_vmap(lambda t: op.fn(t, -1), [x], [in_dim])


@pytest.mark.parametrize("fn", [ember.argmax, ember.argmin])
@pytest.mark.parametrize("keepdim", [False, True])
def test_flat_argmax_under_vmap_matches_loop(fn, keepdim, rng):
    x = rng.standard_normal((3, 2, 4))
    check_vmap(lambda t: fn(t, None, keepdim), [x], [1])


@pytest.mark.parametrize("fn", [ember.all, ember.any, ember.count_nonzero], ids=["all", "any", "count"])
@pytest.mark.parametrize("in_dim", [0, 2])
def test_logical_reductions_under_vmap_match_loop(fn, in_dim, rng):
    x = np.where(rng.uniform(size=(3, 4, 2)) < 0.3, 0.0, 1.0)
    x[0] = 1.0
    check_vmap(lambda t: fn(t, 0).long(), [x], [in_dim])
    check_vmap(lambda t: fn(t).long(), [x], [in_dim])


def test_max_with_dim_under_vmap_keeps_the_namedtuple(rng):
    x = rng.standard_normal((3, 4, 2))
    out = vmap(lambda t: ember.max(t, 0), in_dims=2)(t64(x))
    assert type(out).__name__ == "max" and out._fields == ("values", "indices")
    assert_close(out.values, np.amax(x, axis=0).T)
    assert np_of(out.indices).tolist() == np.argmax(x, axis=0).T.tolist()


def test_vmap_of_gradient_through_max_values_matches_loop(rng):
    x = _sample(rng, (3, 4), "distinct")
    g = vmap(grad(lambda t: (ember.max(t, 0).values * t).sum()))(t64(x))
    for i in range(3):
        tx = torch.tensor(x[i], requires_grad=True)
        (torch.max(tx, 0).values * tx).sum().backward()
        assert_close(g[i], tx.grad.numpy())


def test_vmap_with_unbatched_input_inside_max_values(rng):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    out = vmap(lambda b: ember.max(t64(x) * b, 0).values)(t64(w))
    assert_close(out, np.stack([np.amax(x * wi, 0) for wi in w]))


# -- semantics against PyTorch -----------------------------------------------------------------------------
DTYPES = [ember.bool, ember.uint8, ember.int8, ember.int32, ember.int64, ember.float16, ember.bfloat16,
          ember.float32, ember.float64]


def _pair(data, dtype):
    a = np.asarray(data)
    return ember.tensor(a, dtype=dtype), torch.tensor(a).to(TORCH_DTYPES[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=[d.name for d in DTYPES])
def test_result_dtypes_match_torch(dtype):
    x, tx = _pair([[1, 0, 3], [2, 1, 1]], dtype)
    cases = [("sum", lambda m, t: m.sum(t, 1)), ("prod", lambda m, t: m.prod(t, 0)),
             ("cumsum", lambda m, t: m.cumsum(t, 1)), ("cumprod", lambda m, t: m.cumprod(t, 0)),
             ("all", lambda m, t: m.all(t, 1)), ("any", lambda m, t: m.any(t)),
             ("count_nonzero", lambda m, t: m.count_nonzero(t, 0)), ("amax", lambda m, t: m.amax(t, 0)),
             ("min_indices", lambda m, t: m.min(t, 1).indices), ("max_values", lambda m, t: m.max(t, 0).values)]
    if dtype is ember.bool:  # PyTorch has no bool argmax
        with pytest.raises(DTypeError, match="argmax: does not support bool"):
            x.argmax(1)
    else:
        cases += [("argmax", lambda m, t: m.argmax(t, 1))]
    for name, call in cases:
        got, want = call(ember, x), call(torch, tx)
        assert TORCH_DTYPES[got.dtype] == want.dtype, name
        assert_close(got.double(), want.double().numpy(), msg=name)


@pytest.mark.parametrize("dtype", [ember.float16, ember.bfloat16])
def test_half_precision_accumulates_in_float32(dtype):
    ones = ember.ones(4096, dtype=dtype)
    assert ones.sum().dtype is dtype and ones.sum().item() == 4096  # float16 steps stall at 2048
    assert ones.cumsum(0).dtype is dtype and ones.cumsum(0).tolist()[-1] == 4096
    big = ember.full((10000,), 10.0, dtype=dtype)
    assert big.mean().dtype is dtype and big.mean().item() == 10.0  # the sum alone overflows float16
    assert big.var().item() == 0.0 and big.norm().item() == pytest.approx(1000.0, rel=1e-2)


@given(shapes_and_dims(max_dims=3))
def test_keepdim_shapes_and_values_match_torch(case):
    shape, dim, keepdim = case
    a = np.random.default_rng(0).standard_normal(shape)
    x, tx = t64(a), torch.tensor(a)
    tdim = tuple(range(a.ndim)) if dim is None else dim
    pairs = [(x.sum(dim, keepdim), tx.sum(tdim, keepdim)), (x.mean(dim, keepdim), tx.mean(tdim, keepdim)),
             (x.amax(dim, keepdim), tx.amax(tdim, keepdim)),
             (x.var(dim, keepdim=keepdim, correction=0), tx.var(tdim, keepdim=keepdim, correction=0)),
             (x.logsumexp(dim, keepdim), tx.logsumexp(tdim, keepdim)), (x.norm(2, dim, keepdim),
                                                                         tx.norm(2, tdim, keepdim)),
             (x.all(dim, keepdim), tx.all(tdim, keepdim))]
    if not isinstance(dim, tuple):
        pairs += [(x.argmax(dim, keepdim), tx.argmax(dim, keepdim))]
    if isinstance(dim, int):
        pairs += [(x.max(dim, keepdim).values, tx.max(dim, keepdim).values),
                  (x.min(dim, keepdim).indices, tx.min(dim, keepdim).indices)]
    for got, want in pairs:
        assert tuple(got.shape) == tuple(want.shape)
        assert_close(got.double(), want.double().numpy(), rtol=1e-10)


def test_max_and_min_along_a_dim_return_namedtuples_like_torch():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 0.0]])
    out = t64(a).max(dim=1)
    values, indices = out
    assert out._fields == ("values", "indices") and type(out).__name__ == "max"
    assert values is out.values and indices is out.indices
    tout = torch.tensor(a).max(dim=1)
    assert indices.tolist() == tout.indices.tolist() == [1, 0]  # the first of tied maxima
    low = t64(a).min(1, keepdim=True)
    assert type(low).__name__ == "min" and tuple(low.values.shape) == (2, 1)
    assert low.indices.tolist() == torch.tensor(a).min(1, keepdim=True).indices.tolist()
    scalar = ember.max(t64(3.0), 0)
    assert scalar.values.item() == 3.0 and scalar.indices.item() == 0 and scalar.indices.shape == ()


def test_max_with_a_tensor_is_the_elementwise_maximum():
    assert ember.max(t64([1.0, 5.0]), t64([3.0, 2.0])).tolist() == [3.0, 5.0]
    assert t64([1.0, 5.0]).min(t64([3.0, 2.0])).tolist() == [1.0, 2.0]


def _torch_grad(fn, a):
    t = torch.tensor(a, requires_grad=True)
    fn(t).sum().backward()
    return np.zeros_like(a) if t.grad is None else t.grad.numpy()  # None: no dependence (norm with p=0)


def _ember_grad(fn, a):
    x = t64(a).requires_grad_()
    fn(x).sum().backward()
    return np_of(x.grad)


TIES = np.array([[1.0, 4.0, 4.0, 4.0], [2.0, 2.0, -1.0, -1.0]])


@pytest.mark.parametrize("name,call", [
    ("amax_dim", lambda m, t: m.amax(t, 1)), ("amin_dim", lambda m, t: m.amin(t, 1)),
    ("amax_all", lambda m, t: m.amax(t)), ("max_all", lambda m, t: m.max(t)), ("min_all", lambda m, t: m.min(t)),
    ("max_dim", lambda m, t: m.max(t, 1).values), ("min_dim", lambda m, t: m.min(t, 1).values),
    ("max_dim0", lambda m, t: m.max(t, 0).values), ("norm_inf", lambda m, t: m.norm(t, math.inf, 1)),
])
def test_gradients_at_ties_match_torch(name, call):
    got = _ember_grad(lambda x: call(ember, x), TIES)
    want = _torch_grad(lambda t: call(torch, t), TIES)
    assert_close(got, want, rtol=0, atol=0, msg=name)


PROD_ZEROS = [
    np.array([[2.0, 0.0, 3.0, 1.5], [1.0, 2.0, 3.0, 4.0]]),    # one zero in a row
    np.array([[2.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 4.0]]),    # two and three zeros
]


@pytest.mark.parametrize("x", PROD_ZEROS, ids=["one_zero", "more_zeros"])
@pytest.mark.parametrize("dim", [1, 0, None])
def test_prod_gradient_is_exact_with_zeros_to_second_order(x, dim):
    got = _ember_grad(lambda t: ember.prod(t, dim), x)
    want = _torch_grad(lambda t: torch.prod(t, dim) if dim is not None else torch.prod(t), x)
    assert_close(got, want, rtol=1e-12, atol=0)
    check_grad(lambda t: ember.prod(t, dim), [x])
    check_jvp(lambda t: ember.prod(t, dim), [x])


@pytest.mark.parametrize("reverse_rows", [False, True])
@pytest.mark.parametrize("dim", [0, 1])
def test_cumprod_gradient_is_exact_with_zeros(reverse_rows, dim):
    x = np.array([[2.0, 0.0, 3.0, 0.0, 1.5], [0.5, 2.0, 0.0, 4.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    x = x[:, ::-1].copy() if reverse_rows else x
    w = np.random.default_rng(dim).standard_normal(x.shape)
    got = _ember_grad(lambda t: ember.cumprod(t, dim) * t64(w), x)
    want = _torch_grad(lambda t: torch.cumprod(t, dim) * torch.tensor(w), x)
    assert_close(got, want, rtol=1e-12, atol=1e-12)
    check_grad(lambda t: ember.cumprod(t, dim), [x], second_order=False)
    check_jvp(lambda t: ember.cumprod(t, dim), [x])


@pytest.mark.parametrize("p", ["fro", 2, 1, math.inf, -math.inf, 3, 0.5, 0])
def test_norm_gradient_at_zero_is_zero_like_torch(p):
    zeros = np.zeros((2, 3))
    assert_close(_ember_grad(lambda t: ember.norm(t, p, 1), zeros),
                 _torch_grad(lambda t: torch.norm(t, p, 1), zeros), rtol=0, atol=0)
    if p not in ("fro", 2, 1, 0):
        return
    some = np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 0.0]])
    assert_close(_ember_grad(lambda t: ember.norm(t, p, 1), some),
                 _torch_grad(lambda t: torch.norm(t, p, 1), some), rtol=1e-12, atol=0)


def test_norm_with_small_p_has_zero_gradient_at_zero_elements_like_torch():
    x = np.array([0.0, 1.0, 2.0])
    assert_close(_ember_grad(lambda t: ember.norm(t, 0.5), x), _torch_grad(lambda t: torch.norm(t, 0.5), x))


def test_var_and_std_arguments_match_torch(rng):
    a = rng.standard_normal((3, 5))
    x, tx = t64(a), torch.tensor(a)
    pairs = [(x.var(0, correction=0), tx.var(0, correction=0)), (x.var(1, False), tx.var(1, False)),
             (ember.var(x, False), torch.var(tx, False)), (x.var(1, unbiased=True, keepdim=True),
                                                           tx.var(1, unbiased=True, keepdim=True)),
             (x.std((0, 1), correction=2), tx.std((0, 1), correction=2)), (x.std(), tx.std())]
    for got, want in pairs:
        assert tuple(got.shape) == tuple(want.shape)
        assert_close(got, want.numpy(), rtol=1e-12)
    for ours, theirs in [(ember.var_mean, torch.var_mean), (ember.std_mean, torch.std_mean)]:
        got, want = ours(x, 1, correction=0), theirs(tx, 1, correction=0)
        assert isinstance(got, tuple) and len(got) == 2
        for g, w in zip(got, want):
            assert_close(g, w.numpy(), rtol=1e-12)


def test_var_with_no_degrees_of_freedom_is_nan_with_a_warning():
    with pytest.warns(RuntimeWarning, match="degrees of freedom"):
        out = ember.var(t64([1.0, 2.0]), 0, correction=2)
    assert math.isinf(out.item()) or math.isnan(out.item())
    with pytest.warns(RuntimeWarning):
        assert math.isnan(ember.var(t64([1.0])).item())


def test_logsumexp_is_stable_and_matches_torch():
    a = np.array([[1000.0, 1000.0, -1000.0], [-np.inf, -np.inf, -np.inf], [np.inf, 1.0, 0.0], [-1e4, -1e4, 0]])
    got = ember.logsumexp(t64(a), 1)
    assert_close(got, torch.logsumexp(torch.tensor(a), 1).numpy(), rtol=1e-12)
    assert got.tolist()[0] == pytest.approx(1000 + math.log(2))
    x = t64(a[:1]).requires_grad_()
    ember.logsumexp(x, 1).sum().backward()
    assert_close(x.grad, [[0.5, 0.5, 0.0]], atol=1e-12)
    ints = ember.logsumexp(ember.tensor([1, 2]), 0)
    assert ints.dtype is ember.float32
    assert_close(ints, torch.logsumexp(torch.tensor([1, 2]), 0).numpy())
    assert ember.logsumexp(ember.zeros(0, 2), 0).tolist() == [-math.inf, -math.inf]


def test_all_any_and_count_nonzero_match_torch():
    a = np.array([[0.0, np.nan, 2.0], [0.0, 0.0, 0.0], [1.0, -1.0, 3.0]])
    x, tx = t64(a), torch.tensor(a)
    for dim in (None, 0, 1, (0, 1)):
        kw = {} if dim is None else {"dim": dim}
        assert x.all(**kw).tolist() == tx.all(**kw).tolist()
        assert x.any(**kw).tolist() == tx.any(**kw).tolist()
        assert ember.count_nonzero(x, dim).tolist() == torch.count_nonzero(tx, dim).tolist()
    assert ember.all(ember.tensor([], dtype=ember.float32)).item() is True
    assert ember.any(ember.tensor([1, 0]), 0, keepdim=True).tolist() == [True]


def test_mean_with_dtype_accepts_integers():
    assert ember.tensor([1, 2]).mean(dtype=ember.float32).item() == 1.5


def test_tensor_methods_follow_torch_names():
    a = np.arange(6.0).reshape(2, 3) - 2.0
    x = t64(a)
    assert x.sum(1).tolist() == [-3.0, 6.0]
    assert x.max(dim=0).indices.tolist() == [1, 1, 1]
    assert x.min(0).values.tolist() == [-2.0, -1.0, 0.0]
    assert_close(x.var(0, correction=0), np.var(a, 0))
    assert_close(x.norm(), np.linalg.norm(a))
    assert x.cumsum(0).tolist() == np.cumsum(a, 0).tolist()
    assert x.cumprod(1).tolist() == np.cumprod(a, 1).tolist()
    assert x.all().item() is False and x.any().item() is True
    assert x.argmax().item() == 5 and x.argmin(1, keepdim=True).tolist() == [[0], [0]]
    assert_close(x.logsumexp(1), scipy.special.logsumexp(a, 1))
    assert_close(x.mean((0, 1)), a.mean())
    assert x.prod(1).tolist() == [0.0, 6.0] and x.amax(1).tolist() == [0.0, 3.0]
    assert x.amin().item() == -2.0 and x.count_nonzero().item() == 5 and x.std(1).shape == (2,)


def test_reductions_appear_in_ember_namespace():
    for name in ["sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "var", "std",
                 "var_mean", "std_mean", "logsumexp", "norm", "cumsum", "cumprod", "all", "any", "count_nonzero"]:
        assert callable(getattr(ember, name)), name


def test_second_order_through_var_and_logsumexp_via_func_grad(rng):
    a = rng.standard_normal(4)
    hess_diag = grad(lambda t: grad(lambda u: ember.var(u))(t).sum())(t64(a))
    ta = torch.tensor(a, requires_grad=True)
    (g,) = torch.autograd.grad(torch.var(ta), ta, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), ta)
    assert_close(hess_diag, h.numpy(), atol=1e-12)
    _, tangent = jvp(lambda t: ember.logsumexp(t, 0), (t64(a),), (t64(np.ones(4)),))
    assert tangent.item() == pytest.approx(1.0)  # softmax weights sum to one


HESSIAN_CASES = {
    "logsumexp": lambda m, t: m.logsumexp(t, 1), "std": lambda m, t: m.std(t, 0),
    "prod": lambda m, t: m.prod(t, 1), "cumprod": lambda m, t: m.cumprod(t, 1) ** 2,
    "norm3": lambda m, t: m.norm(t, 3, 1), "max_values": lambda m, t: m.max(t, 1).values ** 2,
}


@pytest.mark.parametrize("name", list(HESSIAN_CASES))
def test_hessians_through_every_transform_match_torch_func(name, rng):
    a = rng.uniform(0.5, 1.5, (2, 3))
    call = HESSIAN_CASES[name]
    got = ember.func.hessian(lambda t: call(ember, t).sum())(t64(a))
    want = torch.func.hessian(lambda t: call(torch, t).sum())(torch.tensor(a))
    assert_close(got, want.numpy(), rtol=1e-10, atol=1e-12)


def test_sum_with_a_dtype_accumulates_in_it_and_returns_gradients_in_the_input_dtype():
    x = ember.ones(3, dtype=ember.float32, requires_grad=True)
    out = x.sum(dtype=ember.float64)
    assert out.dtype is ember.float64
    out.backward()
    assert x.grad.dtype is ember.float32 and x.grad.tolist() == [1.0, 1.0, 1.0]
    assert ember.tensor([200, 100], dtype=ember.uint8).sum(dtype=ember.uint8).item() == 44  # wraps, as torch


# -- errors ----------------------------------------------------------------------------------------------
ERROR_CALLS = {
    "sum": lambda x: x.sum(2), "mean": lambda x: x.mean((0, -3)), "prod": lambda x: x.prod(5),
    "amax": lambda x: x.amax(2), "amin": lambda x: x.amin(-3), "max": lambda x: x.max(2),
    "min": lambda x: x.min(-3), "argmax": lambda x: x.argmax(2), "argmin": lambda x: x.argmin(3),
    "var": lambda x: x.var(2), "std": lambda x: x.std((1, 2)), "logsumexp": lambda x: x.logsumexp(2),
    "norm": lambda x: x.norm(dim=2), "cumsum": lambda x: x.cumsum(2), "cumprod": lambda x: x.cumprod(-3),
    "all": lambda x: x.all(2), "any": lambda x: x.any(2), "count_nonzero": lambda x: x.count_nonzero(2),
}


@pytest.mark.parametrize("op", list(ERROR_CALLS), ids=list(ERROR_CALLS))
def test_dim_out_of_range_raises_indexing_error_naming_op_and_shape(op):
    with pytest.raises(IndexingError) as info:
        ERROR_CALLS[op](ember.ones(2, 3))
    msg = str(info.value)
    assert msg.startswith(op + ":") and "(2, 3)" in msg and "out of range" in msg
    assert "test_reduce.py" in msg


def test_repeated_dims_are_rejected_like_torch():
    with pytest.raises(IndexingError, match="sum: dim 0 appears multiple times"):
        ember.ones(2, 3).sum((0, -2))


def test_reducing_an_empty_dim_without_identity_raises():
    for call, op in [(lambda x: x.amax(0), "amax"), (lambda x: x.max(0), "max"), (lambda x: x.argmin(0), "argmin"),
                     (lambda x: x.argmax(), "argmax"), (lambda x: x.min(), "min")]:
        with pytest.raises(IndexingError, match=op + ": expected"):
            call(ember.zeros(0, 3))
    assert ember.zeros(0, 3).amax(1).shape == (0,)
    assert ember.zeros(0, 3).sum(0).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("call,op", [
    (lambda x: x.mean(), "mean"), (lambda x: x.var(), "var"), (lambda x: x.std(0), "std"),
    (lambda x: x.norm(), "norm"),
])
def test_integer_inputs_raise_dtype_error_where_torch_requires_floats(call, op):
    with pytest.raises(DTypeError) as info:
        call(ember.tensor([[1, 2], [3, 4]]))
    assert str(info.value).startswith(op + ":") and "int64" in str(info.value)


def test_bad_var_and_norm_arguments_raise():
    with pytest.raises(EmberError, match="either unbiased or correction"):
        ember.var(ember.ones(3), 0, True, correction=0)
    with pytest.raises(EmberError, match="unsupported p='nuc'"):
        ember.norm(ember.ones(2, 2), "nuc")


@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), ((0, 2), True)])
def test_nansum_and_nanmean_match_torch_and_differentiate(dim, keepdim, rng):
    x = rng.standard_normal((3, 4, 5))
    x[0, 1, :] = np.nan  # a whole row of NaNs: nanmean gives NaN there
    x[2, 3, 1] = np.nan
    for name in ("nansum", "nanmean"):
        ours = getattr(ember, name)(t64(x), dim, keepdim)
        theirs = getattr(torch, name)(torch.from_numpy(x), dim, keepdim) if dim is not None else \
            getattr(torch, name)(torch.from_numpy(x))
        np.testing.assert_allclose(np_of(ours), theirs.numpy(), rtol=1e-12, equal_nan=True)
        assert_close(ember.jit(lambda t, n=name: getattr(t, n)(dim, keepdim))(t64(x)), theirs.numpy())
        clean = rng.standard_normal((3, 4, 5))  # (finite differences need finite values)
        check_grad(lambda t, n=name: getattr(ember, n)(t, dim, keepdim), [clean])
        check_vmap(lambda t, n=name: getattr(ember, n)(t, -1), [x], [0])
    assert ember.nansum(ember.tensor([1, 2])).item() == 3  # integers have no NaNs
    with pytest.raises(DTypeError, match="nanmean"):
        ember.nanmean(ember.tensor([1, 2]))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cummax_cummin_logcumsumexp_match_torch_and_differentiate(dim, rng):
    x = rng.standard_normal((4, 7))
    x[2, 2] = x[2, 4] = x[0, 1] = x[1, 1] = 5.0  # ties: the later index, as PyTorch
    with_nan = x.copy()
    with_nan[1, 3] = np.nan
    for name in ("cummax", "cummin"):
        for data in (x, with_nan, np.round(x * 3).astype(np.int64)):
            ours, theirs = getattr(ember, name)(t64(data) if data.dtype.kind == "f" else ember.tensor(data), dim), \
                getattr(torch, name)(torch.from_numpy(data), dim)
            np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
            np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
        smooth = rng.standard_normal((4, 7))  # (distinct values: the derivative exists)
        check_grad(lambda t, n=name: getattr(ember, n)(t, dim).values, [smooth])
        check_vmap(lambda t, n=name: getattr(ember, n)(t, -1).values, [smooth], [0])
    wide = rng.standard_normal((4, 7)) * 300  # exp of these overflows or underflows float64 alone
    assert_close(ember.logcumsumexp(t64(wide), dim), torch.logcumsumexp(torch.from_numpy(wide), dim).numpy())
    check_grad(lambda t: ember.logcumsumexp(t, dim), [x])
    check_jvp(lambda t: ember.logcumsumexp(t, dim), [x])
    jitted = ember.jit(lambda t: t.logcumsumexp(dim) + t.cummax(dim).values)
    assert_close(jitted(t64(x)), torch.logcumsumexp(torch.from_numpy(x), dim).numpy()
                 + torch.cummax(torch.from_numpy(x), dim).values.numpy())


def test_quantile_and_nanquantile_match_torch(rng):
    x = rng.standard_normal((4, 6))
    with_nan = x.copy()
    with_nan[1, 2] = np.nan
    with_nan[3, :] = np.nan
    for name in ("quantile", "nanquantile"):
        for data in (x, with_nan):
            for q in (0.3, [0.0, 0.25, 1.0]):
                for dim, keepdim in [(None, False), (None, True), (0, False), (-1, True)]:
                    for interpolation in ("linear", "lower", "higher", "midpoint", "nearest"):
                        ours = getattr(ember, name)(t64(data), q, dim, keepdim, interpolation=interpolation)
                        tq = torch.tensor(q, dtype=torch.float64) if isinstance(q, list) else q
                        theirs = getattr(torch, name)(torch.from_numpy(data), tq, dim, keepdim,
                                                      interpolation=interpolation)
                        assert tuple(ours.shape) == tuple(theirs.shape)
                        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, equal_nan=True)
    check_grad(lambda t: ember.quantile(t, [0.2, 0.7], 1), [x])
    assert_close(ember.jit(lambda t: t.quantile(0.4, 0))(t64(x)), torch.quantile(torch.from_numpy(x), 0.4, 0).numpy())
    with pytest.raises(EmberError, match=r"\[0, 1\]"):
        ember.quantile(t64(x), 1.5)


def test_cov_corrcoef_diff_aminmax_dist_cdist_match_torch(rng):
    x = rng.standard_normal((3, 6))
    tx = torch.from_numpy(x)
    fw, aw = rng.integers(1, 4, 6), rng.uniform(0.1, 1.0, 6)
    for correction in (0, 1, 2):
        for kwargs, tkwargs in [({}, {}), ({"fweights": ember.tensor(fw)}, {"fweights": torch.from_numpy(fw)}),
                                ({"aweights": t64(aw)}, {"aweights": torch.from_numpy(aw)})]:
            assert_close(ember.cov(t64(x), correction=correction, **kwargs),
                         torch.cov(tx, correction=correction, **tkwargs).numpy())
    assert_close(ember.corrcoef(t64(x)), torch.corrcoef(tx).numpy())
    check_grad(lambda t: ember.cov(t), [x])
    for n, dim, extra in [(1, -1, {}), (2, 1, {}), (1, 0, {"prepend": x[:1], "append": x[-1:]})]:
        ours = ember.diff(t64(x), n, dim, **{k: t64(v) for k, v in extra.items()})
        theirs = torch.diff(tx, n, dim, **{k: torch.from_numpy(v) for k, v in extra.items()})
        np.testing.assert_allclose(ours.numpy(), theirs.numpy())
    check_grad(lambda t: ember.diff(t, 2), [x])
    bits = np.array([True, False, False, True])
    assert ember.diff(ember.tensor(bits)).tolist() == torch.diff(torch.from_numpy(bits)).tolist()
    low, high = ember.aminmax(t64(x), dim=1)
    np.testing.assert_array_equal(low.numpy(), x.min(1))
    np.testing.assert_array_equal(high.numpy(), x.max(1))
    a, b = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3))
    for p in (1, 2, 3.5):
        assert_close(ember.cdist(t64(a), t64(b), p), torch.cdist(torch.from_numpy(a), torch.from_numpy(b), p).numpy())
        assert_close(ember.dist(t64(a), t64(a[:, :1] * 2), p),
                     torch.dist(torch.from_numpy(a), torch.from_numpy(a[:, :1] * 2), p).numpy())
    check_grad(lambda u, v: ember.cdist(u, v), [a, b])


def test_trapezoid_cumulative_trapezoid_renorm_match_torch(rng):
    y = rng.standard_normal((3, 5))
    points = np.sort(rng.uniform(0, 3, 5))
    grid = np.sort(rng.uniform(0, 3, (3, 5)), 1)
    ty = torch.from_numpy(y)
    for x in (None, points, grid):
        kwargs = {} if x is None else {"x": t64(x)}
        tkwargs = {} if x is None else {"x": torch.from_numpy(x)}
        assert_close(ember.trapezoid(t64(y), **kwargs), torch.trapezoid(ty, **tkwargs).numpy())
        assert_close(ember.cumulative_trapezoid(t64(y), **kwargs), torch.cumulative_trapezoid(ty, **tkwargs).numpy())
    assert_close(ember.trapz(t64(y), dx=0.5, dim=0), torch.trapz(ty, dx=0.5, dim=0).numpy())
    check_grad(lambda t, s: ember.trapezoid(t, s), [y, points])
    for p, dim, maxnorm in [(2, 0, 1.0), (1, 1, 0.5)]:
        assert_close(ember.renorm(t64(y), p, dim, maxnorm), torch.renorm(ty, p, dim, maxnorm).numpy(), rtol=1e-6)
    check_grad(lambda t: ember.renorm(t, 2, 0, 1.0), [y])
