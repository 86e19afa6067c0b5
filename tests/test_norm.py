"""Normalisation layers and functions against PyTorch: outputs, gradients, running buffers, modes."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

from helpers import assert_close, check_grad, check_jvp, check_vmap, np_of, torch


def _copy_state(mod, tmod):
    """Load ember's parameters and buffers into the torch module (float64)."""
    state = {k: torch.tensor(np_of(v)) for k, v in mod.state_dict().items()}
    tmod.load_state_dict(state)


def _compare_step(mod, tmod, x, rtol=1e-10):
    """One forward/backward with a random cotangent; outputs and all gradients must agree."""
    xe = ember.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    ye, yt = mod(xe), tmod(xt)
    assert_close(ye, yt.detach().numpy(), rtol=rtol, atol=rtol)
    g = np.cos(np.arange(yt.numel())).reshape(yt.shape)
    (ye * ember.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    assert_close(xe.grad, xt.grad.numpy(), rtol=rtol, atol=rtol)
    tparams = dict(tmod.named_parameters())
    for name, p in mod.named_parameters():
        assert_close(p.grad, tparams[name].grad.numpy(), rtol=rtol, atol=rtol, msg=name)
        p.grad = None
    tmod.zero_grad()


def _compare_buffers(mod, tmod):
    tbuf = dict(tmod.named_buffers())
    for name, b in mod.named_buffers():
        assert_close(b, tbuf[name].numpy(), rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (5, 3)), ("BatchNorm1d", (4, 3, 6)),
                                       ("BatchNorm2d", (3, 3, 4, 2)), ("BatchNorm3d", (2, 3, 2, 2, 3))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_train_steps_and_eval_match_torch(cls, shape, momentum, rng):
    mod = getattr(nn, cls)(3, momentum=momentum).double()
    tmod = getattr(torch.nn, cls)(3, momentum=momentum).double()
    with ember.no_grad():
        mod.weight.copy_(ember.tensor(rng.standard_normal(3)))
        mod.bias.copy_(ember.tensor(rng.standard_normal(3)))
    _copy_state(mod, tmod)
    for _ in range(3):
        _compare_step(mod, tmod, rng.standard_normal(shape) * 2 + 1)
    _compare_buffers(mod, tmod)
    assert int(mod.num_batches_tracked.item()) == 3
    mod.eval()
    tmod.eval()
    _compare_step(mod, tmod, rng.standard_normal(shape))
    _compare_buffers(mod, tmod)


@pytest.mark.parametrize("kwargs", [{"affine": False}, {"track_running_stats": False}])
def test_batch_norm_options_match_torch(kwargs, rng):
    mod, tmod = nn.BatchNorm2d(2, **kwargs).double(), torch.nn.BatchNorm2d(2, **kwargs).double()
    assert list(mod.state_dict()) == list(tmod.state_dict())
    for training in (True, False):
        mod.train(training)
        tmod.train(training)
        _compare_step(mod, tmod, rng.standard_normal((3, 2, 2, 2)))
        _compare_buffers(mod, tmod)


def test_batch_norm_state_dict_keys_match_torch():
    assert list(nn.BatchNorm1d(4).state_dict()) == list(torch.nn.BatchNorm1d(4).state_dict())
    sd = nn.BatchNorm1d(4).state_dict()
    assert sd["num_batches_tracked"].dtype is ember.int64


def test_batch_norm_errors():
    with pytest.raises(ember.errors.ShapeError, match="BatchNorm2d.*expected 4D input"):
        nn.BatchNorm2d(3)(ember.zeros(2, 3, 4))
    with pytest.raises(ember.errors.ShapeError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(ember.zeros(1, 3))
    with pytest.raises(ember.errors.ShapeError, match=r"weight has shape \(4,\).*3 channels"):
        F.batch_norm(ember.zeros(2, 3), None, None, ember.ones(4), training=True)


def test_batch_norm_float32_close_to_torch(rng):
    x = rng.standard_normal((8, 4, 5)).astype(np.float32)
    got = nn.BatchNorm1d(4)(ember.tensor(x))
    want = torch.nn.BatchNorm1d(4)(torch.tensor(x))
    assert got.dtype is ember.float32
    assert_close(got, want.detach().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,shape", [("InstanceNorm1d", (3, 2, 5)), ("InstanceNorm1d", (2, 5)),
                                       ("InstanceNorm2d", (2, 2, 3, 3)), ("InstanceNorm3d", (2, 2, 2, 2, 2))])
@pytest.mark.parametrize("kwargs", [{}, {"affine": True, "track_running_stats": True}])
def test_instance_norm_matches_torch(cls, shape, kwargs, rng):
    mod, tmod = getattr(nn, cls)(2, **kwargs).double(), getattr(torch.nn, cls)(2, **kwargs).double()
    if kwargs:
        with ember.no_grad():
            mod.weight.copy_(ember.tensor(rng.standard_normal(2)))
    _copy_state(mod, tmod)
    for _ in range(2):
        _compare_step(mod, tmod, rng.standard_normal(shape) + 0.5)
    _compare_buffers(mod, tmod)
    mod.eval()
    tmod.eval()
    _compare_step(mod, tmod, rng.standard_normal(shape))


@pytest.mark.parametrize("shape,normalized", [((3, 4), (4,)), ((2, 3, 4, 5), (4, 5)), ((6,), 6)])
@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False}, {"eps": 1e-2}])
def test_layer_norm_matches_torch(shape, normalized, kwargs, rng):
    mod, tmod = nn.LayerNorm(normalized, **kwargs).double(), torch.nn.LayerNorm(normalized, **kwargs).double()
    for p in mod.parameters():
        with ember.no_grad():
            p.copy_(ember.tensor(rng.standard_normal(tuple(p.shape))))
    _copy_state(mod, tmod)
    _compare_step(mod, tmod, rng.standard_normal(shape) * 3 + 2)


def test_layer_norm_float32_and_float16(rng):
    x = (rng.standard_normal((4, 16)) * 5 + 100).astype(np.float32)
    got = F.layer_norm(ember.tensor(x), (16,))
    want = torch.nn.functional.layer_norm(torch.tensor(x), (16,))
    assert got.dtype is ember.float32
    assert_close(got, want.numpy(), rtol=1e-5, atol=1e-5)
    half = F.layer_norm(ember.tensor(x).half(), (16,))
    assert half.dtype is ember.float16
    assert_close(half.float(), want.numpy(), rtol=1e-2, atol=1e-2)


def test_layer_norm_second_order_jvp_and_vmap(rng):
    check_grad(lambda x, w, b: F.layer_norm(x, (3,), w, b),
               [rng.standard_normal((2, 3)), rng.standard_normal(3), rng.standard_normal(3)])
    check_grad(lambda x: F.layer_norm(x, (2, 2)), [rng.standard_normal((2, 2, 2))])
    check_jvp(lambda x: F.layer_norm(x, (3,)), [rng.standard_normal((2, 3))])
    check_vmap(lambda x: F.layer_norm(x, (3,)), [rng.standard_normal((4, 2, 3))], [1])
    # the gradient primitive under vmap, and its own derivative (third order of layer_norm)
    check_vmap(lambda x: ember.func.grad(lambda y: (F.layer_norm(y, (3,)) ** 3).sum())(x),
               [rng.standard_normal((3, 2, 3))], [0])
    check_grad(lambda x: ember.func.grad(lambda y: (F.layer_norm(y, (3,)) ** 3).sum())(x),
               [rng.standard_normal((2, 3))])


def test_layer_norm_errors():
    with pytest.raises(ember.errors.ShapeError, match=r"layer_norm: normalized_shape \(5,\).*\(2, 4\)"):
        F.layer_norm(ember.zeros(2, 4), (5,))
    with pytest.raises(ember.errors.ShapeError, match=r"weight has shape \(3,\), expected \(4,\)"):
        F.layer_norm(ember.zeros(2, 4), (4,), ember.ones(3))


@pytest.mark.parametrize("groups,shape", [(1, (2, 4, 3)), (2, (2, 4, 3, 2)), (4, (3, 4))])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(groups, shape, affine, rng):
    mod, tmod = nn.GroupNorm(groups, 4, affine=affine).double(), torch.nn.GroupNorm(groups, 4, affine=affine).double()
    for p in mod.parameters():
        with ember.no_grad():
            p.copy_(ember.tensor(rng.standard_normal(4)))
    _copy_state(mod, tmod)
    _compare_step(mod, tmod, rng.standard_normal(shape))


def test_group_norm_errors():
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ember.errors.ShapeError, match=r"group_norm: expected the number of channels \(4\)"):
        F.group_norm(ember.zeros(2, 4, 3), 3)


@pytest.mark.parametrize("eps", [None, 1e-3])
@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm_matches_torch(eps, affine, rng):
    mod = nn.RMSNorm((3, 4), eps=eps, elementwise_affine=affine).double()
    tmod = torch.nn.RMSNorm((3, 4), eps=eps, elementwise_affine=affine).double()
    for p in mod.parameters():
        with ember.no_grad():
            p.copy_(ember.tensor(rng.standard_normal((3, 4))))
    _copy_state(mod, tmod)
    _compare_step(mod, tmod, rng.standard_normal((2, 3, 4)) * 0.1)
    check_grad(lambda x: F.rms_norm(x, (3,), eps=eps), [rng.standard_normal((2, 3))])


def test_repr_and_reset():
    assert repr(nn.BatchNorm2d(3)) == "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert repr(nn.LayerNorm(4)) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"
    bn = nn.BatchNorm1d(2)
    bn(ember.randn(4, 2))
    bn.reset_running_stats()
    assert bn.running_mean.tolist() == [0.0, 0.0] and int(bn.num_batches_tracked.item()) == 0
