"""Derivative rules of a primitive taken from its decomposition in ember ops.

For primitives whose kernel is a fused fast path of a composition (layer norm's backward pieces, the
attention backward), the VJP and JVP are those of the composition: differentiated with ``ember.func``,
so every order of differentiation works without rules of their own.
"""
from __future__ import annotations

from typing import Callable

from ... import func
from ..._core.primitives import elementwise as ew
from ..._core.tensor import Tensor


def decomposed_vjp(ref: Callable) -> Callable:
    """A VJP rule ``vjp(g, out, *operands, **attrs)`` from ``ref(*operands, **attrs)``; operands that
    do not require a gradient get None."""
    def vjp(g, out, *operands, **attrs):
        _, pullback = func.vjp(lambda *ops: ref(*ops, **attrs), *operands)
        return tuple(d if isinstance(v, Tensor) and v._requires_grad else None
                     for d, v in zip(pullback(g), operands))

    return vjp


def decomposed_jvp(ref: Callable) -> Callable:
    """A JVP rule ``jvp(primals, tangents, **attrs)`` from ``ref``; a missing tangent counts as zero."""
    def jvp(primals, tangents, **attrs):
        tangents = tuple(t if t is not None else ew.mul(p, 0.0) for p, t in zip(primals, tangents))
        return func.jvp(lambda *ops: ref(*ops, **attrs), tuple(primals), tangents)

    return jvp
