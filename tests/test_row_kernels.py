"""Generated row kernels for layer normalisation and its gradient (ember.compiler.codegen.rows)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
import ember.nn.functional as F
from ember.compiler.codegen import build, rows

from helpers import torch

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
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol * np.abs(want_dx).max())


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
