"""Adamax (Adam with the infinity norm), following PyTorch's update exactly."""
from __future__ import annotations

from typing import Any, Iterable

from .._core.creation import zeros_like
from .._core.errors import ConfigError
from .._core.primitives import elementwise as ew
from .._core.tensor import Tensor
from .adagrad import _check_nonnegative
from .optimizer import SCHEDULED, Optimizer, next_step


class Adamax(Optimizer):
    """Adamax: Adam whose second moment is replaced by a decaying infinity norm.

    ``g = grad (+ wd·p)``, ``m = β1·m + (1-β1)·g``, ``u = max(β2·u, |g| + eps)``,
    ``p -= lr/(1-β1ᵗ) · m/u``.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: decay rates of the first moment and of the infinity norm.
        eps: added to ``|g|``.
        weight_decay: L2 penalty added to the gradient.
        foreach: accepted for PyTorch compatibility.
        maximize: ascend instead of descend.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.tensor([1.0]))
        >>> opt = ember.optim.Adamax([w], lr=0.1)
        >>> (w * 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)
        0.9
    """

    run_time_hyper = SCHEDULED  # read at run time by compiled steps: schedules do not recompile

    def __init__(self, params: Iterable[Any], lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, foreach: bool | None = None, *,
                 maximize: bool = False) -> None:
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize))

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        b1, b2 = group["betas"]
        step = next_step(state)
        m = state.get("exp_avg", zeros_like(p))
        m = m + (1 - b1) * (g - m)
        u = ew.maximum(state.get("exp_inf", zeros_like(p)) * b2, ew.abs(g) + group["eps"])
        state.update(step=step, exp_avg=m, exp_inf=u)
        return p - (group["lr"] / (1 - b1 ** step)) * (m / u)


def _check_betas(betas: tuple[float, float]) -> None:
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ConfigError("optimizer", f"Invalid beta parameter at index {i}: {beta}")
