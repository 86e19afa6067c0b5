"""The EmberError hierarchy and the helper that names the user's source line."""
from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_INSIDE: dict[str, bool] = {}  # file name -> is it part of ember (or the interpreter's frozen modules)


def _is_inside(filename: str) -> bool:
    inside = _INSIDE.get(filename)
    if inside is None:
        inside = os.path.abspath(filename).startswith(_PKG_DIR) or filename.startswith("<frozen")
        _INSIDE[filename] = inside
    return inside


def user_frame() -> tuple[str, int, str] | None:
    """Return (file, line, source) of the innermost stack frame outside the ember package."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_inside(filename):
            return filename, frame.f_lineno, _source_line(filename, frame.f_lineno)
        frame = frame.f_back
    return None


def _source_line(filename: str, lineno: int) -> str:
    import linecache

    return linecache.getline(filename, lineno).strip()


def describe(value: Any) -> str:
    """A short description of an operand for error messages: shape and dtype for tensors."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"Tensor(shape={tuple(shape)}, dtype={dtype})"
    return f"{type(value).__name__}({value!r})"


class EmberError(Exception):
    """Base class of every error Ember raises on bad input.

    The message names the operation, the operands involved and the user's source line.
    """

    def __init__(self, op: str, detail: str, operands: tuple = (), where: tuple | None = None):
        self.op = op
        self.detail = detail
        self.where = where if where is not None else user_frame()
        text = f"{op}: {detail}"
        if operands:
            text += "\n  operands: " + ", ".join(describe(o) for o in operands)
        if self.where is not None:
            file, line, src = self.where
            text += f"\n  at {file}:{line}" + (f": {src}" if src else "")
        super().__init__(text)


class ShapeError(EmberError, ValueError):
    """Shapes that do not fit the operation (broadcasting, matmul, reshape…)."""


class ConfigError(EmberError, ValueError):
    """An invalid hyper-parameter or configuration value (an optimiser's learning rate, a scheduler's
    factor…)."""


class DTypeError(EmberError, TypeError):
    """A dtype the operation does not accept, or operands whose dtypes cannot be combined."""


class DeviceError(EmberError, RuntimeError):
    """Operands on different devices, or an unknown device."""


class IndexingError(EmberError, IndexError):
    """An index or dimension out of range."""


class AutogradError(EmberError, RuntimeError):
    """Backward through a non-differentiable op, a freed graph, or a tensor modified in place."""


class TraceError(EmberError, RuntimeError):
    """Something a transform cannot trace, such as Python control flow on tensor values."""


class EagerFallbackWarning(UserWarning):
    """A call of a jitted function ran eagerly (same results, uncompiled), for the reason given."""


class RecompileLimitWarning(EagerFallbackWarning):
    """A jitted function met more signatures than its ``cache_size`` and runs new ones eagerly."""


class DynamicDimsWarning(UserWarning):
    """A function compiled with ``dynamic_dims`` uses a marked size in a way one graph cannot follow (a
    number not proportional to it, a constant or a structure that changes with it): each size it is
    called with gets a graph of its own, as without ``dynamic_dims``."""


class AnomalyError(EmberError, RuntimeError):
    """Raised by anomaly mode when an op produces NaN or Inf."""
