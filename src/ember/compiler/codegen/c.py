"""Render a :class:`~.kernel.Kernel` as C (OpenMP, vectorisable inner loops).

Scalar expressions use each atom's C spelling (``Atom.c``); in float32 kernels libm calls take their
``f`` variants, and ``exp``/``tanh`` use the inline, vectorisable versions below (at most about 1.5 ulp
from the exact value, as NumPy's own float32 kernels). Atoms whose C spelling would differ from NumPy
(``maximum``/``minimum`` propagate NaN, ``sign`` keeps NaN, Python's ``remainder``) use helpers too.
Comparisons give 0/1. Generated code depends only on the kernel IR, so the same IR can get a CUDA
renderer beside this one.
"""
from __future__ import annotations

import functools
import glob
import math
import re

from ..._core import expr
from .kernel import Kernel

CTYPES = {"float32": "float", "float64": "double", "bool": "unsigned char"}

# Atoms the renderer knows; a fused group may only contain formulas made of these.
SUPPORTED = frozenset(
    ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sin", "cos", "tan", "tanh", "sinh", "cosh",
     "asin", "acos", "atan", "asinh", "acosh", "atanh", "sqrt", "rsqrt", "log1p", "expm1", "abs", "sign",
     "floor", "ceil", "round", "trunc", "erf", "erfinv", "maximum", "minimum", "atan2", "where", "remainder",
     "fmod", "hypot", "logaddexp", "erfc", "copysign", "lgamma", "nextafter", "exp2", "log2", "log10", "conj",
     "lt", "le", "gt", "ge", "eq", "ne", "logical_and", "logical_or", "logical_xor", "logical_not",
     "isnan", "isinf", "isfinite"])

_LIBM = ("exp", "log", "sin", "cos", "tan", "tanh", "sinh", "cosh", "asin", "acos", "atan", "asinh",
         "acosh", "atanh", "sqrt", "log1p", "expm1", "fabs", "floor", "ceil", "rint", "trunc", "erf", "pow",
         "atan2", "fmod", "hypot", "erfc", "copysign", "lgamma", "nextafter", "exp2", "log2", "log10")
_LIBM_CALL = re.compile(r"\b(" + "|".join(_LIBM) + r")\(")

# Spellings that replace Atom.c: {atom: (float32 template, float64 template, helpers of each)}.
_OVERRIDES = {
    "exp": ("ember_expf({0})", "exp({0})", ("expf",), ()),
    "tanh": ("ember_tanhf({0})", "tanh({0})", ("expf", "tanhf"), ()),
    "erf": ("ember_erff({0})", "erf({0})", ("erff",), ()),
    "maximum": ("ember_maxf({0}, {1})", "ember_max({0}, {1})", ("max",), ("max",)),
    "minimum": ("ember_minf({0}, {1})", "ember_min({0}, {1})", ("max",), ("max",)),
    "sign": ("ember_signf({0})", "ember_sign({0})", ("sign",), ("sign",)),
    "erfinv": ("((float)ember_erfinv((double){0}))", "ember_erfinv({0})", ("erfinv",), ("erfinv",)),
    "remainder": ("ember_remf({0}, {1})", "ember_rem({0}, {1})", ("rem",), ("rem",)),
    "logaddexp": ("ember_logaddexpf({0}, {1})", "ember_logaddexp({0}, {1})", ("expf", "logaddexpf"),
                  ("logaddexp",)),
}

# a * b + c in one rounding where the target has fused multiply-adds (polynomials by Horner's rule)
_FMA = """\
#ifndef EMBER_FMAF
#if defined(__FMA__) || defined(__aarch64__)
#define EMBER_FMAF(a, b, c) fmaf(a, b, c)
#else
#define EMBER_FMAF(a, b, c) ((a) * (b) + (c))
#endif
#endif
"""

_HELPERS = {
    "expf": _FMA + """\
static inline float ember_expf(float x) {
  /* 2^k exp(r): k = round(x / ln2), read from the low bits of x / ln2 + 1.5 * 2^23 and capped at 128
     (an integer min), r = x - k ln2 (two-part ln2), exp(r) by a degree-6 polynomial fitted on
     [-ln2/2, ln2/2] for least relative error (Horner's rule, fused multiply-adds where the machine has
     them), 2^k in two halves so that results in the subnormal range stay right. Above the cap r grows
     and the result overflows to inf as it should; below -104 (results under half the least subnormal)
     the one float clamp holds x, and it lets a NaN through to the result, so NaNs need no test. */
  const float c = x < -104.0f ? -104.0f : x;
  const float t = EMBER_FMAF(c, 1.44269504088896341f, 12582912.0f);
  int32_t tb;
  memcpy(&tb, &t, sizeof tb);
  const int32_t k0 = tb - 0x4b400000; /* the integer in t's low mantissa bits */
  const int32_t k = k0 < 128 ? k0 : 128;
  const int32_t kb = k + 0x4b400000;
  float kt;
  memcpy(&kt, &kb, sizeof kt);
  /* k as a float, exactly: an int-to-float conversion may raise inexact, and the compiler would not
     then vectorise an exp that only some branch of a loop body uses */
  const float kf = kt - 12582912.0f;
  const float r = EMBER_FMAF(kf, -1.428606765330187e-06f, EMBER_FMAF(kf, -0.693145751953125f, c));
  float p = EMBER_FMAF(r, 0.0013843654887750745f, 0.00837415549904108f);
  p = EMBER_FMAF(p, r, 0.04166800156235695f);
  p = EMBER_FMAF(p, r, 0.16666431725025177f);
  p = EMBER_FMAF(p, r, 0.4999999403953552f);
  p = EMBER_FMAF(p, r, 1.0f);
  p = EMBER_FMAF(p, r, 1.0f);
  const uint32_t b1 = (uint32_t)((k >> 1) + 127) << 23, b2 = (uint32_t)(k - (k >> 1) + 127) << 23;
  float s1, s2;
  memcpy(&s1, &b1, sizeof s1);
  memcpy(&s2, &b2, sizeof s2);
  return p * s1 * s2;
}""",
    "stream": """\
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* one 64-byte line from an aligned buffer b to aligned memory p, around the caches */
#if defined(__AVX512F__)
#define EMBER_STREAM_F32(p, b) _mm512_stream_ps(p, _mm512_load_ps(b))
#define EMBER_STREAM_F64(p, b) _mm512_stream_pd(p, _mm512_load_pd(b))
#elif defined(__AVX__)
#define EMBER_STREAM_F32(p, b) do { for (int q_ = 0; q_ < 16; q_ += 8) \\
  _mm256_stream_ps((p) + q_, _mm256_load_ps((b) + q_)); } while (0)
#define EMBER_STREAM_F64(p, b) do { for (int q_ = 0; q_ < 8; q_ += 4) \\
  _mm256_stream_pd((p) + q_, _mm256_load_pd((b) + q_)); } while (0)
#else
#define EMBER_STREAM_F32(p, b) do { for (int q_ = 0; q_ < 16; q_ += 4) \\
  _mm_stream_ps((p) + q_, _mm_load_ps((b) + q_)); } while (0)
#define EMBER_STREAM_F64(p, b) do { for (int q_ = 0; q_ < 8; q_ += 2) \\
  _mm_stream_pd((p) + q_, _mm_load_pd((b) + q_)); } while (0)
#endif
#define EMBER_STREAM_FENCE() _mm_sfence()
/* whether a sits less than 256 bytes past b within a 4 KiB page: loads whose address matches a store
   still in flight in its low 12 bits wait for that store, so a loop that stores lines a little past
   where it loads next stalls on every line (run the other way round, the same placement is harmless) */
#define EMBER_NEAR(a, b) (((((uintptr_t)(a) - (uintptr_t)(b)) & 4095) - 1) < 255)
#endif""",
    "tanhf": """\
static inline float ember_tanhf(float x) {
  /* odd Taylor series below 0.55, 1 - 2 / (exp(2|x|) + 1) above */
  const float a = fabsf(x);
  const float z = x * x;
  const float p = -0.33333334f + z * (0.13333334f + z * (-0.053968254f + z * (0.021869488f
                  + z * (-0.008863236f + z * (0.0035921280f + z * -0.0014558344f)))));
  const float small = copysignf(x + x * z * p, x);
  const float e = ember_expf(2.0f * (a < 9.5f ? a : 9.5f));
  const float big = copysignf(1.0f - 2.0f / (e + 1.0f), x);
  return a < 0.55f ? small : (x != x ? x : big);
}""",
    "max": """\
static inline float ember_maxf(float a, float b) { return a > b ? a : (a <= b ? b : a + b); }
static inline float ember_minf(float a, float b) { return a < b ? a : (a >= b ? b : a + b); }
static inline double ember_max(double a, double b) { return a > b ? a : (a <= b ? b : a + b); }
static inline double ember_min(double a, double b) { return a < b ? a : (a >= b ? b : a + b); }""",
    "sign": """\
static inline float ember_signf(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); }
static inline double ember_sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : x); }""",
    "logaddexp": """\
static inline double ember_logaddexp(double x, double y) {
  /* max + log1p(exp(-|x - y|)); equal arguments (equal infinities too) give x + ln 2 */
  if (x == y) return x + 0.69314718055994531;
  const double d = x - y;
  return (d > 0.0 ? x : y) + log1p(exp(-fabs(d)));
}""",
    "logaddexpf": """\
static inline float ember_logaddexpf(float x, float y) {
  if (x == y) return x + 0.693147181f;
  const float d = x - y;
  return (d > 0.0f ? x : y) + log1pf(ember_expf(-fabsf(d)));
}""",
    "rem": """\
static inline double ember_rem(double x, double y) {
  /* Python's x % y: the sign of the divisor */
  double m = fmod(x, y);
  if (m != 0.0) {
    if ((y < 0.0) != (m < 0.0)) m += y;
  } else {
    m = copysign(0.0, y);
  }
  return m;
}
static inline float ember_remf(float x, float y) {
  float m = fmodf(x, y);
  if (m != 0.0f) {
    if ((y < 0.0f) != (m < 0.0f)) m += y;
  } else {
    m = copysignf(0.0f, y);
  }
  return m;
}""",
    "erff": _FMA + """\
static inline float ember_erff(float x) {
  /* x P(x^2) / Q(x^2), P and Q of degree 5, fitted to erf's relative error on |x| <= 3.925 (about 2e-8
     in exact arithmetic; within 6 ulp in float32, the most near erf = +-1), where float32 erf reaches
     +-1; |x| is clamped there. Branch-free, so the loop vectorises */
  const float hi = x < 3.925f ? x : 3.925f;
  const float c = hi > -3.925f ? hi : -3.925f;
  const float t = c * c;
  float p = EMBER_FMAF(t, 2.0458555809454992e-06f, 0.00028481395565904677f);
  p = EMBER_FMAF(p, t, 0.0037720424588769674f);
  p = EMBER_FMAF(p, t, 0.052767619490623474f);
  p = EMBER_FMAF(p, t, 0.1905844360589981f);
  p = EMBER_FMAF(p, t, 1.1283791065216064f);
  float q = EMBER_FMAF(t, 3.8044454413466156e-05f, 0.0011637017596513033f);
  q = EMBER_FMAF(q, t, 0.014982176944613457f);
  q = EMBER_FMAF(q, t, 0.11417847126722336f);
  q = EMBER_FMAF(q, t, 0.5022338032722473f);
  q = EMBER_FMAF(q, t, 1.0f);
  const float y = c * p / q;
  const float below = y < 1.0f ? y : 1.0f;
  return x != x ? x : (below > -1.0f ? below : -1.0f);
}""",
    "erfinv": """\
static inline double ember_erfinv(double y) {
  /* Winitzki's closed form as a start, then two Halley steps on erf(x) = |y| (erfc in the tail) */
  const double a = fabs(y);
  if (!(a < 1.0)) return a == 1.0 ? copysign(INFINITY, y) : NAN;
  const double l = log((1.0 - a) * (1.0 + a));
  const double t = 4.330746750799873 + 0.5 * l;
  double x = sqrt(sqrt(t * t - l / 0.147) - t);
  for (int i = 0; i < 2; i++) {
    const double err = a < 0.5 ? erf(x) - a : (1.0 - a) - erfc(x);
    const double d = 1.1283791670955126 * exp(-x * x);
    x -= err / (d + x * err);
  }
  return copysign(x, y);
}""",
}


def render_c(k: Kernel, stream: bool = False) -> str:
    """The C source of kernel `k`: ``void <name>(inputs..., outputs..., const int64_t *dims)``.

    With `stream` (flat kernels only), the results' aligned 64-byte lines are written with streaming
    stores (see :func:`stream_elements`).
    """
    if stream and (k.ndim != 1 or k.reduce):
        raise ValueError("only flat elementwise kernels stream their results")
    body, helpers = _body(k)
    lines = [f"/* {line} */" for line in k.comment]
    lines += ["#include <math.h>", "#include <stdint.h>", "#include <string.h>", ""]
    if k.reduce:  # the blocked row sums (see _loop_rows)
        lines[-1:] = ["#include <stdlib.h>", "#ifdef _OPENMP", "#include <omp.h>", "#else",
                      "#define omp_get_max_threads() 1", "#endif", ""]
    if stream:
        helpers.add("stream")
    for name in _HELPERS:
        if name in helpers:
            lines += [_HELPERS[name], ""]
    args = [f"const {CTYPES[op.dtype]} *restrict {op.name}" for op in k.inputs]
    args += [f"{CTYPES[k.dtype]} *restrict out{i}" for i in range(len(k.outputs))]
    if stream:
        return "\n".join(lines + _flat_streaming(k, body, args)) + "\n"
    lines.append(f"void {k.name}({', '.join(args + ['const int64_t *dims'])}) {{")
    lines += _loop_flat(k, body) if k.ndim == 1 else _loop_rows(k, body)
    lines.append("}")
    return "\n".join(lines) + "\n"


# Flat kernels whose operands and results together are larger than this write their results with
# non-temporal (streaming) stores: such data cannot stay cached for its consumer anyway, and the stores
# skip reading each output line into the cache before overwriting it (a quarter of the traffic of a
# three-input kernel). 0 means the last-level cache's size.
STREAM_MIN_BYTES = 0


def stream_min_bytes() -> int:
    """The bytes per call from which flat kernels stream their results: :data:`STREAM_MIN_BYTES` when
    set, else the size of the machine's last-level cache (32 MiB when the system does not say)."""
    if STREAM_MIN_BYTES:
        return STREAM_MIN_BYTES
    return _last_level_cache()


@functools.cache
def _last_level_cache() -> int:
    sizes = []
    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size")):
        with open(index) as f:
            text = f.read().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=32 << 20)


_ITEMSIZE = {"float32": 4, "float64": 8, "bool": 1}


def stream_elements(k: Kernel) -> int | None:
    """The element count from which flat kernel `k` should run its streaming variant (the bytes it reads
    from non-broadcast inputs and writes reach :func:`stream_min_bytes`); None for other kernels."""
    if k.ndim != 1 or k.reduce:
        return None
    per_element = _ITEMSIZE[k.dtype] * len(k.outputs) + sum(
        _ITEMSIZE[op.dtype] for op in k.inputs if not op.broadcast[0])
    return -(-stream_min_bytes() // per_element)


def _element(k: Kernel, body: list[str], indent: str, index: str, store: str) -> list[str]:
    """The statements of element `index`: loads, the body, and ``store.format(j=output) = r<j>``."""
    lines = [f"const {CTYPES[op.dtype]} {op.name}_v = {op.name}[{'0' if op.broadcast[0] else index}];"
             for op in k.inputs]
    lines += body + [f"{store.format(j=j)} = r{j};" for j in range(len(k.outputs))]
    return [indent + s for s in lines]


def _loop_flat(k: Kernel, body: list[str]) -> list[str]:
    lines = ["  const int64_t n = dims[0];",
             "#pragma omp parallel for simd schedule(static) if (parallel: n >= 32768)",
             "  for (int64_t i = 0; i < n; i++) {"]
    return lines + _element(k, body, "    ", "i", "out{j}[i]") + ["  }"]


def _flat_streaming(k: Kernel, body: list[str], args: list[str]) -> list[str]:
    """A flat kernel writing whole output lines around the caches: ``<name>_range`` (the plain loop over
    elements ``[lo, hi)``), ``<name>_stream`` (64-byte lines of every output computed into aligned
    buffers and written by streaming stores) and the entry point, which loops the unaligned head, streams
    the middle and loops the tail (all of it looped when the outputs' offsets within a line differ, or
    where the target has no streaming stores)."""
    ctype = CTYPES[k.dtype]
    size = _ITEMSIZE[k.dtype]
    line = 64 // size
    names = [op.name for op in k.inputs] + [f"out{j}" for j in range(len(k.outputs))]
    call = ", ".join(names)
    ranged = ", ".join(args + ["const int64_t lo", "const int64_t hi"])
    lines = [f"static void {k.name}_range({ranged}) {{",
             "#pragma omp parallel for simd schedule(static) if (parallel: hi - lo >= 32768)",
             "  for (int64_t i = lo; i < hi; i++) {"]
    lines += _element(k, body, "    ", "i", "out{j}[i]")
    lines += ["  }", "}", "", "#ifdef EMBER_STREAM_FENCE",
              f"static void {k.name}_stream({ranged}, const int back) {{",
              "#pragma omp parallel",
              "  {",
              # guided: the threads share out what is left as they finish, so one held up (a busy core,
              # a slower stretch of memory) does not leave the other waiting at the end; nothing here is
              # in cache for a thread to keep, as a static split's fixed halves would be
              "#pragma omp for schedule(guided, 64)",
              f"    for (int64_t m = lo; m < hi; m += {line}) {{",
              f"      const int64_t l = back ? lo + hi - {line} - m : m;"]
    lines += [f"      _Alignas(64) {ctype} line{j}[{line}];" for j in range(len(k.outputs))]
    lines += ["#pragma omp simd", f"      for (int64_t e = 0; e < {line}; e++) {{"]
    lines += _element(k, body, "        ", "l + e", "line{j}[e]")
    lines += ["      }"]
    store = "EMBER_STREAM_F32" if k.dtype == "float32" else "EMBER_STREAM_F64"
    lines += [f"      {store}(out{j} + l, line{j});" for j in range(len(k.outputs))]
    lines += ["    }", "    EMBER_STREAM_FENCE();", "  }", "}", "#endif", "",
              f"void {k.name}({', '.join(args + ['const int64_t *dims'])}) {{",
              "  const int64_t n = dims[0];",
              "#ifdef EMBER_STREAM_FENCE",
              "  const uintptr_t a = (uintptr_t)out0 & 63;"]
    same = " && ".join([f"n >= {line}", f"a % {size} == 0"] +
                       [f"((uintptr_t)out{j} & 63) == a" for j in range(1, len(k.outputs))])
    lines += [f"  if ({same}) {{",
              f"    const int64_t lo = (int64_t)((64 - a) & 63) / {size};",
              f"    const int64_t hi = lo + (n - lo) / {line} * {line};"]
    lines += _backwards(k)
    lines += [f"    {k.name}_range({call}, 0, lo);",
              f"    {k.name}_stream({call}, lo, hi, back);",
              f"    {k.name}_range({call}, hi, n);",
              "    return;",
              "  }",
              "#endif",
              f"  {k.name}_range({call}, 0, n);",
              "}"]
    return lines


def _backwards(k: Kernel) -> list[str]:
    """Statements choosing the streaming loop's direction: from the last line to the first when some
    output sits just past a full-size input within a page and none just before one (``EMBER_NEAR``: a
    forward loop would have its loads wait on the stores of the lines before)."""
    full = [op.name for op in k.inputs if not any(op.broadcast)]
    if not full:
        return ["    const int back = 0;"]
    pairs = [(f"out{j}", name) for j in range(len(k.outputs)) for name in full]
    ahead = " || ".join(f"EMBER_NEAR({o}, {i})" for o, i in pairs)
    behind = " || ".join(f"EMBER_NEAR({i}, {o})" for o, i in pairs)
    return [f"    const int ahead = {ahead};", f"    const int behind = {behind};",
            "    const int back = ahead && !behind;"]


def _stride(k: Kernel, mask: tuple[bool, ...], d: int) -> str:
    terms = [f"dims[{e}]" for e in range(d + 1, k.ndim) if not mask[e]]
    return " * ".join(terms) if terms else "1"


# reducing kernels sum a row in blocks of this many elements (each into a double, then the blocks in
# order), so that a few long rows can be shared among the threads block by block
REDUCE_BLOCK = 2048


def _loop_rows(k: Kernel, body: list[str]) -> list[str]:
    """Rows (all but the last loop dimension) in parallel, a vectorisable loop along the last one.

    A reducing kernel sums each row in blocks of :data:`REDUCE_BLOCK` elements, each into a float64
    accumulator, and adds the blocks' sums in order. With fewer than two rows per thread (a sum over
    every element, say) the threads take blocks instead of rows, their sums are kept, and the rows are
    then totalled in the same order: the same result either way, whatever the thread count.
    """
    last = k.ndim - 1
    rows = " * ".join(f"dims[{d}]" for d in range(last))
    lines = [f"  const int64_t rows = {rows}, n = dims[{last}];"]
    if k.reduce:
        lines += [f"  const int64_t blocks = (n + {REDUCE_BLOCK - 1}) / {REDUCE_BLOCK};",
                  "  double *parts = NULL; /* per block sums, when the threads share out blocks */",
                  "  if (rows < 2 * (int64_t)omp_get_max_threads() && blocks > 1 && rows * n >= 32768)",
                  "    parts = (double *)malloc(sizeof(double) * (size_t)(rows * blocks));",
                  "  const int64_t tasks = parts ? rows * blocks : rows;",
                  "#pragma omp parallel for schedule(static) if (rows * n >= 32768)",
                  "  for (int64_t task = 0; task < tasks; task++) {",
                  "    const int64_t r = parts ? task / blocks : task;",
                  "    int64_t rest = r;"]
    else:
        lines += ["#pragma omp parallel for schedule(static) if (rows * n >= 32768)",
                  "  for (int64_t r = 0; r < rows; r++) {",
                  "    int64_t rest = r;"]
    for op in k.inputs:
        lines.append(f"    int64_t {op.name}_off = 0;")
    for d in range(last - 1, -1, -1):
        lines.append(f"    const int64_t i{d} = rest % dims[{d}];")
        lines.append(f"    rest /= dims[{d}];")
        for op in k.inputs:
            if not op.broadcast[d]:
                lines.append(f"    {op.name}_off += i{d} * ({_stride(k, op.broadcast, d)});")
    pad = "    "
    if k.reduce:
        lines += ["    const int64_t b0 = parts ? task % blocks : 0, b1 = parts ? b0 + 1 : blocks;",
                  "    double total = 0.0;",
                  "    for (int64_t b = b0; b < b1; b++) {",
                  f"      const int64_t lo = b * {REDUCE_BLOCK}, hi = n - lo < {REDUCE_BLOCK} ? n : lo + "
                  f"{REDUCE_BLOCK};",
                  "      double acc = 0.0;",
                  "#pragma omp simd reduction(+:acc)",
                  "      for (int64_t i = lo; i < hi; i++) {"]
        pad = "      "
    else:
        lines += ["#pragma omp simd", "    for (int64_t i = 0; i < n; i++) {"]
    for op in k.inputs:
        index = f"{op.name}_off" if op.broadcast[last] else f"{op.name}_off + i"
        lines.append(f"{pad}  const {CTYPES[op.dtype]} {op.name}_v = {op.name}[{index}];")
    lines += [pad + "  " + s for s in body]
    if k.reduce:
        ctype = CTYPES[k.dtype]
        return lines + ["        acc += (double)r0;", "      }", "      total += acc;", "    }",
                        "    if (parts)", "      parts[task] = total;", "    else",
                        f"      out0[r] = ({ctype})total;", "  }",
                        "  if (parts) { /* each row's blocks, in order */",
                        "    for (int64_t r = 0; r < rows; r++) {",
                        "      double total = 0.0;",
                        "      for (int64_t b = 0; b < blocks; b++) total += parts[r * blocks + b];",
                        f"      out0[r] = ({ctype})total;", "    }", "    free(parts);", "  }"]
    lines += [f"      out{j}[r * n + i] = r{j};" for j in range(len(k.outputs))]
    return lines + ["    }", "  }"]


def _body(k: Kernel) -> tuple[list[str], set[str]]:
    """Statements computing ``r<j>`` for each output: one temporary per distinct subexpression."""
    ctype = CTYPES[k.dtype]
    names: dict = {}
    helpers: set[str] = set()
    lines: list[str] = []
    for n in _all_nodes(k.outputs):
        args = [_operand(a, names, k.dtype) for a in n.args]
        used: tuple[str, ...]
        if n.atom.name == "pow" and expr.is_const(n.args[1], 2):  # a square: exact as one product
            code, used = f"({args[0]} * {args[0]})", ()
        else:
            code, used = render_atom(n.atom.name, args, k.dtype)
        helpers.update(used)
        names[n.key] = f"t{len(names)}"
        lines.append(f"const {'int' if n.atom.bool_out else ctype} {names[n.key]} = {code};")
    for j, e in enumerate(k.outputs):
        value = _operand(e, names, k.dtype)
        cast = f"({ctype})" if isinstance(e, expr.Call) and e.atom.bool_out else ""
        lines.append(f"const {ctype} r{j} = {cast}{value};")
    return lines, helpers


def _all_nodes(outputs: tuple[expr.Expr, ...]) -> list[expr.Call]:
    seen: set = set()
    order: list[expr.Call] = []
    for e in outputs:
        for n in expr.topo_nodes(e):
            if n.key not in seen:
                seen.add(n.key)
                order.append(n)
    return order


def _operand(e: expr.Expr, names: dict, dtype: str) -> str:
    if isinstance(e, expr.Var):
        return f"{e.name}_v"
    if isinstance(e, expr.Const):
        return c_literal(e.value, dtype)
    return names[e.key]


def render_atom(name: str, args: list[str], dtype: str) -> tuple[str, tuple[str, ...]]:
    """The C text of atom `name` applied to argument texts, and the helpers it needs."""
    if name in _OVERRIDES:
        f32, f64, h32, h64 = _OVERRIDES[name]
        if dtype == "float32":
            return f32.format(*args), h32
        return f64.format(*args), h64
    template = expr.ATOMS[name].c
    if dtype == "float32":
        template = _LIBM_CALL.sub(lambda m: m.group(1) + "f(", template)
    return template.format(*args), ()


def c_literal(value: float, dtype: str) -> str:
    """A C literal of `value` in the kernel's type (float32 literals are rounded to float32)."""
    value = float(value)
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    if dtype == "float32":
        import numpy as np

        text = repr(float(np.float32(value)))
        suffix = "f"
    else:
        text, suffix = repr(value), ""
    if "e" not in text and "." not in text:
        text += ".0"
    text += suffix
    return f"({text})" if value < 0 or text.startswith("-") else text
