"""The epilogue pass: elementwise groups fed by a matrix product run inside the packed GEMM, compute
what the unfused graph computes, and stay differentiable and transformable."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ember
import ember.nn.functional as F
from ember.compiler import epilogues, executor, fusion, ir, passes
from ember.compiler.codegen import build, gemm
from ember.func import grad, jvp, vmap

from helpers import assert_close, np_of, training_step

needs_cc = pytest.mark.skipif(not build.compiler_available(), reason="no C compiler")


def _t(rng, shape, dtype=np.float64):
    return ember.tensor(rng.standard_normal(shape).astype(dtype))


def _names(fn, *args):
    return [n.prim.name for n in ember.jit(fn).lower(*args).graph.nodes]


@pytest.fixture
def spy(monkeypatch):
    """Counts products (matrix products and convolutions) run with an epilogue inside the GEMM; products
    of every size take the GEMM with its epilogue (small ones would otherwise run unfused, on NumPy)."""
    monkeypatch.setattr(gemm, "MIN_EPILOGUE_WORK", 1)
    calls = []
    real_matmul, real_conv = gemm.matmul, gemm.conv

    def matmul(a, b, out=None, epilogue=None):
        calls.append(epilogue is not None)
        return real_matmul(a, b, out, epilogue)

    def conv(x, w, geom, groups, out=None, epilogue=None):
        calls.append(epilogue is not None)
        return real_conv(x, w, geom, groups, out, epilogue)

    monkeypatch.setattr(gemm, "matmul", matmul)
    monkeypatch.setattr(gemm, "conv", conv)
    return calls


@pytest.fixture(params=["tuned", "tiny blocks"])
def blocking(request, monkeypatch):
    """The tuned blocking, and blocks so small that every product takes several reduction and column
    blocks (the epilogue then runs once per block, and on the split-reduction path per row)."""
    if request.param == "tiny blocks":
        monkeypatch.setattr(gemm, "KC_MAX", 5)
        monkeypatch.setattr(gemm, "NC_PANELS", 1)
        monkeypatch.setattr(gemm, "MC_PANELS", 2)
    return request.param


def test_a_product_and_its_elementwise_reader_become_one_node(rng):
    x, w, b = _t(rng, (40, 30), np.float32), _t(rng, (20, 30), np.float32), _t(rng, (20,), np.float32)
    lowered = ember.jit(lambda x, w, b: F.relu(F.linear(x, w, b)) * 2.0).lower(x, w, b)
    names = [n.prim.name for n in lowered.graph.nodes]
    assert names[0] == "transpose" and names[1].startswith("matmul_fused_") and len(names) == 2
    text = str(lowered.graph)
    assert str(ir.parse(text)) == text
    ir.verify(ir.parse(text))
    source = lowered.kernels()[names[1]]
    assert "epilogue of a matrix product (input 0)" in source and "fused: add, relu, mul" in source


def test_products_that_do_not_merge(rng):
    x, w = _t(rng, (6, 5)), _t(rng, (5, 4))
    big = _t(rng, (3, 6, 4))
    # read twice, returned, broadcast to a larger shape, summed: the product stays a node of its own
    for fn in (lambda x, w: ember.tanh(x @ w) + (x @ w).sum(),
               lambda x, w: (x @ w, ember.tanh(x @ w)),
               lambda x, w: ember.tanh((x @ w) + big),
               lambda x, w: (ember.tanh(x @ w) * 2.0).sum(-1)):
        names = _names(fn, x, w)
        assert "matmul" in names and not any(n.startswith("matmul_fused") for n in names), names
    # a product whose operands are vectors
    names = _names(lambda x, w: ember.tanh(x[0] @ w), x, w)
    assert not any(n.startswith("matmul_fused") for n in names)


_CASES = {
    # name: (function of (a, b, extras), a shape, b shape, extra shapes)
    "bias relu": (lambda a, b, e: F.relu(a @ b + e[0]), (64, 70), (70, 50), [(50,)]),
    "per-row scale": (lambda a, b, e: ember.tanh(a @ b) * e[0], (64, 70), (70, 50), [(64, 1)]),
    "full operand, product second": (lambda a, b, e: e[0] - ember.exp((a @ b) * 0.01), (48, 70), (70, 60),
                                     [(48, 60)]),
    "two outputs": (lambda a, b, e: _two(a @ b + e[0]), (40, 60), (60, 100), [(100,)]),
    "mask": (lambda a, b, e: ember.where(e[0] > 0, a @ b, 0.0), (64, 40), (40, 50), [(64, 50)]),
    "batched": (lambda a, b, e: ember.sigmoid(a @ b + e[0]), (3, 30, 40), (3, 40, 50), [(3, 1, 50)]),
    "rows folded": (lambda a, b, e: ember.gelu_tanh(a @ b + e[0]) + e[1], (4, 16, 40), (40, 60),
                    [(60,), (4, 16, 60)]),
    "batch broadcast": (lambda a, b, e: ember.tanh(a @ b) * e[0], (30, 40), (3, 40, 50), [(50,)]),
    "two batch dims (unfused kernel)": (lambda a, b, e: ember.tanh(a @ b) + e[0], (2, 3, 20, 30), (2, 3, 30, 60),
                                        [(60,)]),
}


_CONV_CASES = {
    # name: (function of (x, w, extras), x shape, w shape, extra shapes, epilogue inside the GEMM)
    "bias relu": (lambda x, w, e: F.relu(F.conv2d(x, w, e[0], padding=1)), (4, 8, 12, 12), (16, 8, 3, 3),
                  [(16,)], True),
    "residual, channel-major": (lambda x, w, e: ember.tanh(F.conv2d(x, w, padding=1) + F.conv2d(x, e[0]) * 0.5),
                                (2, 6, 10, 9), (6, 6, 3, 3), [(6, 6, 1, 1)], True),
    "residual, row-major (unfused kernel)": (lambda x, w, e: ember.tanh(F.conv2d(x, w, padding=1) + e[0]),
                                             (2, 6, 10, 9), (6, 6, 3, 3), [(2, 6, 10, 9)], False),
    "two outputs, groups, stride": (lambda x, w, e: _two(F.conv2d(x, w, e[0], stride=2, groups=2)),
                                    (3, 8, 13, 11), (10, 4, 3, 2), [(10,)], True),
    "1-d": (lambda x, w, e: ember.sigmoid(F.conv1d(x, w, e[0], padding=2, dilation=2)), (3, 5, 40), (7, 5, 3),
            [(7,)], True),
    "3-d, per-position scale": (lambda x, w, e: F.conv3d(x, w) * e[0], (2, 3, 6, 7, 5), (4, 3, 2, 3, 2),
                                [(1, 1, 5, 5, 4)], False),
}


@needs_cc
@pytest.mark.parametrize("case", list(_CONV_CASES))
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_convolution_epilogues_compute_what_the_unfused_graph_computes(case, dtype, rtol, blocking, spy, rng):
    fn, sx, sw, extra, inside = _CONV_CASES[case]
    x, w = _t(rng, sx, dtype), _t(rng, sw, dtype)
    extras = [_t(rng, s, dtype) for s in extra]
    f = lambda x, w, *e: fn(x, w, e)  # noqa: E731
    assert any(n.startswith("conv_fused_") for n in _names(f, x, w, *extras))
    want = np_of(f(x, w, *extras))
    spy.clear()
    with ember.no_grad():
        got = np_of(ember.jit(f)(x, w, *extras))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    assert any(spy) == inside


def _two(h):
    """A group with two escaping values (h, read by the second output's caller too)."""
    return ember.tanh(h) * h + ember.sin(h)


@needs_cc
@pytest.mark.parametrize("case", list(_CASES))
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_epilogues_compute_what_the_unfused_graph_computes(case, dtype, rtol, blocking, spy, rng):
    fn, sa, sb, extra = _CASES[case]
    a, b = _t(rng, sa, dtype), _t(rng, sb, dtype)
    extras = [_t(rng, s, dtype) for s in extra]
    f = lambda a, b, *e: fn(a, b, e)  # noqa: E731
    lowered = ember.jit(f).lower(a, b, *extras)
    assert any(n.prim.name.startswith("matmul_fused_") for n in lowered.graph.nodes)
    want = np_of(f(a, b, *extras))
    spy.clear()
    with ember.no_grad():
        got = np_of(ember.jit(f)(a, b, *extras))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    assert any(spy) == (case != "two batch dims (unfused kernel)")


@needs_cc
def test_a_long_reduction_runs_its_epilogue_on_the_split_reduction_path(rng, spy):
    # few columns and a long reduction: the threads split the reduction, the epilogue runs per row
    a, b, bias = _t(rng, (9, 5000)), _t(rng, (5000, 7)), _t(rng, (7,))
    f = ember.jit(lambda a, b, bias: ember.tanh(a @ b * 0.01 + bias))
    with ember.no_grad():
        got = np_of(f(a, b, bias))
    assert_close(got, np.tanh(np_of(a) @ np_of(b) * 0.01 + np_of(bias)), rtol=1e-12, atol=1e-12)
    assert any(spy)


_UNARY = ["tanh", "sigmoid", "exp", "relu", "sin"]


@needs_cc
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mkn=st.sampled_from([(40, 30, 50), (64, 17, 100), (33, 64, 49), (8, 200, 30)]),
       steps=st.lists(st.tuples(st.sampled_from(_UNARY + ["add", "mul", "sub"]), st.integers(0, 9)),
                      min_size=1, max_size=6),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_random_epilogues_keep_the_program_outputs(blocking, mkn, steps, dtype):
    m, k, n = mkn
    rng = np.random.default_rng(0)
    a, b = _t(rng, (m, k), dtype), _t(rng, (k, n), dtype) * 0.2
    extras = [_t(rng, s, dtype) for s in ((n,), (m, 1), (m, n), ())]

    def program(a, b, *extras):
        vals = [a @ b]
        for op, j in steps:
            other = extras[j % len(extras)]
            if op in _UNARY:
                # exp of a bounded value: chains of exp would overflow, and sin of a huge value
                # amplifies float32 rounding without bound
                vals.append(getattr(ember, op)(ember.tanh(vals[-1]) if op == "exp" else vals[-1]))
            else:
                vals.append(getattr(ember, op)(vals[-1], other))
        return vals[-1]

    lowered = ember.jit(program).lower(a, b, *extras)
    inputs = [a, b, *extras]
    want = np_of(executor.run(lowered.raw, inputs)[0])
    merged = epilogues.fuse_epilogues(fusion.fuse(lowered.raw))
    ir.verify(merged)
    assert any(nd.prim.name.startswith("matmul_fused_") for nd in merged.nodes)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    with ember.no_grad():
        got = np_of(executor.run(merged, inputs)[0])
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _loss(x, w, b):
    return (ember.gelu_tanh(x @ w + b) * ember.sigmoid(x @ w * 0.5 - b)).sum()


def test_gradients_jvp_and_vmap_through_an_epilogue_node(rng):
    x, w, b = _t(rng, (6, 5)), _t(rng, (5, 4)), _t(rng, (4,))
    f = lambda x, w, b: ember.gelu_tanh(x @ w + b) * 2.0  # noqa: E731
    assert any(n.startswith("matmul_fused_") for n in _names(f, x, w, b))
    loss = lambda x, w, b: f(x, w, b).sum()  # noqa: E731
    for argnum in (0, 1, 2):
        want = np_of(grad(loss, argnums=argnum)(x, w, b))
        assert_close(grad(lambda *a: ember.jit(f)(*a).sum(), argnums=argnum)(x, w, b), want, rtol=1e-12)
    g2 = grad(lambda w: grad(lambda x, w, b: ember.jit(f)(x, w, b).sum(), argnums=1)(x, w, b).sum())(w)
    assert_close(g2, np_of(grad(lambda w: grad(loss, argnums=1)(x, w, b).sum())(w)), rtol=1e-10)
    v = _t(rng, (5, 4))
    _, t_jit = jvp(lambda w: ember.jit(f)(x, w, b), (w,), (v,))
    _, t_eager = jvp(lambda w: f(x, w, b), (w,), (v,))
    assert_close(t_jit, np_of(t_eager), rtol=1e-12)
    xs = _t(rng, (3, 6, 5))
    assert_close(vmap(ember.jit(lambda x: f(x, w, b)))(xs), np_of(f(xs, w, b)), rtol=1e-12)
    ws = _t(rng, (3, 5, 4))
    assert_close(vmap(ember.jit(lambda w: f(x, w, b)))(ws), np_of(f(x, ws, b)), rtol=1e-12)


def test_compiled_training_step_with_epilogues_matches_eager(rng):
    def make():
        ember.manual_seed(0)
        return ember.nn.Sequential(ember.nn.Linear(64, 96), ember.nn.GELU(), ember.nn.Linear(96, 48),
                                   ember.nn.ReLU(), ember.nn.Linear(48, 10))

    x, y = _t(rng, (128, 64), np.float32), ember.tensor(rng.integers(0, 10, 128))
    losses = []
    for jit in (False, True):
        model = make()
        step = training_step(model, ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        run = ember.jit(step) if jit else step
        losses.append([float(run(x, y).item()) for _ in range(5)])
        if jit:
            names = [n.prim.name for n in run.lower(x, y).graph.nodes]
            assert sum(n.startswith("matmul_fused_") for n in names) >= 3
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_the_pass_is_in_the_pipeline_after_fusion():
    assert [name for name, _ in passes.PIPELINE][-2:] == ["fuse", "fuse_epilogues"]


def test_the_merged_node_never_keeps_a_product_operand_alive_longer():
    def graph(a: str) -> ir.Graph:
        return ir.parse("graph(%0: float32[4, 4], %1: float32[4, 4], %2: float32[4, 4]) {\n"
                        "  %3: float32[4, 4] = mul(%0, %0)\n"
                        f"  %4: float32[4, 4] = matmul({a}, %1)\n"
                        "  %5: float32[4, 4] = exp(%2)\n"
                        "  %6: float32[4, 4] = add(%4, %5)\n"
                        "  return (%6, %3)\n}")

    # the add also reads exp(%2), defined after the product: merging would run the product later
    kept = epilogues.fuse_epilogues(graph("%3"))  # %3 is returned anyway: nothing lives longer
    assert [n.prim.name for n in kept.nodes][:2] == ["mul", "exp"]
    assert kept.nodes[2].prim.name.startswith("matmul_fused_")
    g = ir.parse(str(graph("%3")).replace("return (%6, %3)", "return (%6)"))
    assert [n.prim.name for n in epilogues.fuse_epilogues(g).nodes] == ["mul", "matmul", "exp", "add"]
    merged = epilogues.fuse_epilogues(graph("%0"))  # an input: merged, after the exp
    assert [n.prim.name for n in merged.nodes][:2] == ["mul", "exp"]
    ir.verify(merged)
    x = [ember.tensor(np.random.default_rng(i).standard_normal((4, 4)).astype(np.float32)) for i in range(3)]
    for a in ("%0", "%3"):
        assert_close(executor.run(epilogues.fuse_epilogues(graph(a)), x)[0], np_of(executor.run(graph(a), x)[0]),
                     rtol=1e-6)


def test_gradients_jvp_and_vmap_through_a_convolution_epilogue(rng):
    x, w, b = _t(rng, (2, 3, 7, 6)), _t(rng, (4, 3, 3, 3)), _t(rng, (4,))
    f = lambda x, w, b: ember.tanh(F.conv2d(x, w, b, padding=1)) * 2.0  # noqa: E731
    assert any(n.startswith("conv_fused_") for n in _names(f, x, w, b))
    for argnum in (0, 1, 2):
        want = np_of(grad(lambda *a: f(*a).sum(), argnums=argnum)(x, w, b))
        assert_close(grad(lambda *a: ember.jit(f)(*a).sum(), argnums=argnum)(x, w, b), want, rtol=1e-11)
    v = _t(rng, (4, 3, 3, 3))
    _, t_jit = jvp(lambda w: ember.jit(f)(x, w, b), (w,), (v,))
    _, t_eager = jvp(lambda w: f(x, w, b), (w,), (v,))
    assert_close(t_jit, np_of(t_eager), rtol=1e-12)
    ws = _t(rng, (2, 4, 3, 3, 3))
    per = vmap(ember.jit(lambda w: f(x, w, b)))(ws)
    assert_close(per, np.stack([np_of(f(x, ws[i], b)) for i in range(2)]), rtol=1e-12)


@needs_cc
def test_a_product_too_small_for_the_gemm_runs_its_epilogue_as_the_fused_elementwise_kernel(rng, monkeypatch):
    calls = []
    real = gemm.matmul
    monkeypatch.setattr(gemm, "matmul", lambda *a, **k: calls.append(1) or real(*a, **k))
    a, b, bias = _t(rng, (16, 8)), _t(rng, (8, 12)), _t(rng, (12,))
    assert 16 * 8 * 12 < gemm.MIN_EPILOGUE_WORK
    f = ember.jit(lambda a, b, bias: ember.tanh(a @ b + bias))
    assert any(n.prim.name.startswith("matmul_fused_") for n in f.lower(a, b, bias).graph.nodes)
    with ember.no_grad():
        got = np_of(f(a, b, bias))
    assert_close(got, np.tanh(np_of(a) @ np_of(b) + np_of(bias)), rtol=1e-12, atol=1e-12)
    assert not calls
