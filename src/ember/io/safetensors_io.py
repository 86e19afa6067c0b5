"""State dicts as plain safetensors files, readable and writable by PyTorch's ``safetensors.torch``.

A file holds one entry per state-dict key, with the tensor's dtype and shape, and nothing else besides
optional string metadata: the same layout ``safetensors.torch.save_file(module.state_dict(), path)``
writes, so weights move between Ember and PyTorch modules with matching parameter names in both
directions.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np

from .._core import dtypes
from .._core.device import as_device
from .._core.errors import DeviceError
from .._core.tensor import Tensor, Tracer
from ._files import (
    SAFETENSORS_DTYPES,
    PathOrFile,
    SerializationError,
    c_contiguous,
    read_safetensors,
    target_name,
    write_safetensors,
)

__all__ = ["save_file", "load_file", "save_model", "load_model"]

_BY_NP = {d.np: d for d in dtypes.ALL}


def _array_for(key: Any, value: Any, name: str) -> np.ndarray:
    if not isinstance(key, str):
        raise SerializationError("save_file", f"{name}: keys must be strings, got {type(key).__name__} "
                                 f"{key!r}")
    if isinstance(value, Tracer) or not isinstance(value, (Tensor, np.ndarray)):
        raise SerializationError("save_file", f"{name}: entry {key!r} is a {type(value).__name__}, not a "
                                 "tensor")
    arr = value._device.backend.to_numpy(value._data) if isinstance(value, Tensor) else value
    if arr.dtype.name not in SAFETENSORS_DTYPES:  # complex128 is the one Ember dtype missing there
        raise SerializationError("save_file", f"{name}: entry {key!r} has dtype {arr.dtype.name}, which "
                                 "safetensors cannot store (use complex64, or ember.save)")
    return c_contiguous(arr)


def save_file(state_dict: dict[str, Tensor], path: PathOrFile,
              metadata: dict[str, str] | None = None) -> None:
    """Save a dict of named tensors as a safetensors file (PyTorch's ``safetensors.torch`` reads it).

    Tensors are written contiguously, each under its own key (tensors that share memory are written
    once per key, as safetensors has no aliasing). Writing to a path is atomic.

    Args:
        state_dict: string keys to tensors, e.g. ``module.state_dict()``.
        path: the file to write, or a binary file object.
        metadata: optional string-to-string metadata stored in the header.

    Raises:
        SerializationError: a key is not a string, a value is not a tensor, a dtype safetensors lacks
            (complex128), or metadata that is not string-to-string.

    Example:
        >>> import ember, os, tempfile
        >>> model = ember.nn.Linear(3, 2)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     ember.io.save_file(model.state_dict(), os.path.join(d, "model.safetensors"))
        ...     weights = ember.io.load_file(os.path.join(d, "model.safetensors"))
        >>> sorted(weights), tuple(weights["weight"].shape)
        (['bias', 'weight'], (2, 3))
    """
    name = target_name(path)
    if not isinstance(state_dict, dict):
        raise SerializationError("save_file", f"{name}: expected a dict of tensors, got "
                                 f"{type(state_dict).__name__}")
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise SerializationError("save_file", f"{name}: metadata must be a dict of strings to strings")
    if "__metadata__" in state_dict:
        raise SerializationError("save_file", f"{name}: '__metadata__' is reserved by safetensors")
    arrays = {key: _array_for(key, value, name) for key, value in state_dict.items()}
    write_safetensors(path, arrays, metadata, "save_file")


def load_file(path: PathOrFile, device: Any = None) -> "OrderedDict[str, Tensor]":
    """Load every tensor of a safetensors file (written by Ember, PyTorch or any other library).

    Args:
        path: the file, or a binary file object.
        device: where to put the tensors (default: the CPU).

    Returns:
        An OrderedDict from key to tensor, in the file's key order.

    Raises:
        SerializationError: the file is truncated, corrupt or not safetensors, or holds a dtype Ember
            does not have (unsigned integers wider than 8 bits, float8).

    Example:
        >>> import ember, io
        >>> buf = io.BytesIO()
        >>> ember.io.save_file({"x": ember.arange(3)}, buf)
        >>> _ = buf.seek(0)
        >>> ember.io.load_file(buf)["x"].tolist()
        [0, 1, 2]
    """
    name = target_name(path)
    try:
        dev = as_device(device)
    except DeviceError as err:
        raise SerializationError("load_file", f"{name}: {err.detail}") from None
    _, arrays = read_safetensors(path, "load_file")
    out: OrderedDict[str, Tensor] = OrderedDict()
    for key, arr in arrays.items():
        dt = _BY_NP.get(arr.dtype)
        if dt is None:
            raise SerializationError("load_file", f"{name}: entry {key!r} has dtype {arr.dtype}, which Ember "
                                     "does not have")
        out[key] = Tensor._make(dev.backend.asarray(arr, dt), dt, dev)
    return out


def save_model(model: Any, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Save ``model.state_dict()`` with :func:`save_file`.

    Example:
        >>> import ember, os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     ember.io.save_model(ember.nn.Linear(2, 2), os.path.join(d, "m.safetensors"))
    """
    save_file(model.state_dict(), path, metadata)


def load_model(model: Any, path: str | os.PathLike, strict: bool = True) -> Any:
    """Load a safetensors file into `model` in place with ``model.load_state_dict``.

    Args:
        model: an ``ember.nn.Module``.
        path: the file.
        strict: require the keys to match exactly (mismatches raise ``nn.StateDictError``).

    Returns:
        The missing and unexpected keys, as ``load_state_dict`` returns them.

    Example:
        >>> import ember, os, tempfile
        >>> a, b = ember.nn.Linear(2, 2), ember.nn.Linear(2, 2)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     ember.io.save_model(a, os.path.join(d, "m.safetensors"))
        ...     _ = ember.io.load_model(b, os.path.join(d, "m.safetensors"))
        >>> a.weight.tolist() == b.weight.tolist()
        True
    """
    return model.load_state_dict(load_file(path), strict=strict)
