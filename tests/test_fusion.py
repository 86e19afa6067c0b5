"""The fusion pass: which nodes fuse, fused graphs stay valid IR and compute what the unfused graph
computes (random programs with broadcasting), and fused nodes stay differentiable and transformable."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.compiler import executor, fusion, ir
from ember.func import grad, jvp, vmap

from helpers import assert_close, np_of


def _lower(fn, *args):
    return ember.jit(fn).lower(*args)


def _fused_names(graph):
    return [n.prim.name for n in graph.nodes]


def _t(rng, shape, dtype=np.float64):
    return ember.tensor(rng.standard_normal(shape).astype(dtype))


def test_an_elementwise_chain_becomes_one_node_that_prints_and_parses(rng):
    x, w, b = _t(rng, (4, 3), np.float32), _t(rng, (4, 3), np.float32), _t(rng, (3,), np.float32)
    graph = _lower(lambda x, w, b: ember.gelu_tanh(x * w + b), x, w, b).graph
    assert len(graph.nodes) == 1 and graph.nodes[0].prim.name.startswith("fused_")
    text = str(graph)
    assert str(ir.parse(text)) == text
    ir.verify(ir.parse(text))
    source = graph.nodes[0].prim.kernels["cpu"].source([(4, 3), (4, 3), (3,)])
    # the kernel is cached by its formula, so the line named is that of whichever call built it first
    assert re.match(r"/\* fused: mul, add, gelu_tanh \*/\n/\* \S+\.py:\d+: ", source)
    assert "ember.gelu_tanh(x * w + b)" in source


def test_fused_jit_matches_eager(rng):
    x, w, b = _t(rng, (40, 30), np.float32), _t(rng, (40, 30), np.float32), _t(rng, (30,), np.float32)
    f = ember.jit(lambda x, w, b: ember.gelu_tanh(x * w + b))
    assert_close(f(x, w, b), np_of(ember.gelu_tanh(x * w + b)), rtol=1e-6, atol=1e-6)


def _escaping(x, w):
    """An elementwise chain whose middle value is also read by a matmul."""
    y = ember.exp(x) * 0.5
    return ember.tanh(y) + 1.0, y @ w


def test_a_value_also_used_outside_becomes_an_extra_output(rng):
    f = _escaping
    x, w = _t(rng, (3, 4)), _t(rng, (4, 2))
    graph = _lower(f, x, w).graph
    names = _fused_names(graph)
    assert sum(n.startswith("fused_") for n in names) == 1 and names.count("getitem") == 2
    ir.verify(graph)
    got = ember.jit(f)(x, w)
    for g, e in zip(got, f(x, w)):
        assert_close(g, np_of(e), rtol=1e-13)


def test_comparisons_fuse_into_where_but_a_mask_used_outside_stays_a_node(rng):
    x, y = _t(rng, (5,)), _t(rng, (5,))
    inside = _lower(lambda x, y: ember.where(x > 0, x * 2.0, y), x, y).graph
    assert len(inside.nodes) == 1

    def mask_escapes(x, y):
        m = x > y
        return ember.where(m, ember.exp(x), y) + 1.0, m

    graph = _lower(mask_escapes, x, y).graph
    assert "gt" in _fused_names(graph)
    for g, e in zip(ember.jit(mask_escapes)(x, y), mask_escapes(x, y)):
        assert_close(g, np_of(e), rtol=1e-13)


def test_no_group_is_formed_around_a_path_through_an_unfusible_node(rng):
    def f(x, w):
        a = ember.exp(x)
        m = (a @ w).reshape(a.shape)
        return ember.sin(a) + m

    x, w = _t(rng, (3, 3)), _t(rng, (3, 3))
    graph = _lower(f, x, w).graph
    ir.verify(graph)
    assert_close(ember.jit(f)(x, w), np_of(f(x, w)), rtol=1e-13)


def test_groups_that_grew_a_dependency_are_not_joined_into_a_cycle(rng):
    # Two chains read each other's results through sums (unfusible here): after the first group takes in
    # a node that depends on the second, the second may not take in a node that depends on the first.
    text = """graph(%0: float64[3, 3]) {
  %1: float64[3] = reduce_sum(%0) {axis=(0,), keepdims=False, dtype=None}
  %2: float64[3, 3] = mul(%1, %0)
  %3: float64[3, 3] = sub(%0, %2)
  %4: float64[3, 3] = mul(%1, %0)
  %5: float64[3, 3] = add(%0, %4)
  %6: float64[3] = reduce_sum(%5) {axis=(0,), keepdims=False, dtype=None}
  %7: float64[3, 3] = mul(%6, %3)
  %8: float64[3, 3] = sub(%5, %7)
  %9: float64[3] = reduce_sum(%3) {axis=(0,), keepdims=False, dtype=None}
  %10: float64[3, 3] = mul(%9, %5)
  %11: float64[3, 3] = sub(%3, %10)
  %12: float64[3, 3] = add(%11, %8)
  return (%12)
}"""
    graph = ir.parse(text)
    fused = fusion.fuse(graph)
    ir.verify(fused)
    x = rng.standard_normal((3, 3))
    assert_close(executor.run(fused, [ember.tensor(x)])[0], np_of(executor.run(graph, [ember.tensor(x)])[0]),
                 rtol=1e-13)
    assert len(fused.nodes) < len(graph.nodes)


def test_mixed_dtypes_and_shapes_split_groups(rng):
    def f(x, s):
        return ember.exp(x * 2.0).sum(1) * s + ember.tanh(s).float().double()

    x, s = _t(rng, (3, 4)), _t(rng, (3,))
    got = ember.jit(f)(x, s)
    assert_close(got, np_of(f(x, s)), rtol=1e-13)


def test_without_multi_output_a_group_splits_so_each_escaping_value_has_its_own_buffer(rng):
    x, w = _t(rng, (3, 4)), _t(rng, (4, 2))
    raw = _lower(_escaping, x, w).raw
    split = fusion.fuse(raw, multi_output=False)
    ir.verify(split)
    names = [n.prim.name for n in split.nodes]
    assert "getitem" not in names and sum(n.startswith("fused_") for n in names) == 2
    assert all(len(n.outputs[0].shape) == 2 for n in split.nodes)  # no packed (k, ...) buffers
    want = executor.run(raw, [x, w])
    for got, exp in zip(executor.run(split, [x, w]), want):
        assert_close(got, np_of(exp), rtol=1e-13)


_UNARY = ["exp", "sin", "tanh", "neg", "abs", "sigmoid", "erf", "relu", "silu"]
_BINARY = ["add", "sub", "mul", "maximum", "minimum", "where_gt"]
_SHAPES = [(3, 4), (4,), (3, 1), (1, 4), (1,)]  # 0-d float32 sigmoid fails in eager (core)


@st.composite
def _program(draw):
    steps = draw(st.lists(st.tuples(st.sampled_from(_UNARY + _BINARY), st.integers(0, 20), st.integers(0, 20)),
                          min_size=2, max_size=10))
    shapes = draw(st.lists(st.sampled_from(_SHAPES), min_size=3, max_size=3))
    return steps, shapes


def _run(steps, inputs):
    vals = list(inputs)
    for op, i, j in steps:
        a, b = vals[i % len(vals)], vals[j % len(vals)]
        if op in _UNARY:
            vals.append(getattr(ember, op)(ember.tanh(a) * 2.0 if op == "exp" else a))
        elif op == "where_gt":
            vals.append(ember.where(a > b, a, b * 0.5))
        else:
            vals.append(getattr(ember, op)(a, b))
    return vals[-1] * 1.5 + vals[-2]


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-12)])
@settings(max_examples=12, deadline=None)
@given(program=_program())
def test_fused_random_programs_equal_the_unfused_graph(dtype, rtol, program):
    steps, shapes = program
    rng = np.random.default_rng(1)
    inputs = [ember.tensor(rng.standard_normal(s).astype(dtype)) for s in shapes]
    originals = [np_of(x).copy() for x in inputs]
    lowered = _lower(lambda *a: _run(steps, a), *inputs)
    want = np_of(executor.run(lowered.raw, inputs)[0])
    for multi_output in (True, False):
        fused = fusion.fuse(lowered.raw, multi_output=multi_output)
        ir.verify(fused)
        got = np_of(executor.run(fused, inputs)[0])
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
        with ember.no_grad():  # on arrays, with in-place reuse of dying operands
            again = np_of(executor.run(fused, inputs)[0])
            raw = np_of(executor.run(lowered.raw, inputs)[0])
        np.testing.assert_allclose(again, want, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(raw, want, rtol=rtol, atol=rtol)
    assert all(np.array_equal(np_of(x), x0) for x, x0 in zip(inputs, originals))  # inputs untouched


def _loss(w, x, b):
    return (ember.gelu_tanh(x * w + b) * ember.sigmoid(w)).sum()


def test_gradients_through_fused_jit_equal_eager_gradients(rng):
    w, x, b = _t(rng, (3, 4)), _t(rng, (3, 4)), _t(rng, (4,))
    assert any(n.startswith("fused_") for n in _fused_names(_lower(_loss, w, x, b).graph))
    assert_close(ember.jit(grad(_loss))(w, x, b), np_of(grad(_loss)(w, x, b)), rtol=1e-12)
    assert_close(grad(ember.jit(_loss))(w, x, b), np_of(grad(_loss)(w, x, b)), rtol=1e-12)
    w1, b1 = w.detach().requires_grad_(), b.detach().requires_grad_()
    ember.jit(_loss)(w1, x, b1).backward()
    w2, b2 = w.detach().requires_grad_(), b.detach().requires_grad_()
    _loss(w2, x, b2).backward()
    assert_close(w1.grad, np_of(w2.grad), rtol=1e-12)
    assert_close(b1.grad, np_of(b2.grad), rtol=1e-12)


def test_second_order_jvp_and_vmap_through_fused_nodes(rng):
    w, x, b = _t(rng, (3, 4)), _t(rng, (3, 4)), _t(rng, (4,))
    g2 = grad(lambda w: grad(ember.jit(_loss))(w, x, b).sum())(w)
    assert_close(g2, np_of(grad(lambda w: grad(_loss)(w, x, b).sum())(w)), rtol=1e-10)
    v = _t(rng, (3, 4))
    _, t_jit = jvp(lambda w: ember.jit(_loss)(w, x, b), (w,), (v,))
    _, t_eager = jvp(lambda w: _loss(w, x, b), (w,), (v,))
    assert_close(t_jit, np_of(t_eager), rtol=1e-12)
    xs = _t(rng, (5, 3, 4))
    per = vmap(ember.jit(lambda x: ember.tanh(x * w + b) * 2.0))(xs)
    assert_close(per, np_of(ember.tanh(xs * w + b) * 2.0), rtol=1e-13)


_REDUCTIONS = [
    lambda x, b: (ember.tanh(x) * b).sum(-1),
    lambda x, b: ((x - b) ** 2).mean(-1, keepdim=True),
    lambda x, b: ember.exp(x * 0.1).sum(),
    lambda x, b: (x * b).sum((1, 2)),
]


@pytest.mark.parametrize("fn", _REDUCTIONS)
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_sums_over_trailing_axes_join_the_group(fn, dtype, rtol, rng):
    x, b = ember.tensor(rng.standard_normal((2, 6, 50)).astype(dtype)), ember.tensor(
        rng.standard_normal(50).astype(dtype))
    graph = _lower(fn, x, b).graph
    assert "reduce_sum" not in _fused_names(graph) and graph.nodes[0].prim.name.startswith("fused_")
    assert str(ir.parse(str(graph))) == str(graph)
    got, want = ember.jit(fn)(x, b), fn(x, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert_close(got, np_of(want), rtol=rtol, atol=rtol)


def test_a_sum_whose_operand_is_used_elsewhere_is_not_absorbed(rng):
    def f(x):
        y = ember.exp(x) * 2.0
        return y.sum(-1), y

    graph = _lower(f, _t(rng, (3, 4))).graph
    assert "reduce_sum" in _fused_names(graph)


def test_gradients_through_a_fused_reduction(rng):
    x, b = _t(rng, (3, 5)), _t(rng, (5,))

    def loss(x, b):
        return ((ember.tanh(x) * b).sum(-1) ** 2).sum()

    gj = ember.jit(grad(loss, argnums=(0, 1)))(x, b)
    ge = grad(loss, argnums=(0, 1))(x, b)
    for a, e in zip(gj, ge):
        assert_close(a, np_of(e), rtol=1e-12)
    per = vmap(ember.jit(lambda x: (ember.sin(x) * b).sum(-1)))(_t(rng, (4, 3, 5)))
    assert per.shape == (4, 3)
