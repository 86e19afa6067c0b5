"""Embedding, Bilinear, Unflatten, Upsample/interpolate, PixelShuffle and channel dropout against PyTorch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

from helpers import assert_close, check_grad, np_of, torch

TF = None if torch is None else torch.nn.functional


# -- embedding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{}, {"padding_idx": 2}, {"padding_idx": -1}, {"scale_grad_by_freq": True},
                                    {"max_norm": 1.0}, {"max_norm": 0.5, "norm_type": 1.0, "padding_idx": 0}])
def test_embedding_matches_torch(kwargs, rng):
    mod = nn.Embedding(6, 3, **kwargs).double()
    tmod = torch.nn.Embedding(6, 3, **kwargs).double()
    if "padding_idx" in kwargs:
        assert np.all(np_of(mod.weight)[kwargs["padding_idx"]] == 0)
    w = rng.standard_normal((6, 3))
    with ember.no_grad():
        mod.weight.copy_(ember.tensor(w))
    with torch.no_grad():
        tmod.weight.copy_(torch.tensor(w))
    idx = np.array([[0, 2, 2], [5, 1, 2]])
    ye, yt = mod(ember.tensor(idx)), tmod(torch.tensor(idx))
    assert_close(ye, yt.detach().numpy(), rtol=1e-12)
    g = np.cos(np.arange(yt.numel())).reshape(yt.shape)
    (ye * ember.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    assert_close(mod.weight.grad, tmod.weight.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert_close(mod.weight, tmod.weight.detach().numpy(), rtol=1e-7)  # max_norm renormalised in place


def test_embedding_from_pretrained_and_state_dict(rng):
    w = rng.standard_normal((4, 2))
    emb = nn.Embedding.from_pretrained(ember.tensor(w))
    assert not emb.weight.requires_grad and list(emb.state_dict()) == ["weight"]
    assert_close(emb(ember.tensor([3, 0])), w[[3, 0]], rtol=0)
    assert nn.Embedding.from_pretrained(ember.tensor(w), freeze=False).weight.requires_grad
    assert repr(nn.Embedding(5, 2, padding_idx=1)) == "Embedding(5, 2, padding_idx=1)"


def test_embedding_init_and_errors():
    w = np_of(nn.Embedding(2000, 8).weight)
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05
    with pytest.raises(ember.errors.DTypeError, match="embedding: indices must be an integer tensor"):
        F.embedding(ember.zeros(2), ember.zeros(3, 2))
    with pytest.raises(ember.errors.ShapeError, match=r"embedding: weight must be 2-d"):
        F.embedding(ember.tensor([0]), ember.zeros(3))
    with pytest.raises(ember.errors.EmberError, match="index_select"):
        F.embedding(ember.tensor([7]), ember.zeros(3, 2))


# -- bilinear / unflatten -------------------------------------------------------------------------
def test_bilinear_matches_torch(rng):
    mod = nn.Bilinear(3, 4, 2).double()
    tmod = torch.nn.Bilinear(3, 4, 2).double()
    assert list(mod.state_dict()) == list(tmod.state_dict()) and tuple(mod.weight.shape) == (2, 3, 4)
    assert np.abs(np_of(mod.weight)).max() <= 1 / np.sqrt(3)
    tmod.load_state_dict({k: torch.tensor(np_of(v)) for k, v in mod.state_dict().items()})
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    ae, be = ember.tensor(a, requires_grad=True), ember.tensor(b, requires_grad=True)
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ye, yt = mod(ae, be), tmod(at, bt)
    assert_close(ye, yt.detach().numpy(), rtol=1e-12)
    ye.sum().backward()
    yt.sum().backward()
    for e, t in [(ae, at), (be, bt), (mod.weight, tmod.weight), (mod.bias, tmod.bias)]:
        assert_close(e.grad, t.grad.numpy(), rtol=1e-12)
    with pytest.raises(ember.errors.ShapeError, match="bilinear: inputs of shapes"):
        mod(ae, ae)


def test_unflatten():
    x = ember.arange(24.0).reshape(2, 12)
    assert tuple(nn.Unflatten(1, (3, 4))(x).shape) == (2, 3, 4)
    assert tuple(nn.Unflatten(-1, (2, -1))(x).shape) == (2, 2, 6)


# -- interpolate ----------------------------------------------------------------------------------
INTERP = [
    ((1, 2, 5), {"scale_factor": 2}), ((1, 2, 5), {"size": 7}), ((1, 2, 7), {"size": 3}),
    ((1, 2, 5), {"scale_factor": 1.7, "mode": "nearest-exact"}),
    ((2, 1, 5), {"size": 8, "mode": "linear", "align_corners": True}),
    ((2, 1, 5), {"size": 8, "mode": "linear", "align_corners": False}),
    ((1, 2, 3, 4), {"scale_factor": 2}), ((1, 2, 3, 4), {"scale_factor": 1.5}), ((1, 2, 5, 4), {"size": (3, 7)}),
    ((1, 2, 3, 4), {"scale_factor": 2, "mode": "bilinear", "align_corners": False}),
    ((1, 2, 3, 4), {"size": (5, 2), "mode": "bilinear", "align_corners": True}),
    ((1, 2, 3, 4), {"scale_factor": 1.7, "mode": "bilinear", "align_corners": False}),
    ((1, 2, 3, 4), {"scale_factor": 1.7, "mode": "bilinear", "recompute_scale_factor": True}),
    ((1, 1, 6, 6), {"size": (4, 3), "mode": "bilinear"}),
]


@pytest.mark.parametrize("shape,kwargs", INTERP, ids=[str(k) for _, k in INTERP])
def test_interpolate_matches_torch(shape, kwargs, rng):
    x = rng.standard_normal(shape)
    xe, xt = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ye = F.interpolate(xe, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yt = TF.interpolate(xt, **kwargs)
    assert_close(ye, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.cos(np.arange(yt.numel())).reshape(yt.shape)
    (ye * ember.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    assert_close(xe.grad, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_upsample_modules_and_errors(rng):
    x = rng.standard_normal((1, 1, 2, 3))
    for mod, tmod in [(nn.Upsample(scale_factor=3), torch.nn.Upsample(scale_factor=3)),
                      (nn.UpsamplingBilinear2d(size=(3, 5)), torch.nn.UpsamplingBilinear2d(size=(3, 5))),
                      (nn.UpsamplingNearest2d(scale_factor=2), torch.nn.UpsamplingNearest2d(scale_factor=2))]:
        assert_close(mod(ember.tensor(x)), tmod(torch.tensor(x)).numpy(), rtol=1e-12)
    check_grad(lambda v: F.interpolate(v, size=(3, 4), mode="bilinear"), [rng.standard_normal((1, 1, 2, 2))])
    with pytest.raises(ember.errors.ShapeError, match=r"interpolate: mode 'bilinear' does not fit .*\(1, 2, 3\)"):
        F.interpolate(ember.zeros(1, 2, 3), scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(ember.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="unsupported mode 'bicubic'"):
        F.interpolate(ember.zeros(1, 2, 3, 3), size=2, mode="bicubic")


# -- pixel shuffle --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,r", [((1, 8, 2, 3), 2), ((2, 3, 9, 1, 2), 3)])
def test_pixel_shuffle_round_trip_matches_torch(shape, r, rng):
    x = rng.standard_normal(shape)
    got = nn.PixelShuffle(r)(ember.tensor(x))
    want = torch.nn.PixelShuffle(r)(torch.tensor(x))
    assert_close(got, want.numpy(), rtol=0)
    back = nn.PixelUnshuffle(r)(got)
    assert_close(back, torch.nn.PixelUnshuffle(r)(want).numpy(), rtol=0)
    assert_close(back, x, rtol=0)
    with pytest.raises(ember.errors.ShapeError, match="pixel_shuffle: expected an input of shape"):
        F.pixel_shuffle(ember.zeros(1, 3, 2, 2), 2)
    with pytest.raises(ember.errors.ShapeError, match="pixel_unshuffle: expected an input of shape"):
        F.pixel_unshuffle(ember.zeros(1, 3, 3, 2), 2)


# -- channel dropout ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,shape", [("Dropout1d", (8, 16, 5)), ("Dropout1d", (16, 5)),
                                       ("Dropout2d", (8, 16, 3, 3)), ("Dropout3d", (4, 16, 2, 2, 2))])
def test_channel_dropout_zeroes_whole_channels(cls, shape):
    mod = getattr(nn, cls)(0.5)
    x = ember.ones(*shape, requires_grad=True)
    y = mod(x)
    lead = 2 if len(shape) == {"Dropout1d": 3, "Dropout2d": 4, "Dropout3d": 5}[cls] else 1
    chans = np_of(y).reshape(int(np.prod(shape[:lead])), -1)
    assert set(np.unique(chans)) <= {0.0, 2.0}
    assert np.all(chans.min(1) == chans.max(1))  # one decision per channel
    assert 0.2 < (chans[:, 0] == 0).mean() < 0.8
    y.sum().backward()
    assert_close(x.grad.numpy().reshape(chans.shape), chans, rtol=0)
    mod.eval()
    assert_close(mod(x), np.ones(shape), rtol=0)
    with pytest.raises(ember.errors.ShapeError, match=f"{cls.lower()}: expected"):
        mod.train()(ember.ones(2))


def test_alpha_dropout_keeps_moments():
    ember.manual_seed(0)
    x = ember.randn(200000)
    y = nn.AlphaDropout(0.3)(x).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02
    assert_close(nn.AlphaDropout(0.3).eval()(x), x.numpy(), rtol=0)
