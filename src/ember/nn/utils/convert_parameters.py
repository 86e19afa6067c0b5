"""Flatten parameters into one vector and back (PyTorch's ``parameters_to_vector``)."""
from __future__ import annotations

from typing import Iterable

from ..._core.autograd import no_grad
from ..._core.errors import DTypeError, ShapeError
from ..._core.primitives.movement import cat
from ..._core.tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """Concatenate the flattened parameters into one 1-d tensor (differentiable).

    Args:
        parameters: an iterable of tensors.

    Returns:
        A 1-d tensor with ``sum(p.numel())`` entries, in iteration order.

    Example:
        >>> import ember
        >>> m = ember.nn.Linear(2, 3)
        >>> ember.nn.utils.parameters_to_vector(m.parameters()).shape
        (9,)
    """
    params = list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise DTypeError("parameters_to_vector", f"expected tensors, got {type(p).__name__}", (p,))
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-d `vec` into the parameters, in place.

    Args:
        vec: a 1-d tensor with exactly ``sum(p.numel())`` entries.
        parameters: the tensors to overwrite, in the order of :func:`parameters_to_vector`.

    Example:
        >>> import ember
        >>> m = ember.nn.Linear(2, 1)
        >>> ember.nn.utils.vector_to_parameters(ember.arange(3.0), m.parameters())
        >>> m.weight.tolist(), m.bias.tolist()
        ([[0.0, 1.0]], [2.0])
    """
    if not isinstance(vec, Tensor):
        raise DTypeError("vector_to_parameters", f"expected vec to be a Tensor, but got {type(vec).__name__}",
                         (vec,))
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ShapeError("vector_to_parameters", f"expected a 1-d vector of {total} entries (the parameters' "
                         f"total size), got shape {tuple(vec.shape)}", (vec, *params))
    offset = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec[offset:offset + n].reshape(p.shape))
            offset += n
