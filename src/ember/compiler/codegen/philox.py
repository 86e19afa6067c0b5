"""Philox4x32-10 in C: the random words of ``ember._core.random`` and uniform floats, on all cores.

The reference stream is NumPy integer arithmetic, one vectorised pass per operation and round (about
15-25 ns a word). These kernels compute the same blocks in C: the counters of ``LANES`` consecutive
blocks are held as four arrays of words and every round runs across them (a loop the compiler turns into
SIMD 32 x 32 -> 64-bit multiplies), then the words are stored interleaved, block after block, as the
reference lays them out. Threads take whole groups of blocks. The words are the reference's words, bit
for bit, whatever the thread count.

Uniform floats are made in the same pass (no array of words in between), with the reference's
arithmetic: float32 takes the top 24 bits of one word, float64 the top 53 bits of two words (the first
word high), each scaled by a power of two in double, then ``low + (high - low) * u`` in double when the
range is not [0, 1), rounded once to the output type. Built without contraction (``-ffp-contract=off``),
so the results equal the reference's.
"""
from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

from ...backends import CPU
from .build import data_pointer, try_build_typed

LANES = 16  # blocks whose rounds run side by side
MIN_WORDS = 1024  # smaller draws keep the reference (and never build the library)
MIN_PARALLEL = 1 << 14  # blocks from which the threads share the work

_SOURCE = f"""\
/* ember Philox4x32-10: random words and uniform floats; the blocks of ember._core.random.philox_words */
#include <stdint.h>
#include <string.h>
#define LANES {LANES}

/* the four words of blocks first .. first + LANES - 1 under key (k0, k1), as four arrays */
static inline void philox_lanes(uint64_t first, uint32_t k0, uint32_t k1, uint32_t c0[LANES],
                                uint32_t c1[LANES], uint32_t c2[LANES], uint32_t c3[LANES]) {{
  for (int j = 0; j < LANES; j++) {{
    const uint64_t i = first + (uint64_t)j;
    c0[j] = (uint32_t)i;
    c1[j] = (uint32_t)(i >> 32);
    c2[j] = 0;
    c3[j] = 0;
  }}
  for (int r = 0; r < 10; r++) {{
#pragma omp simd
    for (int j = 0; j < LANES; j++) {{
      const uint64_t p0 = (uint64_t)c0[j] * 0xD2511F53u, p1 = (uint64_t)c2[j] * 0xCD9E8D57u;
      const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[j] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[j] ^ k1;
      c1[j] = (uint32_t)p1;
      c3[j] = (uint32_t)p0;
      c0[j] = n0;
      c2[j] = n2;
    }}
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }}
}}

/* words of LANES blocks starting at block `first`, interleaved (block after block) into w[4 * LANES] */
static inline void philox_group(uint64_t first, uint32_t k0, uint32_t k1, uint32_t *w) {{
  uint32_t c0[LANES], c1[LANES], c2[LANES], c3[LANES];
  philox_lanes(first, k0, k1, c0, c1, c2, c3);
  for (int j = 0; j < LANES; j++) {{
    w[4 * j] = c0[j];
    w[4 * j + 1] = c1[j];
    w[4 * j + 2] = c2[j];
    w[4 * j + 3] = c3[j];
  }}
}}

/* out[0 : count] = the words of blocks offset, offset + 1, ... under key seed */
void philox_words(uint64_t seed, uint64_t offset, int64_t count, uint32_t *out) {{
  const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  const int64_t per = 4 * LANES, groups = (count + per - 1) / per;
#pragma omp parallel for schedule(static) if (groups * LANES >= {MIN_PARALLEL})
  for (int64_t g = 0; g < groups; g++) {{
    uint32_t w[4 * LANES];
    philox_group(offset + (uint64_t)(g * LANES), k0, k1, w);
    const int64_t at = g * per, m = count - at < per ? count - at : per;
    memcpy(out + at, w, (size_t)m * sizeof(uint32_t));
  }}
}}

/* n float32 uniforms from one word each: (w >> (32 - bits)) * 2^-bits, mapped to [low, high) unless unit */
void philox_uniform_float(uint64_t seed, uint64_t offset, int64_t n, int bits, int unit, double low,
                          double high, float *out) {{
  const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  const int64_t per = 4 * LANES, groups = (n + per - 1) / per;
  const double scale = 1.0 / (double)((uint64_t)1 << bits), span = high - low;
  const int shift = 32 - bits;
#pragma omp parallel for schedule(static) if (groups * LANES >= {MIN_PARALLEL})
  for (int64_t g = 0; g < groups; g++) {{
    uint32_t w[4 * LANES];
    philox_group(offset + (uint64_t)(g * LANES), k0, k1, w);
    const int64_t at = g * per, m = n - at < per ? n - at : per;
    float *o = out + at;
    if (unit) {{
      for (int64_t e = 0; e < m; e++) o[e] = (float)((double)(w[e] >> shift) * scale);
    }} else {{
      for (int64_t e = 0; e < m; e++) o[e] = (float)(low + span * ((double)(w[e] >> shift) * scale));
    }}
  }}
}}

/* n float64 uniforms from two words each: ((w0 << 32 | w1) >> 11) * 2^-53, mapped unless unit */
void philox_uniform_double(uint64_t seed, uint64_t offset, int64_t n, int bits, int unit, double low,
                           double high, double *out) {{
  const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  const int64_t per = 2 * LANES, groups = (n + per - 1) / per;
  const double scale = 1.0 / 9007199254740992.0, span = high - low;
  (void)bits;
#pragma omp parallel for schedule(static) if (groups * LANES >= {MIN_PARALLEL})
  for (int64_t g = 0; g < groups; g++) {{
    uint32_t w[4 * LANES];
    philox_group(offset + (uint64_t)(g * LANES), k0, k1, w);
    const int64_t at = g * per, m = n - at < per ? n - at : per;
    double *o = out + at;
    for (int64_t e = 0; e < m; e++) {{
      const double u = (double)((((uint64_t)w[2 * e] << 32) | w[2 * e + 1]) >> 11) * scale;
      o[e] = unit ? u : low + span * u;
    }}
  }}
}}
"""

_LIB: list[Any] = []


def _library() -> Any:
    if not _LIB:
        lib = try_build_typed(_SOURCE, ["philox_uniform_float", "philox_uniform_double"],
                              [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int64, ctypes.c_int, ctypes.c_int,
                               ctypes.c_double, ctypes.c_double, ctypes.c_void_p], None)
        if lib is not None:
            lib.philox_words.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int64, ctypes.c_void_p]
            lib.philox_words.restype = None
        _LIB.append(lib)
    return _LIB[0]


def source() -> str:
    """The C source of the kernels."""
    return _SOURCE


def words(seed: int, offset: int, count: int) -> np.ndarray | None:
    """`count` uint32 words from blocks ``offset, offset + 1, …`` of the stream keyed by `seed` (the
    words of ``ember._core.random.philox_words``), or None for a small draw or without a C compiler.

    Example:
        >>> w = words(7, 0, 4096)
        >>> from ember._core.random import philox_words
        >>> w is None or bool((w == philox_words(np, 7, 0, 4096)).all())
        True
    """
    if count < MIN_WORDS or not 0 <= offset < 2 ** 64:
        return None
    lib = _library()
    if lib is None:
        return None
    out = np.empty(count, np.uint32)
    lib.philox_words(seed % 2 ** 64, offset, count, data_pointer(out))
    return out


_FLOATS = {np.dtype(np.float32): ("philox_uniform_float", 24),
           np.dtype(np.float64): ("philox_uniform_double", 53)}


def uniform(seed: int, offset: int, shape: tuple[int, ...], dtype: Any, low: float, high: float
            ) -> np.ndarray | None:
    """Uniform float32/float64 samples in [low, high) of `shape` from blocks ``offset, …`` keyed by
    `seed`: the values of the reference ``uniform`` distribution, or None (another dtype, a small draw,
    no C compiler).

    Example:
        >>> u = uniform(3, 0, (64, 64), np.float32, 0.0, 1.0)
        >>> u is None or (u.dtype == np.float32 and bool(((u >= 0) & (u < 1)).all()))
        True
    """
    spec = _FLOATS.get(np.dtype(dtype))
    n = math.prod(shape)
    if spec is None or n < MIN_WORDS or not 0 <= offset < 2 ** 64:
        return None
    lib = _library()
    if lib is None:
        return None
    name, bits = spec
    out = CPU.pool.empty(tuple(shape), np.dtype(dtype))
    unit = (float(low), float(high)) == (0.0, 1.0)
    getattr(lib, name)(seed % 2 ** 64, offset, n, bits, int(unit), float(low), float(high), data_pointer(out))
    return out


CPU.random_words = words
CPU.random_uniform = uniform
