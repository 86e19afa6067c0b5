"""Recurrent layers and packed sequences against PyTorch with copied weights (float64)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember.errors import ShapeError
from ember.nn.utils import rnn as ernn

from helpers import assert_close, check_grad, check_jvp, np_of, torch

trnn = torch.nn.utils.rnn

IN, HID, T, N = 3, 4, 5, 3
LENGTHS = [3, 5, 2]  # unsorted, with a sequence that fills the whole padded length
SORTED = [5, 3, 2]

# (ember/torch class name, constructor kwargs)
MODES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {}), ("LSTM", {"proj_size": 2})]


def _pair(name: str, *args, **kwargs):
    """The same layer in ember and torch (float64), torch loaded with ember's state dict."""
    em = getattr(nn, name)(*args, **kwargs).double()
    tm = getattr(torch.nn, name)(*args, **kwargs).double()
    state = {k: torch.tensor(v.numpy()) for k, v in em.state_dict().items()}
    assert list(state) == list(tm.state_dict())
    tm.load_state_dict(state)
    return em, tm


def _leaf(a):
    return ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _flat(state):
    """Final states as one tuple (LSTM returns (h, c))."""
    return tuple(state) if isinstance(state, tuple) else (state,)


def _compare_run(em, tm, e_inputs, t_inputs, e_out, t_out, rng, rtol=1e-10):
    """Outputs equal; a random contraction of every output gives equal input and parameter gradients."""
    e_loss, t_loss = 0, 0
    for e, t in zip(e_out, t_out):
        assert tuple(e.shape) == tuple(t.shape)
        assert_close(e, t.detach().numpy(), rtol=rtol, atol=1e-12)
        w = rng.standard_normal(tuple(t.shape))
        e_loss = e_loss + (e * ember.tensor(w)).sum()
        t_loss = t_loss + (t * torch.tensor(w)).sum()
    e_loss.backward()
    t_loss.backward()
    for e, t in zip(e_inputs, t_inputs):
        assert_close(e.grad, t.grad.numpy(), rtol=1e-9, atol=1e-12)
    torch_params = dict(tm.named_parameters())
    for name, p in em.named_parameters():
        assert_close(p.grad, torch_params[name].grad.numpy(), rtol=1e-9, atol=1e-12, msg=name)


def _states(name, kw, layers, bidirectional, rng, with_h0):
    if not with_h0:
        return [], None, None
    d = layers * (2 if bidirectional else 1)
    out_size = kw.get("proj_size") or HID
    arrays = [rng.standard_normal((d, N, out_size))]
    if name == "LSTM":
        arrays.append(rng.standard_normal((d, N, HID)))
    pairs = [_leaf(a) for a in arrays]
    e = [p[0] for p in pairs]
    t = [p[1] for p in pairs]
    if name == "LSTM":
        return pairs, tuple(e), tuple(t)
    return pairs, e[0], t[0]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m[0] + "".join(f"-{v}" for v in m[1].values()))
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, False), (2, True)])
def test_recurrent_layers_match_torch_padded(mode, layers, bidirectional, rng):
    name, kw = mode
    for batch_first, with_h0 in itertools.product((False, True), (False, True)):
        em, tm = _pair(name, IN, HID, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
                       **kw)
        x = rng.standard_normal((N, T, IN) if batch_first else (T, N, IN))
        ex, tx = _leaf(x)
        states, eh, th = _states(name, kw, layers, bidirectional, rng, with_h0)
        e_out, e_state = em(ex, eh)
        t_out, t_state = tm(tx, th)
        _compare_run(em, tm, [ex] + [s[0] for s in states], [tx] + [s[1] for s in states],
                     (e_out,) + _flat(e_state), (t_out,) + _flat(t_state), rng)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m[0] + "".join(f"-{v}" for v in m[1].values()))
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, True)])
def test_recurrent_layers_match_torch_packed(mode, layers, bidirectional, rng):
    """Packed input: outputs per step and each sequence's final state at its own length, as torch."""
    name, kw = mode
    for enforce_sorted, batch_first, with_h0 in [(False, False, True), (True, True, False), (False, True, False),
                                                 (True, False, True)]:
        lengths = SORTED if enforce_sorted else LENGTHS
        em, tm = _pair(name, IN, HID, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
                       **kw)
        x = rng.standard_normal((N, T, IN) if batch_first else (T, N, IN))
        ex, tx = _leaf(x)
        states, eh, th = _states(name, kw, layers, bidirectional, rng, with_h0)
        e_packed = ernn.pack_padded_sequence(ex, lengths, batch_first, enforce_sorted)
        t_packed = trnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first, enforce_sorted)
        e_out, e_state = em(e_packed, eh)
        t_out, t_state = tm(t_packed, th)
        assert isinstance(e_out, ernn.PackedSequence)
        assert e_out.batch_sizes.tolist() == t_out.batch_sizes.tolist()
        e_pad = ernn.pad_packed_sequence(e_out, batch_first)[0]
        t_pad = trnn.pad_packed_sequence(t_out, batch_first)[0]
        _compare_run(em, tm, [ex] + [s[0] for s in states], [tx] + [s[1] for s in states],
                     (e_out.data, e_pad) + _flat(e_state), (t_out.data, t_pad) + _flat(t_state), rng)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_unbatched_input_matches_torch(name, rng):
    em, tm = _pair(name, IN, HID, num_layers=2, bidirectional=True)
    x = rng.standard_normal((T, IN))
    h = rng.standard_normal((4, HID))
    ex, tx = _leaf(x)
    eh, th = (ember.tensor(h), torch.tensor(h)) if name != "LSTM" else \
        ((ember.tensor(h), ember.tensor(h * 0.5)), (torch.tensor(h), torch.tensor(h * 0.5)))
    e_out, e_state = em(ex, eh)
    t_out, t_state = tm(tx, th)
    _compare_run(em, tm, [ex], [tx], (e_out,) + _flat(e_state), (t_out,) + _flat(t_state), rng)


@pytest.mark.parametrize("name,kw", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("GRUCell", {}),
                                     ("LSTMCell", {}), ("GRUCell", {"bias": False}), ("LSTMCell", {"bias": False})])
def test_cells_match_torch(name, kw, rng):
    em, tm = _pair(name, IN, HID, **kw)
    for batched, with_h in [(True, True), (True, False), (False, True), (False, False)]:
        em.zero_grad()
        tm.zero_grad()
        shape = (N,) if batched else ()
        ex, tx = _leaf(rng.standard_normal(shape + (IN,)))
        pairs = [_leaf(rng.standard_normal(shape + (HID,))) for _ in range(2 if name == "LSTMCell" else 1)]
        eh = tuple(p[0] for p in pairs) if name == "LSTMCell" else pairs[0][0]
        th = tuple(p[1] for p in pairs) if name == "LSTMCell" else pairs[0][1]
        if not with_h:
            pairs, eh, th = [], None, None
        e_out, t_out = em(ex, eh), tm(tx, th)
        _compare_run(em, tm, [ex] + [p[0] for p in pairs], [tx] + [p[1] for p in pairs], _flat(e_out),
                     _flat(t_out), rng)


def test_no_bias_and_float32_match_torch(rng):
    em, tm = _pair("LSTM", IN, HID, num_layers=2, bias=False)
    assert [n for n, _ in em.named_parameters()] == ["weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"]
    ex, tx = _leaf(rng.standard_normal((T, N, IN)))
    e_out, (eh, ec) = em(ex)
    t_out, (th, tc) = tm(tx)
    _compare_run(em, tm, [ex], [tx], (e_out, eh, ec), (t_out, th, tc), rng)
    em32, tm32 = em.float(), tm.float()
    x = rng.standard_normal((T, N, IN)).astype(np.float32)
    assert em32(ember.tensor(x))[0].dtype is ember.float32
    assert_close(em32(ember.tensor(x))[0], tm32(torch.tensor(x))[0].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_parameter_names_shapes_and_init_follow_torch():
    for name, kw in MODES:
        em = getattr(nn, name)(IN, HID, num_layers=2, bidirectional=True, **kw)
        tm = getattr(torch.nn, name)(IN, HID, num_layers=2, bidirectional=True, **kw)
        assert [(n, tuple(p.shape)) for n, p in em.named_parameters()] == \
            [(n, tuple(p.shape)) for n, p in tm.named_parameters()]
        assert repr(em) == repr(tm)
        assert len(em.all_weights) == 4 and em.all_weights[1][0] is em.weight_ih_l0_reverse
    big = nn.GRU(8, 100)
    w = np.concatenate([np_of(p).ravel() for p in big.parameters()])
    assert np.abs(w).max() <= 0.1 and np.abs(w).max() > 0.099
    for name in ("RNNCell", "GRUCell", "LSTMCell"):
        assert repr(getattr(nn, name)(IN, HID, bias=False)) == repr(getattr(torch.nn, name)(IN, HID, bias=False))
    assert repr(nn.RNNCell(2, 3, nonlinearity="relu")) == repr(torch.nn.RNNCell(2, 3, nonlinearity="relu"))


def test_dropout_between_layers_only_in_training(rng):
    ember.manual_seed(0)
    m = nn.GRU(IN, HID, num_layers=2, dropout=0.5).double()
    x = ember.tensor(rng.standard_normal((T, N, IN)))
    m.eval()
    out_eval, h_eval = m(x)
    assert_close(m(x)[0], np_of(out_eval), rtol=0, atol=0)
    m.train()
    out_train, h_train = m(x)
    assert not np.allclose(np_of(out_train), np_of(out_eval))
    assert_close(h_train[0], np_of(h_eval[0]), rtol=1e-12)  # layer 0 sees no dropout
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(IN, HID, dropout=0.2)


def test_gradients_to_second_order_and_jvp_match_finite_differences(rng):
    ember.manual_seed(1)
    lstm = nn.LSTM(2, 2, bidirectional=True).double()
    gru = nn.GRU(2, 2).double()
    x = rng.standard_normal((3, 1, 2))

    def f(inp):
        out, (h, c) = lstm(inp)
        return out.sum(-1) + gru(inp)[0].sum(-1) + c.sum()

    check_grad(f, [x])
    check_jvp(f, [x])


def test_long_sequence_split_keeps_every_step(rng):
    """Many steps (the time split works in blocks): still equal to torch, packed and padded."""
    em, tm = _pair("GRU", 2, 3)
    x = rng.standard_normal((23, 2, 2))
    ex, tx = _leaf(x)
    lengths = [23, 17]
    e_out, e_h = em(ernn.pack_padded_sequence(ex, lengths))
    t_out, t_h = tm(trnn.pack_padded_sequence(tx, torch.tensor(lengths)))
    _compare_run(em, tm, [ex], [tx], (e_out.data, e_h), (t_out.data, t_h), rng)


# -- errors -----------------------------------------------------------------------------------------------
def test_bad_inputs_raise_shape_errors_naming_the_layer():
    lstm = nn.LSTM(IN, HID, num_layers=2)
    with pytest.raises(ShapeError, match=r"LSTM: input.size\(-1\) must be equal to input_size. Expected 3, got 5"):
        lstm(ember.zeros(T, N, 5))
    with pytest.raises(ShapeError, match="LSTM: expected padded input with 2 or 3 dimensions"):
        lstm(ember.zeros(1, T, N, IN))
    with pytest.raises(ShapeError, match=r"expected hidden\[0\] size \(2, 3, 4\), got \(1, 3, 4\)"):
        lstm(ember.zeros(T, N, IN), (ember.zeros(1, N, HID), ember.zeros(2, N, HID)))
    with pytest.raises(ShapeError, match=r"expected hidden\[1\] size \(2, 3, 4\), got \(2, 2, 4\)"):
        lstm(ember.zeros(T, N, IN), (ember.zeros(2, N, HID), ember.zeros(2, 2, HID)))
    with pytest.raises(ShapeError, match="LSTM expects hx as a tuple"):
        lstm(ember.zeros(T, N, IN), ember.zeros(2, N, HID))
    with pytest.raises(ShapeError, match="for 2-D input, hx should be 2-D"):
        nn.GRU(IN, HID)(ember.zeros(T, IN), ember.zeros(1, 1, HID))
    with pytest.raises(ShapeError, match=r"GRUCell: expected input of shape \(N, 3\)"):
        nn.GRUCell(IN, HID)(ember.zeros(2, 4))
    with pytest.raises(ShapeError, match=r"RNNCell: expected hidden state of shape \(2, 4\)"):
        nn.RNNCell(IN, HID)(ember.zeros(2, IN), ember.zeros(3, HID))


def test_bad_constructor_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(IN, HID, proj_size=4)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(IN, HID, dropout=1.5)
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        nn.RNN(IN, HID, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size must be an integer greater than zero"):
        nn.RNN(IN, 0)
    with pytest.raises(ValueError, match="num_layers must be an integer greater than zero"):
        nn.GRU(IN, HID, num_layers=0)


# -- packing utilities ----------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths,enforce_sorted", [(SORTED, True), (LENGTHS, False), ([4, 4, 1], False)])
def test_pack_and_pad_match_torch(batch_first, lengths, enforce_sorted, rng):
    x = rng.standard_normal((N, T, 2) if batch_first else (T, N, 2))
    ex, tx = _leaf(x)
    ep = ernn.pack_padded_sequence(ex, lengths, batch_first, enforce_sorted)
    tp = trnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first, enforce_sorted)
    assert_close(ep.data, tp.data.detach().numpy(), rtol=0, atol=0)
    assert ep.batch_sizes.tolist() == tp.batch_sizes.tolist() and ep.batch_sizes.dtype is ember.int64
    for e, t in [(ep.sorted_indices, tp.sorted_indices), (ep.unsorted_indices, tp.unsorted_indices)]:
        assert (e is None and t is None) or e.tolist() == t.tolist()
    e_pad, e_len = ernn.pad_packed_sequence(ep, batch_first, padding_value=-2.0, total_length=T + 1)
    t_pad, t_len = trnn.pad_packed_sequence(tp, batch_first, padding_value=-2.0, total_length=T + 1)
    assert_close(e_pad, t_pad.detach().numpy(), rtol=0, atol=0)
    assert e_len.tolist() == t_len.tolist()
    w = rng.standard_normal(tuple(t_pad.shape))
    (e_pad * ember.tensor(w)).sum().backward()
    (t_pad * torch.tensor(w)).sum().backward()
    assert_close(ex.grad, tx.grad.numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("batch_first,side", [(False, "right"), (True, "right"), (True, "left")])
def test_pad_sequence_pack_sequence_and_their_inverses(batch_first, side, rng):
    seqs = [rng.standard_normal((n, 2)) for n in (2, 4, 1)]
    e = ernn.pad_sequence([ember.tensor(s) for s in seqs], batch_first, 7.0, side)
    t = trnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first, 7.0, side)
    assert_close(e, t.numpy(), rtol=0, atol=0)
    packed = ernn.pack_sequence([ember.tensor(s) for s in seqs], enforce_sorted=False)
    tpacked = trnn.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    assert_close(packed.data, tpacked.data.numpy(), rtol=0, atol=0)
    for got, want in zip(ernn.unpack_sequence(packed), seqs):
        assert_close(got, want, rtol=0, atol=0)
    padded = ernn.pad_sequence([ember.tensor(s) for s in seqs], batch_first)
    for got, want in zip(ernn.unpad_sequence(padded, [2, 4, 1], batch_first), seqs):
        assert_close(got, want, rtol=0, atol=0)


def test_packed_sequence_conversion_keeps_indices():
    p = ernn.pack_sequence([ember.tensor([1.0]), ember.tensor([2.0, 3.0])], enforce_sorted=False)
    q = p.double()
    assert q.data.dtype is ember.float64 and q.sorted_indices.tolist() == [1, 0]
    assert q.unsorted_indices.tolist() == [1, 0] and q.batch_sizes.tolist() == [2, 1]
    assert not q.is_cuda


def test_packing_errors_name_the_problem():
    x = ember.zeros(T, N, 2)
    with pytest.raises(ShapeError, match="must be sorted in decreasing order when enforce_sorted is True"):
        ernn.pack_padded_sequence(x, LENGTHS)
    with pytest.raises(ShapeError, match="has to be greater than 0"):
        ernn.pack_padded_sequence(x, [3, 0, 1], enforce_sorted=False)
    with pytest.raises(ShapeError, match="expected 3 lengths"):
        ernn.pack_padded_sequence(x, [3, 2])
    with pytest.raises(ShapeError, match="exceeds the 5 time steps"):
        ernn.pack_padded_sequence(x, [6, 2, 1])
    p = ernn.pack_padded_sequence(x, SORTED)
    with pytest.raises(ShapeError, match="total_length to be at least the length of the longest sequence"):
        ernn.pad_packed_sequence(p, total_length=3)
    with pytest.raises(ShapeError, match="pad_sequence: every sequence needs shape"):
        ernn.pad_sequence([ember.zeros(2, 3), ember.zeros(2, 4)])
