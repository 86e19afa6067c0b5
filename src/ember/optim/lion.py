"""Lion (evolved sign momentum), from "Symbolic Discovery of Optimization Algorithms"."""
from __future__ import annotations

from typing import Any, Iterable

from .._core.creation import zeros_like
from .._core.primitives import elementwise as ew
from .._core.tensor import Tensor
from .adagrad import _check_nonnegative
from .adamax import _check_betas
from .optimizer import SCHEDULED, Optimizer, next_step


class Lion(Optimizer):
    """Lion: the sign of an interpolated momentum, with decoupled weight decay.

    ``c = β1·m + (1-β1)·g``, ``p -= lr·(sign(c) + wd·p)``, ``m = β2·m + (1-β2)·g``.
    Every coordinate moves by ``lr`` per step, so a learning rate 3-10x smaller than AdamW's is usual.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: interpolation factor of the update and decay of the momentum.
        weight_decay: decoupled weight decay factor.
        maximize: ascend instead of descend.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.tensor([1.0]))
        >>> opt = ember.optim.Lion([w], lr=0.1)
        >>> (w * 2).sum().backward(); opt.step()
        >>> round(w.item(), 4)
        0.9
    """

    run_time_hyper = SCHEDULED  # read at run time by compiled steps: schedules do not recompile

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        _check_nonnegative(lr=lr, weight_decay=weight_decay)
        _check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                                      maximize=maximize))

    def _updates(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        g = -grad if group["maximize"] else grad
        b1, b2 = group["betas"]
        m = state.get("exp_avg", zeros_like(p))
        c = m * b1 + (1 - b1) * g
        state.update(step=next_step(state), exp_avg=m * b2 + (1 - b2) * g)
        return p - group["lr"] * (ew.sign(c) + group["weight_decay"] * p)
