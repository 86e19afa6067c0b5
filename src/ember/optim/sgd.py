"""Stochastic gradient descent with momentum, dampening, Nesterov, weight decay and maximize."""
from __future__ import annotations

from typing import Any, Iterable

from .._core.errors import ConfigError
from .._core.tensor import Tensor
from .adagrad import _check_nonnegative
from .optimizer import SCHEDULED, Optimizer


class SGD(Optimizer):
    """SGD as in PyTorch.

    ``g = grad (+ weight_decay·p)``; with momentum ``b = momentum·b + (1 - dampening)·g`` (``b = g`` on
    the first step) and ``g = g + momentum·b`` (Nesterov) or ``g = b``; then ``p -= lr·g`` (``+=`` with
    `maximize`).

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.tensor([1.0]))
        >>> opt = ember.optim.SGD([w], lr=0.1)
        >>> (w * 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)
        0.8
    """

    run_time_hyper = SCHEDULED  # read at run time by compiled steps: schedules do not recompile

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        _check_nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ConfigError("SGD", "Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = g.clone()
            elif group["dampening"]:
                buf = buf * mu + (1 - group["dampening"]) * g
            else:  # the common case: no multiply by 1 (one full pass over the parameter saved)
                buf = buf * mu + g
            state["momentum_buffer"] = buf
            g = g + mu * buf if group["nesterov"] else buf
        return p - group["lr"] * g
