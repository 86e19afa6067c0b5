"""Rematerialisation under ember.jit(memory_budget=...): the predicted peak fits, the results do not
change, and an impossible budget names the smallest feasible one."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import models
from ember.compiler import ir, remat


def _gpt_run(budget=None, steps=3):
    ember.manual_seed(0)
    gpt = models.gpt(vocab_size=64, block_size=64, n_layer=4, n_head=2, n_embd=32, dropout=0.0)
    opt = ember.optim.AdamW(gpt.parameters(), lr=1e-3)
    # Batch 16 of 64 tokens: activations, not the fixed parameters and optimiser state, make most of the peak.
    x, y = ember.randint(0, 64, (16, 64)), ember.randint(0, 64, (16, 64))

    def step(x, y):
        loss = F.cross_entropy(gpt(x).reshape(-1, 64), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    f = ember.jit(step, memory_budget=budget)
    losses = [float(f(x, y)) for _ in range(steps)]
    return losses, f.lower(x, y).memory()["peak_bytes"]


def test_gpt_training_step_fits_half_its_unconstrained_peak_with_the_same_losses():
    losses, peak = _gpt_run()
    budget = peak // 2
    constrained, constrained_peak = _gpt_run(budget)
    assert constrained_peak <= budget
    np.testing.assert_allclose(constrained, losses, rtol=1e-6)


def test_an_impossible_budget_names_the_smallest_feasible_one():
    with pytest.raises(remat.MemoryBudgetError, match="smallest feasible budget found is"):
        _gpt_run(budget=1000, steps=1)


def test_recomputed_graph_keeps_outputs_and_is_valid():
    f = ember.jit(lambda x: (ember.exp(x) * 2).sum() + (ember.exp(x) * 3).sum())
    x = ember.randn(256, 256)
    graph = f.lower(x).graph
    live, _ = remat.live_bytes(graph)
    fitted = remat.rematerialize(graph, max(live))
    ir.verify(fitted)
    assert np.allclose(ember.compiler.executor.run(fitted, [x])[0].numpy(), f(x).numpy())
