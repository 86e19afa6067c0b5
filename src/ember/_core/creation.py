"""Tensor creation: from data, filled, ranges, identity."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import dtypes
from .device import as_device
from .errors import DTypeError, EmberError, ShapeError
from .primitive import Primitive
from .state import STATE
from .tensor import Tensor, Tracer


def _infer_dtype(data: Any) -> dtypes.DType:
    if isinstance(data, Tensor):
        return data.dtype
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        return dtypes.from_numpy(data.dtype)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise EmberError("tensor", f"cannot make a tensor from this data: {exc}") from None
    if _has_numpy_scalars(data):  # NumPy scalars are typed values, as in PyTorch
        return dtypes.from_numpy(arr.dtype)
    if arr.dtype == np.bool_:
        return dtypes.bool_
    if arr.dtype.kind in "iu":
        return dtypes.int64
    if arr.dtype.kind == "f":
        return dtypes.get_default_dtype()
    if arr.dtype.kind == "c":
        return dtypes.complex_for(dtypes.get_default_dtype())
    raise DTypeError("tensor", f"cannot make a tensor from data of type {type(data).__name__}")


def _has_numpy_scalars(data: Any) -> bool:
    if isinstance(data, np.generic):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_numpy_scalars(d) for d in data)
    return False


def _check_size(size: tuple[int, ...], op: str) -> tuple[int, ...]:
    if any(s < 0 for s in size):
        raise ShapeError(op, f"negative dimension in size {size}")
    return size


def _note_created(t: Tensor) -> Tensor:
    """Tell the active transforms (jit's trace) that `t` holds fresh data made by a creation function:
    nobody else holds it, so a compiled graph may fold operations on it at compile time."""
    traces = STATE.get().traces
    if traces:
        for trace in traces:
            note = getattr(trace, "note_created", None)
            if note is not None:
                note(t)
    return t


def _finish(data: Any, dtype: dtypes.DType, device, requires_grad: bool, fresh: bool = False) -> Tensor:
    dev = as_device(device)
    t = Tensor._make(dev.backend.asarray(data, dtype), dtype, dev)
    if requires_grad:
        t.requires_grad_(True)
    elif fresh:
        _note_created(t)
    return t


def tensor(data: Any, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, scalars, NumPy arrays or tensors).

    Python floats become the default float dtype (float32), ints int64, bools bool; NumPy arrays keep
    their dtype.
    """
    if isinstance(data, Tracer):
        raise EmberError("tensor", "cannot copy a transformed value into a new constant tensor; use the "
                         "value directly", (data,))
    if isinstance(data, Tensor):
        data = data._device.backend.to_numpy(data._data)
    dt = dtypes.as_dtype(dtype) if dtype is not None else _infer_dtype(data)
    try:
        arr = np.array(data, dtype=dt.np, copy=True)
    except (ValueError, TypeError) as exc:
        raise EmberError("tensor", f"cannot convert data to a {dt} tensor: {exc}") from None
    return _finish(arr, dt, device, requires_grad)


def as_tensor(data: Any, dtype=None, device=None) -> Tensor:
    """Like :func:`tensor` but shares memory with NumPy arrays and tensors when no conversion is needed."""
    if isinstance(data, Tensor) and (dtype is None or dtypes.as_dtype(dtype) is data.dtype) and \
            (device is None or as_device(device) == data.device):
        return data
    if isinstance(data, np.ndarray) and device is None:
        dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.from_numpy(data.dtype)
        return Tensor._make(np.asarray(data, dtype=dt.np), dt)
    return tensor(data, dtype, device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with `array`."""
    if not isinstance(array, np.ndarray):
        raise EmberError("from_numpy", f"expected a NumPy array, got {type(array).__name__}")
    return Tensor._make(array, dtypes.from_numpy(array.dtype))


def _dtype_or_default(dtype) -> dtypes.DType:
    return dtypes.as_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()


def _size(size) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    return tuple(int(s) for s in size)


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape `size` filled with `fill_value` (dtype inferred from the value if not given)."""
    dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.scalar_dtype(fill_value)
    dev = as_device(device)
    data = dev.backend.xp.full(_check_size(tuple(size), "full"), fill_value, dtype=dt.np)
    t = Tensor._make(data, dt, dev)
    return t.requires_grad_(True) if requires_grad else _note_created(t)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    return full(_size(size), 0, dtype=_dtype_or_default(dtype), device=device, requires_grad=requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return full(_size(size), 1, dtype=_dtype_or_default(dtype), device=device, requires_grad=requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor."""
    dt = _dtype_or_default(dtype)
    dev = as_device(device)
    t = Tensor._make(dev.backend.empty(_check_size(_size(size), "empty"), dt), dt, dev)
    return t.requires_grad_(True) if requires_grad else t


def _like(x: Tensor, dtype, device):
    dt = dtypes.as_dtype(dtype) if dtype is not None else x.dtype
    return dt, (device if device is not None else x.device)


def _full_like_impl(xp, x, fill_value, dtype):
    return xp.full(x.shape, fill_value, dtype=dtype.np)


def _full_like_batch(values, bdims, fill_value, dtype):
    from .dispatch import bind

    return bind(full_like_p, values[0], fill_value=fill_value, dtype=dtype), bdims[0]


# Only the shape of the input is read: a transform (jit, vmap) sees the dependence on that shape.
full_like_p = Primitive("full_like", _full_like_impl, batch=_full_like_batch, reads=(), nondiff_inputs=(0,))


def full_like(x: Tensor, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor shaped like `x` filled with `fill_value`."""
    dt, dev = _like(x, dtype, device)
    if isinstance(x, Tracer) and device is None:
        from .dispatch import bind

        out = bind(full_like_p, x, fill_value=fill_value, dtype=dt)
        return out.requires_grad_(True) if requires_grad else out
    return full(tuple(x.shape), fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def zeros_like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros shaped like `x`."""
    return full_like(x, 0, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Ones shaped like `x`."""
    return full_like(x, 1, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor shaped like `x`."""
    dt, dev = _like(x, dtype, device)
    return empty(tuple(x.shape), dtype=dt, device=dev, requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from `start` to `end` (exclusive) in steps of `step`; int64 unless a bound is a float."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise EmberError("arange", "step must be nonzero")
    if (end - start) * step < 0:
        raise EmberError("arange", f"upper bound and lower bound inconsistent with step sign "
                         f"(start={start}, end={end}, step={step})")
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dt = dtypes.get_default_dtype() if is_float else dtypes.int64
    else:
        dt = dtypes.as_dtype(dtype)
    n = max(0, math.ceil((end - start) / step))
    data = (start + step * np.arange(n, dtype=np.float64)) if dt.kind >= dtypes._FLOAT else \
        np.arange(start, end, step, dtype=np.int64)
    return _finish(data.astype(dt.np), dt, device, requires_grad, fresh=True)


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from `start` to `end` inclusive."""
    dt = _dtype_or_default(dtype)
    _check_size((int(steps),), "linspace")
    return _finish(np.linspace(start, end, int(steps), dtype=np.float64).astype(dt.np), dt, device,
                   requires_grad, fresh=True)


def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """`steps` values from base**start to base**end, evenly spaced in the exponent."""
    dt = _dtype_or_default(dtype)
    return _finish(np.logspace(start, end, int(steps), base=base, dtype=np.float64).astype(dt.np), dt, device,
                   requires_grad, fresh=True)


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The n×m identity matrix."""
    dt = _dtype_or_default(dtype)
    _check_size((n,) if m is None else (n, m), "eye")
    return _finish(np.eye(n, m, dtype=dt.np), dt, device, requires_grad, fresh=True)
