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
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from .build import try_build
from .c import _HELPERS

_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
ROW_BLOCK = 4  # query rows sharing one pass over the transposed keys (block_product is written for 4)
_LIBS: dict[str, Any] = {}


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

/* acc[r] = sum_e a[r][e] * b[e][0..W) for RB rows of a (row stride lda), b with row stride ldb */
static inline void block_product(const {t} *a, long lda, const {t} *b, long ldb, long depth, vec acc[RB]) {{
  vec c0 = {{0}}, c1 = {{0}}, c2 = {{0}}, c3 = {{0}};
  for (long e = 0; e < depth; e++) {{
    const vec br = vload(b + e * ldb);
    c0 += a[e] * br;
    c1 += a[lda + e] * br;
    c2 += a[2 * lda + e] * br;
    c3 += a[3 * lda + e] * br;
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
#pragma omp parallel
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
      for (long e = 0; e < E; e++) {{
        for (long j = 0; j < S; j++) kt[e * Sp + j] = kb[j * krs + e];
        for (long j = S; j < Sp; j++) kt[e * Sp + j] = 0;
      }}
      for (long j = 0; j < S; j++) {{
        memcpy(vp + j * Evp, vb + j * vrs, sizeof({t}) * (size_t)Ev);
        for (long d = Ev; d < Evp; d++) vp[j * Evp + d] = 0;
      }}
      for (long i0 = 0; i0 < L; i0 += RB) {{
        const long nb = L - i0 < RB ? L - i0 : RB;
        for (long r = 0; r < RB; r++)
          for (long e = 0; e < E; e++) qs[r * E + e] = r < nb ? qb[(i0 + r) * qrs + e] * scale : 0;
        for (long j0 = 0; j0 < Sp; j0 += W) {{
          vec acc[RB];
          block_product(qs, E, kt + j0, Sp, E, acc);
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
              const {t} x = sr[j] == -INFINITY ? ({t})0 : {exp}(sr[j] - shift);
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
          block_product(s, Sp, vp + d0, Evp, nmax, acc);
          for (long r = 0; r < nb; r++)
            for (long d = d0; d < Ev && d < d0 + W; d++) ob[(i0 + r) * ors + d] = acc[r][d - d0] * inv[r];
        }}
      }}
    }}
    free(kt);
  }}
  return failed;
}}
"""


def _library(t: str) -> Any:
    """The loaded library for element type `t`, or None without a working compiler."""
    if t not in _LIBS:
        _LIBS[t] = try_build(_source(t))
    return _LIBS[t]


def supported(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None) -> bool:
    """True if the kernel takes these arrays: one float dtype, non-empty, equal leading dimensions."""
    dt = q.dtype
    arrays = (q, k, v) if mask is None else (q, k, v, mask)
    return (dt in _TYPES and all(a.dtype == dt for a in arrays) and q.size > 0 and k.size > 0
            and q.shape[:-2] == k.shape[:-2] == v.shape[:-2])


def _layout(a: np.ndarray, lead: tuple[int, ...], rows: int, cols: int) -> tuple[np.ndarray, int, int]:
    """Element offsets of each batch entry of `a` broadcast to ``lead + (rows, cols)``, and its row and
    column element strides (0 where it broadcasts)."""
    full = np.broadcast_to(a, lead + (rows, cols))
    strides = [st // a.itemsize for st in full.strides]
    offsets = np.zeros(lead, dtype=np.int64)
    for axis, (n, st) in enumerate(zip(lead, strides[:len(lead)])):
        if n > 1 and st:
            shape = [1] * len(lead)
            shape[axis] = n
            offsets = offsets + (np.arange(n, dtype=np.int64) * st).reshape(shape)
    return np.ascontiguousarray(offsets.reshape(-1)), strides[-2], strides[-1]


def _operand(a: np.ndarray, lead: tuple[int, ...], rows: int, cols: int) -> tuple:
    """``(array, offsets, row stride, column stride)`` for the kernel, broadcasting `a` to
    ``lead + (rows, cols)``; a contiguous copy where the column stride is neither 1 nor 0."""
    offsets, rs, cs = _layout(a, lead, rows, cols)
    if cs not in (0, 1):
        a = np.ascontiguousarray(a)
        offsets, rs, cs = _layout(a, lead, rows, cols)
    return a, offsets, rs, cs


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, scale: float,
              causal: bool, out: np.ndarray) -> bool:
    """Write ``softmax(q kᵀ · scale + mask) v`` into `out`; False without a kernel.

    `q` is ``(..., L, E)``, `k` ``(..., S, E)``, `v` ``(..., S, Ev)`` with equal leading dimensions (any
    strides: transposed heads are read in place); `mask` (additive, same dtype) broadcasts to
    ``(..., L, S)``; `causal` keeps keys ``j <= i``. `out` may be any view whose last axis is
    contiguous (a transposed buffer: heads written where the next reshape wants them).
    """
    t = _TYPES[q.dtype]
    lib = _library(t)
    if lib is None:
        return False
    lead = tuple(q.shape[:-2])
    L, E, S, Ev = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
    batch = int(np.prod(lead, dtype=np.int64))
    q, qoff, qrs, qcs = _operand(q, lead, L, E)
    k, koff, krs, kcs = _operand(k, lead, S, E)
    v, voff, vrs, vcs = _operand(v, lead, S, Ev)
    if 0 in (qcs, kcs, vcs):  # a feature axis of length 1 may carry any stride: copy
        q, k, v = (np.ascontiguousarray(a) for a in (q, k, v))
        (_, qoff, qrs, _), (_, koff, krs, _), (_, voff, vrs, _) = (
            _operand(q, lead, L, E), _operand(k, lead, S, E), _operand(v, lead, S, Ev))
    ooff, ors, ocs = _layout(out, lead, L, Ev)
    if ocs != 1 and Ev > 1:
        raise ValueError("attention kernel: the output's last axis must be contiguous")
    if mask is None:
        mptr, moff, mrs, mcs = None, np.zeros(1, np.int64), 0, 0
    else:
        mask, moff, mrs, mcs = _operand(mask, lead, L, S)
        mptr = ctypes.c_void_p(mask.ctypes.data)

    def ptr(a: np.ndarray) -> ctypes.c_void_p:
        return ctypes.c_void_p(a.ctypes.data)

    def n(x: int) -> ctypes.c_long:
        return ctypes.c_long(x)

    failed = getattr(lib, f"attention_{t}")(
        ptr(q), ptr(qoff), n(qrs), ptr(k), ptr(koff), n(krs), ptr(v), ptr(voff), n(vrs),
        mptr, ptr(moff), n(mrs), n(mcs), ptr(out), ptr(ooff), n(ors), n(batch), n(L), n(S), n(E), n(Ev),
        ctypes.c_double(scale), ctypes.c_int(int(causal)))
    if failed:
        raise MemoryError("attention kernel: could not allocate its scratch block")
    return True
