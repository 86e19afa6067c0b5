"""Elementwise epilogues run inside the packed GEMM: ``f(a @ b, others...)`` in one pass.

A fused elementwise group whose operand ``acc`` is a matrix product is rendered as a C function the
GEMM calls on each block of its result as soon as the block is final (see ``epi_fn`` in
:mod:`.gemm`), while it is still in cache: the product is never written to memory and read back.
The function reads ``acc`` from the block, every other input through a base pointer and (batch, row,
column) strides, and writes each output through (batch, row) strides; the first output takes the
product's own buffer, so a one-output epilogue rewrites the block in place.

Inputs are broadcast to the product's shape; their column stride is 0 (a per-row value) or 1 (a
bias, a full operand), fixed per generated function. Products whose batch dims neither fold into
rows nor form one batch dimension, and inputs whose broadcast does not fold the same way, run as the
product followed by the group's own kernel.
"""
from __future__ import annotations

import ctypes
import math

import numpy as np

from ...backends import CPU
from . import build, gemm
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


class MatmulEpilogue:
    """``kernel(*inputs)`` with input `acc` replaced by ``a @ b``, the kernel run as the GEMM's
    epilogue when the operands allow (see the module notes), else after the product."""

    def __init__(self, kernel: FusedKernel, acc: int):
        self.kernel = kernel
        self.acc = acc
        self.name = kernel.name + "_epilogue"
        self._fns: dict[tuple[bool, ...], object] = {}

    def source(self, shapes: list[tuple[int, ...]]) -> str:
        """The C source used for operands ``(a, b, *others)`` of these shapes."""
        columns = [True] * len(self.kernel.names)
        inputs = [i for i in range(len(self.kernel.names)) if i != self.acc]
        for i, s in zip(inputs, shapes[2:]):
            columns[i] = bool(s) and s[-1] != 1 and shapes[1][-1] != 1
        return render_epilogue(self.kernel, self.acc, tuple(columns))

    def _function(self, columns: tuple[bool, ...]) -> object:
        if columns not in self._fns:
            lib = build.try_build(render_epilogue(self.kernel, self.acc, columns))
            fn = None if lib is None else ctypes.cast(getattr(lib, self.name), ctypes.c_void_p)
            self._fns[columns] = fn
        return self._fns[columns]

    def __call__(self, a: np.ndarray, b: np.ndarray, *others: np.ndarray) -> np.ndarray:
        out = self._fused(a, b, others)
        if out is None:
            product = gemm._matmul_cpu(a, b)
            out = self.kernel(*others[:self.acc], product, *others[self.acc:])
        return out

    def _fused(self, a: np.ndarray, b: np.ndarray, others: tuple) -> np.ndarray | None:
        dt = np.dtype(self.kernel.dtype)
        if a.ndim < 2 or b.ndim < 2 or a.dtype != dt or b.dtype != dt or not gemm.supports(a, b) \
                or a.shape[-2] * a.shape[-1] * b.shape[-1] < gemm.MIN_WORK:
            return None
        m, n = a.shape[-2], b.shape[-1]
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        shape = batch + (m, n)
        folded = b.ndim == 2 and a.ndim > 2 and gemm._rows_view(a) is not None
        if not folded and len(batch) > 1:
            return None
        inputs = [i for i in range(len(self.kernel.names)) if i != self.acc]
        arrays = [np.asarray(x, dtype=np.dtype(self.kernel.in_dtypes[i]), order="C")
                  for i, x in zip(inputs, others)]
        ctx: list[int] = []
        columns = [True] * len(self.kernel.names)
        for i, x in zip(inputs, arrays):
            if x.ndim > len(shape) or any(s not in (1, t) for s, t in zip(x.shape[::-1], shape[::-1])):
                return None
            padded = (1,) * (len(shape) - x.ndim) + x.shape
            steps = [0 if p == 1 else s // x.itemsize
                     for p, s in zip(padded, (0,) * (len(shape) - x.ndim) + x.strides)]
            columns[i] = steps[-1] != 0
            if folded:
                rs = _fold(shape[:-1], tuple(steps[:-1]))
                if rs is None:
                    return None
                ctx += [x.ctypes.data, 0, rs]
            else:
                ctx += [x.ctypes.data, steps[0] if batch else 0, steps[-2]]
        fn = self._function(tuple(columns))
        if fn is None:
            return None
        result = CPU.pool.empty(self.kernel.out_shape(shape), dt)
        size = math.prod(shape)
        for k in range(len(self.kernel.outputs)):
            ctx += [result.ctypes.data + k * size * dt.itemsize, 0 if folded else m * n, n]
        context = np.array(ctx, dtype=np.int64)
        product = result.reshape(-1)[:size].reshape(shape)  # the first output's slot
        gemm.matmul(a, b, product, (fn, context))
        return result
