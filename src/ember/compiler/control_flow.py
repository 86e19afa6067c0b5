"""Structured control flow: ``cond``, ``while_loop`` and ``scan`` as primitives holding sub-graphs.

Each public function traces its Python callables (branches, loop condition and body) into closed
:class:`~ember.compiler.ir.SubGraph` s with a jit trace, then binds one primitive whose attributes hold
them. Tensors a callable captures from outside (a module's parameters, values of an enclosing transform)
become explicit operands, so gradients, vmap and jit see them like any other input.

A node has one output in this IR, so each primitive returns its results *packed*: every result
flattened, cast to one lossless dtype and concatenated; the public function unpacks them with
differentiable ops. The rules of every transform are written with these same public functions and
ember ops: the VJP of ``cond`` is a ``cond`` of the branches' VJPs, the VJP of ``scan`` is a reverse
``scan``, so they differentiate again.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from .._core import dtypes, pytree
from .._core.creation import as_tensor, zeros, zeros_like
from .._core.device import CPU_DEVICE, as_device
from .._core.dispatch import STATE, bind, new_trace, state_changed
from .._core.errors import AutogradError, DTypeError, EmberError, ShapeError, TraceError
from .._core.primitive import Primitive
from .._core.primitives.elementwise import clone, convert, where
from .._core.primitives.movement import broadcast_to, cat, moveaxis, narrow, reshape
from .._core.primitives.reduce import any as reduce_any
from .._core.tensor import Tensor, Tracer
from ..func import jvp as func_jvp
from ..func import vjp as func_vjp
from ..func import vmap
from . import executor, passes
from .ir import Graph, Literal, SubGraph, Value, verify
from .trace import GraphTracer, JitTrace, _end_draws

__all__ = ["cond", "while_loop", "scan"]

Aval = tuple  # (shape, dtype)


# -- tracing callables into closed sub-graphs ---------------------------------------------------------
class _BodyTrace(JitTrace):
    """A jit trace for a branch or body: captured tensors are recorded (in `captures`, shared by the
    callables of one primitive) and computed on with stand-ins, never touching outer transforms."""

    # Ops on captured tensors alone are not recorded here: they run once outside (hoisted out of loops)
    # and their results are captured.
    captures_all = False

    def __init__(self, captures: dict[int, Tensor], op: str):
        super().__init__()
        self.captures = captures
        self.op = op  # the control-flow primitive whose callable this traces (for error messages)

    def process(self, prim, args: tuple, attrs: dict) -> Any:
        if prim.effect == "random":
            # A body is traced once into a sub-graph that holds the draw's generator state as a constant:
            # every iteration, branch run and compiled call would replay the same numbers. The refused
            # draw hands back the blocks it reserved, so the generator is left as it was.
            _end_draws(self)
            raise TraceError(prim.name, f"random numbers (ember.rand, randn, dropout…) cannot be drawn "
                             f"inside {_BODY_OF[self.op]}: it is traced once into a sub-graph, which would "
                             f"replay the same numbers at every run. {_DRAW_OUTSIDE[self.op]}")
        with state_changed(traces=(self,)):  # the stand-ins are concrete: no outer transform sees them
            return super().process(prim, args, attrs)

    def _operand(self, a: Any) -> tuple[Any, Any]:
        if isinstance(a, GraphTracer) and a._trace is self:
            self._fresh(a)  # a view of a value updated in place since: recomputed, as eagerly
            return a.value, a.val
        if isinstance(a, Tensor):
            entry = self.constants.get(id(a))
            if entry is None:
                entry = self.constants[id(a)] = (self.new_value(a), _standin(a))
                self.captures.setdefault(id(a), a)
            return entry
        return Literal(a), a

    def check_write(self, x: Tensor, value: Any, name: str) -> None:
        """Refuse the in-place update ``x <- value`` of a tensor that is not a value of this trace.

        The callable is traced once and its sub-graph runs at every iteration (or not at all: a branch
        not taken), so a write into a tensor from outside would happen once, while tracing, instead.
        A tensor made inside the callable from constants may be updated with constants (that happens
        once, at tracing, or in an enclosing jit, as every run would do it), but not with a value computed
        from the arguments: a plain tensor cannot stand for a value of the sub-graph.
        """
        base = x
        while getattr(base, "_base", None) is not None:  # a view: the tensor whose storage it shares
            base = base._base[0]
        where = _BODY_OF[self.op]
        if self.created.get(id(base)) is not base:
            raise TraceError(name, f"a tensor captured from outside {where} cannot be updated in place "
                             "there: the function is traced once into a sub-graph, which cannot write to "
                             "outer tensors. Pass the tensor in (as an operand or part of the carry) and "
                             "return its new value, or compute the result out of place (y = x + v)", (x,))
        if isinstance(value, GraphTracer) and value._trace is self:
            raise TraceError(name, f"a tensor made inside {where} from constants cannot be updated in place "
                             "with a value computed from the function's arguments (it cannot stand for a "
                             "value of the sub-graph); compute the new value out of place (y = x + v) and "
                             "use that", (x, value))


# The traced callables of each primitive, as messages name them (see _BodyTrace), and what a random draw
# inside one is refused with (see _BodyTrace.process).
_BODY_OF = {"cond": "the branches of ember.cond",
            "while_loop": "the cond_fun or body_fun of ember.while_loop",
            "scan": "the body of ember.scan"}
_DRAW_OUTSIDE = {
    "cond": "Draw the random numbers outside ember.cond and pass them in as operands",
    "while_loop": "Draw the random numbers outside ember.while_loop and pass them in as part of the carry "
                  "(e.g. a tensor with one row per iteration, indexed by a step counter)",
    "scan": "Draw the random numbers outside ember.scan and pass them in as operands: a tensor with a "
            "leading axis of the scan length, in xs (each step gets its own slice)",
}


def _standin(a: Tensor) -> Tensor:
    if isinstance(a, Tracer):
        return zeros(tuple(a.shape), dtype=a.dtype, device=a.device)
    return a.detach()


class _Traced:
    """One traced callable: its trace, input values, output values and output structure."""

    def __init__(self, trace: _BodyTrace, inputs: list[Value], outputs: list[Value], out_tree):
        self.trace, self.inputs, self.outputs, self.out_tree = trace, inputs, outputs, out_tree

    def avals(self) -> list[Aval]:
        return [(v.shape, v.dtype) for v in self.outputs]


def _trace(fn: Callable, avals: Sequence[Aval], captures: dict, op: str, device=None) -> _Traced:
    """Trace ``fn(*leaves)`` on zeros of the given shapes and dtypes."""
    trace = _BodyTrace(captures, op)
    stand = [zeros(tuple(shape), dtype=dtype, device=device) for shape, dtype in avals]
    args = [trace._wrap(z, trace.new_value(z)) for z in stand]
    # (taken now: an in-place update of an argument rebinds its tracer to the op's result, and the body
    # then works on that local copy)
    inputs = [a.value for a in args]
    with new_trace(trace):
        result = fn(*args)
    leaves, tree = pytree.flatten(result)
    outputs = []
    for o in leaves:
        if not isinstance(o, Tensor):
            raise DTypeError(op, f"the traced function returned a {type(o).__name__}; return tensors "
                             "(pytrees of tensors) only")
        outputs.append(trace._operand(o)[0])
    return _Traced(trace, inputs, outputs, tree)


def _close(traced: _Traced, captures: list[Tensor]) -> SubGraph:
    """The traced callable as a graph of (*captures, *leaves), every capture an input, optimised."""
    t = traced.trace
    cap_values = [t.constants[id(c)][0] if id(c) in t.constants else t.new_value(c) for c in captures]
    g = Graph(cap_values + traced.inputs, t.nodes, traced.outputs)
    for fn in _SUB_PASSES:  # the cheap clean-ups only: sub-graphs are built on every eager call
        g = fn(g)
    verify(g)
    return SubGraph(g.inputs, g.nodes, g.outputs)


_SUB_PASSES = (passes.simplify, passes.cse, passes.dce)


def _avals(values: Sequence[Any]) -> list[Aval]:
    return [(tuple(v.shape), v.dtype) for v in values]


def _check_same(op: str, what: str, got: list[Aval], want: list[Aval], got_tree=None, want_tree=None):
    if got_tree is not None and got_tree != want_tree:
        raise ShapeError(op, f"{what}: the structures differ ({got_tree} vs {want_tree})")
    if len(got) != len(want):
        raise ShapeError(op, f"{what}: {len(got)} tensors vs {len(want)}")
    for i, ((s1, d1), (s2, d2)) in enumerate(zip(got, want)):
        if tuple(s1) != tuple(s2) or d1 is not d2:
            raise ShapeError(op, f"{what}: leaf {i} is {d1.name}{list(s1)} but must be {d2.name}{list(s2)}")


def _as_leaves(tree: Any, op: str) -> tuple[list[Tensor], Any]:
    leaves, td = pytree.flatten(tree)
    out = []
    for x in leaves:
        if isinstance(x, Tensor):
            out.append(x)
        elif isinstance(x, (bool, int, float, complex)):
            out.append(as_tensor(x))
        else:
            raise DTypeError(op, f"expected tensors (pytrees of tensors), got {type(x).__name__}")
    return out, td


def _is_float(x: Any) -> bool:
    dt = x[1] if isinstance(x, tuple) else (x if isinstance(x, dtypes.DType) else x.dtype)
    return dt.is_floating_point or dt.is_complex


def _wants_grad(x: Any) -> bool:
    return isinstance(x, Tensor) and x._requires_grad and _is_float(x)


def _device_of(leaves: Sequence[Tensor]):
    return leaves[0].device if leaves else None


# -- packing several results into the one output of a node ---------------------------------------------
def _pack_dtype(avals: Sequence[Aval]) -> dtypes.DType:
    """One dtype that holds every result exactly (ints up to 2**53 when mixed with floats)."""
    kinds = {d for _, d in avals}
    if len(kinds) == 1:
        return next(iter(kinds))
    if all(d.kind in (dtypes._BOOL, dtypes._INT) for d in kinds):
        return dtypes.int64
    if any(d.is_complex for d in kinds):
        return dtypes.complex128
    return dtypes.float64


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _packed_aval(avals: Sequence[Aval]) -> Aval:
    return (sum(_numel(s) for s, _ in avals),), _pack_dtype(avals)


def _pack_arrays(xp, arrays: Sequence[Any], avals: Sequence[Aval]) -> Any:
    dt = _pack_dtype(avals).np
    if not arrays:
        return xp.zeros((0,), dt)
    return xp.concatenate([xp.reshape(a, (-1,)).astype(dt, copy=False) for a in arrays])


def _pack(leaves: Sequence[Tensor], avals: Sequence[Aval]) -> Tensor:
    """Ember-op packing (differentiable), as the kernels pack."""
    dt = _pack_dtype(avals)
    return cat([convert(reshape(x, (-1,)), dt) for x in leaves], 0)


def _pack_batched(leaves: Sequence[Tensor], avals: Sequence[Aval], size: int) -> Tensor:
    """Packing of results batched along dim 0: ``(size, packed)``, so the batch dim stays 0."""
    dt = _pack_dtype(avals)
    return cat([convert(reshape(x, (size, -1)), dt) for x in leaves], 1)


def _unpack(packed: Tensor, avals: Sequence[Aval]) -> list[Tensor]:
    out, start = [], 0
    for shape, dt in avals:
        n = _numel(shape)
        out.append(convert(reshape(narrow(packed, 0, start, n), tuple(shape)), dt))
        start += n
    return out


def _abstract(avals: Sequence[Aval]) -> Aval:
    return _packed_aval(avals)


# -- running a sub-graph inside a kernel -----------------------------------------------------------------
def _run(xp, graph: Graph, arrays: Sequence[Any]) -> list[Any]:
    device = CPU_DEVICE if xp.__name__ == "numpy" else as_device("cuda")
    ts = [Tensor._make(a, dtypes.from_numpy(a.dtype), device) for a in arrays]
    with state_changed(grad=False, traces=()):  # a kernel computes on concrete arrays, seen by no transform
        return [o._data for o in executor.run(graph, ts)]


def _call(graph: Graph, args: Sequence[Any]) -> list[Tensor]:
    """Run `graph` on tensors through ``bind`` (so the active transforms see every op)."""
    return executor.run(graph, list(args))


def _replace(base: Sequence[Any], positions: Sequence[int], values: Sequence[Any]) -> list[Any]:
    out = list(base)
    for i, v in zip(positions, values):
        out[i] = v
    return out


def _batch_size(values: Sequence[Any], bdims: Sequence[int | None]) -> int:
    return next(v.shape[d] for v, d in zip(values, bdims) if d is not None)


def _to_front(x: Tensor, d: int | None, size: int, force: bool) -> Tensor:
    """`x` with its batch dim at 0; broadcast there when unbatched and `force`."""
    if d is not None:
        return moveaxis(x, d, 0)
    if not force:
        return x
    return broadcast_to(reshape(x, (1,) + tuple(x.shape)), (size,) + tuple(x.shape))


def _vmapped(graph: Graph, dims: Sequence[int | None], size: int) -> Callable:
    """``fn(*args)`` running `graph` over a batch: every result batched along dim 0."""
    def fn(*args):
        if all(d is None for d in dims):
            return [_to_front(o, None, size, True) for o in _call(graph, args)]
        return vmap(lambda *a: _call(graph, a), in_dims=tuple(dims))(*args)
    return fn


# == cond ==================================================================================================
def _cond_impl(xp, pred, *arrays, true_branch, false_branch):
    graph = true_branch if bool(pred) else false_branch
    return _pack_arrays(xp, _run(xp, graph, arrays), _avals(graph.outputs))


def _cond_abstract(pred, *avals, true_branch, false_branch):
    return _abstract(_avals(true_branch.outputs))


def _cond_apply(pred: Tensor, fns: tuple[Callable, Callable], leaves: list[Tensor], op: str = "cond"):
    """Trace both branches of ``fn(*leaves)``, bind ``cond`` and unpack: (results, output structure)."""
    captures: dict = {}
    avals = _avals(leaves)
    traced = [_trace(fn, avals, captures, op, _device_of(leaves)) for fn in fns]
    _check_same(op, "true_fn and false_fn must return the same types", traced[1].avals(), traced[0].avals(),
                traced[1].out_tree, traced[0].out_tree)
    caps = list(captures.values())
    gt, gf = (_close(t, caps) for t in traced)
    packed = bind(cond_p, pred, *caps, *leaves, true_branch=gt, false_branch=gf)
    return _unpack(packed, traced[0].avals()), traced[0].out_tree


def _cond_vjp(g, out, pred, *ops, true_branch, false_branch):
    avals = _avals(true_branch.outputs)
    diff = [i for i, x in enumerate(ops) if _wants_grad(x)]
    fout = [j for j, a in enumerate(avals) if _is_float(a)]
    if not diff or not fout:
        return (None,) * (1 + len(ops))
    cts = _unpack(g, avals)
    n = len(ops)

    def branch_vjp(graph):
        def fn(*args):
            xs, cs = args[:n], args[n:]

            def f(*d):
                outs = _call(graph, _replace(xs, diff, d))
                return [outs[j] for j in fout]

            _, back = func_vjp(f, *[xs[i] for i in diff])
            return list(back(list(cs)))
        return fn

    res, _ = _cond_apply(pred, (branch_vjp(true_branch), branch_vjp(false_branch)),
                         list(ops) + [cts[j] for j in fout])
    return (None, *_replace([None] * n, diff, res))


def _jvp_of(graph: Graph, n: int, diff: list[int]) -> Callable:
    """``fn(*primals, *tangents_of_diff)`` -> results then their tangents."""
    def fn(*args):
        xs, ts = args[:n], args[n:]
        outs, touts = func_jvp(lambda *d: _call(graph, _replace(xs, diff, d)), tuple(xs[i] for i in diff),
                               tuple(ts))
        return list(outs) + list(touts)
    return fn


def _cond_jvp(primals, tangents, true_branch, false_branch):
    pred, ops, tans = primals[0], primals[1:], tangents[1:]
    avals = _avals(true_branch.outputs)
    diff = [i for i, (x, t) in enumerate(zip(ops, tans)) if t is not None and _is_float(x)]
    n, k = len(ops), len(avals)
    fns = (_jvp_of(true_branch, n, diff), _jvp_of(false_branch, n, diff))
    res, _ = _cond_apply(pred, fns, list(ops) + [tans[i] for i in diff])
    return _pack(res[:k], avals), _pack(res[k:], avals)


def _cond_batch(values, bdims, true_branch, false_branch):
    size = _batch_size(values, bdims)
    pred, ops, dims = values[0], list(values[1:]), list(bdims[1:])
    avals = _avals(true_branch.outputs)
    fns = (_vmapped(true_branch, dims, size), _vmapped(false_branch, dims, size))
    if bdims[0] is None:
        res, _ = _cond_apply(pred, fns, ops)
    else:  # a batched predicate: both branches run, the predicate selects per element
        p = moveaxis(pred, bdims[0], 0)
        pairs = zip(fns[0](*ops), fns[1](*ops))
        res = [where(reshape(p, (size,) + (1,) * (a.ndim - 1)), a, b) for a, b in pairs]
    return _pack_batched(res, avals, size), 0


cond_p = Primitive("cond", _cond_impl, abstract=_cond_abstract, vjp=_cond_vjp, jvp=_cond_jvp,
                   batch=_cond_batch, nondiff_inputs=(0,))


def _predicate(pred: Any, op: str) -> Any:
    if not isinstance(pred, Tensor):
        return bool(pred)
    if pred.numel() != 1:
        raise ShapeError(op, f"the predicate must be a one-element tensor, got shape {tuple(pred.shape)}",
                         (pred,))
    pred = reshape(pred, ())
    return pred if pred.dtype is dtypes.bool_ else pred != 0


def cond(pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
    """``true_fn(*operands)`` if `pred` else ``false_fn(*operands)``, as one traceable primitive.

    Both branches are traced into sub-graphs (they must return the same structure, shapes and dtypes);
    only the taken one runs. Under ``vmap`` with a batched predicate both run and the predicate selects.
    Reverse mode differentiates the taken branch. Random draws inside a branch raise
    :class:`~ember.errors.TraceError`: draw outside and pass the numbers in as operands. The operands are
    values: an in-place update of one inside a branch (``x.mul_(2)``) acts on the branch's own copy, the
    caller's tensor is left as it was; updating a tensor the branch captures from outside raises
    :class:`~ember.errors.TraceError`.

    Args:
        pred: a one-element tensor (nonzero is true) or a Python bool (then the branch is simply called,
            on copies of the operands).
        true_fn, false_fn: functions of the operands returning a pytree of tensors.
        operands: pytrees of tensors passed to the branch.

    Returns:
        The taken branch's result.

    Example:
        >>> import ember
        >>> x = ember.tensor([1.0, 2.0])
        >>> ember.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x).tolist()
        [2.0, 4.0]
    """
    pred = _predicate(pred, "cond")
    if isinstance(pred, bool):  # on copies: the operands are values, as when the branches are traced
        return (true_fn if pred else false_fn)(*_copies(operands))
    leaves, tree = _as_leaves(operands, "cond")

    def flat(fn):
        return lambda *ls: fn(*pytree.unflatten(tree, ls))

    res, out_tree = _cond_apply(pred, (flat(true_fn), flat(false_fn)), leaves)
    return pytree.unflatten(out_tree, res)


def _copies(tree: Any) -> Any:
    """`tree` with every tensor replaced by a copy (differentiable), so an in-place update of one stays
    local to the function it is passed to."""
    leaves, td = pytree.flatten(tree)
    return pytree.unflatten(td, [clone(x) if isinstance(x, Tensor) else x for x in leaves])


# == while_loop ============================================================================================
def _while_impl(xp, *arrays, cond_graph, body_graph, num_consts):
    consts, carry = list(arrays[:num_consts]), list(arrays[num_consts:])
    while bool(_run(xp, cond_graph, consts + carry)[0]):
        carry = _run(xp, body_graph, consts + carry)
    return _pack_arrays(xp, carry, _avals(body_graph.outputs))


def _while_abstract(*avals, cond_graph, body_graph, num_consts):
    return _abstract(_avals(body_graph.outputs))


def _bool_scalar(fn: Callable, op: str) -> Callable:
    def wrapped(*args):
        p = fn(*args)
        if not isinstance(p, Tensor) or p.numel() != 1:
            shape = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
            raise ShapeError(op, f"cond_fun must return a one-element tensor, got {shape}")
        p = reshape(p, ())
        return p if p.dtype is dtypes.bool_ else p != 0
    return wrapped


def _while_apply(cond_fn: Callable, body_fn: Callable, leaves: list[Tensor], tree=None,
                 op: str = "while_loop") -> list[Tensor]:
    captures: dict = {}
    avals = _avals(leaves)
    device = _device_of(leaves)
    tc = _trace(_bool_scalar(cond_fn, op), avals, captures, op, device)
    tb = _trace(body_fn, avals, captures, op, device)
    _check_same(op, "body_fun must return the carry's types", tb.avals(), avals,
                tb.out_tree if tree is not None else None, tree)
    caps = list(captures.values())
    packed = bind(while_p, *caps, *leaves, cond_graph=_close(tc, caps), body_graph=_close(tb, caps),
                  num_consts=len(caps))
    return _unpack(packed, avals)


def _while_vjp(g, out, *inputs, cond_graph, body_graph, num_consts):
    raise AutogradError("while_loop", "reverse-mode differentiation of while_loop is not supported: the "
                        "number of iterations is only known at run time. Use ember.scan with a fixed length "
                        "(masking finished steps), or forward mode (ember.func.jvp)")


def _while_jvp(primals, tangents, cond_graph, body_graph, num_consts):
    k = num_consts
    consts, carry, ctans = list(primals[:k]), list(primals[k:]), list(tangents[:k])
    kd = [i for i in range(k) if ctans[i] is not None and _is_float(consts[i])]
    cf = [j for j, x in enumerate(carry) if _is_float(x)]
    tc0 = [tangents[k + j] if tangents[k + j] is not None else zeros_like(carry[j]) for j in cf]
    n = len(carry)

    def cond_fn(*state):
        return _call(cond_graph, consts + list(state[:n]))[0]

    def body_fn(*state):
        c, tc = state[:n], state[n:]

        def f(*d):
            return _call(body_graph, _replace(consts, kd, d[:len(kd)]) + _replace(c, cf, d[len(kd):]))

        outs, touts = func_jvp(f, tuple([consts[i] for i in kd] + [c[j] for j in cf]),
                               tuple([ctans[i] for i in kd] + list(tc)))
        return list(outs) + [touts[j] for j in cf]

    res = _while_apply(cond_fn, body_fn, carry + tc0)
    avals = _avals(carry)
    tans = _replace([zeros_like(x) for x in carry], cf, res[n:])
    return _pack(res[:n], avals), _pack(tans, avals)


def _while_batch(values, bdims, cond_graph, body_graph, num_consts):
    size = _batch_size(values, bdims)
    k = num_consts
    consts = [_to_front(v, d, size, False) for v, d in zip(values[:k], bdims[:k])]
    dims = [None if d is None else 0 for d in bdims[:k]] + [0] * (len(values) - k)
    carry = [_to_front(v, d, size, True) for v, d in zip(values[k:], bdims[k:])]
    bcond, bbody = _vmapped(cond_graph, dims, size), _vmapped(body_graph, dims, size)

    def cond_fn(*c):
        return reduce_any(bcond(*consts, *c)[0])

    def body_fn(*c):  # finished elements keep their carry: the loop runs until every element is done
        p = bcond(*consts, *c)[0]
        new = bbody(*consts, *c)
        return [where(reshape(p, (size,) + (1,) * (a.ndim - 1)), a, b) for a, b in zip(new, c)]

    res = _while_apply(cond_fn, body_fn, carry)
    return _pack_batched(res, _avals(body_graph.outputs), size), 0


while_p = Primitive("while_loop", _while_impl, abstract=_while_abstract, vjp=_while_vjp, jvp=_while_jvp,
                    batch=_while_batch)


def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any) -> Any:
    """Repeat ``val = body_fun(val)`` while ``cond_fun(val)`` is true, as one traceable primitive.

    Both functions are traced into sub-graphs; `body_fun` must return the carry's structure, shapes and
    dtypes. Under ``vmap`` with a batched condition the loop runs until every element is done, and
    finished elements keep their value. Forward mode (``jvp``) works; reverse mode raises
    :class:`~ember.errors.AutogradError` (the trip count is unknown ahead), as in JAX: use :func:`scan`.
    Random draws inside either function raise :class:`~ember.errors.TraceError`: draw outside and pass
    the numbers in through the carry. An in-place update of the carry inside either function acts on that
    function's own copy (`init_val` is left as it was); updating a captured tensor raises
    :class:`~ember.errors.TraceError`.

    Args:
        cond_fun: carry -> one-element tensor (nonzero continues).
        body_fun: carry -> new carry.
        init_val: the initial carry, a pytree of tensors.

    Returns:
        The final carry.

    Example:
        >>> import ember
        >>> i, x = ember.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 2),
        ...                         (ember.tensor(0), ember.tensor(1.0)))
        >>> int(i), float(x)
        (5, 32.0)
    """
    leaves, tree = _as_leaves(init_val, "while_loop")

    def flat(fn):
        return lambda *ls: fn(pytree.unflatten(tree, ls))

    return pytree.unflatten(tree, _while_apply(flat(cond_fun), flat(body_fun), leaves, tree))


# == scan ==================================================================================================
def _scan_avals(body: Graph, length: int, num_carry: int, save_carries: bool) -> list[Aval]:
    outs = _avals(body.outputs)
    carry = outs[:num_carry]
    stacked = [((length,) + tuple(s), d) for s, d in outs[num_carry:]]
    saved = [((length,) + tuple(s), d) for s, d in carry] if save_carries else []
    return carry + stacked + saved


def _scan_impl(xp, *arrays, body, length, reverse, num_consts, num_carry, save_carries):
    k, nc = num_consts, num_carry
    consts, carry, xs = list(arrays[:k]), list(arrays[k:k + nc]), arrays[k + nc:]
    steps: list = [None] * length
    saved: list = [None] * length
    for t in (reversed(range(length)) if reverse else range(length)):
        saved[t] = carry
        outs = _run(xp, body, consts + carry + [x[t] for x in xs])
        carry, steps[t] = outs[:nc], outs[nc:]
    avals = _scan_avals(body, length, nc, save_carries)
    ny = len(body.outputs) - nc

    def stacked(rows: list, first: int, count: int) -> list:
        if not length:
            return [xp.zeros(avals[first + j][0], avals[first + j][1].np) for j in range(count)]
        return [xp.stack([r[j] for r in rows]) for j in range(count)]

    results = carry + stacked(steps, nc, ny) + (stacked(saved, nc + ny, nc) if save_carries else [])
    return _pack_arrays(xp, results, avals)


def _scan_abstract(*avals, body, length, reverse, num_consts, num_carry, save_carries):
    return _abstract(_scan_avals(body, length, num_carry, save_carries))


def _scan_trace(fn: Callable, carry: list[Tensor], xs: list[Tensor], op: str = "scan"):
    """Trace ``fn(*carry, *x_t) -> [*carry, *y_t]``: (body graph, captures, traced)."""
    captures: dict = {}
    avals = _avals(carry) + [(tuple(x.shape[1:]), x.dtype) for x in xs]
    traced = _trace(fn, avals, captures, op, _device_of(carry + xs))
    _check_same(op, "f must return a carry of the init's types", traced.avals()[:len(carry)], _avals(carry))
    caps = list(captures.values())
    return _close(traced, caps), caps


def _scan_bind(body: Graph, caps: list, carry: list, xs: list, length: int, reverse: bool,
               save: bool) -> tuple[list, list, list]:
    """Bind ``scan`` and unpack: (final carry, stacked outputs, saved carries)."""
    nc = len(carry)
    packed = bind(scan_p, *caps, *carry, *xs, body=body, length=length, reverse=reverse,
                  num_consts=len(caps), num_carry=nc, save_carries=save)
    res = _unpack(packed, _scan_avals(body, length, nc, save))
    ny = len(body.outputs) - nc
    return res[:nc], res[nc:nc + ny], res[nc + ny:]


def _scan_apply(fn: Callable, carry: list, xs: list, length: int, reverse: bool, save: bool):
    body, caps = _scan_trace(fn, carry, xs)
    return _scan_bind(body, caps, carry, xs, length, reverse, save)


def _split_scan(args: Sequence[Any], k: int, nc: int) -> tuple[list, list, list]:
    return list(args[:k]), list(args[k:k + nc]), list(args[k + nc:])


def _scan_vjp(g, out, *inputs, body, length, reverse, num_consts, num_carry, save_carries):
    k, nc = num_consts, num_carry
    consts, init, xs = _split_scan(inputs, k, nc)
    ny = len(body.outputs) - nc
    kd = [i for i in range(k) if _wants_grad(consts[i])]
    xd = [i for i in range(len(xs)) if _wants_grad(xs[i])]
    cf = [j for j in range(nc) if _is_float(init[j])]
    yf = [j for j in range(ny) if _is_float(body.outputs[nc + j].dtype)]
    if not kd and not xd and not any(_wants_grad(init[j]) for j in cf):
        return (None,) * len(inputs)
    avals = _scan_avals(body, length, nc, save_carries)
    cts = _unpack(g, avals)
    if save_carries:  # the carries entering each step are part of the forward's output
        carries = _unpack(out, avals)[nc + ny:]
    else:
        carries = _scan_bind(body, consts, init, xs, length, reverse, True)[2]
    ct_saved = [cts[nc + ny + j] for j in cf] if save_carries else []
    a, b = len(cf), len(kd)

    def step(*args):
        ct_c, acc = args[:a], args[a:a + b]
        rest = args[a + b:]
        c_t, x_t, ct_y, ct_s = rest[:nc], rest[nc:nc + len(xs)], rest[nc + len(xs):nc + len(xs) + len(yf)], \
            rest[nc + len(xs) + len(yf):]

        def f(*d):
            outs = _call(body, _replace(consts, kd, d[:b]) + _replace(c_t, cf, d[b:b + a])
                         + _replace(x_t, xd, d[b + a:]))
            return [outs[j] for j in cf] + [outs[nc + j] for j in yf]

        _, back = func_vjp(f, *([consts[i] for i in kd] + [c_t[j] for j in cf] + [x_t[i] for i in xd]))
        grads = back(list(ct_c) + list(ct_y))
        gk, gc, gx = grads[:b], grads[b:b + a], grads[b + a:]
        gc = [u + v for u, v in zip(gc, ct_s)] if ct_s else list(gc)
        return gc + [u + v for u, v in zip(acc, gk)] + list(gx)

    init_ct = [cts[j] for j in cf] + [zeros_like(consts[i]) for i in kd]
    seq = carries + xs + [cts[nc + j] for j in yf] + ct_saved
    carry_ct, xs_ct, _ = _scan_apply(step, init_ct, seq, length, not reverse, False)
    grads = [None] * len(inputs)
    for i, v in zip(kd, carry_ct[a:]):
        grads[i] = v
    for j, v in zip(cf, carry_ct[:a]):
        grads[k + j] = v if _wants_grad(init[j]) else None
    for i, v in zip(xd, xs_ct):
        grads[k + nc + i] = v
    return tuple(grads)


def _scan_jvp(primals, tangents, body, length, reverse, num_consts, num_carry, save_carries):
    k, nc = num_consts, num_carry
    consts, init, xs = _split_scan(primals, k, nc)
    tk, tc, tx = _split_scan(tangents, k, nc)
    kd = [i for i in range(k) if tk[i] is not None and _is_float(consts[i])]
    cf = [j for j in range(nc) if _is_float(init[j])]
    xd = [i for i in range(len(xs)) if tx[i] is not None and _is_float(xs[i])]
    nx, a = len(xs), len(cf)

    def step(*args):
        c, tcc, x_t, txx = args[:nc], args[nc:nc + a], args[nc + a:nc + a + nx], args[nc + a + nx:]

        def f(*d):
            return _call(body, _replace(consts, kd, d[:len(kd)]) + _replace(c, cf, d[len(kd):len(kd) + a])
                         + _replace(x_t, xd, d[len(kd) + a:]))

        prim = [consts[i] for i in kd] + [c[j] for j in cf] + [x_t[i] for i in xd]
        outs, touts = func_jvp(f, tuple(prim), tuple([tk[i] for i in kd] + list(tcc) + list(txx)))
        return list(outs[:nc]) + [touts[j] for j in cf] + list(outs[nc:]) + list(touts[nc:])

    tc0 = [tc[j] if tc[j] is not None else zeros_like(init[j]) for j in cf]
    carry, ys, saved = _scan_apply(step, init + tc0, xs + [tx[i] for i in xd], length, reverse, save_carries)
    ny = len(body.outputs) - nc
    outs = carry[:nc] + ys[:ny] + saved[:nc]
    tans = _replace([zeros_like(x) for x in carry[:nc]], cf, carry[nc:]) + ys[ny:]
    if save_carries:
        tans += _replace([zeros_like(x) for x in saved[:nc]], cf, saved[nc:])
    avals = _scan_avals(body, length, nc, save_carries)
    return _pack(outs, avals), _pack(tans, avals)


def _scan_batch(values, bdims, body, length, reverse, num_consts, num_carry, save_carries):
    size = _batch_size(values, bdims)
    k, nc = num_consts, num_carry
    consts = [_to_front(v, d, size, False) for v, d in zip(values[:k], bdims[:k])]
    carry = [_to_front(v, d, size, True) for v, d in zip(values[k:k + nc], bdims[k:k + nc])]
    xs = [x if d is None else moveaxis(x, d, 1) for x, d in zip(values[k + nc:], bdims[k + nc:])]
    dims = [None if d is None else 0 for d in bdims[:k]] + [0] * nc + \
        [None if d is None else 0 for d in bdims[k + nc:]]
    stepped = _vmapped(body, dims, size)
    carry, ys, saved = _scan_apply(lambda *a: stepped(*consts, *a), carry, xs, length, reverse, save_carries)
    leaves = carry + [moveaxis(y, 1, 0) for y in ys + saved]
    return _pack_batched(leaves, _scan_avals(body, length, nc, save_carries), size), 0


scan_p = Primitive("scan", _scan_impl, abstract=_scan_abstract, vjp=_scan_vjp, jvp=_scan_jvp,
                   batch=_scan_batch)


def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None, reverse: bool = False) -> Any:
    """Loop `f` over the leading dimension of `xs`, carrying state: JAX's ``lax.scan``.

    Semantics (``reverse=False``)::

        carry = init
        for t in range(length):
            carry, y[t] = f(carry, xs[t])
        return carry, stack(y)

    `f` is traced once into a sub-graph; the whole loop is one primitive, one node under ``ember.jit``.
    Reverse mode runs a reverse scan over the carries entering each step (saved by the forward when
    gradients are being recorded, recomputed otherwise). Random draws inside `f` raise
    :class:`~ember.errors.TraceError` (the sub-graph would replay one draw at every step): draw a tensor
    with a leading axis of the scan length outside and pass it in `xs`. An in-place update of the carry
    or of x inside `f` (``c.add_(x)``) acts on the step's own copy, as ``c = c + x`` would (`init` and
    `xs` are left as they were); updating a captured tensor raises :class:`~ember.errors.TraceError`.

    Args:
        f: ``f(carry, x) -> (carry, y)``; carry, x and y are pytrees of tensors (y may be None).
        init: the initial carry.
        xs: pytree of tensors sharing the leading dimension `length` (or None with `length` given).
        length: number of steps (needed when `xs` is None).
        reverse: iterate from the last step to the first (results stay at their indices).

    Returns:
        ``(final carry, ys)`` with every leaf of y stacked along a new dim 0.

    Example:
        >>> import ember
        >>> total, partial = ember.scan(lambda c, x: (c + x, c + x), ember.tensor(0.0),
        ...                             ember.tensor([1.0, 2.0, 3.0]))
        >>> float(total), partial.tolist()
        (6.0, [1.0, 3.0, 6.0])
    """
    carry, ctree = _as_leaves(init, "scan")
    x_leaves, xtree = _as_leaves(xs, "scan")
    length = _scan_length(x_leaves, length)
    holder: dict = {}

    def flat(*leaves):
        c, y = _step_result(f(pytree.unflatten(ctree, leaves[:len(carry)]),
                              pytree.unflatten(xtree, leaves[len(carry):])))
        c_leaves, c_tree = pytree.flatten(c)
        if c_tree != ctree:
            raise ShapeError("scan", f"f must return a carry with the init's structure ({ctree}), "
                             f"got {c_tree}")
        y_leaves, holder["ytree"] = pytree.flatten(y)
        return c_leaves + y_leaves

    body, caps = _scan_trace(flat, carry, x_leaves)
    # Save the carries entering each step only when a backward pass may need them.
    save = STATE.get().grad and any(t._requires_grad for t in caps + carry + x_leaves)
    out, ys, _ = _scan_bind(body, caps, carry, x_leaves, length, reverse, save)
    return pytree.unflatten(ctree, out), pytree.unflatten(holder["ytree"], ys)


def _step_result(result: Any) -> tuple[Any, Any]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise EmberError("scan", f"f must return a pair (carry, y), got {type(result).__name__}")
    return result[0], result[1]


def _scan_length(xs: list[Tensor], length: int | None) -> int:
    lengths = set()
    for x in xs:
        if x.ndim == 0:
            raise ShapeError("scan", "every leaf of xs needs a leading dimension to scan over, got a 0-d "
                             "tensor", (x,))
        lengths.add(int(x.shape[0]))
    if length is not None:
        lengths.add(int(length))
    if len(lengths) != 1:
        what = "no xs and no length given" if not lengths else f"leading dimensions differ: {sorted(lengths)}"
        raise ShapeError("scan", f"cannot tell the number of steps: {what}", tuple(xs))
    return lengths.pop()
