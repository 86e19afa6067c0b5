"""Adadelta, following PyTorch's update exactly."""
from __future__ import annotations

from typing import Any, Iterable

from .._core.creation import zeros_like
from .._core.errors import ConfigError
from .._core.primitives import elementwise as ew
from .._core.tensor import Tensor
from .adagrad import _check_nonnegative
from .optimizer import SCHEDULED, Optimizer, next_step


class Adadelta(Optimizer):
    """Adadelta: steps scaled by the ratio of running RMS of updates and of gradients.

    ``g = grad (+ wd·p)``, ``v = ρ·v + (1-ρ)·g²``, ``Δ = sqrt(u + eps) / sqrt(v + eps) · g``,
    ``u = ρ·u + (1-ρ)·Δ²``, ``p -= lr·Δ``.

    Args:
        params: parameters or parameter groups.
        lr: scale of the update (1.0 is the method as published).
        rho: decay of the running averages.
        eps: added inside both square roots.
        weight_decay: L2 penalty added to the gradient.
        foreach: accepted for PyTorch compatibility.
        maximize: ascend instead of descend.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.tensor([1.0]))
        >>> opt = ember.optim.Adadelta([w])
        >>> (w * 2).sum().backward(); opt.step()
        >>> w.item() < 1.0
        True
    """

    run_time_hyper = SCHEDULED  # read at run time by compiled steps: schedules do not recompile

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach: bool | None = None, *, maximize: bool = False) -> None:
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ConfigError("Adadelta", f"Invalid rho value: {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize))

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        rho, eps = group["rho"], group["eps"]
        square_avg = state.get("square_avg", zeros_like(p)) * rho + (1 - rho) * (g * g)
        acc_delta = state.get("acc_delta", zeros_like(p))
        delta = ew.sqrt(acc_delta + eps) / ew.sqrt(square_avg + eps) * g
        acc_delta = acc_delta * rho + (1 - rho) * (delta * delta)
        state.update(step=next_step(state), square_avg=square_avg, acc_delta=acc_delta)
        return p - group["lr"] * delta
