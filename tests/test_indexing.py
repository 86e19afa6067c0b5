"""Indexing ops: values vs NumPy and PyTorch (random shapes and indices), gradients and JVPs vs finite
differences, vmap vs a loop, views, in-place writes under autograd, and error messages."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.errors import DTypeError, EmberError, IndexingError, ShapeError, TraceError
from ember.func import vmap

from helpers import assert_close, check_grad, check_jvp, check_vmap, np_of, t64, torch


def i64(a) -> ember.Tensor:
    return ember.tensor(np.asarray(a, dtype=np.int64))


def tt(a):
    """A torch tensor from NumPy data (int or float)."""
    return torch.from_numpy(np.array(a))  # a copy that keeps 0-d arrays 0-d


# -- one table of differentiable ops: gradients (2nd order), JVP and vmap ------------------------------
@dataclass
class Case:
    name: str
    fn: Callable           # float64 ember tensors in, one tensor out
    shapes: list           # input shapes
    vmap_dims: tuple | None = None
    low: float = -2.0


REP = [[0, 2, 0], [1, 1, 2]]  # repeated indices: the gradient must accumulate


def _clone_set(x, v):
    y = x * 1.0
    y[[2, 0], 1:] = v  # an advanced write through a basic view
    return y


def _masked(x, v):
    return ember.masked_fill(x, x > 0.3, v)


CASES = [
    Case("getitem_basic", lambda x: x[1:, ::-2, None], [(3, 4)], (0,)),
    Case("getitem_int_slice", lambda x: x[..., 1, 1:3], [(2, 3, 4)], (0,)),
    Case("getitem_repeated", lambda x: x[[0, 2, 0, 0]], [(3, 4)], (0,)),
    Case("getitem_adjacent", lambda x: x[:, [1, 1, 0], [2, 2, 3]], [(2, 3, 4)], (0,)),
    Case("getitem_separated", lambda x: x[[0, 1, 1], :, [3, 3, 0]], [(2, 3, 4)], (0,)),
    Case("getitem_2d_index", lambda x: x[:, i64(REP)], [(2, 3)], (0,)),
    Case("getitem_mask", lambda x: x[np.array([True, False, True])], [(3, 2)]),
    Case("gather", lambda x: ember.gather(x, 1, i64(REP)), [(2, 4)], (0,)),
    Case("gather_dim0", lambda x: ember.gather(x, 0, i64([[1, 0], [1, 1]])), [(3, 3)], (1,)),
    Case("take_along_dim", lambda x: ember.take_along_dim(x, i64([[2], [0]]), 1), [(2, 3)], (0,)),
    Case("take", lambda x: ember.take(x, i64([[5, 0], [5, -1]])), [(2, 3)], (0,)),
    Case("index_select", lambda x: ember.index_select(x, 1, i64([2, 0, 2])), [(2, 3)], (0,)),
    Case("scatter", lambda x, s: ember.scatter(x, 1, i64([[0, 2], [1, 3]]), s), [(2, 4), (2, 3)], (0, 0)),
    Case("scatter_add", lambda x, s: ember.scatter_add(x, 1, i64(REP), s), [(2, 3), (2, 3)], (0, None)),
    Case("scatter_sum_excl", lambda x, s: ember.scatter_reduce(x, 1, i64(REP), s, "sum", include_self=False),
         [(2, 3), (2, 3)], (None, 0)),
    Case("scatter_mean", lambda x, s: ember.scatter_reduce(x, 1, i64(REP), s, "mean"), [(2, 3), (2, 3)],
         (0, 0)),
    Case("scatter_prod", lambda x, s: ember.scatter_reduce(x, 1, i64(REP), s, "prod"), [(2, 3), (2, 3)],
         (0, 0), 0.5),
    Case("scatter_prod_excl", lambda x, s: ember.scatter_reduce(x, 0, i64([[1, 0, 1]]), s, "prod",
                                                                include_self=False), [(2, 3), (1, 3)], (0, 0), 0.5),
    Case("scatter_amax", lambda x, s: ember.scatter_reduce(x, 1, i64(REP), s, "amax"), [(2, 3), (2, 3)], (0, 0)),
    Case("scatter_amin_excl", lambda x, s: ember.scatter_reduce(x, 1, i64(REP), s, "amin", include_self=False),
         [(2, 3), (2, 3)], (0, 0)),
    Case("index_add", lambda x, s: ember.index_add(x, 0, i64([1, 1, 0]), s, alpha=2.0), [(2, 3), (3, 3)],
         (1, 1)),
    Case("index_copy", lambda x, s: ember.index_copy(x, 1, i64([2, 0]), s), [(2, 3), (2, 2)], (0, 0)),
    Case("index_put_acc", lambda x, v: ember.index_put(x, (i64([0, 0, 1]), i64([1, 1, 2])), v, True),
         [(2, 3), (3,)], (0, 0)),
    Case("setitem", _clone_set, [(3, 4), (3,)], (0, None)),
    Case("setitem_basic", lambda x, v: ember.index_put(x, (slice(None), 1), v), [(2, 3), (2,)], (0, 0)),
    Case("masked_fill_tensor", _masked, [(2, 3), ()], (0, 0)),
    Case("masked_select", lambda x: ember.masked_select(x, x > 0.0), [(2, 3)]),
    Case("sort_values", lambda x: ember.sort(x, dim=0, descending=True).values, [(3, 2)], (1,)),
    Case("topk_values", lambda x: ember.topk(x, 2, largest=False).values, [(2, 4)], (0,)),
]


def _inputs(case, rng):
    return [rng.uniform(case.low, 2.0, size=s) for s in case.shapes]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradients_match_finite_differences_to_second_order(case, rng):
    check_grad(case.fn, _inputs(case, rng))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_jvp_matches_finite_differences(case, rng):
    if case.name == "masked_select":
        pytest.skip("the mask depends on the perturbed input")
    check_jvp(case.fn, _inputs(case, rng))


VMAP_CASES = [c for c in CASES if c.vmap_dims is not None]


@pytest.mark.parametrize("case", VMAP_CASES, ids=[c.name for c in VMAP_CASES])
def test_vmap_matches_loop(case, rng):
    xs = _inputs(case, rng)
    dims = case.vmap_dims
    xs = [np.stack([x] * 3 + [x + 1], axis=d) if d is not None else x for x, d in zip(xs, dims)]
    check_vmap(case.fn, xs, dims)


def test_transforms_compose_through_indexing(rng):
    from ember.func import grad, hessian, jacfwd, jacrev

    x = t64(rng.standard_normal((2, 3)))
    f = lambda v: v[[0, 0, 1], 1:] ** 2  # noqa: E731
    assert_close(jacrev(f)(x), np.asarray(jacfwd(f)(x)))
    g = lambda v: (ember.sort(v.reshape(-1)).values * ember.arange(6.0, dtype=ember.float64)).sum() ** 2  # noqa: E731
    assert_close(hessian(g)(x), np.asarray(jacfwd(jacrev(g))(x)))
    idx = i64([[0, 0, 1], [2, 2, 2]])
    h = lambda v: ember.scatter_reduce(v, 1, idx, v * v, "prod").sum()  # noqa: E731
    xs = rng.uniform(0.5, 2.0, size=(3, 2, 3))
    check_vmap(grad(h), [xs], [0])


def test_vmap_with_batched_indices_matches_loop(rng):
    x = rng.standard_normal((4, 5, 3))
    idx = rng.integers(0, 5, size=(4, 2)).astype(np.float64)  # converted inside (check_vmap passes floats)
    check_vmap(lambda v, i: v[i.long()], [x, idx], [0, 0])
    check_vmap(lambda v, i: v[:, i.long()], [x[0].T, idx], [None, 0])
    gidx = rng.integers(0, 5, size=(4, 2, 3)).astype(np.float64)
    check_vmap(lambda v, i: ember.gather(v, 0, i.long()), [x, gidx], [0, 0])
    check_vmap(lambda v, i: ember.gather(v, 0, i.long()), [x[0], gidx], [None, 0])
    check_vmap(lambda v, i: ember.index_select(v, 0, i.long()), [x, idx[:, :1].repeat(3, 1)], [0, 0])
    check_vmap(lambda v, i, s: ember.scatter_add(v, 0, i.long(), s), [x, gidx, x[0, :2]], [0, 0, None])
    check_vmap(lambda v, i: ember.scatter_reduce(v, 0, i.long(), v[:2], "amax"), [x, gidx], [0, 0])


# -- __getitem__ values vs NumPy and PyTorch --------------------------------------------------------
@given(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5).flatmap(
    lambda s: st.tuples(st.just(s), hnp.basic_indices(s, allow_newaxis=True, allow_ellipsis=True))))
def test_basic_indexing_matches_numpy_and_is_a_view(shape_key):
    shape, key = shape_key
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    x = ember.tensor(a)
    y = x[key]
    assert tuple(y.shape) == a[key].shape
    assert_close(y, a[key])
    assert np.shares_memory(y.numpy(), x.numpy()) or y.numel() == 0
    assert y._vc is x._vc


@st.composite
def advanced_keys(draw):
    """A shape and a key mixing ints, slices, None and integer arrays (one broadcast shape)."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    bshape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    key, n_adv = [], 0
    for size in shape:
        kind = draw(st.sampled_from(["int", "slice", "array", "array", "none"]))
        if kind == "none":
            key.append(None)
        if kind == "int":
            key.append(draw(st.integers(-size, size - 1)))
        elif kind == "array":
            sub = bshape[draw(st.integers(0, len(bshape))):]
            key.append(np.asarray(draw(hnp.arrays(np.int64, sub, elements=st.integers(-size, size - 1)))))
            n_adv += 1
        else:
            key.append(slice(draw(st.none() | st.integers(-size, size)), None, draw(st.none() | st.integers(1, 2))))
    if n_adv == 0:
        first = next(i for i, k in enumerate(key) if k is not None)
        key[first] = np.asarray([0, 0])
    return shape, tuple(key)


@given(advanced_keys())
def test_advanced_indexing_matches_torch_placement_and_values(shape_key):
    shape, key = shape_key
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    want = tt(a)[tuple(tt(k) if isinstance(k, np.ndarray) else k for k in key)]
    got = ember.tensor(a)[tuple(i64(k) if isinstance(k, np.ndarray) else k for k in key)]
    assert tuple(got.shape) == tuple(want.shape)
    assert_close(got, want.numpy())


@given(advanced_keys(), st.integers(0, 2 ** 32 - 1))
def test_advanced_setitem_matches_torch(shape_key, seed):
    shape, key = shape_key
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    tkey = tuple(tt(k) if isinstance(k, np.ndarray) else k for k in key)
    ekey = tuple(i64(k) if isinstance(k, np.ndarray) else k for k in key)
    want = tt(a)
    want[tkey] = tt(b)[tkey]  # repeated positions receive equal values, so the result is well defined
    got = t64(a)
    got[ekey] = t64(b)[ekey]
    assert_close(got, want.numpy())


def test_indexing_with_lists_arrays_bools_and_masks_matches_torch(rng):
    a = rng.standard_normal((3, 4, 5))
    t = tt(a)
    x = ember.tensor(a)
    m = a[..., 0] > 0
    assert_close(x[[0, 2]], t[[0, 2]].numpy())
    assert_close(x[np.array([2, -1])], t[tt(np.array([2, -1]))].numpy())
    assert_close(x[ember.tensor(m)], t[tt(m)].numpy())
    assert_close(x[:, ember.tensor(a[0, :, 0] > 0), 1:], t[:, tt(a[0, :, 0] > 0), 1:].numpy())
    assert_close(x[1, ember.tensor(a[1] > 0)], t[1, tt(a[1] > 0)].numpy())
    assert tuple(x[True].shape) == tuple(t[True].shape)
    assert tuple(x[False].shape) == tuple(t[False].shape)
    assert tuple(x[:, None, ..., ember.tensor(2)].shape) == tuple(t[:, None, ..., torch.tensor(2)].shape)
    assert x[ember.tensor(1), 2, 3].item() == a[1, 2, 3]


# -- views and in-place writes ----------------------------------------------------------------------
def test_basic_indexing_views_share_memory_and_version_counter():
    x = ember.arange(12.0).reshape(3, 4)
    v = x[1:, ::2]
    v.add_(100.0)
    assert x.tolist()[1] == [104.0, 5.0, 106.0, 7.0]
    assert x._version == v._version == 1
    adv = x[[0, 1]]
    adv.add_(1.0)
    assert x.tolist()[0] == [0.0, 1.0, 2.0, 3.0]  # advanced indexing copies


def test_setitem_matches_numpy_for_many_keys(rng):
    keys = [1, (slice(None), 2), (Ellipsis, slice(None, None, -2)), ([0, 2], slice(1, 3)), ([0, 0], [1, 1]),
            (slice(None), [3, 0], None), (np.array([[0], [2]]), np.array([1, 2]))]
    for key in keys:
        a = rng.standard_normal((3, 4))
        x = ember.tensor(a)
        value = rng.standard_normal(np.shape(a[key])[-1:])
        x[key] = ember.tensor(value)
        a[key] = value
        assert_close(x, a, msg=str(key))
    x = ember.zeros(2, 3, dtype=ember.int64)
    x[x == 0] = 7
    x[0, 1] = 2.9  # cast to the tensor's dtype, as in torch
    assert x.tolist() == [[7, 2, 7], [7, 7, 7]]


def test_setitem_under_autograd_matches_torch(rng):
    a, v, w = rng.standard_normal((3, 4)), rng.standard_normal(2), rng.standard_normal((3, 4))
    ea, ev = t64(a).requires_grad_(), t64(v).requires_grad_()
    ta, tv = tt(a).requires_grad_(), tt(v).requires_grad_()
    for x0, val, wt in [(ea, ev, t64(w)), (ta, tv, tt(w))]:
        x = x0 * 2
        x[[0, 2], 1] = val * 3
        x[1:, :2] = x0[:2, 2:] ** 2
        x[x > 5] = 0.0
        (x * wt).sum().backward()
    assert_close(ea.grad, ta.grad.numpy())
    assert_close(ev.grad, tv.grad.numpy())


def test_accumulating_into_a_buffer_with_augmented_assignment_matches_torch(rng):
    w = rng.standard_normal(3)
    grads = []
    for lib, wt in [(ember, t64(w).requires_grad_()), (torch, tt(w).requires_grad_())]:
        buf = lib.zeros(2, 3, dtype=lib.float64)
        buf[0] += wt * wt  # a view of buf is updated in place, then written back
        (buf * lib.arange(6, dtype=lib.float64).reshape(2, 3)).sum().backward()
        grads.append(np.asarray(wt.grad))
    assert_close(grads[0], grads[1])


def test_writing_over_a_view_saved_for_backward_is_caught_like_torch():
    x = ember.ones(3, 4, requires_grad=True) * 2
    x[1:, :2] = x[1:, :2] ** 2  # pow saved the view x[1:, :2], which the write then changes
    with pytest.raises(ember.errors.AutogradError, match="modified by an in-place"):
        x.sum().backward()


def test_setitem_on_a_leaf_that_requires_grad_is_refused():
    x = ember.ones(3, requires_grad=True)
    with pytest.raises(ember.errors.AutogradError, match="leaf"):
        x[0] = 2.0


def test_inplace_methods_mutate_and_bump_version():
    x = ember.zeros(2, 3)
    idx = i64([[0, 1, 0]])
    x.scatter_(0, idx, ember.ones(1, 3))
    x.scatter_add_(1, i64([[2, 2]]), ember.ones(1, 2))
    x.index_add_(0, i64([1]), ember.full((1, 3), 5.0))
    x.masked_fill_(x > 5.5, -1.0)
    x.index_put_((i64([0]), i64([0])), ember.tensor(9.0), accumulate=True)
    assert x.tolist() == [[10.0, 0.0, 3.0], [5.0, -1.0, 5.0]]
    assert x._version == 5
    x.index_fill_(1, i64([1]), 0.5)
    x.index_copy_(0, i64([1]), ember.zeros(1, 3))
    assert x.tolist() == [[10.0, 0.5, 3.0], [0.0, 0.0, 0.0]]


# -- gather / scatter family vs torch ----------------------------------------------------------------
@given(st.integers(1, 3).flatmap(lambda n: hnp.array_shapes(min_dims=n, max_dims=n, min_side=1, max_side=4)),
       st.integers(0, 2), st.integers(0, 2 ** 32 - 1))
def test_gather_and_scatter_match_torch_on_random_shapes(shape, dim, seed):
    rng = np.random.default_rng(seed)
    dim = dim % len(shape)
    ishape = tuple(int(rng.integers(1, s + 1)) if d != dim else int(rng.integers(1, 5)) for d, s in enumerate(shape))
    a, src = rng.standard_normal(shape), rng.standard_normal(ishape)
    idx = rng.integers(0, shape[dim], size=ishape)
    x, ti = t64(a), tt(idx)
    assert_close(ember.gather(x, dim, i64(idx)), torch.gather(tt(a), dim, ti).numpy())
    assert_close(ember.scatter_add(x, dim, i64(idx), t64(src)), torch.scatter_add(tt(a), dim, ti, tt(src)).numpy())
    for reduce in ["sum", "prod", "mean", "amax", "amin"]:
        for incl in [True, False]:
            want = torch.scatter_reduce(tt(a), dim, ti, tt(src), reduce, include_self=incl)
            got = ember.scatter_reduce(x, dim, i64(idx), t64(src), reduce, include_self=incl)
            assert_close(got, want.numpy(), rtol=1e-10, msg=f"{reduce} include_self={incl}")
    uniq = np.argsort(rng.random(shape), axis=dim).take(range(min(ishape[dim], shape[dim])), axis=dim)
    uniq = uniq[tuple(slice(0, s) for s in ishape)]
    assert_close(ember.scatter(x, dim, i64(uniq), t64(src)), torch.scatter(tt(a), dim, tt(uniq), tt(src)).numpy())


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
def test_integer_scatter_reduce_and_scalar_scatter_match_torch():
    a = np.array([[5, 2, 7], [1, 8, 3]])
    idx = np.array([[0, 0, 2], [1, 1, 1]])
    src = np.array([[4, 9, 1], [6, 2, 5]])
    for reduce in ["sum", "prod", "mean", "amax", "amin"]:
        got = ember.scatter_reduce(i64(a), 1, i64(idx), i64(src), reduce, include_self=False)
        want = torch.scatter_reduce(tt(a), 1, tt(idx), tt(src), reduce, include_self=False)
        assert got.dtype is ember.int64 and got.tolist() == want.tolist(), reduce
    assert ember.scatter(i64(a), 1, i64(idx[:, :1]), 0).tolist() == torch.scatter(tt(a), 1, tt(idx[:, :1]), 0).tolist()
    got = ember.scatter(i64(a), 1, i64(idx), i64(src), reduce="multiply")
    assert got.tolist() == torch.scatter(tt(a), 1, tt(idx), tt(src), reduce="multiply").tolist()


def test_scatter_prod_gradient_with_zeros_matches_torch():
    a = np.array([[0.0, 2.0, 3.0], [1.5, 0.0, 0.0]])
    s = np.array([[0.5, 0.0, 4.0], [2.0, 0.0, 3.0]])
    idx = np.array([[0, 1, 1], [0, 0, 2]])
    ex, es = t64(a).requires_grad_(), t64(s).requires_grad_()
    ember.scatter_reduce(ex, 1, i64(idx), es, "prod").sum().backward()
    tx, ts = tt(a).requires_grad_(), tt(s).requires_grad_()
    torch.scatter_reduce(tx, 1, tt(idx), ts, "prod").sum().backward()
    assert_close(ex.grad, tx.grad.numpy())
    assert_close(es.grad, ts.grad.numpy())


def test_amax_gradient_splits_ties_like_torch():
    a, s, idx = np.array([2.0, 1.0]), np.array([2.0, 2.0, 0.5]), np.array([0, 0, 1])
    ex, es = t64(a).requires_grad_(), t64(s).requires_grad_()
    ember.scatter_reduce(ex, 0, i64(idx), es, "amax").sum().backward()
    tx, ts = tt(a).requires_grad_(), tt(s).requires_grad_()
    torch.scatter_reduce(tx, 0, tt(idx), ts, "amax").sum().backward()
    assert_close(ex.grad, tx.grad.numpy())
    assert_close(es.grad, ts.grad.numpy())


def test_index_ops_masks_and_take_match_torch(rng):
    a = rng.standard_normal((3, 4))
    x, t = t64(a), tt(a)
    idx = np.array([3, 0, 3])
    src = rng.standard_normal((3, 3))
    assert_close(ember.index_select(x, 1, i64(idx)), torch.index_select(t, 1, tt(idx)).numpy())
    assert_close(ember.index_add(x, 1, i64(idx), t64(src), alpha=-2.0),
                 torch.index_add(t, 1, tt(idx), tt(src), alpha=-2.0).numpy())
    assert_close(ember.index_copy(x, 0, i64([2, 0]), t64(a[:2])), torch.index_copy(t, 0, tt(np.array([2, 0])), t[:2]).numpy())
    assert_close(ember.index_fill(x, 1, i64([1]), -3.0), torch.index_fill(t, 1, tt(np.array([1])), -3.0).numpy())
    mask = a > 0
    assert_close(ember.masked_fill(x, ember.tensor(mask[0]), 7.0), torch.masked_fill(t, tt(mask[0]), 7.0).numpy())
    assert_close(ember.masked_fill(x, ember.tensor(mask), ember.tensor(2.5)),
                 torch.masked_fill(t, tt(mask), torch.tensor(2.5)).numpy())
    assert ember.masked_fill(i64([1, 2]), ember.tensor([True, False]), 9.7).tolist() == [9, 2]
    assert_close(ember.masked_select(x, ember.tensor(mask[1])), torch.masked_select(t, tt(mask[1])).numpy())
    ii = np.array([[0, -1], [5, 11]])
    assert_close(ember.take(x, i64(ii)), torch.take(t, tt(ii)).numpy())
    ai = np.argsort(a, axis=0)[:2]
    assert_close(ember.take_along_dim(x, i64(ai), dim=0), torch.take_along_dim(t, tt(ai), dim=0).numpy())
    assert_close(ember.take_along_dim(x, i64(ai[:, :1]), dim=0), torch.take_along_dim(t, tt(ai[:, :1]), dim=0).numpy())
    assert_close(ember.take_along_dim(x, i64([7, 0])), torch.take_along_dim(t, tt(np.array([7, 0]))).numpy())
    vals = rng.standard_normal(3)
    assert_close(ember.index_put(x, (i64([0, 0, 2]), i64([1, 1, 3])), t64(vals), accumulate=True),
                 torch.index_put(t, (tt(np.array([0, 0, 2])), tt(np.array([1, 1, 3]))), tt(vals), accumulate=True).numpy())


def test_tensor_methods_are_installed():
    x = ember.tensor([[3.0, 1.0], [2.0, 4.0]])
    i = i64([[1, 0], [0, 0]])
    assert x.gather(1, i).tolist() == [[1.0, 3.0], [2.0, 2.0]]
    assert x.scatter(1, i, 0.0).tolist() == [[0.0, 0.0], [0.0, 4.0]]
    assert x.scatter_add(1, i, x).tolist() == [[4.0, 4.0], [8.0, 4.0]]
    assert x.index_select(0, i64([1])).tolist() == [[2.0, 4.0]]
    assert x.masked_fill(x > 2, 0.0).tolist() == [[0.0, 1.0], [2.0, 0.0]]
    assert x.sort().values.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert x.argsort(dim=0).tolist() == [[1, 0], [0, 1]]
    assert x.topk(1).indices.tolist() == [[0], [1]]
    assert x.unique().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert (x > 2).nonzero().tolist() == [[0, 0], [1, 1]]
    assert x.take(i64([3])).tolist() == [4.0]
    assert [list(r) for r in x] == [[3.0, 1.0], [2.0, 4.0]]


# -- sorting and searching vs torch ------------------------------------------------------------------
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                  elements=st.sampled_from([0.0, 1.0, 2.5, -1.0, np.nan])), st.booleans(), st.integers(0, 2))
def test_stable_sort_and_argsort_match_torch_with_ties_and_nan(a, descending, dim):
    dim = dim % a.ndim
    got = ember.sort(ember.tensor(a), dim=dim, descending=descending, stable=True)
    want = torch.sort(tt(a), dim=dim, descending=descending, stable=True)
    assert_close(got.values, want.values.numpy())
    assert got.indices.tolist() == want.indices.tolist()
    assert ember.argsort(ember.tensor(a), dim, descending, stable=True).tolist() == want.indices.tolist()


def test_sort_and_topk_return_namedtuples_of_int64_indices_without_grad(rng):
    a = rng.standard_normal((3, 5))
    x = t64(a).requires_grad_()
    s = ember.sort(x)
    values, indices = s
    assert type(s).__name__ == "sort" and s.values is values and s.indices is indices
    assert indices.dtype is ember.int64 and not indices.requires_grad and values.requires_grad
    for largest in [True, False]:
        got = ember.topk(x, 3, dim=0 if largest else 1, largest=largest)
        want = torch.topk(tt(a), 3, dim=0 if largest else 1, largest=largest)
        assert type(got).__name__ == "topk"
        assert_close(got.values, want.values.numpy())
        assert got.indices.tolist() == want.indices.tolist() and got.indices.dtype is ember.int64


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_unique_matches_torch(dim):
    a = np.array([[3, 1, 3], [1, 1, 2], [3, 1, 3]])
    got = ember.unique(i64(a), return_inverse=True, return_counts=True, dim=dim)
    want = torch.unique(tt(a), return_inverse=True, return_counts=True, dim=dim)
    for g, w in zip(got, want):
        assert g.tolist() == w.tolist() and tuple(g.shape) == tuple(w.shape)
    assert ember.unique(t64([2.0, 1.0, 2.0])).tolist() == [1.0, 2.0]


def test_nonzero_and_argwhere_match_torch(rng):
    a = rng.integers(0, 2, size=(3, 4))
    x, t = i64(a), tt(a)
    assert ember.nonzero(x).tolist() == torch.nonzero(t).tolist()
    assert [g.tolist() for g in ember.nonzero(x, as_tuple=True)] == [w.tolist() for w in torch.nonzero(t, as_tuple=True)]
    assert ember.argwhere(x).tolist() == torch.argwhere(t).tolist()
    assert ember.nonzero(x).dtype is ember.int64
    assert_close(x[ember.nonzero(x, as_tuple=True)], a[a.nonzero()])


def test_searchsorted_and_bucketize_match_torch(rng):
    seq = np.sort(rng.integers(0, 10, size=(2, 6)), axis=1)
    vals = rng.integers(-1, 11, size=(2, 4))
    for right in [False, True]:
        assert ember.searchsorted(i64(seq[0]), i64(vals), right=right).tolist() == \
            torch.searchsorted(tt(seq[0]), tt(vals), right=right).tolist()
        assert ember.searchsorted(i64(seq), i64(vals), right=right).tolist() == \
            torch.searchsorted(tt(seq), tt(vals), right=right).tolist()
        assert ember.bucketize(i64(vals), i64(seq[1]), right=right).tolist() == \
            torch.bucketize(tt(vals), tt(seq[1]), right=right).tolist()
    assert ember.searchsorted(i64(seq[0]), i64(vals), side="right").tolist() == \
        torch.searchsorted(tt(seq[0]), tt(vals), side="right").tolist()
    assert ember.searchsorted(i64(seq[0]), 5, out_int32=True).dtype is ember.int32
    unsorted = rng.permutation(seq[0])
    order = np.argsort(unsorted, kind="stable")
    assert ember.searchsorted(i64(unsorted), i64(vals), sorter=i64(order)).tolist() == \
        torch.searchsorted(tt(unsorted), tt(vals), sorter=tt(order)).tolist()


def test_vmap_of_sort_argsort_and_searchsorted_matches_loop(rng):
    x = rng.standard_normal((4, 3, 5))
    check_vmap(lambda v: ember.argsort(v, dim=0).double(), [x], [0])
    check_vmap(lambda v: ember.topk(v, 2, dim=0).values, [x], [2])
    seq = np.sort(rng.standard_normal((4, 6)), axis=1)
    vals = rng.standard_normal((4, 3))
    check_vmap(lambda s, v: ember.searchsorted(s, v).double(), [seq, vals], [0, 0])
    check_vmap(lambda s, v: ember.searchsorted(s, v).double(), [seq[0], vals], [None, 0])
    check_vmap(lambda s, v: ember.searchsorted(s, v).double(), [seq, vals[0]], [0, None])


# -- errors --------------------------------------------------------------------------------------------
def _message(exc_type, fn):
    with pytest.raises(exc_type) as info:
        fn()
    return str(info.value)


def test_out_of_range_index_raises_indexing_error_naming_shape_and_index():
    x = ember.zeros(3, 4)
    msg = _message(IndexingError, lambda: x[5])
    assert "__getitem__" in msg and "index 5" in msg and "(3, 4)" in msg and "test_indexing.py" in msg
    msg = _message(IndexingError, lambda: x[:, [0, -5]])
    assert "index -5" in msg and "dimension 1" in msg and "size 4" in msg
    msg = _message(IndexingError, lambda: x.__setitem__((0, ember.tensor([9])), 1.0))
    assert "__setitem__" in msg and "index 9" in msg
    assert "too many indices" in _message(IndexingError, lambda: x[0, 0, 0])
    assert "mask" in _message(IndexingError, lambda: x[ember.ones(4, dtype=ember.bool)])
    assert "integer or bool" in _message(IndexingError, lambda: x[ember.ones(2)])
    assert "step" in _message(IndexingError, lambda: x[::0])


def test_gather_and_scatter_errors_name_the_op_and_shapes():
    x = ember.zeros(3, 4)
    msg = _message(ShapeError, lambda: ember.gather(x, 1, i64([0, 1])))
    assert "gather" in msg and "(2,)" in msg and "(3, 4)" in msg
    msg = _message(ShapeError, lambda: ember.gather(x, 0, i64(np.zeros((2, 5)))))
    assert "gather" in msg and "dimension 1" in msg
    msg = _message(IndexingError, lambda: ember.gather(x, 1, i64([[4]])))
    assert "gather" in msg and "index 4" in msg and "size 4" in msg
    assert "gather" in _message(DTypeError, lambda: ember.gather(x, 1, ember.zeros(3, 1)))
    assert "scatter_add" in _message(ShapeError, lambda: ember.scatter_add(x, 0, i64([[0, 1]]), ember.ones(1, 1)))
    assert "out of range" in _message(IndexingError, lambda: ember.gather(x, 2, i64([[0]])))
    assert "index_select" in _message(IndexingError, lambda: ember.index_select(x, 0, i64([3])))
    assert "index_add" in _message(ShapeError, lambda: ember.index_add(x, 0, i64([0]), ember.ones(2, 4)))
    assert "scatter_reduce" in _message(DTypeError, lambda: ember.scatter_reduce(x, 0, i64([[0]]), x, "max"))


def test_mask_and_value_errors():
    x = ember.zeros(2, 3)
    assert "boolean" in _message(DTypeError, lambda: ember.masked_fill(x, ember.ones(2, 3), 1.0))
    assert "0-d" in _message(ShapeError, lambda: ember.masked_fill(x, x > 0, ember.ones(2)))
    msg = _message(ShapeError, lambda: x.__setitem__(0, ember.ones(2)))
    assert "__setitem__" in msg and "(2,)" in msg and "(3,)" in msg
    assert "topk" in _message(IndexingError, lambda: ember.topk(x, 4))


def test_data_dependent_ops_refuse_vmap():
    with pytest.raises(TraceError, match="nonzero"):
        vmap(lambda v: ember.nonzero(v))(ember.ones(2, 3))
    with pytest.raises(TraceError):
        vmap(lambda v: v[v > 0])(ember.ones(2, 3))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.sampled_from([(1,), (40,), (3, 5), (2, 3, 4)]), st.sampled_from([(), (3,), (2, 2)]),
       st.integers(0, 2**16))
def test_index_put_accumulate_over_rows_matches_torch(rows, n, tail, seed):
    """One index over the first axis (an embedding's gradient, the index a batch of sequences too):
    repeated and negative rows accumulate."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows,) + tail)
    idx = rng.integers(-rows, rows, n)
    vals = rng.standard_normal(n + tail)
    got = ember.index_put(t64(x), (i64(idx),), t64(vals), accumulate=True)
    want = torch.index_put(tt(x), (tt(idx),), tt(vals), accumulate=True).numpy()
    assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), (-1, False)])
def test_median_nanmedian_kthvalue_match_torch(dim, keepdim, rng):
    x = rng.standard_normal((5, 6))
    with_nan = x.copy()
    with_nan[1, 2] = np.nan
    with_nan[3, :4] = np.nan
    for name, data in [("median", with_nan), ("nanmedian", with_nan), ("median", x)]:
        ours = getattr(ember, name)(t64(data), dim, keepdim)
        theirs = getattr(torch, name)(torch.from_numpy(data), dim, keepdim)
        np.testing.assert_array_equal(np_of(ours.values), theirs.values.numpy())
        np.testing.assert_array_equal(np_of(ours.indices), theirs.indices.numpy())
        np.testing.assert_array_equal(np_of(getattr(ember, name)(t64(data))),
                                      getattr(torch, name)(torch.from_numpy(data)).numpy())
    for k in (1, 3, x.shape[dim]):
        ours, theirs = ember.kthvalue(t64(x), k, dim, keepdim), torch.kthvalue(torch.from_numpy(x), k, dim, keepdim)
        np.testing.assert_array_equal(np_of(ours.values), theirs.values.numpy())
        np.testing.assert_array_equal(np_of(ours.indices), theirs.indices.numpy())
    check_grad(lambda t: ember.median(t, dim, keepdim).values, [x])
    check_grad(lambda t: ember.kthvalue(t, 2, dim, keepdim).values, [x])
    check_vmap(lambda t: ember.nanmedian(t, -1).values, [with_nan], [0])
    assert_close(ember.jit(lambda t: t.median(dim, keepdim).values)(t64(x)),
                 torch.median(torch.from_numpy(x), dim, keepdim).values.numpy())
    assert ember.tensor([3, 1, 2, 5]).median().item() == 2  # integers: the lower median
    with pytest.raises(IndexingError, match="kthvalue"):
        ember.kthvalue(t64(x), 0)


def test_isin_bincount_histc_match_torch(rng):
    e, t = rng.integers(0, 10, (3, 4)), rng.integers(0, 10, 5)
    for invert in (False, True):
        ours = ember.isin(ember.tensor(e), ember.tensor(t), invert=invert)
        np.testing.assert_array_equal(ours.numpy(), torch.isin(torch.from_numpy(e), torch.from_numpy(t),
                                                                invert=invert).numpy())
    assert not ember.isin(ember.tensor([1.0, 2.0]), ember.tensor([])).numpy().any()
    jitted = ember.jit(lambda a, b: ember.isin(a, b))
    np.testing.assert_array_equal(jitted(ember.tensor(e), ember.tensor(t)).numpy(), np.isin(e, t))
    x, w = rng.integers(0, 7, 20), rng.standard_normal(20)
    np.testing.assert_array_equal(ember.bincount(ember.tensor(x)).numpy(), torch.bincount(torch.from_numpy(x)).numpy())
    np.testing.assert_allclose(ember.tensor(x).bincount(t64(w), minlength=10).numpy(),
                               torch.bincount(torch.from_numpy(x), torch.from_numpy(w), minlength=10).numpy())
    with pytest.raises(IndexingError, match="non-negative"):
        ember.bincount(ember.tensor([1, -1]))
    y = rng.standard_normal(50).astype(np.float32)
    for args in [(7,), (5, -1, 1), (3, 0, 0)]:
        np.testing.assert_array_equal(ember.histc(ember.tensor(y), *args).numpy(),
                                      torch.histc(torch.from_numpy(y), *args).numpy())


def test_msort_unravel_index_is_nonzero_match_torch(rng):
    x = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(ember.msort(t64(x)).numpy(), torch.msort(torch.from_numpy(x)).numpy())
    flat = np.array([0, 5, 11, -1])
    for ours, theirs in zip(ember.unravel_index(ember.tensor(flat), (3, 4)),
                            torch.unravel_index(torch.from_numpy(flat), (3, 4))):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(IndexingError, match="unravel_index"):
        ember.unravel_index(ember.tensor([12]), (3, 4))
    assert ember.is_nonzero(ember.tensor([0.5])) and not ember.is_nonzero(ember.tensor(0))
    with pytest.raises(EmberError, match="is_nonzero"):
        ember.is_nonzero(ember.ones(2))


def test_scatter_variants_match_torch_and_differentiate(rng):
    x = rng.standard_normal((3, 4, 5))
    tx = torch.from_numpy(x)
    for offset, d1, d2 in [(0, 0, 1), (1, 1, 2), (-2, 2, 0), (0, 2, 1)]:
        src = rng.standard_normal(tuple(tx.diagonal(offset, d1, d2).shape))
        np.testing.assert_array_equal(ember.diagonal_scatter(t64(x), t64(src), offset, d1, d2).numpy(),
                                      torch.diagonal_scatter(tx, torch.from_numpy(src), offset, d1, d2).numpy())
    check_grad(lambda a, b: ember.diagonal_scatter(a, b, 1, 1, 2), [x, rng.standard_normal((3, 4))])
    part = rng.standard_normal((3, 2, 5))
    np.testing.assert_array_equal(ember.slice_scatter(t64(x), t64(part), 1, 1, 4, 2).numpy(),
                                  torch.slice_scatter(tx, torch.from_numpy(part), 1, 1, 4, 2).numpy())
    check_grad(lambda a, b: ember.slice_scatter(a, b, 1, 1, 4, 2), [x, part])
    row = rng.standard_normal((3, 5))
    np.testing.assert_array_equal(t64(x).select_scatter(t64(row), 1, -1).numpy(),
                                  tx.select_scatter(torch.from_numpy(row), 1, -1).numpy())
    with pytest.raises(ShapeError, match="slice_scatter"):
        ember.slice_scatter(t64(x), t64(row), 1, 0, 2)
    mask, source = rng.random((1, 4, 5)) > 0.5, rng.standard_normal(60)
    ours = ember.masked_scatter(t64(x), ember.tensor(mask), t64(source))
    np.testing.assert_array_equal(ours.numpy(), tx.masked_scatter(torch.from_numpy(mask), torch.from_numpy(source)).numpy())
    check_grad(lambda a, b: ember.masked_scatter(a, ember.tensor(mask), b), [x, source])
    jitted = ember.jit(lambda a, b: a.masked_scatter(ember.tensor(mask), b) * 2)
    assert_close(jitted(t64(x), t64(source)), ours.numpy() * 2)
    with pytest.raises(ShapeError, match="masked_scatter"):
        ember.masked_scatter(t64(x), ember.tensor(mask), t64(source[:3]))


def test_mode_and_unique_consecutive_match_torch(rng):
    x = rng.integers(0, 4, (5, 7))
    for dim, keepdim in [(1, False), (0, True), (-1, True)]:
        ours, theirs = ember.mode(ember.tensor(x), dim, keepdim), torch.mode(torch.from_numpy(x), dim, keepdim)
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    smooth = np.round(rng.standard_normal((4, 6)), 0)
    picked = ember.mode(t64(smooth), 1).indices.numpy()
    gradient = ember.func.grad(lambda t: ember.mode(t, 1).values.sum())(t64(smooth)).numpy()
    expected = np.zeros_like(smooth)
    expected[np.arange(4), picked] = 1.0  # (a step function of ties: finite differences do not apply)
    np.testing.assert_array_equal(gradient, expected)
    assert_close(ember.jit(lambda t: t.mode(0).values)(t64(smooth)), torch.mode(torch.from_numpy(smooth), 0).values.numpy())
    runs = np.array([1, 1, 2, 2, 3, 1, 1])
    for ours, theirs in zip(ember.unique_consecutive(ember.tensor(runs), True, True),
                            torch.unique_consecutive(torch.from_numpy(runs), return_inverse=True, return_counts=True)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    rows = np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3], [1, 1, 2]])
    for ours, theirs in zip(ember.tensor(rows).unique_consecutive(True, True, dim=0),
                            torch.unique_consecutive(torch.from_numpy(rows), return_inverse=True,
                                                     return_counts=True, dim=0)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
