"""Shared checks for op tests: values against a reference, gradients against finite differences,
JVPs against finite differences, vmap against a Python loop."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import ember
from ember.func import jvp, vmap

try:
    import torch
except ImportError:  # the test setup installs it; keep the module importable without it
    torch = None


def t64(a) -> ember.Tensor:
    """A float64 ember tensor from array-like data."""
    return ember.tensor(np.asarray(a, dtype=np.float64))


def np_of(x) -> np.ndarray:
    """The NumPy value of an ember tensor (detached)."""
    return np.asarray(x.detach().numpy()) if isinstance(x, ember.Tensor) else np.asarray(x)


def assert_close(actual, expected, rtol=1e-6, atol=1e-6, msg=""):
    np.testing.assert_allclose(np_of(actual), np.asarray(expected), rtol=rtol, atol=atol, err_msg=msg)


def numerical_grad(f: Callable[[list[np.ndarray]], float], xs: list[np.ndarray], eps=1e-6) -> list[np.ndarray]:
    """Central finite differences of scalar `f` with respect to each array in `xs` (float64)."""
    grads = []
    for x in xs:
        g = np.zeros_like(x)
        it = np.nditer(x, flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            old = x[idx]
            x[idx] = old + eps
            hi = f(xs)
            x[idx] = old - eps
            lo = f(xs)
            x[idx] = old
            g[idx] = (hi - lo) / (2 * eps)
        grads.append(g)
    return grads


def check_grad(fn: Callable, inputs: Sequence[np.ndarray], *, rtol=1e-5, atol=1e-6, second_order=True,
               seed=0) -> None:
    """Reverse mode of `fn` (ember tensors in, one tensor out) against finite differences, in float64.

    The output is contracted with a random cotangent; with `second_order`, the gradient of the
    gradient (contracted again) is checked the same way.
    """
    rng = np.random.default_rng(seed)
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    out_shape = tuple(fn(*[t64(x) for x in xs]).shape)
    w = rng.standard_normal(out_shape)

    def scalar(arrs):
        return float((np_of(fn(*[t64(a) for a in arrs])) * w).sum())

    ts = [t64(x).requires_grad_() for x in xs]
    out = (fn(*ts) * t64(w)).sum()
    got = ember.autograd.grad(out, ts, create_graph=second_order, allow_unused=True)
    want = numerical_grad(scalar, xs)
    for g, e in zip(got, want):
        assert_close(g if g is not None else np.zeros_like(e), e, rtol=rtol, atol=atol, msg="first order")
    if not second_order:
        return
    vs = [rng.standard_normal(x.shape) for x in xs]

    def gscalar(arrs):
        ts2 = [t64(a).requires_grad_() for a in arrs]
        o = (fn(*ts2) * t64(w)).sum()
        gs = ember.autograd.grad(o, ts2, allow_unused=True)
        return float(sum((np_of(g) * v).sum() for g, v in zip(gs, vs) if g is not None))

    total = sum((g * t64(v)).sum() for g, v in zip(got, vs) if g is not None and g.requires_grad)
    if not isinstance(total, ember.Tensor):
        return  # the gradient does not depend on the inputs (a linear function)
    got2 = ember.autograd.grad(total, ts, allow_unused=True)
    want2 = numerical_grad(gscalar, xs)
    for g, e in zip(got2, want2):
        assert_close(g if g is not None else np.zeros_like(e), e, rtol=max(rtol, 1e-4), atol=max(atol, 1e-5),
                     msg="second order")


def check_jvp(fn: Callable, inputs: Sequence[np.ndarray], *, rtol=1e-5, atol=1e-6, seed=1) -> None:
    """Forward mode of `fn` against a central finite difference along a random direction (float64)."""
    rng = np.random.default_rng(seed)
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    vs = [rng.standard_normal(x.shape) for x in xs]
    eps = 1e-6
    hi = np_of(fn(*[t64(x + eps * v) for x, v in zip(xs, vs)]))
    lo = np_of(fn(*[t64(x - eps * v) for x, v in zip(xs, vs)]))
    _, tangent = jvp(fn, tuple(t64(x) for x in xs), tuple(t64(v) for v in vs))
    assert_close(tangent, (hi - lo) / (2 * eps), rtol=rtol, atol=atol)


def check_vmap(fn: Callable, inputs: Sequence[np.ndarray], in_dims: Sequence[int | None], *, rtol=1e-6,
               atol=1e-7) -> None:
    """``vmap(fn)`` against stacking ``fn`` applied to each slice in a Python loop."""
    ts = [t64(x) for x in inputs]
    size = next(x.shape[d] for x, d in zip(inputs, in_dims) if d is not None)
    got = vmap(fn, in_dims=tuple(in_dims))(*ts)
    want = []
    for i in range(size):
        args = [t64(np.take(x, i, axis=d)) if d is not None else t64(x) for x, d in zip(inputs, in_dims)]
        want.append(np_of(fn(*args)))
    assert_close(got, np.stack(want), rtol=rtol, atol=atol)


def to_torch(x: np.ndarray):
    """A torch tensor from a NumPy array (for semantic comparisons)."""
    return torch.from_numpy(np.ascontiguousarray(x))


TORCH_DTYPES = {} if torch is None else {
    ember.bool: torch.bool, ember.uint8: torch.uint8, ember.int8: torch.int8, ember.int16: torch.int16,
    ember.int32: torch.int32, ember.int64: torch.int64, ember.float16: torch.float16,
    ember.bfloat16: torch.bfloat16, ember.float32: torch.float32, ember.float64: torch.float64,
    ember.complex64: torch.complex64, ember.complex128: torch.complex128,
}


def training_step(model, opt):
    """``step(x, y)``: one cross-entropy training step of `model` with `opt`, returning the loss."""
    import ember.nn.functional as F

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step
