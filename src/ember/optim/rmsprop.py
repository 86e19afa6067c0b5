"""RMSprop (with momentum and the centred variant), following PyTorch's update exactly."""
from __future__ import annotations

from typing import Any, Iterable

from .._core.creation import zeros_like
from .._core.primitives import elementwise as ew
from .._core.tensor import Tensor
from .adagrad import _check_nonnegative
from .optimizer import SCHEDULED, Optimizer, next_step


class RMSprop(Optimizer):
    """RMSprop: steps divided by a running root mean square of the gradients.

    ``g = grad (+ wd·p)``, ``v = α·v + (1-α)·g²``; centred: ``ḡ = α·ḡ + (1-α)·g`` and
    ``d = sqrt(v - ḡ²) + eps``, else ``d = sqrt(v) + eps``; with momentum ``b = μ·b + g/d`` and
    ``p -= lr·b``, else ``p -= lr·g/d``.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        alpha: decay of the running average of squared gradients.
        eps: added to the denominator.
        weight_decay: L2 penalty added to the gradient.
        momentum: momentum factor.
        centered: normalise by an estimate of the gradient's variance instead of its second moment.
        foreach: accepted for PyTorch compatibility.
        maximize: ascend instead of descend.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.tensor([1.0]))
        >>> opt = ember.optim.RMSprop([w], lr=0.01)
        >>> (w * 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)
        0.9
    """

    run_time_hyper = SCHEDULED  # read at run time by compiled steps: schedules do not recompile

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 foreach: bool | None = None, maximize: bool = False) -> None:
        _check_nonnegative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, foreach=foreach,
                                      maximize=maximize))

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        alpha = group["alpha"]
        square_avg = state.get("square_avg", zeros_like(p)) * alpha + (1 - alpha) * (g * g)
        state.update(step=next_step(state), square_avg=square_avg)
        if group["centered"]:
            grad_avg = state.get("grad_avg", zeros_like(p))
            grad_avg = grad_avg + (1 - alpha) * (g - grad_avg)
            state["grad_avg"] = grad_avg
            avg = ew.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            avg = ew.sqrt(square_avg) + group["eps"]
        if group["momentum"]:  # (never negative)
            buf = state.get("momentum_buffer", zeros_like(p)) * group["momentum"] + g / avg
            state["momentum_buffer"] = buf
            return p - group["lr"] * buf
        return p - group["lr"] * (g / avg)
