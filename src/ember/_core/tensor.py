"""Tensor: a backend array with a dtype, a device and autograd metadata.

Operations are attached as methods by ``ember._core.methods``; this module holds only the data model
(construction, properties, conversion) so that it stays importable from every layer below the ops.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes
from .device import CPU_DEVICE, Device
from .errors import AutogradError, DTypeError, TraceError
from .state import STATE


class VersionCounter:
    """Shared by a tensor and its views; bumped by every in-place write."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


# The epoch of the innermost functional reverse-mode transform running (``ember.func.grad``, ``vjp``),
# 0 outside them: a tensor made inside one records it, so an in-place write can tell a tensor the
# transform captured from one it made (see ``autograd.grad_level``).
GRAD_EPOCH = [0]


def born(t: "Tensor") -> int:
    """The epoch of the functional reverse-mode transform that made `t`, 0 if made outside all."""
    return getattr(t, "_born", 0)


class Tensor:
    """A multi-dimensional array with autograd support (PyTorch-style).

    Create tensors with :func:`ember.tensor`, :func:`ember.zeros`, etc. Set ``requires_grad`` on a leaf
    to have :meth:`backward` fill its ``.grad``.

    Example:
        >>> import ember
        >>> x = ember.tensor([1.0, 2.0], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad.tolist()
        [2.0, 4.0]
    """

    __slots__ = ("_data", "_dtype", "_device", "_requires_grad", "_node", "_grad", "_vc", "_hooks",
                 "_base", "_base_node", "_born", "__weakref__")
    __array_priority__ = 1000  # NumPy defers to our reflected operators
    _data: Any  # the backend array (None for tracers)
    _dtype: dtypes.DType
    _device: Device
    _requires_grad: bool
    _node: Any  # the tape node that produced this tensor, None for leaves
    _grad: Any
    _vc: "VersionCounter | None"
    _hooks: "list | None"
    _base: tuple | None  # views: (aliased tensor, view primitive, attrs); None otherwise
    _born: int  # set only on tensors made inside a functional reverse-mode transform (see `born`)
    _base_node: Any  # views: the base's autograd node when the view was made (see dispatch.refresh_view)

    @classmethod
    def _make(cls, data: Any, dtype: dtypes.DType, device: Device = CPU_DEVICE) -> "Tensor":
        t = object.__new__(cls)
        t._data = data
        t._dtype = dtype
        t._device = device
        t._requires_grad = False
        t._node = None
        t._grad = None
        t._vc = None
        t._hooks = None
        t._base = None
        epoch = GRAD_EPOCH[0]
        if epoch:  # made inside a functional reverse-mode transform (unset outside: see `born`)
            t._born = epoch
        return t

    # -- metadata ---------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each dimension, as a tuple (PyTorch's ``torch.Size`` is a tuple too)."""
        return self._data.shape

    @property
    def dtype(self) -> dtypes.DType:
        """The element type."""
        return self._dtype

    @property
    def device(self) -> Device:
        """The device holding the data."""
        return self._device

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    def dim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    def size(self, dim: int | None = None):
        """The shape, or the size of dimension `dim`."""
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        """Number of elements."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    def element_size(self) -> int:
        """Bytes per element."""
        return self._dtype.itemsize

    @property
    def is_floating_point(self):
        return self._dtype.is_floating_point

    def is_complex(self) -> bool:
        """True for complex dtypes."""
        return self._dtype.is_complex

    @property
    def _version(self) -> int:
        return 0 if self._vc is None else self._vc.value

    def _version_counter(self) -> VersionCounter:
        if self._vc is None:
            self._vc = VersionCounter()
        return self._vc

    def _bump_version(self) -> None:
        self._version_counter().value += 1

    # -- autograd metadata --------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        """Whether operations on this tensor are recorded for differentiation."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, value: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place (leaves only) and return self."""
        if not value and self._node is not None:
            raise AutogradError("requires_grad_", "cannot turn off requires_grad of a non-leaf tensor; "
                                "use .detach()", (self,))
        if value and not (self._dtype.is_floating_point or self._dtype.is_complex):
            raise DTypeError("requires_grad_", f"only floating point and complex tensors can require "
                             f"gradients, got {self._dtype}", (self,))
        if isinstance(self, Tracer) and hasattr(self._trace, "note_requires_grad"):
            self._trace.note_requires_grad(self, bool(value))  # (an argument of a compiled function)
        self._requires_grad = bool(value)
        return self

    @property
    def grad(self):
        """The gradient accumulated by :meth:`backward` (None until then)."""
        if STATE.get().traces:
            from .effects import note_grad_read

            note_grad_read(self)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if STATE.get().traces:
            from .effects import note_grad

            note_grad(self)
        self._grad = value

    @property
    def grad_fn(self):
        """The autograd node that created this tensor (None for leaves)."""
        return self._node

    @property
    def is_leaf(self) -> bool:
        """True if this tensor was not produced by a recorded operation."""
        return self._node is None

    # -- conversion ---------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shares memory on the CPU). Fails on tensors that require grad."""
        if self._requires_grad:
            raise AutogradError("numpy", "can't call numpy() on a tensor that requires grad; "
                                "use tensor.detach().numpy()", (self,))
        return self._device.backend.to_numpy(self._data)

    def __array__(self, dtype=None, copy=None):
        arr = self._device.backend.to_numpy(self._data)
        return arr if dtype is None else arr.astype(dtype)

    def tolist(self):
        """The data as (nested) Python lists of Python scalars."""
        return self._device.backend.to_numpy(self._data).tolist()

    def item(self):
        """The value of a one-element tensor as a Python scalar."""
        if self.numel() != 1:
            raise TraceError("item", f"only one-element tensors can be converted to Python scalars, "
                             f"got shape {tuple(self.shape)}", (self,))
        return self._device.backend.to_numpy(self._data).reshape(()).item()

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise TraceError("bool", f"the truth value of a tensor with {self.numel()} elements is "
                             "ambiguous; use .any() or .all()", (self,))
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._dtype.kind not in (dtypes._INT, dtypes._BOOL):
            raise DTypeError("__index__", f"only integer tensors can be used as an index, got {self._dtype}",
                             (self,))
        return int(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self._device.backend.to_numpy(self._data)), separator=", ",
                               prefix="tensor(", threshold=200, precision=4)
        extras = []
        if self._dtype not in (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool_):
            extras.append(f"dtype={self._dtype}")
        if self._device.type != "cpu":
            extras.append(f"device='{self._device}'")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.name}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"


class Tracer(Tensor):
    """A tensor that belongs to an active transform (vmap, jvp, jit tracing).

    Subclasses hold the transform's payload and report the *logical* shape, dtype and device.
    """

    __slots__ = ("_trace",)
    _trace: Any

    @property
    def level(self) -> int:
        return self._trace.level

    def _concrete(self) -> Tensor:
        raise TraceError("tracer", "this value depends on a transformed input and has no concrete value "
                         "here; use ember.cond / ember.while_loop for value-dependent control flow", (self,))

    def numpy(self):
        return self._concrete().numpy()

    def tolist(self):
        return self._concrete().tolist()

    def item(self):
        return self._concrete().item()

    def __array__(self, dtype=None, copy=None):
        return self._concrete().__array__(dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={tuple(self.shape)}, dtype={self.dtype}, level={self.level})"
