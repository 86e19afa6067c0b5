"""Shape and movement ops, driven by one table: values vs PyTorch (the same call on both libraries),
gradients and JVPs vs finite differences, vmap vs a loop; then NumPy properties on random shapes, views
and version counters, dtype promotion of cat, and error messages."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ember
from ember._core.primitives.movement import static_slice
from ember.errors import AutogradError, EmberError, IndexingError, ShapeError

from helpers import TORCH_DTYPES, assert_close, check_grad, check_jvp, check_vmap, np_of, t64, torch

F = torch.nn.functional


@dataclass
class Op:
    name: str
    fn: Callable                  # called on ember tensors and, unless `ref` is given, on torch tensors
    shapes: tuple                 # operand shapes
    ref: Callable | None = None   # torch reference when the call differs
    view: bool = False            # the (first) result shares storage with the first operand


def _join(out, lib):
    """Tuple results (split, chunk…) become one flat tensor so every check sees a single output."""
    if isinstance(out, (tuple, list)):
        return lib.cat([p.reshape(-1) for p in out])
    return out


def run_ember(op: Op):
    return lambda *xs: _join(op.fn(*xs), ember)


def run_torch(op: Op, arrays):
    out = (op.ref or op.fn)(*[torch.from_numpy(np.array(a)) for a in arrays])
    return _join(out, torch).numpy()


OPS = [
    Op("reshape", lambda x: x.reshape(4, -1), ((2, 3, 4),), view=True),
    Op("reshape-copy", lambda x: x.mT.reshape(-1), ((3, 4),)),
    Op("view", lambda x: x.view(6, 4), ((2, 3, 4),), view=True),
    Op("squeeze-all", lambda x: x.squeeze(), ((2, 1, 3, 1),), view=True),
    Op("squeeze-dim", lambda x: x.squeeze(1), ((2, 1, 3, 1),), view=True),
    Op("squeeze-tuple", lambda x: x.squeeze((0, 3)), ((2, 1, 3, 1),), view=True),
    Op("unsqueeze", lambda x: x.unsqueeze(-1), ((2, 3),), view=True),
    Op("flatten", lambda x: x.flatten(1), ((2, 3, 4),), view=True),
    Op("flatten-range", lambda x: x.flatten(0, 1), ((2, 3, 4),), view=True),
    Op("unflatten", lambda x: x.unflatten(1, (2, -1)), ((3, 4),), view=True),
    Op("expand", lambda x: x.expand(2, -1, 4), ((3, 1),)),
    Op("permute", lambda x: x.permute(2, 0, 1), ((2, 3, 4),), view=True),
    Op("transpose", lambda x: x.transpose(0, -1), ((2, 3, 4),), view=True),
    Op("swapaxes", lambda x: x.swapaxes(0, 1), ((2, 3),), view=True),
    Op("movedim", lambda x: x.movedim((0, 1), (2, 0)), ((2, 3, 4),), view=True),
    Op("t", lambda x: x.t(), ((2, 3),), view=True),
    Op("mT", lambda x: x.mT, ((2, 3, 4),), view=True),
    Op("narrow", lambda x: x.narrow(1, 1, 2), ((3, 4),), view=True),
    Op("narrow-negative", lambda x: x.narrow(0, -2, 2), ((3, 4),), view=True),
    Op("slice-steps", lambda x: static_slice(x, (1, 0), (5, 6), (2, 4)), ((5, 6),),
       ref=lambda x: x[1:5:2, 0:6:4], view=True),
    Op("cat", lambda a, b: ember.cat([a, b]), ((2, 3), (1, 3)), ref=lambda a, b: torch.cat([a, b])),
    Op("cat-last", lambda a, b: ember.cat([a, b, a], -1), ((2, 3), (2, 1)),
       ref=lambda a, b: torch.cat([a, b, a], -1)),
    Op("stack", lambda a, b: ember.stack([a, b], 1), ((2, 3), (2, 3)), ref=lambda a, b: torch.stack([a, b], 1)),
    Op("hstack", lambda a, b: ember.hstack([a, b]), ((2, 3), (2, 1)), ref=lambda a, b: torch.hstack([a, b])),
    Op("vstack", lambda a, b: ember.vstack([a, b]), ((3,), (2, 3)), ref=lambda a, b: torch.vstack([a, b])),
    Op("dstack", lambda a, b: ember.dstack([a, b]), ((2, 3), (2, 3)), ref=lambda a, b: torch.dstack([a, b])),
    Op("split-size", lambda x: x.split(2, dim=1), ((2, 5),)),
    Op("split-sizes", lambda x: x.split([1, 3, 1], 1), ((2, 5),)),
    Op("chunk", lambda x: x.chunk(3), ((5, 2),)),
    Op("tensor_split-sections", lambda x: x.tensor_split(3, 1), ((2, 7),)),
    Op("tensor_split-indices", lambda x: x.tensor_split([1, 5, 2]), ((4, 2),)),
    Op("unbind", lambda x: x.unbind(1), ((2, 3),)),
    Op("pad-constant", lambda x: ember.pad(x, (1, 2, 0, 1), value=0.5), ((2, 3),),
       ref=lambda x: F.pad(x, (1, 2, 0, 1), value=0.5)),
    Op("pad-crop", lambda x: ember.pad(x, (-1, 2, 1, -1)), ((3, 4),), ref=lambda x: F.pad(x, (-1, 2, 1, -1))),
    Op("pad-reflect", lambda x: ember.pad(x, (2, 1, 1, 2), mode="reflect"), ((2, 3, 4),),
       ref=lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect")),
    Op("pad-replicate", lambda x: ember.pad(x, (2, 1, 0, 3), mode="replicate"), ((2, 3, 4),),
       ref=lambda x: F.pad(x, (2, 1, 0, 3), mode="replicate")),
    Op("pad-circular", lambda x: ember.pad(x, (3, 1, 2, 0), mode="circular"), ((2, 3, 4),),
       ref=lambda x: F.pad(x, (3, 1, 2, 0), mode="circular")),
    Op("flip", lambda x: x.flip(0, 2), ((2, 3, 4),)),
    Op("fliplr", lambda x: x.fliplr(), ((2, 3),)),
    Op("roll", lambda x: x.roll(2, 1), ((3, 4),)),
    Op("roll-dims", lambda x: x.roll((1, -1), (0, 1)), ((3, 4),)),
    Op("roll-flat", lambda x: x.roll(5), ((3, 4),)),
    Op("repeat", lambda x: x.repeat(2, 1, 3), ((2, 3),)),
    Op("tile", lambda x: x.tile((2,)), ((2, 3),)),
    Op("repeat_interleave", lambda x: x.repeat_interleave(2, dim=1), ((2, 3),)),
    Op("repeat_interleave-counts", lambda x: x.repeat_interleave(ember.tensor([1, 0, 3]), dim=0), ((3, 2),),
       ref=lambda x: x.repeat_interleave(torch.tensor([1, 0, 3]), dim=0)),
    Op("repeat_interleave-flat", lambda x: x.repeat_interleave(2), ((2, 3),)),
    Op("tril", lambda x: x.tril(), ((3, 4),)),
    Op("triu-batched", lambda x: x.triu(1), ((2, 3, 4),)),
    Op("tril-negative", lambda x: x.tril(-1), ((4, 3),)),
    Op("diagonal", lambda x: x.diagonal(), ((3, 4),), view=True),
    Op("diagonal-offset", lambda x: x.diagonal(1, 0, 2), ((3, 2, 4),), view=True),
    Op("diagonal-negative", lambda x: x.diagonal(-1, -1, -2), ((2, 4, 3),), view=True),
    Op("diag-vector", lambda x: ember.diag(x, 1), ((3,),), ref=lambda x: torch.diag(x, 1)),
    Op("diag-matrix", lambda x: ember.diag(x, -1), ((3, 4),), ref=lambda x: torch.diag(x, -1)),
    Op("diag_embed", lambda x: ember.diag_embed(x, 1, 0, 2), ((2, 3),), ref=lambda x: torch.diag_embed(x, 1, 0, 2)),
    Op("contiguous", lambda x: x.mT.contiguous(), ((2, 3),)),
]
IDS = [op.name for op in OPS]


def _inputs(op: Op, rng):
    return [rng.standard_normal(s) for s in op.shapes]


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_values_match_torch(op, rng):
    xs = _inputs(op, rng)
    got = run_ember(op)(*[t64(x) for x in xs])
    want = run_torch(op, xs)
    assert tuple(got.shape) == want.shape
    assert_close(got, want, rtol=0, atol=0)


def _squared(fn):
    """`fn` followed by a square, so second derivatives go through the op's VJP rules too."""
    def sq(*xs):
        out = fn(*xs)
        return out * out

    return sq


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_gradients_match_finite_differences_to_second_order(op, rng):
    check_grad(_squared(run_ember(op)), _inputs(op, rng))


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_jvp_matches_finite_differences(op, rng):
    check_jvp(run_ember(op), _inputs(op, rng))


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_vmap_matches_loop(op, rng):
    fn = run_ember(op)
    n = len(op.shapes)
    check_vmap(fn, [rng.standard_normal((3,) + s) for s in op.shapes], [0] * n)
    last = [rng.standard_normal(s + (2,)) for s in op.shapes]  # batch dimension last
    check_vmap(fn, last, [len(s) for s in op.shapes])
    if n == 2:
        check_vmap(fn, [rng.standard_normal(op.shapes[0]), rng.standard_normal((2,) + op.shapes[1])], [None, 0])


@pytest.mark.parametrize("op", [o for o in OPS if o.view], ids=[o.name for o in OPS if o.view])
def test_views_share_storage_and_version(op, rng):
    x = t64(rng.standard_normal(op.shapes[0]))
    tx = torch.from_numpy(np_of(x).copy())
    y = _first(op.fn(x))
    assert np.shares_memory(np_of(y), np_of(x))
    before = x._version
    y.add_(1.0)
    _first((op.ref or op.fn)(tx)).add_(1.0)
    assert x._version == before + 1
    assert_close(x, tx.numpy(), rtol=0, atol=0)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("op", [o for o in OPS if not o.view and o.name != "expand"],
                         ids=[o.name for o in OPS if not o.view and o.name != "expand"])
def test_copies_do_not_alias_their_input(op, rng):
    xs = [t64(x) for x in _inputs(op, rng)]
    before = np_of(xs[0]).copy()
    out = run_ember(op)(*xs)
    out.add_(1.0)
    assert xs[0]._version == 0
    assert_close(xs[0], before, rtol=0, atol=0)


def test_split_parts_are_views_written_through():
    x = ember.arange(10.0).reshape(2, 5)
    a, b = x.split([2, 3], dim=1)
    b.mul_(0)
    assert x.tolist() == [[0.0, 1.0, 0.0, 0.0, 0.0], [5.0, 6.0, 0.0, 0.0, 0.0]]
    assert x._version == a._version == 1


def test_expand_is_a_read_only_view():
    x = ember.zeros(3, 1)
    y = x.expand(3, 4)
    assert np.shares_memory(np_of(y), np_of(x))
    with pytest.raises(AutogradError, match="expanded"):
        y.add_(1.0)


def test_in_place_write_to_a_base_invalidates_a_saved_view():
    leaf = ember.ones(3, 4, requires_grad=True)
    x = leaf * 1
    y = x.narrow(1, 0, 2)
    z = (y * y).sum()
    x.add_(1.0)
    with pytest.raises(AutogradError, match="modified by an in-place operation"):
        z.backward()


def test_reshape_copies_when_no_view_exists_and_view_refuses():
    x = ember.arange(6.0).reshape(2, 3)
    y = x.t().reshape(-1)
    assert not np.shares_memory(np_of(y), np_of(x))
    assert y.tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    y.add_(1.0)
    assert x._version == 0
    with pytest.raises(ShapeError, match=r"view.*reshape"):
        x.t().view(-1)


def test_contiguous_returns_self_or_a_row_major_copy():
    x = ember.zeros(2, 3)
    assert x.contiguous() is x
    y = x.t()
    assert not y.is_contiguous()
    assert y.contiguous().is_contiguous() and tuple(y.contiguous().shape) == (3, 2)


def test_tril_and_triu_in_place_methods():
    x = ember.ones(3, 3)
    x.tril_()
    assert x.tolist() == torch.ones(3, 3).tril_().tolist()
    assert ember.ones(2, 2, dtype=ember.bool).triu().dtype is ember.bool


def test_repeat_interleave_of_repeats_alone_matches_torch():
    assert ember.repeat_interleave(ember.tensor([2, 0, 3])).tolist() == \
        torch.repeat_interleave(torch.tensor([2, 0, 3])).tolist()


def test_second_derivative_through_pad_and_slice_is_exact(rng):
    x = t64(rng.standard_normal((3, 4))).requires_grad_()
    y = ember.pad(static_slice(x, (0, 1), (3, 4), (2, 2)), (1, 1), mode="reflect")
    (g,) = ember.autograd.grad((y ** 3).sum(), x, create_graph=True)
    (h,) = ember.autograd.grad(g.sum(), x)
    tx = torch.from_numpy(np_of(x).copy()).requires_grad_()
    ty = F.pad(tx[0:3:2, 1:4:2], (1, 1), mode="reflect")
    (tg,) = torch.autograd.grad((ty ** 3).sum(), tx, create_graph=True)
    (th,) = torch.autograd.grad(tg.sum(), tx)
    assert_close(g, tg.detach().numpy(), rtol=1e-12)
    assert_close(h, th.numpy(), rtol=1e-12)


# -- properties on random shapes ----------------------------------------------------------------------------
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


@given(shapes, st.data())
def test_squeeze_unsqueeze_flatten_follow_numpy(shape, data):
    x = np.arange(int(np.prod(shape))).reshape(shape)
    t = ember.tensor(x)
    d = data.draw(st.integers(-len(shape) - 1, len(shape)))
    assert_close(t.unsqueeze(d), np.expand_dims(x, d), rtol=0, atol=0)
    assert tuple(t.squeeze().shape) == np.squeeze(x).shape
    assert tuple(t.flatten().shape) == (x.size,)
    if shape:
        lo = data.draw(st.integers(0, len(shape) - 1))
        hi = data.draw(st.integers(lo, len(shape) - 1))
        assert tuple(t.flatten(lo, hi).shape) == tuple(torch.zeros(shape).flatten(lo, hi).shape)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=3), st.lists(st.integers(0, 3), min_size=1, max_size=4),
       st.data())
def test_cat_and_split_round_trip_like_numpy(base, lengths, data):
    d = data.draw(st.integers(0, len(base) - 1))
    parts = []
    for i, n in enumerate(lengths):
        shape = list(base)
        shape[d] = n
        parts.append(np.full(shape, float(i)) + np.arange(int(np.prod(shape))).reshape(shape))
    joined = ember.cat([t64(p) for p in parts], d - len(base))
    assert_close(joined, np.concatenate(parts, d), rtol=0, atol=0)
    for got, want in zip(joined.split(lengths, d), parts):
        assert_close(got, want, rtol=0, atol=0)
    sizes = data.draw(st.integers(1, 4))
    got = [tuple(p.shape) for p in joined.split(sizes, d)]
    assert got == [tuple(p.shape) for p in torch.from_numpy(np.concatenate(parts, d)).split(sizes, d)]


@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.data())
def test_static_slice_and_its_gradient_follow_numpy(shape, data):
    x = np.random.default_rng(0).standard_normal(shape)
    bounds = [(data.draw(st.integers(-6, 6)), data.draw(st.integers(-6, 6)), data.draw(st.integers(1, 3)))
              for _ in shape]
    index = tuple(slice(a, b, s) for a, b, s in bounds)
    t = t64(x).requires_grad_()
    y = static_slice(t, *zip(*bounds))
    assert_close(y, x[index], rtol=0, atol=0)
    if y.numel():
        g = np.random.default_rng(1).standard_normal(y.shape)
        (got,) = ember.autograd.grad(y, t, t64(g))
        want = np.zeros_like(x)
        want[index] = g
        assert_close(got, want, rtol=0, atol=0)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_constant_pad_follows_torch(shape, data):
    x = np.random.default_rng(0).standard_normal(shape)
    k = data.draw(st.integers(1, len(shape)))
    amounts = []
    for n in reversed(shape[-k:]):
        amounts += [data.draw(st.integers(-n + 1, 3)), data.draw(st.integers(0, 3))]
    got = ember.pad(t64(x), amounts, value=-1.5)
    assert_close(got, F.pad(torch.from_numpy(x), amounts, value=-1.5).numpy(), rtol=0, atol=0)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_roll_and_flip_follow_numpy(shape, data):
    x = np.arange(int(np.prod(shape))).reshape(shape)
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    s = data.draw(st.integers(-7, 7))
    assert ember.tensor(x).roll(s, d).tolist() == np.roll(x, s, d).tolist()
    assert ember.tensor(x).roll(s).tolist() == np.roll(x, s).tolist()
    assert ember.tensor(x).flip(d).tolist() == np.flip(x, d).tolist()


_DT = [ember.bool, ember.uint8, ember.int8, ember.int32, ember.int64, ember.float16, ember.bfloat16,
       ember.float32, ember.float64]


@given(st.lists(st.sampled_from(_DT), min_size=1, max_size=3))
def test_cat_promotes_dtypes_like_torch(dts):
    got = ember.cat([ember.ones(2, dtype=d) for d in dts])
    want = torch.cat([torch.ones(2, dtype=TORCH_DTYPES[d]) for d in dts])
    assert TORCH_DTYPES[got.dtype] == want.dtype
    assert got.tolist() == want.tolist()


def test_cat_skips_legacy_empty_vectors_like_torch():
    got = ember.cat([ember.zeros(0), ember.ones(2, 3)])
    assert tuple(got.shape) == (2, 3)


def test_chunk_of_an_empty_dimension_matches_torch():
    assert [tuple(p.shape) for p in ember.zeros(0, 2).chunk(3)] == \
        [tuple(p.shape) for p in torch.zeros(0, 2).chunk(3)]


# -- errors --------------------------------------------------------------------------------------------------
def test_cat_of_mismatched_shapes_names_cat_and_both_shapes():
    with pytest.raises(ShapeError) as info:
        ember.cat([ember.zeros(2, 3), ember.zeros(4, 5)])
    msg = str(info.value)
    assert msg.startswith("cat") and "(2, 3)" in msg and "(4, 5)" in msg and "test_movement.py" in msg


@pytest.mark.parametrize("call, err, words", [
    (lambda: ember.cat([ember.zeros(2, 3), ember.zeros(3)]), ShapeError, ["cat", "(3,)"]),
    (lambda: ember.cat([ember.zeros(2, 3)], dim=2), IndexingError, ["cat", "dimension 2"]),
    (lambda: ember.cat([]), ShapeError, ["cat", "non-empty"]),
    (lambda: ember.cat([ember.tensor(1.0), ember.tensor(2.0)]), ShapeError, ["zero-dimensional"]),
    (lambda: ember.stack([ember.zeros(2), ember.zeros(3)]), ShapeError, ["stack", "(2,)", "(3,)"]),
    (lambda: ember.zeros(2, 3).squeeze(2), IndexingError, ["squeeze", "dimension 2"]),
    (lambda: ember.zeros(2, 3).unsqueeze(3), IndexingError, ["unsqueeze"]),
    (lambda: ember.zeros(2, 3).reshape(4, -1), ShapeError, ["reshape", "(4, -1)", "size 6"]),
    (lambda: ember.zeros(2, 3).flatten(1, 0), IndexingError, ["flatten", "start_dim"]),
    (lambda: ember.zeros(2, 3).unflatten(1, (2, 2)), ShapeError, ["unflatten"]),
    (lambda: ember.zeros(3).expand(-1, 3), ShapeError, ["broadcast_to", "leading"]),
    (lambda: ember.zeros(2, 3).expand(2, 4), ShapeError, ["broadcast_to", "(2, 3)"]),
    (lambda: ember.zeros(2, 3).narrow(1, 2, 2), IndexingError, ["narrow", "exceeds", "size 3"]),
    (lambda: ember.zeros(2, 3).narrow(0, -3, 1), IndexingError, ["narrow", "start -3"]),
    (lambda: ember.zeros(2, 5).split([2, 2], 1), ShapeError, ["split", "[2, 2]", "5"]),
    (lambda: ember.zeros(2).chunk(0), ShapeError, ["chunk"]),
    (lambda: ember.zeros(2, 3).movedim(0, 5), IndexingError, ["movedim"]),
    (lambda: ember.zeros(2, 3, 4).t(), ShapeError, ["t", "<= 2"]),
    (lambda: ember.pad(ember.zeros(2, 3), (1,)), ShapeError, ["pad", "pairs"]),
    (lambda: ember.pad(ember.zeros(2, 3), (3, 0), mode="reflect"), ShapeError, ["pad", "reflect", "size 3"]),
    (lambda: ember.pad(ember.zeros(2, 3), (4, 0), mode="circular"), ShapeError, ["pad", "circular"]),
    (lambda: ember.pad(ember.zeros(2, 3), (-2, -2)), ShapeError, ["pad", "negative"]),
    (lambda: ember.pad(ember.zeros(2, 3), (1, 1), mode="wrap"), EmberError, ["pad", "'wrap'"]),
    (lambda: ember.zeros(2, 3).flip(0, -2), IndexingError, ["flip", "more than once"]),
    (lambda: ember.zeros(2, 3).roll((1, 2), 0), ShapeError, ["roll", "same length"]),
    (lambda: ember.zeros(2, 3).repeat(2), ShapeError, ["repeat", "(2,)"]),
    (lambda: ember.zeros(3).repeat_interleave(ember.tensor([1, 2])), ShapeError, ["repeat_interleave"]),
    (lambda: ember.zeros(3).repeat_interleave(-1), ShapeError, ["repeat_interleave", "non-negative"]),
    (lambda: ember.zeros(3).tril(), ShapeError, ["tril", "2-d"]),
    (lambda: ember.zeros(3, 3).diagonal(0, 1, -1), IndexingError, ["diagonal", "different"]),
    (lambda: ember.diag(ember.zeros(2, 2, 2)), ShapeError, ["diag", "1-d or 2-d"]),
    (lambda: static_slice(ember.zeros(3), (0,), (3,), (0,)), IndexingError, ["slice", "positive"]),
], ids=lambda v: "" if callable(v) or isinstance(v, (list, type)) else str(v))
def test_bad_input_raises_a_clear_error(call, err, words):
    with pytest.raises(err) as info:
        call()
    msg = str(info.value)
    assert all(w in msg for w in words), msg
    assert "test_movement.py" in msg


def test_repeats_that_depend_on_a_batched_value_are_refused_under_vmap():
    with pytest.raises(ember.errors.TraceError):
        ember.func.vmap(lambda r: ember.ones(3).repeat_interleave(r))(ember.ones(2, 3, dtype=ember.int64))


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_jacobians_by_reverse_and_forward_mode_match_torch(op, rng):
    # jacrev vmaps the VJP rules (pad, slice, segment_sum… under vmap); jacfwd vmaps the JVP rules
    xs = _inputs(op, rng)
    argnums = tuple(range(len(xs)))
    want = torch.autograd.functional.jacobian(lambda *ts: _join((op.ref or op.fn)(*ts), torch),
                                              tuple(torch.from_numpy(x) for x in xs))
    for transform in (ember.func.jacrev, ember.func.jacfwd):
        got = transform(run_ember(op), argnums)(*[t64(x) for x in xs])
        for g, w in zip(got, want):
            assert_close(g, w.numpy(), rtol=0, atol=0)


def test_rot90_select_ravel_broadcast_tensors_match_torch(rng):
    x = rng.standard_normal((3, 4, 2))
    tx = torch.from_numpy(x)
    for k in range(-1, 5):
        for dims in [(0, 1), (1, 2), (2, 0)]:
            np.testing.assert_array_equal(ember.rot90(t64(x), k, dims).numpy(), torch.rot90(tx, k, dims).numpy())
    check_grad(lambda t: ember.rot90(t, 1, (0, 2)), [x])
    for dim, index in [(0, 2), (1, -1), (2, 0)]:
        np.testing.assert_array_equal(ember.select(t64(x), dim, index).numpy(), tx.select(dim, index).numpy())
    check_grad(lambda t: t.select(1, 2), [x])
    with pytest.raises(IndexingError, match="select"):
        ember.select(t64(x), 1, 4)
    np.testing.assert_array_equal(t64(x).ravel().numpy(), tx.ravel().numpy())
    a, b = ember.broadcast_tensors(ember.ones(3, 1), ember.arange(4))
    assert tuple(a.shape) == tuple(b.shape) == (3, 4) and b.tolist()[2] == [0, 1, 2, 3]


def test_stacking_and_splitting_helpers_match_torch(rng):
    blocks = [rng.standard_normal(s) for s in [(2,), (2, 3), ()]]
    np.testing.assert_array_equal(ember.block_diag(*map(t64, blocks)).numpy(),
                                  torch.block_diag(*map(torch.from_numpy, blocks)).numpy())
    check_grad(lambda a, b: ember.block_diag(a, b), blocks[:2])
    cols = [rng.standard_normal(3), rng.standard_normal((3, 2))]
    np.testing.assert_array_equal(ember.column_stack(list(map(t64, cols))).numpy(),
                                  torch.column_stack(list(map(torch.from_numpy, cols))).numpy())
    x = rng.standard_normal((4, 6, 2))
    for name, sections in [("hsplit", 3), ("hsplit", [1, 4]), ("vsplit", 2), ("dsplit", [1])]:
        ours, theirs = getattr(ember, name)(t64(x), sections), getattr(torch, name)(torch.from_numpy(x), sections)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ShapeError, match="equal"):
        ember.hsplit(t64(x), 4)
