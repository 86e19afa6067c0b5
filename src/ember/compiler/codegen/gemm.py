"""A packed matrix-product (GEMM) kernel in C, and convolutions that pack their windows directly.

BLAS (OpenBLAS through NumPy) tops out on large square products, but a convolution's products are
skinny (64 x 288 by 16384 columns, 27-long rows, 65536-long reductions), and an explicit im2col
matrix costs a 19 MB round trip to memory before the product starts. The kernel here is the classic
blocked design (Goto & van de Geijn; BLIS):

- C = A B is cut into tiles of ``MR x NR`` (8 x 3 vectors) computed by a register-blocked micro-kernel
  (AVX-512 intrinsics when the compiler targets them, a plain C loop the compiler vectorises
  otherwise) from two *packed* operands: A as ``MR``-row panels, B as ``NR``-column panels, each
  ``KC`` deep, so the inner loop streams contiguous, aligned memory.
- Operands are packed from any strides (a transposed weight, a channel-major gradient) or, for a
  convolution, straight from the input image: the packer reads each window row in place (padding
  as zeros), so the im2col matrix never exists outside the cache (``conv``); the weight gradient
  packs them transposed (``conv_wgrad``), or, with fewer window rows than a tile has columns (a first
  layer's 3 x 3 x 3), multiplies rows against rows in 4 x 6 tiles of dot products. A stride-1
  convolution whose output rows are as long as its input's ("same" padding) reads each packed row as
  shifted, masked vectors of the image ("flat" windows, ``flat_plan``); contiguous rows of A and
  columns of B, and the weight gradient's transposed windows, pack through in-register transposes.
- Threads (OpenMP) split the columns of C; products with few columns and a long reduction (a
  weight gradient) split the reduction instead and add the partial tiles.

Floats of 32 and 64 bits are generated; other dtypes and machines without a C compiler keep BLAS.
"""
from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

from .build import data_pointer, try_build

_TYPES = {np.dtype(np.float32): ("float", "f", 16), np.dtype(np.float64): ("double", "d", 8)}
KC_DOT = 1024  # positions per block of a weight gradient's dot-product tiles
KC_MAX = 256  # reduction depth of one packed block (tuned: 256-288 keep a B panel near L1)
NC_PANELS = 16  # column panels packed per block (KC x NR x NC_PANELS fits L2 with the A panels)
MC_PANELS = 16  # row panels of A multiplied by each packed B block in turn (MR x KC x MC_PANELS in L2)
_LIB: dict[str, Any] = {}

_COMMON = r"""/* ember packed GEMM and implicit-im2col convolutions (float or double, see the macros below) */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_num_threads(void) { return 1; }
static int omp_get_thread_num(void) { return 0; }
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#define MR 8
#define FLAT_TAPS 64 /* the most kernel offsets (and the longest kernel side) the flat window packers take */

/* Convolution geometry (see window.py's _conv_geom): N, C, I0..I2, O0..O2, K0..K2, S0..S2, D0..D2,
   P0..P2 (low padding), then element strides XN, XC, X0..X2. Missing leading dims have size 1. */
typedef struct { long n, c, in[3], out[3], k[3], s[3], d[3], p[3], xn, xc, x[3], taps, pos, flat; } geom_t;

static geom_t read_geom(const long *g) {
  geom_t r;
  r.n = g[0]; r.c = g[1];
  for (int i = 0; i < 3; i++) {
    r.in[i] = g[2 + i]; r.out[i] = g[5 + i]; r.k[i] = g[8 + i]; r.s[i] = g[11 + i];
    r.d[i] = g[14 + i]; r.p[i] = g[17 + i]; r.x[i] = g[22 + i];
  }
  r.xn = g[20]; r.xc = g[21];
  r.taps = r.k[0] * r.k[1] * r.k[2];
  r.pos = r.out[0] * r.out[1] * r.out[2];
  /* flat: stride 1, contiguous image rows, output rows (and planes) as long as the input's, so output
     position p reads input element p + (a constant of the kernel offset) of its image, see flat_plan */
  r.flat = r.s[0] == 1 && r.s[1] == 1 && r.s[2] == 1 && r.x[2] == 1 && (r.in[1] == 1 || r.x[1] == r.in[2])
           && (r.in[0] == 1 || r.x[0] == r.in[1] * r.in[2]) && r.out[2] == r.in[2]
           && (r.out[0] == 1 || r.out[1] == r.in[1]);
  return r;
}

/* One row of the windows matrix (channel c, kernel offset k): the channel's offset, the kernel
   offset times the dilation in the two outer dims, and the output columns o2 in [lo, hi) whose input
   column o2*S2 + shift2 is inside the image. */
typedef struct { long off, e0, e1, shift2, lo, hi; } wrow_t;

static wrow_t *window_rows(const geom_t *g) {
  const long rows = g->c * g->taps;
  wrow_t *t = malloc(sizeof(wrow_t) * (rows > 0 ? rows : 1));
  if (t == NULL) return NULL;
  for (long r = 0; r < rows; r++) {
    const long c = r / g->taps, k = r % g->taps;
    const long k2 = k % g->k[2], k1 = (k / g->k[2]) % g->k[1], k0 = k / (g->k[2] * g->k[1]);
    const long a2 = g->p[2] - k2 * g->d[2], b2 = g->in[2] - 1 + a2, S2 = g->s[2];
    long lo = a2 <= 0 ? 0 : (a2 + S2 - 1) / S2, hi = b2 < 0 ? 0 : b2 / S2 + 1;
    if (hi > g->out[2]) hi = g->out[2];
    if (lo > hi) lo = hi;
    t[r].off = c * g->xc;
    t[r].e0 = k0 * g->d[0];
    t[r].e1 = k1 * g->d[1];
    t[r].shift2 = -a2;
    t[r].lo = lo;
    t[r].hi = hi;
  }
  return t;
}

/* A run of output positions along the last spatial dim: the image's offset, the first input index
   of the two outer dims (before the kernel offset), the first o2, the length, and where the run
   starts in the packed block. */
typedef struct { long base, b0, b1, o2, len, at; } run_t;

static long position_runs(const geom_t *g, long p0, long p1, run_t *runs) {
  long count = 0, p = p0;
  while (p < p1) {
    long img = p / g->pos, rem = p % g->pos, o2 = rem % g->out[2], o1 = (rem / g->out[2]) % g->out[1];
    long o0 = rem / (g->out[2] * g->out[1]), len = g->out[2] - o2;
    if (len > p1 - p) len = p1 - p;
    runs[count].base = img * g->xn;
    runs[count].b0 = o0 * g->s[0] - g->p[0];
    runs[count].b1 = o1 * g->s[1] - g->p[1];
    runs[count].o2 = o2;
    runs[count].len = len;
    runs[count].at = p - p0;
    count++;
    p += len;
  }
  return count;
}

static long ceil_div(long a, long b) { return (a + b - 1) / b; }

/* The size of the block starting `rest` before the end, in blocks of `step`: min(rest, step). */
static long clip(long rest, long step) { return rest < step ? rest : step; }

/* An epilogue: fn(ctx, batch, i0, j0, h, w, c, ldc) is called once the block of C of rows i0..i0+h and
   columns j0..j0+w (at c, row stride ldc) is final, while it is still in cache; it may rewrite it. */
typedef void (*epi_fn)(const long *ctx, long batch, long i0, long j0, long h, long w, void *c, long ldc);
typedef struct { epi_fn fn; const long *ctx; long batch; } epi_t;

/* 64-byte aligned memory (C11 asks for a size that is a multiple of the alignment). */
static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }
"""

_TYPED = r"""
#define NR (3 * VW)

/* C[0..h) x [0..w) (ldc) = (acc ? C : 0) + sum_k a[k][0..MR) (x) b[k][0..NV*VW) over packed panels
   (b rows are NR apart), for NV = nv vector columns, nv*VW >= w; rows past h and columns past w of the
   register tile are computed but not stored. */
static inline __attribute__((always_inline)) void SUF(tile_nv)(long kc, const T *restrict a,
    const T *restrict b, T *restrict c, long ldc, int acc, long h, long w, const int nv) {
#if defined(__AVX512F__)
  VEC r[MR][3];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) { r[i][0] = VZERO(); r[i][1] = VZERO(); r[i][2] = VZERO(); }
  for (int i = 0; i < MR; i++) { /* the C rows this tile adds to or stores: in cache by the end */
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + 2 * VW, 1, 3);
  }
  for (long k = 0; k < kc; k++) {
    __builtin_prefetch(a + 8 * MR, 0, 3); /* the A panel, eight steps ahead */
    const VEC b0 = VLOAD(b), b1 = nv > 1 ? VLOAD(b + VW) : VZERO(), b2 = nv > 2 ? VLOAD(b + 2 * VW) : VZERO();
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      const VEC ai = VSET1(a[i]);
      r[i][0] = VFMA(ai, b0, r[i][0]);
      if (nv > 1) r[i][1] = VFMA(ai, b1, r[i][1]);
      if (nv > 2) r[i][2] = VFMA(ai, b2, r[i][2]);
    }
    a += MR;
    b += NR;
  }
  if (h == MR && w == nv * VW) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      T *ci = c + i * ldc;
#pragma GCC unroll 3
      for (int v = 0; v < nv; v++) {
        if (acc) r[i][v] = VADD(r[i][v], VLOADU(ci + v * VW));
        VSTOREU(ci + v * VW, r[i][v]);
      }
    }
    return;
  }
  for (int i = 0; i < h; i++) {
    T *ci = c + i * ldc;
    for (int v = 0; v < nv; v++) {
      const long lanes = w - v * VW < 0 ? 0 : (w - v * VW > VW ? VW : w - v * VW);
      const VMASK m = (VMASK)((1u << lanes) - 1u);
      if (acc) r[i][v] = VADD(r[i][v], VMLOAD(m, ci + v * VW));
      VMSTORE(ci + v * VW, m, r[i][v]);
    }
  }
#else
  T r[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) r[i][j] = 0;
  for (long k = 0; k < kc; k++) {
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < nv * VW; j++) r[i][j] += a[i] * b[j];
    a += MR;
    b += NR;
  }
  for (long i = 0; i < h; i++)
    for (long j = 0; j < w; j++) c[i * ldc + j] = (acc ? c[i * ldc + j] : (T)0) + r[i][j];
#endif
}

/* One tile of h <= MR rows and w <= NR columns, with as few vector columns as w needs. */
static void SUF(tile)(long kc, const T *a, const T *b, T *c, long ldc, int acc, long h, long w) {
  if (w > 2 * VW) SUF(tile_nv)(kc, a, b, c, ldc, acc, h, w, 3);
  else if (w > VW) SUF(tile_nv)(kc, a, b, c, ldc, acc, h, w, 2);
  else SUF(tile_nv)(kc, a, b, c, ldc, acc, h, w, 1);
}

/* An operand: a strided matrix (kind 0: X[r][c] = p[r*rs + c*cs]) or the windows of an image
   (kind 1: rows channel x kernel offset, columns positions; kind 2: the transpose). */
typedef struct { int kind; const T *p; long rs, cs; geom_t g; const wrow_t *rows; } SUF(operand);

#if defined(__AVX512F__)
/* r[0..VW) transposed in place (r[i] lane j becomes r[j] lane i). */
static inline __attribute__((always_inline)) void SUF(transpose)(VEC *r) {
  enum { S = VW / 4 }; /* elements per 128-bit lane */
  VEC u[VW];
#if VW == 16
  VEC t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
#else
  for (int i = 0; i < 4; i++) {
    u[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
    u[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
  }
#endif
  /* now u[S i + c], 128-bit lane L, holds column S L + c of rows S i .. S i + S - 1: gather the lanes */
  for (int c = 0; c < S; c++) {
    const VEC v0 = VSHUF128(u[c], u[S + c], 0x44), v1 = VSHUF128(u[c], u[S + c], 0xEE);
    const VEC v2 = VSHUF128(u[2 * S + c], u[3 * S + c], 0x44);
    const VEC v3 = VSHUF128(u[2 * S + c], u[3 * S + c], 0xEE);
    r[c] = VSHUF128(v0, v2, 0x88);
    r[S + c] = VSHUF128(v0, v2, 0xDD);
    r[2 * S + c] = VSHUF128(v1, v3, 0x88);
    r[3 * S + c] = VSHUF128(v1, v3, 0xDD);
  }
}
#endif

/* One MR-row panel of A: d[k][i] = A[m0 + i][k0 + k], zero rows past h. */
static void SUF(pack_a)(const SUF(operand) *A, long m0, long h, long k0, long kc, T *restrict d) {
  const T *p = A->p;
  if (A->cs == 1 || A->rs != 1) {
    long k = 0;
#if defined(__AVX512F__)
    if (A->cs == 1 && h == MR) { /* contiguous rows: blocks of VW x VW transposed in registers */
      const T *s = p + m0 * A->rs + k0;
      enum { CHUNKS = VW / MR }; /* column chunks of VW per transposed block (rows MR of each) */
      for (; k + CHUNKS * VW <= kc; k += CHUNKS * VW) {
        VEC r[VW];
        for (int q = 0; q < CHUNKS; q++)
          for (int i = 0; i < MR; i++) r[q * MR + i] = VLOADU(s + i * A->rs + k + q * VW);
        SUF(transpose)(r); /* r[c], lanes q MR .. q MR + MR - 1: the MR rows at column k + q VW + c */
        for (int c = 0; c < VW; c++) {
#if VW == 16
          _mm256_storeu_ps(d + (k + c) * MR, _mm512_castps512_ps256(r[c]));
          const __m256d high = _mm512_extractf64x4_pd(_mm512_castps_pd(r[c]), 1);
          _mm256_storeu_pd((double *)(d + (k + VW + c) * MR), high);
#else
          VSTOREU(d + (k + c) * MR, r[c]);
#endif
        }
      }
    }
#endif
    for (long i = 0; i < h; i++) {
      const T *s = p + (m0 + i) * A->rs + k0 * A->cs;
      for (long j = k; j < kc; j++) d[j * MR + i] = s[j * A->cs];
    }
  } else {
    for (long k = 0; k < kc; k++) {
      const T *s = p + (k0 + k) * A->cs + m0;
      for (long i = 0; i < h; i++) d[k * MR + i] = s[i];
    }
  }
  for (long i = h; i < MR; i++)
    for (long k = 0; k < kc; k++) d[k * MR + i] = 0;
}

/* Row `w` of the windows matrix over one run of positions, into d[0], d[step], ... */
static void SUF(window_run)(const geom_t *g, const T *x, const wrow_t *w, const run_t *r, T *restrict d,
                            long step) {
  const long i0 = r->b0 + w->e0, i1 = r->b1 + w->e1, len = r->len;
  if (i0 < 0 || i0 >= g->in[0] || i1 < 0 || i1 >= g->in[1]) {
    for (long t = 0; t < len; t++) d[t * step] = 0;
    return;
  }
  long lo = w->lo - r->o2, hi = w->hi - r->o2;
  if (lo < 0) lo = 0;
  if (hi > len) hi = len;
  if (lo > hi) lo = hi;
  const long S2 = g->s[2], X2 = g->x[2];
  const T *src = x + r->base + w->off + i0 * g->x[0] + i1 * g->x[1] + (r->o2 * S2 + w->shift2) * X2;
#if defined(__AVX512F__)
  if (step == 1 && S2 == 1 && X2 == 1) { /* masked vector copies: lanes outside [lo, hi) read as 0 */
    for (long t = 0; t < len; t += VW) {
      const long end = clip(len - t, VW);
      const long a = lo - t < 0 ? 0 : lo - t, b = hi - t > end ? end : hi - t;
      const unsigned valid = a < b ? ((1u << b) - 1u) & ~((1u << a) - 1u) : 0u;
      VMSTORE(d + t, (VMASK)((1u << end) - 1u), VMLOAD((VMASK)valid, src + t));
    }
    return;
  }
#endif
  long t = 0;
  for (; t < lo; t++) d[t * step] = 0;
  if (step == 1 && S2 == 1 && X2 == 1) {
    memcpy(d + lo, src + lo, sizeof(T) * (hi - lo));
    t = hi;
  } else {
    for (; t < hi; t++) d[t * step] = src[t * S2 * X2];
  }
  for (; t < len; t++) d[t * step] = 0;
}

#if defined(__AVX512F__)
/* Windows of a flat geometry (geom_t.flat) whose images hold at least VW positions: the row of channel
   c and kernel offset t over the positions of image n reads x[n xn + c xc + p + delta[t]], p inside the
   image and the offset's window inside it too. flat_plan lays out nvec vectors of VW positions from
   position p0 (count in all): per vector, off[2v] addresses its lanes in its first image and
   off[2v + 1] those in the next (a vector straddles at most two), and per vector and offset
   m[(v taps + t) 2 + 0/1] are the lanes of each part that read the image (the rest, padding and
   lanes past count, read as zeros). */
static void SUF(flat_plan)(const geom_t *g, long p0, long count, long nvec, long *delta, long *off,
                           VMASK *m) {
  const long K0 = g->k[0], K1 = g->k[1], K2 = g->k[2], taps = g->taps;
  for (long t = 0; t < taps; t++) {
    const long k2 = t % K2, k1 = (t / K2) % K1, k0 = t / (K2 * K1);
    delta[t] = (k0 * g->d[0] - g->p[0]) * g->x[0] + (k1 * g->d[1] - g->p[1]) * g->x[1] + k2 * g->d[2]
               - g->p[2];
  }
  long img = p0 / g->pos, q = p0 % g->pos;
  long o2 = q % g->out[2], o1 = (q / g->out[2]) % g->out[1], o0 = q / (g->out[2] * g->out[1]);
  for (long v = 0; v < nvec; v++) {
    unsigned in0[FLAT_TAPS], in1[FLAT_TAPS], in2[FLAT_TAPS], first = 0;
    memset(in0, 0, sizeof(unsigned) * K0);
    memset(in1, 0, sizeof(unsigned) * K1);
    memset(in2, 0, sizeof(unsigned) * K2);
    off[2 * v] = img * g->xn + q;
    off[2 * v + 1] = (img + 1) * g->xn + q - g->pos;
    const long head = img;
    for (long l = 0; l < VW && v * VW + l < count; l++) {
      const unsigned bit = 1u << l;
      if (img == head) first |= bit;
      for (long k = 0; k < K0; k++) {
        const long i = o0 + k * g->d[0] - g->p[0];
        if (i >= 0 && i < g->in[0]) in0[k] |= bit;
      }
      for (long k = 0; k < K1; k++) {
        const long i = o1 + k * g->d[1] - g->p[1];
        if (i >= 0 && i < g->in[1]) in1[k] |= bit;
      }
      for (long k = 0; k < K2; k++) {
        const long i = o2 + k * g->d[2] - g->p[2];
        if (i >= 0 && i < g->in[2]) in2[k] |= bit;
      }
      q++;
      if (++o2 == g->out[2]) {
        o2 = 0;
        if (++o1 == g->out[1]) {
          o1 = 0;
          if (++o0 == g->out[0]) { o0 = 0; img++; q = 0; }
        }
      }
    }
    for (long t = 0; t < taps; t++) {
      const unsigned lanes = in0[t / (K2 * K1)] & in1[(t / K2) % K1] & in2[t % K2];
      m[(v * taps + t) * 2] = (VMASK)(lanes & first);
      m[(v * taps + t) * 2 + 1] = (VMASK)(lanes & ~first);
    }
  }
}

/* One vector of a flat window row: lanes of plan vector v for kernel offset t, from base (the channel's
   first element plus delta[t]). */
static inline __attribute__((always_inline)) VEC SUF(flat_load)(const T *base, const long *off,
                                                                const VMASK *m, long v, long t, long taps) {
  const VMASK *mv = m + (v * taps + t) * 2;
  VEC r = VMLOAD(mv[0], base + off[2 * v]);
  if (mv[1]) r = VMLOADM(r, mv[1], base + off[2 * v + 1]);
  return r;
}

/* A panel of flat windows (rows channel x kernel offset k0..k0+kc, columns positions j0..j0+w): each
   row is three masked vector loads. */
static void SUF(pack_flat_rows)(const SUF(operand) *B, long j0, long w, long k0, long kc, T *restrict d) {
  long delta[FLAT_TAPS], off[6];
  VMASK m[3 * FLAT_TAPS * 2];
  const long taps = B->g.taps, nvec = ceil_div(w, VW);
  SUF(flat_plan)(&B->g, j0, w, nvec, delta, off, m);
  long c = k0 / taps, t = k0 % taps;
  for (long k = 0; k < kc; k++) {
    const T *base = B->p + c * B->g.xc + delta[t];
#pragma GCC unroll 3
    for (long v = 0; v < 3; v++)
      VSTOREU(d + k * NR + v * VW, v < nvec ? SUF(flat_load)(base, off, m, v, t, taps) : VZERO());
    if (++t == taps) { t = 0; c++; }
  }
}

/* np panels of transposed flat windows (rows positions k0..k0+kc, columns channel x kernel offset from
   n0, N in all): VW columns at a time are loaded along the positions and transposed in registers.
   Returns 1 if out of memory (nothing packed). */
static int SUF(pack_flat_cols)(const SUF(operand) *B, long N, long n0, long np, long k0, long kc,
                               T *restrict d) {
  const long taps = B->g.taps, nvec = ceil_div(kc, VW);
  long delta[FLAT_TAPS], *off = malloc(sizeof(long) * 2 * nvec);
  VMASK *m = malloc(sizeof(VMASK) * 2 * nvec * taps);
  if (off == NULL || m == NULL) {
    free(off);
    free(m);
    return 1;
  }
  SUF(flat_plan)(&B->g, k0, kc, nvec, delta, off, m);
  for (long jp = 0; jp < np; jp++, d += kc * NR) {
    const long j0 = n0 + jp * NR, w = clip(N - j0, NR);
    const T *base[NR];
    long tap[NR];
    for (long j = 0; j < w; j++) {
      tap[j] = (j0 + j) % taps;
      base[j] = B->p + (j0 + j) / taps * B->g.xc + delta[tap[j]];
    }
    for (long g0 = 0; g0 < NR; g0 += VW)
      for (long v = 0; v < nvec; v++) {
        VEC r[VW];
#pragma GCC unroll 16
        for (long j = 0; j < VW; j++)
          r[j] = g0 + j < w ? SUF(flat_load)(base[g0 + j], off, m, v, tap[g0 + j], taps) : VZERO();
        SUF(transpose)(r);
        const long rows = clip(kc - v * VW, VW);
        for (long l = 0; l < rows; l++) VSTOREU(d + (v * VW + l) * NR + g0, r[l]);
      }
  }
  free(off);
  free(m);
  return 0;
}
#endif

/* True if the windows operand B packs by flat_plan's vector loads. */
static int SUF(flat_ok)(const SUF(operand) *B) {
#if defined(__AVX512F__)
  return B->g.flat && B->g.pos >= VW && B->g.k[0] <= FLAT_TAPS && B->g.k[1] <= FLAT_TAPS
         && B->g.k[2] <= FLAT_TAPS && B->g.taps <= FLAT_TAPS;
#else
  (void)B;
  return 0;
#endif
}

/* np column panels of B starting at column n0 (N columns in all), rows k0..k0+kc, into d. */
static void SUF(pack_b)(const SUF(operand) *B, long N, long n0, long np, long k0, long kc, T *restrict d,
                        run_t *runs) {
  const T *p = B->p;
#if defined(__AVX512F__)
  if (B->kind == 2 && SUF(flat_ok)(B) && !SUF(pack_flat_cols)(B, N, n0, np, k0, kc, d)) return;
#endif
  for (long jp = 0; jp < np; jp++, d += kc * NR) {
    const long j0 = n0 + jp * NR, w = clip(N - j0, NR);
    if (B->kind == 0) {
      if (B->cs == 1) {
        for (long k = 0; k < kc; k++) {
          memcpy(d + k * NR, p + (k0 + k) * B->rs + j0, sizeof(T) * w);
          for (long j = w; j < NR; j++) d[k * NR + j] = 0;
        }
      } else {
        long k = 0;
#if defined(__AVX512F__)
        if (B->rs == 1) { /* contiguous columns (a transposed weight): VW x VW blocks transposed */
          for (; k + VW <= kc; k += VW)
            for (long g0 = 0; g0 < NR; g0 += VW) {
              VEC r[VW];
              for (long j = 0; j < VW; j++)
                r[j] = g0 + j < w ? VLOADU(p + k0 + k + (j0 + g0 + j) * B->cs) : VZERO();
              SUF(transpose)(r);
              for (long l = 0; l < VW; l++) VSTOREU(d + (k + l) * NR + g0, r[l]);
            }
        }
#endif
        for (long j = 0; j < w; j++) {
          const T *s = p + k0 * B->rs + (j0 + j) * B->cs;
          for (long i = k; i < kc; i++) d[i * NR + j] = s[i * B->rs];
        }
        for (long j = w; j < NR; j++)
          for (long i = k; i < kc; i++) d[i * NR + j] = 0;
      }
    } else if (B->kind == 1) { /* windows: rows channel x kernel offset, columns positions */
#if defined(__AVX512F__)
      if (SUF(flat_ok)(B)) {
        SUF(pack_flat_rows)(B, j0, w, k0, kc, d);
        continue;
      }
#endif
      const long count = position_runs(&B->g, j0, j0 + w, runs);
      for (long k = 0; k < kc; k++) {
        T *dk = d + k * NR;
        for (long q = 0; q < count; q++)
          SUF(window_run)(&B->g, p, B->rows + k0 + k, runs + q, dk + runs[q].at, 1);
        for (long j = w; j < NR; j++) dk[j] = 0;
      }
    } else { /* windows transposed: rows positions, columns channel x kernel offset */
      const long count = position_runs(&B->g, k0, k0 + kc, runs);
      for (long j = 0; j < w; j++)
        for (long q = 0; q < count; q++)
          SUF(window_run)(&B->g, p, B->rows + j0 + j, runs + q, d + runs[q].at * NR + j, NR);
      for (long j = w; j < NR; j++)
        for (long k = 0; k < kc; k++) d[k * NR + j] = 0;
    }
  }
}

/* Called by every thread of a parallel region that split a reduction: free the thread's packing
   buffers, wait for the others, then C (M x N, ldc) = the sum of the nt partial products in part
   (each M x N), the threads sharing the rows. */
static void SUF(add_parts)(T *ap, T *bp, run_t *runs, const T *part, int nt, long M, long N, T *C,
                           long ldc, const epi_t *epi) {
  free(ap);
  free(bp);
  free(runs);
#pragma omp barrier
#pragma omp for schedule(static)
  for (long i = 0; i < M; i++) {
    for (long j = 0; j < N; j++) {
      T s = part[i * N + j];
      for (int t = 1; t < nt; t++) s += part[((long)t * M + i) * N + j];
      C[i * ldc + j] = s;
    }
    if (epi != NULL) epi->fn(epi->ctx, epi->batch, i, 0, 1, N, C + i * ldc, ldc);
  }
}

/* The tiles of C's row panels [i0, i1) (packed at ap, kc deep) by its column panels [q0, q0 + np)
   (packed at bp) for reduction block kb of nkb; after the last one, the epilogue on each column
   panel's block. */
static void SUF(block)(long kc, const T *ap, const T *bp, long i0, long i1, long q0, long np, long M, long N,
                       T *C, long ldc, long kb, long nkb, const epi_t *epi) {
  const long rows = (M < i1 * MR ? M : i1 * MR) - i0 * MR;
  for (long jp = 0; jp < np; jp++) {
    const long j0 = (q0 + jp) * NR, w = clip(N - j0, NR);
    for (long ip = i0; ip < i1; ip++) {
      const long h = clip(M - ip * MR, MR);
      SUF(tile)(kc, ap + (ip - i0) * kc * MR, bp + jp * kc * NR, C + ip * MR * ldc + j0, ldc, kb > 0, h, w);
    }
    if (epi != NULL && kb == nkb - 1)
      epi->fn(epi->ctx, epi->batch, i0 * MR, j0, rows, w, C + i0 * MR * ldc + j0, ldc);
  }
}

/* C (M x N, ldc) = A (M x K) B (K x N) for a plain matrix B with fewer columns than A has rows: B is
   packed once, shared, and the threads split the rows of C in blocks of mc_panels row panels, each
   packing its own blocks of A (in L2) and running them against all of B. */
static int SUF(gemm_rows)(long M, long N, long K, const SUF(operand) *A, const SUF(operand) *B, T *C,
                          long ldc, const long *tune, const epi_t *epi) {
  const long kc_max = tune[0], mc_panels = tune[2];
  const long mp = ceil_div(M, MR), npanels = ceil_div(N, NR), blocks = ceil_div(mp, mc_panels);
  const long nkb = ceil_div(K, kc_max), kcb = ceil_div(K, nkb);
  T *bp = alloc64(sizeof(T) * npanels * NR * nkb * kcb);
  int failed = bp == NULL;
#pragma omp parallel if (M * N * K > 32768)
  {
    if (!failed) {
#pragma omp for collapse(2) schedule(static)
      for (long kb = 0; kb < nkb; kb++)
        for (long jp = 0; jp < npanels; jp++) {
          const long k0 = kb * kcb, kc = clip(K - k0, kcb);
          SUF(pack_b)(B, N, jp * NR, 1, k0, kc, bp + k0 * npanels * NR + jp * kc * NR, NULL);
        }
    }
    T *ap = failed ? NULL : alloc64(sizeof(T) * mc_panels * MR * kcb);
    if (ap == NULL) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp barrier
    if (!failed) {
#pragma omp for schedule(static)
      for (long ib = 0; ib < blocks; ib++) {
        const long i0 = ib * mc_panels, i1 = mp - i0 < mc_panels ? mp : i0 + mc_panels;
        for (long kb = 0; kb < nkb; kb++) {
          const long k0 = kb * kcb, kc = clip(K - k0, kcb);
          for (long ip = i0; ip < i1; ip++)
            SUF(pack_a)(A, ip * MR, clip(M - ip * MR, MR), k0, kc, ap + (ip - i0) * kc * MR);
          SUF(block)(kc, ap, bp + k0 * npanels * NR, i0, i1, 0, npanels, M, N, C, ldc, kb, nkb, epi);
        }
      }
    }
    free(ap);
  }
  free(bp);
  return failed;
}

/* C (M x N, ldc) = A (M x K) B (K x N). Threads split the rows of C (gemm_rows: B a plain matrix
   smaller than A), the columns, or, when there are few columns and a long reduction, the reduction
   (each thread adds its partial C at the end). */
static int SUF(gemm_ops)(long M, long N, long K, const SUF(operand) *A, const SUF(operand) *B, T *C,
                          long ldc, const long *tune, const epi_t *epi) {
  const long kc_max = tune[0], nc_panels = tune[1], mc_panels = tune[2];
  if (M <= 0 || N <= 0) return 0;
  if (K <= 0) {
    for (long i = 0; i < M; i++) memset(C + i * ldc, 0, sizeof(T) * N);
    if (epi != NULL) epi->fn(epi->ctx, epi->batch, 0, 0, M, N, C, ldc);
    return 0;
  }
  const long mp = ceil_div(M, MR), npanels = ceil_div(N, NR);
  const long nkb = ceil_div(K, kc_max), kcb = ceil_div(K, nkb);
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  const int split_k = threads > 1 && nkb >= 2 * threads && (npanels < 2 * threads || K >= 16 * N);
  if (!split_k && B->kind == 0 && N < M && ceil_div(mp, mc_panels) >= threads)
    return SUF(gemm_rows)(M, N, K, A, B, C, ldc, tune, epi);
  if (!split_k) {
    T *ap = alloc64(sizeof(T) * mp * MR * nkb * kcb);
    int failed = ap == NULL;
#pragma omp parallel if (M * N * K > 32768)
    {
      if (!failed) {
#pragma omp for collapse(2) schedule(static)
        for (long kb = 0; kb < nkb; kb++)
          for (long ip = 0; ip < mp; ip++) {
            const long k0 = kb * kcb, kc = clip(K - k0, kcb);
            const long h = clip(M - ip * MR, MR);
            SUF(pack_a)(A, ip * MR, h, k0, kc, ap + k0 * mp * MR + ip * kc * MR);
          }
      }
      const int nt = omp_get_num_threads(), id = omp_get_thread_num();
      const long pa = npanels * id / nt, pb = npanels * (id + 1) / nt;
      T *bp = failed ? NULL : alloc64(sizeof(T) * kcb * NR * nc_panels);
      run_t *runs = malloc(sizeof(run_t) * (kcb + NR + 1));
      if (bp == NULL || runs == NULL) {
#pragma omp atomic write
        failed = 1;
      }
#pragma omp barrier
      if (!failed) {
        for (long q0 = pa; q0 < pb; q0 += nc_panels) {
          const long np = clip(pb - q0, nc_panels);
          for (long kb = 0; kb < nkb; kb++) {
            const long k0 = kb * kcb, kc = clip(K - k0, kcb);
            SUF(pack_b)(B, N, q0 * NR, np, k0, kc, bp, runs);
            const T *apk = ap + k0 * mp * MR;
            for (long i0 = 0; i0 < mp; i0 += mc_panels) { /* A's panels i0..i1 stay in L2 */
              const long i1 = mp - i0 < mc_panels ? mp : i0 + mc_panels;
              SUF(block)(kc, apk + i0 * kc * MR, bp, i0, i1, q0, np, M, N, C, ldc, kb, nkb, epi);
            }
          }
        }
      }
      free(bp);
      free(runs);
    }
    free(ap);
    return failed;
  }
  /* split the reduction: thread t sums blocks [nkb*t/nt, nkb*(t+1)/nt) into its own partial C */
  T *part = calloc((size_t)threads * M * N, sizeof(T));
  if (part == NULL) return 1;
  int failed = 0;
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    T *ap = alloc64(sizeof(T) * mp * MR * kcb);
    T *bp = alloc64(sizeof(T) * kcb * NR * npanels);
    run_t *runs = malloc(sizeof(run_t) * (kcb + NR + 1));
    T *mine = part + (long)id * M * N;
    if (ap == NULL || bp == NULL || runs == NULL) {
#pragma omp atomic write
      failed = 1;
    } else {
      for (long kb = nkb * id / nt; kb < nkb * (id + 1) / nt; kb++) {
        const long k0 = kb * kcb, kc = clip(K - k0, kcb);
        for (long ip = 0; ip < mp; ip++)
          SUF(pack_a)(A, ip * MR, clip(M - ip * MR, MR), k0, kc, ap + ip * kc * MR);
        SUF(pack_b)(B, N, 0, npanels, k0, kc, bp, runs);
        for (long jp = 0; jp < npanels; jp++) {
          const long j0 = jp * NR, w = clip(N - j0, NR);
          for (long ip = 0; ip < mp; ip++) {
            const long h = clip(M - ip * MR, MR);
            T *c = mine + ip * MR * N + j0;
            SUF(tile)(kc, ap + ip * kc * MR, bp + jp * kc * NR, c, N, 1, h, w);
          }
        }
      }
    }
    SUF(add_parts)(ap, bp, runs, part, nt, M, N, C, ldc, epi);
  }
  free(part);
  return failed;
}

/* C[b] = A[b] B[b] for b < batch: strided matrices (element strides; batch strides per operand), then
   the epilogue fn (if not NULL) with ctx on every block of C. */
int SUF(gemm)(long batch, long M, long N, long K, const T *a, long abs_, long ars, long acs,
               const T *b, long bbs, long brs, long bcs, T *c, long cbs, long ldc, const long *tune,
               epi_fn fn, const long *ctx) {
  for (long i = 0; i < batch; i++) {
    SUF(operand) A = {0, a + i * abs_, ars, acs, {0}, NULL}, B = {0, b + i * bbs, brs, bcs, {0}, NULL};
    const epi_t epi = {fn, ctx, i};
    if (SUF(gemm_ops)(M, N, K, &A, &B, c + i * cbs, ldc, tune, fn == NULL ? NULL : &epi)) return 1;
  }
  return 0;
}

/* B as the windows operand (kind 1 or 2) of one group of a convolution with geometry geom; returns
   its row table (the caller frees it), NULL if out of memory. */
static wrow_t *SUF(windows_of)(SUF(operand) *B, int kind, const long *geom, long groups) {
  B->kind = kind;
  B->p = NULL;
  B->rs = B->cs = 0;
  B->g = read_geom(geom);
  B->g.c /= groups;
  B->rows = window_rows(&B->g);
  return (wrow_t *)B->rows;
}

/* A convolution, per group: out[g] (O/G x N*P) = w[g] (O/G x C/G*taps) windows(x, group g), then the
   epilogue fn (if not NULL, with the group as its batch index) on every block. */
int SUF(conv)(const T *w, const T *x, const long *geom, T *out, long groups, const long *tune, epi_fn fn,
               const long *ctx) {
  SUF(operand) B;
  wrow_t *rows = SUF(windows_of)(&B, 1, geom, groups);
  if (rows == NULL) return 1;
  const long cg = B.g.c, kdim = cg * B.g.taps, cols = B.g.n * B.g.pos, og = geom[25] / groups;
  int status = 0;
  for (long i = 0; i < groups; i++) {
    SUF(operand) A = {0, w + i * og * kdim, kdim, 1, {0}, NULL};
    const epi_t epi = {fn, ctx, i};
    B.p = x + i * cg * B.g.xc;
    status = SUF(gemm_ops)(og, cols, kdim, &A, &B, out + i * og * cols, cols, tune, fn == NULL ? NULL : &epi);
    if (status) break;
  }
  free(rows);
  return status;
}

/* 4 x 6 dot products of rows a[0..4) and b[0..6) (row stride kp, kp a multiple of VW): out[i*6 + j]. */
static void SUF(dots)(long kp, const T *restrict a, const T *restrict b, T *restrict out) {
#if defined(__AVX512F__)
  VEC r[4][6];
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++)
#pragma GCC unroll 6
    for (int j = 0; j < 6; j++) r[i][j] = VZERO();
  for (long k = 0; k < kp; k += VW) {
    const VEC a0 = VLOAD(a + k), a1 = VLOAD(a + kp + k);
    const VEC a2 = VLOAD(a + 2 * kp + k), a3 = VLOAD(a + 3 * kp + k);
#pragma GCC unroll 6
    for (int j = 0; j < 6; j++) {
      const VEC bj = VLOAD(b + j * kp + k);
      r[0][j] = VFMA(a0, bj, r[0][j]);
      r[1][j] = VFMA(a1, bj, r[1][j]);
      r[2][j] = VFMA(a2, bj, r[2][j]);
      r[3][j] = VFMA(a3, bj, r[3][j]);
    }
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 6; j++) out[i * 6 + j] = VREDUCE(r[i][j]);
#else
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 6; j++) {
      T s = 0;
      for (long k = 0; k < kp; k++) s += a[i * kp + k] * b[j * kp + k];
      out[i * 6 + j] = s;
    }
#endif
}

/* C (M x N, ldc) = A (M x K, rows of stride lda, contiguous) times the windows of x (N rows, K
   positions) transposed: a weight gradient. Both operands run along the positions, so both are packed
   as rows (windows by masked run copies) and tiles are 4 x 6 dot products; threads split the positions
   and add their partial C. */
static int SUF(window_dots)(long M, long N, long K, const T *a, long lda, const geom_t *g, const T *x,
                            const wrow_t *rows, T *C, long ldc, long kc_max) {
  const long mp = ceil_div(M, 4) * 4, np = ceil_div(N, 6) * 6;
  const long nkb = ceil_div(K, kc_max), kcb = ceil_div(K, nkb), kpb = ceil_div(kcb, VW) * VW;
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  T *part = calloc((size_t)threads * M * N, sizeof(T));
  if (part == NULL) return 1;
  int failed = 0;
#pragma omp parallel if (M * N * K > 32768)
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    T *ap = alloc64(sizeof(T) * mp * kpb), *bp = alloc64(sizeof(T) * np * kpb);
    run_t *runs = malloc(sizeof(run_t) * (kcb + 1));
    T *mine = part + (long)id * M * N;
    if (ap == NULL || bp == NULL || runs == NULL) {
#pragma omp atomic write
      failed = 1;
    } else {
      for (long kb = nkb * id / nt; kb < nkb * (id + 1) / nt; kb++) {
        const long k0 = kb * kcb, kc = clip(K - k0, kcb), kp = ceil_div(kc, VW) * VW;
        for (long i = 0; i < mp; i++) {
          if (i < M) memcpy(ap + i * kp, a + i * lda + k0, sizeof(T) * kc);
          memset(ap + i * kp + (i < M ? kc : 0), 0, sizeof(T) * (i < M ? kp - kc : kp));
        }
        const long count = position_runs(g, k0, k0 + kc, runs);
        for (long j = 0; j < np; j++) {
          T *d = bp + j * kp;
          if (j < N)
            for (long q = 0; q < count; q++) SUF(window_run)(g, x, rows + j, runs + q, d + runs[q].at, 1);
          memset(d + (j < N ? kc : 0), 0, sizeof(T) * (j < N ? kp - kc : kp));
        }
        for (long j0 = 0; j0 < np; j0 += 6)
          for (long i0 = 0; i0 < mp; i0 += 4) {
            T t[24];
            SUF(dots)(kp, ap + i0 * kp, bp + j0 * kp, t);
            for (long i = i0; i < i0 + 4 && i < M; i++)
              for (long j = j0; j < j0 + 6 && j < N; j++) mine[i * N + j] += t[(i - i0) * 6 + j - j0];
          }
      }
    }
    SUF(add_parts)(ap, bp, runs, part, nt, M, N, C, ldc, NULL);
  }
  free(part);
  return failed;
}

/* A convolution's weight gradient, per group: gw[g] (O/G x C/G*taps) = gy[g] (O/G x N*P, rows
   contiguous) windows(x, group g) transposed. Fewer window rows than a tile's columns (a first layer's
   3 x 3 x 3) take the dot-product tiles; otherwise the GEMM packs the windows transposed. */
int SUF(conv_wgrad)(const T *gy, const T *x, const long *geom, T *gw, long groups, const long *tune) {
  SUF(operand) B;
  wrow_t *rows = SUF(windows_of)(&B, 2, geom, groups);
  if (rows == NULL) return 1;
  const long cg = B.g.c, kdim = cg * B.g.taps, cols = B.g.n * B.g.pos, og = geom[25] / groups;
  int status = 0;
  for (long i = 0; i < groups && !status; i++) {
    const T *xi = x + i * cg * B.g.xc, *gi = gy + i * og * cols;
    if (kdim < NR) {
      status = SUF(window_dots)(og, kdim, cols, gi, cols, &B.g, xi, rows, gw + i * og * kdim, kdim, tune[3]);
    } else {
      SUF(operand) A = {0, gi, cols, 1, {0}, NULL};
      B.p = xi;
      status = SUF(gemm_ops)(og, kdim, cols, &A, &B, gw + i * og * kdim, kdim, tune, NULL);
    }
  }
  free(rows);
  return status;
}
#undef NR
"""

_VECTOR = {
    "float": dict(VEC="__m512", VZERO="_mm512_setzero_ps", VLOAD="_mm512_load_ps", VLOADU="_mm512_loadu_ps",
                  VSTOREU="_mm512_storeu_ps", VSET1="_mm512_set1_ps", VFMA="_mm512_fmadd_ps",
                  VADD="_mm512_add_ps", VMASK="__mmask16", VMLOAD="_mm512_maskz_loadu_ps",
                  VMLOADM="_mm512_mask_loadu_ps", VSHUF128="_mm512_shuffle_f32x4",
                  VMSTORE="_mm512_mask_storeu_ps", VREDUCE="_mm512_reduce_add_ps"),
    "double": dict(VEC="__m512d", VZERO="_mm512_setzero_pd", VLOAD="_mm512_load_pd",
                   VLOADU="_mm512_loadu_pd", VSTOREU="_mm512_storeu_pd", VSET1="_mm512_set1_pd",
                   VFMA="_mm512_fmadd_pd", VADD="_mm512_add_pd", VMASK="__mmask8",
                   VMLOAD="_mm512_maskz_loadu_pd", VMLOADM="_mm512_mask_loadu_pd",
                   VSHUF128="_mm512_shuffle_f64x2", VMSTORE="_mm512_mask_storeu_pd",
                   VREDUCE="_mm512_reduce_add_pd"),
}


def source(dtypes: tuple = tuple(_TYPES)) -> str:
    """The C source of the GEMM library for these float types (each built on its own when first used:
    one type compiles in about half the time)."""
    parts = [_COMMON]
    for t, suffix, width in (_TYPES[np.dtype(d)] for d in dtypes):
        macros = {"T": t, "VW": str(width), "SUF(name)": f"name##_{suffix}", **_VECTOR[t]}
        parts.append("\n".join(f"#define {k} {v}" for k, v in macros.items()))
        parts.append(_TYPED)
        parts.append("\n".join(f"#undef {k.split('(')[0]}" for k in macros))
    return "\n".join(parts) + "\n"


def library(dtype: Any = np.float32) -> Any:
    """The loaded GEMM library for `dtype` (float32 or float64), or None without a working C compiler."""
    suffix = _suffix(dtype)
    if suffix not in _LIB:
        _LIB[suffix] = try_build(source((dtype,)))
    return _LIB[suffix]


def supports(*arrays: np.ndarray) -> bool:
    """True if the generated kernels serve these operands (one float dtype of 32 or 64 bits)."""
    dt = arrays[0].dtype
    return dt in _TYPES and all(a.dtype == dt for a in arrays) and library(dt) is not None


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(data_pointer(a))


def _suffix(dt: np.dtype) -> str:
    return _TYPES[np.dtype(dt)][1]


def _check(status: int) -> None:
    if status:
        raise MemoryError("gemm: could not allocate the packing buffers")


_TUNES: dict[tuple[int, ...], np.ndarray] = {}


def _tune() -> np.ndarray:
    """The blocking parameters as the C code reads them (one array per setting: tests change them)."""
    key = (KC_MAX, NC_PANELS, MC_PANELS, KC_DOT)
    tune = _TUNES.get(key)
    if tune is None:
        tune = _TUNES[key] = np.array(key, np.int64)
    return tune


_CALLS: dict[str, Any] = {}  # gemm function name -> the function with its argument types declared


def _gemm_fn(dtype: np.dtype) -> Any:
    """The ``gemm_*`` C function for `dtype`, called with plain integers (its argument types declared)."""
    name = f"gemm_{_suffix(dtype)}"
    fn = _CALLS.get(name)
    if fn is None:
        fn = getattr(library(dtype), name)
        L, P = ctypes.c_long, ctypes.c_void_p
        fn.argtypes = [L, L, L, L, P, L, L, L, P, L, L, L, P, L, L, P, P, P]
        fn.restype = ctypes.c_int
        fn = _CALLS[name] = fn
    return fn


def _strides(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


def _rows_view(a: np.ndarray) -> np.ndarray | None:
    """`a` (..., M, K) as an (R, K) view with all leading dims folded into rows, or None if its strides
    do not allow it."""
    keep = [(n, s) for n, s in zip(a.shape[:-1], a.strides[:-1]) if n != 1]
    if any(s != keep[i + 1][0] * keep[i + 1][1] for i, (_, s) in enumerate(keep[:-1])):
        return None
    return np.lib.stride_tricks.as_strided(a, (math.prod(a.shape[:-1]), a.shape[-1]),
                                           (keep[-1][1] if keep else 0, a.strides[-1]))


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, epilogue: Any = None) -> np.ndarray:
    """``a @ b`` for float operands of at least 2 dims, batch dims broadcast as ``np.matmul`` does,
    any whole-element strides; into `out` (C-contiguous, the broadcast shape) or a new array.

    `epilogue` (``(fn, ctx)``, a C function pointer and its context array, see ``epi_fn`` in the
    source) rewrites each block of the result while it is in cache."""
    if any(s % a.itemsize for s in a.strides + b.strides):
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    epi_fn, ctx = epilogue if epilogue is not None else (None, None)
    if a.ndim == 2 and b.ndim == 2:  # (the common case, without the batch bookkeeping below)
        if out is None:
            out = np.empty((m, n), a.dtype)
        size = a.itemsize
        _check(_gemm_fn(a.dtype)(1, m, n, k, data_pointer(a), 0, a.strides[0] // size, a.strides[1] // size,
                                 data_pointer(b), 0, b.strides[0] // size, b.strides[1] // size,
                                 data_pointer(out), m * n, n, data_pointer(_tune()), epi_fn,
                                 None if ctx is None else data_pointer(ctx)))
        return out
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if out is None:
        out = np.empty(batch + (m, n), a.dtype)
    rows = _rows_view(a) if b.ndim == 2 and a.ndim > 2 else None
    if rows is not None:  # one (rows, k) x (k, n) product
        a, b, m = rows[None, None], b[None, None], rows.shape[0]
    else:
        a, b = (np.broadcast_to(x, batch + x.shape[-2:]).reshape((-1,) + batch[-1:] + x.shape[-2:]) if batch
                else x[None, None] for x in (a, b))
    fn, tune = _gemm_fn(a.dtype), data_pointer(_tune())
    flat = out.reshape(-1, m, n)
    inner = a.shape[1]  # a and b are now (outer, inner, rows, cols); the C loop runs over inner
    for outer in range(a.shape[0]):
        ai, bi = a[outer], b[outer]
        sa, sb = _strides(ai), _strides(bi)
        oi = flat[outer * inner:(outer + 1) * inner]
        _check(fn(inner, m, n, k, data_pointer(ai), sa[0], sa[1], sa[2], data_pointer(bi), sb[0], sb[1],
                  sb[2], data_pointer(oi), m * n, n, tune, epi_fn,
                  None if ctx is None else data_pointer(ctx)))
    return out


def conv(x: np.ndarray, w: np.ndarray, geom: np.ndarray, groups: int, out: np.ndarray | None = None,
         epilogue: Any = None) -> np.ndarray:
    """The (groups, O/groups, N·P) product of each group's weights and the windows of `x`
    (`geom` as window.py's ``_conv_geom`` followed by the output channel count), into `out` (C-contiguous)
    or a new array; `epilogue` as for :func:`matmul` (its batch index is the group)."""
    o = w.shape[0]
    if out is None:
        out = np.empty((groups, o // groups, int(geom[0]) * int(np.prod(geom[5:8]))), x.dtype)
    w, tune = np.ascontiguousarray(w), _tune()
    fn, ctx = epilogue if epilogue is not None else (None, None)
    _check(getattr(library(x.dtype), f"conv_{_suffix(x.dtype)}")(_ptr(w), _ptr(x), _ptr(geom), _ptr(out),
                                                          ctypes.c_long(groups), _ptr(tune), fn,
                                                          None if ctx is None else _ptr(ctx)))
    return out


def conv_wgrad(x: np.ndarray, gy: np.ndarray, geom: np.ndarray, groups: int, kdim: int) -> np.ndarray:
    """The (groups, O/groups, `kdim`) product of each group's output gradient `gy` (groups,
    O/groups, N·P; contiguous) and the transposed windows of `x`."""
    out = np.empty(gy.shape[:2] + (kdim,), x.dtype)
    L = ctypes.c_long
    fn, tune = getattr(library(x.dtype), f"conv_wgrad_{_suffix(x.dtype)}"), _tune()
    _check(fn(_ptr(gy), _ptr(x), _ptr(geom), _ptr(out), L(groups), _ptr(tune)))
    return out


# Multiply-adds per product below which NumPy's BLAS call wins: its call costs a few microseconds against
# the GEMM's ten or so (a 128x32 by 32x32 product: 3.5 us against 9.5 us), and up to about 2M
# multiply-adds the packed kernel does not make that back (counted over the batch: the GEMM runs a
# batch in one call). A fused epilogue saves a pass and a kernel call of its own, which pays for the
# GEMM from smaller products, but not below about 1M multiply-adds per product: a 128x32 by 32x128
# product with a bias and an activation took 48 us fused against 32 us for NumPy's product followed
# by the elementwise kernel.
MIN_WORK = 1 << 21
MIN_EPILOGUE_WORK = 1 << 20


def _matmul_cpu(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The CPU kernel of the ``matmul`` primitive: the packed GEMM for float32/float64 products of
    matrices (batched or not), NumPy's BLAS for vectors, small products and other dtypes."""
    from ..._core.primitives import linalg

    if a.ndim < 2 or b.ndim < 2 or a.shape[-2] * a.shape[-1] * b.shape[-1] < MIN_EPILOGUE_WORK \
            or max(a.size * b.shape[-1], b.size * a.shape[-2]) < MIN_WORK or not supports(a, b):
        # (small products one by one, or all of the batch's together)
        return linalg._matmul_cpu(a, b)
    from ...backends.numpy_backend import CPU

    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    return matmul(a, b, CPU.pool.empty(shape, a.dtype))


def register() -> None:
    """Make the packed GEMM the CPU kernel of the ``matmul`` primitive."""
    from ..._core.primitives import linalg

    linalg.matmul_p.kernels["cpu"] = _matmul_cpu


register()
