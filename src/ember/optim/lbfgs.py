"""L-BFGS with an optional strong-Wolfe line search, following PyTorch's iterates."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from .._core import effects
from .._core.autograd import enable_grad, no_grad
from .._core.creation import zeros
from .._core.errors import ConfigError, EmberError, TraceError
from .._core.primitives.movement import cat
from .._core.tensor import Tensor
from .optimizer import Optimizer


class LBFGS(Optimizer):
    """Limited-memory BFGS, closure based (PyTorch's algorithm and defaults).

    Each :meth:`step` runs up to `max_iter` quasi-Newton iterations, calling ``closure()`` (which clears
    the gradients, computes the loss, calls ``backward()`` and returns the loss) to evaluate the
    objective. The search direction comes from the two-loop recursion over the last `history_size`
    curvature pairs; the step length is ``lr`` (``min(1, 1/‖g‖₁)·lr`` on the very first iteration) or,
    with ``line_search_fn="strong_wolfe"``, found by a line search meeting the strong Wolfe conditions
    (bracketing then zoom with cubic interpolation, Nocedal & Wright, Algorithms 3.5-3.6).

    Args:
        params: parameters (a single group).
        lr: step length (initial trial step of the line search).
        max_iter: iterations per step.
        max_eval: closure evaluations per step (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when the largest gradient entry is at most this.
        tolerance_change: stop when the loss or the step changes by less than this.
        history_size: number of curvature pairs kept.
        line_search_fn: None or ``"strong_wolfe"``.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.tensor([3.0]))
        >>> opt = ember.optim.LBFGS([w], line_search_fn="strong_wolfe")
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = ((w - 1.0) ** 2).sum()
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)
        >>> round(w.item(), 6)
        1.0
    """

    def __init__(self, params: Iterable[Any], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        if not lr >= 0.0:
            raise ConfigError("LBFGS", f"Invalid learning rate: {lr}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ConfigError(
                "LBFGS", f"LBFGS supports line_search_fn None or 'strong_wolfe', got {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                                      history_size=history_size, line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ConfigError("LBFGS", "LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, group: dict) -> None:
        """Only the constructor's single group is allowed."""
        if self.param_groups:
            raise ConfigError("LBFGS", "LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(group)

    # flat views of the parameters and their gradients

    def _flat_grad(self) -> Tensor:
        parts = [zeros(p.numel(), dtype=p.dtype) if p.grad is None else p.grad.detach().reshape(-1)
                 for p in self._params]
        return cat(parts)

    def _move(self, t: float, d: Tensor) -> None:
        offset = 0
        for p in self._params:
            n = p.numel()
            p.copy_(p + t * d[offset:offset + n].reshape(p.shape))
            offset += n

    def _set(self, values: list[Tensor]) -> None:
        for p, v in zip(self._params, values):
            p.copy_(v)

    def _evaluate(self, closure: Callable[[], Any]) -> float:
        with enable_grad():
            return float(closure())

    def _directional_evaluate(self, closure: Callable, x: list[Tensor], t: float, d: Tensor):
        self._move(t, d)
        loss = self._evaluate(closure)
        flat_grad = self._flat_grad()
        self._set(x)
        return loss, flat_grad

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run up to `max_iter` iterations; returns the loss of the first closure evaluation."""
        if closure is None:
            raise EmberError("LBFGS.step", "LBFGS needs a closure that re-evaluates the model and returns "
                             "the loss")
        if effects.recorder() is not None:
            raise TraceError("LBFGS.step", "LBFGS chooses its steps in Python from the loss values (line "
                             "search, convergence tests), so it cannot run inside ember.jit; compile the "
                             "closure instead (closure = ember.jit(closure)) and call opt.step(closure) "
                             "outside")
        with no_grad():
            return self._run(closure)

    def _run(self, closure: Callable[[], Any]) -> Any:
        group = self.param_groups[0]
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if _abs_max(flat_grad) <= group["tolerance_grad"]:
            return orig_loss
        mem = _Memory.from_state(state, group["history_size"])
        d, t = state.get("d"), state.get("t")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < group["max_iter"]:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                mem.reset()
            else:
                mem.push(flat_grad - prev_flat_grad, d * t)
                d = mem.direction(flat_grad)
            prev_flat_grad = flat_grad.clone()
            prev_loss = loss
            t = _first_step(flat_grad, group["lr"]) if state["n_iter"] == 1 else group["lr"]
            gtd = _dot(flat_grad, d)
            if gtd > -group["tolerance_change"]:
                break
            loss, flat_grad, t, ls_evals, opt_cond = self._take_step(
                closure, group, d, t, loss, flat_grad, gtd, evals, n_iter)
            evals += ls_evals
            state["func_evals"] += ls_evals
            if n_iter == group["max_iter"] or evals >= group["max_eval"] or opt_cond:
                break
            if _abs_max(d * t) <= group["tolerance_change"]:
                break
            if abs(loss - prev_loss) < group["tolerance_change"]:
                break
        state.update(d=d, t=t, prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        mem.to_state(state)
        return orig_loss

    def _take_step(self, closure, group, d, t, loss, flat_grad, gtd, evals, n_iter):
        """Move along `d` by line search or by the fixed step `t`; returns the new loss and gradient."""
        if group["line_search_fn"] == "strong_wolfe":
            x0 = [p.clone() for p in self._params]

            def phi(step: float):
                return self._directional_evaluate(closure, x0, step, d)

            loss, flat_grad, t, ls_evals = _strong_wolfe(phi, t, d, loss, flat_grad, gtd,
                                                         tolerance_change=group["tolerance_change"],
                                                         max_ls=group["max_eval"] - evals)
            self._move(t, d)
            return loss, flat_grad, t, ls_evals, _abs_max(flat_grad) <= group["tolerance_grad"]
        self._move(t, d)
        if n_iter == group["max_iter"]:  # the last iteration does not re-evaluate
            return loss, flat_grad, t, 0, False
        loss = self._evaluate(closure)
        flat_grad = self._flat_grad()
        return loss, flat_grad, t, 1, _abs_max(flat_grad) <= group["tolerance_grad"]


class _Memory:
    """The L-BFGS curvature pairs (y, s), their 1/(yᵀs), and the initial inverse-Hessian scale."""

    def __init__(self, ys: list, ss: list, rho: list, h_diag: float, size: int) -> None:
        self.ys, self.ss, self.rho, self.h_diag, self.size = ys, ss, rho, h_diag, size

    @classmethod
    def from_state(cls, state: dict, size: int) -> "_Memory":
        return cls(list(state.get("old_dirs", [])), list(state.get("old_stps", [])),
                   list(state.get("ro", [])), state.get("H_diag", 1.0), size)

    def to_state(self, state: dict) -> None:
        state.update(old_dirs=self.ys, old_stps=self.ss, ro=self.rho, H_diag=self.h_diag)

    def reset(self) -> None:
        self.ys, self.ss, self.rho, self.h_diag = [], [], [], 1.0

    def push(self, y: Tensor, s: Tensor) -> None:
        """Keep the pair only when the curvature condition ``yᵀs > 1e-10`` holds."""
        ys = _dot(y, s)
        if ys <= 1e-10:
            return
        if len(self.ys) == self.size:
            del self.ys[0], self.ss[0], self.rho[0]
        self.ys.append(y)
        self.ss.append(s)
        self.rho.append(1.0 / ys)
        self.h_diag = ys / _dot(y, y)

    def direction(self, g: Tensor) -> Tensor:
        """``-H·g`` by the two-loop recursion."""
        q = -g
        alphas = [0.0] * len(self.ys)
        for i in reversed(range(len(self.ys))):
            alphas[i] = _dot(self.ss[i], q) * self.rho[i]
            q = q - alphas[i] * self.ys[i]
        r = q * self.h_diag
        for i in range(len(self.ys)):
            beta = _dot(self.ys[i], r) * self.rho[i]
            r = r + (alphas[i] - beta) * self.ss[i]
        return r


def _dot(a: Tensor, b: Tensor) -> float:
    # an elementwise product and a sum rather than BLAS dot, whose fused multiply-adds round differently
    # from PyTorch's on small vectors (L-BFGS on ill-conditioned problems amplifies one-ulp differences)
    return float((a * b).sum())


def _abs_max(x: Tensor) -> float:
    return float(x.abs().max())


def _first_step(flat_grad: Tensor, lr: float) -> float:
    return min(1.0, 1.0 / float(flat_grad.abs().sum())) * lr


def _cubic_min(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float,
               bounds: tuple[float, float] | None = None) -> float:
    """Minimiser of the cubic through (x1, f1, f1') and (x2, f2, f2'), clipped to `bounds`.

    Without a real minimiser the midpoint of the bounds is returned (Nocedal & Wright, eq. 3.59).
    """
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = math.sqrt(disc)
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


class _Point:
    """A trial step with its loss, gradient and directional derivative."""

    __slots__ = ("t", "f", "g", "gtd")

    def __init__(self, t: float, f: float, g: Tensor, gtd: float) -> None:
        self.t, self.f, self.g, self.gtd = t, f, g, gtd


def _strong_wolfe(phi, t: float, d: Tensor, f: float, g: Tensor, gtd: float, c1: float = 1e-4,
                  c2: float = 0.9, tolerance_change: float = 1e-9, max_ls: int = 25):
    """Line search for a step meeting the strong Wolfe conditions; returns (f, g, t, evaluations).

    ``phi(t)`` returns the loss and flat gradient at ``x + t·d``. Sufficient decrease:
    ``f(t) <= f + c1·t·gtd``; curvature: ``|g(t)·d| <= -c2·gtd``.
    """
    start = _Point(0.0, f, g, gtd)
    bracket, done, evals, n = _bracket(phi, start, t, d, c1, c2, max_ls)
    low = 0
    if not done:
        low, extra = _zoom(phi, bracket, start, d, c1, c2, tolerance_change, max_ls, n)
        evals += extra
    best = bracket[low]
    return best.f, best.g, best.t, evals


def _trial(phi, t: float, d: Tensor) -> _Point:
    f_new, g_new = phi(t)
    return _Point(t, f_new, g_new, _dot(g_new, d))


def _bracket(phi, start: _Point, t: float, d: Tensor, c1: float, c2: float, max_ls: int):
    """Grow the step until an interval holding a Wolfe point is found (Nocedal & Wright, Alg. 3.5)."""
    prev, new = start, _trial(phi, t, d)
    evals, n = 1, 0
    while n < max_ls:
        if new.f > start.f + c1 * new.t * start.gtd or (n > 1 and new.f >= prev.f):
            return [prev, new], False, evals, n
        if abs(new.gtd) <= -c2 * start.gtd:
            return [new], True, evals, n
        if new.gtd >= 0:
            return [prev, new], False, evals, n
        step = _cubic_min(prev.t, prev.f, prev.gtd, new.t, new.f, new.gtd,
                          bounds=(new.t + 0.01 * (new.t - prev.t), new.t * 10))
        prev, new = new, _trial(phi, step, d)
        evals += 1
        n += 1
    return [start, new], False, evals, n


def _zoom(phi, bracket: list, start: _Point, d: Tensor, c1: float, c2: float, tolerance_change: float,
          max_ls: int, n: int) -> tuple[int, int]:
    """Shrink the bracket by safeguarded cubic interpolation until a Wolfe point is found (Alg. 3.6).

    Updates `bracket` in place; returns the index of its lowest point and the evaluations made.
    """
    d_norm = _abs_max(d)
    evals = 0
    insufficient = False
    low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
    while n < max_ls:
        a, b = bracket[0], bracket[1]
        if abs(b.t - a.t) * d_norm < tolerance_change:
            break
        t = _cubic_min(a.t, a.f, a.gtd, b.t, b.f, b.gtd)
        t, insufficient = _keep_off_edges(t, min(a.t, b.t), max(a.t, b.t), insufficient)
        new = _trial(phi, t, d)
        evals += 1
        n += 1
        if new.f > start.f + c1 * t * start.gtd or new.f >= bracket[low].f:
            bracket[high] = new
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
            continue
        if abs(new.gtd) <= -c2 * start.gtd:
            bracket[low] = new
            break
        if new.gtd * (bracket[high].t - bracket[low].t) >= 0:
            bracket[high] = bracket[low]
        bracket[low] = new
    return low, evals


def _keep_off_edges(t: float, lo: float, hi: float, insufficient: bool) -> tuple[float, bool]:
    """Move a trial step that lands within 10% of the bracket's ends away from them when progress stalls."""
    eps = 0.1 * (hi - lo)
    if min(hi - t, t - lo) >= eps:
        return t, False
    if not (insufficient or t >= hi or t <= lo):
        return t, True
    return (hi - eps if abs(t - hi) < abs(t - lo) else lo + eps), False
