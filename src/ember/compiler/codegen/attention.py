"""A generated fused attention kernel: ``softmax(q kᵀ · scale + mask) v`` without materialising the scores.

For each batch entry (the flattened leading dimensions, spread over OpenMP threads) the kernel copies
``k`` transposed into a small scratch block, then takes the queries a few rows at a time: their score
rows (``S`` values each, L1-resident) are accumulated with the inner loop over keys (vectorised), the
additive mask and the causal limit applied, the safe softmax taken in place (a row with no finite score
gives zeros, as the ``softmax`` primitive with ``safe``), and the weighted sum of value rows written to
the output. Memory traffic is one read of ``q``, ``k``, ``v`` and the mask and one write of the output;
the ``(L, S)`` weights never reach memory.

The mask is passed as a pointer with an element offset per batch entry (``moff``) and strides for the
query and key axes (0 where it broadcasts), so a ``(N, 1, 1, S)`` padding mask is read in place.

Under a causal mask neither pass computes what the mask zeroes: the forward scores stop at each query
block's last key, and the backward's five products skip the blocks above the diagonal (backward of
GPT's 16 x 4 heads of 128 x 64: 7.8 -> 6.0 ms; PyTorch's SDPA backward takes about 8.4). The backward
reads the transposes of P and dS in place (column by column) rather than copying them (6.0 -> 4.3 ms).
Products store whole register blocks (element by element only at a ragged edge), ``k`` and ``v`` are
transposed a block of W rows at a time (the block stays in L1), and the backward's row sums and
softmax loops are vectorised (same shapes, old and new alternated: backward 4.6 -> 3.0 ms, forward
1.84 -> 1.57 ms).

The Python side is kept short for small sizes, where it took most of a call (a tiny GPT's heads of 32 x
16): the kernels' argument types are declared once, so they take plain integers, and each operand's
layout (its offsets per batch entry and its strides) is cached by shape and strides in a bounded dict
(``MAX_LAYOUTS`` entries; :func:`clear_layout_cache` empties it). The cached offset arrays are read-only
and shared, as the kernels only read them. Preparation per call went from about 52 to 10 µs forward and
63 to 12 µs backward (one thread: forward 93 -> 40 µs in all, backward 113 -> 54 µs).
"""
from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

from .build import data_pointer, try_build
from .c import _HELPERS

_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
ROW_BLOCK = 4  # query rows sharing one pass over the transposed keys (block_product is written for 4)
# multiply-adds (batch x L x S x (E + Ev)) from which batch entries are shared among threads: below,
# waking the threads costs more than it saves (a tiny GPT's 8 heads of 32 x 16: 53 µs alone, 105 µs shared)
MIN_PARALLEL = 1 << 20
MAX_LAYOUTS = 256  # operand layouts kept by _layout; the cache is emptied when it is full
_LIBS: dict[str, Any] = {}
# _layout's results by (shape, strides, itemsize, lead, rows, cols); cleared by clear_layout_cache
_LAYOUTS: dict[tuple, tuple[np.ndarray, int, int]] = {}
_NO_OFFSETS = np.zeros(1, np.int64)  # the mask's offsets when there is no mask
_NO_OFFSETS.flags.writeable = False

# Argument types of the kernels (after the element type suffix): an operand is (pointer, offsets, row
# stride), the mask (pointer, offsets, row stride, key stride), then sizes, scale and causal.
_P, _L = ctypes.c_void_p, ctypes.c_long
_SIZES = [_L] * 5 + [ctypes.c_double, ctypes.c_int]
_ARGTYPES = {"attention": [_P, _P, _L] * 3 + [_P, _P, _L, _L] + [_P, _P, _L] + _SIZES,
             "attention_grad": [_P, _P, _L] * 3 + [_P, _P, _L, _L] + [_P, _P, _L] * 2 + [_P] + _SIZES}


def _source(t: str) -> str:
    exp = "ember_expf" if t == "float" else "exp"
    w = 16 if t == "float" else 8  # columns per register block: two AVX registers
    return f"""/* ember fused attention: softmax(q k^T * scale + mask) v, one batch entry per task; {t} */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

{_HELPERS["expf"]}

#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif
#define RB {ROW_BLOCK}
#define W {w}
typedef {t} vec __attribute__((vector_size(W * sizeof({t}))));

static inline vec vload(const {t} *p) {{
  vec x;
  memcpy(&x, p, sizeof x);
  return x;
}}

/* acc[r] = sum_e a[r][e] * b[e][0..W) for RB rows of a, element a[r][e] at a[r * ars + e * aes] (a
   row-major matrix: ars its row stride, aes 1; the transpose of one: ars 1, aes its row stride), b
   with row stride ldb */
static inline void block_product(const {t} *a, long ars, long aes, const {t} *b, long ldb, long depth,
                                 vec acc[RB]) {{
  vec c0 = {{0}}, c1 = {{0}}, c2 = {{0}}, c3 = {{0}};
  for (long e = 0; e < depth; e++) {{
    const vec br = vload(b + e * ldb);
    const {t} *ae = a + e * aes;
    c0 += ae[0] * br;
    c1 += ae[ars] * br;
    c2 += ae[2 * ars] * br;
    c3 += ae[3 * ars] * br;
  }}
  acc[0] = c0;
  acc[1] = c1;
  acc[2] = c2;
  acc[3] = c3;
}}

/* q, k, v, mask: element offsets per batch entry (qoff...) and row strides (qrs...); features are
   contiguous except for the mask, whose key stride mcs is 1 or 0 (broadcast) */
int attention_{t}(const {t} *q, const int64_t *qoff, long qrs, const {t} *k, const int64_t *koff, long krs,
                  const {t} *v, const int64_t *voff, long vrs, const {t} *mask, const int64_t *moff,
                  long mrs, long mcs, {t} *out, const int64_t *ooff, long ors, long batch, long L, long S,
                  long E, long Ev, double scale_d, int causal) {{
  const {t} scale = ({t})scale_d;
  const long Sp = (S + W - 1) / W * W, Evp = (Ev + W - 1) / W * W;
  int failed = 0;
#pragma omp parallel if (batch * L * S * (E + Ev) >= {MIN_PARALLEL})
  {{
    /* scratch: keys transposed (E x Sp), values padded (S x Evp), a query block, weights (RB x Sp) */
    {t} *kt = ({t} *)malloc(sizeof({t}) * (size_t)(E * Sp + S * Evp + RB * E + RB * Sp));
    if (!kt) {{
#pragma omp atomic write
      failed = 1;
    }}
#pragma omp for schedule(static)
    for (long b = 0; b < batch; b++) {{
      if (!kt) continue;
      {t} *vp = kt + E * Sp, *qs = vp + S * Evp, *s = qs + RB * E;
      const {t} *qb = q + qoff[b], *kb = k + koff[b], *vb = v + voff[b];
      {t} *ob = out + ooff[b];
      for (long j0 = 0; j0 < Sp; j0 += W) {{ /* W keys at a time: see the backward's transposes */
        const long j1 = j0 + W < S ? j0 + W : S;
        for (long e = 0; e < E; e++) {{
          for (long j = j0; j < j1; j++) kt[e * Sp + j] = kb[j * krs + e];
          for (long j = j1; j < j0 + W; j++) kt[e * Sp + j] = 0;
        }}
      }}
      for (long j = 0; j < S; j++) {{
        memcpy(vp + j * Evp, vb + j * vrs, sizeof({t}) * (size_t)Ev);
        for (long d = Ev; d < Evp; d++) vp[j * Evp + d] = 0;
      }}
      for (long i0 = 0; i0 < L; i0 += RB) {{
        const long nb = L - i0 < RB ? L - i0 : RB;
        for (long r = 0; r < RB; r++)
          for (long e = 0; e < E; e++) qs[r * E + e] = r < nb ? qb[(i0 + r) * qrs + e] * scale : 0;
        /* causal: keys past the block's last query are masked, so their scores are not computed */
        const long jend = causal && i0 + RB < Sp ? i0 + RB : Sp;
        for (long j0 = 0; j0 < jend; j0 += W) {{
          vec acc[RB];
          block_product(qs, E, 1, kt + j0, Sp, E, acc);
          for (int r = 0; r < RB; r++) memcpy(s + r * Sp + j0, &acc[r], sizeof acc[r]);
        }}
        long nmax = 0;
        {t} inv[RB];
        for (long r = 0; r < RB; r++) {{
          const long i = i0 + r;
          {t} *sr = s + r * Sp;
          const long n = r >= nb ? 0 : (causal ? (i + 1 < S ? i + 1 : S) : S);
          inv[r] = 0;
          if (n > 0 && mask) {{
            const {t} *mr = mask + moff[b] + i * mrs;
            if (mcs == 1) {{
#pragma omp simd
              for (long j = 0; j < n; j++) sr[j] += mr[j];
            }} else {{
              const {t} m0 = mr[0];
#pragma omp simd
              for (long j = 0; j < n; j++) sr[j] += m0;
            }}
          }}
          {t} top = -INFINITY;
#pragma omp simd reduction(max:top)
          for (long j = 0; j < n; j++) top = sr[j] > top ? sr[j] : top;
          long used = n;
          if (top == -INFINITY) {{
            used = 0; /* no key: the row's output is zeros */
          }} else {{
            const {t} shift = isfinite(top) ? top : 0;
            {t} total = 0;
#pragma omp simd reduction(+:total)
            for (long j = 0; j < n; j++) {{
              const {t} x = {exp}(sr[j] - shift); /* masked: exp(-inf - finite shift) = 0 */
              sr[j] = x;
              total += x;
            }}
            inv[r] = ({t})1 / total;
          }}
          for (long j = used; j < Sp; j++) sr[j] = 0;
          nmax = used > nmax ? used : nmax;
        }}
        for (long d0 = 0; d0 < Evp; d0 += W) {{
          vec acc[RB];
          block_product(s, Sp, 1, vp + d0, Evp, nmax, acc);
          for (long r = 0; r < nb; r++) {{
            const vec x = acc[r] * inv[r];
            if (d0 + W <= Ev) {{
              memcpy(ob + (i0 + r) * ors + d0, &x, sizeof x);
            }} else {{
              for (long d = d0; d < Ev; d++) ob[(i0 + r) * ors + d] = x[d - d0];
            }}
          }}
        }}
      }}
    }}
    free(kt);
  }}
  return failed;
}}

/* The VJP: with P the weights (recomputed), D_i = sum_d g_id out_id, dS = P * (g v^T - D),
   dq = dS k * scale, dk = dS^T q * scale, dv = P^T g. dq, dk, dv are row-major per batch entry. */
static void rows_times({t} *dst, long ldd, long rows, long cols, const {t} *a, long ars, long aes,
                       const {t} *b, long ldb, long depth, long bcols, {t} factor, int band) {{
  /* dst[i][j] = factor * sum_e a[i][e] * b[e][j] for i < rows, j < cols; a (strides as block_product's)
     has rows padded to RB and b has bcols (a multiple of W) columns. Under a causal mask, band skips the
     blocks known to be zero: 1: columns past each row block's last row are not computed (nor
     written); 2: the sum stops at the row block's last row (a's later columns are zero); 3: it starts
     at the row block's first row (a's earlier columns are zero). */
  for (long i0 = 0; i0 < rows; i0 += RB) {{
    const long jend = band == 1 && i0 + RB < bcols ? i0 + RB : bcols;
    const long lo = band == 3 ? (i0 < depth ? i0 : depth) : 0;
    const long hi = band == 2 && i0 + RB < depth ? i0 + RB : depth;
    for (long j0 = 0; j0 < jend; j0 += W) {{
      vec acc[RB];
      block_product(a + i0 * ars + lo * aes, ars, aes, b + lo * ldb + j0, ldb, hi - lo, acc);
      for (long r = 0; r < RB && i0 + r < rows; r++) {{
        const vec x = acc[r] * factor;
        if (j0 + W <= cols) {{
          memcpy(dst + (i0 + r) * ldd + j0, &x, sizeof x);
        }} else {{
          for (long j = j0; j < cols; j++) dst[(i0 + r) * ldd + j] = x[j - j0];
        }}
      }}
    }}
  }}
}}

int attention_grad_{t}(const {t} *q, const int64_t *qoff, long qrs, const {t} *k, const int64_t *koff,
                       long krs, const {t} *v, const int64_t *voff, long vrs, const {t} *mask,
                       const int64_t *moff, long mrs, long mcs, const {t} *g, const int64_t *goff, long grs,
                       const {t} *o, const int64_t *ooff, long ors, {t} *packed, long batch,
                       long L, long S, long E, long Ev, double scale_d, int causal) {{
  /* packed: per batch entry dq (L x E), then dk (S x E), then dv (S x Ev), each row-major */
  const long pstride = L * E + S * E + S * Ev;
  const {t} scale = ({t})scale_d;
  const long Lp = (L + W - 1) / W * W, Sp = (S + W - 1) / W * W;
  const long Ep = (E + W - 1) / W * W, Evp = (Ev + W - 1) / W * W;
  int failed = 0;
#pragma omp parallel if (batch * L * S * (E + Ev) >= {MIN_PARALLEL})
  {{
    const size_t need = (size_t)(Lp * Ep + E * Sp + Sp * Ep + Ev * Sp + Lp * Evp + 2 * Lp * Sp + Lp);
    {t} *qs = ({t} *)calloc(need, sizeof({t}));
    if (!qs) {{
#pragma omp atomic write
      failed = 1;
    }}
#pragma omp for schedule(static)
    for (long b = 0; b < batch; b++) {{
      if (!qs) continue;
      {t} *kt = qs + Lp * Ep, *kp = kt + E * Sp, *vt = kp + Sp * Ep, *gp = vt + Ev * Sp;
      {t} *P = gp + Lp * Evp, *dS = P + Lp * Sp, *D = dS + Lp * Sp;
      const {t} *qb = q + qoff[b], *kb = k + koff[b], *vb = v + voff[b], *gb = g + goff[b], *ob = o + ooff[b];
      for (long i = 0; i < L; i++) {{
        const {t} *qi = qb + i * qrs, *gi = gb + i * grs, *oi = ob + i * ors;
        {t} *qsi = qs + i * Ep, *gpi = gp + i * Evp, dot = 0;
#pragma omp simd
        for (long e = 0; e < E; e++) qsi[e] = qi[e] * scale;
#pragma omp simd reduction(+:dot)
        for (long d = 0; d < Ev; d++) {{
          gpi[d] = gi[d];
          dot += gi[d] * oi[d];
        }}
        D[i] = dot;
      }}
      /* k and v transposed a block of W rows at a time (the block stays in L1; each column's W
         values land in one line of the transpose) */
      for (long j0 = 0; j0 < S; j0 += W) {{
        const long j1 = j0 + W < S ? j0 + W : S;
        for (long e = 0; e < E; e++)
          for (long j = j0; j < j1; j++) kt[e * Sp + j] = kb[j * krs + e];
        for (long d = 0; d < Ev; d++)
          for (long j = j0; j < j1; j++) vt[d * Sp + j] = vb[j * vrs + d];
      }}
      for (long j = 0; j < S; j++) memcpy(kp + j * Ep, kb + j * krs, sizeof({t}) * (size_t)E);
      rows_times(P, Sp, Lp, Sp, qs, Ep, 1, kt, Sp, E, Sp, 1, causal);
      rows_times(dS, Sp, Lp, Sp, gp, Evp, 1, vt, Sp, Ev, Sp, 1, causal);
      for (long i = 0; i < Lp; i++) {{
        {t} *pr = P + i * Sp, *sr = dS + i * Sp;
        const long n = i >= L ? 0 : (causal ? (i + 1 < S ? i + 1 : S) : S);
        if (n > 0 && mask) {{
          const {t} *mr = mask + moff[b] + i * mrs;
          const long mstep = mcs ? 1 : 0;
#pragma omp simd
          for (long j = 0; j < n; j++) pr[j] += mr[j * mstep];
        }}
        {t} top = -INFINITY;
#pragma omp simd reduction(max:top)
        for (long j = 0; j < n; j++) top = pr[j] > top ? pr[j] : top;
        long used = top == -INFINITY ? 0 : n;
        if (used) {{
          const {t} shift = isfinite(top) ? top : 0;
          {t} total = 0;
#pragma omp simd reduction(+:total)
          for (long j = 0; j < n; j++) {{
            const {t} x = {exp}(pr[j] - shift); /* masked: exp(-inf - finite shift) = 0 */
            pr[j] = x;
            total += x;
          }}
          const {t} inv = ({t})1 / total;
#pragma omp simd
          for (long j = 0; j < n; j++) {{
            pr[j] *= inv;
            sr[j] = pr[j] * (sr[j] - D[i]);
          }}
        }}
        for (long j = used; j < Sp; j++) pr[j] = sr[j] = 0;
      }}
      {t} *pb = packed + b * pstride;
      /* dk and dv multiply by the transposes of dS and P, read in place (column by column) */
      rows_times(pb, E, L, E, dS, Sp, 1, kp, Ep, S, Ep, scale, causal ? 2 : 0);
      rows_times(pb + L * E, E, S, E, dS, 1, Sp, qs, Ep, L, Ep, 1, causal ? 3 : 0);
      rows_times(pb + L * E + S * E, Ev, S, Ev, P, 1, Sp, gp, Evp, L, Evp, 1, causal ? 3 : 0);
    }}
    free(qs);
  }}
  return failed;
}}
"""


def _library(t: str) -> Any:
    """The loaded library for element type `t` (its functions' argument types declared, so that they take
    plain integers), or None without a working compiler."""
    if t not in _LIBS:
        lib = try_build(_source(t))
        if lib is not None:
            for name, argtypes in _ARGTYPES.items():
                fn = getattr(lib, f"{name}_{t}")
                fn.argtypes, fn.restype = argtypes, ctypes.c_int
        _LIBS[t] = lib
    return _LIBS[t]


def supported(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None) -> bool:
    """True if the kernel takes these arrays: one float dtype, non-empty, equal leading dimensions."""
    dt = q.dtype
    arrays = (q, k, v) if mask is None else (q, k, v, mask)
    return (dt in _TYPES and all(a.dtype == dt for a in arrays) and q.size > 0 and k.size > 0
            and q.shape[:-2] == k.shape[:-2] == v.shape[:-2])


def clear_layout_cache() -> None:
    """Forget the cached operand layouts (they are recomputed on the next call)."""
    _LAYOUTS.clear()


def _layout(a: np.ndarray, lead: tuple[int, ...], rows: int, cols: int) -> tuple[np.ndarray, int, int]:
    """Element offsets of each batch entry of `a` broadcast to ``lead + (rows, cols)`` (read-only, shared
    between calls), and its row and column element strides (0 where it broadcasts)."""
    key = (a.shape, a.strides, a.itemsize, lead, rows, cols)
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _new_layout(a, lead, rows, cols)
        if len(_LAYOUTS) >= MAX_LAYOUTS:
            _LAYOUTS.clear()
        _LAYOUTS[key] = layout
    return layout


def _new_layout(a: np.ndarray, lead: tuple[int, ...], rows: int, cols: int) -> tuple[np.ndarray, int, int]:
    """:func:`_layout` computed from the broadcast strides of `a`."""
    full = np.broadcast_to(a, lead + (rows, cols))
    strides = [st // a.itemsize for st in full.strides]
    offsets = np.zeros(lead, dtype=np.int64)
    for axis, (n, st) in enumerate(zip(lead, strides[:len(lead)])):
        if n > 1 and st:
            shape = [1] * len(lead)
            shape[axis] = n
            offsets = offsets + (np.arange(n, dtype=np.int64) * st).reshape(shape)
    offsets = np.ascontiguousarray(offsets.reshape(-1))
    offsets.flags.writeable = False
    return offsets, strides[-2], strides[-1]


def _operand(a: np.ndarray, lead: tuple[int, ...], rows: int, cols: int) -> tuple:
    """``(array, offsets, row stride, column stride)`` for the kernel, broadcasting `a` to
    ``lead + (rows, cols)``; a contiguous copy where the column stride is neither 1 nor 0."""
    offsets, rs, cs = _layout(a, lead, rows, cols)
    if cs not in (0, 1):
        a = np.ascontiguousarray(a)
        offsets, rs, cs = _layout(a, lead, rows, cols)
    return a, offsets, rs, cs


def _operands(pairs: list, lead: tuple[int, ...]) -> list[tuple]:
    """``(array, offsets, row stride)`` for each ``(array, (rows, cols))``; all copied row-major when a
    feature axis is not contiguous (a length-1 axis may carry any stride)."""
    ops = [_operand(a, lead, *shape) for a, shape in pairs]
    if any(op[3] != 1 for op in ops):
        ops = [_operand(np.ascontiguousarray(a), lead, *shape) for (a, shape) in pairs]
    return [op[:3] for op in ops]


def _mask_args(mask: np.ndarray | None, lead: tuple[int, ...], L: int, S: int) -> list:
    """The kernel arguments of the mask: pointer, offsets, row stride, key stride (1 or 0), then the
    arrays they point into (kept alive until the call)."""
    if mask is None:
        return [None, data_pointer(_NO_OFFSETS), 0, 0]
    mask, moff, mrs, mcs = _operand(mask, lead, L, S)
    return [data_pointer(mask), data_pointer(moff), mrs, mcs, mask, moff]


def _call(name: str, arrays: list[tuple], mask: list, tail: list) -> None:
    """Call kernel `name` on ``(array, offsets, row stride)`` operands, the mask's arguments and `tail`."""
    args: list = []
    for a, off, rs in arrays[:3]:
        args += [data_pointer(a), data_pointer(off), rs]
    args += mask[:4]
    for a, off, rs in arrays[3:]:
        args += [data_pointer(a), data_pointer(off), rs]
    if getattr(_LIBS[name.rsplit("_", 1)[1]], name)(*args, *tail):
        raise MemoryError(f"{name} kernel: could not allocate its scratch block")


def _sizes(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple:
    lead = tuple(q.shape[:-2])
    return lead, q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1], math.prod(lead)


def _tail(batch: int, L: int, S: int, E: int, Ev: int, scale: float, causal: bool) -> list:
    return [batch, L, S, E, Ev, float(scale), int(causal)]


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, scale: float,
              causal: bool, out: np.ndarray) -> bool:
    """Write ``softmax(q kᵀ · scale + mask) v`` into `out`; False without a kernel.

    `q` is ``(..., L, E)``, `k` ``(..., S, E)``, `v` ``(..., S, Ev)`` with equal leading dimensions (any
    strides: transposed heads are read in place); `mask` (additive, same dtype) broadcasts to
    ``(..., L, S)``; `causal` keeps keys ``j <= i``. `out` may be any view whose last axis is
    contiguous (a transposed buffer: heads written where the next reshape wants them).
    """
    t = _TYPES[q.dtype]
    if _library(t) is None:
        return False
    lead, L, E, S, Ev, batch = _sizes(q, k, v)
    ooff, ors, ocs = _layout(out, lead, L, Ev)
    if ocs != 1 and Ev > 1:
        raise ValueError("attention kernel: the output's last axis must be contiguous")
    arrays = _operands([(q, (L, E)), (k, (S, E)), (v, (S, Ev))], lead) + [(out, ooff, ors)]
    _call(f"attention_{t}", arrays, _mask_args(mask, lead, L, S), _tail(batch, L, S, E, Ev, scale, causal))
    return True


def attention_grad(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, g: np.ndarray,
                   out: np.ndarray, scale: float, causal: bool, packed: np.ndarray) -> bool:
    """Write the gradients of :func:`attention` for the output gradient `g` (at the output `out`) with
    respect to q, k and v into `packed`, ``lead + (L·E + S·E + S·Ev,)`` (each part row-major); False
    without a kernel."""
    t = _TYPES[q.dtype]
    if _library(t) is None:
        return False
    lead, L, E, S, Ev, batch = _sizes(q, k, v)
    arrays = _operands([(q, (L, E)), (k, (S, E)), (v, (S, Ev)), (g, (L, Ev)), (out, (L, Ev))], lead)
    _call(f"attention_grad_{t}", arrays, _mask_args(mask, lead, L, S),
          [data_pointer(packed)] + _tail(batch, L, S, E, Ev, scale, causal))
    return True
