"""Kernel generation: the kernel IR, the C renderer (golden), every atom's C spelling against NumPy, the
build cache and the no-compiler fallback."""
from __future__ import annotations

import ctypes
import logging
import textwrap

import numpy as np
import pytest

import ember
from ember._core import expr
from ember.compiler import codegen
from ember.compiler.codegen import FusedKernel, Kernel, Operand, build, coalesce, render_c, runtime
from ember.compiler.codegen import c as c_renderer

# The statements of one element of the golden kernel after its first load (the plain loop and the
# streaming loop's line buffer both contain them, at different indents).
GOLDEN_ELEMENT = """\
const double in1_v = in1[0];
const double t0 = (in0_v * in1_v);
const double t1 = tanh(t0);
const double t2 = (t1 + 1.0);
const int t3 = (in0_v > in1_v);
const double t4 = (-in1_v);
const double t5 = (t3 ? in0_v : t4);
const double r0 = t2;
const double r1 = t5;
"""


def _indent(text: str, spaces: int) -> str:
    return textwrap.indent(text, " " * spaces)


GOLDEN_FLAT = """\
/* fused: mul, tanh, add */
#include <math.h>
#include <stdint.h>
#include <string.h>

void k_golden(const double *restrict in0, const double *restrict in1, double *restrict out0, \
double *restrict out1, const int64_t *dims) {
  const int64_t n = dims[0];
#pragma omp parallel for simd schedule(static) if (parallel: n >= 32768)
  for (int64_t i = 0; i < n; i++) {
    const double in0_v = in0[i];
""" + _indent(GOLDEN_ELEMENT, 4) + """\
    out0[i] = r0;
    out1[i] = r1;
  }
}
"""

GOLDEN_STREAM_TAIL = """\
#ifdef EMBER_STREAM_FENCE
static void k_golden_stream(const double *restrict in0, const double *restrict in1, \
double *restrict out0, double *restrict out1, const int64_t lo, const int64_t hi, const int back) {
#pragma omp parallel
  {
#pragma omp for schedule(guided, 64)
    for (int64_t m = lo; m < hi; m += 8) {
      const int64_t l = back ? lo + hi - 8 - m : m;
      _Alignas(64) double line0[8];
      _Alignas(64) double line1[8];
#pragma omp simd
      for (int64_t e = 0; e < 8; e++) {
        const double in0_v = in0[l + e];
""" + _indent(GOLDEN_ELEMENT, 8) + """\
        line0[e] = r0;
        line1[e] = r1;
      }
      EMBER_STREAM_F64(out0 + l, line0);
      EMBER_STREAM_F64(out1 + l, line1);
    }
    EMBER_STREAM_FENCE();
  }
}
#endif

void k_golden(const double *restrict in0, const double *restrict in1, double *restrict out0, \
double *restrict out1, const int64_t *dims) {
  const int64_t n = dims[0];
#ifdef EMBER_STREAM_FENCE
  const uintptr_t a = (uintptr_t)out0 & 63;
  if (n >= 8 && a % 8 == 0 && ((uintptr_t)out1 & 63) == a) {
    const int64_t lo = (int64_t)((64 - a) & 63) / 8;
    const int64_t hi = lo + (n - lo) / 8 * 8;
    const int ahead = EMBER_NEAR(out0, in0) || EMBER_NEAR(out1, in0);
    const int behind = EMBER_NEAR(in0, out0) || EMBER_NEAR(in0, out1);
    const int back = ahead && !behind;
    k_golden_range(in0, in1, out0, out1, 0, lo);
    k_golden_stream(in0, in1, out0, out1, lo, hi, back);
    k_golden_range(in0, in1, out0, out1, hi, n);
    return;
  }
#endif
  k_golden_range(in0, in1, out0, out1, 0, n);
}
"""

GOLDEN_ROWS_LOOP = """\
void k_rows(const float *restrict in0, const float *restrict in1, const unsigned char *restrict in2, \
float *restrict out0, const int64_t *dims) {
  const int64_t rows = dims[0], n = dims[1];
#pragma omp parallel for schedule(static) if (rows * n >= 32768)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rest = r;
    int64_t in0_off = 0;
    int64_t in1_off = 0;
    int64_t in2_off = 0;
    const int64_t i0 = rest % dims[0];
    rest /= dims[0];
    in0_off += i0 * (dims[1]);
    in2_off += i0 * (1);
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
      const float in0_v = in0[in0_off + i];
      const float in1_v = in1[in1_off + i];
      const unsigned char in2_v = in2[in2_off];
      const float t0 = ember_maxf(in0_v, in1_v);
      const float t1 = (2.5f * in0_v);
      const float t2 = (in2_v ? t0 : t1);
      const float r0 = t2;
      out0[r * n + i] = r0;
    }
  }
}
"""


def test_flat_kernel_renders_to_the_golden_source():
    k = Kernel("k_golden", "float64", 1, (Operand("in0", "float64", (False,)), Operand("in1", "float64", (True,))),
               (expr.parse("tanh(in0 * in1) + 1"), expr.parse("where(in0 > in1, in0, -in1)")),
               ("fused: mul, tanh, add",))
    assert render_c(k) == GOLDEN_FLAT
    streaming = render_c(k, stream=True)
    assert streaming.startswith("/* fused: mul, tanh, add */\n#include <math.h>\n")
    assert "#define EMBER_STREAM_F64(p, b) _mm512_stream_pd" in streaming
    assert "static void k_golden_range(" in streaming and streaming.endswith(GOLDEN_STREAM_TAIL)
    rows = Kernel("k_rows", "float64", 2, (Operand("in0", "float64", (False, False)),), (expr.parse("in0"),))
    with pytest.raises(ValueError, match="only flat"):
        render_c(rows, stream=True)


def _raw_call(fn, inputs: list[np.ndarray], outs: list[np.ndarray]) -> None:
    dims = np.array([inputs[0].size], dtype=np.int64)
    fn(*[a.ctypes.data for a in inputs + outs], dims.ctypes.data)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_streamed_results_equal_the_plain_loop_for_every_misalignment(dtype):
    """The streaming variant loops the unaligned head, streams whole 64-byte lines and loops the tail:
    for sizes around a line and every offset of the outputs (the same or different ones), the results
    equal the plain loop's bit for bit and nothing outside the outputs is written."""
    formulas = (expr.parse("exp(x) * y - 1"), expr.parse("x / (1 + y * y)"))
    k = FusedKernel(f"streamed_{dtype}", ("x", "y"), (dtype, dtype), formulas, dtype)
    masks = ((False,), (False,))
    streamed, plain = k._function(1, masks, 1 << 62), k._function(1, masks, 0)
    assert len(k._compiled) == 2
    rng = np.random.default_rng(0)
    item = np.dtype(dtype).itemsize
    line = 64 // item
    for n in (1, line - 1, line, line + 1, 3 * line + 5, 70001):
        x, y = (rng.standard_normal(n).astype(dtype) for _ in range(2))
        for shift0, shift1 in [(s, s) for s in range(line)] + [(0, 1), (3, 0)]:
            results = []
            for fn in (streamed, plain):
                arena = np.full(4 * n + 8 * line, 7.0, dtype)
                base = (-arena.ctypes.data % 64) // item
                o0 = arena[base + shift0: base + shift0 + n]
                start1 = base + -(-(shift0 + n + line) // line) * line + shift1  # a later line, own offset
                o1 = arena[start1: start1 + n]
                _raw_call(fn, [x, y], [o0, o1])
                results.append(arena[base: base + 4 * n + 4 * line])
            np.testing.assert_array_equal(results[0], results[1], err_msg=f"n={n}, shifts={shift0, shift1}")
            want = k.run_numpy(x, y)
            np.testing.assert_allclose(o0, want[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(o1, want[1], rtol=1e-5)
            untouched = np.ones(results[0].size, bool)
            untouched[shift0: shift0 + n] = untouched[start1 - base: start1 - base + n] = False
            assert np.all(results[0][untouched] == 7.0)


def _at_page_offset(rng, n: int, offset: int, dtype) -> np.ndarray:
    """`n` random values starting `offset` bytes into a 4 KiB page."""
    item = np.dtype(dtype).itemsize
    raw = np.empty(n + 8192 // item, dtype)
    start = ((offset - raw.ctypes.data) % 4096) // item
    out = raw[start: start + n]
    out[...] = rng.standard_normal(n)
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_streamed_results_do_not_depend_on_where_outputs_sit_in_a_page(dtype):
    """Outputs a little past an input within a page make the streaming loop run backwards, a little
    before one forwards, both (two inputs) forwards: every placement gives the plain loop's results."""
    formulas = (expr.parse("x * y + 1"), expr.parse("tanh(x) - y"))
    k = FusedKernel(f"paged_{dtype}", ("x", "y"), (dtype, dtype), formulas, dtype)
    masks = ((False,), (False,))
    streamed, plain = k._function(1, masks, 1 << 62), k._function(1, masks, 0)
    rng = np.random.default_rng(2)
    n = 20011
    for x_at, y_at, out_at in [(16, 16, 64), (16, 16, 0), (1024, 1024, 1088), (1024, 1024, 960),
                               (1024, 960, 1088), (4080, 4080, 64), (64, 4032, 0), (512, 512, 512)]:
        x, y = _at_page_offset(rng, n, x_at, dtype), _at_page_offset(rng, n, y_at, dtype)
        results = []
        for fn in (streamed, plain):
            o0, o1 = _at_page_offset(rng, n, out_at, dtype), _at_page_offset(rng, n, out_at, dtype)
            _raw_call(fn, [x, y], [o0, o1])
            results.append((o0, o1))
        for a, b in zip(*results):
            np.testing.assert_array_equal(a, b, err_msg=f"x at {x_at}, y at {y_at}, outputs at {out_at}")


def test_near_macro_marks_addresses_just_past_another_within_a_page():
    """EMBER_NEAR(a, b): a lies 1 to 255 bytes past b modulo 4 KiB (what decides the loop's direction)."""
    lib = build.try_build("#include <stdint.h>\n" + c_renderer._HELPERS["stream"] + """
int near_test(const char *a, const char *b) {
#ifdef EMBER_NEAR
  return EMBER_NEAR(a, b);
#else
  return -1;
#endif
}
""")
    if lib is None:
        pytest.skip("no C compiler")
    lib.near_test.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    if lib.near_test(0, 0) == -1:
        pytest.skip("no streaming stores on this target")
    base = 1 << 20
    for past, want in [(0, 0), (1, 1), (64, 1), (255, 1), (256, 0), (2048, 0), (4095, 0), (4096, 0),
                       (4096 + 64, 1), (-64, 0), (-4096 + 64, 1)]:
        assert lib.near_test(base + past, base) == want, past


def test_fused_kernels_stream_from_the_threshold_on(monkeypatch):
    """Called as the executor calls it (pooled output, several outputs), a flat kernel runs its streaming
    variant once the bytes it reads and writes reach the threshold, with the formulas' results."""
    monkeypatch.setattr(c_renderer, "STREAM_MIN_BYTES", 4096)
    k = FusedKernel("pooled_big", ("x", "w", "b"), ("float32",) * 3,
                    (expr.parse("x * w + b"), expr.parse("tanh(x) * w")), "float32")
    rng = np.random.default_rng(1)
    for n, streamed in [(100, False), (204, False), (205, True), (4099, True), (65539, True)]:
        x, w, b = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
        np.testing.assert_allclose(k(x, w, b), k.run_numpy(x, w, b), rtol=2e-6, atol=1e-7)
        assert ("_stream(" in k.source([x.shape] * 3)) == streamed  # 3 inputs + 2 outputs: 20 B each
    assert sorted(key[2] for key in k._compiled) == [False, True]


def test_broadcast_kernel_renders_a_row_loop_with_per_input_strides():
    ops = (Operand("in0", "float32", (False, False)), Operand("in1", "float32", (True, False)),
           Operand("in2", "bool", (False, True)))
    k = Kernel("k_rows", "float32", 2, ops, (expr.parse("where(in2, maximum(in0, in1), 2.5 * in0)"),))
    source = render_c(k)
    assert source.endswith(GOLDEN_ROWS_LOOP)
    assert "static inline float ember_maxf" in source and "ember_tanhf" not in source


def test_coalesce_merges_dimensions_and_drops_unit_ones():
    assert coalesce((4, 3, 5), [(4, 3, 5), (5,)]) == ((12, 5), ((False, False), (True, False)))
    assert coalesce((2, 1, 3), [(2, 1, 3), (1, 1, 1)]) == ((6,), ((False,), (True,)))
    assert coalesce((), [(), ()]) == ((1,), ((False,), (False,)))
    assert coalesce((2, 3, 4), [(2, 1, 4)]) == ((2, 3, 4), ((False, True, False),))


_ATOM_FORMULAS = [
    "a + b", "a - b", "a * b", "a / b", "-a", "pow(abs(a) + 0.5, b)", "exp(a)", "exp(50 * a)", "log(abs(a))",
    "sin(a)", "cos(a)", "tan(a)", "tanh(a)", "tanh(8 * a)", "tanh(0.01 * a)", "sinh(a)", "cosh(a)",
    "asin(u)", "acos(u)", "atan(a)", "asinh(a)", "acosh(abs(a) + 1)", "atanh(u)", "sqrt(abs(a))",
    "rsqrt(abs(a) + 0.1)", "log1p(abs(a))", "expm1(a)", "abs(a)", "sign(a)", "floor(3 * a)", "ceil(3 * a)",
    "round(3 * a)", "trunc(3 * a)", "erf(a)", "erfinv(u)", "maximum(a, b)", "minimum(a, b)", "atan2(a, b)",
    "remainder(3 * a, b)", "where(a < b, a, b)", "where(a <= b, 1, 0)", "where(a >= b, 1, 0)",
    "where(a == a, 1, 0)", "where(a != b, 1, 0)", "where(logical_and(a > 0, b > 0), 1, 0)",
    "where(logical_or(a > 0, b > 0), 1, 0)", "where(logical_xor(a > 0, b > 0), 1, 0)",
    "where(logical_not(a > 0), 1, 0)", "where(isnan(a / b), 1, 0)", "where(isinf(1 / (a * 0)), 1, 0)",
    "where(isfinite(a), 1, 0)",
]


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-13)])
def test_every_atom_matches_its_numpy_kernel(dtype, rtol):
    """All supported atoms in one kernel (one output each): C against NumPy, special values included."""
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.standard_normal(997) * 2, [0.0, -0.0, 1.0, np.inf, -np.inf, np.nan]]).astype(dtype)
    b = np.concatenate([rng.standard_normal(997) * 2, [1.0, 2.0, 0.0, 2.0, 1.0, 1.0]]).astype(dtype)
    u = (np.tanh(a) * 0.999).astype(dtype)
    exprs = tuple(expr.parse(f) for f in _ATOM_FORMULAS)
    kernel = FusedKernel(f"atoms_{dtype}", ("a", "b", "u"), (dtype,) * 3, exprs, dtype)
    with np.errstate(all="ignore"):
        got = kernel(a, b, u)
        want = kernel.run_numpy(a, b, u)
    for formula, g, w in zip(_ATOM_FORMULAS, got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=0 if "erfinv" not in formula else rtol,
                                   equal_nan=True, err_msg=formula)


@pytest.mark.parametrize("name, bound", [("exp", 2.0), ("tanh", 2.0), ("erf", 6.0)])
def test_float32_exp_tanh_erf_stay_within_a_few_ulp(name, bound):
    """The inline float32 exp, tanh and erf against float64 references on a dense grid (tiny to
    saturated magnitudes), in units of the float32 spacing of the exact value."""
    import scipy.special

    x = np.concatenate([-np.geomspace(1e-30, 10, 100000), np.geomspace(1e-30, 10, 100000),
                        np.linspace(-90, 89, 200001)]).astype(np.float32)
    k = FusedKernel(f"ulp_{name}", ("a",), ("float32",), (expr.parse(f"{name}(a)"),), "float32")
    got = k(x).astype(np.float64)
    want = {"exp": np.exp, "tanh": np.tanh, "erf": scipy.special.erf}[name](x.astype(np.float64))
    normal = (np.abs(want) > np.finfo(np.float32).tiny) & (np.abs(want) < np.finfo(np.float32).max)
    spacing = np.spacing(np.abs(want[normal]).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[normal] - want[normal]) / spacing) <= bound


def test_float32_exp_keeps_special_values_and_subnormal_results():
    """NaNs of either sign pass through (the clamp lets them reach the result), infinities and
    saturated inputs give inf and 0, and results in the subnormal range are within one subnormal step
    of the exact value; short arrays and long ones (the vectorised, multi-threaded loop)."""
    k = FusedKernel("exp_special", ("a",), ("float32",), (expr.parse("exp(a)"),), "float32")
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 88.72, 88.73, 1e30, -1e30, -103.9, -104.5, -200.0,
                        0.0, -0.0], np.float32)
    small = np.linspace(-103.9, -87.0, 40001).astype(np.float32)
    for x in (special, small, np.tile(special, 3000)):
        got = k(x)
        with np.errstate(over="ignore", under="ignore"):
            want = np.exp(x.astype(np.float64))
        finite = np.isfinite(want) & (want < np.finfo(np.float32).max)
        assert np.array_equal(np.isnan(got), np.isnan(x))
        assert np.all(got[~finite & ~np.isnan(x)] == np.inf)
        assert np.max(np.abs(got[finite] - want[finite]) / np.maximum(
            np.spacing(want[finite].astype(np.float32)), np.float32(2.0 ** -149))) <= 2.0


def test_flat_loops_below_the_thread_threshold_stay_vectorised():
    """The `if` of `parallel for simd` names `parallel`: unqualified it would also switch the `simd`
    off, and arrays under 32768 elements would run scalar code."""
    k = FusedKernel("flat_if", ("a",), ("float32",), (expr.parse("exp(a)"),), "float32")
    for stream in (False, True):
        source = render_c(k.kernel_ir(1, ((False,),)), stream)
        pragmas = [ln for ln in source.splitlines() if ln.startswith("#pragma omp parallel for simd")]
        assert pragmas and all("if (parallel: " in ln for ln in pragmas)


def test_kernels_serve_every_size_of_one_broadcast_pattern():
    k = FusedKernel("sizes", ("x", "y"), ("float64", "float64"), (expr.parse("x * y + 1"),), "float64")
    for rows in (1, 3, 70000):
        x, y = np.arange(rows * 2.0).reshape(rows, 2), np.array([2.0, 3.0])
        np.testing.assert_array_equal(k(x, y), x * y + 1)
    assert len(k._compiled) == 2  # (rows > 1: one 2-d pattern) and (rows == 1: one flat pattern)


def test_squares_render_as_one_product_with_numpys_results():
    k = FusedKernel("square", ("x",), ("float32",), (expr.parse("pow(x, 2) + pow(x, 3)"),), "float32")
    source = k.source([(5000,)])
    assert "(x_v * x_v)" in source and source.count("powf(") == 1  # the cube stays a pow
    x = np.concatenate([np.random.default_rng(1).standard_normal(4990) * 1e19,
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -3.0, 2.0, 1e20, -1e20]]).astype(np.float32)
    with np.errstate(all="ignore"):
        square = FusedKernel("sq", ("x",), ("float32",), (expr.parse("pow(x, 2)"),), "float32")
        np.testing.assert_array_equal(square(x), np.power(x, np.float32(2)))  # bit for bit, inf/NaN too


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reducing_kernels_give_the_same_bits_whether_threads_share_rows_or_blocks(dtype):
    """One long row (its blocks spread over the threads) and the same row among 64 (whole rows per
    thread) add the same block sums in the same order; a broadcast operand is read at the row's offset."""
    n = 17 * c_renderer.REDUCE_BLOCK + 77  # over 32768 elements: a single row is shared out
    k = FusedKernel("rowsum", ("x", "w"), (np.dtype(dtype).name,) * 2, (expr.parse("x * x * w"),),
                    np.dtype(dtype).name, reduce_dims=1)
    rng = np.random.default_rng(2)
    row, w = rng.standard_normal(n).astype(dtype), rng.uniform(0.5, 2, n).astype(dtype)
    alone = k(row[None], w)
    many = k(np.tile(row, (64, 1)), w)
    three = k(np.stack([row, 2 * row, row]), w)
    assert alone.shape == (1,) and many.shape == (64,)
    assert np.all(many == alone[0]) and three[0] == alone[0] == three[2]
    exact = (row.astype(np.longdouble) ** 2 * w).sum()
    assert abs(alone[0] - exact) <= 4 * np.finfo(dtype).eps * exact
    np.testing.assert_allclose(three[1], 4 * exact, rtol=4 * np.finfo(dtype).eps)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    build.clear_memory_cache()
    yield tmp_path
    build.clear_memory_cache()


def test_second_build_of_a_source_is_a_cache_hit(fresh_cache):
    source = "int ember_cache_probe(void) { return 42; }\n"
    assert build.build(source).ember_cache_probe() == 42
    assert build.build(source).ember_cache_probe() == 42
    assert codegen.STATS["builds"] == 1 and codegen.STATS["memory_hits"] == 1
    build._LOADED.clear()
    build.build(source)
    assert codegen.STATS == {"builds": 1, "disk_hits": 1, "memory_hits": 1}
    assert len(list(fresh_cache.glob("*.so"))) == 1 and not list(fresh_cache.glob("tmp*"))


def test_prebuild_compiles_the_missing_sources_side_by_side_and_skips_the_rest(fresh_cache):
    sources = [f"int ember_prebuild_{i}(void) {{ return {i}; }}\n" for i in range(3)]
    assert build.build(sources[0]).ember_prebuild_0() == 0  # cached already
    assert build.prebuild(sources + ["this is not C\n"], workers=2) == 2
    assert all(build.library_path(s).exists() for s in sources)
    assert not build.library_path("this is not C\n").exists() and not list(fresh_cache.glob("tmp*"))
    assert build.build(sources[2]).ember_prebuild_2() == 2
    assert codegen.STATS == {"builds": 3, "disk_hits": 1, "memory_hits": 0}
    assert build.prebuild(sources) == 0


def test_a_compiled_graph_builds_its_fused_kernels_before_its_first_run(fresh_cache):
    def f(x, y, z):
        a = (x * 2 + y).exp()  # an elementwise chain on one shape
        b = (z.sin() - 1) * z.square()  # another on another shape
        return a @ b, (a * 3).sum()

    jitted = ember.jit(f)
    x, y, z = ember.randn(6, 5), ember.randn(6, 5), ember.randn(5, 4)
    sources = jitted.lower(x, y, z).kernels()
    assert len(sources) >= 2
    assert all(build.library_path(s).exists() for s in sources.values())  # before any run
    built = codegen.STATS["builds"]
    got = jitted(x, y, z)
    want = f(x, y, z)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert codegen.STATS["builds"] - built <= 1  # (a library the run needs beyond the fused kernels)


def test_cache_key_covers_the_source(fresh_cache):
    assert build.library_path("int f(void) { return 1; }\n") != build.library_path("int f(void) { return 2; }\n")


def test_missing_compiler_falls_back_to_numpy_and_logs_once(fresh_cache, monkeypatch, caplog):
    monkeypatch.setenv("CC", "ember-no-such-compiler")
    runtime.reset_warning()
    x = np.linspace(-2, 2, 11)
    with caplog.at_level(logging.WARNING, logger="ember.compiler.codegen"):
        for i in range(2):
            k = FusedKernel(f"nocc{i}", ("x",), ("float64",), (expr.parse(f"tanh(x) * {i + 2}"),), "float64")
            np.testing.assert_allclose(k(x), np.tanh(x) * (i + 2), rtol=1e-15)
    messages = [r.getMessage() for r in caplog.records if r.name == "ember.compiler.codegen"]
    assert len(messages) == 1 and "NumPy" in messages[0] and "ember-no-such-compiler" in messages[0]
    assert codegen.STATS["builds"] == 0
    runtime.reset_warning()


def test_processes_building_one_kernel_at_once_share_the_cache(fresh_cache):
    import subprocess
    import sys

    script = ("from ember.compiler.codegen import build; "
              "print(build.build('int ember_race(void) { return 7; }\\n').ember_race())")
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    assert [p.communicate(timeout=120)[0].strip() for p in procs] == ["7"] * 3
    assert len(list(fresh_cache.glob("*.so"))) == 1 and not list(fresh_cache.glob("tmp*"))


def test_eager_composite_ops_on_large_inputs_use_generated_kernels_and_match_numpy():
    import scipy.special

    import ember

    x = np.random.default_rng(3).standard_normal(1 << 16).astype(np.float32) * 3
    want = 0.5 * x.astype(np.float64) * (1 + scipy.special.erf(x.astype(np.float64) / np.sqrt(2)))
    np.testing.assert_allclose(ember.gelu(ember.tensor(x)).numpy(), want, rtol=2e-6, atol=2e-6)
    v = np.concatenate([np.linspace(-8, 8, 70001), [np.nan, np.inf, -np.inf, 0.0]]).astype(np.float32)
    got = ember.silu(ember.tensor(v)).numpy()
    ref = v.astype(np.float64) / (1 + np.exp(-v.astype(np.float64)))
    np.testing.assert_allclose(got[:-4], ref[:-4], rtol=2e-6, atol=1e-6)
    assert np.isnan(got[-4]) and got[-3] == np.inf and got[-1] == 0.0


@pytest.mark.parametrize("shape", [(256, 256), (300, 777), (1, 70000), (70000, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_transpose_copies_transposed_matrices(shape, dtype):
    from ember.compiler.codegen import layout

    x = np.random.default_rng(0).standard_normal(shape[::-1]).astype(dtype).T
    out = np.empty(shape, dtype)
    applies = x.size >= layout.MIN_ELEMENTS and build.compiler_available()
    assert layout.transposed_copy(x, out) == applies
    if applies:
        assert np.array_equal(out, x)
    t = ember.tensor(x.T.copy()).t()
    assert np.array_equal(t.contiguous().numpy(), x) and t.contiguous().is_contiguous()


def test_parameter_gradients_are_row_major_like_their_parameters():
    lin = ember.nn.Linear(300, 400)
    x = ember.randn(8, 300)
    lin(x).sum().backward()
    assert lin.weight.grad.is_contiguous()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.ones((400, 8)) @ x.numpy(), rtol=1e-5, atol=1e-5)


def test_data_pointer_matches_numpy_for_views_offsets_and_subclasses(tmp_path):
    base = np.arange(24.0).reshape(4, 6)
    memmap = np.memmap(tmp_path / "m.bin", dtype=np.float32, mode="w+", shape=(8,))
    arrays = [base, base[1:], base[:, 2:], base.T, base[::2, ::3], np.full((), 3.0, np.float32),
              np.empty(0), memmap, memmap[3:], np.arange(10, dtype=np.int8)[7:]]
    for a in arrays:
        assert build.data_pointer(a) == a.ctypes.data
    assert build._FAST_POINTERS  # the layout probe holds on CPython
