"""``ember.jit``: trace a function into a graph, optimise it, cache it by signature, and run it.

Tracing runs the function once on real inputs wrapped as tracers: every primitive it applies is
executed eagerly *and* appended to the graph, so shapes and dtypes come from the actual kernels. A
tracer refuses to become a Python value (``bool``, ``float``, ``.item()``), which is what data-dependent
control flow needs: that raises :class:`TraceError` naming the user's line.
"""
from __future__ import annotations

import functools
import sys
import types
import warnings
import weakref
from typing import Any, Callable

import numpy as np

from .._core import pytree
from .._core.dispatch import STATE, Trace, bind, new_trace, state_changed
from .._core.effects import MISSING, recorder
from .._core.errors import (
    AutogradError,
    DynamicDimsWarning,
    EagerFallbackWarning,
    EmberError,
    RecompileLimitWarning,
    TraceError,
    user_frame,
)
from .._core.inplace import _become, _snapshot
from .._core.tensor import Tensor, Tracer
from . import cost, dynamic, executor, guards, memory, passes, remat
from .codegen import build
from .ir import Graph, Literal, Node, Value

# Random primitives that carry their seed and offset as attributes: a graph would replay the same numbers.
# The sampling functions bind their ``*_at`` forms under jit instead (see JitTrace.random_state), so these
# reach the trace only when bound directly.
_UNTRACEABLE = {"random_sample": "random sampling", "multinomial": "random sampling"}
# primitives whose result's size depends on the values (a boolean mask's count): the graph would fix
# every size computed from it (a mean's divisor, a reshape) at the traced values
_DATA_SIZED = {"nonzero", "unique"}


DEFAULT_CACHE_SIZE = 8  # graphs one jitted function keeps (torch.compile's default recompile limit)


class GraphTracer(Tracer):
    """A traced value: the concrete tensor computed while tracing and its IR value."""

    __slots__ = ("val", "value")

    @property
    def shape(self):
        return self.val.shape

    def _concrete(self):
        if getattr(self._trace, "finished", False):
            raise TraceError("jit", "this value was computed while ember.jit traced a function and was kept "
                             "outside it (in a list, a dict or an attribute); it stands for a value of the "
                             "graph and holds no data. Return it from the compiled function instead",
                             (self,))
        raise TraceError("jit", "a traced value was converted to a Python value (bool(), float(), .item(), "
                         "or Python control flow on a tensor); the branch would be frozen into the graph. "
                         "Use ember.where for elementwise choices, and ember.cond(pred, true_fn, false_fn, "
                         "*operands), ember.while_loop(cond_fn, body_fn, init) or ember.scan(f, init, xs) "
                         "for value-dependent control flow", (self,))


class JitTrace(Trace):
    """Records primitives applied to its tracers as graph nodes."""

    handles_effects = True
    # Ops on captured tensors (parameters, buffers) are recorded too, not folded at trace time: the graph
    # must read their values at run time, and their shapes may follow dynamic input sizes.
    captures_all = True
    concrete_layouts = True  # a tracer's `val` is the eagerly computed value, laid out as eagerly

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[Node] = []
        self.next_id = 0
        self.constants: dict[int, tuple[Value, Tensor]] = {}  # id(tensor) -> (value, tensor)
        # Effects of the traced code on real objects, applied after every run of the graph:
        self.writes: dict[int, tuple[Tensor, GraphTracer]] = {}  # id(tensor) -> (tensor, its new value)
        self.grads: dict[int, tuple[Tensor, Any]] = {}  # id(tensor) -> (tensor, .grad before tracing)
        # (id(dict), key) -> (dict, key, value, the entry before the trace)
        self.items: dict[tuple, tuple[dict, Any, GraphTracer, Any]] = {}
        # id(obj) -> (obj, its signature before tracing); -id(t) -> (_GradSlot(t), ...) for a tensor whose
        # gradient the traced code read before writing it
        self.stateful: dict[int, tuple[Any, Any]] = {}
        # id(the data of a gradient the traced code read) -> the tensor owning the gradient
        self.grad_of: dict[int, Tensor] = {}
        self.created: dict[int, Tensor] = {}  # tensors creation functions made during the trace
        # id(generator) -> (generator, its state tensor, seed, offset) at the trace's first draw from it
        self.generators: dict[int, tuple[Any, Tensor, int, int]] = {}
        # id(generator) -> (generator, seed, offset) the traced code set before drawing from it, and the
        # generator's (seed, offset) before that (put back when tracing ends: tracing changes nothing)
        self.seeds: dict[int, tuple[Any, int, int]] = {}
        self.seeded: dict[int, tuple[Any, int, int]] = {}
        # id(obj) -> obj whose ``_jit_refresh()`` writes run-time scalars before each run (note_refresh)
        self.refresh: dict[int, Any] = {}
        self.finished = False  # the traced function has returned: its tracers hold no data any more
        # In-place updates through views (see mutated): id(tracer) -> (weak reference to it, how often it
        # was updated in place), and id(view tracer) -> (weak reference, its base's count when the view
        # last matched the base). The references tell a tracer from a later one given the same id.
        self.version: dict[int, tuple[weakref.ref, int]] = {}
        self.view_version: dict[int, tuple[weakref.ref, int]] = {}
        # the user code the trace ran, found from each operation's stack (set by Jitted; a trace of a
        # control-flow body reports to the enclosing one)
        self.reads: guards.Reads | None = None
        # ids of the values computed with gradient recording off (``no_grad`` blocks, the backward pass of
        # ``backward()``/``autograd.grad``): no gradient flows back through them (see _cut_nograd)
        self.nograd: set[int] = set()
        self.grad_seen = False  # some value was computed with gradient recording on (see Jitted._trace)
        self.rebinds: set[int] = set()  # ids of tensors written in place of a replacement (note_rebind)
        self.requires_grad_args: dict[int, bool] = {}  # id(argument tracer) -> requires_grad_ value
        self.leaf_updates: dict[tuple[int, int], Value] = {}  # see _leaf_update
        self.modes: dict[int, tuple[Any, bool]] = {}  # id(module) -> (module, its train mode when first used)
        self.lifted: set[int] = set()  # ids of the tracers standing for the arguments
        self.hooked: Tensor | None = None  # a traced value given a gradient hook (see note_hook)

    def _where(self) -> tuple[str, int, str] | None:
        """The user's line applying the operation being recorded (and the frames that led to it)."""
        reads = self.reads
        if reads is None:
            reads = next((t.reads for t in STATE.get().traces if getattr(t, "reads", None) is not None), None)
            if reads is None:
                return user_frame()
        return reads.walk(sys._getframe(2))

    @staticmethod
    def _entry(table: dict, t: GraphTracer) -> int | None:
        entry = table.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def _count(self, t: GraphTracer) -> int:
        return self._entry(self.version, t) or 0

    def random_state(self, generator: Any, offset: int) -> tuple[Tensor, int]:
        """A draw from `generator` starting at block `offset`: the tensor the graph reads the generator's
        ``[seed, offset]`` from at run time (a constant refreshed before each run) and the draw's start
        relative to that offset. Runs therefore draw what eager execution would from the generator's
        state at the call; the trace's own draws are handed back when it ends (:func:`_end_draws`)."""
        entry = self.generators.get(id(generator))
        if entry is None:
            # (the draw has reserved its blocks already: the state the graph starts from is before it)
            entry = (generator, generator._replay_state(offset), generator._seed, offset)
            self.generators[id(generator)] = entry
        _, state, seed, start = entry
        if generator._seed != seed or offset < start:
            raise TraceError("jit", "a generator was re-seeded or its state was set (manual_seed, "
                             "set_state) inside the traced function; a compiled graph reads each "
                             "generator's state once per call. Seed outside the compiled function")
        return state, offset - start

    def note_seed(self, generator: Any, before: tuple[int, int]) -> None:
        """The traced code seeded `generator` (or set its state; it was at `before`, a (seed, offset)):
        each run does the same first."""
        if id(generator) in self.generators:
            raise TraceError("jit", "a generator was re-seeded or its state was set (manual_seed, "
                             "set_state) inside the traced function after drawing from it; a compiled "
                             "graph reads each generator's state once per call. Seed it before its first "
                             "draw in the function, or outside the compiled function")
        self.seeds[id(generator)] = (generator, generator._seed, generator._offset)
        self.seeded.setdefault(id(generator), (generator, *before))

    def note_refresh(self, obj: Any) -> None:
        """Call ``obj._jit_refresh()`` before every run of the graph (see ``effects.note_refresh``)."""
        self.refresh[id(obj)] = obj

    def note_created(self, t: Tensor) -> None:
        """`t` was made by a creation function (``zeros``, ``arange``…) inside the traced code."""
        self.created[id(t)] = t

    def foldable(self) -> set[int]:
        """Value ids of the constants the traced code created itself and never wrote to: nothing outside
        can change them between runs, so operations on them may be folded at compile time."""
        return {v.id for key, (v, t) in self.constants.items()
                if self.created.get(key) is t and key not in self.writes and not t.requires_grad}

    def note_requires_grad(self, t: GraphTracer, value: bool) -> None:
        """``t.requires_grad_(value)`` in the traced code. On an argument, each run sets it on the call's
        tensor, as eagerly; the argument must not have been used yet, since the graph records from the
        start of the run."""
        if id(t) not in self.lifted or t._trace is not self or bool(t._requires_grad) == value:
            return
        if any(isinstance(o, Value) and o.id == t.value.id for n in self.nodes for o in n.operands):
            raise TraceError("requires_grad_", "requires_grad_() on an argument after the compiled function "
                             "used it: the graph cannot record from that point on. Call it before using the "
                             "argument, or outside the compiled function", (t,))
        self.requires_grad_args[id(t)] = value

    def note_rebind(self, target: Tensor) -> None:
        """`target` is written where eager code would replace it by a new tensor (see effects.write)."""
        self.rebinds.add(id(target))

    def local_writes(self) -> set[int]:
        """Ids of the tensors the traced code created and then updated in place: local to a call, as in
        eager mode, so their new values are computed in the graph and never written back (the tensor
        keeps its value from creation, which the graph reads on every call)."""
        return {key for key, (target, _) in self.writes.items() if self.created.get(key) is target}

    def defer_write(self, target: Tensor, value: GraphTracer) -> None:
        """``target[...] = value`` happens after each run; later reads in the trace see `value`. If
        `target` is a view of another tensor (made eagerly), that tensor gets the update too, as memory
        sharing would have it, so that later reads of it see the update."""
        self.writes[id(target)] = (target, value)
        self.version[id(target)] = (weakref.ref(target), self._count(target) + 1)
        info = getattr(target, "_base", None)
        if info is not None and info[1].unview is not None and not isinstance(info[0], Tracer):
            base, prim, attrs = info
            self.defer_write(base, prim.unview(base, value, **attrs))

    def note_hook(self, t: Tensor) -> None:
        """`t` (a traced value) was given a gradient hook: it runs in a backward pass inside the traced
        code, but a compiled function differentiated from outside has no place for it (refused then)."""
        self.hooked = t

    def argument_grad(self, t: Tensor) -> None:
        """The traced code reads or accumulates ``t.grad``: refused when `t` stands for an argument."""
        if id(t) in self.lifted:
            raise TraceError("jit", "the .grad of an argument is read or accumulated inside ember.jit "
                             "(backward() reaching an argument that requires grad, or reading its .grad); "
                             "the graph cannot update the caller's tensor. Use ember.autograd.grad(loss, "
                             "inputs) and return the gradients, or keep the tensor in a module (as a "
                             "parameter) instead of passing it", (t,))

    def note_grad(self, t: Tensor) -> None:
        """Remember `t.grad` as it was before the traced code first assigned it."""
        if id(t) not in self.grads:
            self.grads[id(t)] = (t, t._grad)

    def note_grad_read(self, t: Tensor) -> None:
        """`t.grad` is read. Unless the traced code assigned it already, the graph depends on the gradient
        `t` has at call time: whether it is None joins the cache key (:class:`_GradSlot`), and a gradient
        tensor read becomes a constant rebound to ``t.grad`` before each run (:meth:`_Compiled.rebind`)."""
        if id(t) in self.grads or -id(t) in self.stateful:
            return
        slot = _GradSlot(t)
        self.stateful[-id(t)] = (slot, slot._jit_signature())
        if isinstance(t._grad, Tensor) and not isinstance(t._grad, Tracer):
            self.grad_of[id(t._grad._data)] = t  # (by its data: it may be read through .detach())

    def defer_item(self, container: dict, key: Any, value: GraphTracer, before: Any) -> None:
        """``container[key]`` receives the run's value of `value` after each run (`before` until then)."""
        first = self.items.get((id(container), key))
        self.items[(id(container), key)] = (container, key, value, before if first is None else first[3])

    def note_state(self, obj: Any) -> None:
        """`obj`'s ``_jit_signature()`` before the traced code changed it becomes part of the cache key."""
        if id(obj) not in self.stateful and hasattr(obj, "_jit_signature"):
            self.stateful[id(obj)] = (obj, obj._jit_signature())
            if isinstance(getattr(obj, "training", None), bool):  # (see _check_modes_kept)
                self.modes[id(obj)] = (obj, obj.training)

    def new_value(self, t: Tensor) -> Value:
        v = Value(self.next_id, tuple(t.shape), t.dtype)
        self.next_id += 1
        return v

    def lift(self, t: Tensor) -> GraphTracer:
        """A tracer standing for input tensor `t`."""
        concrete = t.detach() if not isinstance(t, Tracer) else t
        tr = self._wrap(concrete, self.new_value(t))
        tr._requires_grad = t._requires_grad  # (torch.autograd.grad(y, x) inside the function works)
        self.lifted.add(id(tr))
        return tr

    def _wrap(self, concrete: Tensor, value: Value) -> GraphTracer:
        tr = GraphTracer._make(None, concrete.dtype, concrete.device)
        tr._trace = self
        tr.val = concrete
        tr.value = value
        return tr

    def mutated(self, x: GraphTracer) -> None:
        """`x` was just updated in place. If it is a view, the tensors it views get the update too
        (``unview`` writes the view's new value into its base, up the chain of bases), and views of
        anything updated are recomputed when next read (:meth:`_fresh`), as memory sharing would have it
        in eager execution."""
        self.version[id(x)] = (weakref.ref(x), self._count(x) + 1)
        child, info = x, getattr(x, "_base", None)
        while info is not None:
            base, prim, attrs = info
            if prim.unview is None:
                raise TraceError(prim.name, f"an in-place update through a view made by {prim.name} cannot "
                                 "be traced; apply the update to a .clone() of the view, or write the result "
                                 "with an indexing assignment", (x,))
            if not isinstance(base, GraphTracer):  # a view of a captured tensor or of one made inside:
                new = prim.unview(base, child, **attrs)
                self.defer_write(base, new)  # that tensor is written
                if new._node is not None and self.created.get(id(base)) is base:
                    # (made inside: on the tape of a backward in the traced code it stands for the value,
                    # and a backward that saved it sees the change)
                    base._node, base._requires_grad = new._node, new._requires_grad
                    base._bump_version()
                self.view_version[id(child)] = (weakref.ref(child), self._count(base))
                return
            self._fresh(base)
            _become(base, prim.unview(base, child, **attrs))
            self.version[id(base)] = (weakref.ref(base), self._count(base) + 1)
            self.view_version[id(child)] = (weakref.ref(child), self._count(base))
            child, info = base, getattr(base, "_base", None)

    def _fresh(self, a: GraphTracer) -> None:
        """Recompute view `a` from its base if the base was updated in place since `a` matched it."""
        seen = self._entry(self.view_version, a)
        if seen is None:
            return
        base, prim, attrs = a._base
        self._fresh(base)
        now = self._count(base)
        if seen != now:
            new = bind(prim, base, **attrs)
            a.val, a.value = new.val, new.value
            self.view_version[id(a)] = (weakref.ref(a), now)

    def _leaf_update(self, leaf: Tensor, new: GraphTracer) -> Value:
        """The value of `leaf` after an update in place without recording (``with no_grad():
        w.clamp_(...)``): `new`'s value, through which gradients reach `leaf` itself, as they reach a
        leaf updated so eagerly (one node per update, shared by every later read)."""
        from .._core.primitives.movement import leaf_update_p

        key = (id(leaf), new.value.id)
        value = self.leaf_updates.get(key)
        if value is None:
            entry = self.constants.get(id(leaf))
            if entry is None:
                entry = self.constants[id(leaf)] = (self.new_value(leaf), leaf)
            value = self.leaf_updates[key] = self.new_value(new.val)
            self.nodes.append(Node(leaf_update_p, (new.value, entry[0]), {}, (value,), self._where()))
        return value

    def _operand(self, a: Any) -> tuple[Any, Any]:
        if isinstance(a, GraphTracer) and a._trace is self:
            self._fresh(a)
            return a.value, a.val
        if isinstance(a, Tensor) and id(a) in self.writes:  # written earlier in the trace: its new value
            new = self.writes[id(a)][1]
            if a._requires_grad and isinstance(new, GraphTracer) and new.value.id in self.nograd:
                return self._leaf_update(a, new), new.val
            return new.value, new.val
        if isinstance(a, Tensor):  # a tensor captured from outside: a constant read at run time
            entry = self.constants.get(id(a))
            if entry is None:
                entry = self.constants[id(a)] = (self.new_value(a), a)
            return entry[0], a
        return Literal(a), a

    def process(self, prim, args: tuple, attrs: dict) -> Any:
        if prim.name in _UNTRACEABLE:
            raise TraceError(prim.name, f"{_UNTRACEABLE[prim.name]} inside ember.jit is not supported yet: "
                             "the graph would replay the same numbers on every call; draw them outside and "
                             "pass them in")
        if prim.name in _DATA_SIZED:
            raise TraceError(prim.name, "the size of this result depends on the values (boolean-mask "
                             "indexing x[mask], masked_select, nonzero, unique), which a compiled graph "
                             "cannot follow from call to call. Keep sizes fixed: ember.where(mask, x, 0) "
                             "with sums ((x * mask).sum() / mask.sum() for a masked mean), "
                             "x.masked_fill(~mask, value), or x[mask] = value (an elementwise choice)", args)
        pairs = [self._operand(a) for a in args]
        others = tuple(t for t in STATE.get().traces if t is not self)
        with state_changed(grad=False, traces=others):
            out = bind(prim, *[c for _, c in pairs], **attrs)
        value = self.new_value(out)
        if not STATE.get().grad:
            self.nograd.add(value.id)
        else:
            self.grad_seen = True
        self.nodes.append(Node(prim, tuple(o for o, _ in pairs), attrs, (value,), self._where()))
        result = self._wrap(out, value)
        base = args[0] if args else None
        if prim.view and (isinstance(base, GraphTracer) and base._trace is self
                          or isinstance(base, Tensor) and not isinstance(base, Tracer)):
            result._base = (base, prim, attrs)
            self.view_version[id(result)] = (weakref.ref(result), self._count(base))
        return result

    def graph(self, inputs: list[Value], outputs: list[Value]) -> Graph:
        consts = {v.id: t for v, t in self.constants.values()}
        return Graph(inputs, self.nodes, outputs, consts, [v for v, _ in self.constants.values()])


def _cut_nograd(trace: JitTrace, outputs: list[Value]) -> list[Value]:
    """Put a ``stop_gradient`` after every value the traced code computed with gradient recording off
    and then used in recorded code (or returned), so that differentiating the compiled function sends no
    gradient through it, as eager execution would record none. Returns the outputs, renamed."""
    from .._core.primitives.movement import stop_gradient_p

    nograd = trace.nograd
    crossing = {o.id for o in outputs}
    for n in trace.nodes:
        if not any(v.id in nograd for v in n.outputs):
            crossing.update(o.id for o in n.operands if isinstance(o, Value))
    crossing &= nograd
    cut: dict[int, Value] = {}
    nodes: list[Node] = []
    for n in trace.nodes:
        if cut and any(isinstance(o, Value) and o.id in cut for o in n.operands):
            n = Node(n.prim, tuple(cut.get(o.id, o) if isinstance(o, Value) else o for o in n.operands),
                     n.attrs, n.outputs, n.where)
        nodes.append(n)
        for v in n.outputs:
            if v.id in crossing and (v.dtype.is_floating_point or v.dtype.is_complex):
                cut[v.id] = Value(trace.next_id, v.shape, v.dtype)
                trace.next_id += 1
                nodes.append(Node(stop_gradient_p, (v,), {}, (cut[v.id],), n.where))
    trace.nodes = nodes
    return [cut.get(o.id, o) for o in outputs]


def _check_arguments_kept(args: tuple, kwargs: dict, wrapped: list, treedef: Any) -> None:
    """Refuse a traced function that changed a list or dict it was passed (``d["out"] = y``,
    ``items.append(y)``): a compiled run executes no Python, so the change would happen only while
    tracing, and to copies of the containers at that."""
    leaves, now = pytree.flatten((args, kwargs))
    if now != treedef or any(a is not b for a, b in zip(leaves, wrapped)):
        raise TraceError("jit", "the compiled function changed a list or dict argument (added, removed or "
                         "replaced an entry); a compiled run executes no Python, so the change would be "
                         "lost. Return the new values instead")


def _check_modes_kept(trace: JitTrace) -> None:
    """Refuse a traced function that switched a module it used between training and evaluation mode
    (``model.train(not model.training)``): a compiled run executes no Python, so only the trace would
    switch it. The mode is put back, so a refused trace changes nothing."""
    switched = [(obj, before) for obj, before in trace.modes.values() if obj.training != before]
    if switched:
        for obj, before in trace.modes.values():  # (each as it was: train() would set submodules too)
            obj.training = before
        mode = "training" if not switched[0][1] else "evaluation"
        raise TraceError("jit", f"the function switched {type(switched[0][0]).__name__} to {mode} mode: a "
                         "compiled run executes no Python, so later calls would not. Call .train()/.eval() "
                         "outside the compiled function (a change of mode between calls recompiles)")


def _check_no_leaks(fn: Any, trace: JitTrace, args: tuple = (), kwargs: dict | None = None) -> None:
    """Refuse a traced function that stored a traced value in a global or closure variable of its own
    (``global total; total = total + x``), or in a container or object reachable from those, from its
    arguments or from the compiled module (``RESULTS["y"] = y``, ``obj.v = y``): later runs would not
    update it, and it would hold a value that exists only inside the graph."""
    names = dict(getattr(fn, "__globals__", None) or {})
    code = getattr(fn, "__code__", None)
    for name, cell in zip(getattr(code, "co_freevars", ()), getattr(fn, "__closure__", None) or ()):
        try:
            names[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    for name, value in names.items():
        if isinstance(value, GraphTracer) and value._trace is trace:
            raise TraceError("jit", f"the compiled function assigned a traced value to the variable {name!r} "
                             "outside it (global or nonlocal); a compiled run executes no Python, so later "
                             "calls would not update it. Return the value instead, or keep it in a tensor "
                             "updated in place")
    leak = guards.leaked_tracers(fn, args, kwargs or {},
                                 lambda v: isinstance(v, GraphTracer) and v._trace is trace, trace.reads,
                                 trace.items)
    if leak is not None:
        raise TraceError("jit", f"the compiled function stored a traced value in {leak}, which outlives "
                         "it; a compiled run executes no Python, so later calls would not update it and the "
                         "value would exist only inside the graph. Return the value instead, or keep it in "
                         "a tensor updated in place")


def _alias_roots(g: Graph, count: int) -> list[int]:
    """For each of the first `count` outputs of `g`, the value whose memory it may be (the start of the
    chain of view nodes it comes from). Views into a multi-output fused result are roots of their own:
    each is a separate slice of it."""
    producer = {n.outputs[0].id: n for n in g.nodes}
    roots = []
    for v in g.outputs[:count]:
        vid, n = v.id, producer.get(v.id)
        while n is not None and n.prim.view and n.operands and isinstance(n.operands[0], Value):
            base = producer.get(n.operands[0].id)
            if base is not None and base.prim.name.startswith("fused_"):
                break
            vid, n = n.operands[0].id, base
        roots.append(vid)
    return roots


def _aliased_outputs(raw: Graph, graph: Graph, count: int, returned_args: set) -> frozenset[int]:
    """The computed outputs that the passes made share memory with an input, a constant or an earlier
    output where the traced code computed a new tensor (``x * 1`` simplified to ``x``, two equal
    expressions merged by CSE), or with a value an effect stores (an optimiser's new state, which later
    runs update in place): the run returns a copy of those, as eager execution returns new tensors.
    Outputs that are views of an argument in the traced code stay views."""
    def sources(g: Graph) -> set[int]:
        return {v.id for v in g.inputs} | set(g.constants)

    before, every = _alias_roots(raw, count), _alias_roots(graph, len(graph.outputs))
    after, effect_roots = every[:count], set(every[count:])
    raw_sources, new_sources = sources(raw), sources(graph)
    copies = set()
    for i, (r0, r1) in enumerate(zip(before, after)):
        if i in returned_args:
            continue
        if r1 in effect_roots:  # also stored by an effect (optimiser state): later runs write into it
            copies.add(i)
        elif r1 in new_sources and r0 not in raw_sources:
            copies.add(i)
        elif any(after[j] == r1 and before[j] != r0 for j in range(i)):
            copies.add(i)
    return frozenset(copies)


class _GradSlot:
    """The gradient of a tensor as part of a compiled function's cache key: None, or its shape, dtype and
    device (a graph that read an existing gradient reads the one present at each call)."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor

    def _jit_signature(self) -> Any:
        g = self.tensor._grad
        return None if g is None else (tuple(g.shape), g.dtype.name, str(g.device))


def _place_sizes(leaves: list, places: list) -> tuple[int, ...]:
    """The size of every dynamic dimension of a call, in the order of `places`."""
    return tuple([leaves[i].shape[a] for i, a, _ in places])


def _symbol_sizes(leaves: list, places: list) -> list[int]:
    """The size of each dynamic-dimension name of a call (at its first place), in `_symbols` order."""
    first: dict[str, int] = {}
    for i, a, name in places:
        first.setdefault(name, leaves[i].shape[a])
    return list(first.values())


def _same_value(a: Any, b: Any) -> bool:
    """Whether two values a function returned as they are (not computed from its inputs) are the same."""
    if a is b:
        return True
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and a.numpy().tobytes() == b.numpy().tobytes())
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # (a comparison without one truth value: say they differ, and recompile)
        return False


def _disagreement(compiled: _Compiled, other: _Compiled, sizes: list[int], raw: bool = False
                  ) -> str | None:
    """None when `other` (the function traced at `sizes`, one per symbol) computes what `compiled` computes
    there with its rules; otherwise what differs, in words. With `raw`, the graphs as traced (before the
    passes) are compared, with the rules fitted to them."""
    if raw and compiled.raw_rules is None:
        return "its traced graph has no fitted rules"
    if (other.out_tree != compiled.out_tree or other.n_out != compiled.n_out
            or other.returned_args != compiled.returned_args or other.fixed.keys() != compiled.fixed.keys()):
        return "it returns something else"
    for i, (value, _) in compiled.fixed.items():
        if not _same_value(value, other.fixed[i][0]):
            return f"output {i} ({type(value).__name__}, not computed from the inputs) differs"
    if len(other.effects) != len(compiled.effects) or any(
            k0 != k1 or (t0 != t1 if k0 == "arg" else t0 is not t1) or not _same_value(key0, key1)
            for (k0, t0, key0), (k1, t1, key1) in zip(compiled.effects, other.effects)):
        return "it updates other state"
    if raw:
        return dynamic.disagreement(compiled.raw, compiled.raw_rules or [], other.raw, sizes)
    return dynamic.disagreement(compiled.graph, compiled.rules, other.graph, sizes)


def _symbols(places: list) -> list[str]:
    """The distinct dynamic-dimension names, in order."""
    return list(dict.fromkeys(name for _, _, name in places))


def _signature(leaves: list, treedef, places: list | None = None) -> tuple:
    dynamic_axes: dict[int, set] = {}
    for i, ax, _ in places or ():
        dynamic_axes.setdefault(i, set()).add(ax)
    sig = []
    first: dict[int, int] = {}
    for i, x in enumerate(leaves):
        if isinstance(x, Tensor):
            shape = tuple(x.shape)
            if dynamic_axes and i in dynamic_axes:
                shape = tuple(-1 if d in dynamic_axes[i] else s for d, s in enumerate(shape))
            same = first.setdefault(id(x), i)  # the leaf holding the same tensor first (i: itself)
            # (row-major or not: the traced code sees the layout, through is_contiguous and view)
            dense = x._data is None or bool(x._data.flags.c_contiguous)
            sig.append(("tensor", shape, x._dtype.name, str(x._device), bool(x._requires_grad), same, dense))
        else:
            try:
                hash(x)
            except TypeError:
                raise TraceError("jit", f"argument of type {type(x).__name__} is neither a tensor nor "
                                 "hashable, so it cannot be a static argument") from None
            # (floats by their text: 0.0 and -0.0 are equal but divide differently, and a NaN matches)
            sig.append(("static", type(x).__name__, repr(x) if type(x) is float else x))
    return (treedef, tuple(sig))


def _share_memory(tensors: list[Tensor]) -> bool:
    """Whether two of the (distinct) tensors may share memory (views of one array)."""
    by_root: dict[int, list] = {}
    for t in tensors:
        by_root.setdefault(_root(t._data), []).append(t._data)
    for arrays in by_root.values():
        for i, a in enumerate(arrays):
            if any(np.may_share_memory(a, b) for b in arrays[i + 1:]):
                return True
    return False


def _distinct_tensors(leaves: list) -> list[Tensor]:
    """The tensor leaves, each tensor once (in order of first appearance): the graph's inputs."""
    seen: dict[int, Tensor] = {}
    for x in leaves:
        if isinstance(x, Tensor):
            seen.setdefault(id(x), x)
    return list(seen.values())


def _describe_gradient(sig: Any) -> str:
    return "None" if sig is None else f"a {sig[1]} tensor of shape {sig[0]}"


def _describe_change(old: tuple, new: tuple, stateful: dict | None = None) -> str:
    if old[:2] == new[:2]:
        before, after = dict(old[-1]), dict(new[-1])
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        for key in changed:
            if key < 0:
                return (f"a gradient that the function reads changed from {_describe_gradient(before[key])} "
                        f"to {_describe_gradient(after[key])}")
        for key in changed:
            slot = (stateful or {}).get(key)
            if hasattr(slot, "describe"):
                hint = ""
                if after[key][0] == "value" and after[key][1] in ("int", "float"):
                    hint = (" (a Python number is baked into the graph; hold it in a tensor to have the "
                            "graph read it at run time)")
                return f"{slot.describe()} changed: {guards.describe_change(before[key], after[key])}{hint}"
        return ("the state of a module or optimiser changed (train/eval mode or another module setting, "
                "a replaced or frozen parameter, the optimiser state or a fixed hyper-parameter such as "
                "the weight decay)")
    if old[0] != new[0]:
        return "the structure of the arguments changed"
    for i, (a, b) in enumerate(zip(old[1], new[1])):
        if a != b:
            if a[0] == b[0] == "tensor":
                fields = ["shape", "dtype", "device", "requires_grad", "the same tensor as leaf",
                          "row-major contiguous"]
                diffs = [f"{f} {x} -> {y}" for f, x, y in zip(fields, a[1:], b[1:]) if x != y]
                return f"argument leaf {i}: " + ", ".join(diffs)
            if a[0] == b[0] == "static" and a[1] == b[1]:  # (a float's key is its text)
                change = f"argument leaf {i}: {a[1]} {a[2]} -> {b[2]}"
            else:
                change = f"argument leaf {i}: {a[1:]} -> {b[1:]}"
            if a[0] == b[0] == "static" and a[1] == b[1] and a[1] in ("int", "float"):
                change += (" (a Python number is part of the cache key; pass ember.tensor(value) to have "
                           "the graph read it at run time)")
            return change
    return "the number of arguments changed"


class Lowered:
    """A traced and optimised graph, for inspection: ``as_text()``, ``dumps``."""

    def __init__(self, graph: Graph, raw: Graph, dumps: list):
        self.graph = graph
        self.raw = raw
        self.dumps = dumps

    def as_text(self) -> str:
        """The graph after the passes, in the IR's text form."""
        return str(self.graph)

    def pass_dumps(self) -> list[tuple[str, str, str]]:
        """``(pass, before, after)`` texts for each pass of the pipeline."""
        return self.dumps

    def memory(self) -> dict:
        """The memory plan: ``peak_bytes``, ``arena_bytes`` and ``buffers`` (see :func:`memory.plan`)."""
        return memory.plan(self.graph).as_dict()

    def cost(self) -> dict:
        """FLOPs and bytes moved per node and in total (see :func:`cost.cost`)."""
        return cost.cost(self.graph)

    def kernels(self) -> dict[str, str]:
        """The generated C source of each fused kernel (and matrix-product epilogue) in the graph, by
        primitive name."""
        return _kernel_sources(self.graph)


def _kernel_sources(graph: Graph) -> dict[str, str]:
    """The C source of each fused kernel and epilogue of `graph` at its traced shapes, by primitive."""
    sources = {}
    for node in graph.nodes:
        kernel = node.prim.kernels.get("cpu")
        generated = node.prim.name.startswith(("fused_", "matmul_fused_", "conv_fused_"))
        if generated and hasattr(kernel, "source"):
            shapes = [o.shape for o in node.operands if isinstance(o, Value)]
            try:
                sources[node.prim.name] = kernel.source(shapes)
            except ValueError:  # no loop nest fits: the kernel runs on NumPy
                continue
    return sources


class _Compiled:
    __slots__ = ("graph", "out_tree", "raw", "dumps", "n_out", "effects", "rules", "writes", "draws",
                 "refresh", "grads", "seeds", "fixed", "writes_args", "records", "returned_args", "copies",
                 "verified", "exact", "raw_rules", "force_grad", "sets_requires_grad", "unrecorded",
                 "shared_roots")

    def __init__(self, graph, out_tree, raw, dumps, n_out=None, effects=()):
        self.graph, self.out_tree, self.raw, self.dumps = graph, out_tree, raw, dumps
        self.rules: list = []  # numbers that follow dynamic dimensions (see dynamic.py)
        self.n_out = len(graph.outputs) if n_out is None else n_out
        # (kind, target, key): output n_out + i goes to target (a tensor's data or .grad, or dict[key])
        self.effects = tuple(effects)
        self.writes: dict[int, Tensor] = {}  # node index -> tensor it computes into (see plan_writes)
        # (generator, its state tensor, blocks one run draws): see JitTrace.random_state
        self.draws: tuple[tuple[Any, Tensor, int], ...] = ()
        self.refresh: tuple[Any, ...] = ()  # objects whose run-time scalars are written before each run
        self.seeds: tuple[tuple[Any, int, int], ...] = ()  # (generator, seed, offset) set before each run
        # [constant's value id, tensor owning the gradient, the gradient the graph holds now]: see rebind
        self.grads: list[list] = []
        # output leaf index -> (value, copy it?) for leaves that are not computed from the inputs
        self.fixed: dict[int, tuple[Any, bool]] = {}
        self.writes_args = any(kind == "arg" for kind, _, _ in self.effects)  # updates an argument in place
        # whether a run with gradient recording on records the tape (effects or not: see Jitted._trace)
        self.records = False
        self.returned_args: dict[int, int] = {}  # computed output -> the argument (graph input) it is
        self.copies: frozenset[int] = frozenset()  # computed outputs to copy (see _aliased_outputs)
        # with dynamic dimensions: the sizes (one per marked dimension) this graph is checked to be right
        # for, and the other graphs serving sizes where the function traces otherwise (see _at_sizes)
        self.verified: set[tuple[int, ...]] = set()
        self.exact: dict[tuple[int, ...], _Compiled] = {}
        self.raw_rules: list | None = None  # the rules fitted to the traced graph (None: not fitted)
        # traced with recording off, around an enable_grad block: runs record (the key holds the mode)
        self.force_grad = False
        self.unrecorded: frozenset[int] = frozenset()  # effect values never adopted (see Jitted._trace)
        self.shared_roots: frozenset[int] = frozenset()  # see Jitted._trace
        # (argument position, value) of each requires_grad_() the traced code applied to an argument
        self.sets_requires_grad: tuple[tuple[int, bool], ...] = ()

    def results(self, outs: list, args: list | None = None) -> Any:
        """The function's return value from the graph's first `n_out` outputs (`args`: the call's tensors,
        in the graph's input order, for outputs that are an argument itself)."""
        leaves = outs[:self.n_out]
        if self.returned_args and args is not None:
            given = self.returned_args
            leaves = [args[given[i]] if i in given else t for i, t in enumerate(leaves)]
        if self.fixed:
            computed = iter(leaves)
            leaves = []
            for i in range(self.n_out + len(self.fixed)):
                entry = self.fixed.get(i)
                if entry is None:
                    leaves.append(next(computed))
                else:
                    leaves.append(entry[0].clone() if entry[1] else entry[0])
        return pytree.unflatten(self.out_tree, leaves)

    def load_run_state(self) -> None:
        """Before a run: put each generator's current ``[seed, offset]`` where the graph reads it, and
        write the run-time scalars (hyper-parameters such as the learning rate) of the objects that
        declared them. Generators the traced code seeded are seeded first."""
        for gen, seed, offset in self.seeds:
            gen._seed, gen._offset = seed, offset
        for gen, _, _ in self.draws:
            gen._replay_state()
        for obj in self.refresh:
            obj._jit_refresh()
        for entry in self.grads:
            if entry[1]._grad is not entry[2]:
                self.rebind(entry)

    def rebind(self, entry: list) -> None:
        """Point the graph at the gradient its owner has now (in place of the one it held): where the graph
        reads it as a constant, and where effects or in-place updates write into it. The cache key made
        sure that it exists, with the traced shape and dtype."""
        vid, owner, old = entry
        new = owner._grad
        for graph in (self.graph, self.raw):
            if graph.constants.get(vid) is old:
                graph.constants[vid] = new
        self.effects = tuple((kind, new if target is old else target, key)
                             for kind, target, key in self.effects)
        self.writes = {k: new if t is old else t for k, t in self.writes.items()}
        entry[2] = new

    def advance_generators(self) -> None:
        """Move each generator past the blocks a run drew (after the run succeeded), as eager draws do."""
        for gen, _, blocks in self.draws:
            gen._advance(blocks)

    def plan_writes(self) -> None:
        """Find the nodes that may compute straight into the tensor (a parameter, optimiser state) their
        result replaces (``executor.destinations``; only tensors the graph captured: arguments may differ
        from call to call), and reorder the graph so that they run last (``executor.updates_last``);
        none if that is impossible."""
        by_id = {v.id: v for v in self.graph.const_values}
        holders = {id(t): by_id[vid] for vid, t in self.graph.constants.items() if vid in by_id}
        targets, tensor_of = {}, {}
        fed = [e for e in self.effects if e[0] not in ("grad_none", "constant")]  # those reading outputs
        for pos, (kind, target, _) in enumerate(fed, self.n_out):
            if kind == "data" and id(target) in holders:
                targets[pos], tensor_of[pos] = holders[id(target)], target
        chosen = executor.destinations(self.graph, targets)
        moved = executor.updates_last(self.graph, set(chosen)) if chosen else None
        if moved is not None:  # the in-place updates run last: a failing step changes nothing
            self.graph, index = moved
            self.writes = {index[k]: tensor_of[pos] for k, pos in chosen.items()}

    def destinations(self, tensors: list) -> dict[int, Any]:
        """Node index -> the array a node computes into, from :meth:`plan_writes`: none whose tensor
        shares memory with another input of this run or is not C-contiguous."""
        if not self.writes:
            return {}
        roots: dict[int, int] = {}
        for t in list(tensors) + list(self.graph.constants.values()):
            r = _root(t._data)
            roots[r] = roots.get(r, 0) + 1
        return {k: t._data for k, t in self.writes.items() if isinstance(t._data, np.ndarray)
                and t._data.flags.c_contiguous and roots.get(_root(t._data)) == 1}


def _end_draws(trace: JitTrace) -> tuple[tuple[Any, Tensor, int], ...]:
    """Hand back the blocks a trace drew from each generator (each run draws them instead); returns
    (generator, state tensor, blocks per run) for each generator the traced code drew from."""
    draws = []
    for gen, state, _, start in trace.generators.values():
        draws.append((gen, state, gen._offset - start))
        gen._offset = start
    return tuple(draws)


def _root(a: Any) -> int:
    """An id for the memory under array `a` (that of the object owning it)."""
    while isinstance(getattr(a, "base", None), np.ndarray):
        a = a.base
    base = getattr(a, "base", None)
    return id(a) if base is None else id(base)


def _restore(trace: JitTrace) -> None:
    """Put back the gradients and state entries that the traced code assigned (their writes were only
    recorded), as :func:`_effects` does when the trace succeeds."""
    for t, before in trace.grads.values():
        t._grad = before
    for container, key, value, before in trace.items.values():
        if container.get(key) is value:
            if before is MISSING:
                del container[key]
            else:
                container[key] = before


def _effects(trace: JitTrace) -> tuple[list, list]:
    """The effects of a finished trace as (kind, target, key) triples and the values that feed them.

    Gradients and state entries the traced code assigned are put back as they were (a trace that is
    only lowered changes nothing); the run assigns them for real.
    """
    effects, values = [], []
    local = trace.local_writes()
    for key, (target, value) in trace.writes.items():
        if key not in local:
            effects.append(("data", target, None))
            values.append(value)
    for t, _ in trace.grads.values():
        final = t._grad
        if isinstance(final, GraphTracer) and final._trace is trace:
            effects.append(("grad", t, None))
            values.append(final)
        elif final is None:
            effects.append(("grad_none", t, None))
    for container, key, value, _ in trace.items.values():
        if container.get(key) is value:
            if isinstance(value, GraphTracer) and value._trace is trace:
                effects.append(("item", container, key))
                values.append(value)
            else:  # a constant: the same value after every run
                effects.append(("constant", container, (key, value)))
    _restore(trace)
    return effects, values


def _copy_aliased(compiled: _Compiled, outs: list) -> None:
    """Replace, in `outs`, the computed outputs the passes made share memory with an input, a constant or
    another output (see :func:`_aliased_outputs`) by copies."""
    for i in compiled.copies:
        outs[i] = outs[i].clone()


def _read_copies(compiled: _Compiled, tensors: list) -> list:
    """For a recorded run: the arguments the graph updates in place replaced by copies of their values
    that take over their place in the autograd graph (as eager in-place operations read), so that the
    tape saved by the run keeps the old values when the update is written. A leaf that requires grad
    cannot be updated in place, as eagerly."""
    run_with = list(tensors)
    for kind, target, _ in compiled.effects:
        if kind == "arg":
            x = tensors[target]
            if x._node is None and x._requires_grad:
                raise AutogradError("jit", "a leaf tensor that requires grad is updated in place by the "
                                    "compiled function; wrap the call in ember.no_grad()", (x,))
            run_with[target] = _snapshot(x)
    return run_with


def _apply(effects: tuple, outs: list, args: list, adopt: bool = False, keep: frozenset = frozenset()
           ) -> None:
    """Write a run's effect outputs into parameters, gradients, buffers and optimiser state, and into the
    tensor arguments (`args`, in the graph's input order) that the traced code updated in place. With
    `adopt` (a recorded run), a tensor whose new value requires grad takes that value's place in the
    autograd graph, as after an eager in-place operation, except the effect values numbered in `keep`
    (computed with recording off: their tensors stay as they are in the graph)."""
    it = iter(outs)
    position = -1
    for kind, target, key in effects:
        if kind == "grad_none":
            target._grad = None
            continue
        if kind == "constant":  # a copy each run: later runs may write into the state's tensors
            k, v = key
            target[k] = v.clone() if isinstance(v, Tensor) else v
            continue
        value = next(it)
        position += 1
        if kind == "arg":
            kind, target = "data", args[target]
        if kind == "data":
            xp = target._device.backend.xp
            if value._data is not target._data:  # (else computed in place, see _Compiled.destinations)
                xp.copyto(target._data, xp.broadcast_to(value._data, target._data.shape), casting="unsafe")
            target._bump_version()
            if adopt and value._requires_grad and position not in keep:
                target._node, target._requires_grad = value._node, True
                if value._node is not None:
                    value._node.out_ref = weakref.ref(target)
        elif kind == "grad":
            target._grad = value
        else:
            target[key] = value


class Jitted:
    """The callable returned by :func:`jit`."""

    def __init__(self, fn: Callable, explain: bool, strict: bool, check: bool, rtol: float, atol: float,
                 dynamic_dims: dict | None = None, memory_budget: int | None = None,
                 cache_size: int | None = DEFAULT_CACHE_SIZE):
        if cache_size is not None and (not isinstance(cache_size, int) or cache_size < 1):
            raise EmberError("jit", f"cache_size must be a positive int or None, got {cache_size!r}")
        self.fn = fn
        self.cache_size = cache_size
        self.eager_calls = 0  # calls run eagerly because the cache was full
        self.memory_budget = memory_budget
        self.dynamic_dims = {int(k): (dict(v) if isinstance(v, dict) else tuple(v))
                             for k, v in (dynamic_dims or {}).items()}
        self.explain = explain
        self.strict = strict
        self.check = check
        self.rtol, self.atol = rtol, atol
        self.cache: dict = {}
        self.last_signature = None
        self.compile_count = 0
        self.stateful: dict[int, Any] = {}  # modules and optimisers the traced code used
        self._state_items: list | None = None  # stateful's items sorted by key (None: to be sorted)
        self._flat_treedefs: dict[int, Any] = {}  # number of tensor arguments -> the call's structure
        self._state_keys: dict[int, tuple] = {}
        self._guard_slots: dict[Any, Any] = {}  # (namespace id, name) or cell id -> guards slot
        self._dynamic_warned = False  # whether a DynamicDimsWarning was given
        functools.update_wrapper(self, fn)

    def _state_signature(self) -> tuple:
        """The current signatures of every stateful object seen so far (train/eval mode, optimiser state
        structure and hyper-parameters): a change means the graph no longer matches."""
        items = self._state_items
        if items is None:  # (sorted once per change of the set: the key is rebuilt on every call)
            items = self._state_items = sorted(self.stateful.items(), key=lambda item: item[0])
        return tuple([(k, obj._jit_signature()) for k, obj in items])

    def _trace(self, leaves: list, treedef, prebuild: bool = True, raw_only: bool = False) -> _Compiled:
        trace = JitTrace()
        trace.reads = reads = guards.Reads(sys._getframe())
        grad_on = STATE.get().grad
        try:
            with new_trace(trace):
                lifted: dict[int, GraphTracer] = {}  # a tensor passed twice is one input, as in eager mode
                for x in leaves:
                    if isinstance(x, Tensor) and id(x) not in lifted:
                        lifted[id(x)] = trace.lift(x)
                wrapped = [lifted[id(x)] if isinstance(x, Tensor) else x for x in leaves]
                inputs = [w.value for w in lifted.values()]
                args, kwargs = pytree.unflatten(treedef, wrapped)
                result = self.fn(*args, **kwargs)
                _check_arguments_kept(args, kwargs, wrapped, treedef)
                _check_no_leaks(self.fn, trace, args, kwargs)
                _check_modes_kept(trace)
        except BaseException:
            _restore(trace)  # a failed trace leaves gradients and optimiser state as they were
            raise
        finally:
            trace.finished = True
            draws = _end_draws(trace)
            for gen, seed, offset in trace.seeded.values():  # and the generators it seeded
                gen._seed, gen._offset = seed, offset
        out_leaves, out_tree = pytree.flatten(result)
        outputs, fixed = [], {}
        position = {id(w): k for k, w in enumerate(lifted.values())}
        returned_args: dict[int, int] = {}  # computed output -> argument: the function returned that tensor
        local = trace.local_writes()
        for i, o in enumerate(out_leaves):
            if isinstance(o, Tensor) and (id(o) in local or id(o) in trace.rebinds) and id(o) in trace.writes:
                o = trace.writes[id(o)][1]  # made inside and updated, or replaced eagerly: the new value
            if isinstance(o, GraphTracer) and o._trace is trace:
                if id(o) in position:
                    returned_args[len(outputs)] = position[id(o)]
                outputs.append(o.value)
            elif isinstance(o, Tracer):
                _restore(trace)
                raise TraceError("jit", "the function returned a value traced by another transform; "
                                 "return tensors computed from the arguments")
            elif isinstance(o, Tensor):  # captured: that very tensor, as eager mode returns it;
                # made inside without reading any input: a new copy each call, as eager mode makes one
                fixed[i] = (o, id(o) in trace.created)
            else:  # a Python value: the same on every call
                fixed[i] = (o, False)
        # a backward pass ran inside (a training step): the run records no tape. Otherwise, with gradient
        # recording on and something that requires grad, the compiled function may be differentiated from
        # outside, effects (a batch norm's running statistics, an argument updated in place) or not
        stepped = bool(trace.grads)
        # (called with recording off, an enable_grad block inside records all the same, as eagerly)
        outside = (grad_on or trace.grad_seen) and not stepped and any(
            t._requires_grad for t in [*lifted.values(), *(t for _, t in trace.constants.values())])
        differentiable = [o for o in out_leaves if isinstance(o, GraphTracer) and o._trace is trace]
        if trace.hooked is not None and outside:
            _restore(trace)
            raise TraceError("jit", "a gradient hook (register_hook or retain_grad) was put on a value "
                             "computed inside the compiled function, which is differentiated from outside: "
                             "the backward pass runs through the compiled graph, where the hook is not. "
                             "Register the hook on the compiled function's output or on an argument "
                             "outside it", (trace.hooked,))
        effects, values = _effects(trace)
        # arguments updated in place (x.add_(1)): the run writes their new values into the call's tensors
        for i, (w, v) in enumerate(zip(lifted.values(), inputs)):
            if w.value is not v:
                effects.append(("arg", i, None))
                values.append(w)
        if trace.nograd:  # parts ran with gradient recording off: whether the call records joins the key
            mode = guards.GRAD_MODE
            trace.stateful.setdefault(id(mode), (mode, mode._jit_signature()))
            if outside:
                outputs = _cut_nograd(trace, outputs)
        raw = trace.graph(inputs, outputs + [v.value for v in values])
        if raw_only:  # (to compare with another trace: see _at_sizes)
            compiled = _Compiled(raw, out_tree, raw, [], len(outputs), effects)
            compiled.fixed, compiled.returned_args = fixed, returned_args
            return compiled
        dumps: list = []
        graph = passes.fold_constants(raw, trace.foldable())
        dumps.append(("fold_constants", str(raw), str(graph)))
        read = [x for x in leaves if isinstance(x, Tensor)] + list(graph.constants.values())
        if any(n.prim.name == "stop_gradient" for n in graph.nodes) and (
                (effects and not outside) or not any(t._requires_grad for t in read)):
            # a training step runs without recording, and nothing else here can be differentiated: the
            # detach points need not stay in the graph
            before = str(graph)
            graph = passes.drop_stop_gradients(graph)
            dumps.append(("drop_stop_gradients", before, str(graph)))
        # under a memory budget every fused value gets its own buffer, so that recomputation can free it
        options = {"fuse": {"multi_output": False}} if self.memory_budget is not None else None
        graph = passes.run_pipeline(graph, dumps, options=options)
        if self.memory_budget is not None:
            before = str(graph)
            graph = remat.rematerialize(graph, self.memory_budget)
            dumps.append(("remat", before, str(graph)))
        # the globals and closure variables it read, and global settings, join the key like module state
        for slot in reads.slots(self.fn, self._guard_slots) + list(guards.GLOBAL_STATE):
            trace.stateful.setdefault(id(slot), (slot, slot._jit_signature()))
        self.stateful.update({k: obj for k, (obj, _) in trace.stateful.items()})
        self._state_items = None
        self._state_keys[id(graph)] = tuple(sorted((k, sig) for k, (_, sig) in trace.stateful.items()))
        if prebuild:  # all its kernels at once, one compiler per core
            build.prebuild(_kernel_sources(graph).values())
        compiled = _Compiled(graph, out_tree, raw, dumps, len(outputs), effects)
        compiled.fixed = fixed
        compiled.draws = draws
        compiled.refresh = tuple(trace.refresh.values())
        compiled.seeds = tuple(trace.seeds.values())
        compiled.grads = [[v.id, trace.grad_of[id(t._data)], t] for v, t in trace.constants.values()
                          if id(t._data) in trace.grad_of]
        # the memory the graph writes outside its arguments (and, when it writes arguments, the captured
        # tensors it reads): an argument in that memory makes two graph values of one tensor (see __call__)
        shared = [t for kind, t, _ in effects if kind == "data"]
        if any(kind == "arg" for kind, _, _ in effects):
            shared += [t for t in graph.constants.values() if t is not None]
        compiled.shared_roots = frozenset(_root(t._data) for t in shared if t._data is not None)
        compiled.force_grad = outside and not grad_on
        # effect values computed with recording off (a parameter clamped under no_grad): the tensor they
        # are written into stays a leaf, as eagerly
        compiled.unrecorded = frozenset(k for k, v in enumerate(values)
                                        if isinstance(v, GraphTracer) and v.value.id in trace.nograd)
        compiled.sets_requires_grad = tuple((i, trace.requires_grad_args[id(w)])
                                            for i, w in enumerate(lifted.values())
                                            if id(w) in trace.requires_grad_args)
        compiled.records = outside and bool(effects) and any(
            w._requires_grad for w in differentiable + [w for w in values if isinstance(w, GraphTracer)])
        if effects and self.memory_budget is None and not compiled.records:  # (a budgeted plan keeps its
            compiled.plan_writes()  # order; a recorded run writes no destinations)
            self._state_keys[id(compiled.graph)] = self._state_keys[id(graph)]
        compiled.returned_args = returned_args
        compiled.copies = _aliased_outputs(raw, compiled.graph, len(outputs), set(returned_args))
        return compiled

    def _places(self, args: tuple, leaves: list) -> list[tuple[int, int, str]]:
        """(leaf index, axis, symbol) of every dynamic dimension; dimensions named alike share a size."""
        places = []
        for argnum, axes in sorted(self.dynamic_dims.items()):
            if argnum >= len(args) or not isinstance(args[argnum], Tensor):
                raise TraceError("jit", f"dynamic_dims names argument {argnum}, which is not a tensor "
                                 "argument")
            index = sum(len(pytree.flatten(a)[0]) for a in args[:argnum])
            named = axes.items() if isinstance(axes, dict) else ((ax, f"{argnum}.{ax}") for ax in axes)
            places.extend((index, int(ax) % leaves[index].ndim, str(name)) for ax, name in named)
        return places

    def _dynamic_rules(self, compiled: _Compiled, leaves: list, treedef, places: list, warn: bool = True
                       ) -> None:
        """Fit `compiled`'s rules (see dynamic.py) by tracing once more per dynamic dimension at a
        neighbouring size. Where they cannot be fitted the graph serves its own sizes only (and, with
        `warn`, a DynamicDimsWarning says so once)."""
        from .._core.creation import zeros

        if compiled.draws:
            raise TraceError("jit", "dynamic_dims is not supported yet for functions that draw random "
                             "numbers (their count would follow the dynamic sizes); compile it without "
                             "dynamic_dims, and it recompiles for each new size")
        name = getattr(self.fn, "__name__", "function")
        compiled.verified.add(_place_sizes(leaves, places))
        others, traces = [], []
        try:
            for k, symbol in enumerate(_symbols(places)):
                moved, s0, s1 = dynamic.resized(leaves, places, symbol,
                                                lambda shape, t: zeros(*shape, dtype=t.dtype))
                traces.append((self._trace(moved, treedef, prebuild=False), moved))
                others.append((traces[-1][0].graph, k, s0, s1))
            compiled.rules = dynamic.analyse(compiled.graph, others, name)
        except EmberError as e:  # (not fitted, or not traceable at a neighbouring size)
            compiled.rules, compiled.raw_rules = [], []
            if warn and not self._dynamic_warned:  # (a graph for a few sizes beside one that fitted: no news)
                self._dynamic_warned = True
                warnings.warn("ember.jit: dynamic_dims cannot share one graph across sizes here "
                              f"({e.detail}); each size it is called with gets a graph of its own",
                              DynamicDimsWarning, stacklevel=4)
            return
        try:  # the same rules for the traced graph let a new size be checked without the passes
            compiled.raw_rules = dynamic.analyse(
                compiled.raw, [(t.raw, k, s0, s1) for (t, _), (_, k, s0, s1) in zip(traces, others)], name)
        except EmberError:
            compiled.raw_rules = None
        # the sizes traced at are checked ones, where nothing the rules do not see differs
        for (other, moved), (_, k, _, s1) in zip(traces, others):
            sizes = [s1 if j == k else s for j, s in enumerate(_symbol_sizes(leaves, places))]
            if _disagreement(compiled, other, sizes) is None:
                compiled.verified.add(_place_sizes(moved, places))

    def _at_sizes(self, compiled: _Compiled, leaves: list, treedef, places: list, run: bool
                  ) -> _Compiled | None:
        """The graph for a call at dynamic sizes that `compiled` (the signature's first graph) was not yet
        checked at. Rules are fitted at two sizes per dimension, and Python code may use a size in ways no
        rule sees (``max(n, 5)``, ``if n > 5``, ``n // 2``, a returned ``n``), so the function is traced
        once at each new size. The size is served by the first of the signature's graphs whose rules
        applied at it give that trace; when none does, the trace is compiled into another graph (a
        recompilation), fitted to its neighbouring sizes where it can be. None: the cache is full, so the
        call runs eagerly."""
        sizes = _place_sizes(leaves, places)
        known = compiled.exact.get(sizes)
        if known is not None:
            return known
        symbol_sizes = _symbol_sizes(leaves, places)
        raw = compiled.raw_rules is not None  # (then the traced graphs are compared: no passes to run)
        other = self._trace(leaves, treedef, prebuild=False, raw_only=raw)
        reason = _disagreement(compiled, other, symbol_sizes, raw)
        if reason is None:
            compiled.verified.add(sizes)
            return compiled
        for variant in dict.fromkeys(compiled.exact.values()):
            if _disagreement(variant, other, symbol_sizes, raw) is None:
                compiled.exact[sizes] = variant
                return variant
        shown = ", ".join(f"{name}={size}" for (_, _, name), size in zip(places, sizes))
        change = f"at dynamic sizes {shown} the function traces otherwise than its dynamic graph: {reason}"
        if self.strict:
            raise TraceError("jit", "recompilation with strict=True: " + change)
        if run and self._full(lambda: change):
            return None
        if self.explain:
            self._explain(change)
        if raw:
            other = self._trace(leaves, treedef, prebuild=False)
        self._dynamic_rules(other, leaves, treedef, places, warn=False)
        for fitted in other.verified:
            compiled.exact.setdefault(fitted, other)
        build.prebuild(_kernel_sources(other.graph).values())
        compiled.exact[sizes] = other
        self.compile_count += 1
        if self.check:
            other.load_run_state()
            self._check(other, leaves)
        return other

    def _full(self, change: Callable[[], str]) -> bool:
        """Whether the cache holds `cache_size` graphs, so that a call needing another runs eagerly (the
        first such call warns, with the change that made it need one)."""
        if self.cache_size is None or self._entries() < self.cache_size:
            return False
        if not self.eager_calls:
            warnings.warn(f"ember.jit: {getattr(self.fn, '__name__', 'function')} was compiled for "
                          f"{self._entries()} signatures (cache_size={self.cache_size}); calls with a new "
                          f"signature run eagerly from now on. The last change: {change()}. Mark changing "
                          "sizes with dynamic_dims, or pass a larger cache_size (None: no limit)",
                          RecompileLimitWarning, stacklevel=4)
        self.eager_calls += 1
        return True

    def _explain(self, change: str) -> None:
        """With ``explain=True``: say on stderr why the function is compiled again, and where it was
        called."""
        where = user_frame()
        at = f" (called at {where[0]}:{where[1]})" if where else ""
        print(f"ember.jit: recompiling {getattr(self.fn, '__name__', 'function')}{at}: {change}",
              file=sys.stderr)

    def _entries(self) -> int:
        """The number of compiled graphs held: one per signature, and more for dynamic sizes where the
        function traces otherwise."""
        return len(self.cache) + sum(len(set(map(id, c.exact.values()))) for c in self.cache.values())

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        """``@ember.jit`` on a method: bound to an instance, the instance is the first argument."""
        return self if obj is None else types.MethodType(self, obj)

    def clear_cache(self) -> None:
        """Forget every compiled graph (and the tensors they hold); the next call traces again."""
        self.cache.clear()
        self.stateful.clear()
        self._state_items = None
        self._state_keys.clear()
        self._guard_slots.clear()
        self.last_signature = None

    def _lookup(self, args: tuple, kwargs: dict, run: bool = False) -> tuple[_Compiled | None, list]:
        """The compiled graph for these arguments (traced on a miss) and their tensors. With `run`, None
        when the cache is full: the caller runs the function eagerly."""
        if not kwargs and all(isinstance(a, Tensor) for a in args):  # the common call: flat, no pytree walk
            leaves = list(args)
            treedef = self._flat_treedefs.get(len(args))
            if treedef is None:
                treedef = self._flat_treedefs[len(args)] = pytree.flatten((args, kwargs))[1]
        else:
            leaves, treedef = pytree.flatten((args, kwargs))
        places = self._places(args, leaves) if self.dynamic_dims else []
        sig = _signature(leaves, treedef, places) + (self._state_signature(),)
        compiled = self.cache.get(sig)
        if compiled is None:
            if self.cache and self.strict:
                raise TraceError("jit", "recompilation with strict=True: "
                                 + _describe_change(self.last_signature, sig, self.stateful))
            if run and self._full(lambda: _describe_change(self.last_signature, sig, self.stateful)):
                return None, []
            if self.cache and self.explain:
                self._explain(_describe_change(self.last_signature, sig, self.stateful))
            compiled = self._trace(leaves, treedef)
            if places:
                self._dynamic_rules(compiled, leaves, treedef, places)
            # key it by the state it was traced in (objects first seen now were not in `sig`)
            sig = sig[:-1] + (tuple(sorted(set(sig[-1]) | set(self._state_keys[id(compiled.graph)]))),)
            self.cache[sig] = compiled
            self.compile_count += 1
            if self.check:
                compiled.load_run_state()
                self._check(compiled, leaves)
        self.last_signature = sig
        if places and _place_sizes(leaves, places) not in compiled.verified:
            compiled = self._at_sizes(compiled, leaves, treedef, places, run)
            if compiled is None:
                return None, []
        return compiled, _distinct_tensors(leaves)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        compiled, tensors = self._lookup(args, kwargs, run=True)
        if compiled is None:  # the cache is full
            return self.fn(*args, **kwargs)
        if compiled.writes_args:
            for kind, i, _ in compiled.effects:
                data = tensors[i]._data if kind == "arg" else None
                if data is not None and hasattr(data, "flags") and not data.flags.writeable:
                    raise AutogradError("inplace", "cannot write into this tensor: it is a broadcast "
                                        "(expanded) view; use .clone() first", (tensors[i],))
        if compiled.shared_roots and any(t._data is not None and _root(t._data) in compiled.shared_roots
                                         for t in tensors):
            # an argument is (a view of) a tensor the function also reads or writes as a captured one
            # (f(G) with G.add_(1) inside): the graph holds them as separate values, so this call runs
            # eagerly, where they are one tensor
            if not self.eager_calls:
                warnings.warn(f"ember.jit: {getattr(self.fn, '__name__', 'function')} was called with an "
                              "argument that shares memory with a tensor it updates or reads from outside "
                              "its arguments; such calls run eagerly", EagerFallbackWarning, stacklevel=2)
            self.eager_calls += 1
            return self.fn(*args, **kwargs)
        if compiled.writes_args and _share_memory(tensors):
            # an argument updated in place is a view of another (f(y, y[:2])): the graph holds them as
            # separate inputs and would miss the update through the other, so this call runs eagerly
            if not self.eager_calls:
                warnings.warn(f"ember.jit: {getattr(self.fn, '__name__', 'function')} updates an argument "
                              "in place and was called with arguments that share memory; such calls run "
                              "eagerly. Pass separate tensors (clone one) to run compiled",
                              EagerFallbackWarning, stacklevel=2)
            self.eager_calls += 1
            return self.fn(*args, **kwargs)
        reads_state = compiled.draws or compiled.refresh or compiled.seeds or compiled.grads
        if (reads_state and recorder() is not None) or (compiled.effects and STATE.get().traces) or (
                compiled.draws and STATE.get().traces):
            # traced by an enclosing ember.jit: its trace records the draws from the generators' state,
            # the seeds, the run-time scalars and the gradients read itself; under any transform (an
            # enclosing jit, vmap, jvp) the effects are the transform's to record, and so are random
            # draws (vmap's randomness decides whether batch elements share them)
            return self.fn(*args, **kwargs)
        for i, value in compiled.sets_requires_grad:
            tensors[i].requires_grad_(value)
        if compiled.force_grad and not STATE.get().grad:
            with state_changed(grad=True):
                return self._run(compiled, args, kwargs, tensors)
        return self._run(compiled, args, kwargs, tensors)

    def _run(self, compiled: _Compiled, args: tuple, kwargs: dict, tensors: list) -> Any:
        """Run the compiled graph of this call and apply its effects; the function's return value."""
        compiled.load_run_state()
        overrides = None
        if compiled.rules:
            leaves = pytree.flatten((args, kwargs))[0]
            overrides = dynamic.overrides(compiled.graph, compiled.rules,
                                          _symbol_sizes(leaves, self._places(args, leaves)))
        if compiled.effects:
            adopt = compiled.records and STATE.get().grad
            if adopt:
                # differentiable from outside (a module with batch norm in training mode, an argument
                # updated in place): the run records its tape, and updated tensors take the place of their
                # new values in it, as eager in-place operations do
                outs = executor.run(compiled.graph, _read_copies(compiled, tensors), overrides=overrides)
            else:  # a training step (its backward pass ran inside): record no tape
                with state_changed(grad=False):
                    outs = executor.run(compiled.graph, tensors, overrides=overrides,
                                        destinations=compiled.destinations(tensors))
            _copy_aliased(compiled, outs)  # (before the effects write into the inputs)
            _apply(compiled.effects, outs[compiled.n_out:], tensors, adopt=adopt, keep=compiled.unrecorded)
        else:
            outs = executor.run(compiled.graph, tensors, overrides=overrides)
            _copy_aliased(compiled, outs)
        compiled.advance_generators()
        return compiled.results(outs, tensors)

    def _check(self, compiled: _Compiled, leaves: list) -> None:
        """Run the optimised graph and the traced (eager) one; raise at the first node that differs."""
        import numpy as np

        tensors = _distinct_tensors(leaves)
        with state_changed(grad=False):
            reference: dict = {}
            executor.run(compiled.raw, tensors, reference)
            got: dict = {}
            executor.run(compiled.graph, tensors, got)
        for node in compiled.graph.nodes:
            vid = node.outputs[0].id
            if vid not in reference:
                continue
            a = np.asarray(got[vid].detach().numpy(), dtype=np.float64)
            b = np.asarray(reference[vid].detach().numpy(), dtype=np.float64)
            if a.shape != b.shape or not np.allclose(a, b, rtol=self.rtol, atol=self.atol, equal_nan=True):
                where = f" (from {node.where[0]}:{node.where[1]})" if node.where else ""
                raise EmberError("jit", f"check failed: node {node!r}{where} differs from eager execution "
                                 f"(max abs diff {np.max(np.abs(a - b)) if a.shape == b.shape else 'shape'})")

    def lower(self, *args: Any, **kwargs: Any) -> Lowered:
        """Trace (or reuse) the graph for these arguments without running it (past `cache_size` too)."""
        compiled, _ = self._lookup(args, kwargs)
        assert compiled is not None
        return Lowered(compiled.graph, compiled.raw, compiled.dumps)


def jit(fn: Callable | None = None, *, explain: bool = False, strict: bool = False, check: bool = False,
        rtol: float = 1e-5, atol: float = 1e-6, dynamic_dims: dict[int, Any] | None = None,
        memory_budget: int | None = None, cache_size: int | None = DEFAULT_CACHE_SIZE):
    """Compile `fn` into a graph per argument signature (shapes, dtypes, devices, static values).

    Args:
        fn: a function of tensors (pytrees allowed); non-tensor arguments are static (part of the key).
        explain: print why each recompilation happens (which argument changed, and where it was called).
        strict: raise TraceError instead of recompiling.
        check: on each compilation, run the optimised graph against the traced one and raise at the first
            node whose value differs beyond (rtol, atol).
        dynamic_dims: ``{argnum: axes}`` of tensor arguments whose sizes may change without recompiling
            (e.g. ``{0: [0]}`` for a batch dimension); see ``ember.compiler.dynamic``.
        memory_budget: bytes the predicted peak must fit in: activations are recomputed where needed
            (``ember.compiler.remat``); MemoryBudgetError names the smallest feasible budget otherwise.
        cache_size: how many graphs (signatures) to keep, as torch.compile's recompile limit; a call
            with a new signature once they are kept runs the function eagerly (same results, uncompiled)
            and the first such call warns (``RecompileLimitWarning``) with the reason. None: no limit.

    Returns:
        A callable with the same signature, plus ``.lower(*args)`` for introspection.

    Example:
        >>> import ember
        >>> f = ember.jit(lambda x: (x * 1.0 + 0.0).exp().sum())
        >>> float(f(ember.zeros(3)))
        3.0
    """
    if fn is None:
        return lambda f: jit(f, explain=explain, strict=strict, check=check, rtol=rtol, atol=atol,
                             dynamic_dims=dynamic_dims, memory_budget=memory_budget, cache_size=cache_size)
    return Jitted(fn, explain, strict, check, rtol, atol, dynamic_dims, memory_budget, cache_size)
