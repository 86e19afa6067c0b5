"""The generated straight-line program that runs a graph on arrays (ember.compiler.program)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.compiler import executor, ir
from ember.compiler.program import Program

from helpers import np_of

_GRAPH = """graph(%0: float32[2, 3], %1: float32[3]) {
  %2: float32[3, 2] = transpose(%0) {perm=(1, 0)}
  %3: float32[6] = reshape(%2) {shape=(6,)}
  %4: float32[3] = getitem(%3) {index=((0, 3, None),)}
  %5: float32[3] = mul(%4, %1)
  %6: float32[3] = add(%5, 2.0)
  return (%6, %2)
}"""


def _program(graph):
    release, donations, _ = executor._release_plan(graph)
    return Program(graph, release, {}, (), ())


def test_views_become_numpy_method_calls_and_other_nodes_kernel_calls():
    source = _program(ir.parse(_GRAPH)).source
    assert ".transpose(a0)" in source and ".reshape(a1)" in source and "[a2]" in source
    assert "k3(" in source and "k4(" in source


def test_the_program_computes_what_the_graph_does():
    g = ir.parse(_GRAPH)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    w = np.array([1.0, -2.0, 0.5], np.float32)
    with ember.no_grad():
        out, t = executor.run(g, [ember.tensor(x), ember.tensor(w)])
    np.testing.assert_array_equal(np_of(out), x.T.reshape(6)[:3] * w + 2.0)
    np.testing.assert_array_equal(np_of(t), x.T)


def test_a_replaced_cpu_kernel_of_a_view_is_called(monkeypatch):
    from ember._core.primitives.movement import reshape_p

    calls = []
    monkeypatch.setitem(reshape_p.kernels, "cpu", lambda x, shape: calls.append(shape) or x.reshape(shape))
    source = _program(ir.parse(_GRAPH)).source
    assert ".reshape(" not in source
    g = ir.parse(_GRAPH)
    with ember.no_grad():
        executor.run(g, [ember.ones(2, 3), ember.ones(3)])
    assert calls == [(6,)]


def test_a_failing_kernel_names_its_op_and_operands_and_the_next_run_is_clean(monkeypatch):
    from ember.backends import CPU

    g = ir.parse(_GRAPH)
    real = CPU.kernel(g.nodes[3].prim)

    def failing(*args, **attrs):
        raise ValueError("operands could not be broadcast")

    monkeypatch.setitem(g.nodes[3].prim.kernels, "cpu", failing)
    with ember.no_grad(), pytest.raises(ember.errors.ShapeError, match=r"mul.*could not be broadcast") as info:
        executor.run(g, [ember.ones(2, 3), ember.ones(3)])
    assert "(3,)" in str(info.value)
    monkeypatch.setitem(g.nodes[3].prim.kernels, "cpu", real)
    g = ir.parse(_GRAPH)
    with ember.no_grad():
        out, _ = executor.run(g, [ember.ones(2, 3), ember.ones(3)])
    np.testing.assert_array_equal(np_of(out), np.full(3, 3.0, np.float32))


def test_an_error_raised_as_an_ember_error_passes_through_unchanged(monkeypatch):
    g = ir.parse(_GRAPH)

    def failing(*args, **attrs):
        raise ember.errors.EmberError("add", "a message of its own")

    monkeypatch.setitem(g.nodes[4].prim.kernels, "cpu", failing)
    with ember.no_grad(), pytest.raises(ember.errors.EmberError, match="a message of its own"):
        executor.run(g, [ember.ones(2, 3), ember.ones(3)])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["sin", "exp", "neg", "t", "r", "row", "mul", "sum"]), min_size=1, max_size=12),
       st.integers(1, 5), st.integers(1, 5))
def test_random_chains_compute_as_eager(ops, n, m):
    def f(x, y):
        for op in ops:
            if op == "t":
                x = x.T
            elif op == "r":
                x = x.reshape(-1).reshape(x.shape)
            elif op == "row":
                x = x[:1] * 1.5 + x
            elif op == "mul":
                x = x * y if x.shape == y.shape else x * y.T
            elif op == "sum":
                x = x + x.sum(0, keepdim=True)
            else:
                x = getattr(ember, op)(x) * 0.5
        return x, x.sum()

    rng = np.random.default_rng(n * 7 + m)
    x = ember.tensor(rng.standard_normal((n, m)).astype(np.float32))
    y = ember.tensor(rng.standard_normal((n, m)).astype(np.float32))
    with ember.no_grad():
        want = f(x, y)
        got = ember.jit(f)(x, y)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np_of(a), np_of(b), rtol=1e-4, atol=1e-5)  # (C exp vs NumPy's)
