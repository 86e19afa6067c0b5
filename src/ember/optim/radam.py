"""RAdam (rectified Adam), following PyTorch's update exactly."""
from __future__ import annotations

from typing import Any, Iterable

from .._core.creation import zeros_like
from .._core.primitives import elementwise as ew
from .._core.tensor import Tensor
from .adagrad import _check_nonnegative
from .adamax import _check_betas
from .optimizer import SCHEDULED, Optimizer, next_step, weight_decayed


class RAdam(Optimizer):
    """RAdam: Adam whose adaptive step is switched on once the variance estimate is reliable.

    ``m = β1·m + (1-β1)·g``, ``v = β2·v + (1-β2)·g²``, ``m̂ = m/(1-β1ᵗ)``,
    ``ρ∞ = 2/(1-β2) - 1``, ``ρₜ = ρ∞ - 2t·β2ᵗ/(1-β2ᵗ)``; if ``ρₜ > 5``:
    ``r = sqrt((ρₜ-4)(ρₜ-2)ρ∞ / ((ρ∞-4)(ρ∞-2)ρₜ))`` and ``p -= lr·m̂·r·sqrt(1-β2ᵗ)/(sqrt(v)+eps)``,
    else ``p -= lr·m̂``. Weight decay as in :class:`NAdam`.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: decay rates of the two moments.
        eps: added to the denominator.
        weight_decay: weight decay factor.
        decoupled_weight_decay: decay the weights directly, as AdamW does.
        foreach: accepted for PyTorch compatibility.
        maximize: ascend instead of descend.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.tensor([1.0]))
        >>> opt = ember.optim.RAdam([w], lr=0.1)
        >>> (w * 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)
        0.8
    """

    run_time_hyper = SCHEDULED  # read at run time by compiled steps: schedules do not recompile

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False) -> None:
        _check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, foreach=foreach,
                                      maximize=maximize))

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        p, g = weight_decayed(group, p, grad, group["decoupled_weight_decay"])
        lr = group["lr"]
        b1, b2 = group["betas"]
        step = next_step(state)
        m = state.get("exp_avg", zeros_like(p))
        m = m + (1 - b1) * (g - m)
        v = state.get("exp_avg_sq", zeros_like(p)) * b2 + (1 - b2) * (g * g)
        state.update(step=step, exp_avg=m, exp_avg_sq=v)
        bias2 = 1 - b2 ** step
        m_hat = m / (1 - b1 ** step)
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * step * (b2 ** step) / bias2
        # both updates, selected by a tensor condition (no Python branch on the step: a compiled step
        # then serves every step); the rectified one computed from rho_t >= 5 so it stays finite
        r = ew.maximum(rho_t, 5.0)
        rect = ew.sqrt((r - 4) * (r - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * r))
        adaptive = ew.sqrt(bias2) / (ew.sqrt(v) + group["eps"])
        return p - ew.where(rho_t > 5.0, m_hat * lr * adaptive * rect, m_hat * lr)
