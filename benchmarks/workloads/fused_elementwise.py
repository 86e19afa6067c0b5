"""Fusion and generated C kernels: ``gelu_tanh(x * w + b)`` on 4M float32 values, compiled with
``ember.jit`` (one fused kernel) against Ember eager, and as a fraction of the machine's memory
bandwidth measured in the same run with a large copy (bytes counted as 3 inputs read + 1 output
written; the copy as 1 read + 1 write). The copy is the fastest of NumPy's (one thread), PyTorch's
(all threads) and a C loop on all threads with streaming stores (what large copies can reach when the
destination is not read into the caches first), so the fraction is of what the machine's cores can move
together. PyTorch eager runs the same expression beside them. A C loop computing only ``x * w + b`` (the
same three reads and one streaming write, the least arithmetic) gives the bandwidth this access pattern
reaches on the machine."""
from __future__ import annotations

import ctypes

import numpy as np
import torch

import ember
from ember.compiler.codegen import build

from ..harness import Row, Target, compare, skipped

_STREAM_COPY = """\
#include <stdint.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif
/* dst[0:n] = src[0:n]; n a multiple of 16, both 64-byte aligned */
void stream_copy(const float *restrict src, float *restrict dst, const int64_t n) {
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i += 16) {
#if defined(__SSE2__)
      for (int q = 0; q < 16; q += 4) _mm_stream_ps(dst + i + q, _mm_load_ps(src + i + q));
#else
      for (int q = 0; q < 16; q++) dst[i + q] = src[i + q];
#endif
    }
#if defined(__SSE2__)
    _mm_sfence();
#endif
  }
}
"""

# The same access pattern with the least arithmetic: out = x * w + b as one C loop on all threads, with
# streaming stores. No kernel that reads three arrays and writes one can beat it, so it measures what the
# machine allows this workload (the copy reads as much as it writes, which a memory system may serve
# faster than three reads per write).
_PATTERN = """\
#include <stdint.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif
/* out[0:n] = x * w + b; n a multiple of 16, out 64-byte aligned */
void read3_write1(const float *restrict x, const float *restrict w, const float *restrict b,
                  float *restrict out, const int64_t n) {
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i += 16) {
#if defined(__SSE2__)
      for (int q = 0; q < 16; q += 4)
        _mm_stream_ps(out + i + q, _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(x + i + q), _mm_loadu_ps(w + i + q)),
                                              _mm_loadu_ps(b + i + q)));
#else
      for (int q = 0; q < 16; q++) out[i + q] = x[i + q] * w[i + q] + b[i + q];
#endif
    }
#if defined(__SSE2__)
    _mm_sfence();
#endif
  }
}
"""


def _pattern(x: np.ndarray, w: np.ndarray, b: np.ndarray, out: np.ndarray):
    """A zero-argument call of the C loop computing ``x * w + b``, or None without a C compiler."""
    lib = build.try_build(_PATTERN)
    if lib is None:
        return None
    fn = lib.read3_write1
    fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64]
    fn.restype = None
    return lambda: fn(x.ctypes.data, w.ctypes.data, b.ctypes.data, out.ctypes.data, x.size)


def _aligned(n: int) -> np.ndarray:
    """An uninitialised float32 array of `n` values starting on a 64-byte boundary."""
    raw = np.empty(n + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + n]


def _stream_copy(src: np.ndarray, dst: np.ndarray):
    """A zero-argument call of the C streaming copy, or None without a C compiler."""
    lib = build.try_build(_STREAM_COPY)
    if lib is None:
        return None
    fn = lib.stream_copy
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    return lambda: fn(src.ctypes.data, dst.ctypes.data, src.size)


def _fn(x, w, b):
    return ember.gelu_tanh(x * w + b)


def run(quick: bool = False) -> list[Row]:
    n = 1 << 12 if quick else 1 << 22
    rng = np.random.default_rng(0)
    x, w, b = (ember.tensor(rng.standard_normal(n).astype(np.float32)) for _ in range(3))
    compiled = ember.jit(_fn)
    if not any(nd.prim.name.startswith("fused_") for nd in compiled.lower(x, w, b).graph.nodes):
        return [skipped("fused_elementwise", "gelu_tanh(x*w+b)", "the chain was not fused")]
    src, dst = _aligned(4 * n), _aligned(4 * n)  # a copy of 4 arrays' worth of bytes
    src[...] = rng.standard_normal(4 * n)
    tsrc, tdst = torch.from_numpy(src), torch.empty(4 * n)
    tx, tw, tb = (torch.from_numpy(t.numpy()) for t in (x, w, b))
    np.testing.assert_allclose(compiled(x, w, b).numpy(), torch.nn.functional.gelu(
        tx * tw + tb, approximate="tanh").numpy(), rtol=1e-5, atol=1e-6)
    warmup, repeat = (1, 1) if quick else (3, 11)
    candidates = {"compiled": lambda: compiled(x, w, b), "eager": lambda: _fn(x, w, b),
                  "torch": lambda: torch.nn.functional.gelu(tx * tw + tb, approximate="tanh"),
                  "copy": lambda: np.copyto(dst, src), "torch copy": lambda: tdst.copy_(tsrc)}
    streaming = _stream_copy(src, dst)
    if streaming is not None:
        streaming()
        np.testing.assert_array_equal(dst, src)
        candidates["streaming copy"] = streaming
    pattern_out = _aligned(n)
    pattern = _pattern(*(t.numpy() for t in (x, w, b)), pattern_out)
    if pattern is not None:
        pattern()
        np.testing.assert_allclose(pattern_out, (x * w + b).numpy(), rtol=1e-6)
        candidates["x*w+b C loop"] = pattern
    times = compare(candidates, warmup=warmup, repeat=repeat)
    ms = {k: v * 1e3 for k, v in times.items()}
    fused_gbs = 4 * n * 4 / times["compiled"] / 1e9
    copy_gbs = 2 * src.nbytes / min(v for k, v in times.items() if "copy" in k) / 1e9
    case = f"gelu_tanh(x*w+b), {n} x float32"
    ceiling = {"x*w+b C loop": 4 * n * 4 / times["x*w+b C loop"] / 1e9} if "x*w+b C loop" in times else {}
    return [Row("fused_elementwise", case + ": jit vs eager", "ms", ms["compiled"],
                {"eager": ms["eager"], "torch": ms["torch"]}, Target("eager", 1 / 3)),
            Row("fused_elementwise", case + ": bandwidth", "GB/s", fused_gbs, {"copy": copy_gbs, **ceiling},
                Target("copy", 0.7, higher_is_better=True))]
