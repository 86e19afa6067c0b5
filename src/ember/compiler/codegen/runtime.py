"""Run a fused group on NumPy arrays: lower to a kernel per broadcast pattern, build, call with ctypes.

Kernels are specialised to the rank and broadcast pattern of the inputs after coalescing, not to their
sizes (extents are passed at run time), so one build serves every batch size; a flat kernel gets a
second build, which streams its results past the caches, the first time a call's data outgrows them.
Without a working C compiler the group runs as NumPy kernels of the composed formulas, and one log line
says so.
"""
from __future__ import annotations

import ctypes
import logging
import math
from typing import Any

import numpy as np

from ..._core import expr
from ...backends import CPU
from . import build
from .c import render_c, stream_elements
from .kernel import Kernel, Operand, broadcast_shape, coalesce, coalesce_reduce

LOG = logging.getLogger("ember.compiler.codegen")
_WARNED: list[bool] = []  # one "no compiler" message per process


def reset_warning() -> None:
    """Allow the "no C compiler" message to be logged again."""
    _WARNED.clear()


def _warn_once(reason: str) -> None:
    if not _WARNED:
        _WARNED.append(True)
        LOG.warning("ember.jit: fused kernels run with NumPy (slower, same results): %s", reason)


class FusedKernel:
    """A fused elementwise group over inputs ``names`` (dtypes ``in_dtypes``) computing ``outputs``.

    Calling it with arrays returns one array of the broadcast shape, or, with several outputs, one
    array of shape ``(len(outputs), *shape)`` holding them in order. With ``reduce_dims = r > 0`` the
    one output is summed over its last `r` dimensions (kept as size 1 with ``keepdims``).
    """

    def __init__(self, name: str, names: tuple[str, ...], in_dtypes: tuple[str, ...],
                 outputs: tuple[expr.Expr, ...], dtype: str, comment: tuple[str, ...] = (),
                 reduce_dims: int = 0, keepdims: bool = False):
        self.reduce_dims = reduce_dims
        self.keepdims = keepdims
        self.name = name
        self.names = names
        self.in_dtypes = in_dtypes
        self.outputs = outputs
        self.dtype = dtype
        self.comment = comment
        self._compiled: dict[tuple, Any] = {}  # (pattern, streams) -> C function or None (NumPy)
        self._stream_from: dict[tuple, int | None] = {}  # pattern -> elements from which it streams
        self._numpy: list | None = None
        self._plans: dict[tuple, tuple] = {}  # input shapes -> _plan's (function, out shape, size, extents)
        # (class, shape, strides, dtype) of each input, for inputs the kernel reads as they are (row-major
        # NumPy arrays of its dtypes) -> (function, out shape, out dtype, output offsets in bytes,
        # address of the extents, the extents array that address points into)
        self._ready: dict[tuple, tuple] = {}
        self._np_dtypes = tuple(np.dtype(d) for d in in_dtypes)
        self._np_dtype = np.dtype(dtype)

    def kernel_ir(self, ndim: int, masks: tuple[tuple[bool, ...], ...]) -> Kernel:
        """The kernel IR for one rank and broadcast pattern."""
        ops = tuple(Operand(n, d, m) for n, d, m in zip(self.names, self.in_dtypes, masks))
        return Kernel(self.name, self.dtype, ndim, ops, self.outputs, self.comment, self.reduce_dims > 0)

    def loops(self, shapes: list[tuple[int, ...]]) -> tuple | None:
        """Loop extents and broadcast masks for inputs of `shapes` (None: no kernel fits, use NumPy)."""
        shape = broadcast_shape(shapes)
        if self.reduce_dims:
            if len(shape) < self.reduce_dims:
                return None
            return coalesce_reduce(shape, shapes, self.reduce_dims)
        return coalesce(shape, shapes)

    def source(self, shapes: list[tuple[int, ...]]) -> str:
        """The C source used for inputs of these shapes."""
        loops = self.loops(shapes)
        if loops is None:
            raise ValueError(f"{self.name}: no loop nest for operand shapes {shapes}")
        dims, masks = loops
        k = self.kernel_ir(len(dims), masks)
        start = stream_elements(k)
        return render_c(k, start is not None and int(np.prod(dims, dtype=np.int64)) >= start)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The result's shape for inputs broadcasting to `shape`."""
        if not self.reduce_dims:
            return shape if len(self.outputs) == 1 else (len(self.outputs),) + shape
        kept = shape[:len(shape) - self.reduce_dims]
        return kept + (1,) * self.reduce_dims if self.keepdims else kept

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        ready = self._ready.get(_signature(arrays))
        if ready is not None:  # the common case, in a few microseconds (kernels of small tensors)
            fn, out_shape, dtype, offsets, extents, _ = ready
            out = CPU.pool.empty(out_shape, dtype)
            base = build.data_pointer(out)
            fn(*map(build.data_pointer, arrays), *[base + off for off in offsets], extents)
            return out
        perm = None if self.reduce_dims else _shared_layout(arrays)
        if perm is not None:  # run in the operands' memory order; the result is a view in their layout
            ndim = len(perm)
            aligned = [np.asarray(a).reshape((1,) * (ndim - np.ndim(a)) + np.shape(a)).transpose(perm)
                       for a in arrays]
            out = self._run(aligned)
            back = tuple(np.argsort(perm))
            if len(self.outputs) > 1:
                back = (0,) + tuple(1 + d for d in back)
            return out.transpose(back)
        return self._run(arrays)

    def _run(self, arrays) -> np.ndarray:
        # order="C" rather than ascontiguousarray, which would turn 0-d inputs into shape (1,)
        original = arrays
        arrays = [np.asarray(a, dtype=d, order="C") for a, d in zip(arrays, self._np_dtypes)]
        shapes = tuple([a.shape for a in arrays])
        plan = self._plans.get(shapes)
        if plan is None:
            plan = self._plans[shapes] = self._plan(shapes)
        fn, out_shape, size, extents = plan
        if fn is None:
            return self.run_numpy(*arrays)
        out = CPU.pool.empty(out_shape, self._np_dtype)
        ptrs = [build.data_pointer(a) for a in arrays]
        base = build.data_pointer(out)
        ptrs += [base + j * size * out.itemsize for j in range(len(self.outputs))]
        fn(*ptrs, build.data_pointer(extents))
        if all(a is b for a, b in zip(arrays, original)):  # (asarray returns row-major arrays unchanged)
            offsets = tuple(j * size * out.itemsize for j in range(len(self.outputs)))
            self._ready[_signature(arrays)] = (fn, out_shape, self._np_dtype, offsets,
                                               build.data_pointer(extents), extents)
        return out

    def _plan(self, shapes: tuple) -> tuple:
        """For inputs of `shapes`: the C function (None: NumPy), the result's shape, the element count of
        the broadcast shape and the loop extents as the int64 array the kernel reads."""
        shape = broadcast_shape(list(shapes))
        loops = self.loops(list(shapes))
        size = math.prod(shape)
        fn = None if loops is None else self._function(len(loops[0]), loops[1], size)
        extents = np.asarray(loops[0] if loops is not None else (), dtype=np.int64)
        return fn, self.out_shape(shape), size, extents

    def _function(self, ndim: int, masks: tuple, size: int = 0) -> Any:
        """The C function for a rank and broadcast pattern; a flat kernel over `size` elements whose data
        is larger than the caches gets the variant that streams its results (built on first use)."""
        start = self._stream_from.get((ndim, masks), -1)
        k = None
        if start == -1:
            k = self.kernel_ir(ndim, masks)
            start = self._stream_from[ndim, masks] = stream_elements(k)
        key = (ndim, masks, start is not None and size >= start)
        if key not in self._compiled:
            self._compiled[key] = self._build(k or self.kernel_ir(ndim, masks), key[2])
        return self._compiled[key]

    def _build(self, k: Kernel, stream: bool) -> Any:
        source = render_c(k, stream)
        try:
            lib = build.build(source)
        except build.CompilerUnavailable as err:
            _warn_once(str(err).splitlines()[0])
            return None
        fn = getattr(lib, self.name)
        fn.argtypes = [ctypes.c_void_p] * (len(self.names) + len(self.outputs) + 1)
        fn.restype = None
        return fn

    def run_numpy(self, *arrays: np.ndarray) -> np.ndarray:
        """The reference path: each output's formula as a NumPy kernel."""
        if self._numpy is None:
            self._numpy = [expr.compile_kernel(e, self.names) for e in self.outputs]
        shape = broadcast_shape([a.shape for a in arrays])
        dtype = np.dtype(self.dtype)
        results = [np.broadcast_to(np.asarray(f(*arrays), dtype=dtype), shape) for f in self._numpy]
        if self.reduce_dims:
            axes = tuple(range(len(shape) - self.reduce_dims, len(shape)))
            return np.asarray(results[0].sum(axis=axes, keepdims=self.keepdims), dtype=dtype)
        if len(results) == 1:
            return np.array(results[0], dtype=dtype)
        return np.stack(results)


def _signature(arrays) -> tuple:
    """What decides whether a kernel call can skip its checks: each input's class, shape, strides and
    dtype."""
    return tuple([(a.__class__, a.shape, a.strides, a.dtype) if a.__class__ is np.ndarray else None
                  for a in arrays])


def _shared_layout(arrays) -> tuple[int, ...] | None:
    """The axis order to run an elementwise kernel in, when it is not the identity: that of a full-size
    operand stored permuted (a convolution's channel-major output, say), provided every other
    full-size operand is stored in that order or row-major; None otherwise.

    The result then keeps the permuted layout, as PyTorch keeps an operand's memory format: a chain of
    elementwise ops on a convolution's output (bias, activation, their gradients) streams through
    memory, and the convolution's backward finds its cotangent channel-major (no transposing copy).
    """
    nd = [a for a in arrays if isinstance(a, np.ndarray) and a.ndim > 1]
    if not nd:
        return None
    shape = max(nd, key=lambda a: a.size).shape
    full = [a for a in nd if a.shape == shape]  # the others broadcast (a bias, a scale)
    permuted = [a for a in full if not a.flags.c_contiguous]
    if not permuted:
        return None
    first = permuted[0]
    perm = tuple(sorted(range(first.ndim), key=lambda d: -first.strides[d]))
    if not all(a.flags.c_contiguous or a.transpose(perm).flags.c_contiguous for a in full):
        return None
    return perm


def formula_kernel(name: str, formula: expr.Expr, params: tuple[str, ...], in_dtypes: tuple[str, ...],
                   out_dtype: str) -> FusedKernel | None:
    """A generated kernel computing one elementwise formula (eager mode's large-input path), or None
    when no C compiler is available."""
    if not build.compiler_available():
        return None
    return FusedKernel(f"ew_{name}_{out_dtype}", params, in_dtypes, (formula,), out_dtype,
                       (f"eager {name}",))


CPU.formula_compiler = formula_kernel
