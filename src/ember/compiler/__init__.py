"""The compiler: graph IR, tracing (``jit``), passes and the executor."""
from . import ir, passes
from .trace import Jitted, Lowered, jit

__all__ = ["jit", "Jitted", "Lowered", "ir", "passes"]
