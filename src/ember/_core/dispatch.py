"""``bind``: the one entry every operation goes through, the transform stack, and tape recording.

With no transform active, ``bind`` is the eager fast path: run the backend kernel, wrap the result,
record a tape node if an input requires grad. Transforms (vmap, jvp, jit tracing) are small
interpreters: each is a *trace* with one ``process(prim, args, attrs)``; the active traces live in a
context variable, and a primitive applied to a tracer is handed to the innermost trace that owns one.
"""
from __future__ import annotations

import contextlib
import itertools
import warnings
import weakref
from typing import Any

from . import dtypes
from .errors import AnomalyError, DeviceError, EmberError, ShapeError, describe, user_frame
from .primitive import Primitive
from .state import STATE, State  # noqa: F401  (State is re-exported)
from .tensor import Tensor, Tracer

# Kernels follow IEEE semantics silently, as PyTorch does: NaN/Inf results are values, not warnings
# (anomaly mode is the tool for finding them). The filter only acts when NumPy emits a warning.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"ember\._core\.")




@contextlib.contextmanager
def state_changed(**changes):
    """Run a block with some dispatch-state fields changed."""
    token = STATE.set(STATE.get().replace(**changes))
    try:
        yield
    finally:
        STATE.reset(token)


def is_grad_enabled() -> bool:
    """True if operations are being recorded for reverse-mode differentiation."""
    return STATE.get().grad


class Trace:
    """Base class of transform interpreters. ``level`` orders nested transforms (outer = lower)."""

    _levels = itertools.count(1)

    def __init__(self) -> None:
        self.level = next(Trace._levels)

    def process(self, prim: Primitive, args: tuple, attrs: dict) -> Any:
        raise NotImplementedError


@contextlib.contextmanager
def new_trace(trace: Trace):
    """Make `trace` the innermost active transform for the duration of the block."""
    token = STATE.set(STATE.get().replace(traces=STATE.get().traces + (trace,)))
    try:
        yield trace
    finally:
        STATE.reset(token)


def _capturing(traces: tuple, prim: Primitive, args: tuple) -> Trace | None:
    """The innermost trace that wants this application although no tracer is among its arguments: one
    that records every op on captured tensors (jit), one whose ``claims(args)`` says a tensor among them
    holds one of its values (a tensor made inside ``jvp`` and updated in place), or, for random
    primitives, one that handles effects."""
    for t in reversed(traces):
        if getattr(t, "captures_all", False):
            return t
        claims = getattr(t, "claims", None)
        if claims is not None and claims(args):
            return t
        if prim.effect is not None and getattr(t, "handles_effects", False):
            return t
    return None


def top_trace(args) -> Trace | None:
    """The innermost (highest-level) trace owning one of `args`, or None."""
    best = None
    for a in args:
        if isinstance(a, Tracer) and (best is None or a._trace.level > best.level):
            best = a._trace
    return best


# -- tape ----------------------------------------------------------------------------------------------
_SEQ = itertools.count()


def next_node_seq() -> int:
    """A tape position: every node recorded from now on has a larger ``seq``."""
    return next(_SEQ)


class Node:
    """A recorded application: the primitive, its inputs (saved for the VJP), their versions at save
    time, the attributes, a weak reference to the output, and the edges of the graph: for each input,
    the node that had produced it when this node was recorded (None for leaves and constants)."""

    __slots__ = ("prim", "inputs", "versions", "attrs", "out_ref", "seq", "where", "edges", "__weakref__")

    def __init__(self, prim: Primitive, inputs: tuple, attrs: dict, out: Tensor):
        self.prim = prim
        self.inputs: tuple | None = inputs
        self.versions = tuple(a._vc.value if isinstance(a, Tensor) and a._vc is not None else 0
                              for a in inputs)
        # Fixed now: an in-place op may later give an input tensor a new node.
        self.edges = tuple(a._node if isinstance(a, Tensor) else None for a in inputs)
        self.attrs = attrs
        self.out_ref = weakref.ref(out)
        self.seq = next(_SEQ)
        self.where: tuple[str, int, str] | None = None

    @property
    def name(self) -> str:
        return f"{self.prim.name.capitalize()}Backward"

    def __repr__(self) -> str:
        return f"<{self.name}>"


def refresh_view(t: Any) -> None:
    """If `t` is a view whose base was updated in place since the view was made (``d = c.view(...)``,
    then ``c.mul_(2)``), give it the graph of the view of the updated base: its values already are that
    (shared memory), and gradients must flow through the update, as PyTorch rebases such views."""
    info = getattr(t, "_base", None)
    if info is None or isinstance(t, Tracer):
        return
    seen = getattr(t, "_base_node", _UNSET)
    base, prim, attrs = info
    refresh_view(base)
    if seen is _UNSET or base._node is seen:
        return
    t._base_node = base._node
    if base._requires_grad and prim.vjp is not None:
        with state_changed(grad=True):
            fresh = bind(prim, base, **attrs)
        t._node, t._requires_grad = fresh._node, fresh._requires_grad
        if fresh._node is not None:
            fresh._node.out_ref = weakref.ref(t)


_UNSET = object()


def record(prim: Primitive, args: tuple, attrs: dict, out: Tensor, anomaly: bool) -> None:
    """Attach a tape node to `out` (which then requires grad)."""
    if prim.vjp is None:
        return
    for a in args:
        if a.__class__ is Tensor and a._base is not None:  # (tracers' views are followed by their trace)
            refresh_view(a)
    node = Node(prim, args, attrs, out)
    if anomaly:
        node.where = user_frame()
    out._node = node
    out._requires_grad = True


def _needs_grad(prim: Primitive, args: tuple) -> bool:
    """Whether an input through which gradients flow requires grad (inputs the primitive never
    differentiates, such as ``stop_gradient``'s, do not count)."""
    skip = prim.nondiff_inputs
    for i, a in enumerate(args):
        if isinstance(a, Tensor) and a._requires_grad and i not in skip:
            return True
    return False


# -- bind ----------------------------------------------------------------------------------------------
def bind(prim: Primitive, *args: Any, **attrs: Any) -> Any:
    """Apply primitive `prim` to `args` (tensors and Python scalars) under the active transforms."""
    st = STATE.get()
    if st.traces:
        trace = top_trace(args)
        if trace is None:
            trace = _capturing(st.traces, prim, args)
        if trace is not None:
            out = trace.process(prim, args, attrs)
            if st.grad and _needs_grad(prim, args):
                record(prim, args, attrs, out, st.anomaly)
            return out
    out = eager(prim, args, attrs)
    if st.grad and _needs_grad(prim, args):
        record(prim, args, attrs, out, st.anomaly)
    if st.anomaly:
        check_finite(prim, out, args, "forward")
    return out


def eager(prim: Primitive, args: tuple, attrs: dict) -> Tensor:
    """Run `prim` on concrete tensors with the backend kernel and wrap the result."""
    device = None
    arrays = []
    for a in args:
        if isinstance(a, Tensor):
            if device is None:
                device = a._device
            elif a._device != device:
                raise DeviceError(prim.name, f"expected all tensors on one device, got {device} and "
                                  f"{a._device}", args)
            arrays.append(a._data)
        else:
            arrays.append(a)
    if device is None:
        from .device import as_device
        device = as_device(attrs.pop("device", None)) if "device" in attrs else as_device(None)
    kernel = device.backend.kernel(prim)
    try:
        data = kernel(*arrays, **attrs)
    except EmberError:
        raise
    except Exception as exc:  # a backend error becomes an EmberError naming the op and operands
        raise kernel_error(prim, args, attrs, exc) from exc
    if type(data) is not device.backend.array_type:  # NumPy ufuncs return scalars for 0-d operands
        data = device.backend.xp.asarray(data)
    out = Tensor._make(data, dtypes._BY_NP[data.dtype], device)
    if prim.view:
        src = args[0]
        out._vc = src._version_counter()
        out._base = (src, prim, attrs)
        out._base_node = src._node  # (the base's graph when the view was made: see refresh_view)
    return out


def kernel_error(prim: Primitive, args: tuple, attrs: dict, exc: Exception) -> EmberError:
    """Turn an exception raised inside a kernel into a ShapeError/EmberError with context."""
    detail = f"{exc}"
    if attrs:
        detail += f" (attributes: {', '.join(f'{k}={v!r}' for k, v in attrs.items())})"
    cls = ShapeError if isinstance(exc, ValueError) else EmberError
    return cls(prim.name, detail, tuple(a for a in args if isinstance(a, Tensor)))


def check_finite(prim: Primitive, out: Any, args: tuple, phase: str) -> None:
    """Anomaly mode: raise if `out` holds NaN or Inf, naming the op, its inputs and where it was made."""
    import numpy as np

    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if not isinstance(o, Tensor) or isinstance(o, Tracer) or not (o._dtype.is_floating_point
                                                                      or o._dtype.is_complex):
            continue
        data = np.asarray(o._device.backend.to_numpy(o._data))
        if np.isfinite(data).all():
            continue
        stats = []
        for a in args:
            if isinstance(a, Tensor) and not isinstance(a, Tracer):
                x = np.asarray(a._device.backend.to_numpy(a._data)).astype(np.float64)
                if x.size:
                    stats.append(f"{describe(a)} min={np.nanmin(x):.4g} max={np.nanmax(x):.4g} "
                                 f"nan={int(np.isnan(x).sum())}")
        detail = (f"{phase} produced {int(np.isnan(data).sum())} NaN and {int(np.isinf(data).sum())} Inf "
                  f"values in a tensor of shape {tuple(data.shape)}")
        if stats:
            detail += "\n  inputs: " + "; ".join(stats)
        raise AnomalyError(prim.name, detail)
