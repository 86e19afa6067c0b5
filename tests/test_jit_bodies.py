"""What the callables of ember.cond, while_loop and scan may do, eagerly and under ember.jit, and in-place
writes of values that do not depend on the traced tensor (``x.copy_(ember.ones(3))``, ``x[:] = v``).

A branch or loop body is traced once into a sub-graph, so a random draw inside it would replay the same
numbers at every step and every call: it is refused with a TraceError telling to draw outside and pass
the numbers in. An in-place write whose new value is a constant, a captured tensor or a value of an
enclosing trace updates the argument as eager execution does."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import nn
from ember.errors import TraceError
from ember.func import vmap

from helpers import assert_close


# -- random draws inside control-flow callables -----------------------------------------------------------
def _cond_rand(x):
    return ember.cond(x.sum() > 0, lambda a: a + ember.rand(2), lambda a: a, x)


def _cond_dropout(x):
    return ember.cond(x.sum() > 0, lambda a: F.dropout(a, 0.5), lambda a: a, x)


def _cond_multinomial(x):
    return ember.cond(x.sum() > 0, lambda a: a + ember.multinomial(a.softmax(0), 1).float(), lambda a: a, x)


_DROPOUT = nn.Dropout(0.5)  # in training mode


def _cond_dropout_module(x):
    return ember.cond(x.sum() > 0, lambda a: a, _DROPOUT, x)


def _while_body_randn(x):
    return ember.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] + ember.randn(2)),
                            (ember.tensor(0), x))[1]


def _while_cond_rand(x):
    return ember.while_loop(lambda c: ember.rand(()) < 0.5, lambda c: c * 2, x)


def _scan_rand(x):
    return ember.scan(lambda c, t: (c + ember.rand(()), c), x.sum(), None, length=3)[1]


def _nested_rand(x):  # a draw in a cond branch inside a scan body
    return ember.scan(lambda c, t: (ember.cond(t > 0, lambda a: a * ember.rand(()), lambda a: a, c), c),
                      x.sum(), x)[1]


@pytest.mark.parametrize("fn, where", [
    (_cond_rand, "ember.cond"), (_cond_dropout, "ember.cond"), (_cond_multinomial, "ember.cond"),
    (_cond_dropout_module, "ember.cond"), (_while_body_randn, "ember.while_loop"),
    (_while_cond_rand, "ember.while_loop"), (_scan_rand, "ember.scan"), (_nested_rand, "ember.cond")],
    ids=["cond-rand", "cond-dropout", "cond-multinomial", "cond-dropout-module", "while-body", "while-cond",
         "scan", "nested"])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_random_draw_in_a_body_is_refused_and_leaves_the_generator_alone(fn, where, compiled):
    x = ember.ones(2)
    ember.manual_seed(5)
    state = ember.get_rng_state().tolist()
    with pytest.raises(TraceError, match=f"cannot be drawn inside .*{where}") as info:
        (ember.jit(fn) if compiled else fn)(x)
    assert "outside" in str(info.value) and "pass them in" in str(info.value)
    assert info.value.op in ("random_sample_at", "multinomial_at")  # the primitive is named
    assert ember.get_rng_state().tolist() == state  # the refused draw reserved nothing


def test_the_scan_refusal_says_to_pass_per_step_draws_in_xs():
    with pytest.raises(TraceError, match="leading axis of the scan length, in xs"):
        _scan_rand(ember.ones(2))


def _scan_noise_outside(x):
    """The pattern the refusal recommends: one draw per step, made outside and scanned over."""
    noise = ember.rand(3, 2)
    carry, ys = ember.scan(lambda c, n: (c + n, c * 1), x, noise)
    return ember.cat([carry[None], ys])


def _cond_noise_outside(x):
    return ember.cond(x.sum() > 0, lambda a, n: a + n, lambda a, n: a, x, ember.rand(2))


@pytest.mark.parametrize("fn", [_scan_noise_outside, _cond_noise_outside], ids=["scan", "cond"])
def test_draws_passed_in_are_new_at_every_step_and_call_as_eager(fn):
    x = ember.ones(2)
    compiled = ember.jit(fn)
    results = {}
    for name, f in (("eager", fn), ("jit", compiled)):
        ember.manual_seed(1)
        results[name] = [f(x).numpy() for _ in range(3)], ember.get_rng_state().tolist()
    assert results["jit"][1] == results["eager"][1]
    for a, b in zip(results["jit"][0], results["eager"][0]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(results["jit"][0][0], results["jit"][0][1])  # new numbers on every call


@pytest.mark.parametrize("branch", [lambda a: F.dropout(a, 0.0), lambda a: F.dropout(a, 0.5, training=False),
                                    nn.Dropout(0.5).eval()], ids=["p0", "training-false", "module-eval"])
def test_dropout_that_draws_nothing_still_works_in_a_branch(branch):
    def fn(x):
        return ember.cond(x.sum() > 0, branch, lambda a: -a, x)

    x = ember.tensor([1.0, 2.0])
    compiled = ember.jit(fn)
    for _ in range(3):
        assert_close(compiled(x), fn(x).numpy())
        assert_close(compiled(x), [1.0, 2.0])


# -- in-place writes of values that do not depend on the updated tensor ---------------------------------------
def _copy_ones(x):
    return x.copy_(ember.ones(3))


def _copy_zeros(x):
    return x.copy_(ember.zeros(3))


def _copy_full(x):
    return x.copy_(ember.full((3,), 2.0))


def _copy_broadcast(x):  # a source of another shape: broadcast by an op, as before
    return x.copy_(ember.full((1,), 4.0))


def _setitem_all(x):
    x[:] = ember.ones(3)
    return x * 2


def _setitem_ellipsis(x):
    x[...] = ember.zeros(3)
    return x + 1


_W = ember.tensor([7.0, 8.0, 9.0])


def _copy_captured(x):  # a tensor from outside: read when the compiled function runs
    return x.copy_(_W) * 1


def _copy_then_update(x):
    y = x.copy_(ember.ones(3))
    y.add_(x)  # the argument is the copied value from here on
    return y * 3


@pytest.mark.parametrize("fn", [_copy_ones, _copy_zeros, _copy_full, _copy_broadcast, _setitem_all,
                                _setitem_ellipsis, _copy_captured, _copy_then_update],
                         ids=["copy-ones", "copy-zeros", "copy-full", "copy-broadcast", "setitem-slice",
                              "setitem-ellipsis", "copy-captured", "copy-then-update"])
def test_inplace_write_of_a_value_made_inside_matches_eager(fn):
    compiled = ember.jit(fn)
    for call in range(3):
        start = np.array([1.0, -2.0, 3.0], np.float32) + call
        _W.copy_(ember.tensor([7.0, 8.0, 9.0]) + call)
        a, b = ember.tensor(start), ember.tensor(start)
        expected = fn(a).numpy().copy()
        got = compiled(b)
        assert_close(got, expected)
        assert_close(b, a.numpy())  # the argument was updated in place, as eagerly
    assert compiled.compile_count == 1


def test_inplace_copy_of_an_outer_value_inside_a_body_matches_eager():
    def fn(x, w):
        return ember.scan(lambda c, t: ((c * 1).copy_(w) + t, c), x, ember.ones(2, 3))

    compiled = ember.jit(fn)
    for call in range(3):
        x, w = ember.zeros(3) + call, ember.tensor([1.0, 2.0, 3.0]) * call
        for got, want in zip(compiled(x, w), fn(x, w)):
            assert_close(got, want.numpy())


def test_inplace_copy_of_a_constant_under_vmap_matches_a_loop():
    xs = ember.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = vmap(lambda x: x.copy_(ember.ones(3)) * 2)(xs.clone())
    assert_close(out, np.full((2, 3), 2.0))


def test_writing_a_value_of_an_inner_vmap_into_an_outer_tensor_is_refused():
    def fn(x, vs):
        vmap(lambda v: x.add_(v))(vs)
        return x

    with pytest.raises(TraceError, match="compute the result out of place"):
        ember.jit(fn)(ember.zeros(3), ember.ones(2, 3))


# -- in-place updates of a callable's own arguments ------------------------------------------------------------
# An operand of cond / while_loop / scan is a value: an in-place update inside the callable acts on the
# callable's own copy, as the same function written out of place would, and the caller's tensor is left alone.
def _scan_inplace(init, xs):
    def body(c, x):
        c.add_(x)
        c.mul_(x)
        return c, c * 2
    return ember.scan(body, init, xs)


def _scan_out_of_place(init, xs):
    def body(c, x):
        c = (c + x) * x
        return c, c * 2
    return ember.scan(body, init, xs)


def _scan_x_inplace(init, xs):  # the slice of xs a step gets is the step's own too
    return ember.scan(lambda c, x: (c + x.mul_(2), x.sin_()), init, xs)


def _scan_x_out_of_place(init, xs):
    return ember.scan(lambda c, x: (c + x * 2, (x * 2).sin()), init, xs)


def _scan_views_inplace(init, xs):  # writes through views of the carry, and a view read after its base changed
    def body(c, x):
        v = c[:2]
        c[1:] = x[1:] * 2
        v.add_(1.0)
        return c, v * 1
    return ember.scan(body, init, xs)


def _scan_views_out_of_place(init, xs):
    def body(c, x):
        c = ember.cat([c[:1], x[1:] * 2])
        c = ember.cat([c[:2] + 1.0, c[2:]])
        return c, c[:2] * 1
    return ember.scan(body, init, xs)


def _cond_inplace(init, xs):
    def true_fn(a, b):
        a.mul_(2.0)
        return a + b.sum(0)

    def false_fn(a, b):
        a.sub_(b[0])
        return a * 3
    return ember.cond(init.sum() > 0, true_fn, false_fn, init, xs)


def _cond_out_of_place(init, xs):
    return ember.cond(init.sum() > 0, lambda a, b: a * 2.0 + b.sum(0), lambda a, b: (a - b[0]) * 3, init, xs)


def _while_inplace(init, xs):
    def body(c):
        i, v = c
        i.add_(1)
        v.mul_(xs[0] + 1.0)
        return i, v
    return ember.while_loop(lambda c: c[0] < 3, body, (ember.tensor(0), init))[1]


def _while_out_of_place(init, xs):
    return ember.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * (xs[0] + 1.0)),
                            (ember.tensor(0), init))[1]


def _while_cond_inplace(init, xs):  # the update in cond_fun is cond_fun's own: body_fun sees the carry
    return ember.while_loop(lambda c: c.add_(10.0).sum() < 40.0, lambda c: c.add_(1.0), init)


def _while_cond_out_of_place(init, xs):
    return ember.while_loop(lambda c: (c + 10.0).sum() < 40.0, lambda c: c + 1.0, init)


_INPLACE_PAIRS = [(_scan_inplace, _scan_out_of_place), (_scan_x_inplace, _scan_x_out_of_place),
                  (_scan_views_inplace, _scan_views_out_of_place), (_cond_inplace, _cond_out_of_place),
                  (_while_inplace, _while_out_of_place), (_while_cond_inplace, _while_cond_out_of_place)]
_INPLACE_IDS = ["scan-carry", "scan-xs", "scan-views", "cond", "while-body", "while-cond"]


def _operands(call: int = 0, sign: float = 1.0):
    rng = np.random.default_rng(call)
    init = ember.tensor((sign * (rng.random(3) + 0.5)).astype(np.float32))
    xs = ember.tensor(rng.random((4, 3)).astype(np.float32))
    return init, xs


@pytest.mark.parametrize("inplace_fn, reference", _INPLACE_PAIRS, ids=_INPLACE_IDS)
@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["pos", "neg"])
def test_inplace_update_of_an_argument_in_a_body_matches_out_of_place_eagerly_and_compiled(
        inplace_fn, reference, sign):
    compiled = ember.jit(inplace_fn)
    for call in range(3):
        init, xs = _operands(call, sign)
        before = (init.numpy().copy(), xs.numpy().copy())
        want = [np.asarray(w.numpy()) for w in _as_list(reference(init, xs))]
        for got in (inplace_fn(init, xs), compiled(init, xs)):
            for g, w in zip(_as_list(got), want):
                assert_close(g, w, rtol=1e-5, atol=1e-6)
        assert_close(init, before[0])  # the operands are values: the caller's tensors are not changed
        assert_close(xs, before[1])
    assert compiled.compile_count == 1


def _as_list(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


@pytest.mark.parametrize("inplace_fn, reference", [p for p in _INPLACE_PAIRS if p[0] is not _while_inplace
                                                   and p[0] is not _while_cond_inplace],
                         ids=[i for i in _INPLACE_IDS if not i.startswith("while")])
def test_gradients_through_an_inplace_body_match_out_of_place(inplace_fn, reference):
    def loss(fn):
        return lambda init, xs: sum((r * r).sum() for r in _as_list(fn(init, xs)))

    init, xs = _operands()
    want = ember.func.grad(loss(reference), argnums=(0, 1))(init, xs)
    got = ember.func.grad(loss(inplace_fn), argnums=(0, 1))(init, xs)
    compiled = ember.jit(ember.func.grad(loss(inplace_fn), argnums=(0, 1)))(init, xs)
    for g, c, w in zip(got, compiled, want):
        assert_close(g, w.numpy(), rtol=1e-5, atol=1e-5)
        assert_close(c, w.numpy(), rtol=1e-5, atol=1e-5)
    a, b = init.clone().requires_grad_(), xs.clone().requires_grad_()
    loss(inplace_fn)(a, b).backward()
    assert_close(a.grad, want[0].numpy(), rtol=1e-5, atol=1e-5)
    assert_close(b.grad, want[1].numpy(), rtol=1e-5, atol=1e-5)


def test_forward_mode_through_an_inplace_while_body_matches_out_of_place():
    init, xs = _operands()
    tangent = ember.ones(3)
    got = ember.func.jvp(lambda a: _while_inplace(a, xs), (init,), (tangent,))
    want = ember.func.jvp(lambda a: _while_out_of_place(a, xs), (init,), (tangent,))
    for g, w in zip(got, want):
        assert_close(g, w.numpy(), rtol=1e-5)


@pytest.mark.parametrize("inplace_fn, reference", [(_scan_inplace, _scan_out_of_place),
                                                   (_cond_inplace, _cond_out_of_place)], ids=["scan", "cond"])
def test_vmap_of_an_inplace_body_matches_out_of_place(inplace_fn, reference):
    inits = ember.tensor(np.array([[0.5, 1.0, 2.0], [-3.0, -1.0, 0.5]], np.float32))  # both cond branches
    xs = ember.tensor(np.random.default_rng(0).random((4, 3)).astype(np.float32))
    got = vmap(inplace_fn, in_dims=(0, None))(inits, xs)
    want = vmap(reference, in_dims=(0, None))(inits, xs)
    for g, w in zip(_as_list(got), _as_list(want)):
        assert_close(g, w.numpy(), rtol=1e-5)


def test_inplace_update_in_a_branch_with_a_python_bool_predicate_leaves_the_operand_alone():
    x = ember.ones(3)
    out = ember.cond(True, lambda a: a.mul_(2.0) + 1, lambda a: a, x)
    assert_close(out, [3.0, 3.0, 3.0])
    assert_close(x, [1.0, 1.0, 1.0])


def test_inplace_update_of_an_integer_carry_with_a_float_is_refused_as_eagerly():
    with pytest.raises(ember.errors.DTypeError, match="add_"):
        ember.scan(lambda c, x: (c.add_(x), c), ember.zeros(3, dtype=ember.int64), ember.ones(2, 3))


def test_inplace_update_of_a_carry_keeps_its_dtype_as_eagerly():
    carry, ys = ember.scan(lambda c, x: (c.add_(x), c * 1), ember.zeros(3), ember.ones(2, 3, dtype=ember.float64))
    assert carry.dtype is ember.float32 and ys.dtype is ember.float32
    assert_close(carry, [2.0, 2.0, 2.0])


# -- in-place updates of tensors a body captures ------------------------------------------------------------------
# The callable is traced once and its sub-graph runs at every step (or not at all): a write into an outer
# tensor cannot be part of it, so it is refused, naming the op, rather than done once while tracing.
_OUTER = ember.zeros(3)


def _scan_writes_outer(xs):
    return ember.scan(lambda c, x: (c + _OUTER.add_(x), c), ember.zeros(3), xs)


def _scan_writes_outer_constant(xs):  # the new value does not depend on the step
    return ember.scan(lambda c, x: (c + x, _OUTER.add_(1.0) * 1), ember.zeros(3), xs)


def _cond_writes_outer(xs):
    def true_fn(a):
        _OUTER[0] = a[0, 0]
        return a * 2
    return ember.cond(xs.sum() > 0, true_fn, lambda a: a, xs)


def _while_writes_outer(xs):
    return ember.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] + _OUTER.copy_(c[1])),
                            (ember.tensor(0), xs[0]))


@pytest.mark.parametrize("fn, op", [(_scan_writes_outer, "add_"), (_scan_writes_outer_constant, "add_"),
                                    (_cond_writes_outer, "setitem_"), (_while_writes_outer, "copy_")],
                         ids=["scan", "scan-constant", "cond-setitem", "while-copy"])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_inplace_update_of_a_captured_tensor_in_a_body_is_refused(fn, op, compiled):
    _OUTER.zero_()
    with pytest.raises(TraceError, match=f"{op}: a tensor captured from outside .* cannot be updated in place"):
        (ember.jit(fn) if compiled else fn)(ember.ones(4, 3))
    assert_close(_OUTER, np.zeros(3))


def test_inplace_update_of_an_outer_traced_tensor_in_a_body_is_refused():
    def fn(w, xs):
        return ember.scan(lambda c, x: (w.add_(x), c), ember.zeros(3), xs)

    with pytest.raises(TraceError, match="add_: .*compute the result out of place"):
        ember.jit(fn)(ember.zeros(3), ember.ones(2, 3))


def _local_constant_buffer(init, xs):
    def body(c, x):
        buf = ember.zeros(3)
        buf.add_(1.0)
        buf[0] = 5.0
        return c + buf * x, buf * 1
    return ember.scan(body, init, xs)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_a_buffer_made_in_a_body_may_be_updated_in_place_with_constants(compiled):
    fn = ember.jit(_local_constant_buffer) if compiled else _local_constant_buffer
    for call in range(3):
        init, xs = _operands(call)
        got = fn(init, xs)
        assert_close(got[0], init.numpy() + (np.array([5.0, 1.0, 1.0]) * xs.numpy()).sum(0), rtol=1e-5)
        assert_close(got[1], np.tile([5.0, 1.0, 1.0], (4, 1)))


def test_a_buffer_made_in_a_body_cannot_take_a_traced_value_in_place():
    def body(c, x):
        buf = ember.zeros(3)
        buf.add_(x)
        return c + buf, buf

    with pytest.raises(TraceError, match="add_: a tensor made inside the body of ember.scan"):
        ember.scan(body, ember.zeros(3), ember.ones(2, 3))
