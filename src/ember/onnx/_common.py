"""What every ONNX op implementation shares: node attributes, errors, static values, dtype codes."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._core import dtypes
from .._core.errors import EmberError, IndexingError, TraceError
from .._core.tensor import Tensor, Tracer


class OnnxError(EmberError):
    """An ONNX model that cannot be read or run: a malformed graph, a missing input, a bad attribute."""


class UnsupportedOperatorError(OnnxError, NotImplementedError):
    """The model uses operators (or attribute values) that the importer does not implement."""


class MissingDependencyError(OnnxError, ImportError):
    """The optional ``onnx`` package, which parses model files, is not installed."""


class Attrs(dict):
    """A node's attributes as Python values, plus what the op rule needs to know about the node.

    Attributes:
        op_type: the ONNX operator name, e.g. ``"Conv"``.
        name: the node's name in the graph (may be empty).
        opset: the version of the default-domain operator set the model imports.
        n_outputs: how many outputs the node declares (Split needs it; optional outputs may be skipped).
    """

    def __init__(self, values: dict, op_type: str, name: str = "", opset: int = 21, n_outputs: int = 1):
        super().__init__(values)
        self.op_type = op_type
        self.name = name
        self.opset = opset
        self.n_outputs = n_outputs

    @property
    def where(self) -> str:
        """``"Conv"`` or ``"Conv (node 'conv1')"``: how error messages name the node."""
        return f"onnx {self.op_type}" + (f" (node {self.name!r})" if self.name else "")

    def error(self, detail: str, operands: tuple = (), cls: type = OnnxError) -> EmberError:
        """An error of class `cls` naming this node."""
        return cls(self.where, detail, operands)


def opt(inputs: Sequence, i: int) -> Any:
    """Input `i`, or None when it is absent (not given, or given as the empty name)."""
    return inputs[i] if i < len(inputs) else None


def static(x: Tensor, attrs: Attrs, what: str) -> np.ndarray:
    """The value of an input that decides shapes (a shape, axes, pads…), as a NumPy array.

    Such inputs come from initializers, Constant nodes or Shape arithmetic, so they are concrete even
    under ``ember.jit``; one computed from a traced graph input cannot decide shapes and is refused.
    """
    if isinstance(x, Tracer):
        raise TraceError(attrs.where, f"input {what!r} decides the output's shape, so it must be a constant "
                         "(an initializer, a Constant node, or computed from shapes), but it depends on a "
                         "traced graph input", (x,))
    return np.asarray(x.detach().numpy())


def static_ints(x: Tensor | None, attrs: Attrs, what: str) -> list[int] | None:
    """A static integer input as a list (None when the input is absent)."""
    if x is None:
        return None
    return [int(v) for v in static(x, attrs, what).reshape(-1)]


def static_scalar(x: Tensor | None, attrs: Attrs, what: str, default: Any = None) -> Any:
    """A static one-element input as a Python scalar (`default` when absent)."""
    if x is None:
        return default
    values = static(x, attrs, what).reshape(-1)
    if values.size != 1:
        raise attrs.error(f"input {what!r} must hold one value, got shape {tuple(x.shape)}", (x,))
    return values[0].item()


# TensorProto.DataType codes -> ember dtypes (string, complex and 4-bit types are not supported).
DTYPES = {1: dtypes.float32, 2: dtypes.uint8, 3: dtypes.int8, 5: dtypes.int16, 6: dtypes.int32,
          7: dtypes.int64, 9: dtypes.bool_, 10: dtypes.float16, 11: dtypes.float64, 16: dtypes.bfloat16}


def dtype_of(code: int, attrs: Attrs) -> dtypes.DType:
    """The ember dtype of an ONNX element type code."""
    if code not in DTYPES:
        raise attrs.error(f"element type code {code} is not supported (supported: float16/32/64, bfloat16, "
                          "int8/16/32/64, uint8, bool)", cls=UnsupportedOperatorError)
    return DTYPES[code]


def axis_of(axis: int, ndim: int, attrs: Attrs) -> int:
    """`axis` in ``[0, ndim)`` (negative counts from the end)."""
    if not -ndim <= axis < max(ndim, 1):
        raise attrs.error(f"axis {axis} is out of range for a tensor of rank {ndim}", cls=IndexingError)
    return axis % max(ndim, 1)
