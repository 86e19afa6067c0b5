"""The fused ``attention`` primitive (scaled_dot_product_attention without dropout): its generated
kernel against NumPy and PyTorch on random shapes, strided operands, masks of every broadcast form,
and its rules under grad, jvp, vmap and jit."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
import ember.nn.functional as F
from ember.compiler.codegen import attention as kernel
from ember.nn.functional._attention_kernel import _attention_numpy, attention_p

from helpers import assert_close, check_grad, check_jvp, check_vmap, np_of, torch

TF = torch.nn.functional


def _sdpa_both(q, k, v, mask=None, causal=False, scale=None):
    e = F.scaled_dot_product_attention(ember.tensor(q), ember.tensor(k), ember.tensor(v),
                                       attn_mask=None if mask is None else ember.tensor(mask),
                                       is_causal=causal, scale=scale)
    t = TF.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v),
                                        attn_mask=None if mask is None else torch.tensor(mask),
                                        is_causal=causal, scale=scale)
    return np_of(e), np.nan_to_num(t.numpy())  # PyTorch gives NaN for a row with no key; ember zeros


@st.composite
def _case(draw):
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    L, S, E, Ev = (draw(st.integers(1, 19)) for _ in range(4))
    kind = draw(st.sampled_from([None, "bool", "float", "row", "col"]))
    mask_shape = {None: None, "bool": lead + (L, S), "float": (L, S), "row": lead[:1] + (1,) * max(len(lead) - 1, 0)
                  + (1, S), "col": (L, 1)}[kind]
    causal = draw(st.booleans()) and kind is None
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return lead, (L, S, E, Ev), kind, mask_shape, causal, dtype


@settings(max_examples=40, deadline=None)
@given(_case())
def test_the_kernel_matches_pytorch_and_numpy_on_random_shapes(case):
    lead, (L, S, E, Ev), kind, mask_shape, causal, dtype = case
    rng = np.random.default_rng(L * 1000 + S * 100 + E * 10 + Ev)
    q, k, v = (rng.standard_normal(lead + s).astype(dtype) for s in ((L, E), (S, E), (S, Ev)))
    mask = None
    if kind == "bool":
        mask = rng.random(mask_shape) > 0.3
    elif kind is not None:
        mask = rng.standard_normal(mask_shape).astype(dtype)
    got, want = _sdpa_both(q, k, v, mask, causal)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert_close(got, want, rtol=tol, atol=tol)
    if mask is None or mask.dtype != bool:
        extra = () if mask is None else (mask,)
        ref = _attention_numpy(np, q, k, v, *extra, scale=1 / np.sqrt(E), causal=causal)
        assert_close(got, ref, rtol=tol, atol=tol)
    # gradients (the kernel's VJP, which skips the blocks a causal mask zeroes) against PyTorch's
    w = rng.standard_normal(got.shape).astype(dtype)
    ours = [ember.tensor(a, requires_grad=True) for a in (q, k, v)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    (F.scaled_dot_product_attention(*ours, attn_mask=None if mask is None else ember.tensor(mask),
                                    is_causal=causal) * ember.tensor(w)).sum().backward()
    out = TF.scaled_dot_product_attention(*theirs, attn_mask=None if mask is None else torch.tensor(mask),
                                          is_causal=causal)
    (torch.nan_to_num(out) * torch.tensor(w)).sum().backward()
    for a, b in zip(ours, theirs):
        assert_close(a.grad, np.nan_to_num(b.grad.numpy()), rtol=10 * tol, atol=10 * tol)


def test_transposed_heads_are_read_in_place_with_the_same_result(rng):
    x = rng.standard_normal((2, 16, 3, 8)).astype(np.float32)  # (batch, length, heads, features)
    q = k = v = np.swapaxes(x, 1, 2)  # (batch, heads, length, features), not contiguous
    out = np.empty((2, 3, 16, 8), np.float32)
    assert kernel.attention(q, k, v, None, 0.5, False, out)
    dense = np.ascontiguousarray(q)
    assert_close(out, _attention_numpy(np, dense, dense, dense, scale=0.5, causal=False), rtol=1e-5, atol=1e-6)


def test_rows_with_no_key_give_zeros_and_causal_with_fewer_keys_than_queries(rng):
    q, k, v = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 2))
    mask = np.ones((5, 3), dtype=bool)
    mask[2] = False
    got, want = _sdpa_both(q, k, v, mask)
    assert np.all(got[:, 2] == 0)
    assert_close(got, want, rtol=1e-12, atol=1e-12)
    got, want = _sdpa_both(q, k, v, causal=True)
    assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_without_a_compiler_the_numpy_path_gives_the_same_values(rng, monkeypatch):
    q, k, v = (rng.standard_normal((2, 3, 7, 5)) for _ in range(3))
    mask = rng.standard_normal((2, 1, 1, 7))
    fast = np_of(F.scaled_dot_product_attention(*(ember.tensor(a) for a in (q, k, v)), ember.tensor(mask)))
    monkeypatch.setattr(kernel, "_library", lambda t: None)
    slow = np_of(F.scaled_dot_product_attention(*(ember.tensor(a) for a in (q, k, v)), ember.tensor(mask)))
    assert_close(fast, slow, rtol=1e-12, atol=1e-12)


def test_gradients_and_jvp_match_finite_differences_with_a_float_mask_and_causal(rng):
    q, k, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 2))
    mask = rng.standard_normal((1, 4, 5))
    masked = lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m)
    causal = lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True)
    check_grad(masked, [q, k, v, mask])
    check_jvp(masked, [q, k, v, mask])
    check_grad(causal, [q, k, v])
    check_jvp(causal, [q, k, v])


def test_mask_gradient_matches_pytorch(rng):
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    mask = rng.standard_normal((2, 1, 1, 4))
    em = ember.tensor(mask, requires_grad=True)
    tm = torch.tensor(mask, requires_grad=True)
    w = rng.standard_normal((2, 3, 4, 5))
    (F.scaled_dot_product_attention(*(ember.tensor(a) for a in (q, k, v)), attn_mask=em)
     * ember.tensor(w)).sum().backward()
    (TF.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)), attn_mask=tm)
     * torch.tensor(w)).sum().backward()
    assert_close(em.grad, tm.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_vmap_over_the_mask_and_with_unbatched_operands(rng):
    q, k, v = rng.standard_normal((3, 2, 4, 5)), rng.standard_normal((2, 6, 5)), rng.standard_normal((2, 6, 3))
    masks = rng.standard_normal((3, 4, 6))
    fn = lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m)
    check_vmap(fn, [q, k, v, masks], [0, None, None, 0])
    check_vmap(fn, [q, k, v, masks[0]], [0, None, None, None])
    check_vmap(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
               [np.moveaxis(q, 0, 2), k, v], [2, None, None])


def test_jit_keeps_one_attention_node_and_matches_eager(rng):
    q, k, v = (ember.tensor(rng.standard_normal((2, 3, 8, 4)).astype(np.float32)) for _ in range(3))
    mask = ember.tensor(rng.random((2, 1, 1, 8)) > 0.2)

    def f(q, k, v, m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

    graph = ember.jit(f).lower(q, k, v, mask).graph
    assert [n.prim for n in graph.nodes].count(attention_p) == 1
    assert_close(ember.jit(f)(q, k, v, mask), np_of(f(q, k, v, mask)), rtol=1e-6, atol=1e-6)


def test_dropout_and_mixed_dtypes_keep_the_composition(rng):
    q = ember.tensor(rng.standard_normal((2, 4, 3)).astype(np.float32))
    mask = ember.tensor(rng.standard_normal((4, 4)))  # float64 mask with float32 operands
    graph = ember.jit(lambda a, m: F.scaled_dot_product_attention(a, a, a, attn_mask=m)).lower(q, mask).graph
    assert attention_p not in [n.prim for n in graph.nodes]


@settings(max_examples=25, deadline=None)
@given(_case())
def test_the_backward_kernel_matches_pytorch_gradients(case):
    lead, (L, S, E, Ev), kind, mask_shape, causal, dtype = case
    rng = np.random.default_rng(L * 1000 + S * 100 + E * 10 + Ev + 7)
    q, k, v = (rng.standard_normal(lead + s).astype(dtype) for s in ((L, E), (S, E), (S, Ev)))
    w = rng.standard_normal(lead + (L, Ev)).astype(dtype)
    mask = None
    if kind == "bool":
        mask = rng.random(mask_shape) > 0.3
    elif kind is not None:
        mask = rng.standard_normal(mask_shape).astype(dtype)
    leaves = [ember.tensor(a, requires_grad=True) for a in (q, k, v)]
    tl = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*leaves, attn_mask=None if mask is None else ember.tensor(mask),
                                         is_causal=causal)
    (out * ember.tensor(w)).sum().backward()
    tout = TF.scaled_dot_product_attention(*tl, attn_mask=None if mask is None else torch.tensor(mask),
                                           is_causal=causal)
    (torch.nan_to_num(tout) * torch.tensor(w)).sum().backward()
    tol = 5e-5 if dtype == np.float32 else 1e-11
    for e, t in zip(leaves, tl):
        assert_close(e.grad, np.nan_to_num(t.grad.numpy()), rtol=tol, atol=tol)


def test_compiled_backward_uses_one_attention_grad_node(rng):
    q, k, v = (ember.tensor(rng.standard_normal((2, 3, 8, 4)).astype(np.float32)) for _ in range(3))

    def loss(q, k, v):
        return (F.scaled_dot_product_attention(q, k, v, is_causal=True) ** 2).sum()

    grads = ember.func.grad(loss, argnums=(0, 1, 2))
    graph = ember.jit(grads).lower(q, k, v).graph
    assert [n.prim.name for n in graph.nodes].count("attention_grad") == 1
    for got, want in zip(ember.jit(grads)(q, k, v), grads(q, k, v)):
        assert_close(got, np_of(want), rtol=1e-5, atol=1e-6)
    check_vmap(lambda a, b, c: ember.func.grad(lambda x: (F.scaled_dot_product_attention(x, b, c) ** 2).sum())(a),
               [rng.standard_normal((3, 2, 4, 5)), rng.standard_normal((2, 6, 5)), rng.standard_normal((2, 6, 3))],
               [0, None, None])


def test_empty_keys_or_queries_give_zeros_and_empty_gradients():
    q = ember.randn(2, 3, 4, requires_grad=True)
    k, v = ember.randn(2, 0, 4, requires_grad=True), ember.randn(2, 0, 5, requires_grad=True)
    out = F.scaled_dot_product_attention(q, k, v)
    want = TF.scaled_dot_product_attention(torch.randn(2, 3, 4), torch.randn(2, 0, 4), torch.randn(2, 0, 5))
    assert tuple(out.shape) == tuple(want.shape) and not np_of(out).any()
    out.sum().backward()
    assert not np_of(q.grad).any() and tuple(k.grad.shape) == (2, 0, 4)
    q0 = ember.randn(2, 0, 4)
    assert tuple(F.scaled_dot_product_attention(q0, ember.randn(2, 3, 4), ember.randn(2, 3, 5)).shape) == (2, 0, 5)
