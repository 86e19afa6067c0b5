"""Elementwise epilogues run inside the packed GEMM: ``f(a @ b, others...)`` or ``f(conv(x, w), ...)``
in one pass.

A fused elementwise group whose operand ``acc`` is a matrix product or a convolution is rendered as a
C function the GEMM calls on each block of its result as soon as the block is final (see ``epi_fn``
in :mod:`.gemm`), while it is still in cache: the product is never written to memory and read back.
The function reads ``acc`` from the block, every other input through a base pointer and (batch, row)
strides, and writes each output through (batch, row) strides; the first output takes the product's
own buffer, so a one-output epilogue rewrites the block in place.

Inputs are broadcast to the product's shape; their column stride is 0 (a per-row value) or 1 (a
bias, a full operand), fixed per generated function. Products whose batch dims neither fold into
rows nor form one batch dimension, and inputs whose broadcast does not fold the same way, run as the
product followed by the group's own kernel (:class:`MatmulEpilogue`, :class:`ConvEpilogue`).
"""
from __future__ import annotations

import ctypes
import math

import numpy as np

from ...backends import CPU
from . import build, gemm, window
from .c import _HELPERS, CTYPES, _body
from .kernel import Kernel, Operand
from .runtime import FusedKernel


def render_epilogue(kernel: FusedKernel, acc: int, columns: tuple[bool, ...]) -> str:
    """C source of the epilogue of `kernel` with input `acc` the product; ``columns[j]`` is True when
    input j (other than `acc`) varies along the product's columns (stride 1), False when constant
    along them."""
    ops = tuple(Operand(n, d, (False,)) for n, d in zip(kernel.names, kernel.in_dtypes))
    ir = Kernel(kernel.name + "_epilogue", kernel.dtype, 1, ops, kernel.outputs, kernel.comment)
    body, helpers = _body(ir)
    t = CTYPES[kernel.dtype]
    lines = [f"/* {line} */" for line in kernel.comment + (f"epilogue of a matrix product (input {acc})",)]
    lines += ["#include <math.h>", "#include <stdint.h>", "#include <string.h>", ""]
    lines += [_HELPERS[h] + "\n" for h in _HELPERS if h in helpers]
    lines += [f"void {ir.name}(const int64_t *ctx, long batch, long i0, long j0, long h, long w, void *c_, "
              "long ldc) {",
              f"  {t} *c = ({t} *)c_;"]
    reads = []
    slot = 0
    for j, (name, dtype) in enumerate(zip(kernel.names, kernel.in_dtypes)):
        if j == acc:
            continue
        ct = CTYPES[dtype]
        lines.append(f"  const {ct} *{name} = (const {ct} *)(intptr_t)ctx[{slot}];")
        lines.append(f"  const int64_t {name}_bs = ctx[{slot + 1}], {name}_rs = ctx[{slot + 2}];")
        reads.append((name, ct, columns[j]))
        slot += 3
    for k in range(len(kernel.outputs)):
        lines.append(f"  {t} *out{k} = ({t} *)(intptr_t)ctx[{slot}];")
        lines.append(f"  const int64_t out{k}_bs = ctx[{slot + 1}], out{k}_rs = ctx[{slot + 2}];")
        slot += 3
    lines += ["  for (long i = 0; i < h; i++) {",
              f"    const {t} *acc = c + i * ldc;"]
    for name, ct, varies in reads:
        lines.append(f"    const {ct} *{name}_row = {name} + batch * {name}_bs + (i0 + i) * {name}_rs"
                     + (" + j0;" if varies else ";"))
    for k in range(len(kernel.outputs)):
        lines.append(f"    {t} *out{k}_row = out{k} + batch * out{k}_bs + (i0 + i) * out{k}_rs + j0;")
    lines += ["#pragma omp simd", "    for (long j = 0; j < w; j++) {",
              f"      const {t} {kernel.names[acc]}_v = acc[j];"]
    lines += [f"      const {ct} {name}_v = {name}_row[{'j' if varies else '0'}];"
              for name, ct, varies in reads]
    lines += ["      " + s for s in body]
    lines += [f"      out{k}_row[j] = r{k};" for k in range(len(kernel.outputs))]
    lines += ["    }", "  }", "}"]
    return "\n".join(lines) + "\n"


def _fold(shape: tuple[int, ...], strides: tuple[int, ...]) -> int | None:
    """One stride stepping through all of `shape` in C order (dims of one element ignored), if any."""
    dims = [(n, s) for n, s in zip(shape, strides) if n != 1]
    for (_, s), (n2, s2) in zip(dims, dims[1:]):
        if s != n2 * s2:
            return None
    return dims[-1][1] if dims else 0


def _steps(x: np.ndarray, shape: tuple[int, ...]) -> list[int] | None:
    """Element strides of `x` broadcast to `shape` (0 along broadcast dims), None if it does not
    broadcast to it or has strides of partial elements."""
    if x.ndim > len(shape) or any(s not in (1, t) for s, t in zip(x.shape[::-1], shape[::-1])) \
            or any(s % x.itemsize for s in x.strides):
        return None
    lead = len(shape) - x.ndim
    return [0 if p == 1 else s // x.itemsize for p, s in zip((1,) * lead + x.shape, (0,) * lead + x.strides)]


class _Epilogue:
    """A fused group's kernel with input `acc` the result of a product, run as the GEMM's epilogue when
    the operands allow (see the module notes), else after the product."""

    def __init__(self, kernel: FusedKernel, acc: int):
        self.kernel = kernel
        self.acc = acc
        self.name = kernel.name + "_epilogue"
        self._fns: dict[tuple[bool, ...], object] = {}
        self.inputs = [i for i in range(len(kernel.names)) if i != acc]

    def _function(self, columns: tuple[bool, ...]) -> object:
        if columns not in self._fns:
            lib = build.try_build(render_epilogue(self.kernel, self.acc, columns))
            fn = None if lib is None else ctypes.cast(getattr(lib, self.name), ctypes.c_void_p)
            self._fns[columns] = fn
        return self._fns[columns]

    def _arrays(self, others: tuple) -> list[np.ndarray]:
        return [np.asarray(x, dtype=np.dtype(self.kernel.in_dtypes[i])) for i, x in zip(self.inputs, others)]

    def _outputs(self, shape: tuple[int, ...], dt: np.dtype, bs: int, rs: int) -> tuple:
        """The result buffer for a product stored as `shape` (several outputs stacked first), the first
        output (where the GEMM writes the product), and the outputs' part of the context: each one's
        address and (batch, row) strides."""
        k = len(self.kernel.outputs)
        result = CPU.pool.empty(shape if k == 1 else (k,) + shape, dt)
        size = math.prod(shape)
        ctx: list[int] = []
        for j in range(k):
            ctx += [build.data_pointer(result) + j * size * dt.itemsize, bs, rs]
        return result, (result if k == 1 else result[0]), ctx

    def _unfused(self, product: np.ndarray, others: tuple) -> np.ndarray:
        return self.kernel(*others[:self.acc], product, *others[self.acc:])


class MatmulEpilogue(_Epilogue):
    """``kernel(*inputs)`` with input `acc` replaced by ``a @ b``."""

    def source(self, shapes: list[tuple[int, ...]]) -> str:
        """The C source used for operands ``(a, b, *others)`` of these shapes."""
        columns = [True] * len(self.kernel.names)
        for i, s in zip(self.inputs, shapes[2:]):
            columns[i] = bool(s) and s[-1] != 1 and shapes[1][-1] != 1
        return render_epilogue(self.kernel, self.acc, tuple(columns))

    def __call__(self, a: np.ndarray, b: np.ndarray, *others: np.ndarray) -> np.ndarray:
        out = self._fused(a, b, others)
        return self._unfused(gemm._matmul_cpu(a, b), others) if out is None else out

    def _fused(self, a: np.ndarray, b: np.ndarray, others: tuple) -> np.ndarray | None:
        dt = np.dtype(self.kernel.dtype)
        if a.ndim < 2 or b.ndim < 2 or a.dtype != dt or b.dtype != dt or not gemm.supports(a, b) \
                or a.shape[-2] * a.shape[-1] * b.shape[-1] < gemm.MIN_EPILOGUE_WORK:
            return None
        m, n = a.shape[-2], b.shape[-1]
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        shape = batch + (m, n)
        folded = b.ndim == 2 and a.ndim > 2 and gemm._rows_view(a) is not None
        if not folded and len(batch) > 1:
            return None
        arrays = self._arrays(others)
        ctx: list[int] = []
        columns = [True] * len(self.kernel.names)
        for i, x in zip(self.inputs, arrays):
            steps = _steps(x, shape)
            if steps is None or steps[-1] not in (0, 1):
                return None
            columns[i] = steps[-1] == 1
            rs = _fold(shape[:-1], tuple(steps[:-1])) if folded else steps[-2]
            if rs is None:
                return None
            ctx += [build.data_pointer(x), 0 if folded or not batch else steps[0], rs]
        fn = self._function(tuple(columns))
        if fn is None:
            return None
        result, first, outs = self._outputs(shape, dt, 0 if folded else m * n, n)
        gemm.matmul(a, b, first, (fn, np.array(ctx + outs, dtype=np.int64)))
        return result


class ConvEpilogue(_Epilogue):
    """``kernel(*inputs)`` with input `acc` replaced by the convolution of ``x`` and ``w``.

    The GEMM computes each group's (O/G, N·P) block of the result, channel-major; the outputs keep that
    layout ((O, N, *S) memory seen as (N, O, *S), as the convolution's own result), and the other inputs
    are read through it: a per-channel one (a bias) by row, one stored channel-major by row and column.
    """

    def source(self, shapes: list[tuple[int, ...]]) -> str:
        """The C source used for operands ``(x, w, *others)`` of these shapes."""
        columns = [True] * len(self.kernel.names)
        rank = len(shapes[0])
        for i, s in zip(self.inputs, shapes[2:]):
            padded = (1,) * (rank - len(s)) + tuple(s)
            columns[i] = any(n != 1 for d, n in enumerate(padded) if d != 1)
        return render_epilogue(self.kernel, self.acc, tuple(columns))

    def __call__(self, x: np.ndarray, w: np.ndarray, *others: np.ndarray, stride, padding, dilation,
                 groups) -> np.ndarray:
        out = self._fused(x, w, others, stride, padding, dilation, groups)
        if out is None:
            out = self._unfused(window._conv_cpu(x, w, stride, padding, dilation, groups), others)
        return out

    def _fused(self, x, w, others, stride, padding, dilation, groups) -> np.ndarray | None:
        dt = np.dtype(self.kernel.dtype)
        kernel = tuple(w.shape[2:])
        if x.dtype != dt or w.dtype != dt or not window.conv_applies(x, kernel) or not gemm.supports(x, w):
            return None
        out_sp, geom = window._conv_plan(x, kernel, stride, padding, dilation, w.shape[0])
        o, n, per_group = w.shape[0], x.shape[0], w.shape[0] // groups
        shape = (n, o) + tuple(out_sp)
        cols = n * math.prod(out_sp)
        ctx: list[int] = []
        columns = [True] * len(self.kernel.names)
        arrays = self._arrays(others)
        for i, a in zip(self.inputs, arrays):
            steps = _steps(a, shape)
            cs = None if steps is None else _fold((n,) + tuple(out_sp), tuple(steps[:1] + steps[2:]))
            if steps is None or cs not in (0, 1):
                return None
            columns[i] = cs == 1
            ctx += [build.data_pointer(a), per_group * steps[1], steps[1]]
        fn = self._function(tuple(columns))
        if fn is None:
            return None
        result, first, outs = self._outputs((o, n) + tuple(out_sp), dt, per_group * cols, cols)
        gemm.conv(x, w, geom, groups, first.reshape(groups, per_group, cols),
                  (fn, np.array(ctx + outs, dtype=np.int64)))
        lead = result.ndim - len(shape)  # 1 with stacked outputs
        return result.swapaxes(lead, lead + 1)  # (O, N, *S) memory seen as (N, O, *S)
