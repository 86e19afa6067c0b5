"""Memory statistics and the cache of a device's allocator (PyTorch's ``torch.cuda.memory_stats`` family).

On the CPU, buffers of at least 64 KiB come from a size-class pool that reuses freed blocks instead of
faulting in fresh pages; the statistics count those pooled buffers (smaller arrays use NumPy's
allocator and are not tracked, so the small-tensor fast path pays nothing).
"""
from __future__ import annotations

from .device import as_device

__all__ = ["memory_stats", "reset_peak_memory_stats", "empty_cache"]


def memory_stats(device=None) -> dict[str, int]:
    """Allocation statistics of `device` (default: the CPU).

    Args:
        device: a device or its name; None for the default device.

    Returns:
        A dict with ``current_bytes`` and ``peak_bytes`` (bytes of live tensors), ``block_bytes`` and
        ``peak_block_bytes`` (the same in whole pool blocks), ``allocated_count``, ``freed_count``,
        ``pool_hits``, ``pool_misses`` and ``pool_cached_bytes`` (and backend-specific extras).

    Example:
        >>> import ember
        >>> before = ember.memory_stats()["allocated_count"]
        >>> x = ember.empty(1 << 20)
        >>> ember.memory_stats()["allocated_count"] - before
        1
    """
    return as_device(device).backend.memory_stats()


def reset_peak_memory_stats(device=None) -> None:
    """Set ``peak_bytes`` of `device` to its current usage, to measure the peak of what follows.

    Example:
        >>> import ember
        >>> ember.reset_peak_memory_stats()
        >>> s = ember.memory_stats()
        >>> s["peak_bytes"] == s["current_bytes"]
        True
    """
    as_device(device).backend.reset_peak_memory_stats()


def empty_cache(device=None) -> None:
    """Release the free blocks `device`'s pool keeps for reuse (live tensors are not affected).

    Example:
        >>> import ember
        >>> ember.empty_cache()
        >>> ember.memory_stats()["pool_cached_bytes"]
        0
    """
    as_device(device).backend.empty_cache()
