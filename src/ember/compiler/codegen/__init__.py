"""Kernel generation: the kernel IR, its C renderer, and the build driver with an on-disk cache.

``kernel`` holds the loop-nest IR a fused group lowers to, ``c`` renders it as C, ``build`` compiles
and caches the libraries, and ``runtime`` runs a fused group on arrays (or with NumPy when no C
compiler is available). ``layout`` holds the blocked transpose behind ``contiguous`` on transposed
matrices; ``columns`` and ``reductions`` the sums over leading axes and the sum/max/min/variance
over trailing axes; ``window`` the pooling kernels and the im2col/col2im of convolutions; ``philox``
the random words and uniform floats of ``ember._core.random``.
"""
from . import build, c, columns, kernel, layout, philox, reductions, runtime, window
from .build import STATS, CompilerUnavailable, cache_dir, clear_memory_cache
from .c import render_c
from .kernel import Kernel, Operand, coalesce
from .runtime import FusedKernel

__all__ = ["Kernel", "Operand", "FusedKernel", "CompilerUnavailable", "STATS", "build", "c", "kernel",
           "layout", "philox", "reductions", "runtime", "window", "cache_dir", "clear_memory_cache",
           "coalesce", "render_c"]
