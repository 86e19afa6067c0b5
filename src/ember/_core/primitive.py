"""The primitive record and the one registry every layer reads.

A :class:`Primitive` holds all of an op's rules in one place: the reference kernel (written against an
array module ``xp`` so NumPy and CuPy share it), the shape/dtype rule, VJP, JVP, batching rule and an
optional decomposition. "What does op X support?" is answered by ``PRIMITIVES["x"]``.
"""
from __future__ import annotations

from typing import Callable

PRIMITIVES: dict[str, "Primitive"] = {}


class Primitive:
    """One primitive op and all of its rules.

    Attributes:
        name: unique name, e.g. ``"add"``.
        impl: reference kernel ``impl(xp, *arrays, **attrs) -> array`` (or tuple if ``multiple_results``).
        abstract: ``abstract(*avals, **attrs) -> aval(s)``: output shapes/dtypes from input shapes/dtypes.
        vjp: ``vjp(g, out, *inputs, **attrs) -> tuple`` of input cotangents (None for no gradient),
            written with ember ops so that it can itself be differentiated and traced.
        jvp: ``jvp(primals, tangents, **attrs) -> (out, tangent_out)``; tangents may hold None (zero).
        batch: ``batch(values, bdims, **attrs) -> (out, out_bdim)``; bdims hold None for unbatched.
        decomp: optional function of ember ops computing the same thing (fallback for backends).
        view: True if the output shares storage with the first input (reshape, transpose, slicing).
        nondiff_inputs: positions of inputs that never receive gradients (indices, masks).
        reads: positions of inputs whose *values* the VJP reads (None: all), or a dict mapping an input's
            position to the positions its gradient reads. Only these are checked for in-place
            modification before backward; shape-only rules (views, add) use ``()``.
        effect: "random" for primitives that draw random numbers: transforms that cannot replay them
            faithfully (jit, vmap) are handed these even without tracer inputs, and refuse them.
        unview: for view primitives, ``unview(base, value, **attrs)`` returns `base` with the viewed part
            replaced by `value`; in-place writes through such a view update the base's graph with it.
        array_method: optional ``array_method(**attrs) -> (name, argument)``: the reference kernel as one
            method call on the NumPy array operand, ``x.name(argument)`` (``x[argument]`` for
            ``__getitem__``), which generated executor code writes in place of a kernel call.
    """

    __slots__ = ("name", "impl", "abstract", "vjp", "jvp", "batch", "decomp", "view", "multiple_results",
                 "nondiff_inputs", "reads", "unview", "array_method", "effect", "formula", "params",
                 "kernels", "dtype_rule", "fast_dtypes", "doc")

    def __init__(self, name: str, impl: Callable | None = None, *, abstract: Callable | None = None,
                 vjp: Callable | None = None, jvp: Callable | None = None, batch: Callable | None = None,
                 decomp: Callable | None = None, view: bool = False, multiple_results: bool = False,
                 nondiff_inputs: tuple[int, ...] = (), reads: tuple[int, ...] | dict | None = None,
                 doc: str = ""):
        if name in PRIMITIVES:
            raise ValueError(f"primitive {name!r} is already registered")
        self.name = name
        self.impl = impl
        self.abstract = abstract
        self.vjp = vjp
        self.jvp = jvp
        self.batch = batch
        self.decomp = decomp
        self.view = view
        self.multiple_results = multiple_results
        self.nondiff_inputs = nondiff_inputs
        self.reads = reads
        self.unview: Callable | None = None
        self.array_method: Callable | None = None
        self.effect: str | None = None
        self.formula = None
        self.params: tuple[str, ...] = ()
        self.kernels: dict[str, Callable] = {}
        self.dtype_rule = None
        self.fast_dtypes: frozenset = frozenset()
        self.doc = doc
        PRIMITIVES[name] = self

    def __repr__(self) -> str:
        return f"Primitive({self.name})"

    def def_vjp(self, fn: Callable) -> Callable:
        """Decorator: set the VJP rule."""
        self.vjp = fn
        return fn

    def def_jvp(self, fn: Callable) -> Callable:
        """Decorator: set the JVP rule."""
        self.jvp = fn
        return fn

    def def_batch(self, fn: Callable) -> Callable:
        """Decorator: set the batching rule."""
        self.batch = fn
        return fn

    def def_abstract(self, fn: Callable) -> Callable:
        """Decorator: set the abstract evaluation (shape/dtype) rule."""
        self.abstract = fn
        return fn


def get(name: str) -> Primitive:
    """The registered primitive called `name`."""
    return PRIMITIVES[name]
