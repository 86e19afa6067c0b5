"""The graph IR, its passes, and ember.jit (tracing, caching, recompilation, checks, composition)."""
from __future__ import annotations

import functools
import gc
import warnings
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ember
import ember.nn.functional as F
from ember.compiler import ir, passes
from ember.compiler.ir import Graph, IRError, Literal, Node, Value
from ember.errors import DynamicDimsWarning, EmberError, RecompileLimitWarning, TraceError
from ember.func import grad, vmap

from helpers import assert_close, np_of, t64

P = ember._core.primitive.PRIMITIVES


def _programs():
    def f1(x, w):
        return ember.tanh(x @ w).sum(1)

    def f2(x, w):
        h = x[1:, ::2] * 2.0
        return (h.T.reshape(-1) + 1).float().max()

    def f3(x, w):
        return ember.where(x > 0, x, w.sum() * 0.5).mean(0, keepdim=True)

    return [f1, f2, f3]


@pytest.mark.parametrize("fn", _programs())
def test_text_form_round_trips_through_the_parser(fn, rng):
    x, w = t64(rng.standard_normal((4, 4))), t64(rng.standard_normal((4, 3)))
    for graph in (ember.jit(fn).lower(x, w).raw, ember.jit(fn).lower(x, w).graph):
        text = str(graph)
        assert str(ir.parse(text)) == text
        ir.verify(ir.parse(text))


def test_verifier_rejects_use_before_definition():
    a, b = Value(0, (2,), ember.float32), Value(1, (2,), ember.float32)
    c = Value(2, (2,), ember.float32)
    g = Graph([a], [Node(P["add"], (a, b), {}, (c,))], [c])
    with pytest.raises(IRError, match="used before it is defined"):
        ir.verify(g)


def test_parser_reports_unknown_primitives():
    with pytest.raises(IRError, match="unknown primitive 'frobnicate'"):
        ir.parse("graph(%0: float32[2]) {\n  %1: float32[2] = frobnicate(%0)\n  return (%1)\n}")


def test_simplify_folds_broadcasts_into_elementwise_operands():
    g = _graph("graph(%0: float32[2, 3], %1: float32[1, 3]) {\n"
               "  %2: float32[2, 3] = broadcast_to(%1) {shape=(2, 3)}\n"
               "  %3: float32[2, 3] = mul(%0, %2)\n  return (%3)\n}")
    assert str(passes.simplify(g)) == ("graph(%0: float32[2, 3], %1: float32[1, 3]) {\n"
                                       "  %3: float32[2, 3] = mul(%0, %1)\n  return (%3)\n}")


def test_simplify_keeps_a_broadcast_that_sets_the_output_shape():
    text = ("graph(%0: float32[1, 3], %1: float32[1, 3]) {\n"
            "  %2: float32[2, 3] = broadcast_to(%1) {shape=(2, 3)}\n"
            "  %3: float32[2, 3] = add(%0, %2)\n  return (%3)\n}")
    assert str(passes.simplify(_graph(text))) == text


def test_simplify_sinks_a_broadcast_below_a_unary_op_then_folds_it():
    g = _graph("graph(%0: float32[2, 3], %1: float32[2, 1]) {\n"
               "  %2: float32[2, 3] = broadcast_to(%1) {shape=(2, 3)}\n"
               "  %3: float32[2, 3] = exp(%2)\n  %4: float32[2, 3] = add(%0, %3)\n  return (%4)\n}")
    out = passes.simplify(g)
    ir.verify(out)
    assert str(out) == ("graph(%0: float32[2, 3], %1: float32[2, 1]) {\n  %5: float32[2, 1] = exp(%1)\n"
                        "  %4: float32[2, 3] = add(%0, %5)\n  return (%4)\n}")
    rng = np.random.default_rng(0)
    x, b = t64(rng.standard_normal((2, 3))), t64(rng.standard_normal((2, 1)))
    g64 = ir.parse(str(g).replace("float32", "float64"))
    o64 = ir.parse(str(out).replace("float32", "float64"))
    run = ember.compiler.executor.run
    assert_close(run(o64, [x, b])[0], np_of(run(g64, [x, b])[0]), rtol=1e-12, atol=1e-12)


def _applied(pass_fn, g):
    """The graph after `pass_fn` (verified) and the names of its primitives in order."""
    out = pass_fn(g)
    ir.verify(out)
    return out, [n.prim.name for n in out.nodes]


def test_simplify_sinks_a_reshape_below_elementwise_ops_so_they_fuse_with_its_source():
    g = _graph("graph(%0: float32[6, 4], %1: float32[4], %2: float32[2, 3, 4]) {\n"
               "  %3: float32[6, 4] = add(%0, %1)\n"
               "  %4: float32[2, 3, 4] = reshape(%3) {shape=(2, 3, 4)}\n"
               "  %5: float32[2, 3, 4] = gelu(%4)\n"
               "  %6: float32[2, 3, 4] = add(%5, %2)\n  return (%6)\n}")
    out, names = _applied(passes.simplify, g)
    # gelu and the residual add now run in the (6, 4) shape of the bias add; one reshape at the end
    assert names == ["add", "gelu", "reshape", "add", "reshape"]
    assert [tuple(n.outputs[0].shape) for n in out.nodes][:2] == [(6, 4), (6, 4)]
    fused = dict(passes.PIPELINE)["fuse"](passes.dce(passes.cse(out)))
    assert sum(n.prim.name.startswith("fused_") for n in fused.nodes) == 1
    rng = np.random.default_rng(0)
    args = [t64(rng.standard_normal(s)) for s in ((6, 4), (4,), (2, 3, 4))]
    g64, o64 = (ir.parse(str(x).replace("float32", "float64")) for x in (g, out))
    run = ember.compiler.executor.run
    assert_close(run(o64, args)[0], np_of(run(g64, args)[0]), rtol=1e-12, atol=1e-12)


def test_simplify_leaves_a_reshape_whose_sibling_operand_broadcasts():
    text = ("graph(%0: float32[6, 4], %1: float32[3, 4]) {\n"
            "  %2: float32[2, 3, 4] = reshape(%0) {shape=(2, 3, 4)}\n"
            "  %3: float32[2, 3, 4] = mul(%2, %1)\n  return (%3)\n}")
    assert str(passes.simplify(_graph(text))) == text


def test_simplify_computes_a_transposed_product_from_transposed_operands():
    g = _graph("graph(%0: float32[4, 3], %1: float32[4, 5]) {\n"
               "  %2: float32[3, 4] = transpose(%0) {perm=(1, 0)}\n"
               "  %3: float32[3, 5] = matmul(%2, %1)\n"
               "  %4: float32[5, 3] = transpose(%3) {perm=(1, 0)}\n  return (%4)\n}")
    out = passes.simplify(g)
    ir.verify(out)
    # (x^T g)^T = g^T x: one transpose view of g, the product written in the layout that is returned
    assert [n.prim.name for n in out.nodes] == ["transpose", "matmul"]
    assert out.nodes[1].operands[1].id == 0
    rng = np.random.default_rng(0)
    args = [t64(rng.standard_normal(s)) for s in ((4, 3), (4, 5))]
    g64, o64 = (ir.parse(str(x).replace("float32", "float64")) for x in (g, out))
    run = ember.compiler.executor.run
    assert_close(run(o64, args)[0], np_of(run(g64, args)[0]), rtol=1e-12, atol=1e-12)
    used_twice = _graph("graph(%0: float32[3, 4], %1: float32[4, 5]) {\n"
                        "  %2: float32[3, 5] = matmul(%0, %1)\n"
                        "  %3: float32[5, 3] = transpose(%2) {perm=(1, 0)}\n  return (%3, %2)\n}")
    assert str(passes.simplify(used_twice)) == str(used_twice)


@pytest.mark.parametrize("window", [(2, 2), (3, 3)])  # (3, 3) with stride 2: windows overlap
def test_simplify_masks_the_pooled_gradient_of_a_relu_before_scattering_it(window):
    def f(h, g):  # the backward of max_pool(relu(h)) with cotangent g, as autograd writes it
        return ember.func.vjp(lambda h: F.max_pool2d(ember.relu(h), window, 2), h)[1](g)[0]

    rng = np.random.default_rng(0)
    h = t64(rng.standard_normal((2, 3, 9, 9)) - 0.5)  # many windows whose maximum is negative
    h = t64(np.where(rng.random((2, 3, 9, 9)) < 0.2, 0.0, np_of(h)))  # and zeros: ties at the mask's edge
    g = t64(rng.standard_normal(tuple(F.max_pool2d(h, window, 2).shape)))
    raw = ember.jit(f).lower(h, g).raw
    out, names = _applied(passes.simplify, raw)
    # relu_vjp_x now reads the pooled maximum and the pooled gradient: it runs before the scatter
    (mask,) = [n for n in out.nodes if n.prim.name == "relu_vjp_x"]
    assert tuple(mask.outputs[0].shape) == tuple(g.shape) and names.index("relu_vjp_x") < names.index("pool_scatter")
    run = ember.compiler.executor.run
    assert_close(run(out, [h, g])[0], np_of(run(raw, [h, g])[0]), rtol=0, atol=0)
    assert_close(ember.jit(f)(h, g), np_of(f(h, g)), rtol=0, atol=0)


def test_simplify_takes_a_relu_gradient_from_its_output():
    def f(x, w, g):  # a linear layer's ReLU and its backward: relu(x @ w) is kept for the next layer
        y, back = ember.func.vjp(lambda h: ember.relu(h), x @ w + 0.5)
        return y * 2.0, back(g)[0]

    rng = np.random.default_rng(0)
    x, w, g = (t64(rng.standard_normal(s)) for s in ((8, 5), (5, 6), (8, 6)))
    x = t64(np.where(rng.random((8, 5)) < 0.3, np.nan, np_of(x)))  # NaN rows: the mask agrees there too
    raw = ember.jit(f).lower(x, w, g).raw
    out, names = _applied(passes.simplify, raw)
    (relu,) = [n for n in out.nodes if n.prim.name == "relu"]
    (mask,) = [n for n in out.nodes if n.prim.name == "relu_vjp_x"]
    assert mask.operands[0].id == relu.outputs[0].id
    run = ember.compiler.executor.run
    for got, want in zip(run(out, [x, w, g]), run(raw, [x, w, g])):
        assert_close(got, np_of(want), rtol=0, atol=0)
    # compiled, the bias add and ReLU before it return one array (no pre-activation kept)
    fused = ember.jit(f).lower(x, w, g).graph
    assert all(len(n.outputs[0].shape) == 2 for n in fused.nodes if n.prim.name.startswith(("fused_", "matmul_")))


def test_fold_norm_grads_rewrites_a_layer_norm_backward():
    g = _graph("graph(%0: float64[6, 8], %1: float64[8], %2: float64[6, 8]) {\n"
               "  %3: float64[6, 8] = normalize(%0) {n=1, eps=1e-05}\n"
               "  %4: float64[1, 8] = reduce_sum(%2) {axis=(0,), keepdims=True, dtype=None}\n"
               "  %5: float64[6, 8] = mul(%2, %1)\n"
               "  %6: float64[6, 8] = mul(%2, %3)\n"
               "  %7: float64[8] = reduce_sum(%6) {axis=(0,), keepdims=False, dtype=None}\n"
               "  %8: float64[6, 8] = normalize_grad(%5, %0) {n=1, eps=1e-05}\n"
               "  return (%8, %7, %4)\n}")
    out, names = _applied(passes.fold_norm_grads, g)
    assert names.count("norm_param_grads") == 1 and "normalize_grad_scaled" in names
    assert "normalize" not in names and "mul" not in names
    rng = np.random.default_rng(0)
    args = [t64(rng.standard_normal(s)) for s in ((6, 8), (8,), (6, 8))]
    run = ember.compiler.executor.run
    for got, want in zip(run(out, args), run(g, args)):
        assert_close(got, np_of(want), rtol=1e-12, atol=1e-12)


def test_simplify_turns_sums_of_side_by_side_zero_pads_into_a_cat():
    g = _graph("graph(%0: float32[2, 3], %1: float32[2, 3], %2: float32[2, 3]) {\n"
               "  %3: float32[2, 9] = pad(%0) {config=((0, 0, 0), (0, 6, 0)), value=0}\n"
               "  %4: float32[2, 9] = pad(%1) {config=((0, 0, 0), (3, 3, 0)), value=0}\n"
               "  %5: float32[2, 9] = add(%3, %4)\n"
               "  %6: float32[2, 9] = pad(%2) {config=((0, 0, 0), (6, 0, 0)), value=0}\n"
               "  %7: float32[2, 9] = add(%5, %6)\n  return (%7)\n}")
    out, names = _applied(passes.simplify, g)
    assert names == ["cat"] and [o.id for o in out.nodes[0].operands] == [0, 1, 2]
    gap = _graph("graph(%0: float32[2, 3], %1: float32[2, 3]) {\n"
                 "  %2: float32[2, 9] = pad(%0) {config=((0, 0, 0), (0, 6, 0)), value=0}\n"
                 "  %3: float32[2, 9] = pad(%1) {config=((0, 0, 0), (6, 0, 0)), value=0}\n"
                 "  %4: float32[2, 9] = add(%2, %3)\n  return (%4)\n}")
    assert str(passes.simplify(gap)) == str(gap)  # not side by side: the sum stays
    rng = np.random.default_rng(0)
    args = [t64(rng.standard_normal((2, 3))) for _ in range(3)]
    g64, o64 = (ir.parse(str(x).replace("float32", "float64")) for x in (g, out))
    run = ember.compiler.executor.run
    assert_close(run(o64, args)[0], np_of(run(g64, args)[0]), rtol=1e-12, atol=1e-12)


def test_simplify_folds_merging_reshapes_into_the_cat_that_reads_them():
    g = _graph("graph(%0: float32[2, 3, 4], %1: float32[2, 5, 4]) {\n"
               "  %2: float32[3, 2, 4] = transpose(%0) {perm=(1, 0, 2)}\n"
               "  %3: float32[3, 8] = reshape(%2) {shape=(3, 8)}\n"
               "  %4: float32[5, 2, 4] = transpose(%1) {perm=(1, 0, 2)}\n"
               "  %5: float32[3, 20] = reshape(%4) {shape=(3, 20)}\n"
               "  %6: float32[3, 28] = cat(%3, %5) {dim=1}\n  return (%6)\n}")
    assert str(passes.simplify(g)) == str(g)  # %5 does not merge the last two axes of a (3, ...) tensor
    g = _graph("graph(%0: float32[2, 3, 4], %1: float32[5, 3, 4]) {\n"
               "  %2: float32[3, 2, 4] = transpose(%0) {perm=(1, 0, 2)}\n"
               "  %3: float32[3, 8] = reshape(%2) {shape=(3, 8)}\n"
               "  %4: float32[3, 5, 4] = transpose(%1) {perm=(1, 0, 2)}\n"
               "  %5: float32[3, 20] = reshape(%4) {shape=(3, 20)}\n"
               "  %6: float32[3, 28] = cat(%3, %5) {dim=1}\n  return (%6)\n}")
    out, names = _applied(passes.simplify, g)
    assert names == ["transpose", "transpose", "cat", "reshape"]
    rng = np.random.default_rng(0)
    args = [t64(rng.standard_normal(s)) for s in ((2, 3, 4), (5, 3, 4))]
    g64, o64 = (ir.parse(str(x).replace("float32", "float64")) for x in (g, out))
    run = ember.compiler.executor.run
    assert_close(run(o64, args)[0], np_of(run(g64, args)[0]), rtol=1e-12, atol=1e-12)


def _graph(text: str) -> Graph:
    return ir.parse(text)


def test_dce_removes_unused_nodes():
    g = _graph("graph(%0: float32[3]) {\n  %1: float32[3] = exp(%0)\n  %2: float32[3] = sin(%0)\n"
               "  return (%2)\n}")
    assert str(passes.dce(g)) == "graph(%0: float32[3]) {\n  %2: float32[3] = sin(%0)\n  return (%2)\n}"


def test_cse_merges_identical_nodes():
    g = _graph("graph(%0: float32[3]) {\n  %1: float32[3] = exp(%0)\n  %2: float32[3] = exp(%0)\n"
               "  %3: float32[3] = add(%1, %2)\n  return (%3)\n}")
    out = passes.dce(passes.cse(g))
    assert str(out) == ("graph(%0: float32[3]) {\n  %1: float32[3] = exp(%0)\n"
                        "  %3: float32[3] = add(%1, %1)\n  return (%3)\n}")


def test_simplify_removes_identities_and_transpose_pairs():
    g = _graph("graph(%0: float32[2, 3]) {\n  %1: float32[2, 3] = mul(%0, float32(1.0))\n"
               "  %2: float32[2, 3] = add(%1, 0.0)\n  %3: float32[3, 2] = transpose(%2) {perm=(1, 0)}\n"
               "  %4: float32[2, 3] = transpose(%3) {perm=(1, 0)}\n  %5: float32[2, 3] = exp(%4)\n"
               "  return (%5)\n}")
    assert str(passes.simplify(g)) == "graph(%0: float32[2, 3]) {\n  %5: float32[2, 3] = exp(%0)\n  return (%5)\n}"


def test_simplify_folds_reshape_chains():
    g = _graph("graph(%0: float32[2, 3]) {\n  %1: float32[6] = reshape(%0) {shape=(6,)}\n"
               "  %2: float32[3, 2] = reshape(%1) {shape=(3, 2)}\n  return (%2)\n}")
    assert str(passes.simplify(g)) == ("graph(%0: float32[2, 3]) {\n  %2: float32[3, 2] = reshape(%0) "
                                       "{shape=(3, 2)}\n  return (%2)\n}")


_UNARY = ["exp", "sin", "tanh", "neg", "abs", "sigmoid", "relu"]


@st.composite
def _random_program(draw):
    """A random straight-line program over two inputs with identities sprinkled in."""
    steps = draw(st.lists(st.tuples(st.sampled_from(_UNARY + ["add", "mul", "id_mul", "id_add", "twice_t",
                                                     "bcast_row", "bcast_col", "reshaped", "mm_t", "pads",
                                                     "relu_grad"]),
                                    st.integers(0, 10), st.integers(0, 10)), min_size=1, max_size=12))
    return steps


def _run_program(steps, x, y):
    vals = [x, y]
    for op, i, j in steps:
        a, b = vals[i % len(vals)], vals[j % len(vals)]
        if op in _UNARY:
            vals.append(getattr(ember, op)(a))
        elif op == "add":
            vals.append(a + b)
        elif op == "mul":
            vals.append(a * b)
        elif op == "id_mul":
            vals.append(a * 1.0)
        elif op == "id_add":
            vals.append(a + 0.0)
        elif op == "bcast_row":  # an explicit broadcast read by an elementwise op (broadcast folding)
            vals.append(a.sum(0, keepdim=True).expand(3, 3) * b)
        elif op == "bcast_col":  # a unary op on a broadcast (the broadcast sinks below it)
            vals.append(ember.exp(a.amax(1, keepdim=True).expand(3, 3)))
        elif op == "pads":  # zero pads side by side (they become a cat)
            vals.append(ember.pad(a[:, :1], (0, 2)) + ember.pad(b[:, 1:], (1, 0)))
        elif op == "relu_grad":  # a ReLU's gradient, taken from the ReLU's output where it exists
            vals.append(ember.func.vjp(ember.relu, a)[1](b)[0] + ember.relu(a))
        elif op == "mm_t":  # a transposed product (computed from transposed operands)
            vals.append((a @ b.T).T)
        elif op == "reshaped":  # elementwise ops on a reshape (they sink below it)
            vals.append((ember.tanh(a.reshape(9, 1)) * b.reshape(9, 1)).reshape(3, 3))
        else:
            vals.append(a.T.T)
    return vals[-1] + vals[-2]


@given(_random_program())
def test_passes_keep_the_outputs_of_random_programs(steps):
    rng = np.random.default_rng(0)
    x, y = t64(rng.standard_normal((3, 3))), t64(rng.standard_normal((3, 3)))
    lowered = ember.jit(lambda a, b: _run_program(steps, a, b)).lower(x, y)
    want = np_of(_run_program(steps, x, y))
    raw = lowered.raw
    for name, fn in passes.PIPELINE:
        out = fn(raw)
        ir.verify(out)
        got = ember.compiler.executor.run(out, [x, y])[0]
        assert_close(got, want, rtol=1e-12, atol=1e-12, msg=name)
    # no more work than traced (a group with several escaping values adds views that read them)
    assert sum(not n.prim.view for n in lowered.graph.nodes) <= len(raw.nodes)


def test_jit_matches_eager_and_caches_by_signature(rng):
    f = ember.jit(lambda x, w: ember.tanh(x @ w).sum())
    x, w = t64(rng.standard_normal((4, 3))), t64(rng.standard_normal((3, 2)))
    assert_close(f(x, w), np_of(ember.tanh(x @ w).sum()))
    f(t64(rng.standard_normal((4, 3))), w)
    assert f.compile_count == 1
    f(t64(rng.standard_normal((5, 3))), w)
    assert f.compile_count == 2


def test_explain_names_the_changed_argument_and_the_call_site(rng, capsys):
    f = ember.jit(lambda x: x.exp(), explain=True)
    f(ember.ones(2))
    f(ember.ones(3))
    err = capsys.readouterr().err
    assert "shape (2,) -> (3,)" in err and "test_compiler.py" in err


def test_strict_raises_instead_of_recompiling():
    f = ember.jit(lambda x: x.exp(), strict=True)
    f(ember.ones(2))
    with pytest.raises(TraceError, match="dtype float32 -> float64"):
        f(ember.ones(2, dtype=ember.float64))


def test_a_changed_python_number_is_explained_and_a_tensor_avoids_recompiling():
    f = ember.jit(lambda x, s: x * s, strict=True)
    f(ember.ones(2), 0.5)
    with pytest.raises(TraceError, match=r"float 0\.5 -> 0\.25.*ember\.tensor\(value\)"):
        f(ember.ones(2), 0.25)
    g = ember.jit(lambda x, s: x * s, strict=True)
    for s in (0.5, 0.25, 2.0):
        np.testing.assert_array_equal(g(ember.ones(2), ember.tensor(s)).numpy(), [s, s])
    assert g.compile_count == 1


def test_past_cache_size_new_signatures_run_eagerly_with_one_warning():
    calls = []

    def f(x):
        calls.append(x.shape)  # runs while tracing, and on every eager call
        return x.exp() * 2

    g = ember.jit(f, cache_size=2)
    with pytest.warns(RecompileLimitWarning, match=r"cache_size=2.*shape \(2,\) -> \(3,\)"):
        results = [g(ember.ones(n)) for n in (1, 2, 3, 4, 1, 2)]
    for n, r in zip((1, 2, 3, 4, 1, 2), results):
        np.testing.assert_allclose(r.numpy(), np.full(n, 2 * np.e, np.float32), rtol=1e-6)
    assert (g.compile_count, g.eager_calls) == (2, 2)
    assert len(calls) == 4  # two traces and two eager calls; the cached signatures ran compiled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g(ember.ones(5))  # warns once only
    g.clear_cache()
    g(ember.ones(5))
    assert g.compile_count == 3 and len(g.cache) == 1


def test_a_dropped_graph_frees_the_tensors_it_captured():
    held = {"w": ember.randn(256, 256)}
    f = ember.jit(lambda x: (x @ held["w"]).relu().sum())
    f(ember.randn(4, 256))
    graph, captured = (weakref.ref(o) for o in (next(iter(f.cache.values())).graph, held.pop("w")))
    f.clear_cache()
    gc.collect()
    assert graph() is None and captured() is None


def test_cache_size_none_keeps_every_graph_and_bad_sizes_are_refused():
    g = ember.jit(lambda x: x + 1, cache_size=None)
    for n in range(1, 12):
        g(ember.ones(n))
    assert (g.compile_count, g.eager_calls) == (11, 0)
    for bad in (0, -1, 2.5):
        with pytest.raises(EmberError, match="cache_size"):
            ember.jit(lambda x: x, cache_size=bad)


def test_data_dependent_control_flow_raises_trace_error_naming_the_line():
    def f(x):
        if x.sum() > 0:  # data-dependent branch
            return x
        return -x

    with pytest.raises(TraceError) as info:
        ember.jit(f)(ember.ones(2))
    assert "if x.sum() > 0" in str(info.value) and "ember.where" in str(info.value)


def test_static_arguments_are_part_of_the_key():
    f = ember.jit(lambda x, n: x * n)
    assert f(ember.ones(2), 2).tolist() == [2.0, 2.0] and f(ember.ones(2), 3).tolist() == [3.0, 3.0]
    assert f.compile_count == 2


def test_jit_of_a_module_reads_current_parameters():
    m = ember.nn.Linear(3, 2)
    f = ember.jit(m)
    x = ember.ones(1, 3)
    assert_close(f(x), np_of(m(x)))
    with ember.no_grad():
        m.bias.add_(1.0)
    assert_close(f(x), np_of(m(x)))
    assert list(m.state_dict()) == ["weight", "bias"]


def test_jit_output_is_differentiable_with_backward(rng):
    w = t64(rng.standard_normal((3, 2))).requires_grad_()
    x = t64(rng.standard_normal((4, 3)))
    ember.jit(lambda a: ember.tanh(a @ w).sum())(x).backward()
    w2 = w.detach().requires_grad_()
    ember.tanh(x @ w2).sum().backward()
    assert_close(w.grad, np_of(w2.grad), rtol=1e-12)


def test_jit_composes_with_grad_and_vmap(rng):
    def loss(w, x):
        return (ember.tanh(x @ w) ** 2).sum()

    w, xs = t64(rng.standard_normal((3, 2))), t64(rng.standard_normal((5, 3)))
    assert_close(ember.jit(grad(loss))(w, xs), np_of(grad(loss)(w, xs)), rtol=1e-12)
    per = vmap(ember.jit(grad(loss)), in_dims=(None, 0))(w, xs)
    assert_close(per, np_of(vmap(grad(loss), in_dims=(None, 0))(w, xs)), rtol=1e-12)
    assert_close(grad(ember.jit(loss))(w, xs), np_of(grad(loss)(w, xs)), rtol=1e-12)


def test_check_mode_runs_and_lower_shows_pass_dumps():
    f = ember.jit(lambda x: (x * 1.0).exp() + 0.0, check=True)
    assert f(ember.zeros(2)).tolist() == [1.0, 1.0]
    dumps = f.lower(ember.zeros(2)).pass_dumps()
    assert [d[0] for d in dumps] == ["fold_constants"] + [name for name, _ in passes.PIPELINE]
    assert "mul" in dumps[1][1] and "mul" not in dumps[1][2]  # simplify drops x*1


def test_ember_compile_is_jit():
    assert ember.compile is ember.jit
    assert isinstance(Literal(2.0), Literal)


def test_lower_returns_the_generated_kernel_sources():
    f = ember.jit(lambda x, w: ember.gelu_tanh(x * w + 1.0))
    sources = f.lower(ember.ones(64), ember.ones(64)).kernels()
    assert len(sources) == 1
    (name, source), = sources.items()
    assert name.startswith("fused_") and "gelu_tanh" in source.splitlines()[0] and "void" in source


def test_dynamic_batch_dimension_runs_every_size_with_one_compilation(rng):
    import ember.nn.functional as F

    ember.manual_seed(0)
    model = ember.models.mlp([8, 16, 3]).eval()

    def f(x, y):
        return F.cross_entropy(model(x), y)  # a mean: its 1/N follows the batch size

    jf = ember.jit(f, dynamic_dims={0: {0: "batch"}, 1: {0: "batch"}})
    for b in [4, 7, 2, 9]:
        x, y = ember.randn(b, 8), ember.randint(0, 3, (b,))
        assert_close(jf(x, y), np_of(f(x, y)), rtol=1e-6)
    assert jf.compile_count == 1


def test_dynamic_batch_and_sequence_for_gpt():
    ember.manual_seed(0)
    gpt = ember.models.gpt(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16).eval()
    jg = ember.jit(gpt, dynamic_dims={0: [0, 1]})
    for shape in [(2, 8), (3, 5), (1, 7)]:
        x = ember.randint(0, 16, shape)
        assert_close(jg(x), np_of(gpt(x)), rtol=1e-5, atol=1e-6)
    assert jg.compile_count == 1


def test_dynamic_dims_warn_and_compile_each_size_where_a_constant_follows_the_size():
    def f(x):
        return x + ember.arange(x.shape[0])  # a constant whose shape follows the batch

    jf = ember.jit(f, dynamic_dims={0: [0]})
    with pytest.warns(DynamicDimsWarning, match="constant of shape"):
        jf(ember.ones(3))
    for n in (3, 5, 4, 5):
        assert_close(jf(ember.ones(n)), np.arange(n) + 1.0)
    assert jf.compile_count == 3


def test_measured_peak_memory_matches_the_plan_within_5_percent():
    ember.manual_seed(0)
    model = ember.models.mlp([512, 2048, 2048, 10]).eval()
    f = ember.jit(lambda x: ember.tanh(model(x)).sum(1))
    x = ember.empty(256, 512).normal_()
    with ember.no_grad():
        f(x)
        plan = f.lower(x).memory()
        ember.reset_peak_memory_stats()
        base = ember.memory_stats()["current_bytes"]  # inputs, parameters and whatever else is alive
        f(x)
    # what the run adds on top of what already exists, against the plan's intermediates at its peak
    owned = sum(b["bytes"] for b in plan["buffers"] if b["kind"] in ("input", "constant"))
    predicted = plan["peak_bytes"] - owned
    measured = ember.memory_stats()["peak_bytes"] - base
    assert abs(measured - predicted) <= 0.05 * predicted, (measured, predicted)


def test_fold_constants_folds_only_the_constants_named_foldable():
    text = ("graph(%0: float64[3]) {\n  %1: float64[3] = constant()\n  %2: float64[3] = exp(%1)\n"
            "  %3: float64[3] = mul(%2, 2.0)\n  %4: float64[3] = add(%0, %3)\n  return (%4)\n}")
    c = ember.tensor([0.0, 1.0, 2.0], dtype=ember.float64)
    g = _graph(text)
    g.constants[1] = c
    assert str(passes.fold_constants(g, set())) == text  # a captured tensor is read at run time
    folded = passes.fold_constants(g, {1})
    ir.verify(folded)
    assert [n.prim.name for n in folded.nodes] == ["add"]
    assert_close(folded.constants[3], 2 * np.exp([0.0, 1.0, 2.0]), rtol=1e-15, atol=0)
    x = t64(np.ones(3))
    run = ember.compiler.executor.run
    assert_close(run(folded, [x])[0], np_of(run(g, [x])[0]), rtol=1e-15, atol=0)


def test_fold_constants_resolves_a_where_whose_known_condition_is_all_true_or_all_false():
    text = ("graph(%0: float64[3], %1: float64[3]) {\n  %2: bool[] = constant()\n"
            "  %3: float64[3] = where(%2, %0, %1)\n  %4: float64[3] = mul(%3, 2.0)\n  return (%4)\n}")
    x, y = t64(np.arange(3.0)), t64(-np.ones(3))
    run = ember.compiler.executor.run
    for flag, want in ((True, np.arange(3.0)), (False, -np.ones(3))):
        g = _graph(text)
        g.constants[2] = ember.tensor(flag)
        assert str(passes.fold_constants(g, set())) == text  # a captured condition is read at run time
        folded = passes.fold_constants(g, {2})
        ir.verify(folded)
        assert [n.prim.name for n in folded.nodes] == ["mul"]
        assert_close(run(folded, [x, y])[0], 2 * want, rtol=0, atol=0)
    g = _graph(text)
    g.constants[2] = ember.tensor([True, False, True])  # (a mixed mask is not resolved)
    g.const_values[0].shape = (3,)
    assert [n.prim.name for n in passes.fold_constants(g, {2}).nodes] == ["where", "mul"]


def test_an_in_place_copy_of_a_value_made_inside_compiles_without_a_where():
    def f(x):
        x.copy_(ember.ones(3))
        return x * 2

    jf = ember.jit(f)
    assert "where" not in jf.lower(ember.zeros(3)).as_text()
    x = ember.zeros(3)
    assert_close(jf(x), np.full(3, 2.0))
    assert_close(x, np.ones(3))


def test_jit_folds_tensors_the_function_creates_but_reads_captured_ones_at_run_time(rng):
    w = ember.tensor(rng.standard_normal((4, 4)), dtype=ember.float32)

    def f(x):
        mask = ember.ones(4, 4).tril() * 2.0 + ember.arange(4).float()
        return x * mask + w.exp()

    jf = ember.jit(f)
    x = ember.tensor(rng.standard_normal((4, 4)), dtype=ember.float32)
    lowered = jf.lower(x)
    names = [n.prim.name for n in passes.fold_constants(lowered.raw, set()).nodes]
    assert "exp" in names  # without foldable constants nothing folds
    text = lowered.as_text()
    assert "tril" not in text and "where" not in text and "convert_element_type" not in text
    assert_close(jf(x), np_of(f(x)), rtol=1e-6, atol=1e-6)
    with ember.no_grad():
        w.mul_(2.0)  # a captured tensor changes: the compiled function sees it
    assert_close(jf(x), np_of(f(x)), rtol=1e-6, atol=1e-6)


def test_a_folded_result_that_is_returned_is_a_new_tensor_each_call():
    jf = ember.jit(lambda x: (x + 1, ember.arange(3).float() * 2))
    x = ember.zeros(2)
    first, second = jf(x)[1], jf(x)[1]
    assert first is not second
    first.add_(1.0)
    assert jf(x)[1].tolist() == [0.0, 2.0, 4.0]


@given(_random_program())
def test_constant_folding_keeps_the_outputs_of_random_programs(steps):
    def prog(a, b):
        c = ember.arange(9, dtype=ember.float64).reshape(3, 3) * 0.1  # created inside: foldable
        return _run_program(steps, c, b) + a

    rng = np.random.default_rng(1)
    x, y = t64(rng.standard_normal((3, 3))), t64(rng.standard_normal((3, 3)))
    lowered = ember.jit(prog).lower(x, y)
    name, before, after = lowered.dumps[0]
    assert name == "fold_constants" and after.count(" = ") <= before.count(" = ")
    folded = ir.parse(after)
    ir.verify(folded)
    assert_close(ember.jit(prog)(x, y), np_of(prog(x, y)), rtol=1e-12, atol=1e-12)


def test_graphs_run_on_arrays_when_nothing_records_and_give_the_same_values(rng, monkeypatch):
    from ember.compiler import executor

    f = ember.jit(lambda x, w: ember.tanh(x @ w).exp().sum(1))
    x, w = t64(rng.standard_normal((6, 5))), t64(rng.standard_normal((5, 4)))
    with ember.no_grad():
        fast = f(x, w)
        monkeypatch.setattr(executor, "_on_cpu", lambda graph, inputs: False)
        slow = f(x, w)
    assert np.array_equal(np_of(fast), np_of(slow)) and fast.dtype is slow.dtype
    monkeypatch.undo()
    x.requires_grad_()
    out = f(x, w)  # gradient recording: through bind, so the result is differentiable
    out.sum().backward()
    assert x.grad is not None


def test_a_kernel_error_on_the_array_path_names_the_op():
    from ember.compiler import executor, ir

    g = ir.parse("graph(%0: float32[2, 3], %1: float32[4, 5]) {\n  %2: float32[2, 5] = matmul(%0, %1)\n"
                 "  return (%2)\n}")
    with ember.no_grad(), pytest.raises(ember.errors.EmberError, match="matmul"):
        executor.run(g, [ember.ones(2, 3), ember.ones(4, 5)])


def test_in_place_reuse_on_large_arrays_keeps_the_values_and_the_inputs(rng, monkeypatch):
    from ember.backends import CPU

    donated = []
    real = CPU.pool.donate
    monkeypatch.setattr(CPU.pool, "donate", lambda a: donated.append(real(a)) or donated[-1])

    def f(x, w):
        h = x @ w
        s = h.sum()  # read before, so that the product is no epilogue
        a = ember.exp(ember.tanh(h))  # the product dies in the fused exp/tanh: reused
        b = ember.sin(a @ w) * 2.0
        return (b + x) @ w, a.sum() + s

    x = ember.tensor(rng.standard_normal((256, 256)).astype(np.float32))
    w = ember.tensor(rng.standard_normal((256, 256)).astype(np.float32) / 16)
    x0 = np_of(x).copy()
    with ember.no_grad():
        want = f(x, w)
        got = ember.jit(f)(x, w)
        got_again = ember.jit(f)(x, w)
    assert any(donated)
    for g, g2, e in zip(got, got_again, want):
        assert_close(g, np_of(e), rtol=1e-5, atol=1e-5)
        assert np.array_equal(np_of(g), np_of(g2))
    assert np.array_equal(np_of(x), x0)


def test_a_graph_of_tensors_that_need_no_gradient_runs_on_arrays_with_recording_on(monkeypatch):
    from ember.compiler import executor

    calls = []
    original = executor._run_arrays
    monkeypatch.setattr(executor, "_run_arrays", lambda *a: calls.append(1) or original(*a))
    f = ember.jit(lambda x, w: (x @ w).tanh().sum())
    x, w = ember.randn(4, 3), ember.randn(3, 2)
    out = f(x, w)
    assert calls and not out.requires_grad  # as eagerly: nothing to differentiate
    calls.clear()
    w.requires_grad_()
    out = f(x, w)  # a tape is recorded now, through the dispatching path
    assert not calls and out.requires_grad
    out.backward()
    np.testing.assert_allclose(w.grad.numpy(), x.numpy().T @ (1 - np.tanh(x.numpy() @ w.detach().numpy()) ** 2),
                               rtol=1e-5, atol=1e-6)


def test_detach_stops_gradients_of_compiled_functions_in_every_transform():
    x = ember.tensor([1.0, 2.0, 3.0])
    f = ember.jit(lambda b: b.detach() * b)
    np.testing.assert_allclose(ember.func.grad(lambda a: f(a).sum())(x).numpy(), [1, 2, 3])
    _, tangent = ember.func.jvp(lambda a: a.detach() * a, (x,), (ember.ones(3),))
    np.testing.assert_allclose(tangent.numpy(), [1, 2, 3])  # as torch.func.jvp gives
    a = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    f(a).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [1, 2, 3])
    kept = f.lower(a).graph
    assert [n.prim.name for n in kept.nodes].count("stop_gradient") == 1  # differentiable: kept
    dropped = f.lower(x).graph  # nothing requires grad: the detach point is dropped
    assert all(n.prim.name != "stop_gradient" for n in dropped.nodes)
    np.testing.assert_allclose(f(x).numpy(), [1, 4, 9])


def test_drop_stop_gradients_keeps_the_outputs():
    g = ember.jit(lambda b: (b.detach() + 1).exp() * b).lower(ember.tensor([0.5], requires_grad=True)).raw
    out = passes.drop_stop_gradients(g)
    assert any(n.prim.name == "stop_gradient" for n in g.nodes)
    assert all(n.prim.name != "stop_gradient" for n in out.nodes)
    x = ember.tensor([1.5])
    run = ember.compiler.executor.run
    np.testing.assert_allclose(run(out, [x])[0].numpy(), run(g, [x])[0].numpy())


def _no_grad_block(a, w):
    with ember.no_grad():
        scale = (a * w).sum()  # no gradient flows back through it
    return (a * w * scale).sum()


def test_a_no_grad_block_in_a_compiled_function_passes_no_gradient():
    rng = np.random.default_rng(0)
    an, wn = rng.standard_normal(5), rng.standard_normal(5)
    grads = []
    for fn in (_no_grad_block, ember.jit(_no_grad_block), ember.jit(_no_grad_block)):
        a, w = ember.tensor(an, requires_grad=True), ember.tensor(wn, requires_grad=True)
        fn(a, w).backward()
        grads.append((a.grad.numpy(), w.grad.numpy()))
    ta, tw = torch.tensor(an, requires_grad=True), torch.tensor(wn, requires_grad=True)
    with torch.no_grad():
        scale = (ta * tw).sum()
    (ta * tw * scale).sum().backward()
    for ga, gw in grads:
        np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-12)
    # the same through the functional transform, and a captured parameter behaves like an argument
    w = ember.tensor(wn, requires_grad=True)
    f = ember.jit(lambda a: _no_grad_block(a, w))
    # (w requires grad: the gradient keeps its graph to w, as torch.func.grad's does)
    got = grad(lambda a: f(a))(ember.tensor(an))
    np.testing.assert_allclose(got.detach().numpy(), ta.grad.numpy(), rtol=1e-12)


def test_grad_mode_at_the_call_joins_the_key_of_a_graph_with_no_grad_parts(capsys):
    f = ember.jit(_no_grad_block, explain=True)
    a, w = ember.tensor([1.0, 2.0], requires_grad=True), ember.tensor([3.0, 4.0], requires_grad=True)
    with ember.no_grad():
        out = f(a, w)
    assert not out.requires_grad and out.item() == pytest.approx(11.0 * 11.0)
    f(a, w).backward()  # traced again, with recording on
    assert f.compile_count == 2 and "gradient recording" in capsys.readouterr().err
    np.testing.assert_allclose(a.grad.numpy(), [33.0, 44.0])
    g = ember.jit(lambda x: (x * 2).sum())  # traced with recording on, nothing ran with it off:
    g(a)  # the graph serves calls in both modes
    with ember.no_grad():
        assert not g(a).requires_grad
    assert g.compile_count == 1


def test_autograd_grad_inside_a_compiled_function_matches_eager():
    def first(x, create_graph):
        (gx,) = ember.autograd.grad((x ** 3).sum(), x, create_graph=create_graph)
        return gx

    x = ember.tensor([0.5, -1.5], requires_grad=True)
    for create_graph in (False, True):
        want = first(x, create_graph)
        got = ember.jit(functools.partial(first, create_graph=create_graph))(x)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy())
        assert got.requires_grad == want.requires_grad == create_graph
    got.sum().backward()  # the second derivative, 6x, through the compiled graph
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -9.0])


def test_arguments_keep_requires_grad_inside_a_compiled_function_and_their_grad_is_refused():
    seen = []
    f = ember.jit(lambda x: seen.append(x.requires_grad) or x * 2)
    f(ember.ones(2, requires_grad=True))
    f(ember.ones(2))
    assert seen == [True, False]
    step = ember.jit(lambda x: (x * x).sum().backward())
    x = ember.ones(2, requires_grad=True)
    with pytest.raises(TraceError, match="grad of an argument"):
        step(x)
    assert x.grad is None
    with pytest.raises(TraceError, match="grad of an argument"):
        ember.jit(lambda t: t.grad)(x)


def test_stop_gradient_output_requires_no_grad_eagerly():
    from ember._core.primitives.movement import stop_gradient

    a = ember.tensor([1.0, 2.0], requires_grad=True)
    out = stop_gradient(a * 3)
    assert not out.requires_grad and out.grad_fn is None
    (a * out).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [3.0, 6.0])
