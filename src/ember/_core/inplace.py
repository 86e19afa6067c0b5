"""In-place updates: write an op's result into an existing tensor, keeping autograd consistent."""
from __future__ import annotations

import weakref
from typing import Any

from . import dtypes, effects
from .autograd import captured_write
from .dispatch import STATE, refresh_view
from .errors import AutogradError, DTypeError, ShapeError, TraceError
from .tensor import Tensor, Tracer


def inplace(x: Tensor, fn, *args, **kwargs) -> Tensor:
    """Run ``fn(x, *args)`` and write the result into `x` (bumping its version).

    With autograd recording, the op reads a copy of the old value, so earlier saved references stay
    valid and later use of a stale saved tensor is caught by the version check.
    """
    if isinstance(x, Tracer):
        name = _op_name(fn)
        refresh = getattr(x._trace, "fresh", None)
        if refresh is not None:  # (a view whose base changed since: its value first)
            refresh(x)
        source = x
        if STATE.get().grad and (x._node is not None or any(isinstance(a, Tensor) and a._requires_grad
                                                            for a in (*args, *kwargs.values()))):
            # recorded (a grad inside the transform): the op reads a stand-in holding the old value, so
            # the tape saves that and not `x`, which becomes the result
            source = _stand_in(x)
            args = tuple(source if a is x else a for a in args)
        out = _in_trace(x, _fit(x, fn(source, *args, **kwargs), name), name)
        _become(x, out)
        mutated = getattr(x._trace, "mutated", None)
        if mutated is not None:  # a trace that follows views (ember.jit) updates what `x` views
            mutated(x)
        return x
    st = STATE.get()
    name = _op_name(fn)
    record = st.grad and (x._requires_grad or any(isinstance(a, Tensor) and a._requires_grad for a in args))
    if record and x._node is None and x._requires_grad:
        raise AutogradError(name, "a leaf tensor that requires grad is being used in an in-place operation; "
                            "wrap it in ember.no_grad()", (x,))
    if record and captured_write(x, (*args, *kwargs.values())):
        raise TraceError(name, "a tensor captured by a transform (such as grad) cannot be updated in place "
                         "with a value the transform differentiates: it would outlive the transform "
                         "holding its gradient graph; pass the tensor in as an argument of the "
                         "transformed function, or use an out-of-place operation and return the result",
                         (x, *[a for a in args if isinstance(a, Tensor)]))
    if record and getattr(x, "_base", None) is not None:
        refresh_view(x)  # (a view whose base changed since: its graph first follows that change)
    bases = _view_chain(x, name) if record else []
    source = x
    if record:  # the op reads a copy that takes over x's place in the graph
        # (a tensor made inside jvp that holds a traced value: that value, which already has x's place)
        held = _held_by(x, st.traces)
        if held is None:
            source = Tensor._make(x._data.copy(), x._dtype, x._device)
        else:  # (a stand-in: the held value itself may be a value the traced code still uses)
            source = _stand_in(held) if isinstance(held, Tracer) else held
        source._node, source._requires_grad = x._node, x._requires_grad
        if x._node is not None:
            x._node.out_ref = weakref.ref(source)
        args = tuple(source if a is x else a for a in args)
    out = fn(source, *args, **kwargs)
    if isinstance(out, Tensor) and (record and out._requires_grad or isinstance(out, Tracer)) \
            and any(out is a for a in args):
        out = _own_copy(out)
    _check_fits(x, out, name)
    if st.traces:
        _check_write(x, out, name, st.traces)
        if isinstance(out, Tensor) and not isinstance(out, Tracer) and _traced_holder(x, st.traces):
            # a plain value into a tensor whose value a trace holds since an earlier write: the trace
            # takes this one too (written into the storage, it would be hidden behind the held value)
            from .primitives.elementwise import convert, where

            out = where(True, out, x)
            if out.dtype is not x.dtype:
                out = convert(out, x.dtype)
        if effects.write(x, out):  # a traced update of a real tensor (a buffer in a compiled step)
            if record and _made_inside(x, st.traces):
                # a tensor made inside the trace (jvp, jit) holds the value from now on: on the tape of
                # a reverse mode inside it, it also stands for the value, as an eager write makes it
                _take_node(x, out, bases)
                x._bump_version()
            return x
        if isinstance(out, Tracer):
            raise _untracked(x, out, name)
    if not x._data.flags.writeable:
        raise AutogradError("inplace", "cannot write into this tensor: it is a broadcast (expanded) view; "
                            "use .clone() first", (x,))
    xp = x._device.backend.xp
    xp.copyto(x._data, xp.broadcast_to(out._data, x._data.shape), casting="unsafe")
    x._bump_version()
    if record:  # x now is the op's output (a constant if the new value does not depend on anything)
        _take_node(x, out, bases)
    return x


def _own_copy(value: Tensor) -> Tensor:
    """A copy of `value`, for an op that handed back an operand unchanged (``x.copy_(src)``,
    ``x[...] = src``) when `x` will stand for the result: on the tape it gets a node of its own rather
    than taking over `src`'s place (a leaf's gradient would go to `x` instead of reaching `src`), and a
    trace that holds the value for `x` (a tensor made inside ``jvp`` or ``ember.jit``) holds a value of
    its own, so that a later in-place update of `x` does not reach `src`."""
    from .primitives.elementwise import clone

    return clone(value)


def _made_inside(x: Tensor, traces: tuple) -> bool:
    """Whether plain tensor `x`, or the tensor it views, was made inside one of `traces`."""
    root = x
    while getattr(root, "_base", None) is not None:
        root = root._base[0]
    return any(getattr(trace, "created", {}).get(id(root)) is root for trace in traces)


def _traced_holder(x: Tensor, traces: tuple) -> bool:
    """Whether a trace holds a value for plain tensor `x`, or a tensor `x` views, since a write in it
    (each trace's ``writes``: ``jvp`` for a tensor made inside, ``ember.jit`` for any tensor written)."""
    t: Any = x
    while t is not None:
        for trace in traces:
            entry = getattr(trace, "writes", {}).get(id(t))
            if entry is not None and entry[0] is t:
                return True
        info = getattr(t, "_base", None)
        t = info[0] if info is not None else None
    return False


def _held_by(x: Tensor, traces: tuple) -> Tensor | None:
    """The traced value that a trace keeps for plain tensor `x` since an in-place update (a tensor made
    inside ``jvp``, a tensor written in ``ember.jit``'s traced code), or None."""
    for trace in traces:
        held = getattr(trace, "held", None)
        if held is not None:
            value = held(x)
            if value is not x:
                return value
            continue
        writes = getattr(trace, "writes", None)
        entry = writes.get(id(x)) if isinstance(writes, dict) else None
        if entry is not None and entry[0] is x:
            return entry[1]
    return None


def _take_node(x: Tensor, out: Tensor, bases: list) -> None:
    """After an in-place write recorded on the tape, `x` (a view of `bases`) stands for the op's output."""
    x._node, x._requires_grad = out._node, out._requires_grad
    if out._node is not None:
        out._node.out_ref = weakref.ref(x)
    _rebase(x, bases)


def _stand_in(x: Tracer) -> Tracer:
    """A second tracer with `x`'s value and place in the autograd graph (the node that made `x` now names
    it as its output)."""
    t = object.__new__(type(x))
    for cls in type(x).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if slot != "__weakref__" and hasattr(x, slot):
                object.__setattr__(t, slot, getattr(x, slot))
    if x._node is not None:
        x._node.out_ref = weakref.ref(t)
    return t


class FollowsViews:
    """For transforms whose values are not shared memory (``vmap``, ``jvp``): views made while tracing
    remember their base (:meth:`note_view`), an in-place update through a view reaches its base
    (:meth:`mutated`), and a view read after its base was updated is recomputed from it first
    (:meth:`fresh`), as memory sharing would have it in eager execution."""

    def _counts(self) -> dict:
        table = self.__dict__.get("_view_counts")
        if table is None:
            table = self.__dict__["_view_counts"] = {}  # id(tracer) -> (weak reference, count)
        return table

    def _count(self, t: Tracer) -> int:
        entry = self._counts().get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else 0

    def _bump(self, t: Tracer) -> None:
        self._counts()[id(t)] = (weakref.ref(t), self._count(t) + 1)

    def note_view(self, result: Tracer, base: Tracer, prim, attrs: dict) -> None:
        """`result` is a view of `base` (a value of this transform) made by `prim`."""
        result._base = (base, prim, attrs)
        self.__dict__.setdefault("_view_seen", {})[id(result)] = (weakref.ref(result), self._count(base))

    def fresh(self, a: Any) -> None:
        """Recompute view `a` from its base if the base was updated in place since `a` matched it."""
        seen_table = self.__dict__.get("_view_seen")
        if not seen_table or not isinstance(a, Tracer):
            return
        entry = seen_table.get(id(a))
        if entry is None or entry[0]() is not a:
            return
        base, prim, attrs = a._base
        self.fresh(base)
        now = self._count(base)
        if entry[1] != now:
            _become(a, _bind_view(prim, base, attrs))
            seen_table[id(a)] = (weakref.ref(a), now)

    def mutated(self, x: Tracer) -> None:
        """`x` was updated in place: the values it is a view of take the update (see follow_views)."""
        self._bump(x)
        child, info = x, getattr(x, "_base", None)
        while info is not None:
            base, prim, attrs = info
            if not (isinstance(base, Tracer) and base._trace is self):
                return
            if prim.unview is None:
                raise TraceError(prim.name, f"an in-place update through a view made by {prim.name} cannot "
                                 "be followed under this transform; apply the update to a .clone() of the "
                                 "view, or write the result with an indexing assignment", (x,))
            self.fresh(base)
            _become(base, prim.unview(base, child, **attrs))
            self._bump(base)
            seen = self.__dict__.get("_view_seen")
            if seen is not None:  # (the view matches its updated base)
                seen[id(child)] = (weakref.ref(child), self._count(base))
            child, info = base, getattr(base, "_base", None)


def _bind_view(prim, base: Tracer, attrs: dict) -> Any:
    from .dispatch import bind

    return bind(prim, base, **attrs)


def _op_name(fn) -> str:
    """The in-place op's name for messages: ``add_`` for ``add``, ``copy_`` for ``_copy``."""
    return getattr(fn, "__name__", "inplace").strip("_") + "_"


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
                         "the tensor updated in place (such as a value batched by a vmap inside it, or a "
                         "value of a body of ember.cond, while_loop or scan that captured the tensor); "
                         "compute the result out of place and return it instead", (x,))
    return out


def _can_cast(src: dtypes.DType, dst: dtypes.DType) -> bool:
    return src.kind <= dst.kind


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target)))


def _check_fits(x: Tensor, out: Any, name: str) -> None:
    """Refuse a result that `x` cannot hold, as PyTorch does: one that broadcasts to a larger shape, or
    of a dtype that does not cast to x's (a float result into an integer tensor)."""
    if not isinstance(out, Tensor):
        return
    shape, target = tuple(out.shape), tuple(x.shape)
    if shape != target and not _broadcasts_to(shape, target):
        raise ShapeError(name, f"the result has shape {list(shape)}, which cannot be written into the tensor "
                         f"updated in place, of shape {list(target)}", (x, out))
    if out.dtype is not x.dtype and not _can_cast(out.dtype, x.dtype):
        raise DTypeError(name, f"result type {out.dtype} can't be cast to the desired output type {x.dtype}",
                         (x,))


def _fit(x: Tracer, out: Any, name: str) -> Any:
    """`out` checked, broadcast to x's shape and cast to x's dtype, as an eager in-place write stores it."""
    _check_fits(x, out, name)
    if not isinstance(out, Tensor):
        return out
    from .primitives.elementwise import convert
    from .primitives.movement import broadcast_to

    if tuple(out.shape) != tuple(x.shape):
        out = broadcast_to(out, tuple(x.shape))
    return out if out.dtype is x.dtype else convert(out, x.dtype)


def _check_write(x: Tensor, out: Any, name: str, traces: tuple) -> None:
    """Let each active trace that restricts writes into plain tensors (the trace of a control-flow body)
    refuse this one."""
    for trace in traces:
        check = getattr(trace, "check_write", None)
        if check is not None:
            check(x, out, name)


def _untracked(x: Tensor, out: Tracer, name: str) -> TraceError:
    """The error for a value of a transform (vmap, jvp) written into a tensor the transform does not
    track: the tensor has one value, the new value one per batch element (or a tangent)."""
    bdim = getattr(out, "bdim", None)
    if isinstance(bdim, int):  # a value batched by vmap
        size = out.val.shape[bdim]
        return TraceError(name, f"under vmap, a tensor that is not batched (shape {list(x.shape)}) cannot be "
                          f"updated in place with a batched value (shape {list(out.shape)} for each of "
                          f"{size} batch elements): it would need one value per element. Use an "
                          "out-of-place operation (y = x + v) and return the result, or pass the tensor in "
                          "as a batched argument", (x, out))
    return TraceError(name, "a tensor captured by a transform (such as jvp) cannot be updated in place with "
                      "a value the transform computes (it carries no tangent or batch of its own); pass "
                      "the tensor in as an argument of the transformed function, or use an out-of-place "
                      "operation and return the result", (x, out))


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
        child._base_node = base._node  # (the view's own graph is current: see dispatch.refresh_view)
        child = base
