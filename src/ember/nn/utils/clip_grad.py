"""Gradient clipping by total norm or by value (PyTorch's ``clip_grad_norm_`` / ``clip_grad_value_``)."""
from __future__ import annotations

import math
from typing import Iterable

from ..._core.autograd import no_grad
from ..._core.creation import tensor
from ..._core.errors import EmberError, TraceError
from ..._core.primitives import elementwise as ew
from ..._core.primitives.movement import stack
from ..._core.primitives.reduce import norm
from ..._core.tensor import Tensor, Tracer

__all__ = ["clip_grad_norm_", "clip_grad_value_", "NonFiniteNormError"]


class NonFiniteNormError(EmberError, RuntimeError):
    """The total gradient norm is NaN or infinite and ``error_if_nonfinite`` was set."""


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the gradients in place so that their joint `norm_type`-norm is at most `max_norm`.

    The total norm is the norm of the vector of per-gradient norms (the norm of all gradients
    concatenated); every gradient is multiplied by ``min(1, max_norm / (total + 1e-6))``.

    Args:
        parameters: a tensor or an iterable of tensors whose ``.grad`` is clipped (None grads are skipped).
        max_norm: the largest allowed total norm.
        norm_type: the p of the p-norm; ``inf`` for the largest absolute entry.
        error_if_nonfinite: raise :class:`NonFiniteNormError` when the total norm is NaN or infinite.
        foreach: accepted for PyTorch compatibility.

    Returns:
        The total norm before clipping (a 0-d tensor).

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.zeros(2))
        >>> w.grad = ember.tensor([3.0, 4.0])
        >>> float(ember.nn.utils.clip_grad_norm_([w], max_norm=1.0))
        5.0
        >>> [round(x, 4) for x in w.grad.tolist()]
        [0.6, 0.8]
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return tensor(0.0)
    with no_grad():
        total = norm(stack([norm(g.detach(), norm_type) for g in grads]), norm_type)
        if error_if_nonfinite and isinstance(total, Tracer):
            raise TraceError("clip_grad_norm_", "error_if_nonfinite=True reads the total norm as a Python "
                             "number, which a traced function (ember.jit, vmap) does not have; pass "
                             "error_if_nonfinite=False and check the returned norm outside the traced "
                             "function", (total,))
        if error_if_nonfinite and not math.isfinite(value := float(total)):
            raise NonFiniteNormError("clip_grad_norm_", f"the total norm of order {norm_type} of the "
                                     f"gradients is {value}, so they cannot be clipped; set "
                                     "error_if_nonfinite=False to clip anyway", tuple(grads))
        scale = ew.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.copy_(g * scale)
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamp every gradient entry in place to ``[-clip_value, clip_value]``.

    Args:
        parameters: a tensor or an iterable of tensors whose ``.grad`` is clipped.
        clip_value: the largest allowed absolute value.
        foreach: accepted for PyTorch compatibility.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.zeros(3))
        >>> w.grad = ember.tensor([-2.0, 0.5, 3.0])
        >>> ember.nn.utils.clip_grad_value_([w], 1.0)
        >>> w.grad.tolist()
        [-1.0, 0.5, 1.0]
    """
    clip_value = float(clip_value)
    with no_grad():
        for g in _grads(parameters):
            g.copy_(ew.clamp(g, -clip_value, clip_value))
