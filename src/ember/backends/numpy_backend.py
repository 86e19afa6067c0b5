"""The CPU reference backend, on NumPy, with a size-class buffer pool for large arrays.

Faulting in fresh pages costs more than the elementwise kernel that fills them, so arrays of at least
``threshold`` bytes are carved from cached blocks instead of new memory. A block goes back to the cache
only when nothing can reach it any more: the array handed out sits on a memoryview that NumPy creates
for it and that every view, slice and buffer export of the array keeps alive; a weak reference on that
memoryview returns the block when it dies. Smaller arrays use NumPy's own allocator (no bookkeeping on
the small-tensor fast path).
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

import numpy as np

from .base import Backend

KIB = 1 << 10
MIB = 1 << 20


def size_class(nbytes: int) -> int:
    """The block size the pool uses for a request of `nbytes`: four classes per power of two.

    Rounding wastes under 25% and lets nearby sizes share blocks.

    Example:
        >>> size_class(16 * MIB), size_class(16 * MIB + 1)
        (16777216, 20971520)
    """
    step = max(1 << max(nbytes.bit_length() - 3, 0), 4 * KIB)
    return -(-nbytes // step) * step


class BufferPool:
    """Caches freed large host buffers by size class and counts allocations.

    Args:
        threshold: requests of at least this many bytes are pooled; smaller ones use NumPy directly.
        max_cached_bytes: blocks freed while the cache holds this much go back to the OS instead.
    """

    def __init__(self, threshold: int = 64 * KIB, max_cached_bytes: int = 2048 * MIB):
        self.threshold = threshold
        self.max_cached_bytes = max_cached_bytes
        self._free: dict[int, list[np.ndarray]] = {}
        # id(weakref) -> (weakref, block, bytes requested, id of the memoryview the array sits on)
        self._live: dict[int, tuple] = {}
        self._owner: dict[int, int] = {}  # id(that memoryview) -> id(weakref) of its entry
        self._donated: tuple | None = None  # (size class, block, entry key) offered to the next request
        self._redirect: np.ndarray | None = None  # an array the next request of its shape and dtype gets
        self.current_bytes = self.peak_bytes = self.cached_bytes = 0
        self.block_bytes = self.peak_block_bytes = 0  # the same counts in whole size-class blocks
        self.allocated_count = self.freed_count = self.hits = self.misses = 0

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised C-contiguous array, from a cached block when its size is pooled."""
        dtype = np.dtype(dtype)
        target = self._redirect
        if target is not None and target.shape == tuple(shape) and target.dtype == dtype:
            self._redirect = None
            return target
        count = 1
        for s in shape:
            count *= s
        nbytes = count * dtype.itemsize
        if nbytes < self.threshold:
            return np.empty(shape, dtype)
        block = self._take(size_class(nbytes), nbytes)
        # Given a memoryview, NumPy makes the array's base a new memoryview of `block` of its own: the
        # one object that every view, slice and export of the result keeps alive.
        flat = np.frombuffer(memoryview(block), dtype, count)  # type: ignore[arg-type]
        ref = weakref.ref(flat.base, self._release)
        self._live[id(ref)] = (ref, block, nbytes, id(flat.base))
        self._owner[id(flat.base)] = id(ref)
        return flat.reshape(shape)

    def donate(self, array: np.ndarray) -> bool:
        """Offer the block under `array` to the next request of its size class, for a kernel that writes
        its result over this operand (same shape, read at the same index it writes). The caller drops
        `array` right after; its block then belongs to the new array. False (nothing offered) unless
        `array` covers a whole pooled block, row-major."""
        view = array
        while isinstance(view, np.ndarray) and isinstance(view.base, np.ndarray):
            view = view.base
        key = self._owner.get(id(view.base)) if isinstance(view, np.ndarray) else None
        if key is None or not array.flags.c_contiguous or view.ctypes.data != array.ctypes.data:
            return False
        _, block, nbytes, _ = self._live[key]
        if block is None or array.nbytes != nbytes:
            return False
        self._donated = (block.nbytes, block, key)
        return True

    def end_donation(self) -> None:
        """Withdraw an offer that no request took."""
        self._donated = None

    def redirect(self, array: np.ndarray) -> None:
        """Make `array` (C-contiguous, not from the pool) the result of the next request of its shape and
        dtype: a kernel then writes its result straight into an existing tensor's memory (a compiled
        training step's new parameter). Withdrawn by :meth:`end_redirect`."""
        self._redirect = array

    def end_redirect(self) -> bool:
        """Withdraw the redirect; True if a request took it."""
        taken = self._redirect is None
        self._redirect = None
        return taken

    def _take(self, cls: int, nbytes: int) -> np.ndarray:
        blocks = self._free.get(cls)
        if self._donated is not None and self._donated[0] == cls:
            _, block, key = self._donated
            self._donated = None
            ref, _, old, view_id = self._live[key]
            self._live[key] = (ref, None, 0, view_id)  # the donor's release frees nothing: the block moved
            self.current_bytes -= old
            self.block_bytes -= cls
            self.hits += 1
        elif blocks:
            block = blocks.pop()
            self.cached_bytes -= cls
            self.hits += 1
        else:
            block = np.empty(cls, np.uint8)
            self.misses += 1
        self.allocated_count += 1
        self.current_bytes += nbytes
        self.block_bytes += cls
        if self.current_bytes > self.peak_bytes:
            self.peak_bytes = self.current_bytes
        if self.block_bytes > self.peak_block_bytes:
            self.peak_block_bytes = self.block_bytes
        return block

    def _release(self, ref: weakref.ref) -> None:
        _, block, nbytes, view_id = self._live.pop(id(ref))
        self._owner.pop(view_id, None)
        if block is None:  # donated: the block belongs to the array that took it
            self.freed_count += 1
            return
        cls = block.nbytes
        self.current_bytes -= nbytes
        self.block_bytes -= cls
        self.freed_count += 1
        if self.cached_bytes + cls <= self.max_cached_bytes:
            self._free.setdefault(cls, []).append(block)
            self.cached_bytes += cls

    def ufunc_out(self, fn: Any, *args: Any) -> np.ndarray | None:
        """A pooled output array for ``fn(*args)`` if `fn` is a ufunc with a large result, else None.

        The output dtype comes from the ufunc's own type resolution, so writing into it never casts.
        """
        if not isinstance(fn, np.ufunc) or fn.nout != 1:
            return None
        shape = _broadcast_shape(args)
        if shape is None:
            return None
        try:
            dtype = fn.resolve_dtypes(tuple(_dtype_of(a) for a in args) + (None,))[-1]
        except (TypeError, ValueError):  # no loop for these types: the plain call reports it
            return None
        return self.empty(shape, dtype)

    def sized(self, small: Callable, make_large: Callable[[], Callable]) -> Callable:
        """A kernel that runs `small`, or the pooled kernel built by `make_large` when an input is large.

        `make_large` is called once, on the first large input.
        """
        limit = self.threshold
        large: list[Callable] = []

        def kernel(*arrays):
            for a in arrays:
                if type(a) is np.ndarray and a.nbytes >= limit:
                    if not large:
                        large.append(make_large())
                    return large[0](*arrays)
            return small(*arrays)

        return kernel

    def stats(self) -> dict[str, int]:
        cached_blocks = sum(len(b) for b in self._free.values())
        return {"current_bytes": self.current_bytes, "peak_bytes": self.peak_bytes,
                "block_bytes": self.block_bytes, "peak_block_bytes": self.peak_block_bytes,
                "allocated_count": self.allocated_count, "freed_count": self.freed_count,
                "pool_hits": self.hits, "pool_misses": self.misses, "pool_cached_bytes": self.cached_bytes,
                "pool_cached_blocks": cached_blocks, "pool_threshold_bytes": self.threshold}

    def reset_peak(self) -> None:
        self.peak_bytes = self.current_bytes
        self.peak_block_bytes = self.block_bytes

    def empty_cache(self) -> None:
        self._free.clear()
        self.cached_bytes = 0


def _dtype_of(value: Any):
    if isinstance(value, (np.ndarray, np.generic)):
        return value.dtype
    return type(value)  # a Python scalar: weak, as in the ufunc call itself


def _broadcast_shape(args: tuple) -> tuple[int, ...] | None:
    """The broadcast shape of the array arguments (None when they do not broadcast)."""
    shapes = [a.shape for a in args if isinstance(a, np.ndarray)]
    first = shapes[0] if shapes else ()
    if all(s == first for s in shapes):
        return first
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        return None


class NumpyBackend(Backend):
    """Runs every primitive's reference kernel with NumPy on the host; large arrays come from a pool."""

    name = "cpu"
    xp = np
    array_type = np.ndarray

    def __init__(self) -> None:
        self.pool = BufferPool()

    def asarray(self, data: Any, dtype) -> np.ndarray:
        return np.asarray(data, dtype=dtype.np)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return array

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        return self.pool.empty(tuple(shape), dtype.np)

    # Set by the compiler package when it is imported: ``formula_compiler(name, formula, params, in_dtypes,
    # out_dtype)`` returns a generated kernel for a formula, or None. Composite elementwise ops on large
    # inputs then run as one C loop instead of a chain of NumPy passes.
    formula_compiler: Callable | None = None
    # Set by the compiler package too: ``column_reduce(kind, x, axes, correction)`` reduces a row-major
    # float array over its first `axes` axes ("sum", "max", "min" or "var") on all cores (a block of
    # rows per thread), or returns None.
    column_reduce: Callable | None = None
    # And ``row_reduce(kind, x, axes, correction)``: "sum", "max", "min" or "var" of a row-major float
    # array over its last `axes` axes on all cores, or None.
    row_reduce: Callable | None = None
    # And the Philox stream of ``ember._core.random`` on all cores: ``random_words(seed, offset, count)``
    # (uint32 words) and ``random_uniform(seed, offset, shape, dtype, low, high)`` (float32/float64
    # uniforms), each returning None where it does not apply.
    random_words: Callable | None = None
    random_uniform: Callable | None = None

    def formula_kernel(self, name: str, formula: Any, params: tuple, fallback: Callable) -> Callable:
        """A kernel for large inputs: generated code for float inputs when a compiler is registered,
        else `fallback` (per input dtypes, decided on first use)."""
        cache: dict = {}

        def kernel(*arrays):
            key = tuple(getattr(a, "dtype", None) for a in arrays)
            fn = cache.get(key)
            if fn is None:
                fn = cache[key] = self._generated(name, formula, params, key) or fallback
            return fn(*arrays)

        return kernel

    def _generated(self, name: str, formula: Any, params: tuple, dtypes: tuple) -> Callable | None:
        if self.formula_compiler is None or None in dtypes:
            return None
        floats = {d for d in dtypes if d.kind == "f"}
        if len(floats) != 1 or any(d.kind not in "fb" for d in dtypes) or floats & {np.dtype(np.float16)}:
            return None
        out = floats.pop()
        return self.formula_compiler(name, formula, params, tuple(d.name for d in dtypes), out.name)

    def elementwise_kernel(self, small: Callable, compile_pooled: Callable[[Callable], Callable]) -> Callable:
        """The CPU kernel of an elementwise primitive: `small` for small inputs, and for inputs of pooled
        size the kernel ``compile_pooled(alloc)`` that writes its results into ``alloc(ufunc, *args)``."""
        return self.pool.sized(small, lambda: compile_pooled(self.pool.ufunc_out))

    def memory_stats(self) -> dict[str, int]:
        return self.pool.stats()

    def reset_peak_memory_stats(self) -> None:
        self.pool.reset_peak()

    def empty_cache(self) -> None:
        self.pool.empty_cache()


CPU = NumpyBackend()
