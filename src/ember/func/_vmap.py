"""Batching: a vmap interpreter that applies each primitive's batching rule."""
from __future__ import annotations

from typing import Any, Callable

from .._core import pytree
from .._core.dispatch import STATE, Trace, bind, new_trace, state_changed
from .._core.errors import EmberError, ShapeError, TraceError
from .._core.primitives.movement import broadcast_to, moveaxis, reshape
from .._core.primitives.reduce import normalize_axis
from .._core.tensor import Tensor, Tracer


class BatchTracer(Tracer):
    """A value with an extra batch dimension `bdim` hidden from the function being vmapped."""

    __slots__ = ("val", "bdim")

    @property
    def shape(self):
        s = tuple(self.val.shape)
        return s[:self.bdim] + s[self.bdim + 1:]

    def _concrete(self):
        raise TraceError("vmap", "a batched value has no single concrete value inside vmap (e.g. .item(), "
                         "bool() or Python control flow on it); use ember.where instead", (self,))


class BatchTrace(Trace):
    """Interprets primitives on BatchTracers with their batching rules."""

    handles_effects = True

    def __init__(self, size: int, randomness: str = "error"):
        super().__init__()
        self.size = size
        self.randomness = randomness

    def wrap(self, val: Tensor, bdim: int) -> BatchTracer:
        t = BatchTracer._make(None, val.dtype, val.device)
        t._trace = self
        t.val = val
        t.bdim = bdim
        return t

    def process(self, prim, args: tuple, attrs: dict) -> Any:
        vals, bdims = [], []
        for a in args:
            if isinstance(a, BatchTracer) and a._trace is self:
                vals.append(a.val)
                bdims.append(a.bdim)
            else:
                vals.append(a)
                bdims.append(None)
        if prim.effect == "random":
            return self._draw(prim, vals, bdims, attrs)
        if prim.batch is None:
            raise TraceError(prim.name, "this primitive has no batching rule, so it cannot be used under "
                             "vmap")
        out, bdim = prim.batch(vals, bdims, **attrs)
        return out if bdim is None else self.wrap(out, bdim)

    def _draw(self, prim, vals: list, bdims: list, attrs: dict) -> Any:
        """A random primitive: drawn once, unbatched, with ``randomness="same"`` or ``"different"`` (the
        sampling function has already widened a ``"different"`` draw by the batch sizes, see
        ``effects.batch_draws``); refused with ``"error"`` and when an operand is batched."""
        if self.randomness == "error":
            raise TraceError(prim.name, "random sampling inside vmap needs randomness='different' (each "
                             "batch element draws its own numbers) or 'same' (all share one draw); with "
                             "the default 'error' it is refused")
        if any(d is not None for d in bdims):
            raise TraceError(prim.name, "sampling from batched parameters inside vmap is not supported", ())
        traces = STATE.get().traces
        outer = traces[:traces.index(self)] if self in traces else traces
        with state_changed(traces=outer):
            return bind(prim, *vals, **attrs)

    def unwrap(self, value: Any, out_dim: int | None) -> Any:
        if not isinstance(value, Tensor):
            return value
        if isinstance(value, BatchTracer) and value._trace is self:
            val, bdim = value.val, value.bdim
        else:
            val = reshape(value, (1,) + tuple(value.shape))
            val, bdim = broadcast_to(val, (self.size,) + tuple(value.shape)), 0
        if out_dim is None:
            raise EmberError("vmap", "out_dims=None requires an output that does not depend on the batch")
        return moveaxis(val, bdim, normalize_axis(out_dim, val.ndim, "vmap"))


def _per_arg(dims, n: int, what: str) -> tuple:
    if isinstance(dims, (int, type(None))):
        return (dims,) * n
    dims = tuple(dims)
    if len(dims) != n:
        raise ShapeError("vmap", f"{what} has {len(dims)} entries but the function got {n} arguments")
    return dims


def _write_back(trace: BatchTrace, batched_args: list) -> None:
    """Write into the caller's tensors the batched arguments the function updated in place
    (``a.add_(v)`` on an argument), as eager calls on each slice would have, and as ``torch.func.vmap``
    does."""
    for x, tracer, before, d in batched_args:
        if tracer.val is not before and isinstance(x, Tensor):
            x.copy_(trace.unwrap(tracer, d))


def vmap(func: Callable, in_dims=0, out_dims=0, randomness: str = "error", *, chunk_size=None) -> Callable:
    """Vectorise `func` over a batch dimension of its inputs.

    Args:
        func: function of tensors (pytrees allowed).
        in_dims: batch dimension of each argument (int or None for unbatched), or one int for all.
        out_dims: where the batch dimension goes in each output.
        randomness: what random sampling inside `func` does, as in ``torch.func.vmap``: ``"error"``
            (refuse it), ``"different"`` (each batch element draws its own numbers: one draw of the
            batch's size from the generator) or ``"same"`` (one draw shared by every element).

    Returns:
        A function that takes batched arguments and returns batched outputs.

    Example:
        >>> import ember
        >>> from ember.func import vmap
        >>> vmap(lambda v: (v * v).sum())(ember.ones(3, 2)).tolist()
        [2.0, 2.0, 2.0]
    """
    def batched(*args):
        dims = _per_arg(in_dims, len(args), "in_dims")
        size = None
        flat_args = []
        for arg, d in zip(args, dims):
            leaves, td = pytree.flatten(arg)
            flat_args.append((leaves, td, d))
            if d is None:
                continue
            for leaf in leaves:
                n = leaf.shape[normalize_axis(d, leaf.ndim, "vmap", leaf)]
                if size is not None and n != size:
                    raise ShapeError("vmap", f"inputs have different sizes along the mapped dimensions: "
                                     f"{size} and {n}", (leaf,))
                size = n
        if size is None:
            raise ShapeError("vmap", "at least one argument must be mapped (in_dims are all None)")
        if randomness not in ("error", "same", "different"):
            raise EmberError("vmap", f"randomness must be 'error', 'same' or 'different', got {randomness!r}")
        trace = BatchTrace(size, randomness)
        batched_args = []  # (the caller's tensor, its tracer, the tracer's value before the call, dim)
        with new_trace(trace):
            wrapped = []
            for leaves, td, d in flat_args:
                if d is None:
                    wrapped.append(pytree.unflatten(td, leaves))
                    continue
                tracers = []
                for x in leaves:
                    tracers.append(trace.wrap(x, normalize_axis(d, x.ndim, "vmap")))
                    batched_args.append((x, tracers[-1], tracers[-1].val, d))
                wrapped.append(pytree.unflatten(td, tracers))
            out = func(*wrapped)
        _write_back(trace, batched_args)
        o_leaves, o_def = pytree.flatten(out)
        o_dims = _per_arg(out_dims, len(o_leaves), "out_dims") if not isinstance(out_dims, int) else \
            (out_dims,) * len(o_leaves)
        return pytree.unflatten(o_def, [trace.unwrap(o, d) for o, d in zip(o_leaves, o_dims)])

    return batched

