"""A generated column-sum kernel: the sum over the leading axes of a row-major array, on all cores.

A bias's gradient sums an activation gradient over its batch and sequence axes. NumPy runs such a
reduction on one thread, adding one row after another into the result. This kernel gives each thread
a contiguous range of rows, which it adds in order into an accumulator row of its own (one sequential
stream through memory per thread), then adds the threads' partial sums in row order. The result is the
sum in a different grouping than NumPy's (a block of rows, then the blocks), as accurate or more.

Each accumulator row sits half a page from the columns it adds (modulo 4 KiB): with rows a whole number
of pages long, an accumulator at the same low address bits as the row makes each load wait on the
accumulator's store just before (4K aliasing). Giving each thread a range of columns instead keeps
NumPy's order exactly, but reads each row in pieces a page apart, which the prefetchers serve badly:
on a 16 MB array not in cache that took 1.2-1.4x NumPy's time, the row ranges 0.85-1.0x.

Registered as ``CPU.column_sum``; the ``reduce_sum`` primitive's CPU kernel uses it for large
float32/float64 arrays reduced over their leading axes (eager and compiled).
"""
from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

from ...backends import CPU
from .build import try_build

MIN_COLUMNS = 16  # narrower results stay with NumPy (too little work per row)
MIN_ELEMENTS = 1 << 15  # smaller arrays stay with NumPy (a thread team costs microseconds)
_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_LIB: list[Any] = []


def _source() -> str:
    parts = ["/* ember column sums: out[j] = sum_i x[i][j], a block of rows per thread, then the blocks */",
             "#include <stdint.h>", "#include <stdlib.h>", "#include <string.h>",
             "#ifdef _OPENMP", "#include <omp.h>", "#else", "#define omp_get_num_threads() 1",
             "#define omp_get_thread_num() 0", "#define omp_get_max_threads() 1", "#endif", ""]
    for t in ("float", "double"):
        parts.append(f"""\
int column_sum_{t}(const {t} *restrict x, {t} *restrict out, const int64_t rows, const int64_t cols) {{
  int failed = 0, nt = rows * cols >= {MIN_ELEMENTS} ? omp_get_max_threads() : 1;
  if (nt > rows) nt = (int)rows;
  {t} **parts = ({t} **)calloc((size_t)nt, sizeof({t} *));
  if (!parts) return 1;
#pragma omp parallel num_threads(nt)
  {{
    /* each thread sums a contiguous range of rows (one sequential stream through memory) into its own
       accumulator row, placed half a page (modulo 4 KiB) from the columns it adds */
    const int64_t id = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t r0 = rows * id / n, r1 = rows * (id + 1) / n;
    char *raw = (char *)malloc(sizeof({t}) * (size_t)cols + 4096);
    if (raw) {{
      const uintptr_t want = ((uintptr_t)x + 2048) & 4095;
      {t} *acc = ({t} *)(raw + ((want - (uintptr_t)raw) & 4095));
      parts[id] = acc;
      memset(acc, 0, sizeof({t}) * (size_t)cols); /* from zero, as NumPy: -0.0 sums to +0.0 */
      for (int64_t i = r0; i < r1; i++) {{
        const {t} *row = x + i * cols;
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) acc[j] += row[j];
      }}
    }} else {{
#pragma omp atomic write
      failed = 1;
    }}
#pragma omp barrier
    if (!failed) {{ /* the threads' partial sums, added in row order */
#pragma omp for schedule(static)
      for (int64_t j = 0; j < cols; j++) {{
        {t} total = parts[0][j];
        for (int64_t p = 1; p < n; p++) total += parts[p][j];
        out[j] = total;
      }}
    }}
    free(raw);
  }}
  free(parts);
  return failed;
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
                fn.restype = ctypes.c_int
        _LIB.append(lib)
    return _LIB[0]


def column_sum(x: np.ndarray, axes: int) -> np.ndarray | None:
    """``x.sum(axis=tuple(range(axes)))`` for a C-contiguous float32/float64 array (the rows summed in
    one block per thread, then the blocks in order); None where the kernel does not apply (another
    dtype or layout, a small array, fewer than MIN_COLUMNS columns, no C compiler)."""
    t = _TYPES.get(x.dtype)
    if t is None or not 0 < axes < x.ndim or x.size < MIN_ELEMENTS or not x.flags.c_contiguous:
        return None
    shape = x.shape[axes:]
    cols = math.prod(shape)
    if cols < MIN_COLUMNS:
        return None
    lib = _library()
    if lib is None:
        return None
    out = CPU.pool.empty(shape, x.dtype)
    if getattr(lib, f"column_sum_{t}")(x.ctypes.data, out.ctypes.data, x.size // cols, cols):
        raise MemoryError(f"column_sum kernel: could not allocate accumulators for {cols} columns")
    return out


CPU.column_sum = column_sum
