"""What the training workloads share: weight copying, loss checks, the step functions of each framework,
the timed comparison (Ember eager, Ember compiled, PyTorch eager, optionally ``torch.compile``), the peak
memory of one step, and the compile time of a step in a fresh process.

A step is forward, cross-entropy, ``backward()`` and the optimiser update. The compiled candidate is the
same step under ``ember.jit`` on a copy of the model made before any step, so each candidate trains its
own copy from the same initial weights; the first losses of every candidate are checked against
PyTorch's before anything is timed.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Callable

import numpy as np
import torch

import ember
from ember import nn

from ..harness import Row, Target, compare

LOSS_RTOL = 1e-4
CHECK_STEPS = 3


def copy_weights(model: nn.Module, peer: torch.nn.Module) -> None:
    """Copy every parameter and buffer of the Ember `model` into the PyTorch `peer` (same names)."""
    ours = {k: np.array(v.detach().numpy()) for k, v in model.state_dict().items()}
    theirs = peer.state_dict()
    missing = set(theirs) ^ set(ours)
    if missing:
        raise KeyError(f"state dict keys differ: {sorted(missing)}")
    peer.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})


def check_losses(name: str, step: Callable[[], float], reference: list[float]) -> None:
    """Run `step` once per loss in `reference` and raise if a loss differs by more than LOSS_RTOL."""
    for i, theirs in enumerate(reference):
        ours = step()
        if not abs(ours - theirs) <= LOSS_RTOL * abs(theirs):
            raise AssertionError(f"{name}: step {i} loss {ours!r} vs {theirs!r} (torch)")


def _loss_of(logits, y, cross_entropy):
    if logits.ndim > 2:
        logits = logits.reshape(-1, logits.shape[-1])
    return cross_entropy(logits, y)


def ember_trainer(model: nn.Module, opt, x: ember.Tensor, y: ember.Tensor,
                  jit: bool = False) -> Callable[[], float]:
    """One Ember training step as a zero-argument callable returning the loss; `jit` compiles it."""

    def step(x: ember.Tensor, y: ember.Tensor) -> ember.Tensor:
        opt.zero_grad()
        loss = _loss_of(model(x), y, nn.functional.cross_entropy)
        loss.backward()
        opt.step()
        return loss

    fn = ember.jit(step) if jit else step
    return lambda: fn(x, y).item()


def torch_trainer(model: torch.nn.Module, opt, x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    """The same step as :func:`ember_trainer`, in PyTorch (eager, or a ``torch.compile``d model)."""

    def step() -> float:
        opt.zero_grad()
        loss = _loss_of(model(x), y, torch.nn.functional.cross_entropy)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _state_bytes(tensors) -> int:
    return sum(int(t.numel()) * t.element_size() if isinstance(t, torch.Tensor) else int(t.nbytes)
               for t in tensors)


def torch_step_peak(model: torch.nn.Module, opt, step: Callable[[], float]) -> int:
    """Peak bytes of one PyTorch step: what lives before it (parameters, gradients, optimiser state)
    plus the highest total of the allocations the profiler records during it."""
    from torch.profiler import ProfilerActivity, profile

    params = list(model.parameters())
    state = [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    before = _state_bytes(params + [p.grad for p in params if p.grad is not None] + state)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    return before + max([0] + totals)


def ember_step_peak(model: nn.Module, opt, step: Callable[[], float]) -> int:
    """Peak bytes of one Ember step, measured the same way: the parameters, gradients and optimiser
    state before it plus the peak of ``ember.memory_stats()`` above its level at the start."""
    params = list(model.parameters())
    state = [v for s in opt.state.values() for v in s.values() if isinstance(v, ember.Tensor)]
    before = sum(int(t.numel()) * t.element_size() for t in params + state
                 + [p.grad for p in params if p.grad is not None])
    start = ember.memory_stats()["current_bytes"]
    ember.reset_peak_memory_stats()
    step()
    return before + ember.memory_stats()["peak_bytes"] - start


def compile_seconds(setup: str, cache_dir: str) -> float:
    """Seconds the first call of a compiled step takes beyond a steady-state call, in a fresh process
    whose kernel cache is `cache_dir`. `setup` defines ``step`` (a compiled step, zero arguments)."""
    script = textwrap.dedent("""
        import sys, time
        {setup}
        t = time.perf_counter(); step(); first = time.perf_counter() - t
        times = []
        for _ in range(3):
            t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
        print(first - min(times))
    """).format(setup=textwrap.indent(textwrap.dedent(setup), "").strip())
    env = dict(os.environ, EMBER_CACHE_DIR=cache_dir)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def training_rows(workload: str, case: str, model: nn.Module, peer: torch.nn.Module, make_opt: Callable,
                  make_torch_opt: Callable, x: np.ndarray, y: np.ndarray, quick: bool, eager_limit: float,
                  jit_limit: float, torch_compile_limit: float | None = None) -> list[Row]:
    """Time Ember eager, Ember compiled and PyTorch eager (and ``torch.compile`` when a limit for it is
    given and not `quick`) on one step each, interleaved; rows for eager and compiled Ember."""
    jit_model = copy.deepcopy(model)
    ex, ey, tx, ty = ember.tensor(x), ember.tensor(y), torch.from_numpy(x), torch.from_numpy(y)
    torch_step = torch_trainer(peer, make_torch_opt(peer), tx, ty)
    compiled_peer = copy.deepcopy(peer) if torch_compile_limit is not None and not quick else None
    reference = [torch_step() for _ in range(CHECK_STEPS)]
    candidates = {"ember": ember_trainer(model, make_opt(model), ex, ey),
                  "ember_jit": ember_trainer(jit_model, make_opt(jit_model), ex, ey, jit=True)}
    for name, step in candidates.items():
        check_losses(f"{workload} ({name})", step, reference)
    peers = {"torch": torch_step}
    notes = []
    if compiled_peer is not None:
        try:
            tc_step = torch_trainer(torch.compile(compiled_peer), make_torch_opt(compiled_peer), tx, ty)
            start = time.perf_counter()
            check_losses(f"{workload} (torch.compile)", tc_step, reference[:1])
            notes.append(f"torch.compile first step {time.perf_counter() - start:.1f} s")
            peers["torch_compile"] = tc_step
        except Exception as err:  # torch.compile needs a working toolchain; report, do not fail
            notes.append(f"torch.compile unavailable: {type(err).__name__}: {str(err).splitlines()[0]}")
    times = compare({**candidates, **peers}, warmup=1 if quick else 3, repeat=1 if quick else 9)
    ms = {k: v * 1e3 for k, v in times.items()}
    peer_ms = {k: ms[k] for k in peers}
    rows = [Row(workload, f"{case}, eager", "ms/step", ms["ember"], dict(peer_ms),
                Target("torch", eager_limit)),
            Row(workload, f"{case}, ember.jit", "ms/step", ms["ember_jit"], dict(peer_ms),
                Target("torch", jit_limit), note="; ".join(notes))]
    if "torch_compile" in peers:
        rows.append(Row(workload, f"{case}, ember.jit vs torch.compile", "ms/step", ms["ember_jit"],
                        {"torch_compile": ms["torch_compile"]}, Target("torch_compile", torch_compile_limit)))
    return rows
