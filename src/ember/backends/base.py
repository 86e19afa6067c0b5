"""The contract a device implements: allocation and transfer, kernels, synchronisation, memory stats."""
from __future__ import annotations

from typing import Any, Callable


class Backend:
    """Base class of device backends.

    A backend names an array module ``xp`` (NumPy-compatible). Every primitive's reference kernel is
    written against ``xp``, so a backend only registers kernels where it can do better
    (``primitive.kernels[backend.name] = fn``).
    """

    name: str = "base"
    xp: Any = None
    array_type: type = object  # the backend's array class (kernel results are converted to it)

    def asarray(self, data: Any, dtype) -> Any:
        """Copy or convert host data (a NumPy array or nested lists) to an array of `dtype` here."""
        raise NotImplementedError

    def to_numpy(self, array: Any) -> Any:
        """A NumPy array with the contents of `array` (a copy for non-host devices)."""
        raise NotImplementedError

    def empty(self, shape: tuple[int, ...], dtype) -> Any:
        """An uninitialised array."""
        raise NotImplementedError

    def kernel(self, prim) -> Callable:
        """The kernel that runs `prim` here: a registered override, else the reference kernel on ``xp``."""
        fn = prim.kernels.get(self.name)
        if fn is None:
            fn = self.make_kernel(prim)
            prim.kernels[self.name] = fn
        return fn

    def make_kernel(self, prim) -> Callable:
        """Bind the primitive's reference kernel to this backend's array module."""
        impl, xp = prim.impl, self.xp
        if impl is None:
            raise NotImplementedError(f"{prim.name} has no kernel on {self.name}")

        def run(*arrays, **attrs):
            return impl(xp, *arrays, **attrs)

        run.reference = impl  # type: ignore[attr-defined]  # (the reference kernel itself: see Primitive)
        return run

    def synchronize(self) -> None:
        """Wait for queued work to finish (a no-op on synchronous devices)."""

    def memory_stats(self) -> dict[str, int]:
        """Allocation statistics of this device.

        Keys a backend with a pool reports: ``current_bytes`` and ``peak_bytes`` (bytes of live pooled
        buffers now and at the peak), ``allocated_count`` and ``freed_count`` (buffers handed out and
        returned), ``pool_hits`` and ``pool_misses`` (requests served from the cache or from new memory)
        and ``pool_cached_bytes`` (freed memory the pool keeps for reuse). Empty if nothing is tracked.
        """
        return {}

    def reset_peak_memory_stats(self) -> None:
        """Restart the peak from the current usage."""

    def empty_cache(self) -> None:
        """Return cached free memory to the system (live buffers are untouched)."""
