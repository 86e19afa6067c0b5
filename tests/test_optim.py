"""Optimisers: 20-step parameter trajectories equal PyTorch's (float64), state dicts, atomic steps."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.optim as optim
from ember.nn import Parameter

from helpers import torch

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]


def _loss(w, x, y, lib):
    pred = lib.tanh(x @ w)
    return ((pred - y) ** 2).sum()


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_trajectory_matches_torch_over_20_steps(name, kwargs, rng):
    w0 = rng.standard_normal((4, 3))
    x = rng.standard_normal((8, 4))
    y = rng.standard_normal((8, 3))
    w = Parameter(ember.tensor(w0))
    tw = torch.nn.Parameter(torch.tensor(w0))
    opt = getattr(optim, name)([w], **kwargs)
    topt = getattr(torch.optim, name)([tw], **kwargs)
    for _ in range(20):
        opt.zero_grad()
        _loss(w, ember.tensor(x), ember.tensor(y), ember).backward()
        opt.step()
        topt.zero_grad()
        _loss(tw, torch.tensor(x), torch.tensor(y), torch).backward()
        topt.step()
        np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-8)


def test_param_groups_use_their_own_options():
    a = Parameter(ember.tensor([1.0]))
    b = Parameter(ember.tensor([1.0]))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    (a + b).sum().backward()
    opt.step()
    assert a.item() == pytest.approx(0.9) and b.item() == pytest.approx(0.0)
    assert opt.param_groups[1]["momentum"] == 0.0


def test_state_dict_round_trip_continues_identically(rng):
    w0 = rng.standard_normal(3)

    def run(steps, opt, w):
        for _ in range(steps):
            opt.zero_grad()
            (ember.sin(w) * w).sum().backward()
            opt.step()

    w1 = Parameter(ember.tensor(w0))
    o1 = optim.Adam([w1], lr=0.1)
    run(10, o1, w1)
    w2 = Parameter(ember.tensor(w0))
    o2 = optim.Adam([w2], lr=0.1)
    run(5, o2, w2)
    saved, saved_w = o2.state_dict(), w2.detach().numpy().copy()
    w3 = Parameter(ember.tensor(saved_w))
    o3 = optim.Adam([w3], lr=0.5)
    o3.load_state_dict(saved)
    assert o3.param_groups[0]["lr"] == 0.1
    run(5, o3, w3)
    np.testing.assert_array_equal(w3.detach().numpy(), w1.detach().numpy())


def test_a_failed_step_leaves_parameters_and_state_unchanged():
    a = Parameter(ember.tensor([1.0, 2.0]))
    b = Parameter(ember.tensor([3.0]))
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    (a.sum() + b.sum()).backward()
    opt.step()
    before = (a.detach().numpy().copy(), b.detach().numpy().copy(), dict(opt.state))
    b.grad = ember.ones(2)  # wrong shape: the update of b fails after a's was computed
    with pytest.raises(ember.errors.EmberError):
        opt.step()
    np.testing.assert_array_equal(a.detach().numpy(), before[0])
    np.testing.assert_array_equal(b.detach().numpy(), before[1])
    assert opt.state[a]["momentum_buffer"] is before[2][a]["momentum_buffer"]


def test_empty_and_duplicated_parameters_raise():
    with pytest.raises(ember.errors.EmberError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    p = Parameter(ember.ones(1))
    with pytest.raises(ember.errors.EmberError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


def test_zero_grad_set_to_none_or_zero():
    p = Parameter(ember.ones(2))
    opt = optim.SGD([p], lr=0.1)
    (p * 2).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None
