"""nn.utils gradient clipping and parameter/vector conversion against PyTorch."""
from __future__ import annotations

import math

import numpy as np
import pytest

import ember
import ember.nn.utils as U
from ember.nn import Parameter

from helpers import torch

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def _pairs(rng, dtype=np.float64, scale=1.0, with_none=False):
    """Parameters with gradients in ember and torch (the second one without a gradient if `with_none`)."""
    ours, theirs = [], []
    for i, shape in enumerate(SHAPES):
        value, grad = rng.standard_normal(shape).astype(dtype), (scale * rng.standard_normal(shape)).astype(dtype)
        p, tp = Parameter(ember.tensor(value)), torch.nn.Parameter(torch.tensor(value))
        if not (with_none and i == 1):
            p.grad, tp.grad = ember.tensor(grad), torch.tensor(grad)
        ours.append(p)
        theirs.append(tp)
    return ours, theirs


def _assert_grads_equal(ours, theirs, rtol):
    for p, tp in zip(ours, theirs):
        if tp.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 3.0, 0.5, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, rng):
    ours, theirs = _pairs(rng, with_none=True)
    total = U.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=float(norm_type))
    assert isinstance(total, ember.Tensor) and total.shape == ()
    np.testing.assert_allclose(float(total), float(expected), rtol=1e-12)
    _assert_grads_equal(ours, theirs, 1e-12)


def test_clip_grad_norm_float32_and_single_tensor(rng):
    ours, theirs = _pairs(rng, dtype=np.float32, scale=10.0)
    total = U.clip_grad_norm_(ours[0], 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs[0], 1.0)
    assert total.dtype == ember.float32
    np.testing.assert_allclose(float(total), float(expected), rtol=1e-6)
    _assert_grads_equal(ours[:1], theirs[:1], 1e-6)
    assert float(ember.norm(ours[0].grad)) <= 1.0 + 1e-6


def test_clip_grad_norm_without_gradients_returns_zero():
    p = Parameter(ember.ones(3))
    assert float(U.clip_grad_norm_([p], 1.0)) == 0.0 and p.grad is None


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_norm_raises_when_asked(bad, rng):
    ours, theirs = _pairs(rng)
    ours[0].grad = ember.tensor(np.full((3, 4), bad))
    before = [p.grad.numpy().copy() for p in ours]
    with pytest.raises(U.NonFiniteNormError, match="clip_grad_norm_.*error_if_nonfinite") as info:
        U.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    assert isinstance(info.value, ember.errors.EmberError) and isinstance(info.value, RuntimeError)
    assert "shape=(3, 4)" in str(info.value)
    for p, b in zip(ours, before):  # nothing was scaled
        np.testing.assert_array_equal(p.grad.numpy(), b)


def test_non_finite_norm_without_the_check_clips_like_torch(rng):
    ours, theirs = _pairs(rng)
    ours[1].grad = ember.tensor(np.array([np.inf, 1.0, 2.0, 3.0, 4.0]))
    theirs[1].grad = torch.tensor(np.array([np.inf, 1.0, 2.0, 3.0, 4.0]))
    total = U.clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert math.isinf(float(total)) and math.isinf(float(expected))
    for p, tp in zip(ours, theirs):
        np.testing.assert_array_equal(np.isnan(p.grad.numpy()), np.isnan(tp.grad.numpy()))


def test_clip_grad_norm_does_not_record_a_graph(rng):
    ours, _ = _pairs(rng)
    total = U.clip_grad_norm_(ours, 1.0)
    assert not total.requires_grad and all(not p.grad.requires_grad for p in ours)


@pytest.mark.parametrize("clip", [0.3, 2, 100.0])
def test_clip_grad_value_matches_torch(clip, rng):
    ours, theirs = _pairs(rng, scale=2.0, with_none=True)
    assert U.clip_grad_value_(ours, clip) is None
    torch.nn.utils.clip_grad_value_(theirs, clip)
    _assert_grads_equal(ours, theirs, 0)
    assert max(float(p.grad.abs().max()) for p in ours if p.grad is not None) <= clip


def test_clip_grad_value_on_a_single_tensor():
    p = Parameter(ember.zeros(3))
    p.grad = ember.tensor([-5.0, 0.1, 5.0])
    U.clip_grad_value_(p, 1.0)
    assert p.grad.tolist() == pytest.approx([-1.0, 0.1, 1.0])


def test_parameters_to_vector_and_back_match_torch(rng):
    ours, theirs = _pairs(rng)
    vec = U.parameters_to_vector(ours)
    np.testing.assert_array_equal(vec.detach().numpy(), torch.nn.utils.parameters_to_vector(theirs).detach())
    new = rng.standard_normal(vec.shape[0])
    U.vector_to_parameters(ember.tensor(new), ours)
    torch.nn.utils.vector_to_parameters(torch.tensor(new), theirs)
    for p, tp in zip(ours, theirs):
        np.testing.assert_array_equal(p.detach().numpy(), tp.detach().numpy())
        assert p.requires_grad and p.is_leaf


def test_parameters_to_vector_is_differentiable(rng):
    ours, _ = _pairs(rng)
    for p in ours:
        p.grad = None
    w = rng.standard_normal(sum(p.numel() for p in ours))
    (U.parameters_to_vector(ours) * ember.tensor(w)).sum().backward()
    offset = 0
    for p in ours:
        n = p.numel()
        np.testing.assert_array_equal(p.grad.numpy(), w[offset:offset + n].reshape(p.shape))
        offset += n


def test_conversion_errors(rng):
    ours, _ = _pairs(rng)
    with pytest.raises(ember.errors.ShapeError, match=r"vector_to_parameters.*25 entries.*\(24,\)"):
        U.vector_to_parameters(ember.zeros(24), ours)
    with pytest.raises(ember.errors.ShapeError, match="vector_to_parameters"):
        U.vector_to_parameters(ember.zeros(5, 5), ours)
    with pytest.raises(ember.errors.DTypeError, match="vector_to_parameters.*Tensor"):
        U.vector_to_parameters(np.zeros(25), ours)
    with pytest.raises(ember.errors.DTypeError, match="parameters_to_vector"):
        U.parameters_to_vector([ours[0], np.zeros(3)])
