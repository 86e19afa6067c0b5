"""Structured control flow (cond, while_loop, scan): values against Python loops, gradients against
finite differences, jvp, vmap (batched predicates too), jit (one node holding nested graphs) and the text
form of nested graphs."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.compiler import ir, passes
from ember.errors import AutogradError, ShapeError, TraceError
from ember.func import grad, jvp, vmap

from helpers import assert_close, check_grad, check_jvp, check_vmap, np_of, t64


def _prims(graph) -> list[str]:
    return [n.prim.name for n in graph.nodes]


def _round_trips(graph) -> None:
    text = str(graph)
    assert str(ir.parse(text)) == text
    ir.verify(ir.parse(text))


# -- cond ------------------------------------------------------------------------------------------------
def _branchy(x, y):
    return ember.cond(x.sum() > 0, lambda a, b: (a * b).sin(), lambda a, b: a.exp() - b, x, y)


def _branchy_ref(x, y):
    return np.sin(x * y) if x.sum() > 0 else np.exp(x) - y


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_takes_the_branch_the_predicate_names(sign, rng):
    x, y = sign * np.abs(rng.standard_normal(3)), rng.standard_normal(3)
    assert_close(_branchy(t64(x), t64(y)), _branchy_ref(x, y), rtol=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_gradients_match_finite_differences_to_second_order(sign, rng):
    check_grad(_branchy, [sign * np.abs(rng.standard_normal(3)), rng.standard_normal(3)])


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_jvp_matches_finite_differences(sign, rng):
    check_jvp(_branchy, [sign * np.abs(rng.standard_normal(3)), rng.standard_normal(3)])


def test_cond_vmap_with_unbatched_predicate(rng):
    def f(x, y):
        return ember.cond(y.sum() > 0, lambda a: a * 2, lambda a: a - 1, x)

    check_vmap(f, [rng.standard_normal((4, 3)), np.ones(3)], [0, None])
    check_vmap(f, [rng.standard_normal((4, 3)), -np.ones(3)], [0, None])


def test_cond_vmap_with_batched_predicate_selects_per_element(rng):
    x = rng.standard_normal((6, 3))
    x[::2] = np.abs(x[::2])
    x[1::2] = -np.abs(x[1::2])
    check_vmap(_branchy, [x, rng.standard_normal(3)], [0, None])
    check_vmap(_branchy, [x, rng.standard_normal((6, 3))], [0, 0])


def test_cond_pytrees_and_captured_tensors(rng):
    w = t64(rng.standard_normal(2)).requires_grad_()
    x = t64(rng.standard_normal(2))

    def f(pred):
        return ember.cond(pred, lambda d: {"s": d["a"] * w, "t": (d["a"] + d["b"],)},
                          lambda d: {"s": d["a"] - w, "t": (d["b"] * 3,)}, {"a": x, "b": x * 2})

    out = f(ember.tensor(True))
    assert_close(out["s"], np_of(x) * np_of(w), rtol=1e-12)
    assert_close(out["t"][0], 3 * np_of(x), rtol=1e-12)
    out["s"].sum().backward()
    assert_close(w.grad, np_of(x), rtol=1e-12)
    assert_close(f(ember.tensor(0))["t"][0], 6 * np_of(x), rtol=1e-12)


def test_cond_with_a_python_bool_calls_the_branch():
    assert ember.cond(False, lambda a: a + 1, lambda a: a - 1, ember.tensor(1.0)).item() == 0.0


def test_cond_branches_must_agree(rng):
    x = ember.ones(3)
    with pytest.raises(ShapeError, match=r"cond.*same types.*float32\[2\].*float32\[3\]"):
        ember.cond(x.sum() > 0, lambda a: a, lambda a: a[:2], x)
    with pytest.raises(ShapeError, match=r"cond.*one-element.*\(3,\)"):
        ember.cond(x > 0, lambda a: a, lambda a: a, x)


def test_cond_under_jit_is_one_node_with_two_nested_graphs(rng):
    f = ember.jit(_branchy)
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    for sign in (1.0, -1.0):
        assert_close(f(t64(sign * np.abs(x)), t64(y)), _branchy_ref(sign * np.abs(x), y), rtol=1e-12)
    graph = f.lower(t64(x), t64(y)).graph
    (node,) = [n for n in graph.nodes if n.prim.name == "cond"]
    assert isinstance(node.attrs["true_branch"], ir.Graph) and isinstance(node.attrs["false_branch"], ir.Graph)
    assert "sin" in _prims(node.attrs["true_branch"]) and "exp" in _prims(node.attrs["false_branch"])
    _round_trips(graph)
    assert f.compile_count == 1


def test_cse_keeps_conds_with_different_branches_and_merges_equal_ones():
    def f(x):
        p = x.sum() > 0
        a = ember.cond(p, lambda v: v.sin(), lambda v: v.cos(), x)
        b = ember.cond(p, lambda v: v.cos(), lambda v: v.sin(), x)
        c = ember.cond(p, lambda v: v.sin(), lambda v: v.cos(), x)
        return a + b + c

    x = t64([0.5, 1.0])
    graph = ember.jit(f).lower(x).graph
    assert _prims(graph).count("cond") == 2
    assert_close(ember.jit(f)(x), 2 * np.sin(np_of(x)) + np.cos(np_of(x)), rtol=1e-12)


# -- while_loop --------------------------------------------------------------------------------------------
def _grow(x):
    """Double-and-shift until the sum reaches 10 (a data-dependent trip count)."""
    return ember.while_loop(lambda v: v.sum() < 10, lambda v: v * 2 + 0.1, x)


def _grow_ref(x):
    while x.sum() < 10:
        x = x * 2 + 0.1
    return x


def test_while_loop_matches_a_python_loop(rng):
    x = np.abs(rng.standard_normal(3))
    assert_close(_grow(t64(x)), _grow_ref(x), rtol=1e-12)
    i, v = ember.while_loop(lambda c: c[0] < 7, lambda c: (c[0] + 1, c[1] * 1.5), (ember.tensor(0), t64(x)))
    assert int(i) == 7 and i.dtype == ember.int64
    assert_close(v, x * 1.5 ** 7, rtol=1e-12)


def test_while_loop_jvp_matches_finite_differences(rng):
    def f(x, w):
        def body(c):
            return c[0] + 1, ember.sin(c[1]) * w + c[1]
        return ember.while_loop(lambda c: c[0] < 4, body, (ember.tensor(0), x))[1]

    check_jvp(f, [rng.standard_normal(3), rng.standard_normal(3)])


def test_while_loop_vmap_with_batched_predicate_runs_until_all_are_done(rng):
    x = np.abs(rng.standard_normal((5, 3))) * np.array([[0.01], [0.1], [1.0], [3.0], [20.0]])
    check_vmap(_grow, [x], [0], rtol=1e-12)


def test_while_loop_reverse_mode_raises_a_clear_error(rng):
    x = t64(rng.standard_normal(3)).requires_grad_()
    out = ember.while_loop(lambda v: v.sum() < 100, lambda v: v * 2 + 1, x)
    with pytest.raises(AutogradError, match="while_loop.*reverse-mode.*scan"):
        out.sum().backward()


def test_while_loop_body_must_keep_the_carry_types():
    with pytest.raises(ShapeError, match=r"while_loop.*int64\[\] but must be float32\[\]"):
        ember.while_loop(lambda c: c < 3, lambda c: ember.tensor(1), ember.tensor(0.0))


def test_while_loop_under_jit_is_one_node(rng):
    f = ember.jit(_grow)
    x = np.abs(rng.standard_normal(3))
    assert_close(f(t64(x)), _grow_ref(x), rtol=1e-12)
    assert_close(f(t64(x * 0.01)), _grow_ref(x * 0.01), rtol=1e-12)
    graph = f.lower(t64(x)).graph
    (node,) = [n for n in graph.nodes if n.prim.name == "while_loop"]
    assert _prims(node.attrs["cond_graph"])[-1] == "lt" and "mul" in _prims(node.attrs["body_graph"])
    _round_trips(graph)


# -- scan -------------------------------------------------------------------------------------------------
def _rnn(xs, w):
    def step(c, x):
        c = ember.tanh(c * w + x)
        return c, c * 2
    c, ys = ember.scan(step, ember.zeros_like(w), xs)
    return ys.sum(0) + c


def _rnn_ref(xs, w):
    c, ys = np.zeros_like(w), []
    for x in xs:
        c = np.tanh(c * w + x)
        ys.append(c * 2)
    return np.sum(ys, 0) + c


def test_scan_matches_a_python_loop(rng):
    xs, w = rng.standard_normal((5, 3)), rng.standard_normal(3)
    assert_close(_rnn(t64(xs), t64(w)), _rnn_ref(xs, w), rtol=1e-12)


def test_scan_pytrees_reverse_and_length_without_xs(rng):
    xs = {"a": t64(rng.standard_normal((4, 2))), "b": [t64(rng.standard_normal(4))]}

    def step(carry, x):
        s, n = carry
        return (s + x["a"] * x["b"][0], n + 1), {"prefix": s}

    (s, n), ys = ember.scan(step, (ember.zeros(2, dtype=ember.float64), ember.tensor(0)), xs, reverse=True)
    a, b = np_of(xs["a"]), np_of(xs["b"][0])
    assert_close(s, (a * b[:, None]).sum(0), rtol=1e-12)
    assert int(n) == 4
    want = [(a[t + 1:] * b[t + 1:, None]).sum(0) for t in range(4)]  # reverse: step t sees later steps
    assert_close(ys["prefix"], np.stack(want), rtol=1e-12)
    c, ys = ember.scan(lambda c, _: (c * 2, c), ember.tensor(1.0), None, length=3)
    assert float(c) == 8.0 and ys.tolist() == [1.0, 2.0, 4.0]


def test_scan_gradients_match_finite_differences_to_second_order(rng):
    check_grad(_rnn, [rng.standard_normal((4, 3)), rng.standard_normal(3)])


def test_scan_reverse_gradients(rng):
    def f(xs, w):
        return ember.scan(lambda c, x: (ember.sin(c * w) + x, c * x), ember.zeros_like(w), xs, reverse=True)[1]

    check_grad(f, [rng.standard_normal((3, 2)), rng.standard_normal(2)])


def test_scan_jvp_matches_finite_differences(rng):
    check_jvp(_rnn, [rng.standard_normal((4, 3)), rng.standard_normal(3)])


def test_scan_vmap_over_xs_and_over_closed_over_weights(rng):
    check_vmap(_rnn, [rng.standard_normal((3, 4, 2)), rng.standard_normal(2)], [0, None])
    check_vmap(_rnn, [rng.standard_normal((4, 3, 2)), rng.standard_normal(2)], [1, None])
    check_vmap(_rnn, [rng.standard_normal((4, 2)), rng.standard_normal((3, 2))], [None, 0])


def test_scan_grad_of_vmap_and_vmap_of_grad(rng):
    xs, w = t64(rng.standard_normal((3, 4, 2))), t64(rng.standard_normal(2))
    per = vmap(grad(lambda x, v: _rnn(x, v).sum(), argnums=1), in_dims=(0, None))(xs, w)
    want = np.stack([np_of(grad(lambda x, v: _rnn(x, v).sum(), argnums=1)(xs[i], w)) for i in range(3)])
    assert_close(per, want, rtol=1e-10)
    g = grad(lambda v: vmap(_rnn, in_dims=(0, None))(xs, v).sum())(w)
    assert_close(g, want.sum(0), rtol=1e-10)


def test_scan_saved_and_recomputed_carries_give_the_same_gradient(rng):
    xs, w = t64(rng.standard_normal((4, 3))), t64(rng.standard_normal(3))
    w1 = w.clone().requires_grad_()
    _rnn(xs, w1).sum().backward()  # eager with grad: the forward saves the carries
    f = ember.jit(lambda x: _rnn(x, w2))
    w2 = w.clone()
    f(xs)  # traced without grad: the graph does not save them, backward recomputes
    w2.requires_grad_()
    f(xs).sum().backward()
    node = next(n for n in f.lower(xs).graph.nodes if n.prim.name == "scan")
    assert node.attrs["save_carries"] is False
    assert_close(w2.grad, np_of(w1.grad), rtol=1e-12)


def test_scan_body_must_keep_the_carry_types_and_xs_must_agree():
    with pytest.raises(ShapeError, match=r"scan.*carry.*float32\[3\] but must be float32\[2\]"):
        ember.scan(lambda c, x: (ember.cat([c, x[:1]]), x), ember.zeros(2), ember.ones(4, 2))
    with pytest.raises(ShapeError, match=r"scan.*leading dimensions differ: \[3, 4\]"):
        ember.scan(lambda c, x: (c, x), ember.zeros(2), (ember.ones(3), ember.ones(4)))


def test_scan_under_jit_is_one_node_and_round_trips(rng):
    f = ember.jit(_rnn)
    xs, w = rng.standard_normal((5, 3)), rng.standard_normal(3)
    assert_close(f(t64(xs), t64(w)), _rnn_ref(xs, w), rtol=1e-12)
    graph = f.lower(t64(xs), t64(w)).graph
    assert _prims(graph).count("scan") == 1
    assert "tanh" in _prims(next(n for n in graph.nodes if n.prim.name == "scan").attrs["body"])
    _round_trips(graph)


def test_nested_control_flow_compiles_and_differentiates(rng):
    def f(xs, w):
        def step(c, x):
            c = ember.cond(x.sum() > 0, lambda a: a * w + x, lambda a: ember.sin(a) - x, c)
            return c, c.sum()
        return ember.scan(step, ember.zeros_like(w), xs)[1]

    xs, w = rng.standard_normal((5, 2)), rng.standard_normal(2)
    c, want = np.zeros(2), []
    for x in xs:
        c = c * w + x if x.sum() > 0 else np.sin(c) - x
        want.append(c.sum())
    assert_close(f(t64(xs), t64(w)), want, rtol=1e-12)
    jf = ember.jit(f)
    assert_close(jf(t64(xs), t64(w)), want, rtol=1e-12)
    _round_trips(jf.lower(t64(xs), t64(w)).graph)
    check_grad(f, [xs, w])


def test_jit_of_grad_through_scan(rng):
    xs, w = t64(rng.standard_normal((4, 3))), t64(rng.standard_normal(3))
    g = grad(lambda v: _rnn(xs, v).sum())
    assert_close(ember.jit(g)(w), np_of(g(w)), rtol=1e-12)


# -- an LSTM written with scan ----------------------------------------------------------------------------
def _lstm_scan(x, w_ih, w_hh, b_ih, b_hh):
    def step(carry, xt):
        h, c = carry
        i, f, g, o = (xt @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, -1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        return (h, c), h

    z = ember.zeros(x.shape[1], w_hh.shape[1], dtype=x.dtype)
    (h, c), ys = ember.scan(step, (z, z), x)
    return ys, h, c


@pytest.mark.parametrize("compiled", [False, True])
def test_lstm_written_with_scan_matches_nn_lstm(compiled, rng):
    ember.manual_seed(0)
    m = ember.nn.LSTM(3, 4, dtype=ember.float64)
    params = [m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0]
    x = t64(rng.standard_normal((6, 2, 3))).requires_grad_()
    fn = ember.jit(_lstm_scan) if compiled else _lstm_scan
    ys, h, c = fn(x, *params)
    (ys.pow(2).sum() + h.sum() + c.sum()).backward()
    got = [np_of(t.grad) for t in [x] + params]
    for t in [x] + params:
        t.grad = None
    out, (h2, c2) = m(x)
    (out.pow(2).sum() + h2.sum() + c2.sum()).backward()
    assert_close(ys, np_of(out), rtol=1e-12, atol=1e-14)
    assert_close(h, np_of(h2[0]), rtol=1e-12, atol=1e-14)
    assert_close(c, np_of(c2[0]), rtol=1e-12, atol=1e-14)
    for g, t in zip(got, [x] + params):
        assert_close(g, np_of(t.grad), rtol=1e-10, atol=1e-12)
    if compiled:
        assert _prims(fn.lower(x, *params).graph).count("scan") == 1


# -- errors and the text form -------------------------------------------------------------------------------
def test_python_control_flow_under_jit_points_to_the_primitives():
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(TraceError) as info:
        ember.jit(f)(ember.ones(2))
    msg = str(info.value)
    assert "ember.cond" in msg and "ember.while_loop" in msg and "ember.scan" in msg and "ember.where" in msg


def test_nested_graph_text_parses_back():
    text = ("graph(%0: bool[], %1: float32[3]) {\n"
            "  %2: float32[3] = cond(%0, %1) {true_branch=graph(%0: float32[3]) {\n"
            "    %1: float32[3] = mul(%0, float32(2.0))\n"
            "    return (%1)\n"
            "  }, false_branch=graph(%0: float32[3]) {\n"
            "    %1: float32[3] = neg(%0)\n"
            "    return (%1)\n"
            "  }}\n"
            "  return (%2)\n"
            "}")
    g = ir.parse(text)
    assert str(g) == text
    ir.verify(g)
    assert isinstance(g.nodes[0].attrs["false_branch"], ir.SubGraph)
    out = ember.compiler.executor.run(g, [ember.tensor(False), ember.tensor([1.0, 2.0, 3.0])])[0]
    assert out.tolist() == [-1.0, -2.0, -3.0]
    assert str(passes.cse(g)) == text


def test_verifier_checks_nested_graphs():
    f32, P = ember.float32, ember._core.primitive.PRIMITIVES
    a, stray, out = ir.Value(0, (3,), f32), ir.Value(1, (3,), f32), ir.Value(2, (3,), f32)
    bad = ir.SubGraph([a], [ir.Node(P["neg"], (stray,), {}, (out,))], [out])
    good = ir.SubGraph([a], [], [a])
    p, x, y = ir.Value(0, (), ember.bool), ir.Value(1, (3,), f32), ir.Value(2, (3,), f32)
    g = ir.Graph([p, x], [ir.Node(P["cond"], (p, x), {"true_branch": bad, "false_branch": good}, (y,))], [y])
    with pytest.raises(ir.IRError, match="used before it is defined"):
        ir.verify(g)


def test_unbalanced_nested_graph_text_is_reported():
    with pytest.raises(ir.IRError, match="unbalanced"):
        ir.parse("graph(%0: float32[3]) {\n  %1: float32[3] = cond(%0) {true_branch=graph() {\n"
                 "  return (%1)\n}")


def test_jvp_of_cond_inside_jit(rng):
    x, v = t64(rng.standard_normal(3)), t64(rng.standard_normal(3))
    f = ember.jit(lambda a, b: jvp(lambda u: _branchy(u, a), (a,), (b,))[1])
    want = jvp(lambda u: _branchy(u, x), (x,), (v,))[1]
    assert_close(f(x, v), np_of(want), rtol=1e-12)
