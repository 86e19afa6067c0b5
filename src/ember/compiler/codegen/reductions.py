"""Generated row reductions: sum, max, min and variance over the trailing axes of a row-major array.

NumPy reduces on one thread, and its variance makes several passes (the mean, the deviations, their
squares, their sum). These kernels read the input once (the variance reads each block twice, from the
L1 cache) on all cores.

A row (the trailing axes flattened) is cut into blocks of ``BLOCK`` elements. Each block yields a
partial result: its sum, accumulated in double in ``LANES`` independent lanes; its maximum or minimum;
or its mean and sum of squared deviations (two passes over the block, in double). A row's partials are
combined in block order, in double, the variance by Chan's update for merging two groups'
statistics. With many rows each thread takes whole rows; with few (a reduction over every axis) the
threads take blocks and one thread combines them. Both paths combine the same partials in the same
order, so a result does not depend on the thread count or the row count.

Sums are far more accurate than float32 accumulation (float32 inputs are added in double) and start
from +0.0 as NumPy's do (a row of -0.0 sums to +0.0). A NaN anywhere in a row gives NaN for every kind,
as in NumPy and PyTorch. The variance divides the sum of squared deviations by ``n - correction``.

Registered as ``CPU.row_reduce``; the CPU kernels of ``reduce_sum``, ``reduce_max``, ``reduce_min`` and
``reduce_var`` use it for large C-contiguous float32/float64 arrays reduced over trailing axes (eager and
compiled). Everything else stays with NumPy.
"""
from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

from ...backends import CPU
from .build import data_pointer, try_build_typed

KINDS = ("sum", "max", "min", "var")
BLOCK = 2048  # elements per partial result (a float64 block is 16 KiB: a second pass finds it in L1)
LANES = 16  # double accumulators per block (vectorised; no single chain of dependent additions)
SUB = 128  # float32 elements summed in float lanes before they are added in double
MIN_ELEMENTS = 1 << 14  # smaller arrays stay with NumPy (its call costs less than the thread team)
MIN_PARALLEL = 1 << 15  # arrays from this size use all cores
_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_LIB: list[Any] = []

# the partial result of one block and how a row's running state takes it in (`lo`: the block's first
# index within the row, `m`: its length); `s` is the running sum/extreme/mean, `q` the squared deviations
_TAKE = {
    "sum": "s += p.a;",
    "max": "if (p.a > s || p.a != p.a) s = p.a; /* NaN stays: no comparison with NaN is true */",
    "min": "if (p.a < s || p.a != p.a) s = p.a;",
    "var": """if (lo == 0) {
          s = p.a;
          q = p.b;
        } else { /* Chan et al.: merge (lo, s, q) with (m, p.a, p.b) */
          const double tot = (double)(lo + m), d = p.a - s;
          s += d * (double)m / tot;
          q += p.b + d * d * (double)lo * (double)m / tot;
        }""",
}
_START = {"sum": "0.0", "max": "-INFINITY", "min": "INFINITY", "var": "0.0"}
_FINISH = {"sum": "s", "max": "s", "min": "s", "var": "q / ((double)n - correction)"}


def _total(t: str, term: str, into: str) -> str:
    """C statements that set double `into` to the sum of `term` (a C expression of ``v``, one element)
    over x[0:m], leaving the loop index ``i`` declared. float: ``SUB``-element runs accumulate in
    2 * LANES float lanes (a few additions each), which are then added into LANES double lanes; double:
    2 * LANES double lanes."""
    if t == "float":
        main = f"""\
  double {into}_l[{LANES}] = {{0}};
  int64_t i = 0;
  for (; i + {SUB} <= m; i += {SUB}) {{
    float f[{2 * LANES}] = {{0}};
    for (int k = 0; k < {SUB}; k += {2 * LANES}) {{ /* a fixed count: unrolled */
#pragma omp simd
      for (int j = 0; j < {2 * LANES}; j++) {{ const float v = x[i + k + j]; f[j] += {term}; }}
    }}
#pragma omp simd
    for (int j = 0; j < {LANES}; j++) {into}_l[j] += (double)f[j] + (double)f[j + {LANES}];
  }}
"""
        lanes = LANES
    else:
        main = f"""\
  double {into}_l[{2 * LANES}] = {{0}};
  int64_t i = 0;
  for (; i + {2 * LANES} <= m; i += {2 * LANES}) {{
#pragma omp simd
    for (int j = 0; j < {2 * LANES}; j++) {{ const double v = x[i + j]; {into}_l[j] += {term}; }}
  }}
"""
        lanes = 2 * LANES
    return main + f"""\
  for (; i < m; i++) {{ const {t} v = x[i]; {into}_l[0] += (double)({term}); }}
  for (int w = {lanes // 2}; w >= 1; w /= 2)
    for (int j = 0; j < w; j++) {into}_l[j] += {into}_l[j + w];
  const double {into} = {into}_l[0];
"""


def _block(kind: str, t: str) -> str:
    """C of ``static part_t {kind}_block_{t}(const t *x, int64_t m)``: the partial result of x[0:m]."""
    head = f"static part_t {kind}_block_{t}(const {t} *restrict x, const int64_t m) {{\n  part_t p;\n"
    if kind == "sum":
        return head + "{\n" + _total(t, "v", "total") + "  p.a = total;\n}\n  p.b = 0.0;\n  return p;\n}\n"
    if kind == "var":
        # deviations from the mean rounded to t; sum(d^2) - sum(d)^2 / m is then the exact correction
        return head + "  double s1;\n{\n" + _total(t, "v", "total") + f"""\
  s1 = total;
}}
  p.a = s1 / (double)m;
  const {t} c = ({t})p.a;
{{
{_total(t, "(v - c) * (v - c)", "sq")}\
  const double dev = s1 - (double)c * (double)m; /* the sum of (x - c) */
  p.b = sq - dev * dev / (double)m;
}}
  return p;
}}
"""
    op = ">" if kind == "max" else "<"
    lanes = 4 * LANES if t == "float" else 2 * LANES  # exact in any order: as many lanes as registers hold
    return head + f"""\
  {t} acc[{lanes}];
  int nan[{lanes}] = {{0}}; /* NaNs are counted apart: the select then needs one comparison */
  for (int j = 0; j < {lanes}; j++) acc[j] = {"-" if kind == "max" else ""}INFINITY;
  int64_t i = 0;
  for (; i + {lanes} <= m; i += {lanes}) {{
#pragma omp simd
    for (int j = 0; j < {lanes}; j++) {{
      const {t} v = x[i + j];
      acc[j] = v {op} acc[j] ? v : acc[j];
      nan[j] |= v != v;
    }}
  }}
  for (; i < m; i++) {{
    const {t} v = x[i];
    acc[0] = v {op} acc[0] ? v : acc[0];
    nan[0] |= v != v;
  }}
  int any = 0;
  for (int j = 0; j < {lanes}; j++) any |= nan[j];
  for (int w = {lanes // 2}; w >= 1; w /= 2)
    for (int j = 0; j < w; j++) acc[j] = acc[j + w] {op} acc[j] ? acc[j + w] : acc[j];
  p.a = any ? (double)NAN : (double)acc[0];
  p.b = 0.0;
  return p;
}}
"""


def _driver(kind: str, t: str) -> str:
    """C of ``int reduce_{kind}_{t}(x, out, rows, n, correction)`` (0, or 1 when out of memory)."""
    row = f"""\
      double s = {_START[kind]}, q = 0.0;
      for (int64_t lo = 0; lo < n; lo += {BLOCK}) {{
        const int64_t m = n - lo < {BLOCK} ? n - lo : {BLOCK};
        const part_t p = PART;
        {_TAKE[kind]}
      }}
      out[r] = ({t})({_FINISH[kind]});"""
    return f"""\
int reduce_{kind}_{t}(const {t} *restrict x, {t} *restrict out, const int64_t rows, const int64_t n,
                      const double correction) {{
  (void)correction;
  const int64_t blocks = (n + {BLOCK} - 1) / {BLOCK};
  const int nt = rows * n >= {MIN_PARALLEL} ? omp_get_max_threads() : 1;
  if (rows >= 2 * (int64_t)nt || blocks == 1) {{ /* whole rows per thread */
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t r = 0; r < rows; r++) {{
      const {t} *xr = x + r * n;
{row.replace("PART", f"{kind}_block_{t}(xr + lo, m)")}
    }}
    return 0;
  }}
  /* few long rows: the threads take blocks, then each row's partials are combined in order */
  part_t *parts = (part_t *)malloc(sizeof(part_t) * (size_t)(rows * blocks));
  if (!parts) return 1;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t k = 0; k < rows * blocks; k++) {{
    const int64_t r = k / blocks, lo = k % blocks * {BLOCK};
    const int64_t m = n - lo < {BLOCK} ? n - lo : {BLOCK};
    parts[k] = {kind}_block_{t}(x + r * n + lo, m);
  }}
  for (int64_t r = 0; r < rows; r++) {{
{row.replace("PART", "parts[r * blocks + lo / " + str(BLOCK) + "]")}
  }}
  free(parts);
  return 0;
}}
"""


def source() -> str:
    """The C source of every kernel (``reduce_<kind>_<float|double>``)."""
    parts = ["/* ember row reductions: sum, max, min, var over the trailing axes, blocks of "
             f"{BLOCK} elements combined in order */",
             "#include <math.h>", "#include <stdint.h>", "#include <stdlib.h>",
             "#ifdef _OPENMP", "#include <omp.h>", "#else", "#define omp_get_max_threads() 1", "#endif",
             "/* a block's partial result: a its sum, extreme or mean; b its squared deviations */",
             "typedef struct { double a, b; } part_t;",
             ""]
    for t in ("float", "double"):
        for kind in KINDS:
            parts.append(_block(kind, t))
            parts.append(_driver(kind, t))
    return "\n".join(parts)


def _library() -> Any:
    if not _LIB:
        names = [f"reduce_{kind}_{t}" for t in ("float", "double") for kind in KINDS]
        _LIB.append(try_build_typed(source(), names,
                                    [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 2 + [ctypes.c_double]))
    return _LIB[0]


def row_reduce(kind: str, x: np.ndarray, axes: int, correction: float = 0.0) -> np.ndarray | None:
    """`kind` ("sum", "max", "min" or "var") of a C-contiguous float32/float64 array over its last
    `axes` axes, or None where the kernel does not apply (another dtype or layout, a small or empty
    array, a variance with ``n - correction <= 0``, no C compiler): the caller then uses NumPy.

    Example:
        >>> x = np.arange(40000, dtype=np.float32).reshape(2, 20000)
        >>> row_reduce("max", x, 1).tolist()
        [19999.0, 39999.0]
    """
    t = _TYPES.get(x.dtype)
    if (t is None or kind not in KINDS or not 0 < axes <= x.ndim or x.size < MIN_ELEMENTS
            or not x.flags.c_contiguous):
        return None
    n = math.prod(x.shape[x.ndim - axes:])
    if kind == "var" and not n - correction > 0:
        return None
    lib = _library()
    if lib is None:
        return None
    out = CPU.pool.empty(x.shape[:x.ndim - axes], x.dtype)
    fn = getattr(lib, f"reduce_{kind}_{t}")
    if fn(data_pointer(x), data_pointer(out), x.size // n, n, float(correction)):
        raise MemoryError(f"reduce_{kind} kernel: could not allocate the partial results of "
                          f"{x.size // n} rows of {n} elements")
    return out


CPU.row_reduce = row_reduce
