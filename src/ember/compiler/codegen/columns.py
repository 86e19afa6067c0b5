"""A generated column-sum kernel: the sum over the leading axes of a row-major array, on all cores.

A bias's gradient sums an activation gradient over its batch and sequence axes; a layer norm's
parameter gradients do the same with products. NumPy runs such a reduction on one thread, adding
one row after another into the result. This kernel gives each thread blocks of ``BLOCK`` columns and
adds the rows into them in the same order, so its results equal NumPy's bit for bit while both cores
read the array. It is registered as ``CPU.column_sum`` and the ``reduce_sum`` primitive's CPU kernel
uses it for large float32/float64 arrays reduced over their leading axes (eager and compiled).
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ...backends import CPU
from .build import try_build

BLOCK = 64  # columns per task: four 64-byte lines of float32 accumulators, held in registers
MIN_ELEMENTS = 1 << 15  # smaller arrays stay with NumPy (a thread team costs microseconds)
_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_LIB: list[Any] = []


def _source() -> str:
    parts = ["/* ember column sums: out[j] = sum_i x[i][j], rows added in order, column blocks per task */",
             "#include <stdint.h>", "#include <string.h>", ""]
    for t in ("float", "double"):
        parts.append(f"""\
void column_sum_{t}(const {t} *restrict x, {t} *restrict out, const int64_t rows, const int64_t cols) {{
  const int64_t blocks = (cols + {BLOCK} - 1) / {BLOCK};
#pragma omp parallel for schedule(static) if (rows * cols >= {MIN_ELEMENTS})
  for (int64_t b = 0; b < blocks; b++) {{
    const int64_t j0 = b * {BLOCK}, w = cols - j0 < {BLOCK} ? cols - j0 : {BLOCK};
    {t} acc[{BLOCK}] = {{0}}; /* from zero, as NumPy starts (a column of -0.0 sums to +0.0) */
    for (int64_t i = 0; i < rows; i++) {{
      const {t} *row = x + i * cols + j0;
      if (w == {BLOCK}) {{
#pragma omp simd
        for (int64_t j = 0; j < {BLOCK}; j++) acc[j] += row[j];
      }} else {{
        for (int64_t j = 0; j < w; j++) acc[j] += row[j];
      }}
    }}
    memcpy(out + j0, acc, sizeof({t}) * (size_t)w);
  }}
}}
""")
    return "\n".join(parts)


def _library() -> Any:
    if not _LIB:
        lib = try_build(_source())
        if lib is not None:
            for t in ("float", "double"):
                fn = getattr(lib, f"column_sum_{t}")
                fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
                fn.restype = None
        _LIB.append(lib)
    return _LIB[0]


def column_sum(x: np.ndarray, axes: int) -> np.ndarray | None:
    """``x.sum(axis=tuple(range(axes)))`` for a C-contiguous float32/float64 array, equal to NumPy's
    result bit for bit; None where the kernel does not apply (another dtype or layout, a small array,
    fewer than two column blocks to share, no C compiler)."""
    t = _TYPES.get(x.dtype)
    if t is None or not 0 < axes < x.ndim or x.size < MIN_ELEMENTS or not x.flags.c_contiguous:
        return None
    shape = x.shape[axes:]
    cols = int(np.prod(shape, dtype=np.int64))
    if cols < 2 * BLOCK:
        return None
    lib = _library()
    if lib is None:
        return None
    out = CPU.pool.empty(shape, x.dtype)
    getattr(lib, f"column_sum_{t}")(x.ctypes.data, out.ctypes.data, x.size // cols, cols)
    return out


CPU.column_sum = column_sum
