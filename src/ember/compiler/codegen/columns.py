"""Generated column reductions: the sum (and max, min, variance) over the leading axes of a row-major
array, on all cores.

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

The maximum and minimum take the rows in the same way (a NaN in a column gives NaN), and the variance
keeps a running mean and sum of squared deviations per column in double (Welford's update, on the
values less the column's first value, so that the error does not grow with mean / std), the threads'
statistics then merged in row order (Chan's update): one read of the input, where NumPy makes several
passes.

Registered as ``CPU.column_reduce``; the CPU kernels of ``reduce_sum``,
``reduce_max``, ``reduce_min`` and ``reduce_var`` use them for large float32/float64 arrays reduced
over their leading axes (eager and compiled).
"""
from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

from ...backends import CPU
from .build import data_pointer, try_build_typed

MIN_COLUMNS = 16  # narrower results stay with NumPy (too little work per row)
MIN_ELEMENTS = 1 << 15  # smaller arrays stay with NumPy (a thread team costs microseconds)
_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_LIB: list[Any] = []


_KINDS = ("sum", "max", "min", "var")
# per kind: the accumulators' element type, how many rows of them a thread keeps (var: mean and squared
# deviations), their start, how row x[i] (the `k`-th of the thread's rows, from 1) goes in, and how
# the threads' partial rows combine into out[j] (`n`: the thread count; ELEM: the element type)
_ACC = {"sum": ("ELEM", 1), "max": ("ELEM", 1), "min": ("ELEM", 1), "var": ("double", 2)}
_START = {"sum": "0", "max": "-INFINITY", "min": "INFINITY", "var": "0"}
_ADD = {
    "sum": "acc[j] += row[j];",
    "max": "acc[j] = (row[j] > acc[j] || row[j] != row[j]) ? row[j] : acc[j]; /* a NaN stays */",
    "min": "acc[j] = (row[j] < acc[j] || row[j] != row[j]) ? row[j] : acc[j];",
    "var": """/* Welford on the values less the column's first one (the variance is the same, and with the
           mean near zero the error no longer grows with mean / std): acc holds the shifted means,
           acc2 the squared deviations */
        const double v = (double)row[j] - (double)x[j], d = v - acc[j];
        acc[j] += d * inv;
        acc2[j] += d * (v - acc[j]);""",
}
_COMBINE = {
    "sum": """ELEM total = parts[0][j];
        for (int64_t p = 1; p < n; p++) total += parts[p][j];
        out[j] = total;""",
    "max": """ELEM best = parts[0][j];
        for (int64_t p = 1; p < n; p++) {
          const ELEM v = parts[p][j];
          best = (v > best || v != v) ? v : best;
        }
        out[j] = best;""",
    "min": """ELEM best = parts[0][j];
        for (int64_t p = 1; p < n; p++) {
          const ELEM v = parts[p][j];
          best = (v < best || v != v) ? v : best;
        }
        out[j] = best;""",
    "var": """double cnt = (double)(rows * 1 / n), mean = parts[0][j], m2 = parts[0][j + cols];
        for (int64_t p = 1; p < n; p++) { /* Chan et al.: merge the next thread's rows */
          const double c = (double)(rows * (p + 1) / n - rows * p / n), tot = cnt + c, d = parts[p][j] - mean;
          mean += d * c / tot;
          m2 += parts[p][j + cols] + d * d * cnt * c / tot;
          cnt = tot;
        }
        out[j] = (ELEM)(m2 / ((double)rows - correction));""",
}


def _kernel(kind: str, t: str) -> str:
    acc_t, width = _ACC[kind]
    acc_t = t if acc_t == "ELEM" else acc_t
    second = f"      {acc_t} *acc2 = acc + cols;\n" if width == 2 else ""
    start_note = " /* from +0.0, as NumPy: -0.0 sums to +0.0 */" if kind == "sum" else ""
    inv = "        const double inv = 1.0 / (double)(i - r0 + 1);\n" if kind == "var" else ""
    return f"""\
int column_{kind}_{t}(const {t} *restrict x, {t} *restrict out, const int64_t rows, const int64_t cols,
                      const double correction) {{
  (void)correction;
  int failed = 0, nt = rows * cols >= {MIN_ELEMENTS} ? omp_get_max_threads() : 1;
  if (nt > rows) nt = (int)rows;
  {acc_t} **parts = ({acc_t} **)calloc((size_t)nt, sizeof({acc_t} *));
  if (!parts) return 1;
#pragma omp parallel num_threads(nt)
  {{
    /* each thread reduces a contiguous range of rows (one sequential stream through memory) into its
       own accumulator rows, placed half a page (modulo 4 KiB) from the columns they take in */
    const int64_t id = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t r0 = rows * id / n, r1 = rows * (id + 1) / n;
    char *raw = (char *)malloc(sizeof({acc_t}) * (size_t)cols * {width} + 4096);
    if (raw) {{
      const uintptr_t want = ((uintptr_t)x + 2048) & 4095;
      {acc_t} *acc = ({acc_t} *)(raw + ((want - (uintptr_t)raw) & 4095));
{second}      parts[id] = acc;
      for (int64_t j = 0; j < cols * {width}; j++) acc[j] = {_START[kind]};{start_note}
      for (int64_t i = r0; i < r1; i++) {{
        const {t} *row = x + i * cols;
{inv}#pragma omp simd
        for (int64_t j = 0; j < cols; j++) {{
        {_ADD[kind]}
        }}
      }}
    }} else {{
#pragma omp atomic write
      failed = 1;
    }}
#pragma omp barrier
    if (!failed) {{ /* the threads' partial results, combined in row order */
#pragma omp for schedule(static)
      for (int64_t j = 0; j < cols; j++) {{
        {_COMBINE[kind].replace("ELEM", t)}
      }}
    }}
    free(raw);
  }}
  free(parts);
  return failed;
}}
"""


def _source() -> str:
    parts = ["/* ember column reductions: out[j] = reduce_i x[i][j], a block of rows per thread, then the "
             "blocks */",
             "#include <math.h>", "#include <stdint.h>", "#include <stdlib.h>", "#include <string.h>",
             "#ifdef _OPENMP", "#include <omp.h>", "#else", "#define omp_get_num_threads() 1",
             "#define omp_get_thread_num() 0", "#define omp_get_max_threads() 1", "#endif", ""]
    for t in ("float", "double"):
        for kind in _KINDS:
            parts.append(_kernel(kind, t))
    return "\n".join(parts)


def _library() -> Any:
    if not _LIB:
        names = [f"column_{kind}_{t}" for t in ("float", "double") for kind in _KINDS]
        _LIB.append(try_build_typed(_source(), names,
                                    [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 2 + [ctypes.c_double]))
    return _LIB[0]


def column_reduce(kind: str, x: np.ndarray, axes: int, correction: float = 0.0) -> np.ndarray | None:
    """`kind` ("sum", "max", "min" or "var", the latter divided by ``n - correction``) of a
    C-contiguous float32/float64 array over its first `axes` axes: a block of rows per thread, then the
    blocks in order (the variance by Welford's update within a block, Chan's across blocks). None where
    the kernel does not apply (another dtype or layout, a small array, fewer than MIN_COLUMNS columns,
    a variance with ``n - correction <= 0``, no C compiler).

    Example:
        >>> x = np.arange(40000, dtype=np.float32).reshape(1000, 40)
        >>> column_reduce("max", x, 1)[:3].tolist()
        [39960.0, 39961.0, 39962.0]
    """
    t = _TYPES.get(x.dtype)
    if (t is None or kind not in _KINDS or not 0 < axes < x.ndim or x.size < MIN_ELEMENTS
            or not x.flags.c_contiguous):
        return None
    shape = x.shape[axes:]
    cols = math.prod(shape)
    rows = x.size // cols if cols else 0
    if cols < MIN_COLUMNS or (kind == "var" and not rows - correction > 0):
        return None
    lib = _library()
    if lib is None:
        return None
    out = CPU.pool.empty(shape, x.dtype)
    if getattr(lib, f"column_{kind}_{t}")(data_pointer(x), data_pointer(out), rows, cols, float(correction)):
        raise MemoryError(f"column_{kind} kernel: could not allocate accumulators for {cols} columns")
    return out


def column_sum(x: np.ndarray, axes: int) -> np.ndarray | None:
    """``x.sum(axis=tuple(range(axes)))`` for a C-contiguous float32/float64 array (the rows summed in
    one block per thread, then the blocks in order); None where the kernel does not apply (another
    dtype or layout, a small array, fewer than MIN_COLUMNS columns, no C compiler)."""
    return column_reduce("sum", x, axes)


CPU.column_reduce = column_reduce
