"""NAdam (Adam with Nesterov momentum), following PyTorch's update exactly."""
from __future__ import annotations

from typing import Any, Iterable

from .._core.creation import zeros_like
from .._core.primitives import elementwise as ew
from .._core.tensor import Tensor
from .adagrad import _check_nonnegative
from .adamax import _check_betas
from .optimizer import SCHEDULED, Optimizer, next_step, weight_decayed


class NAdam(Optimizer):
    """NAdam: Adam with a Nesterov look-ahead on the first moment and a momentum schedule.

    ``μₜ = β1·(1 - 0.96^(t·ψ)/2)`` (ψ = `momentum_decay`), ``Πₜ = μ₁⋯μₜ``,
    ``m = β1·m + (1-β1)·g``, ``v = β2·v + (1-β2)·g²``, ``d = sqrt(v/(1-β2ᵗ)) + eps``,
    ``p -= lr·(1-μₜ)/(1-Πₜ) · g/d + lr·μₜ₊₁/(1-Πₜ·μₜ₊₁) · m/d``.
    Weight decay adds ``wd·p`` to the gradient, or with `decoupled_weight_decay` scales
    ``p *= 1 - lr·wd`` first (NAdamW).

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: decay rates of the two moments.
        eps: added to the denominator.
        weight_decay: weight decay factor.
        momentum_decay: ψ in the momentum schedule.
        decoupled_weight_decay: decay the weights directly, as AdamW does.
        foreach: accepted for PyTorch compatibility.
        maximize: ascend instead of descend.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.tensor([1.0]))
        >>> opt = ember.optim.NAdam([w], lr=0.1)
        >>> (w * 2).sum().backward(); opt.step()
        >>> w.item() < 1.0
        True
    """

    run_time_hyper = SCHEDULED  # read at run time by compiled steps: schedules do not recompile

    def __init__(self, params: Iterable[Any], lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False) -> None:
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, foreach=foreach,
                                      maximize=maximize))

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        p, g = weight_decayed(group, p, grad, group["decoupled_weight_decay"])
        lr = group["lr"]
        b1, b2 = group["betas"]
        step = next_step(state)
        mu = b1 * (1.0 - 0.5 * 0.96 ** (step * group["momentum_decay"]))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"]))
        mu_product = state.get("mu_product", 1.0) * mu
        m = state.get("exp_avg", zeros_like(p))
        m = m + (1 - b1) * (g - m)
        v = state.get("exp_avg_sq", zeros_like(p)) * b2 + (1 - b2) * (g * g)
        state.update(step=step, mu_product=mu_product, exp_avg=m, exp_avg_sq=v)
        denom = ew.sqrt(v / (1 - b2 ** step)) + group["eps"]
        p = p - (lr * (1.0 - mu) / (1.0 - mu_product)) * (g / denom)
        return p - (lr * mu_next / (1.0 - mu_product * mu_next)) * (m / denom)
