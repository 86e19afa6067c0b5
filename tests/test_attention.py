"""Attention and transformer layers against PyTorch with copied weights (float64, eval mode)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.errors import DTypeError, ShapeError

from helpers import assert_close, check_grad, check_jvp, check_vmap, torch

TF = torch.nn.functional


def _leaf(a):
    return ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _both(a):
    return ember.tensor(a), torch.tensor(a)


def _copy_weights(em, tm):
    state = {k: torch.tensor(v.numpy()) for k, v in em.state_dict().items()}
    assert sorted(state) == sorted(tm.state_dict())
    tm.load_state_dict(state)


def _randomize(module, rng):
    """Random values for every parameter (biases and norm weights are constants after init)."""
    with ember.no_grad():
        for p in module.parameters():
            p.copy_(ember.tensor(rng.standard_normal(p.shape) * 0.5))


def _compare(e_out, t_out, e_leaves, t_leaves, rng, em=None, tm=None, rtol=1e-10):
    """Values equal; a random contraction of the output gives equal input and parameter gradients."""
    assert tuple(e_out.shape) == tuple(t_out.shape)
    assert_close(e_out, t_out.detach().numpy(), rtol=rtol, atol=1e-11)
    w = rng.standard_normal(tuple(t_out.shape))
    (e_out * ember.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for e, t in zip(e_leaves, t_leaves):
        assert_close(e.grad, t.grad.numpy(), rtol=1e-9, atol=1e-11)
    if em is not None:
        t_params = dict(tm.named_parameters())
        for name, p in em.named_parameters():
            assert_close(p.grad, t_params[name].grad.numpy(), rtol=1e-9, atol=1e-11, msg=name)


# -- scaled_dot_product_attention -------------------------------------------------------------------------
def _mask(kind, rng, shape=(4, 6)):
    if kind == "bool":
        m = rng.random(shape) > 0.4
        m[..., 0] = True
        return m
    if kind == "float":
        return rng.standard_normal(shape)
    if kind == "float-inf":
        return np.where(rng.random(shape) > 0.4, 0.0, -np.inf)
    return None


@pytest.mark.parametrize("kwargs", [{}, {"mask": "bool"}, {"mask": "float"}, {"mask": "float-inf"},
                                    {"is_causal": True}, {"scale": 0.3}, {"mask": "bool", "scale": 2.0}])
def test_sdpa_matches_torch_values_and_gradients(kwargs, rng):
    q, k, v = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((2, 3, 6, 7))
    kw = dict(kwargs)
    mask = _mask(kw.pop("mask", None), rng)
    leaves = [_leaf(a) for a in (q, k, v)]
    e_in, t_in = [p[0] for p in leaves], [p[1] for p in leaves]
    e_mask, t_mask = (None, None) if mask is None else _both(mask)
    e_out = F.scaled_dot_product_attention(*e_in, attn_mask=e_mask, **kw)
    t_out = TF.scaled_dot_product_attention(*t_in, attn_mask=t_mask, **kw)
    _compare(e_out, t_out, e_in, t_in, rng)


def test_sdpa_broadcasts_batch_dims_and_mask(rng):
    q, k, v = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((1, 5, 2, 4)), rng.standard_normal((1, 5, 2, 3))
    mask = rng.standard_normal((5, 1, 2))
    leaves = [_leaf(a) for a in (q, k, v)]
    e_out = F.scaled_dot_product_attention(*[p[0] for p in leaves], attn_mask=ember.tensor(mask))
    t_out = TF.scaled_dot_product_attention(*[p[1] for p in leaves], attn_mask=torch.tensor(mask))
    _compare(e_out, t_out, [p[0] for p in leaves], [p[1] for p in leaves], rng)


def test_sdpa_fully_masked_rows_give_zeros_as_torch(rng):
    q, k, v = (rng.standard_normal((1, 3, 4)) for _ in range(3))
    mask = np.ones((3, 3), dtype=bool)
    mask[1] = False
    leaves = [_leaf(a) for a in (q, k, v)]
    e_out = F.scaled_dot_product_attention(*[p[0] for p in leaves], attn_mask=ember.tensor(mask))
    t_out = TF.scaled_dot_product_attention(*[p[1] for p in leaves], attn_mask=torch.tensor(mask))
    assert np.all(e_out.detach().numpy()[0, 1] == 0)
    _compare(e_out, t_out, [p[0] for p in leaves], [p[1] for p in leaves], rng)
    assert np.isfinite(leaves[0][0].grad.numpy()).all()


def test_sdpa_grouped_query_attention_matches_torch(rng):
    q, k, v = rng.standard_normal((2, 4, 3, 5)), rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((2, 2, 6, 5))
    leaves = [_leaf(a) for a in (q, k, v)]
    e_out = F.scaled_dot_product_attention(*[p[0] for p in leaves], enable_gqa=True, is_causal=True)
    t_out = TF.scaled_dot_product_attention(*[p[1] for p in leaves], enable_gqa=True, is_causal=True)
    _compare(e_out, t_out, [p[0] for p in leaves], [p[1] for p in leaves], rng)


def test_sdpa_vmap_matches_a_loop(rng):
    q, k, v = rng.standard_normal((3, 2, 4, 5)), rng.standard_normal((3, 2, 6, 5)), rng.standard_normal((2, 6, 3))
    mask = rng.standard_normal((4, 6))
    check_vmap(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), [q, k, v], [0, 0, None])
    check_vmap(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), [q, k, v], [0, 0, None])
    check_vmap(lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m),
               [q, k, v, np.stack([mask] * 3)], [0, 0, None, 0])
    check_vmap(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, scale=0.5), [q, k[0], v], [0, None, None])


def test_sdpa_second_order_gradients_and_jvp(rng):
    q, k, v = rng.standard_normal((2, 3)), rng.standard_normal((3, 3)), rng.standard_normal((3, 2))
    mask = rng.standard_normal((2, 3))
    fn = lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=ember.tensor(mask))
    check_grad(fn, [q, k, v])
    check_jvp(fn, [q, k, v])


def test_sdpa_dropout_zeroes_weights_and_is_reproducible(rng):
    q, k, v = (ember.tensor(rng.standard_normal((2, 8, 4))) for _ in range(3))
    base = F.scaled_dot_product_attention(q, k, v)
    ember.manual_seed(3)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    ember.manual_seed(3)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert_close(a, b.numpy(), rtol=0, atol=0)
    assert not np.allclose(a.numpy(), base.numpy())


def test_sdpa_bad_inputs_raise_errors_naming_the_op():
    q, k, v = ember.zeros(2, 4, 5), ember.zeros(2, 6, 5), ember.zeros(2, 6, 3)
    with pytest.raises(ShapeError, match="scaled_dot_product_attention: query and key must have the same feature"):
        F.scaled_dot_product_attention(q, ember.zeros(2, 6, 4), v)
    with pytest.raises(ShapeError, match="key and value must have the same length, got 6 and 5"):
        F.scaled_dot_product_attention(q, k, ember.zeros(2, 5, 3))
    with pytest.raises(ShapeError, match=r"shapes \(2,\) and \(3,\)"):
        F.scaled_dot_product_attention(q, ember.zeros(3, 6, 5), ember.zeros(3, 6, 3))
    with pytest.raises(ShapeError, match=r"attn_mask of shape \(2, 2, 4, 6\) does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=ember.zeros(2, 2, 4, 6))
    with pytest.raises(ShapeError, match=r"cannot be broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=ember.zeros(4, 5))
    with pytest.raises(DTypeError, match="only bool and floating types of attn_mask are supported"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=ember.zeros(4, 6, dtype=ember.int64))
    with pytest.raises(ShapeError, match="cannot be combined with is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=ember.zeros(4, 6), is_causal=True)
    with pytest.raises(DTypeError, match="same dtype"):
        F.scaled_dot_product_attention(q, k.double(), v)
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        F.scaled_dot_product_attention(ember.zeros(5), k, v)


# -- MultiheadAttention ------------------------------------------------------------------------------------
L, S, N, E, H = 3, 4, 2, 6, 2

MHA_OPTIONS = [{}, {"batch_first": True}, {"kdim": 5, "vdim": 3}, {"add_bias_kv": True}, {"add_zero_attn": True},
               {"bias": False}]
MHA_CALLS = [{}, {"need_weights": False}, {"average_attn_weights": False}, {"kpm": "bool"}, {"kpm": "float"},
             {"am": "bool"}, {"am": "float3"}, {"am": "bool", "kpm": "bool", "need_weights": False},
             {"am": "causal", "is_causal": True}, {"am": "causal", "is_causal": True, "need_weights": False}]


def _mha_pair(rng, **kwargs):
    em = nn.MultiheadAttention(E, H, **kwargs).double()
    tm = torch.nn.MultiheadAttention(E, H, **kwargs).double()
    _randomize(em, rng)
    _copy_weights(em, tm)
    return em, tm


def _mha_masks(call, rng):
    e_kw, t_kw = {}, {}
    if call.get("kpm"):
        m = rng.random((N, S)) > 0.6
        m[:, 0] = False
        if call["kpm"] == "float":
            m = np.where(m, -np.inf, rng.standard_normal((N, S)))
        e_kw["key_padding_mask"], t_kw["key_padding_mask"] = _both(m)
    kind = call.get("am")
    if kind:
        if kind == "bool":
            m = rng.random((L, S)) > 0.6
            m[:, 1] = False
        elif kind == "causal":
            m = np.triu(np.ones((L, S), dtype=bool), 1)
        else:
            m = rng.standard_normal((N * H, L, S))
        e_kw["attn_mask"], t_kw["attn_mask"] = _both(m)
    for key in ("need_weights", "average_attn_weights", "is_causal"):
        if key in call:
            e_kw[key] = t_kw[key] = call[key]
    return e_kw, t_kw


@pytest.mark.parametrize("options", MHA_OPTIONS, ids=lambda o: "-".join(o) or "default")
def test_multihead_attention_matches_torch(options, rng):
    bf = options.get("batch_first", False)
    shape = lambda n, d: (N, n, d) if bf else (n, N, d)
    for call in MHA_CALLS:
        em, tm = _mha_pair(rng, **options)
        arrays = [rng.standard_normal(shape(L, E)), rng.standard_normal(shape(S, options.get("kdim", E))),
                  rng.standard_normal(shape(S, options.get("vdim", E)))]
        leaves = [_leaf(a) for a in arrays]
        e_kw, t_kw = _mha_masks(call, rng)
        e_out, e_w = em(*[p[0] for p in leaves], **e_kw)
        t_out, t_w = tm(*[p[1] for p in leaves], **t_kw)
        assert (e_w is None) == (t_w is None)
        if t_w is not None:
            assert_close(e_w, t_w.detach().numpy(), rtol=1e-10, atol=1e-12)
        _compare(e_out, t_out, [p[0] for p in leaves], [p[1] for p in leaves], rng, em, tm)


def test_multihead_attention_unbatched_self_attention_matches_torch(rng):
    em, tm = _mha_pair(rng)
    ex, tx = _leaf(rng.standard_normal((L, E)))
    kpm = np.array([False, True, False])
    e_out, e_w = em(ex, ex, ex, key_padding_mask=ember.tensor(kpm), average_attn_weights=False)
    t_out, t_w = tm(tx, tx, tx, key_padding_mask=torch.tensor(kpm), average_attn_weights=False)
    assert tuple(e_w.shape) == (H, L, L)
    assert_close(e_w, t_w.detach().numpy(), rtol=1e-10)
    _compare(e_out, t_out, [ex], [tx], rng, em, tm)


def test_multihead_attention_parameters_init_and_repr_follow_torch():
    for options in MHA_OPTIONS:
        em, tm = nn.MultiheadAttention(E, H, **options), torch.nn.MultiheadAttention(E, H, **options)
        assert [(n, tuple(p.shape)) for n, p in em.named_parameters()] == \
            [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
        assert repr(em) == repr(tm)
    em = nn.MultiheadAttention(E, H)
    assert float(em.in_proj_bias.abs().sum()) == 0 and float(em.out_proj.bias.abs().sum()) == 0
    assert np.abs(em.in_proj_weight.detach().numpy()).max() <= np.sqrt(6 / (E + 3 * E))


def test_multihead_attention_dropout_only_in_training(rng):
    em = nn.MultiheadAttention(E, H, dropout=0.5).double()
    x = ember.tensor(rng.standard_normal((L, N, E)))
    em.eval()
    a, _ = em(x, x, x)
    assert_close(em(x, x, x)[0], a.detach().numpy(), rtol=0, atol=0)
    em.train()
    ember.manual_seed(0)
    b, w = em(x, x, x)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())


def test_multihead_attention_errors():
    m = nn.MultiheadAttention(E, H)
    x = ember.zeros(L, N, E)
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(5, 2)
    with pytest.raises(ShapeError, match="was expecting embedding dimension of 6, but got 4"):
        m(ember.zeros(L, N, 4), ember.zeros(S, N, 4), ember.zeros(S, N, 4))
    with pytest.raises(ShapeError, match=r"the shape of the 2D attn_mask is \(3, 3\), but should be \(3, 4\)"):
        m(x, ember.zeros(S, N, E), ember.zeros(S, N, E), attn_mask=ember.zeros(L, L))
    with pytest.raises(ShapeError, match=r"expecting key_padding_mask shape of \(2, 4\), but got \(2, 3\)"):
        m(x, ember.zeros(S, N, E), ember.zeros(S, N, E), key_padding_mask=ember.zeros(N, 3, dtype=ember.bool))
    with pytest.raises(ShapeError, match="need attn_mask if specifying the is_causal hint"):
        m(x, x, x, is_causal=True)
    with pytest.raises(ShapeError, match="key and value should be 3-D too"):
        m(x, ember.zeros(S, E), ember.zeros(S, E))
    with pytest.raises(DTypeError, match="only bool and floating types of key_padding_mask"):
        m(x, x, x, key_padding_mask=ember.zeros(N, L, dtype=ember.int64))


# -- transformer layers -------------------------------------------------------------------------------------
D, NH, FF = 6, 2, 10


def _layer_pair(name, rng, **kwargs):
    em = getattr(nn, name)(D, NH, dim_feedforward=FF, **kwargs).double().eval()
    tm = getattr(torch.nn, name)(D, NH, dim_feedforward=FF, **kwargs).double().eval()
    _randomize(em, rng)
    _copy_weights(em, tm)
    return em, tm


def _seq(rng, n, batch_first):
    return rng.standard_normal((N, n, D) if batch_first else (n, N, D))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first,activation", [(False, "relu"), (True, "gelu")])
def test_encoder_layer_matches_torch(norm_first, batch_first, activation, rng):
    em, tm = _layer_pair("TransformerEncoderLayer", rng, norm_first=norm_first, batch_first=batch_first,
                         activation=activation)
    kpm = np.array([[False, False, True, True], [False, False, False, False]])
    causal = nn.Transformer.generate_square_subsequent_mask(S).double()
    for masks in [{}, {"src_key_padding_mask": kpm}, {"src_mask": causal.numpy(), "is_causal": True},
                  {"src_mask": np.triu(np.ones((S, S), dtype=bool), 1), "src_key_padding_mask": kpm}]:
        em.zero_grad()
        tm.zero_grad()
        ex, tx = _leaf(_seq(rng, S, batch_first))
        e_kw = {k: ember.tensor(v) if isinstance(v, np.ndarray) else v for k, v in masks.items()}
        t_kw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in masks.items()}
        _compare(em(ex, **e_kw), tm(tx, **t_kw), [ex], [tx], rng, em, tm)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first,activation", [(False, "gelu"), (True, "relu")])
def test_decoder_layer_matches_torch(norm_first, batch_first, activation, rng):
    em, tm = _layer_pair("TransformerDecoderLayer", rng, norm_first=norm_first, batch_first=batch_first,
                         activation=activation)
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(L).double().numpy()
    mem_kpm = np.array([[False, True, False, True], [False, False, False, False]])
    for masks in [{}, {"tgt_mask": tgt_mask, "tgt_is_causal": True, "memory_key_padding_mask": mem_kpm},
                  {"memory_mask": np.random.default_rng(1).standard_normal((L, S)),
                   "tgt_key_padding_mask": np.array([[False, False, True], [False, False, False]])}]:
        em.zero_grad()
        tm.zero_grad()
        (et, tt), (es, ts) = _leaf(_seq(rng, L, batch_first)), _leaf(_seq(rng, S, batch_first))
        e_kw = {k: ember.tensor(v) if isinstance(v, np.ndarray) else v for k, v in masks.items()}
        t_kw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in masks.items()}
        _compare(em(et, es, **e_kw), tm(tt, ts, **t_kw), [et, es], [tt, ts], rng, em, tm)


def test_transformer_stacks_and_full_model_match_torch(rng):
    em = nn.Transformer(D, NH, 2, 2, dim_feedforward=FF, batch_first=True).double().eval()
    tm = torch.nn.Transformer(D, NH, 2, 2, dim_feedforward=FF, batch_first=True).double().eval()
    assert [(n, tuple(p.shape)) for n, p in em.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
    _randomize(em, rng)
    _copy_weights(em, tm)
    (es, ts), (et, tt) = _leaf(rng.standard_normal((N, S, D))), _leaf(rng.standard_normal((N, L, D)))
    mask = nn.Transformer.generate_square_subsequent_mask(L, dtype=ember.float64)
    kpm = np.array([[False, False, False, True], [False, False, False, False]])
    e_out = em(es, et, tgt_mask=mask, src_key_padding_mask=ember.tensor(kpm),
               memory_key_padding_mask=ember.tensor(kpm), tgt_is_causal=True)
    t_out = tm(ts, tt, tgt_mask=torch.tensor(mask.numpy()), src_key_padding_mask=torch.tensor(kpm),
               memory_key_padding_mask=torch.tensor(kpm), tgt_is_causal=True)
    _compare(e_out, t_out, [es, et], [ts, tt], rng, em, tm)


def test_encoder_stack_copies_are_independent_and_norm_applies(rng):
    layer = nn.TransformerEncoderLayer(D, NH, dim_feedforward=FF)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(D))
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight
    assert_close(enc.layers[0].linear1.weight.detach(), layer.linear1.weight.detach().numpy(), rtol=0, atol=0)
    assert list(enc.state_dict())[:2] == ["layers.0.self_attn.in_proj_weight", "layers.0.self_attn.in_proj_bias"]
    tenc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, NH, dim_feedforward=FF), 2,
                                       norm=torch.nn.LayerNorm(D), enable_nested_tensor=False)
    enc.double().eval()
    tenc.double().eval()
    _copy_weights(enc, tenc)
    ex, tx = _leaf(rng.standard_normal((S, N, D)))
    _compare(enc(ex), tenc(tx), [ex], [tx], rng, enc, tenc)


def test_transformer_training_mode_applies_dropout(rng):
    em = nn.TransformerEncoderLayer(D, NH, dim_feedforward=FF, dropout=0.5).double()
    x = ember.tensor(rng.standard_normal((S, N, D)))
    em.eval()
    a = em(x)
    em.train()
    assert not np.allclose(em(x).detach().numpy(), a.detach().numpy())


def test_square_subsequent_mask_and_activation_options():
    got = nn.Transformer.generate_square_subsequent_mask(4)
    want = torch.nn.Transformer.generate_square_subsequent_mask(4)
    assert got.dtype is ember.float32
    assert_close(got, want.numpy(), rtol=0, atol=0)
    layer = nn.TransformerEncoderLayer(D, NH, dim_feedforward=FF, activation=lambda t: t * 2)
    assert layer.activation_relu_or_gelu == 0
    assert nn.TransformerEncoderLayer(D, NH, activation="gelu").activation_relu_or_gelu == 2
    assert copy.deepcopy(layer).activation(3) == 6
    with pytest.raises(ValueError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(D, NH, activation="tanh")


def test_transformer_errors():
    model = nn.Transformer(D, NH, 1, 1, dim_feedforward=FF)
    with pytest.raises(ShapeError, match="the batch number of src and tgt must be equal"):
        model(ember.zeros(S, 2, D), ember.zeros(L, 3, D))
    with pytest.raises(ShapeError, match=r"the feature number of src and tgt must be equal to d_model \(6\)"):
        model(ember.zeros(S, 2, 4), ember.zeros(L, 2, 4))
    with pytest.raises(ShapeError, match="need attn_mask if specifying the is_causal hint"):
        model(ember.zeros(S, 2, D), ember.zeros(L, 2, D), tgt_is_causal=True)


def test_float32_layers_match_torch(rng):
    em = nn.TransformerDecoderLayer(D, NH, dim_feedforward=FF, batch_first=True).eval()
    tm = torch.nn.TransformerDecoderLayer(D, NH, dim_feedforward=FF, batch_first=True).eval()
    _copy_weights(em, tm)
    tgt, mem = (rng.standard_normal((N, n, D)).astype(np.float32) for n in (L, S))
    mask = nn.Transformer.generate_square_subsequent_mask(L)
    got = em(ember.tensor(tgt), ember.tensor(mem), tgt_mask=mask)
    assert got.dtype is ember.float32
    with torch.no_grad():
        want = tm(torch.tensor(tgt), torch.tensor(mem), tgt_mask=torch.tensor(mask.numpy()))
    assert_close(got, want.numpy(), rtol=1e-5, atol=1e-5)
    q = rng.standard_normal((2, 3, 4)).astype(np.float32)
    got = F.scaled_dot_product_attention(ember.tensor(q), ember.tensor(q), ember.tensor(q), is_causal=True)
    want = TF.scaled_dot_product_attention(torch.tensor(q), torch.tensor(q), torch.tensor(q), is_causal=True)
    assert got.dtype is ember.float32
    assert_close(got, want.numpy(), rtol=1e-5, atol=1e-6)
