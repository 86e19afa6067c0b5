"""Adagrad, following PyTorch's update exactly."""
from __future__ import annotations

from typing import Any, Iterable

from .._core.creation import full_like, tensor
from .._core.dtypes import float64
from .._core.errors import ConfigError
from .._core.primitives import elementwise as ew
from .._core.tensor import Tensor
from .optimizer import SCHEDULED, Optimizer, next_step


class Adagrad(Optimizer):
    """Adagrad: per-coordinate steps scaled by the root of the summed squared gradients.

    ``g = grad (+ wd·p)``, ``clr = lr / (1 + (t-1)·lr_decay)``, ``s += g²``,
    ``p -= clr · g / (sqrt(s) + eps)``; `s` starts at `initial_accumulator_value`.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        lr_decay: learning-rate decay per step.
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: starting value of the sum of squares.
        eps: added to the denominator.
        foreach: accepted for PyTorch compatibility (the update is the same).
        maximize: ascend instead of descend.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.tensor([1.0]))
        >>> opt = ember.optim.Adagrad([w], lr=0.1)
        >>> (w * 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)
        0.9
    """

    run_time_hyper = SCHEDULED  # read at run time by compiled steps: schedules do not recompile

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False) -> None:
        _check_nonnegative(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                           initial_accumulator_value=initial_accumulator_value)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value,
                                      foreach=foreach, maximize=maximize))
        for group in self.param_groups:  # PyTorch creates the state eagerly
            for p in group["params"]:
                self.state[p] = {"step": tensor(0.0, dtype=float64),
                                 "sum": full_like(p, group["initial_accumulator_value"])}

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        step = next_step(state)
        total = state.get("sum")
        if total is None:
            total = full_like(p, group["initial_accumulator_value"])
        total = total + g * g
        state.update(step=step, sum=total)
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        return p - clr * (g / (ew.sqrt(total) + group["eps"]))


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0.0:
            raise ConfigError("optimizer", f"Invalid {name} value: {value}")
