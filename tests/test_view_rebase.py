"""Views whose base is updated in place follow the update in the autograd graph, as PyTorch rebases
them: their values already change (shared memory), and their gradients must too."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

_X = np.array([0.5, -1.0, 2.0, 1.5, -0.25, 3.0], dtype=np.float64)


def _base_scaled_after_view(lib, x):
    c = x * 1
    d = c.view(2, 3)
    c.mul_(2.0)
    return (d ** 2).sum()


def _view_of_view(lib, x):
    c = x * 1
    d = c.view(2, 3).t()
    c.add_(x)
    return (d ** 3).sum()


def _slice_after_base_write(lib, x):
    c = x * 1.5
    d = c[1:4]
    c[0:2] = c[0:2] * 3
    return (d * d).sum() + c.sum()


def _view_written_then_base_read(lib, x):
    c = x * 2
    d = c[2:]
    d.mul_(x[:4])
    e = c.view(3, 2)
    return (e ** 2).sum() + (d * 3).sum()


def _two_updates(lib, x):
    c = x * 1
    d = c.view(3, 2)
    c.mul_(x)
    c.add_(1.0)
    return (d.sin()).sum()


@pytest.mark.parametrize("fn", [_base_scaled_after_view, _view_of_view, _slice_after_base_write,
                                _view_written_then_base_read, _two_updates])
def test_gradients_through_views_of_updated_bases_match_torch(fn):
    x = ember.tensor(_X, requires_grad=True)
    tx = torch.tensor(_X, requires_grad=True)
    out, tout = fn(ember, x), fn(torch, tx)
    np.testing.assert_allclose(out.item(), tout.item(), rtol=1e-12)
    out.backward()
    tout.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
