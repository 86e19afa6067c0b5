"""Collation: turning a list of samples into one batch, following nested containers."""
from __future__ import annotations

import collections.abc as abc
import numbers
from typing import Any, Sequence

import numpy as np

from .._core import dtypes
from .._core.creation import from_numpy, tensor
from .._core.primitives.movement import stack
from .._core.tensor import Tensor
from .errors import DataError

__all__ = ["default_collate", "default_convert"]


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _rebuild(like: Any, items: Sequence[Any]) -> Any:
    """A container of the type of `like` holding `items` (namedtuples and tuples keep their type)."""
    if _is_namedtuple(like):
        return type(like)(*items)
    if isinstance(like, (tuple, list)):
        try:
            return type(like)(items)
        except TypeError:  # a sequence type whose constructor takes other arguments
            return list(items)
    return list(items)


def _stack_arrays(batch: Sequence[np.ndarray]) -> Tensor:
    if batch[0].dtype.kind in "USO":
        raise DataError("default_collate", f"cannot batch NumPy arrays of dtype {batch[0].dtype}")
    shapes = {a.shape for a in batch}
    if len(shapes) != 1:
        raise DataError("default_collate", f"cannot stack NumPy arrays of different shapes {sorted(shapes)}")
    return from_numpy(np.stack(batch))


def _is_plain_host(t: Any) -> bool:
    return type(t) is Tensor and not t.requires_grad and t.device.type == "cpu"


def _stack_tensors(batch: Sequence[Tensor]) -> Tensor:
    shapes = {t.shape for t in batch}
    if len(shapes) != 1:
        raise DataError("default_collate", f"cannot stack tensors of different shapes {sorted(shapes)}",
                        tuple(batch[:2]))
    if all(_is_plain_host(t) for t in batch):  # nothing to record: one NumPy stack, not one op per sample
        return from_numpy(np.stack([t.numpy() for t in batch]))
    return stack(list(batch))


def _collate_mapping(batch: Sequence[abc.Mapping]) -> Any:
    out = {key: default_collate([d[key] for d in batch]) for key in batch[0]}
    try:
        return type(batch[0])(out)
    except TypeError:
        return out


def _collate_sequence(batch: Sequence[Sequence]) -> Any:
    size = len(batch[0])
    if any(len(s) != size for s in batch):
        raise DataError("default_collate", "each element in list of batch should be of equal size")
    return _rebuild(batch[0], [default_collate(list(column)) for column in zip(*batch)])


def default_collate(batch: Sequence[Any]) -> Any:
    """Combine a list of samples into a batch, as PyTorch's ``default_collate``.

    Element type -> batch: ember tensor -> tensors stacked on a new dim 0; NumPy array -> a tensor
    of the stacked arrays (same dtype); Python float -> float64 tensor; int -> int64 tensor;
    bool -> bool tensor; NumPy scalar -> tensor of its dtype; str/bytes -> the list unchanged;
    mapping -> mapping of collated values per key; namedtuple/tuple/list -> the same kind of
    container of collated columns (samples must have equal lengths).

    Args:
        batch: the samples.

    Returns:
        The batch.

    Example:
        >>> b = default_collate([{"x": [1.0, 2.0], "y": 0}, {"x": [3.0, 4.0], "y": 1}])
        >>> [t.tolist() for t in b["x"]], b["y"].tolist()
        ([[1.0, 3.0], [2.0, 4.0]], [0, 1])
    """
    if len(batch) == 0:
        raise DataError("default_collate", "cannot collate an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        return _stack_arrays(batch)
    if isinstance(elem, np.generic):
        return from_numpy(np.asarray(batch, dtype=elem.dtype))
    if isinstance(elem, bool):
        return tensor(list(batch), dtype=dtypes.bool_)
    if isinstance(elem, numbers.Integral):
        return tensor(list(batch), dtype=dtypes.int64)
    if isinstance(elem, numbers.Real):
        return tensor(list(batch), dtype=dtypes.float64)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, abc.Mapping):
        return _collate_mapping(batch)
    if isinstance(elem, abc.Sequence):
        return _collate_sequence(batch)
    raise DataError("default_collate", f"batch must contain tensors, NumPy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def default_convert(data: Any) -> Any:
    """Convert NumPy arrays (and NumPy scalars) inside nested containers to ember tensors.

    Used when automatic batching is off (``batch_size=None``); other values pass unchanged.

    Example:
        >>> import numpy as np
        >>> default_convert({"a": np.zeros(2), "b": 1})["a"].shape
        (2,)
    """
    if isinstance(data, np.ndarray) and data.dtype.kind not in "USO":
        return from_numpy(data)
    if isinstance(data, np.generic) and data.dtype.kind not in "USO":
        return from_numpy(np.asarray(data))
    if isinstance(data, abc.Mapping):
        out = {k: default_convert(v) for k, v in data.items()}
        try:
            return type(data)(out)
        except TypeError:
            return out
    if isinstance(data, (tuple, list)):
        return _rebuild(data, [default_convert(d) for d in data])
    return data
