"""Generated row kernels for layer normalisation and its gradient (ember.compiler.codegen.rows)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
import ember.nn.functional as F
from ember.compiler.codegen import build, rows
from ember.nn.functional._softmax import softmax_last

from helpers import check_grad, check_jvp, check_vmap, np_of, t64, torch

needs_cc = pytest.mark.skipif(not build.compiler_available(), reason="no C compiler")


def _reference(g, x, eps):
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    xc = x64 - x64.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps)
    xhat = xc * rstd
    dx = rstd * (g64 - g64.mean(-1, keepdims=True) - xhat * (g64 * xhat).mean(-1, keepdims=True))
    return xhat, dx


@needs_cc
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 300), st.sampled_from(["float32", "float64"]),
       st.floats(1e-6, 1e-2), st.integers(0, 2**16))
def test_row_kernels_match_numpy(n_rows, n_feat, dtype, eps, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n_rows, n_feat)) * 3 + 1).astype(dtype)
    g = rng.standard_normal((n_rows, n_feat)).astype(dtype)
    want_y, want_dx = _reference(g, x, eps)
    tol = 2e-4 if dtype == "float32" else 1e-10
    y, dx = np.empty_like(x), np.empty_like(x)
    assert rows.normalize(x, n_feat, eps, y) and rows.normalize_grad(g, x, n_feat, eps, dx)
    np.testing.assert_allclose(y, want_y, rtol=tol, atol=tol)
    # dx is a difference of terms of size |g| / std (it cancels to ~0 for two features): scale atol by them
    terms = np.abs(g.astype(np.float64)).max() / np.sqrt(x.astype(np.float64).var(-1) + eps).min()
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol * terms)


def test_supported_needs_one_contiguous_float_dtype():
    a = np.zeros((4, 8), np.float32)
    assert rows.supported(a, a)
    assert not rows.supported(a.astype(np.float16))
    assert not rows.supported(a, a.astype(np.float64))
    assert not rows.supported(a.T)
    assert not rows.supported(np.zeros((0, 8), np.float32))


@needs_cc
def test_layer_norm_on_large_inputs_matches_torch_values_and_gradients():
    rng = np.random.default_rng(0)
    x, g = (rng.standard_normal((16, 32, 64)).astype(np.float32) for _ in range(2))
    w, b = (rng.standard_normal(64).astype(np.float32) for _ in range(2))
    ex, ew_, eb = (ember.tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.layer_norm(ex, (64,), ew_, eb)
    (out * ember.tensor(g)).sum().backward()
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tout = torch.nn.functional.layer_norm(tx, (64,), tw, tb)
    (tout * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-5, atol=1e-5)
    for mine, ref in ((ex, tx), (ew_, tw), (eb, tb)):
        np.testing.assert_allclose(mine.grad.numpy(), ref.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_without_a_compiler_layer_norm_keeps_its_numpy_kernel(monkeypatch):
    monkeypatch.setattr(rows, "_LIBS", {"float": None, "double": None})
    x = ember.tensor(np.random.default_rng(1).standard_normal((64, 128)).astype(np.float32))
    y = F.layer_norm(x, (128,))
    want, _ = _reference(np.zeros((64, 128)), x.numpy(), 1e-5)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-5)


# -- the softmax primitive ------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=3), st.sampled_from(["float32", "float64"]),
       st.integers(0, 2**16))
def test_softmax_matches_torch(shape, dtype, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) * 4).astype(dtype)
    want = torch.softmax(torch.tensor(x), -1).numpy()
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(F.softmax(ember.tensor(x), -1).numpy(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(3, 5), (64, 128)])  # the second one runs the generated row kernel
def test_softmax_large_and_small_rows_match_torch_with_masked_entries(shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32) * 3
    x[0, : shape[1] // 2] = -np.inf
    x[1, :] = -np.inf
    want = torch.softmax(torch.tensor(x), -1).numpy()
    got = F.softmax(ember.tensor(x), -1).numpy()
    np.testing.assert_allclose(got[2:], want[2:], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-7)
    assert np.all(got[0, : shape[1] // 2] == 0)
    assert np.isnan(got[1]).all() and np.isnan(want[1]).all()  # no finite entry: NaN, as PyTorch
    safe = softmax_last(ember.tensor(x), safe=True).numpy()
    assert np.all(safe[1] == 0)  # attention's variant: a fully masked row gives zeros
    np.testing.assert_allclose(safe[2:], want[2:], rtol=1e-6, atol=1e-7)


def test_softmax_gradients_and_transforms():
    x = np.random.default_rng(3).standard_normal((3, 6))
    check_grad(lambda t: F.softmax(t, -1), [x])
    check_jvp(lambda t: F.softmax(t, -1), [x])
    check_vmap(lambda t: F.softmax(t, -1), [x], [1])
    check_vmap(lambda t: softmax_last(t, safe=True), [x], [0])
    jitted = ember.jit(lambda t: F.softmax(t, -1) * 2)
    np.testing.assert_allclose(np_of(jitted(t64(x))), 2 * np_of(F.softmax(t64(x), -1)), rtol=1e-14)
    g = ember.func.grad(lambda t: (F.softmax(t, -1) ** 2).sum())
    np.testing.assert_allclose(np_of(ember.jit(g)(t64(x))), np_of(g(t64(x))), rtol=1e-12, atol=1e-14)
    big = np.random.default_rng(4).standard_normal((64, 128))  # gradient through the row kernel
    tx = torch.tensor(big, requires_grad=True)
    (torch.softmax(tx, -1) ** 2).sum().backward()
    np.testing.assert_allclose(np_of(g(t64(big))), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 5), (64, 128)])  # the second one runs the generated row kernel
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_softmax_matches_torch_with_masked_entries(shape, dtype):
    x = (np.random.default_rng(5).standard_normal(shape) * 6).astype(dtype)
    x[0, :2] = -np.inf
    want = torch.log_softmax(torch.tensor(x), -1).numpy()
    got = F.log_softmax(ember.tensor(x), -1).numpy()
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert np.all(got[0, :2] == -np.inf)
    np.testing.assert_allclose(got[1:], want[1:], rtol=tol, atol=tol)
    np.testing.assert_allclose(got[0, 2:], want[0, 2:], rtol=tol, atol=tol)


def test_log_softmax_gradients_and_transforms():
    x = np.random.default_rng(6).standard_normal((3, 6))
    check_grad(lambda t: F.log_softmax(t, -1), [x])
    check_jvp(lambda t: F.log_softmax(t, -1), [x])
    check_vmap(lambda t: F.log_softmax(t, -1), [x], [1])
    big = np.random.default_rng(7).standard_normal((64, 128))
    target = np.random.default_rng(8).integers(0, 128, 64)
    tx = torch.tensor(big, requires_grad=True)
    torch.nn.functional.cross_entropy(tx, torch.tensor(target)).backward()
    ex = ember.tensor(big, requires_grad=True)
    F.cross_entropy(ex, ember.tensor(target)).backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-13)
    loss = ember.jit(lambda t: F.cross_entropy(t, ember.tensor(target)))
    np.testing.assert_allclose(loss(t64(big)).item(), torch.nn.functional.cross_entropy(
        torch.tensor(big), torch.tensor(target)).item(), rtol=1e-12)


# -- layer norm backward: the input gradient with the weight folded in, and the parameter gradients -----
@needs_cc
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(1, 200), st.sampled_from(["float32", "float64"]), st.integers(0, 2**16))
def test_scaled_gradient_and_parameter_gradient_kernels_match_numpy(n_rows, n_feat, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n_rows, n_feat)) * 2 + 1).astype(dtype)
    g = rng.standard_normal((n_rows, n_feat)).astype(dtype)
    w = rng.standard_normal(n_feat).astype(dtype)
    xhat, dx = _reference(g * w.astype(np.float64), x, 1e-5)
    tol = 5e-4 if dtype == "float32" else 1e-9
    out, sums = np.empty_like(x), np.empty((2, n_feat), dtype)
    assert rows.normalize_grad_scaled(g, x, w, 1e-5, out) and rows.norm_param_grads(g, x, n_feat, 1e-5, sums)
    np.testing.assert_allclose(out, dx, rtol=tol, atol=tol)
    g64 = g.astype(np.float64)
    np.testing.assert_allclose(sums, [(g64 * xhat).sum(0), g64.sum(0)], rtol=tol, atol=tol * n_rows)


def _ln_grads(x, w, b, g):
    _, pull = ember.func.vjp(lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b), x, w, b)
    return pull(g)


@pytest.mark.parametrize("shape", [(4, 3, 5), (16, 32, 64)])
def test_compiled_layer_norm_backward_folds_into_two_row_kernels(shape):
    rng = np.random.default_rng(0)
    x, g = t64(rng.standard_normal(shape)), t64(rng.standard_normal(shape))
    w, b = t64(rng.standard_normal(shape[-1])), t64(rng.standard_normal(shape[-1]))
    f = ember.jit(_ln_grads)
    names = [n.prim.name for n in f.lower(x, w, b, g).graph.nodes]
    assert "norm_param_grads" in names and "normalize_grad_scaled" in names
    assert "normalize" not in names and "mul" not in names  # no normalised activations, no g * w pass
    got, want = f(x, w, b, g), _ln_grads(x, w, b, g)
    for a, e in zip(got, want):
        np.testing.assert_allclose(np_of(a), np_of(e), rtol=1e-10, atol=1e-10)
    again = f(x, w, b, g)
    assert all(np.array_equal(np_of(a), np_of(c)) for a, c in zip(got, again))


def test_layer_norm_backward_primitives_under_grad_jvp_and_vmap():
    from ember._core.dispatch import bind
    from ember.nn.functional._norm import norm_param_grads_p, normalize_grad_scaled_p

    rng = np.random.default_rng(1)
    g, x = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))
    w = rng.standard_normal(5)
    scaled = lambda g, x, w: bind(normalize_grad_scaled_p, g, x, w, n=1, eps=1e-5)
    sums = lambda g, x: bind(norm_param_grads_p, g, x, n=1, eps=1e-5)
    check_grad(scaled, [g, x, w])
    check_jvp(scaled, [g, x, w])
    check_grad(sums, [g, x])
    check_jvp(sums, [g, x])
    check_vmap(scaled, [g, x, w], [0, 0, None])
    check_vmap(scaled, [g, x, np.stack([w] * 3)], [0, 0, 0])
    check_vmap(sums, [g, x], [1, 1])


def test_layer_norm_weight_gradients_fold_when_a_linear_layer_regroups_the_rows():
    rng = np.random.default_rng(2)
    x = t64(rng.standard_normal((4, 8, 16)))
    w, b = t64(rng.standard_normal(16)), t64(rng.standard_normal(16))
    lin = t64(rng.standard_normal((5, 16)))

    def loss(x, w, b, lin):
        return (F.linear(F.layer_norm(x, (16,), w, b), lin) ** 2).sum()

    grads = ember.func.grad(loss, argnums=(0, 1, 2, 3))
    f = ember.jit(grads)
    names = [n.prim.name for n in f.lower(x, w, b, lin).graph.nodes]
    assert "norm_param_grads" in names and "normalize_grad_scaled" in names
    for got, want in zip(f(x, w, b, lin), grads(x, w, b, lin)):
        np.testing.assert_allclose(np_of(got), np_of(want), rtol=1e-10, atol=1e-10)
