"""In-place updates under vmap (and jvp), against torch.func.

A tensor that vmap does not batch (captured, made inside the function, or passed with ``in_dims=None``)
holds one value, so it cannot take a batched value in place: refused with a TraceError naming the op, the
shapes and the user's line, as torch.func.vmap refuses it, instead of writing garbage into it. An
unbatched update of it happens once (the function runs once), and a batched tensor takes batched or
unbatched values, as in torch.func.vmap."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.errors import DTypeError, EmberError, ShapeError, TraceError
from ember.func import jvp, vmap

from helpers import assert_close

torch = pytest.importorskip("torch")
tfunc = pytest.importorskip("torch.func")

_V = np.arange(12, dtype=np.float32).reshape(4, 3)


# -- refused: a batched value into an unbatched tensor ---------------------------------------------------------
def _add_captured(lib, x):
    return lambda v: x.add_(v)


def _copy_captured(lib, x):
    return lambda v: x.copy_(v)


def _setitem_captured(lib, x):
    def fn(v):
        x[1:] = v[1:]
        return v
    return fn


def _mul_made_inside(lib, x):
    return lambda v: lib.ones(3).mul_(v)


_REFUSED = [(_add_captured, "add_"), (_copy_captured, "copy_"), (_setitem_captured, "setitem_"),
            (_mul_made_inside, "mul_")]


@pytest.mark.parametrize("make, op", _REFUSED, ids=[op for _, op in _REFUSED])
def test_batched_value_into_an_unbatched_tensor_is_refused_as_in_torch(make, op):
    x = ember.zeros(3)
    with pytest.raises(TraceError) as info:
        vmap(make(ember, x))(ember.tensor(_V))
    message = str(info.value)
    assert message.startswith(f"{op}: under vmap, a tensor that is not batched (shape [3])")
    assert "shape [3] for each of 4 batch elements" in message
    assert "test_vmap_inplace.py" in message  # the user's line
    assert_close(x, np.zeros(3))  # left as it was (it used to be filled with NaN)
    tx = torch.zeros(3)
    with pytest.raises(RuntimeError):
        tfunc.vmap(make(torch, tx))(torch.tensor(_V))


def test_an_argument_not_mapped_cannot_take_a_batched_value_in_place():
    x = ember.zeros(3)
    with pytest.raises(TraceError, match="add_: under vmap"):
        vmap(lambda a, v: a.add_(v), in_dims=(None, 0))(x, ember.tensor(_V))
    assert_close(x, np.zeros(3))
    with pytest.raises(RuntimeError):
        tfunc.vmap(lambda a, v: a.add_(v), in_dims=(None, 0))(torch.zeros(3), torch.tensor(_V))


def test_the_refusal_is_an_ember_error_under_nested_vmap():
    x = ember.zeros(3)
    with pytest.raises(EmberError, match="add_"):  # an outer-batched tensor, an inner-batched value
        vmap(lambda a: vmap(lambda v: a.add_(v))(ember.tensor(_V)))(ember.zeros(2, 3))
    vmap(lambda v: vmap(lambda w: w * 1)(v))(ember.ones(2, 4, 3))  # nothing else changed
    assert_close(x, np.zeros(3))


def test_a_tangent_into_a_captured_tensor_is_refused_under_jvp_as_in_torch():
    x, tx = ember.zeros(3), torch.zeros(3)
    with pytest.raises(TraceError, match="add_: a tensor captured by a transform"):
        jvp(lambda v: x.add_(v), (ember.ones(3),), (ember.ones(3),))
    assert_close(x, np.zeros(3))
    with pytest.raises(RuntimeError, match="mutate a captured Tensor"):
        tfunc.jvp(lambda v: tx.add_(v), (torch.ones(3),), (torch.ones(3),))


# -- allowed, as in torch.func.vmap -------------------------------------------------------------------------------
def _batched_plus_batched(lib):
    return lambda a, v: a.add_(v), (0, 0)


def _batched_plus_unbatched_made_inside(lib):
    return lambda a, v: a.mul_(lib.full((3,), 2.0)).add_(v), (0, 0)


def _batched_plus_unbatched_argument(lib):
    return lambda a, v: a.sub_(v), (0, None)


def _batched_setitem(lib):
    def fn(a, v):
        a[0] = v[2]
        return a
    return fn, (0, 0)


def _batched_copy_of_unbatched(lib):
    return lambda a, v: a.copy_(v) * 2, (0, None)


_ALLOWED = [_batched_plus_batched, _batched_plus_unbatched_made_inside, _batched_plus_unbatched_argument,
            _batched_setitem, _batched_copy_of_unbatched]


@pytest.mark.parametrize("make", _ALLOWED, ids=lambda f: f.__name__.strip("_"))
def test_a_batched_tensor_takes_batched_and_unbatched_values_in_place_as_in_torch(make):
    fn, dims = make(ember)
    tfn, _ = make(torch)
    a = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    v = _V if dims[1] == 0 else _V[1]
    ea, ta = ember.tensor(a), torch.tensor(a)
    got = vmap(fn, in_dims=dims)(ea, ember.tensor(v))
    want = tfunc.vmap(tfn, in_dims=dims)(ta, torch.tensor(v))
    assert_close(got, want.numpy())
    assert_close(ea, ta.numpy())  # the caller's tensor took the update, as in torch


@pytest.mark.parametrize("in_dim", [0, 1])
def test_an_argument_updated_in_place_is_written_back_under_nested_vmap(in_dim):
    a = np.random.default_rng(1).random((2, 4, 3)).astype(np.float32)
    ea, ta = ember.tensor(a), torch.tensor(a)

    def step(lib):
        return lambda x: x.mul_(2.0).add_(lib.arange(3.0)[0] + 1.0)

    vmap(vmap(step(ember)), in_dims=in_dim)(ea)
    tfunc.vmap(tfunc.vmap(step(torch)), in_dims=in_dim)(ta)
    assert_close(ea, ta.numpy())


def test_an_unbatched_value_into_an_unbatched_tensor_applies_once_as_in_torch():
    x, tx = ember.zeros(3), torch.zeros(3)

    def fn(lib, t):
        def f(v):
            t.add_(lib.ones(3))
            t.mul_(2.0)
            return v * t
        return f

    got = vmap(fn(ember, x))(ember.tensor(_V))
    want = tfunc.vmap(fn(torch, tx))(torch.tensor(_V))
    assert_close(got, want.numpy())
    assert_close(x, tx.numpy())  # updated once: the function runs once
    assert_close(x, [2.0, 2.0, 2.0])


# -- shapes and dtypes an in-place result must fit, as in PyTorch -------------------------------------------------
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_a_result_larger_than_the_updated_tensor_is_a_shape_error(compiled):
    def fn(x, v):
        return x.add_(v)

    x = ember.zeros(3)
    with pytest.raises(ShapeError, match=r"add_: the result has shape \[4, 3\].*of shape \[3\]"):
        (ember.jit(fn) if compiled else fn)(x, ember.ones(4, 3))
    assert_close(x, np.zeros(3))
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        torch.zeros(3).add_(torch.ones(4, 3))


def test_a_larger_result_under_vmap_is_a_shape_error():
    with pytest.raises(ShapeError, match="add_"):
        vmap(lambda a: a.add_(ember.ones(2, 3)))(ember.zeros(4, 3))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_inplace_results_keep_the_updated_tensors_dtype(compiled):
    def fn(x, v):
        return x.add_(v) * 1

    wrap = ember.jit if compiled else (lambda f: f)
    out = wrap(fn)(ember.zeros(3), ember.ones(3, dtype=ember.float64))
    assert out.dtype is ember.float32
    assert torch.zeros(3).add_(torch.ones(3, dtype=torch.float64)).dtype == torch.float32
    with pytest.raises(DTypeError, match="add_"):
        wrap(fn)(ember.zeros(3, dtype=ember.int64), ember.ones(3))


def test_a_primal_updated_in_place_is_written_back_under_jvp_as_in_torch():
    p, tp = ember.zeros(3), torch.zeros(3)
    out, tangent = ember.func.jvp(lambda x: x.mul_(2).add_(1), (p,), (ember.ones(3),))
    tout, ttangent = tfunc.jvp(lambda x: x.mul_(2).add_(1), (tp,), (torch.ones(3),))
    assert_close(out, tout.numpy())
    assert_close(tangent, ttangent.numpy())
    assert_close(p, tp.numpy())


def _fill_made_inside(lib, dtype=None):
    def fn(x):
        out = lib.zeros(3) if dtype is None else lib.zeros(3, dtype=dtype)
        out[0] = (x * x).sum()
        out[1] = x[0] * 3
        out.mul_(2)
        return out, out.sum()
    return fn


def test_a_tensor_made_inside_takes_tangents_in_place_under_jvp_as_in_torch():
    x = np.arange(3.0, dtype=np.float32)
    got = jvp(_fill_made_inside(ember), (ember.tensor(x),), (ember.ones(3),))
    want = tfunc.jvp(_fill_made_inside(torch), (torch.tensor(x),), (torch.ones(3),))
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            assert_close(a, b.numpy())


def test_jvp_of_a_function_filling_a_tensor_made_inside_matches_finite_differences():
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal(3), rng.standard_normal(3)
    fn = _fill_made_inside(ember, ember.float64)
    _, (tangent, _) = jvp(fn, (ember.tensor(x),), (ember.tensor(t),))
    eps = 1e-6
    plus, minus = fn(ember.tensor(x + eps * t))[0].numpy(), fn(ember.tensor(x - eps * t))[0].numpy()
    np.testing.assert_allclose(tangent.numpy(), (plus - minus) / (2 * eps), rtol=1e-5, atol=1e-6)



def _views_of_made_inside(lib):
    def fn(x):
        y = lib.zeros(3, dtype=x.dtype)
        v = y[1:]  # a view taken before the writes sees them
        y[1:].add_(x[1:])  # a write through a view of a tensor made inside, before it holds a value
        w = v * 2
        y.mul_(x)
        y[0:1].copy_(x[2:] * 5)
        return y * 2 + v.sum() + w.sum()
    return fn


def _copy_of_the_input(lib):
    def fn(x):
        y = lib.zeros(3, dtype=x.dtype)
        y.copy_(x)  # (the copy hands back `x` itself: `y` must not become `x`)
        y[0:1].mul_(5.0)
        return y
    return fn


@pytest.mark.parametrize("make", [_views_of_made_inside, _copy_of_the_input], ids=lambda f: f.__name__.strip("_"))
def test_writes_into_a_tensor_made_inside_match_torch_under_jvp_and_leave_the_input_alone(make):
    x, t = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    ex = ember.tensor(x)
    got = jvp(make(ember), (ex,), (ember.tensor(t),))
    want = tfunc.jvp(make(torch), (torch.tensor(x),), (torch.tensor(t),))
    for g, w in zip(got, want):
        assert_close(g, w.numpy(), rtol=1e-12)
    assert_close(ex, x, rtol=0)


def _through_slice(lib):
    def fn(v):
        c = v.clone()
        c[1:3].mul_(3.0)
        return c
    return fn


def _through_transpose_row(lib):
    def fn(v):
        c = v.clone().reshape(2, 3)
        c.t()[0].zero_()
        return c.reshape(-1) * 1.5
    return fn


def _through_view_of_view(lib):
    def fn(v):
        c = v * 2
        c.view(3, 2)[1].add_(v[:2])
        return c
    return fn


@pytest.mark.parametrize("make", [_through_slice, _through_transpose_row, _through_view_of_view],
                         ids=lambda f: f.__name__.strip("_"))
def test_an_in_place_update_through_a_view_reaches_its_base_under_vmap_and_jvp_as_in_torch(make):
    x = np.random.default_rng(2).random((4, 6)).astype(np.float32)
    got = vmap(make(ember))(ember.tensor(x))
    want = tfunc.vmap(make(torch))(torch.tensor(x))
    assert_close(got, want.numpy())
    t = np.ones(6, np.float32)
    out, tangent = jvp(make(ember), (ember.tensor(x[0]),), (ember.tensor(t),))
    tout, ttangent = tfunc.jvp(make(torch), (torch.tensor(x[0]),), (torch.tensor(t),))
    assert_close(out, tout.numpy())
    assert_close(tangent, ttangent.numpy())


@pytest.mark.parametrize("op", ["sin_", "exp_", "mul_"])
def test_gradients_of_in_place_ops_under_vmap_and_hessian_match_torch(op):
    def make(lib):
        def fn(v):
            c = v.clone()
            c = getattr(c, op)(v) if op == "mul_" else getattr(c, op)()
            return (c * c).sum()
        return fn

    x = np.random.default_rng(4).random((3, 4)) - 0.5
    got = vmap(ember.func.grad(make(ember)))(ember.tensor(x))
    want = tfunc.vmap(tfunc.grad(make(torch)))(torch.tensor(x))
    assert_close(got, want.numpy())
    h = ember.func.hessian(make(ember))(ember.tensor(x[0]))
    th = tfunc.hessian(make(torch))(torch.tensor(x[0]))
    assert_close(h, th.numpy())


def test_randperm_under_vmap_draws_one_permutation_per_batch_element():
    ember.manual_seed(0)
    out = vmap(lambda x: ember.randperm(5) + 0 * x[0].long(), randomness="different")(ember.zeros(4, 2))
    rows = out.tolist()
    assert all(sorted(r) == list(range(5)) for r in rows)
    assert len({tuple(r) for r in rows}) > 1  # (four rows alike by chance: 1 in 120**3)


def _view_read_after_base_update(lib):
    def fn(v):
        c = v.clone()
        d = c[1:3]
        e = c.reshape(2, 3)
        c.mul_(2.0)
        d.add_(1.0)
        return d * 1, e.sum(0), c
    return fn


def test_views_read_after_their_base_changed_see_it_under_vmap_and_jvp_as_in_torch():
    x = np.random.default_rng(5).random((3, 6)).astype(np.float32)
    got = vmap(_view_read_after_base_update(ember))(ember.tensor(x))
    want = tfunc.vmap(_view_read_after_base_update(torch))(torch.tensor(x))
    for g, w in zip(got, want):
        assert_close(g, w.numpy())
    t = np.linspace(-1, 1, 6).astype(np.float32)
    out, tangent = jvp(_view_read_after_base_update(ember), (ember.tensor(x[0]),), (ember.tensor(t),))
    tout, ttangent = tfunc.jvp(_view_read_after_base_update(torch), (torch.tensor(x[0]),), (torch.tensor(t),))
    for g, w in zip(out + tangent, tout + ttangent):
        assert_close(g, w.numpy())
