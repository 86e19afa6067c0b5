"""Pytrees in the Jacobian transforms and in vmap's arguments (in_dims/out_dims prefixes, keyword
arguments, out_dims=None), checked against torch.func."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import ember
from ember.errors import EmberError, ShapeError
from ember.func import hessian, jacrev, vmap

from helpers import np_of, t64, torch

tfunc = pytest.importorskip("torch.func")


def _tt(a: np.ndarray):
    return torch.tensor(a, dtype=torch.float64)


def _structure(tree):
    """The structure of a pytree (ember or torch), with each leaf replaced by its shape."""
    if isinstance(tree, tuple):
        return ("tuple", tuple(_structure(t) for t in tree))
    if isinstance(tree, list):
        return ("list", tuple(_structure(t) for t in tree))
    if isinstance(tree, dict):
        return ("dict", tuple((k, _structure(v)) for k, v in tree.items()))
    return tuple(tree.shape)


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [x for t in tree for x in _leaves(t)]
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in _leaves(v)]
    return [tree]


def assert_tree_close(got, want, rtol=1e-10, atol=1e-12):
    assert _structure(got) == _structure(want)
    for g, w in zip(_leaves(got), _leaves(want)):
        np.testing.assert_allclose(np_of(g), w.detach().numpy(), rtol=rtol, atol=atol)


def _tuple_out(m):
    return lambda a: (m.sin(a) * 2, (a ** 3).sum())


def _dict_fn(m):
    return lambda d: {"o": d["a"] * m.exp(d["b"]), "p": [(d["a"] * d["b"]).sum(), d["b"][:2]]}


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd"])
def test_jacobian_of_tuple_output(rng, transform):
    x = rng.standard_normal(4)
    got = getattr(ember.func, transform)(_tuple_out(ember))(t64(x))
    want = getattr(tfunc, transform)(_tuple_out(torch))(_tt(x))
    assert isinstance(got, tuple)
    assert_tree_close(got, want)


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd"])
def test_jacobian_of_dict_argument_and_nested_output(rng, transform):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    got = getattr(ember.func, transform)(_dict_fn(ember))({"a": t64(a), "b": t64(b)})
    want = getattr(tfunc, transform)(_dict_fn(torch))({"a": _tt(a), "b": _tt(b)})
    assert_tree_close(got, want)


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd"])
def test_jacobian_argnums_tuple_with_pytree_output(rng, transform):
    def f(m):
        return lambda a, s, b: (a * b * s, {"n": (m.tanh(a) + b).sum()})

    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    got = getattr(ember.func, transform)(f(ember), argnums=(0, 2))(t64(a), 1.5, t64(b))
    want = getattr(tfunc, transform)(f(torch), argnums=(0, 2))(_tt(a), 1.5, _tt(b))
    assert isinstance(got[0], tuple) and isinstance(got[1]["n"], tuple)
    assert_tree_close(got, want)


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd"])
def test_jacobian_has_aux(rng, transform):
    def f(m):
        return lambda a: (m.cos(a) * a, {"mean": a.mean(), "sq": [a * a]})

    x = rng.standard_normal(3)
    jac, aux = getattr(ember.func, transform)(f(ember), has_aux=True)(t64(x))
    tjac, taux = getattr(tfunc, transform)(f(torch), has_aux=True)(_tt(x))
    assert_tree_close(jac, tjac)
    assert_tree_close(aux, taux)
    assert all(type(leaf) is ember.Tensor for leaf in _leaves(aux))


def test_jacobian_keyword_arguments_are_not_differentiated(rng):
    # torch.func's Jacobians take positional arguments only: compare with the keyword bound beforehand
    x = rng.standard_normal(3)
    f = lambda m: lambda a, scale=1.0: m.sin(a) * scale
    for name in ("jacrev", "jacfwd", "hessian"):
        got = getattr(ember.func, name)(f(ember))(t64(x), scale=3.0)
        want = getattr(tfunc, name)(functools.partial(f(torch), scale=3.0))(_tt(x))
        assert_tree_close(got, want)


def test_hessian_argnums_tuple_gives_nested_tuples(rng):
    def f(m):
        return lambda a, b: (a * a * m.sin(b)).sum() + (a * b).sum() ** 2

    a, b = rng.standard_normal(3), rng.standard_normal(3)
    got = hessian(f(ember), argnums=(0, 1))(t64(a), t64(b))
    want = tfunc.hessian(f(torch), argnums=(0, 1))(_tt(a), _tt(b))
    assert isinstance(got, tuple) and all(isinstance(g, tuple) and len(g) == 2 for g in got)
    assert_tree_close(got, want)


def test_hessian_of_dict_argument(rng):
    def f(m):
        return lambda d: (d["w"] ** 3 * m.exp(d["v"])).sum()

    w, v = rng.standard_normal(2), rng.standard_normal(2)
    got = hessian(f(ember))({"w": t64(w), "v": t64(v)})
    want = tfunc.hessian(f(torch))({"w": _tt(w), "v": _tt(v)})
    assert_tree_close(got, want)


def test_single_tensor_jacobians_unchanged(rng):
    x = rng.standard_normal((2, 3))
    f = lambda m: lambda a: m.sin(a).sum(0) * a[0]
    for name in ("jacrev", "jacfwd", "hessian"):
        fn = f if name != "hessian" else (lambda m: lambda a: (m.sin(a) * a).sum())
        got = getattr(ember.func, name)(fn(ember))(t64(x))
        want = getattr(tfunc, name)(fn(torch))(_tt(x))
        assert isinstance(got, ember.Tensor)
        assert_tree_close(got, want)


def test_vmap_nested_in_dims_for_a_tuple_argument(rng):
    xs, w, c = rng.standard_normal((5, 3)), rng.standard_normal(3), rng.standard_normal((4, 5))

    def f(m):
        return lambda pair, d: {"y": pair[0] * pair[1] + d["c"].sum()}

    got = vmap(f(ember), in_dims=((0, None), {"c": 1}))((t64(xs), t64(w)), {"c": t64(c)})
    want = tfunc.vmap(f(torch), in_dims=((0, None), {"c": 1}))((_tt(xs), _tt(w)), {"c": _tt(c)})
    assert_tree_close(got, want)


def test_vmap_out_dims_pytree(rng):
    x = rng.standard_normal((4, 3, 2))

    def f(m):
        return lambda v: {"s": v.sum(0), "t": (v, m.exp(v))}

    dims = {"s": 1, "t": (0, -1)}
    got = vmap(f(ember), out_dims=dims)(t64(x))
    want = tfunc.vmap(f(torch), out_dims=dims)(_tt(x))
    assert_tree_close(got, want)


def test_vmap_out_dims_must_match_the_output():
    with pytest.raises(ShapeError, match="out_dims"):
        vmap(lambda v: {"s": v.sum(0), "t": v}, out_dims={"s": 1})(ember.ones(4, 3))
    with pytest.raises(ShapeError, match="in_dims"):
        vmap(lambda p: p[0], in_dims=((0, None, 0),))((ember.ones(2), ember.ones(2)))


def test_vmap_of_a_0d_input_is_a_clear_shape_error():
    with pytest.raises(ShapeError, match=r"vmap.*argument 0.*shape \(\)"):
        vmap(lambda v: v * 2)(ember.tensor(1.0))
    with pytest.raises(ValueError):
        tfunc.vmap(lambda v: v * 2)(torch.tensor(1.0))
    with pytest.raises(ShapeError, match=r"argument 1.*shape \(3,\)"):
        vmap(lambda a, b: a + b, in_dims=(0, 1))(ember.ones(3), ember.ones(3))


def test_vmap_out_dims_none_returns_an_unbatched_output(rng):
    x = rng.standard_normal((4, 3))
    got = vmap(lambda v: (v * 2, ember.ones(2)), out_dims=(0, None))(t64(x))
    want = tfunc.vmap(lambda v: (v * 2, torch.ones(2, dtype=torch.float64)), out_dims=(0, None))(_tt(x))
    assert_tree_close(got, want)
    np.testing.assert_allclose(np_of(vmap(lambda v: ember.ones(2), out_dims=None)(t64(x))), np.ones(2))


def test_vmap_out_dims_none_refuses_a_batched_output():
    with pytest.raises(EmberError, match="out_dims=None"):
        vmap(lambda v: v * 2, out_dims=None)(ember.ones(3))


def test_vmap_passes_keyword_arguments_unbatched(rng):
    x, s = rng.standard_normal((4, 3)), rng.standard_normal(3)

    def f(m):
        return lambda v, scale=1.0, shift=None: v * scale + shift

    got = vmap(f(ember))(t64(x), scale=2.0, shift=t64(s))
    want = tfunc.vmap(f(torch))(_tt(x), scale=2.0, shift=_tt(s))
    assert_tree_close(got, want)


def test_vmap_of_jacrev_with_a_pytree_output(rng):
    xs = rng.standard_normal((4, 3))
    got = vmap(jacrev(_tuple_out(ember)))(t64(xs))
    want = tfunc.vmap(tfunc.jacrev(_tuple_out(torch)))(_tt(xs))
    assert_tree_close(got, want)


def test_nested_vmap_out_dims_none_keeps_the_outer_batch(rng):
    xs, ys = rng.standard_normal((2, 3)), rng.standard_normal(4)
    got = vmap(lambda x: vmap(lambda y: (x * y, x.sum()), out_dims=(0, None))(t64(ys)))(t64(xs))
    # torch.func refuses an output batched only by the outer vmap under out_dims=None; ember (like jax)
    # returns it with the outer batch: compare with the inner output broadcast and its first row taken
    prod, total = tfunc.vmap(lambda x: tfunc.vmap(lambda y: (x * y, x.sum()))(_tt(ys)))(_tt(xs))
    assert_tree_close(got, (prod, total[:, 0]))
