"""Generated row kernels: layer normalisation and its gradient, and softmax, one pass per row in C.

A (rows, features) array is processed a row at a time (rows across OpenMP threads from
``MIN_PARALLEL`` elements); a row of a
transformer's activations fits in the L1 cache, so the statistics and the output cost one read of the
input from memory and one write. The source is rendered per element type (``float``/``double``) and
built through :mod:`.build` (disk cache, same flags as the fused kernels); without a compiler the callers
keep their NumPy kernels.

``normalize(x)`` is ``(x - mean) * rstd`` with ``rstd = 1 / sqrt(var + eps)`` (biased variance), and
``normalize_grad(g, x)`` is its VJP ``rstd * (g - mean(g) - (x - mean) * rstd**2 * mean(g * (x - mean)))``.
``softmax(x)`` is ``exp(x - m) / sum(exp(x - m))`` with ``m`` the row maximum (0 when not finite); with
``safe``, a row with no finite entry (all ``-inf``) gives zeros instead of NaN. ``log_softmax(x)`` is
``x - m - log(sum(exp(x - m)))``.
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from .build import data_pointer, try_build
from .c import _HELPERS

_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
MIN_ELEMENTS = 4096  # below this a kernel's ctypes call costs more than the NumPy passes it replaces
# elements from which the rows are shared among threads: below, waking them costs more than it saves,
# and with few cores they may wait for a core that BLAS threads still hold
MIN_PARALLEL = 1 << 15
CHUNKS = 64  # row chunks of the parameter-gradient sums (fixed, so results do not depend on threads)
_LIBS: dict[str, Any] = {}


def _source(t: str) -> str:
    """C source of both row kernels for element type `t` (statistics accumulate in `t`, vectorised)."""
    sqrt = "sqrtf" if t == "float" else "sqrt"
    stats = f"""
    const {t} *xr = x + r * n;
    {t} s = 0;
#pragma omp simd reduction(+:s)
    for (long i = 0; i < n; i++) s += xr[i];
    const {t} mean = s / ({t})n;
    {t} v = 0;
#pragma omp simd reduction(+:v)
    for (long i = 0; i < n; i++) {{ const {t} d = xr[i] - mean; v += d * d; }}
    const {t} rstd = ({t})1 / {sqrt}(v / ({t})n + ({t})eps);"""
    exp = "ember_expf" if t == "float" else "exp"
    log = "logf" if t == "float" else "log"
    return f"""/* ember row kernels: normalize, normalize_grad (layer norm and its VJP), softmax; {t} */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

{_HELPERS["expf"]}

void softmax_{t}(const {t} *x, {t} *out, long rows, long n, int safe) {{
#pragma omp parallel for schedule(static) if (rows * n >= {MIN_PARALLEL})
  for (long r = 0; r < rows; r++) {{
    const {t} *xr = x + r * n;
    {t} *o = out + r * n;
    {t} m = -INFINITY;
#pragma omp simd reduction(max:m)
    for (long i = 0; i < n; i++) m = xr[i] > m ? xr[i] : m;
    if (safe && m == -INFINITY) {{
      for (long i = 0; i < n; i++) o[i] = 0;
      continue;
    }}
    const {t} shift = isfinite(m) ? m : 0;
    {t} s = 0;
#pragma omp simd reduction(+:s)
    for (long i = 0; i < n; i++) {{
      const {t} e = {exp}(xr[i] - shift); /* shift is finite, so a -inf entry gives exp(-inf) = 0 */
      o[i] = e;
      s += e;
    }}
#pragma omp simd
    for (long i = 0; i < n; i++) o[i] = o[i] / s;
  }}
}}

void log_softmax_{t}(const {t} *x, {t} *out, long rows, long n) {{
#pragma omp parallel for schedule(static) if (rows * n >= {MIN_PARALLEL})
  for (long r = 0; r < rows; r++) {{
    const {t} *xr = x + r * n;
    {t} *o = out + r * n;
    {t} m = -INFINITY;
#pragma omp simd reduction(max:m)
    for (long i = 0; i < n; i++) m = xr[i] > m ? xr[i] : m;
    const {t} shift = isfinite(m) ? m : 0;
    {t} s = 0;
#pragma omp simd reduction(+:s)
    for (long i = 0; i < n; i++) s += {exp}(xr[i] - shift);
    const {t} lse = shift + {log}(s);
#pragma omp simd
    for (long i = 0; i < n; i++) o[i] = xr[i] - lse;
  }}
}}

void normalize_{t}(const {t} *x, {t} *out, long rows, long n, double eps) {{
#pragma omp parallel for schedule(static) if (rows * n >= {MIN_PARALLEL})
  for (long r = 0; r < rows; r++) {{{stats}
    {t} *o = out + r * n;
#pragma omp simd
    for (long i = 0; i < n; i++) o[i] = (xr[i] - mean) * rstd;
  }}
}}

void normalize_grad_{t}(const {t} *g, const {t} *x, {t} *out, long rows, long n, double eps) {{
#pragma omp parallel for schedule(static) if (rows * n >= {MIN_PARALLEL})
  for (long r = 0; r < rows; r++) {{{stats}
    const {t} *gr = g + r * n;
    {t} sg = 0, sgx = 0;
#pragma omp simd reduction(+:sg, sgx)
    for (long i = 0; i < n; i++) {{ sg += gr[i]; sgx += gr[i] * (xr[i] - mean); }}
    const {t} mg = sg / ({t})n;
    const {t} c = rstd * rstd * sgx / ({t})n;
    {t} *o = out + r * n;
#pragma omp simd
    for (long i = 0; i < n; i++) o[i] = rstd * (gr[i] - mg - (xr[i] - mean) * c);
  }}
}}

/* normalize_grad applied to g * w (w: one scale per feature, the layer norm's weight) */
void normalize_grad_scaled_{t}(const {t} *g, const {t} *x, const {t} *w, {t} *out, long rows, long n,
                               double eps) {{
#pragma omp parallel for schedule(static) if (rows * n >= {MIN_PARALLEL})
  for (long r = 0; r < rows; r++) {{{stats}
    const {t} *gr = g + r * n;
    {t} sg = 0, sgx = 0;
#pragma omp simd reduction(+:sg, sgx)
    for (long i = 0; i < n; i++) {{ const {t} gw = gr[i] * w[i]; sg += gw; sgx += gw * (xr[i] - mean); }}
    const {t} mg = sg / ({t})n;
    const {t} c = rstd * rstd * sgx / ({t})n;
    {t} *o = out + r * n;
#pragma omp simd
    for (long i = 0; i < n; i++) o[i] = rstd * (gr[i] * w[i] - mg - (xr[i] - mean) * c);
  }}
}}

/* out[0] = sum over rows of g * normalize(x), out[1] = sum over rows of g: the layer norm's weight and
   bias gradients. Rows are cut into a fixed number of chunks (whatever the thread count) whose partial
   sums are added in order, so the result does not depend on scheduling. */
int norm_param_grads_{t}(const {t} *g, const {t} *x, {t} *out, long rows, long n, double eps) {{
  const long chunks = rows < {CHUNKS} ? rows : {CHUNKS};
  {t} *part = ({t} *)calloc((size_t)(chunks * 2 * n), sizeof({t}));
  if (!part) return 1;
#pragma omp parallel for schedule(static) if (rows * n >= {MIN_PARALLEL})
  for (long c = 0; c < chunks; c++) {{
    {t} *pw = part + c * 2 * n, *pb = pw + n;
    for (long r = rows * c / chunks; r < rows * (c + 1) / chunks; r++) {{{stats}
      const {t} *gr = g + r * n;
#pragma omp simd
      for (long i = 0; i < n; i++) {{ pw[i] += gr[i] * ((xr[i] - mean) * rstd); pb[i] += gr[i]; }}
    }}
  }}
  for (long i = 0; i < 2 * n; i++) out[i] = 0;
  for (long c = 0; c < chunks; c++)
    for (long i = 0; i < 2 * n; i++) out[i] += part[c * 2 * n + i];
  free(part);
  return 0;
}}
"""


def _library(t: str) -> Any:
    """The loaded library for element type `t`, or None without a working compiler."""
    if t not in _LIBS:
        _LIBS[t] = try_build(_source(t))
    return _LIBS[t]


def supported(*arrays: np.ndarray) -> bool:
    """True if the row kernels can take `arrays`: one float32/float64 dtype, C-contiguous, non-empty."""
    dt = arrays[0].dtype
    return (dt in _TYPES and arrays[0].size > 0
            and all(a.dtype == dt and a.flags.c_contiguous and a.shape == arrays[0].shape for a in arrays))


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(data_pointer(a))


def normalize(x: np.ndarray, n_features: int, eps: float, out: np.ndarray) -> bool:
    """Write the row-normalised `x` (rows of `n_features`) into `out`; False if no kernel is available."""
    t = _TYPES[x.dtype]
    lib = _library(t)
    if lib is None:
        return False
    getattr(lib, f"normalize_{t}")(_ptr(x), _ptr(out), ctypes.c_long(x.size // n_features),
                                   ctypes.c_long(n_features), ctypes.c_double(eps))
    return True


def normalize_grad(g: np.ndarray, x: np.ndarray, n_features: int, eps: float, out: np.ndarray) -> bool:
    """Write the VJP of the row normalisation at `x` applied to `g` into `out`; False without a kernel."""
    t = _TYPES[x.dtype]
    lib = _library(t)
    if lib is None:
        return False
    getattr(lib, f"normalize_grad_{t}")(_ptr(g), _ptr(x), _ptr(out), ctypes.c_long(x.size // n_features),
                                        ctypes.c_long(n_features), ctypes.c_double(eps))
    return True


def normalize_grad_scaled(g: np.ndarray, x: np.ndarray, w: np.ndarray, eps: float, out: np.ndarray) -> bool:
    """Write the VJP of the row normalisation at `x` applied to ``g * w`` (`w`: one value per feature,
    contiguous) into `out`; False without a kernel."""
    t = _TYPES[x.dtype]
    lib = _library(t)
    if lib is None:
        return False
    getattr(lib, f"normalize_grad_scaled_{t}")(_ptr(g), _ptr(x), _ptr(w), _ptr(out),
                                               ctypes.c_long(x.size // w.size), ctypes.c_long(w.size),
                                               ctypes.c_double(eps))
    return True


def norm_param_grads(g: np.ndarray, x: np.ndarray, n_features: int, eps: float, out: np.ndarray) -> bool:
    """Write ``[sum(g * normalize(x)), sum(g)]`` over the rows into `out` (``2 * n_features`` values);
    False without a kernel."""
    t = _TYPES[x.dtype]
    lib = _library(t)
    if lib is None:
        return False
    failed = getattr(lib, f"norm_param_grads_{t}")(_ptr(g), _ptr(x), _ptr(out),
                                                   ctypes.c_long(x.size // n_features),
                                                   ctypes.c_long(n_features), ctypes.c_double(eps))
    if failed:
        raise MemoryError("norm_param_grads: could not allocate the partial sums")
    return True


def softmax(x: np.ndarray, safe: bool, out: np.ndarray) -> bool:
    """Write the softmax of each last-axis row of `x` into `out`; False if no kernel is available."""
    t = _TYPES[x.dtype]
    lib = _library(t)
    if lib is None:
        return False
    n = x.shape[-1]
    getattr(lib, f"softmax_{t}")(_ptr(x), _ptr(out), ctypes.c_long(x.size // n), ctypes.c_long(n),
                                 ctypes.c_int(int(safe)))
    return True


def log_softmax(x: np.ndarray, out: np.ndarray) -> bool:
    """Write the log-softmax of each last-axis row of `x` into `out`; False if no kernel is available."""
    t = _TYPES[x.dtype]
    lib = _library(t)
    if lib is None:
        return False
    n = x.shape[-1]
    getattr(lib, f"log_softmax_{t}")(_ptr(x), _ptr(out), ctypes.c_long(x.size // n), ctypes.c_long(n))
    return True
