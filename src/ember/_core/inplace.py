"""In-place updates: write an op's result into an existing tensor, keeping autograd consistent."""
from __future__ import annotations

import weakref
from typing import Any

from . import dtypes, effects
from .dispatch import STATE
from .errors import AutogradError, DTypeError, TraceError
from .tensor import Tensor, Tracer


def inplace(x: Tensor, fn, *args, **kwargs) -> Tensor:
    """Run ``fn(x, *args)`` and write the result into `x` (bumping its version).

    With autograd recording, the op reads a copy of the old value, so earlier saved references stay
    valid and later use of a stale saved tensor is caught by the version check.
    """
    if isinstance(x, Tracer):
        out = _in_trace(x, fn(x, *args, **kwargs), getattr(fn, "__name__", "inplace") + "_")
        _become(x, out)
        mutated = getattr(x._trace, "mutated", None)
        if mutated is not None:  # a trace that follows views (ember.jit) updates what `x` views
            mutated(x)
        return x
    st = STATE.get()
    name = getattr(fn, "__name__", "inplace") + "_"
    record = st.grad and (x._requires_grad or any(isinstance(a, Tensor) and a._requires_grad for a in args))
    if record and x._node is None and x._requires_grad:
        raise AutogradError(name, "a leaf tensor that requires grad is being used in an in-place operation; "
                            "wrap it in ember.no_grad()", (x,))
    bases = _view_chain(x, name) if record else []
    source = x
    if record:  # the op reads a copy that takes over x's place in the graph
        source = Tensor._make(x._data.copy(), x._dtype, x._device)
        source._node, source._requires_grad = x._node, x._requires_grad
        if x._node is not None:
            x._node.out_ref = weakref.ref(source)
        args = tuple(source if a is x else a for a in args)
    out = fn(source, *args, **kwargs)
    if effects.write(x, out):  # a traced update of a real tensor (a buffer in a compiled step)
        return x
    if out.dtype is not x.dtype and not _can_cast(out.dtype, x.dtype):
        raise DTypeError(name, f"result type {out.dtype} can't be cast to the desired output type {x.dtype}",
                         (x,))
    if not x._data.flags.writeable:
        raise AutogradError("inplace", "cannot write into this tensor: it is a broadcast (expanded) view; "
                            "use .clone() first", (x,))
    xp = x._device.backend.xp
    xp.copyto(x._data, xp.broadcast_to(out._data, x._data.shape), casting="unsafe")
    x._bump_version()
    if record:  # x now is the op's output (a constant if the new value does not depend on anything)
        x._node, x._requires_grad = out._node, out._requires_grad
        if out._node is not None:
            out._node.out_ref = weakref.ref(x)
        _rebase(x, bases)
    return x


def _in_trace(x: Tracer, out: Any, name: str) -> Tracer:
    """`out`, the new value of traced `x`, as a value of `x`'s own transform (the only kind `x` can
    take over with :func:`_become`).

    An op may hand back an operand unchanged: ``x.copy_(src)`` and ``x[:] = src`` return `src` itself
    when it has x's shape and dtype already (broadcasting and casting are no-ops then). That is a plain
    tensor when `src` was made inside a jitted function (``ember.ones(3)``) or captured (a parameter),
    and a value of an enclosing transform when a control-flow body captured it. Such a result is brought
    into x's transform by selecting it everywhere over `x`, which also broadcasts it to x's shape as an
    eager in-place write does.
    """
    if isinstance(out, Tracer) and out._trace is x._trace:
        return out
    from .primitives.elementwise import where

    out = where(True, out, x)
    if not (isinstance(out, Tracer) and out._trace is x._trace):  # a value of a transform inside x's
        raise TraceError(name, "the new value belongs to a transform applied inside the one that traces "
                         "the tensor updated in place (such as a value batched by a vmap inside it); "
                         "compute the result out of place and return it instead", (x,))
    return out


def _can_cast(src: dtypes.DType, dst: dtypes.DType) -> bool:
    return src.kind <= dst.kind


def _become(x: Tensor, out: Tensor) -> None:
    for slot in ("_data", "_dtype", "_device", "_requires_grad", "_node", "_grad", "_vc", "_hooks"):
        object.__setattr__(x, slot, getattr(out, slot))
    for slot in type(out).__slots__:
        if slot != "__weakref__":
            object.__setattr__(x, slot, getattr(out, slot))


def _snapshot(t: Tensor) -> Tensor:
    """A copy of `t`'s current value that takes over its place in the graph."""
    snap = Tensor._make(t._data.copy(), t._dtype, t._device)
    snap._node, snap._requires_grad = t._node, t._requires_grad
    if t._node is not None:
        t._node.out_ref = weakref.ref(snap)
    return snap


def _view_chain(x: Tensor, name: str) -> list:
    """The bases that a write through view `x` changes, innermost first, each with a snapshot."""
    chain = []
    info = getattr(x, "_base", None)
    while info is not None:
        base, prim, attrs = info
        if prim.unview is None:
            raise AutogradError(name, f"in-place operation on a view made by {prim.name} while recording "
                                "gradients is not supported; apply it to a .clone() of the view", (x,))
        if base._node is None and base._requires_grad:
            raise AutogradError(name, "a view of a leaf tensor that requires grad is being used in an "
                                "in-place operation; wrap it in ember.no_grad()", (x,))
        chain.append((base, prim, attrs, _snapshot(base)))
        info = getattr(base, "_base", None)
    return chain


def _rebase(x: Tensor, chain: list) -> None:
    """After a write through view `x`, give each base the graph of "old base with the view replaced"."""
    child = x
    for base, prim, attrs, snap in chain:
        new = prim.unview(snap, child, **attrs)
        base._node, base._requires_grad = new._node, new._requires_grad
        if new._node is not None:
            new._node.out_ref = weakref.ref(base)
        child = base
