"""MLP training step: 784→1024→1024→10 with ReLU, cross-entropy, SGD (momentum 0.9), batch 256, float32.

One timed call is one full eager step: forward, loss, backward and the optimiser update. Ember's
initial weights are copied into the PyTorch model, and the workload checks that both frameworks give
the same losses on the first steps before timing.

The helpers here (:func:`copy_weights`, :func:`check_losses`, :func:`time_steps`) are shared by the
other training workloads.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

import ember
from ember import nn

from ..harness import Row, Target, compare

LOSS_RTOL = 1e-4


def copy_weights(model: nn.Module, peer: torch.nn.Module) -> None:
    """Copy every parameter and buffer of the Ember `model` into the PyTorch `peer` (same names)."""
    ours = {k: np.array(v.detach().numpy()) for k, v in model.state_dict().items()}
    theirs = peer.state_dict()
    missing = set(theirs) ^ set(ours)
    if missing:
        raise KeyError(f"state dict keys differ: {sorted(missing)}")
    peer.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})


def check_losses(name: str, ember_step: Callable[[], float], torch_step: Callable[[], float],
                 steps: int = 3) -> None:
    """Run `steps` steps of both frameworks and raise if their losses differ by more than LOSS_RTOL."""
    for i in range(steps):
        ours, theirs = ember_step(), torch_step()
        if not abs(ours - theirs) <= LOSS_RTOL * abs(theirs):
            raise AssertionError(f"{name}: step {i} loss {ours!r} (ember) vs {theirs!r} (torch)")


def time_steps(workload: str, case: str, ember_step: Callable, torch_step: Callable, quick: bool,
               limit: float) -> Row:
    """Median ms per step of each framework, as a row held to ``ember/torch <= limit``."""
    times = compare({"ember": ember_step, "torch": torch_step}, warmup=1 if quick else 3,
                    repeat=1 if quick else 9)
    ms = {k: v * 1e3 for k, v in times.items()}
    return Row(workload, case, "ms/step", ms.pop("ember"), ms, Target("torch", limit))


def ember_trainer(model: nn.Module, opt, x: ember.Tensor, y: ember.Tensor) -> Callable[[], float]:
    """One eager training step with cross-entropy (sequence logits (N, T, C) are flattened to (N·T, C))."""

    def step() -> float:
        opt.zero_grad()
        logits = model(x)
        if logits.ndim > 2:
            logits = logits.reshape(-1, logits.shape[-1])
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_trainer(model: torch.nn.Module, opt, x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    """The same step as :func:`ember_trainer`, in PyTorch."""

    def step() -> float:
        opt.zero_grad()
        logits = model(x)
        if logits.ndim > 2:
            logits = logits.reshape(-1, logits.shape[-1])
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def run(quick: bool = False) -> list[Row]:
    batch, sizes = (16, (784, 64, 64, 10)) if quick else (256, (784, 1024, 1024, 10))
    ember.manual_seed(0)
    layers, peers = [], []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        peers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            peers.append(torch.nn.ReLU())
    model, peer = nn.Sequential(*layers), torch.nn.Sequential(*peers)
    copy_weights(model, peer)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], batch)
    ember_step = ember_trainer(model, ember.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                               ember.tensor(x), ember.tensor(y))
    torch_step = torch_trainer(peer, torch.optim.SGD(peer.parameters(), lr=0.01, momentum=0.9),
                               torch.from_numpy(x), torch.from_numpy(y))
    check_losses("mlp_train", ember_step, torch_step)
    case = f"MLP {'-'.join(map(str, sizes))}, batch {batch}, SGD momentum"
    return [time_steps("mlp_train", case, ember_step, torch_step, quick, 1.3)]
