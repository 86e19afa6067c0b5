"""Generated C kernels for sliding-window ops: pooling and the im2col/col2im of convolutions.

NumPy runs these ops as one pass per kernel offset over strided slabs (a 3 x 3 window is nine passes,
each reading memory with a stride). The kernels here make one pass, with OpenMP across output rows:

- ``max_pool``, ``pool_argmax``, ``pool_gather``, ``pool_sum`` read each window of a strided input and
  write a contiguous output; ``pool_scatter`` and ``pool_sum_t`` (their transposes) write a contiguous
  input-shaped gradient, one thread per plane so windows that overlap never race.
- ``im2col`` writes the (channels x kernel offsets, batch x positions) matrix a convolution multiplies by,
  reading the unpadded input (positions in the padding read as zero); ``col2im`` adds such a matrix back
  into an input-shaped array, offsets in the same order as NumPy's slab loop (the same sums, bit for
  bit).

Every op treats the dimensions before the last ``len(kernel)`` (1 to 3) as batch dimensions ("planes")
whose offsets are passed as a table, so strided operands (a transposed convolution output, a cropped
gradient) are read in place. Floats of 32 and 64 bits are generated; other dtypes, more than three
window dimensions and machines without a C compiler keep the NumPy kernels.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from . import gemm
from .build import try_build
from .gemm import _ptr

_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_INDEX = {np.dtype(np.int32): "int32_t"}  # window offsets (``pool_argmax``) are int32
_LIBS: dict[tuple | None, Any] = {}
MIN_ELEMENTS = 1 << 14  # smaller pools stay on NumPy: no library to build for every odd window
# Input gradients run as convolutions (windows packed a row run at a time) when rows are at least this
# long; shorter rows cost more in packing bookkeeping than the GEMM + col2im route.
MIN_RUN = 8

# Geometry of a pooling call, as one long[] (three window dims; missing leading ones have size 1):
# B, in sizes I0..I2, out sizes O0..O2, then the element strides X0..X2 of the operand read with plane
# offsets. The window itself (K, S, D per dim) is compiled in as constants: the offsets of a window
# then unroll into straight-line code and the loop over a row's outputs vectorises.
_POOL_HEAD = r"""
  const long B = g[0], I0 = g[1], I1 = g[2], I2 = g[3], O0 = g[4], O1 = g[5], O2 = g[6];
  const long X0 = g[7], X1 = g[8], X2 = g[9];
  (void)I0;
"""

_ROW = r"""
      for (long o1 = 0; o1 < O1; o1++) {{
        const T *r = x + xp[b] + o0 * S0 * X0 + o1 * S1 * X1;
        {out_t} *o = {out} + ((b * O0 + o0) * O1 + o1) * O2;
        for (long o2 = 0; o2 < O2; o2++) {{
          const T *p = r + o2 * S2 * X2;
          {init}
{taps}
          {store}
        }}
      }}
"""
_UNROLL = 64  # windows up to this many elements become straight-line code


def _taps(kernel, dilation, update: str) -> str:
    """`update` on every window element but the first, as `v` with offset number `t`."""
    if math.prod(kernel) > _UNROLL:
        return ("          for (long t = 1; t < K0 * K1 * K2; t++) {\n"
                "            const long k0 = t / (K1 * K2), k1 = t / K2 % K1, k2 = t % K2;\n"
                "            const T v = p[k0 * D0 * X0 + k1 * D1 * X1 + k2 * D2 * X2];\n"
                f"            {update}\n          }}")
    lines = []
    for t, (k0, k1, k2) in enumerate(itertools.product(*(range(k) for k in kernel))):
        if t:
            at = f"p[{k0 * dilation[0]} * X0 + {k1 * dilation[1]} * X1 + {k2 * dilation[2]} * X2]"
            lines.append(f"          {{ const int t = {t}; const T v = {at}; {update} }}")
    return "\n".join(lines)


def _windows(window, out_t: str, out: str, init: str, update: str, store: str) -> str:
    """The loops of a read op: for each output, `init` on the window's first element `p[0]`, `update` on
    each other element `v` (`t` numbers the offsets row-major), `store` writes output `o[o2]`. Bodies
    are branch-free (random data would mispredict every comparison); the window unrolls, and a copy of
    the loops for a contiguous last dimension lets the compiler vectorise over a row's outputs."""
    row = _ROW.format(out_t=out_t, out=out, init=init, store=store,
                      taps=_taps(window[0], window[2], update))
    return ("\n#pragma omp parallel for collapse(2) schedule(static)\n"
            "  for (long b = 0; b < B; b++)\n    for (long o0 = 0; o0 < O0; o0++) {\n"
            "      if (X2 == 1) {\n        const long X2 = 1;" + row
            + "      } else {" + row + "      }\n    }\n")


# The element offset of each window offset number t (k0, k1, k2 row-major) in an array whose window
# dims have strides A0, A1, A2: a table, so reading an offset number costs no division.
_OFFSETS = r"""
  long off[K0 * K1 * K2];
  for (long k0 = 0, t = 0; k0 < K0; k0++)
    for (long k1 = 0; k1 < K1; k1++)
      for (long k2 = 0; k2 < K2; k2++, t++) off[t] = k0 * D0 * {a0} + k1 * D1 * {a1} + k2 * D2 * {a2};
"""

# The loops of a transposed op: each output-grid value (read strided) goes back into its window(s) of
# the contiguous input-shaped result; one thread owns a plane, so overlapping windows never race.
_SCATTER = _OFFSETS.format(a0="I1 * I2", a1="I2", a2="1") + r"""
#pragma omp parallel for schedule(static)
  for (long b = 0; b < B; b++) {{
    T *xb = gx + b * I0 * I1 * I2;
    memset(xb, 0, sizeof(T) * I0 * I1 * I2);
    const T *gb = gr + gp[b];
    for (long o0 = 0; o0 < O0; o0++)
      for (long o1 = 0; o1 < O1; o1++)
        for (long o2 = 0; o2 < O2; o2++) {{
          const T v = gb[o0 * X0 + o1 * X1 + o2 * X2];
          T *at = xb + (o0 * S0 * I1 + o1 * S1) * I2 + o2 * S2;
          {body}
        }}
  }}
"""

_ARG = "arg[((b * O0 + o0) * O1 + o1) * O2 + o2]"


def _value_functions(t: str, window: tuple) -> str:
    """The pooling kernels of element type `t` that need no window offsets."""
    return "\n".join([
        f"void max_pool_{t}(const T *x, const long *xp, const long *g, T *out) {{",
        _POOL_HEAD + _windows(
            window, out_t="T", out="out", init="T best = p[0]; int nan = best != best;",
            update="(void)t; best = v > best ? v : best; nan |= v != v;",  # NaN propagates
            store="o[o2] = nan ? (T)NAN : best;") + "}\n",
        f"void pool_sum_{t}(const T *x, const long *xp, const long *g, T *out) {{",
        _POOL_HEAD + _windows(window, out_t="T", out="out", init="T acc = p[0];",
                              update="(void)t; acc += v;", store="o[o2] = acc;") + "}\n",
        f"void pool_sum_t_{t}(const T *gr, const long *gp, const long *g, T *gx) {{",
        _POOL_HEAD + _SCATTER.format(body="for (long k = 0; k < K0 * K1 * K2; k++) at[off[k]] += v;") + "}\n",
    ])


def _index_functions(t: str, i: str, window: tuple) -> str:
    """The pooling kernels of element type `t` that produce or read window offsets of type `i`."""
    n = f"{t}_{i}"
    return "\n".join([
        f"void pool_argmax_{n}(const T *x, const long *xp, const long *g, I *arg) {{",
        _POOL_HEAD + _windows(  # the first NaN, else the first maximum
            window, out_t="I", out="arg", init="T best = p[0]; int nan = best != best; int at = 0;",
            update="const int pick = -(((v > best) | (v != v)) & !nan);  /* all ones or zero */\n"
                   "                at = (at & ~pick) | (t & pick); nan |= v != v;\n"
                   "                best = v > best ? v : best;",
            store="o[o2] = (I)at;") + "}\n",
        f"void pool_gather_{n}(const T *x, const long *xp, const long *g, const I *arg, T *out) {{",
        _POOL_HEAD + _OFFSETS.format(a0="X0", a1="X1", a2="X2") + r"""
#pragma omp parallel for collapse(2) schedule(static)
  for (long b = 0; b < B; b++)
    for (long o0 = 0; o0 < O0; o0++) {
      const T *xb = x + xp[b];
      for (long o1 = 0; o1 < O1; o1++)
        for (long o2 = 0; o2 < O2; o2++)
          """ + f"out[((b * O0 + o0) * O1 + o1) * O2 + o2] =\n"
              f"              xb[o0 * S0 * X0 + o1 * S1 * X1 + o2 * S2 * X2 + off[{_ARG}]];" + r"""
    }
}
""",
        f"void pool_scatter_{n}(const T *gr, const long *gp, const long *g, const I *arg, T *gx) {{",
        _POOL_HEAD + _SCATTER.format(body=f"at[off[{_ARG}]] += v;") + "}\n",
    ])


def _pool_source(window: tuple) -> str:
    """The pooling kernels of one window (kernel, stride, dilation; three dims each), every dtype."""
    names = ("K", "S", "D")
    parts = [f"/* ember pooling kernels: kernel {window[0]}, stride {window[1]}, dilation {window[2]} */",
             "#include <math.h>\n#include <stdint.h>\n#include <string.h>"]
    parts += [f"#define {n}{d} {v}L" for n, values in zip(names, window) for d, v in enumerate(values)]
    for t in _TYPES.values():
        parts.append(f"#define T {t}\n" + _value_functions(t, window))
        for i in _INDEX.values():
            parts.append(f"#define I {i}\n" + _index_functions(t, i, window) + "#undef I")
        parts.append("#undef T")
    return "\n".join(parts) + "\n"


# Geometry of im2col/col2im: N, C, I0..I2, O0..O2, K0..K2, S0..S2, D0..D2, pad P0..P2 (low side),
# then the element strides of the input: XN, XC, X0..X2. (Run-time values: a convolution's time is
# in its matrix product; these loops copy whole rows.)
_CONV_HEAD = r"""
  const long N = g[0], C = g[1], I0 = g[2], I1 = g[3], I2 = g[4], O0 = g[5], O1 = g[6], O2 = g[7];
  const long K0 = g[8], K1 = g[9], K2 = g[10], S0 = g[11], S1 = g[12], S2 = g[13];
  const long D0 = g[14], D1 = g[15], D2 = g[16], P0 = g[17], P1 = g[18], P2 = g[19];
  const long XN = g[20], XC = g[21], X0 = g[22], X1 = g[23], X2 = g[24];
  const long taps = K0 * K1 * K2, P = O0 * O1 * O2;
  (void)XN; (void)XC; (void)X0; (void)X1; (void)X2;
"""

# The positions o2 in [lo, hi) of an output row whose input column o2*S2 + k2*D2 - P2 is inside.
_RANGE = r"""
              const long a2 = P2 - k2 * D2, b2 = I2 - 1 + P2 - k2 * D2;
              long lo = a2 <= 0 ? 0 : (a2 + S2 - 1) / S2, hi = b2 < 0 ? 0 : b2 / S2 + 1;
              if (hi > O2) hi = O2;
              if (lo > hi) lo = hi;
"""


def _conv_functions(t: str) -> str:
    """im2col and col2im for element type `t`."""
    return f"void im2col_{t}(const T *x, const long *g, T *cols) {{" + _CONV_HEAD + r"""
#pragma omp parallel for collapse(2) schedule(static)
  for (long r = 0; r < C * taps; r++)
    for (long n = 0; n < N; n++) {
      const long c = r / taps, k = r % taps, k2 = k % K2, k1 = (k / K2) % K1, k0 = k / (K2 * K1);
      const T *src = x + n * XN + c * XC;
      T *dst = cols + r * N * P + n * P;
      for (long o0 = 0; o0 < O0; o0++) {
        const long i0 = o0 * S0 + k0 * D0 - P0;
        for (long o1 = 0; o1 < O1; o1++) {
          const long i1 = o1 * S1 + k1 * D1 - P1;
          T *d = dst + (o0 * O1 + o1) * O2;
          if (i0 < 0 || i0 >= I0 || i1 < 0 || i1 >= I1) {
            memset(d, 0, sizeof(T) * O2);
            continue;
          }
          const T *s = src + i0 * X0 + i1 * X1;""" + _RANGE + r"""
          for (long o2 = 0; o2 < lo; o2++) d[o2] = 0;
          if (S2 == 1 && X2 == 1) {
            memcpy(d + lo, s + lo - a2, sizeof(T) * (hi - lo));
          } else {
            for (long o2 = lo; o2 < hi; o2++) d[o2] = s[(o2 * S2 - a2) * X2];
          }
          for (long o2 = hi; o2 < O2; o2++) d[o2] = 0;
        }
      }
    }
}

""" + f"void col2im_{t}(const T *cols, const long *g, T *gx) {{" + _CONV_HEAD + r"""
#pragma omp parallel for collapse(2) schedule(static)
  for (long n = 0; n < N; n++)
    for (long c = 0; c < C; c++) {
      T *dst = gx + (c * N + n) * I0 * I1 * I2;  /* channel-major */
      memset(dst, 0, sizeof(T) * I0 * I1 * I2);
      for (long k = 0; k < taps; k++) {
        const long k2 = k % K2, k1 = (k / K2) % K1, k0 = k / (K2 * K1);
        const T *src = cols + (c * taps + k) * N * P + n * P;
        for (long o0 = 0; o0 < O0; o0++) {
          const long i0 = o0 * S0 + k0 * D0 - P0;
          if (i0 < 0 || i0 >= I0) continue;
          for (long o1 = 0; o1 < O1; o1++) {
            const long i1 = o1 * S1 + k1 * D1 - P1;
            if (i1 < 0 || i1 >= I1) continue;
            T *d = dst + (i0 * I1 + i1) * I2;
            const T *s = src + (o0 * O1 + o1) * O2;""" + _RANGE + r"""
            if (S2 == 1) {
              T *dd = d - a2;
              for (long o2 = lo; o2 < hi; o2++) dd[o2] += s[o2];
            } else {
              for (long o2 = lo; o2 < hi; o2++) d[o2 * S2 - a2] += s[o2];
            }
          }
        }
      }
    }
}
"""


def _conv_source() -> str:
    parts = ["/* ember im2col/col2im kernels, for float and double */",
             "#include <stdint.h>\n#include <string.h>\n"]
    for t in _TYPES.values():
        parts.append(f"#define T {t}\n" + _conv_functions(t) + "#undef T\n")
    return "\n".join(parts)


def _library(window: tuple | None = None) -> Any:
    """The loaded library of the im2col/col2im kernels (`window` None) or of one pooling window; None
    without a working compiler."""
    if window not in _LIBS:
        _LIBS[window] = try_build(_conv_source() if window is None else _pool_source(window))
    return _LIBS[window]


def _elements(a: np.ndarray) -> tuple[int, ...] | None:
    """The strides of `a` in elements, or None if one is not a whole number of elements."""
    size = a.itemsize
    if any(s % size for s in a.strides):
        return None
    return tuple(s // size for s in a.strides)


def _planes(shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """Element offsets of every plane (index over the leading dims, row-major)."""
    offsets = np.zeros(1, np.int64)
    for n, s in zip(shape, strides):
        offsets = (offsets[:, None] + np.arange(n, dtype=np.int64) * s).ravel()
    return offsets


def _pad3(values, fill) -> list[int]:
    values = list(values)
    return [fill] * (3 - len(values)) + values


class _Window:
    """One pooling call: the operand read with plane offsets, its geometry, and the window's library.

    ``ok`` is False where the NumPy kernel stays (dtype, rank, strides, size below ``MIN_ELEMENTS`` or
    no compiler)."""

    def __init__(self, src: np.ndarray, in_sp, out_sp, kernel, stride, dilation):
        nd = len(kernel)
        strides = _elements(src)
        self.ok = (1 <= nd <= 3 and strides is not None and src.dtype in _TYPES and src.ndim > nd
                   and max(src.size, math.prod(in_sp)) >= MIN_ELEMENTS and 0 not in src.shape
                   and 0 not in out_sp)
        if not self.ok or strides is None:
            return
        self.lib = _library((tuple(_pad3(kernel, 1)), tuple(_pad3(stride, 1)), tuple(_pad3(dilation, 1))))
        if self.lib is None:
            self.ok = False
            return
        # planes in the operand's memory order: results are written in that order too (a channel-major
        # convolution output pools to a channel-major result), so chains of window ops stream
        lead = src.ndim - nd
        self.lead = tuple(sorted(range(lead), key=lambda d: -src.strides[d]))
        self.nd = nd
        self.planes = _planes(tuple(src.shape[d] for d in self.lead), tuple(strides[d] for d in self.lead))
        sizes = _pad3(in_sp, 1) + _pad3(out_sp, 1) + _pad3(strides[-nd:], 0)
        self.geom = np.array([len(self.planes)] + sizes, np.int64)
        self.type = _TYPES[src.dtype]

    def _order(self) -> tuple[int, ...]:
        return self.lead + tuple(range(len(self.lead), len(self.lead) + self.nd))

    def empty(self, shape, dtype) -> tuple[np.ndarray, np.ndarray]:
        """A result of logical `shape` laid out with its planes in the operand's order: (the buffer the
        kernel writes, row-major in that order; the logical view of it)."""
        order = self._order()
        buf = _empty(tuple(shape[d] for d in order), dtype)
        return buf, buf.transpose(tuple(np.argsort(order)))

    def planar(self, a: np.ndarray) -> np.ndarray:
        """`a` (shaped like the results) with its planes in the operand's order, row-major."""
        return np.ascontiguousarray(a.transpose(self._order()))

    def call(self, name: str, *arrays: np.ndarray, index: np.dtype | None = None) -> None:
        """Run kernel `name` on `arrays` (the strided operand first); `index`: the offsets' dtype."""
        suffix = "" if index is None else f"_{_INDEX[np.dtype(index)]}"
        fn = getattr(self.lib, f"{name}_{self.type}{suffix}")
        src, rest = arrays[0], arrays[1:]
        fn(_ptr(src), _ptr(self.planes), _ptr(self.geom), *(_ptr(a) for a in rest))


def _out_sp(in_sp, kernel, stride, dilation) -> tuple[int, ...]:
    from ..._core.primitives.conv import out_length

    return tuple(out_length(n, k, s, d) for n, k, s, d in zip(in_sp, kernel, stride, dilation))


def _empty(shape, dtype) -> np.ndarray:
    from ...backends import CPU

    return CPU.pool.empty(tuple(shape), dtype)


# -- CPU kernels of the pooling primitives -----------------------------------------------------------
def _reduce_windows(name: str, numpy_impl: str, x, kernel, stride, dilation):
    """Kernel `name` (max or sum over each window) on `x`, else the NumPy kernel `numpy_impl`."""
    from ..._core.primitives import conv

    nd = len(kernel)
    out_sp = _out_sp(x.shape[-nd:], kernel, stride, dilation)
    win = _Window(x, x.shape[-nd:], out_sp, kernel, stride, dilation)
    if not win.ok:
        return getattr(conv, numpy_impl)(np, x, kernel, stride, dilation)
    buf, out = win.empty(x.shape[:-nd] + out_sp, x.dtype)
    win.call(name, x, buf)
    return out


def _max_pool_cpu(x, kernel, stride, dilation):
    return _reduce_windows("max_pool", "_max_pool_impl", x, kernel, stride, dilation)


def _sum_pool_cpu(x, kernel, stride, dilation):
    return _reduce_windows("pool_sum", "_sum_pool_impl", x, kernel, stride, dilation)


def _argmax_cpu(x, out, kernel, stride, dilation):
    from ..._core.primitives import conv

    nd = len(kernel)
    win = _Window(x, x.shape[-nd:], out.shape[-nd:], kernel, stride, dilation)
    if not win.ok:
        return conv._argmax_impl(np, x, out, kernel, stride, dilation)
    index = np.dtype(conv._index_dtype(np, kernel))
    buf, arg = win.empty(out.shape, index)
    win.call("pool_argmax", x, buf, index=index)
    return arg


def _gather_cpu(x, arg, kernel, stride, dilation):
    from ..._core.primitives import conv

    nd = len(kernel)
    win = _Window(x, x.shape[-nd:], arg.shape[-nd:], kernel, stride, dilation)
    if not win.ok or arg.dtype not in _INDEX or arg.shape[:-nd] != x.shape[:-nd]:
        return conv._gather_impl(np, x, arg, kernel, stride, dilation)
    buf, out = win.empty(arg.shape, x.dtype)
    win.call("pool_gather", x, win.planar(arg), buf, index=arg.dtype)
    return out


def _scatter_cpu(g, arg, in_spatial, kernel, stride, dilation):
    from ..._core.primitives import conv

    nd = len(kernel)
    win = _Window(g, in_spatial, g.shape[-nd:], kernel, stride, dilation)
    if not win.ok or arg.dtype not in _INDEX or arg.shape != g.shape:
        return conv._scatter_impl(np, g, arg, in_spatial, kernel, stride, dilation)
    buf, gx = win.empty(g.shape[:-nd] + tuple(in_spatial), g.dtype)
    win.call("pool_scatter", g, win.planar(arg), buf, index=arg.dtype)
    return gx


def _sum_pool_t_cpu(g, in_spatial, kernel, stride, dilation):
    from ..._core.primitives import conv

    nd = len(kernel)
    win = _Window(g, in_spatial, g.shape[-nd:], kernel, stride, dilation)
    if not win.ok:
        return conv._sum_pool_t_impl(np, g, in_spatial, kernel, stride, dilation)
    buf, gx = win.empty(g.shape[:-nd] + tuple(in_spatial), g.dtype)
    win.call("pool_sum_t", g, buf)
    return gx


# -- im2col / col2im ---------------------------------------------------------------------------------
def _conv_geom(x_shape, strides, in_sp, out_sp, kernel, stride, padding, dilation) -> np.ndarray:
    lead = [x_shape[0], x_shape[1]]
    return np.array(lead + _pad3(in_sp, 1) + _pad3(out_sp, 1) + _pad3(kernel, 1) + _pad3(stride, 1)
                    + _pad3(dilation, 1) + _pad3([lo for lo, _ in padding], 0) + list(strides[:2])
                    + _pad3(strides[2:], 0), np.int64)


def conv_applies(x: np.ndarray, kernel) -> bool:
    """True if the generated im2col/col2im serve a convolution of `x` (dtype, rank, compiler)."""
    return (x.dtype in _TYPES and 1 <= len(kernel) <= 3 and x.ndim == len(kernel) + 2 and x.size > 0
            and _elements(x) is not None and _library() is not None)


def _conv_plan(x: np.ndarray, kernel, stride, padding, dilation, out_channels: int):
    """The output spatial size of a convolution of `x` and its geometry: the im2col/col2im geometry
    followed by the output channel count (read by the GEMM kernels only)."""
    in_sp = x.shape[2:]
    out_sp = _out_sp([n + lo + hi for n, (lo, hi) in zip(in_sp, padding)], kernel, stride, dilation)
    geom = _conv_geom(x.shape, _elements(x), in_sp, out_sp, kernel, stride, padding, dilation)
    return out_sp, np.append(geom, np.int64(out_channels))


def im2col(x: np.ndarray, kernel, stride, padding, dilation, groups: int):
    """The windows of `x` (N, C, *S) as a contiguous (groups, C/groups·prod(kernel), N·P) matrix (rows
    channel-major then kernel offset; columns batch-major then position) and the output spatial size."""
    out_sp, geom = _conv_plan(x, kernel, stride, padding, dilation, 0)  # (the channel count is unread)
    taps, positions = math.prod(kernel), x.shape[0] * math.prod(out_sp)
    cols = np.empty((groups, x.shape[1] // groups * taps, positions), x.dtype)
    getattr(_library(), f"im2col_{_TYPES[x.dtype]}")(_ptr(x), _ptr(geom), _ptr(cols))
    return cols, out_sp


def col2im(cols: np.ndarray, n: int, channels: int, in_spatial, out_sp, kernel, stride, padding,
           dilation) -> np.ndarray:
    """The transpose of :func:`im2col`: (C·prod(kernel), N·P) rows added back into (N, C, *in_spatial),
    stored channel-major (the (C, N, *in_spatial) array seen through a transpose)."""
    cols = np.ascontiguousarray(cols)
    gx = _empty((channels, n) + tuple(in_spatial), cols.dtype)
    geom = _conv_geom((n, channels), (0, 0), in_spatial, out_sp, kernel, stride, padding, dilation)
    getattr(_library(), f"col2im_{_TYPES[cols.dtype]}")(_ptr(cols), _ptr(geom), _ptr(gx))
    return gx.swapaxes(0, 1)  # channel-major, like the cotangent it came from


# -- CPU kernels of the convolution primitives --------------------------------------------------------
def _conv_cpu(x, w, stride, padding, dilation, groups):
    from ..._core.primitives import conv

    kernel = tuple(w.shape[2:])
    if not conv_applies(x, kernel) or w.dtype != x.dtype:
        return conv._conv_impl(np, x, w, stride, padding, dilation, groups)
    if gemm.supports(x, w):  # the product packs the windows itself: no im2col matrix
        out_sp, geom = _conv_plan(x, kernel, stride, padding, dilation, w.shape[0])
        out = gemm.conv(x, w, geom, groups)
    else:
        cols, out_sp = im2col(x, kernel, stride, padding, dilation, groups)
        out = np.matmul(w.reshape(groups, w.shape[0] // groups, -1), cols)  # (G, O/G, N·P)
    # channel-major, seen as (N, O, *S) without a copy (see the NumPy kernel)
    return out.reshape((w.shape[0], x.shape[0]) + out_sp).swapaxes(0, 1)


def _input_grad_cpu(g, w, in_spatial, stride, padding, dilation, groups):
    from ..._core.primitives import conv

    kernel = tuple(w.shape[2:])
    if not conv_applies(g, kernel) or w.dtype != g.dtype:
        return conv._input_grad_impl(np, g, w, in_spatial, stride, padding, dilation, groups)
    og, cg, taps = g.shape[1] // groups, w.shape[1], math.prod(kernel)
    if all(s == 1 for s in stride) and in_spatial[-1] >= MIN_RUN and gemm.supports(g, w):
        return _input_grad_as_conv(g, w, in_spatial, padding, dilation, groups)
    wk = w.reshape(groups, og, cg * taps).transpose(0, 2, 1)  # (G, C/G·K, O/G): BLAS reads it transposed
    gc = conv._channel_major(np, g, groups)
    cols = gemm.matmul(wk, gc) if gemm.supports(wk, gc) else np.matmul(wk, gc)
    return col2im(cols.reshape(groups * cg * taps, -1), g.shape[0], groups * cg, in_spatial, g.shape[2:],
                  kernel, stride, padding, dilation)


def _input_grad_as_conv(g, w, in_spatial, padding, dilation, groups):
    """The input gradient of a stride-1 convolution as a convolution of the output gradient with the
    flipped, transposed kernel (each input position gathers the outputs its window reached), so the
    product packs `g`'s windows in place instead of scattering a column matrix back."""
    o, cg = w.shape[:2]
    kernel = w.shape[2:]
    nd = len(kernel)
    flipped = np.flip(w.reshape((groups, o // groups, cg) + kernel), tuple(range(3, 3 + nd)))
    wt = np.ascontiguousarray(flipped.swapaxes(1, 2)).reshape((groups * cg, o // groups) + kernel)
    # output i gathers g[i + k'·d - lo] with lo = d·(K-1) - padding_lo; the high side pads the rest
    pad = []
    for n_in, n_out, k, d, (lo, _) in zip(in_spatial, g.shape[2:], kernel, dilation, padding):
        low = d * (k - 1) - lo
        pad.append((low, n_in + d * (k - 1) - n_out - low))
    out_sp, geom = _conv_plan(g, kernel, (1,) * nd, pad, dilation, groups * cg)
    out = gemm.conv(g, wt, geom, groups)
    return out.reshape((groups * cg, g.shape[0]) + tuple(out_sp)).swapaxes(0, 1)


def _weight_grad_cpu(x, g, kernel, stride, padding, dilation, groups):
    from ..._core.primitives import conv

    kernel = tuple(kernel)
    if not conv_applies(x, kernel) or g.dtype != x.dtype:
        return conv._weight_grad_impl(np, x, g, kernel, stride, padding, dilation, groups)
    gc = conv._channel_major(np, g, groups)
    if gemm.supports(x, g):  # windows packed transposed straight from x
        _, geom = _conv_plan(x, kernel, stride, padding, dilation, g.shape[1])
        gw = gemm.conv_wgrad(x, gc, geom, groups, x.shape[1] // groups * math.prod(kernel))
    else:
        cols, _ = im2col(x, kernel, stride, padding, dilation, groups)
        gw = np.matmul(gc, cols.transpose(0, 2, 1))  # (G, O/G, C/G·K)
    return gw.reshape((g.shape[1], x.shape[1] // groups) + kernel)


def register() -> None:
    """Make the generated kernels the CPU kernels of the pooling and convolution primitives."""
    from ..._core.primitives import conv

    conv.conv_p.kernels["cpu"] = _conv_cpu
    conv.conv_input_grad_p.kernels["cpu"] = _input_grad_cpu
    conv.conv_weight_grad_p.kernels["cpu"] = _weight_grad_cpu
    conv.max_pool_p.kernels["cpu"] = _max_pool_cpu
    conv.pool_argmax_p.kernels["cpu"] = _argmax_cpu
    conv.pool_gather_p.kernels["cpu"] = _gather_cpu
    conv.pool_scatter_p.kernels["cpu"] = _scatter_cpu
    conv.pool_sum_p.kernels["cpu"] = _sum_pool_cpu
    conv.pool_sum_t_p.kernels["cpu"] = _sum_pool_t_cpu


register()
