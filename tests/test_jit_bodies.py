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
