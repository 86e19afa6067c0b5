"""A generated blocked transpose: the row-major copy of a transposed matrix.

Copying a transposed view element by element reads one element per cache line of the source; the
kernel walks 32 x 32 tiles (one tile's rows and columns fit in L1), with tiles across OpenMP threads.
It serves ``contiguous`` on transposed 2-D arrays, such as a linear layer's weight gradient, which the
autograd engine stores row-major. Without a C compiler callers keep NumPy's copy.
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from .build import data_pointer, try_build

_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
TILE = 32
MIN_ELEMENTS = 1 << 16  # below this NumPy's copy is as fast (the tiles' bookkeeping would dominate)
_LIBS: dict[str, Any] = {}


def _source(t: str) -> str:
    return f"""/* ember blocked transpose: out (rows x cols) = src (cols x rows)^T, both row-major; {t} */
#include <stdint.h>

void transpose_{t}(const {t} *src, {t} *out, long rows, long cols) {{
  const long tr = (rows + {TILE} - 1) / {TILE}, tc = (cols + {TILE} - 1) / {TILE};
#pragma omp parallel for schedule(static)
  for (long tile = 0; tile < tr * tc; tile++) {{
    const long i0 = (tile / tc) * {TILE}, j0 = (tile % tc) * {TILE};
    const long i1 = i0 + {TILE} < rows ? i0 + {TILE} : rows, j1 = j0 + {TILE} < cols ? j0 + {TILE} : cols;
    for (long i = i0; i < i1; i++)
      for (long j = j0; j < j1; j++) out[i * cols + j] = src[j * rows + i];
  }}
}}
"""


def _library(t: str) -> Any:
    """The loaded library for element type `t`, or None without a working compiler."""
    if t not in _LIBS:
        _LIBS[t] = try_build(_source(t))
    return _LIBS[t]


def transposed_copy(x: np.ndarray, out: np.ndarray) -> bool:
    """Write the row-major copy of `x` into `out` when `x` is a large transposed float matrix (``x.T``
    row-major); False where the kernel does not apply or no compiler is available."""
    t = _TYPES.get(x.dtype)
    if t is None or x.ndim != 2 or x.size < MIN_ELEMENTS or not x.T.flags.c_contiguous:
        return False
    lib = _library(t)
    if lib is None:
        return False
    rows, cols = x.shape
    getattr(lib, f"transpose_{t}")(ctypes.c_void_p(data_pointer(x)), ctypes.c_void_p(data_pointer(out)),
                                   ctypes.c_long(rows), ctypes.c_long(cols))
    return True


def _dense_copy_cpu(x: np.ndarray) -> np.ndarray:
    """CPU kernel of ``contiguous`` (``dense_copy``): the blocked transpose for transposed matrices."""
    from ...backends import CPU

    if x.ndim == 2 and x.dtype in _TYPES and x.size >= MIN_ELEMENTS and x.T.flags.c_contiguous:
        out = CPU.pool.empty(x.shape, x.dtype)
        if transposed_copy(x, out):
            return out
    return np.array(x, order="C", copy=True)


def register() -> None:
    """Make the blocked transpose the CPU kernel of the ``contiguous`` primitive."""
    from ..._core.primitives.movement import dense_copy_p

    dense_copy_p.kernels["cpu"] = _dense_copy_cpu


register()
