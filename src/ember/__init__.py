"""Ember: a deep-learning framework with a PyTorch-style eager API and JAX-style composable transforms."""
from __future__ import annotations

import builtins as _builtins
import os as _os
import sys as _sys
import warnings as _warnings

# OpenBLAS threads spin for about 2**28 cycles after each product before sleeping, and on few cores
# that takes the cores from the OpenMP threads of the generated kernels that follow (measured: fused
# attention and the bias+GELU kernel 1.7x slower right after a matmul). Read when NumPy loads its
# OpenBLAS, so it only applies when Ember is imported first; an explicit setting wins.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

# Kernels give NaN and inf silently, as PyTorch's do: NumPy's floating-point warnings ("invalid value
# encountered in divide") raised inside Ember's own modules are not shown.
_warnings.filterwarnings("ignore", message=r".* encountered in ", category=RuntimeWarning,
                         module=r"ember(\.|$)")

from ._core import methods as _methods  # noqa: F401  (attaches operators and methods to Tensor)
from ._core.autograd import (enable_grad, inference_mode, is_anomaly_enabled, no_grad, set_detect_anomaly,
                             set_grad_enabled)
from ._core.creation import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like, linspace,
                             logspace, ones, ones_like, tensor, zeros, zeros_like)
from ._core.device import Device, as_device as device
from ._core.dispatch import is_grad_enabled
from ._core.dtypes import (DType, bfloat16, complex64, complex128, float16, float32, float64,
                           get_default_dtype, int8, int16, int32, int64, result_type, set_default_dtype,
                           uint8)
from ._core.dtypes import bool_ as bool  # noqa: A001  (ember.bool, as torch.bool)
from ._core.dtypes import promote as promote_types
from ._core.primitives.elementwise import *  # noqa: F403
from ._core.primitives.elementwise import abs, acos, asin, atan, div, mul, neg, sub  # aliases below
from ._core.primitives.elementwise import clamp as clip
from ._core.primitives.elementwise import convert as _convert  # noqa: F401
from ._core.primitives.indexing import *  # noqa: F403
from ._core.primitives.linalg import *  # noqa: F403  (each family lists its public names in __all__)
from ._core.primitives.movement import *  # noqa: F403
from ._core.primitives.reduce import *  # noqa: F403
from ._core.memory import *  # noqa: F403
from ._core.creation_extra import *  # noqa: F403
from ._core.random import *  # noqa: F403
from ._core.errors import EmberError as _EmberError
from ._core.tensor import Tensor

float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
cfloat = complex64
cdouble = complex128
multiply = mul
subtract = sub
divide = div
negative = neg
absolute = abs
arcsin, arccos, arctan = asin, acos, atan
sgn = sign  # noqa: F405
not_equal, greater, less, greater_equal, less_equal = ne, gt, lt, ge, le  # noqa: F405


def numel(input: Tensor) -> _builtins.int:
    """The number of elements of `input`."""
    return input.numel()


def is_tensor(obj) -> _builtins.bool:
    """Whether `obj` is an Ember tensor."""
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> _builtins.bool:
    """Whether `input` has a floating-point dtype."""
    return input.dtype.is_floating_point


def is_complex(input: Tensor) -> _builtins.bool:
    """Whether `input` has a complex dtype."""
    return input.dtype.is_complex


def is_nonzero(input: Tensor) -> _builtins.bool:
    """Whether the one element of `input` is not zero (an error for more or fewer elements)."""
    if input.numel() != 1:
        raise _EmberError("is_nonzero", f"expected a tensor of one element, got shape {tuple(input.shape)}",
                          (input,))
    return _builtins.bool(input.item())


def positive(input: Tensor) -> Tensor:
    """`input` itself (PyTorch's ``positive``; only numbers, not bools)."""
    return +input

from . import autograd, compiler, data, errors, func, io, models, nn, onnx, optim, utils  # noqa: E402
from .compiler import jit  # noqa: E402
from .errors import EmberError, TraceError  # noqa: E402  (the base class, and what jit raises)
from .compiler.control_flow import cond, scan, while_loop  # noqa: E402

compile = jit  # noqa: A001  (ember.compile, as torch.compile)
from .io import load, save  # noqa: E402

__version__ = "0.1.0"
