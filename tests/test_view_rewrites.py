"""Simplifications of views and copies: a kept-dims sum read only through the reshape that drops those
dims, a reshape adding or removing leading 1s in front of a broadcasting elementwise op, a row-major
copy of a matrix product, and the layer-norm gradient fold reading the rows without a reshape chain."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.compiler import ir, passes
from ember.compiler.ir import Graph

from helpers import assert_close, np_of, t64


def _graph(text: str) -> Graph:
    return ir.parse(text)


def _run(g: Graph, args) -> list[np.ndarray]:
    return [np_of(v) for v in ember.compiler.executor.run(g, args)]


def _args(g: Graph, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [t64(rng.standard_normal(v.shape)) for v in g.inputs]


def _simplified(g: Graph) -> tuple[Graph, list[str]]:
    """`g` simplified and verified, the names of its primitives, and a check that the outputs keep their
    every bit (the rewrites run the same kernels on the same numbers)."""
    out = passes.simplify(g)
    ir.verify(out)
    args = _args(g)
    for got, want in zip(_run(out, args), _run(g, args)):
        np.testing.assert_array_equal(got, want)
    return out, [n.prim.name for n in out.nodes]


def test_a_kept_dims_sum_read_through_a_reshape_that_drops_them_becomes_a_plain_sum():
    g = _graph("graph(%0: float64[4, 3, 8]) {\n"
               "  %1: float64[1, 1, 8] = reduce_sum(%0) {axis=(0, 1), keepdims=True, dtype=None}\n"
               "  %2: float64[8] = reshape(%1) {shape=(8,)}\n  return (%2)\n}")
    out, names = _simplified(g)
    assert str(out) == ("graph(%0: float64[4, 3, 8]) {\n"
                        "  %2: float64[8] = reduce_sum(%0) {axis=(0, 1), keepdims=False, dtype=None}\n"
                        "  return (%2)\n}")


def test_a_bias_gradient_updated_by_an_optimiser_step_stays_in_the_bias_shape():
    # reshape(sum(g, keepdims)) used to sink below the update: every op ran in (1, 8) between reshapes
    g = _graph("graph(%0: float64[6, 8], %1: float64[8], %2: float64[8]) {\n"
               "  %3: float64[1, 8] = reduce_sum(%0) {axis=(0,), keepdims=True, dtype=None}\n"
               "  %4: float64[8] = reshape(%3) {shape=(8,)}\n"
               "  %5: float64[8] = mul(%4, %2)\n"
               "  %6: float64[8] = sub(%1, %5)\n  return (%6, %4)\n}")
    out, names = _simplified(g)
    assert names == ["reduce_sum", "mul", "sub"]
    assert all(v.shape == (8,) for n in out.nodes for v in n.outputs)


def test_a_kept_dims_sum_with_other_readers_or_other_target_shapes_stays():
    shared = ("graph(%0: float64[6, 8], %1: float64[6, 8]) {\n"
              "  %2: float64[1, 8] = reduce_sum(%0) {axis=(0,), keepdims=True, dtype=None}\n"
              "  %3: float64[8] = reshape(%2) {shape=(8,)}\n"
              "  %4: float64[6, 8] = sub(%1, %2)\n  return (%3, %4)\n}")
    assert str(passes.simplify(_graph(shared))) == shared  # (the sum would be computed twice)
    regrouped = ("graph(%0: float64[6, 8]) {\n"
                 "  %1: float64[1, 8] = reduce_sum(%0) {axis=(0,), keepdims=True, dtype=None}\n"
                 "  %2: float64[2, 4] = reshape(%1) {shape=(2, 4)}\n  return (%2)\n}")
    assert str(passes.simplify(_graph(regrouped))) == regrouped


def test_a_reshape_of_leading_ones_is_read_through_by_a_broadcasting_elementwise_op():
    g = _graph("graph(%0: float64[], %1: float64[128], %2: float64[8], %3: float64[4, 8]) {\n"
               "  %4: float64[1] = reshape(%0) {shape=(1,)}\n"
               "  %5: float64[128] = mul(%4, %1)\n"
               "  %6: float64[1, 8] = reshape(%2) {shape=(1, 8)}\n"
               "  %7: float64[4, 8] = add(%3, %6)\n  return (%5, %7)\n}")
    out, names = _simplified(g)
    assert names == ["mul", "add"]
    assert [o.shape for n in out.nodes for o in n.operands] == [(), (128,), (4, 8), (8,)]


def test_a_reshape_of_leading_ones_that_sets_the_output_shape_stays():
    text = ("graph(%0: float64[8], %1: float64[8]) {\n"
            "  %2: float64[1, 8] = reshape(%0) {shape=(1, 8)}\n"
            "  %3: float64[1, 8] = add(%2, %1)\n  return (%3)\n}")
    out = passes.simplify(_graph(text))
    assert "reshape" in [n.prim.name for n in out.nodes] and out.outputs[0].shape == (1, 8)
    trailing = ("graph(%0: float64[8], %1: float64[8, 3]) {\n"
                "  %2: float64[8, 1] = reshape(%0) {shape=(8, 1)}\n"
                "  %3: float64[8, 3] = mul(%2, %1)\n  return (%3)\n}")
    assert str(passes.simplify(_graph(trailing))) == trailing  # a trailing 1 changes the broadcast


def test_a_row_major_copy_of_a_product_is_the_product():
    g = _graph("graph(%0: float64[5, 3], %1: float64[5, 4]) {\n"
               "  %2: float64[3, 5] = transpose(%0) {perm=(1, 0)}\n"
               "  %3: float64[3, 4] = matmul(%2, %1)\n"
               "  %4: float64[3, 4] = contiguous(%3)\n"
               "  %5: float64[4, 3] = transpose(%1) {perm=(1, 0)}\n"
               "  %6: float64[4, 3] = contiguous(%5)\n  return (%4, %6)\n}")
    out, names = _simplified(g)
    assert names == ["transpose", "matmul", "transpose", "contiguous"]  # the transposed copy stays
    assert out.outputs[0] is out.nodes[1].outputs[0]


def test_fold_norm_grads_reads_the_rows_without_a_reshape_chain():
    g = _graph("graph(%0: float64[6, 8], %1: float64[6, 8], %2: float64[8]) {\n"
               "  %3: float64[2, 3, 8] = reshape(%0) {shape=(2, 3, 8)}\n"
               "  %4: float64[2, 3, 8] = normalize(%3) {n=1, eps=1e-05}\n"
               "  %5: float64[6, 8] = reshape(%4) {shape=(6, 8)}\n"
               "  %6: float64[6, 8] = mul(%1, %5)\n"
               "  %7: float64[8] = reduce_sum(%6) {axis=(0,), keepdims=False, dtype=None}\n"
               "  %8: float64[6, 8] = add(%1, %2)\n  return (%7, %8)\n}")
    out = passes.fold_norm_grads(g)
    ir.verify(out)
    pack = next(n for n in out.nodes if n.prim.name == "norm_param_grads")
    assert pack.operands[1] is g.inputs[0]  # %0 itself, not reshape(reshape(%0))
    args = _args(g)
    for got, want in zip(_run(out, args), _run(g, args)):
        assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_a_compiled_step_updates_biases_in_their_own_shape_without_reshapes():
    rng = np.random.default_rng(0)
    x = ember.tensor(rng.standard_normal((2, 5, 8)).astype(np.float32))
    y = ember.tensor(rng.integers(0, 4, (2, 5)))
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = ember.optim.AdamW(model.parameters(), lr=0.01)

    def train(x, y):
        loss = F.cross_entropy(model(x).reshape(-1, 4), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    step = ember.jit(train)
    step(x, y)  # the first step creates the optimiser state
    graph = step.lower(x, y).graph
    shapes = {v.shape for n in graph.nodes for v in n.outputs}
    assert not shapes & {(1, 16), (1, 1, 16), (1, 4), (1, 1, 4)}, shapes
    assert "reshape" not in {n.prim.name for n in graph.nodes if n.outputs[0].shape in ((16,), (4,))}


_OPS = ["bias_grad", "bias_grad_3d", "kept_and_read", "lead_ones", "lead_ones_scalar", "mm_copy", "add",
        "mul", "tanh"]


@st.composite
def _random_program(draw):
    """A random straight-line program over two (3, 3) inputs with kept-dims sums, leading-1 reshapes and
    copies of products."""
    return draw(st.lists(st.tuples(st.sampled_from(_OPS), st.integers(0, 10), st.integers(0, 10)),
                         min_size=1, max_size=10))


def _run_program(steps, x, y):
    vals = [x, y]
    for op, i, j in steps:
        a, b = vals[i % len(vals)], vals[j % len(vals)]
        if op == "bias_grad":  # a broadcast bias's gradient scaled and added (an optimiser's update)
            vals.append(a - 0.1 * a.sum(0, keepdim=True).reshape(3) * b)
        elif op == "bias_grad_3d":
            vals.append(a.reshape(1, 3, 3).sum((0, 1), keepdim=True).reshape(3) + b)
        elif op == "kept_and_read":  # the kept sum has another reader
            s = a.sum(1, keepdim=True)
            vals.append(s * b + s.reshape(3))
        elif op == "lead_ones":
            vals.append((a.reshape(1, 3, 3) * b.reshape(1, 1, 3, 3)).reshape(3, 3) + a.sum(0).reshape(1, 3))
        elif op == "lead_ones_scalar":
            vals.append(a.sum().reshape(1, 1) * b)
        elif op == "mm_copy":  # a transposed product copied to row-major order (a weight's gradient)
            vals.append((a @ b).T.contiguous() * 0.5)
        elif op == "add":
            vals.append(a + b)
        elif op == "mul":
            vals.append(a * b)
        else:
            vals.append(ember.tanh(a))
    return vals[-1] + vals[-2]


@given(_random_program())
def test_passes_keep_the_outputs_of_random_programs_with_views(steps):
    rng = np.random.default_rng(0)
    x, y = t64(rng.standard_normal((3, 3))), t64(rng.standard_normal((3, 3)))
    lowered = ember.jit(lambda a, b: _run_program(steps, a, b)).lower(x, y)
    want = np_of(_run_program(steps, x, y))
    graph = lowered.raw
    for name, fn in passes.PIPELINE:  # each pass alone on the traced graph, then the pipeline in order
        alone = fn(lowered.raw)
        ir.verify(alone)
        assert_close(_run(alone, [x, y])[0], want, rtol=1e-12, atol=1e-12, msg=name)
        graph = fn(graph)
        ir.verify(graph)
        assert_close(_run(graph, [x, y])[0], want, rtol=1e-12, atol=1e-12, msg=name)
    assert len(lowered.graph.nodes) <= len(lowered.raw.nodes)
