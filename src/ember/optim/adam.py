"""Adam and AdamW (with AMSGrad), following PyTorch's update exactly."""
from __future__ import annotations

from typing import Any, Iterable

from .._core.creation import tensor, zeros_like
from .._core.dtypes import float64
from .._core.primitives import elementwise as ew
from .._core.tensor import Tensor
from .adagrad import _check_nonnegative
from .adamax import _check_betas
from .optimizer import SCHEDULED, Optimizer, weight_decayed


class Adam(Optimizer):
    """Adam: moment estimates with bias correction; `weight_decay` adds ``wd·p`` to the gradient.

    ``m = β1·m + (1-β1)·g``, ``v = β2·v + (1-β2)·g²``,
    ``p -= lr/(1-β1ᵗ) · m / (sqrt(v)/sqrt(1-β2ᵗ) + eps)`` (with `amsgrad`, v is its running maximum).
    """

    decoupled = False

    run_time_hyper = SCHEDULED  # read at run time by compiled steps: schedules do not recompile

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        p, g = weight_decayed(group, p, grad, self.decoupled)
        lr = group["lr"]
        b1, b2 = group["betas"]
        # The step count is a tensor (as in PyTorch), so a compiled step reads it instead of baking it in.
        step = state.get("step")
        step = tensor(1.0, dtype=float64) if step is None else step + 1
        m = state.get("exp_avg", None)
        v = state.get("exp_avg_sq", None)
        m = (1 - b1) * g if m is None else m * b1 + (1 - b1) * g
        v = (1 - b2) * g * g if v is None else v * b2 + (1 - b2) * g * g
        state.update(step=step, exp_avg=m, exp_avg_sq=v)
        if group["amsgrad"]:
            vmax = state.get("max_exp_avg_sq", zeros_like(v))
            vmax = ew.maximum(vmax, v)
            state["max_exp_avg_sq"] = vmax
            v = vmax
        bias1 = 1 - b1 ** step
        bias2_sqrt = ew.sqrt(1 - b2 ** step)
        denom = ew.sqrt(v) / bias2_sqrt + group["eps"]
        return p - (lr / bias1) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr·wd`` before the Adam update (default wd 0.01)."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
