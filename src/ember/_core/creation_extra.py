"""More creation functions: coordinate grids (meshgrid) and triangle indices (tril/triu_indices).

``meshgrid`` is a composite of reshape and broadcast_to, so its outputs are differentiable views of
its inputs; the index functions build integer constants.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import dtypes
from .device import as_device
from .errors import DTypeError, EmberError, ShapeError
from .primitives.movement import broadcast_to, reshape
from .tensor import Tensor

__all__ = ["meshgrid", "tril_indices", "triu_indices", "cartesian_prod"]


def meshgrid(*tensors: Tensor | Sequence[Tensor], indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids from 1-d tensors of coordinates, one output per input.

    With ``indexing="ij"`` (matrix indexing) the output shape is ``(len(t0), len(t1), …)``; with
    ``"xy"`` (Cartesian indexing) the first two dimensions are swapped, as in NumPy and PyTorch.
    Each output is a broadcast view of its input, so gradients flow back to the inputs (summed
    over the other dimensions).

    Args:
        tensors: 0-d or 1-d tensors of one dtype and device, given separately or as one sequence.
        indexing: "ij" or "xy".

    Returns:
        A tuple of tensors, all of the grid's shape.

    Example:
        >>> import ember
        >>> ys, xs = ember.meshgrid(ember.tensor([0, 1]), ember.tensor([5, 6, 7]), indexing="ij")
        >>> ys.tolist(), xs.tolist()
        ([[0, 0, 0], [1, 1, 1]], [[5, 6, 7], [5, 6, 7]])
    """
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    _check_grid_inputs(tensors, indexing)
    sizes = [t.numel() for t in tensors]
    order = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        order[0], order[1] = 1, 0  # input i varies along output dimension order[i]
    shape = [0] * len(tensors)
    for i, n in enumerate(sizes):
        shape[order[i]] = n
    outs = []
    for i, t in enumerate(tensors):
        along = [1] * len(tensors)
        along[order[i]] = sizes[i]
        outs.append(broadcast_to(reshape(t, tuple(along)), tuple(shape)))
    return tuple(outs)


def _check_grid_inputs(tensors: tuple, indexing: str) -> None:
    if indexing not in ("ij", "xy"):
        raise EmberError("meshgrid", f"indexing must be 'ij' or 'xy', got {indexing!r}")
    if not tensors:
        raise EmberError("meshgrid", "expected at least one tensor")
    if not all(isinstance(t, Tensor) for t in tensors):
        kinds = ", ".join(type(t).__name__ for t in tensors)
        raise DTypeError("meshgrid", f"expected tensors, got {kinds}")
    if any(t.ndim > 1 for t in tensors):
        raise ShapeError("meshgrid", "expected 0-d or 1-d tensors", tuple(tensors))
    if len({t.dtype for t in tensors}) > 1:
        raise DTypeError("meshgrid", "expected all tensors to have the same dtype", tuple(tensors))
    if len({t.device for t in tensors}) > 1:
        raise EmberError("meshgrid", "expected all tensors on the same device", tuple(tensors))


def _triangle(op: str, keep, row: int, col: int, offset: int, dtype: Any, device: Any) -> Tensor:
    dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.int64
    if dt not in (dtypes.int32, dtypes.int64):
        raise DTypeError(op, f"only int32 and int64 indices are supported, got {dt}")
    row, col, offset = int(row), int(col), int(offset)
    if row < 0 or col < 0:
        raise EmberError(op, f"row and col must be non-negative, got row={row} and col={col}")
    r = np.arange(row)[:, None]
    c = np.arange(col)[None, :]
    rows, cols = np.nonzero(keep(c - r, offset))  # row-major order, as PyTorch lists them
    dev = as_device(device)
    data = dev.backend.asarray(np.stack([rows, cols]).astype(dt.np), dt)
    return Tensor._make(data, dt, dev)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None) -> Tensor:
    """Indices of the lower triangle of a ``row × col`` matrix, as a ``2 × N`` tensor (rows, then cols).

    Element ``(i, j)`` is included when ``j - i <= offset``; the pairs are listed in row-major order.

    Args:
        row: number of rows.
        col: number of columns.
        offset: which diagonal bounds the triangle (0: the main one, > 0 above it, < 0 below it).
        dtype: int64 (default) or int32.
        device: where the result lives.

    Returns:
        An integer tensor of shape ``(2, N)``.

    Example:
        >>> import ember
        >>> ember.tril_indices(3, 3).tolist()
        [[0, 1, 1, 2, 2, 2], [0, 0, 1, 0, 1, 2]]
    """
    return _triangle("tril_indices", np.less_equal, row, col, offset, dtype, device)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None) -> Tensor:
    """Indices of the upper triangle of a ``row × col`` matrix, as a ``2 × N`` tensor (rows, then cols).

    Element ``(i, j)`` is included when ``j - i >= offset``; the pairs are listed in row-major order.

    Args:
        row: number of rows.
        col: number of columns.
        offset: which diagonal bounds the triangle (0: the main one, > 0 above it, < 0 below it).
        dtype: int64 (default) or int32.
        device: where the result lives.

    Returns:
        An integer tensor of shape ``(2, N)``.

    Example:
        >>> import ember
        >>> ember.triu_indices(2, 3, 1).tolist()
        [[0, 0, 1], [1, 2, 2]]
    """
    return _triangle("triu_indices", np.greater_equal, row, col, offset, dtype, device)


def cartesian_prod(*tensors: Tensor) -> Tensor:
    """Every combination of one element from each 1-D tensor, as rows of an (N, len(tensors)) tensor
    (a 1-D tensor itself when given one), in itertools.product's order.

    Example:
        >>> import ember
        >>> ember.cartesian_prod(ember.tensor([1, 2]), ember.tensor([3, 4])).tolist()
        [[1, 3], [1, 4], [2, 3], [2, 4]]
    """
    from .primitives.movement import stack

    if any(t.ndim != 1 for t in tensors):
        shapes = [tuple(t.shape) for t in tensors]
        raise ShapeError("cartesian_prod", f"expected 1-D tensors, got shapes {shapes}", tensors)
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([reshape(g, (-1,)) for g in grids], 1)
