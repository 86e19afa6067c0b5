"""Batching: a vmap interpreter that applies each primitive's batching rule."""
from __future__ import annotations

from typing import Any, Callable

from .._core import pytree
from .._core.dispatch import STATE, Trace, bind, new_trace, state_changed
from .._core.errors import EmberError, ShapeError, TraceError
from .._core.inplace import FollowsViews
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


class BatchTrace(FollowsViews, Trace):
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
                self.fresh(a)
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
        if bdim is None:
            return out
        result = self.wrap(out, bdim)
        if prim.view and isinstance(args[0], BatchTracer) and args[0]._trace is self:
            self.note_view(result, args[0], prim, attrs)  # (updates through it reach args[0], and back)
        return result

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
        """`value` as seen outside vmap, its batch dimension moved to `out_dim`. An output that does not
        depend on the batch is broadcast to it, or, with ``out_dim=None``, returned as it is (a batched
        output with ``out_dim=None`` is an error)."""
        if not isinstance(value, Tensor):
            return value
        batched = isinstance(value, BatchTracer) and value._trace is self
        if out_dim is None:
            if batched:
                raise EmberError("vmap", "out_dims=None requires an output that does not depend on the "
                                 f"batch, but this output (per-element shape {tuple(value.shape)}) is "
                                 "batched")
            return value
        if batched:
            val, bdim = value.val, value.bdim
        else:
            val = reshape(value, (1,) + tuple(value.shape))
            val, bdim = broadcast_to(val, (self.size,) + tuple(value.shape)), 0
        return moveaxis(val, bdim, normalize_axis(out_dim, val.ndim, "vmap"))


def _is_dim(d: Any) -> bool:
    return d is None or (isinstance(d, int) and not isinstance(d, bool))


def _match_prefix(dims: Any, tree: Any, what: str, where: str) -> list:
    """One dim per leaf of `tree`, from `dims`: an int or None (for every leaf below), or a tuple, list or
    dict with the structure of `tree` down to where it holds ints or None (a pytree prefix of `tree`, as
    in ``torch.func.vmap``)."""
    if _is_dim(dims):
        return [dims] * len(pytree.flatten(tree)[0])
    if isinstance(dims, (tuple, list)) and isinstance(tree, (tuple, list)):
        if len(dims) != len(tree):
            raise ShapeError("vmap", f"{what} {dims!r} does not match the structure of {where}: it has "
                             f"{len(dims)} entries but {where} has {len(tree)}")
        return [d for sub, t in zip(dims, tree) for d in _match_prefix(sub, t, what, where)]
    if isinstance(dims, dict) and isinstance(tree, dict):
        if set(dims) != set(tree):
            raise ShapeError("vmap", f"{what} {dims!r} does not match the structure of {where}: its keys are "
                             f"{sorted(map(str, dims))} but {where} has keys {sorted(map(str, tree))}")
        return [d for k in tree for d in _match_prefix(dims[k], tree[k], what, where)]
    raise ShapeError("vmap", f"{what} {dims!r} does not match the structure of {where} "
                     f"({type(tree).__name__}); use an int, None, or a tuple/list/dict with its structure")


def _in_dims(in_dims: Any, args: tuple) -> list:
    """The in_dims of each argument, as a flat list of one dim per leaf of that argument."""
    if _is_dim(in_dims):
        return [_match_prefix(in_dims, a, "in_dims", f"argument {i}") for i, a in enumerate(args)]
    if not isinstance(in_dims, (tuple, list)):
        raise ShapeError("vmap", f"in_dims must be an int, None, or a tuple with one entry per argument "
                         f"(each a pytree prefix of its argument), got {type(in_dims).__name__}")
    if len(in_dims) != len(args):
        raise ShapeError("vmap", f"in_dims has {len(in_dims)} entries but the function got {len(args)} "
                         "positional arguments")
    return [_match_prefix(d, a, "in_dims", f"argument {i}") for i, (d, a) in enumerate(zip(in_dims, args))]


def _out_dims(out_dims: Any, out: Any, n_leaves: int) -> list:
    """One out_dim per output leaf: `out_dims` is a pytree prefix of the output (or, as before, a flat
    sequence with one entry per output leaf)."""
    try:
        return _match_prefix(out_dims, out, "out_dims", "the output")
    except ShapeError:
        if isinstance(out_dims, (tuple, list)) and len(out_dims) == n_leaves and all(map(_is_dim, out_dims)):
            return list(out_dims)
        raise


def _batch_dim(leaf: Any, d: int, i: int) -> int:
    """The non-negative batch dimension `d` of a leaf of argument `i`; ShapeError if it has no such dim."""
    if not isinstance(leaf, Tensor):
        raise ShapeError("vmap", f"in_dim={d} for argument {i}, but that argument (or a leaf of it) is a "
                         f"{type(leaf).__name__}, not a tensor; use in_dims=None for it")
    shape = tuple(leaf.shape)
    if not -len(shape) <= d < len(shape):
        raise ShapeError("vmap", f"in_dim={d} for argument {i}, but that argument is a tensor of shape "
                         f"{shape} ({len(shape)} dimensions), so in_dim must be in [{-len(shape)}, "
                         f"{len(shape)}){' (a 0-d tensor cannot be mapped over)' if not shape else ''}",
                         (leaf,))
    return d % len(shape)


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
        func: function of tensors (pytrees allowed). Keyword arguments of the returned function are
            passed to `func` as they are, unbatched.
        in_dims: one int (or None) for every argument, or a tuple with one entry per positional argument;
            an entry is an int (the batch dimension of every tensor in that argument), None (unbatched),
            or a tuple/list/dict matching the argument's structure down to ints or None (a pytree
            prefix, e.g. ``in_dims=((0, None),)`` for one argument that is a pair).
        out_dims: where the batch dimension goes in each output: an int, None, or a pytree prefix of the
            output (e.g. ``{"s": 1, "t": 0}`` for a dict output). None returns an output that does not
            depend on the batch as it is; a batched output with out_dim None is an error.
        randomness: what random sampling inside `func` does, as in ``torch.func.vmap``: ``"error"``
            (refuse it), ``"different"`` (each batch element draws its own numbers: one draw of the
            batch's size from the generator) or ``"same"`` (one draw shared by every element).

    Returns:
        A function that takes batched arguments and returns batched outputs.

    Raises:
        ShapeError: in_dims or out_dims that do not match the structure of the arguments or the output,
            an in_dim out of range for its argument (a 0-d tensor cannot be mapped), or mapped sizes that
            differ.

    Example:
        >>> import ember
        >>> from ember.func import vmap
        >>> vmap(lambda v: (v * v).sum())(ember.ones(3, 2)).tolist()
        [2.0, 2.0, 2.0]
    """
    def batched(*args, **kwargs):
        if randomness not in ("error", "same", "different"):
            raise EmberError("vmap", f"randomness must be 'error', 'same' or 'different', got {randomness!r}")
        size = None
        flat_args = []  # (leaves, structure, batch dim of each leaf or None)
        for i, (arg, dims) in enumerate(zip(args, _in_dims(in_dims, args))):
            leaves, td = pytree.flatten(arg)
            leaf_dims = [None if d is None else _batch_dim(x, d, i) for x, d in zip(leaves, dims)]
            flat_args.append((leaves, td, leaf_dims))
            for leaf, d in zip(leaves, leaf_dims):
                if d is None:
                    continue
                n = leaf.shape[d]
                if size is not None and n != size:
                    raise ShapeError("vmap", f"inputs have different sizes along the mapped dimensions: "
                                     f"{size} and {n}", (leaf,))
                size = n
        if size is None:
            raise ShapeError("vmap", "at least one argument must be mapped (in_dims are all None)")
        trace = BatchTrace(size, randomness)
        batched_args = []  # (the caller's tensor, its tracer, the tracer's value before the call, dim)
        with new_trace(trace):
            wrapped = []
            for leaves, td, leaf_dims in flat_args:
                values = []
                for x, d in zip(leaves, leaf_dims):
                    if d is None:
                        values.append(x)
                        continue
                    values.append(trace.wrap(x, d))
                    batched_args.append((x, values[-1], values[-1].val, d))
                wrapped.append(pytree.unflatten(td, values))
            out = func(*wrapped, **kwargs)
        _write_back(trace, batched_args)
        o_leaves, o_def = pytree.flatten(out)
        o_dims = _out_dims(out_dims, out, len(o_leaves))
        return pytree.unflatten(o_def, [trace.unwrap(o, d) for o, d in zip(o_leaves, o_dims)])

    return batched

