"""Runs a graph: every node through ``bind`` on real tensors, or straight through its CPU kernels.

Binding (rather than calling kernels directly) keeps compiled functions differentiable with
``backward()`` and composable with the function transforms (``vmap(jit(f))``, ``grad(jit(f))``).
When nothing can observe the intermediate tensors (no gradient recording, or no input or constant
that requires grad; no active transform, no anomaly mode, no comparison run: a compiled training step,
inference under ``no_grad``, a function of plain tensors), a graph
on the CPU runs on arrays instead: each node's kernel is called directly and only the outputs become
tensors, which saves the dispatch of every node (about 20 ms of a 1,400-node GPT step).
"""
from __future__ import annotations

import weakref
from typing import Any, Sequence

from .._core import dtypes
from .._core.dispatch import STATE, bind
from .._core.tensor import Tensor
from ..backends import CPU
from .codegen import build
from .codegen.runtime import FusedKernel
from .ir import Graph, Value
from .memory import inplace_operands
from .program import Program


def run(graph: Graph, inputs: Sequence[Any], trace_values: dict | None = None,
        overrides: dict[int, tuple[tuple, dict]] | None = None,
        destinations: dict[int, Any] | None = None) -> list[Any]:
    """Evaluate `graph` on `inputs` (in the order of ``graph.inputs``); returns the outputs.

    With `trace_values` (a dict), every node's output is also stored there by value id. `overrides` maps
    a node's index to the operands and attributes to use instead of its own (dynamic dimensions).
    `destinations` maps a node's index to an array its result should be written into (see
    :func:`destinations`); a node that cannot write there (another run path) allocates as usual.
    """
    st = STATE.get()
    release, donations, reads_values = _release_plan(graph)
    # (with gradient recording on, a graph none of whose inputs and constants requires grad records
    # nothing either)
    unobserved = trace_values is None and not (st.grad and _differentiable(graph, inputs))
    if unobserved and reads_values and not st.traces and not st.anomaly and _on_cpu(graph, inputs):
        return _run_arrays(graph, inputs, release, {} if overrides else donations, destinations or {},
                           overrides or {})
    env: dict[int, Any] = {v.id: t for v, t in zip(graph.inputs, inputs)}
    env.update(graph.constants)
    # In-place reuse (the memory plan's "reuse" buffers) only when nothing records the operands for a
    # backward pass or keeps them for comparison, the shapes are the traced ones, and kernels are
    # generated (one output allocation each)
    in_place = unobserved and not overrides and bool(donations) and build.compiler_available()
    for k, node in enumerate(graph.nodes):
        operands, attrs = overrides[k] if overrides and k in overrides else (node.operands, node.attrs)
        args = [env[o.id] if isinstance(o, Value) else o.value for o in operands]
        donor = args[donations[k]] if in_place and k in donations else None
        donated = isinstance(donor, Tensor) and _donatable(donor) and CPU.pool.donate(donor._data)
        try:
            out = bind(node.prim, *args, **attrs)
        finally:
            if donated:
                CPU.pool.end_donation()
        env[node.outputs[0].id] = out
        if trace_values is not None:
            trace_values[node.outputs[0].id] = out
        for vid in release[k]:  # values no later node reads: their buffers can return to the pool
            del env[vid]
    return [env[v.id] for v in graph.outputs]


def _differentiable(graph: Graph, inputs: Sequence[Any]) -> bool:
    """Whether an input or constant of `graph` requires grad (so that its outputs may)."""
    return any(t._requires_grad for t in inputs) or any(t._requires_grad for t in graph.constants.values())


def _on_cpu(graph: Graph, inputs: Sequence[Any]) -> bool:
    """True if every input and constant is a CPU tensor."""
    tensors = list(inputs) + list(graph.constants.values())
    return bool(tensors) and all(isinstance(t, Tensor) and t._device.backend is CPU for t in tensors)


def _run_arrays(graph: Graph, inputs: Sequence[Any], release: tuple, donations: dict,
                destinations: dict, overrides: dict) -> list[Any]:
    """The graph on NumPy arrays through each primitive's CPU kernel, as generated code (see
    :mod:`.program`); the outputs wrapped as tensors. `overrides`: node index -> (operands, attributes)
    to use instead of the node's (dynamic sizes)."""
    device = (list(inputs) + list(graph.constants.values()))[0]._device
    in_place = bool(donations) and build.compiler_available()
    key = (in_place, tuple(destinations), tuple(overrides))
    programs = _PROGRAMS.get(graph)
    if programs is None:
        programs = _PROGRAMS[graph] = {}
    program = programs.get(key)
    if program is None:
        program = programs[key] = Program(graph, release, donations if in_place else {}, key[1], key[2])
    arrays = [t._data for t in inputs] + [t._data for t in graph.constants.values()]
    return [Tensor._make(a, dtypes._BY_NP[a.dtype], device)
            for a in program(arrays, destinations, overrides, device)]


# graph -> {(in-place reuse, destination nodes, overridden nodes): its Program}; weak, like _RELEASE
_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# graph -> its release plan; weak, so that a graph the jit cache drops is freed with its tensors
_RELEASE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _donatable(t: Tensor) -> bool:
    """A CPU tensor that is no view of another (its storage is its own)."""
    return t._device.backend is CPU and getattr(t, "_base", None) is None


def _release_plan(graph: Graph) -> tuple:
    """For each node, the intermediate values whose last reader it is; the nodes that may write over an
    operand (node index -> operand position; see :func:`memory.inplace_operands`); and whether every
    node reads a value (creation nodes need ``bind`` for their device). Cached per graph."""
    plan = _RELEASE.get(graph)
    if plan is not None:
        return plan
    keep = {v.id for v in graph.outputs} | {v.id for v in graph.inputs} | set(graph.constants)
    last: dict[int, int] = {}
    for k, node in enumerate(graph.nodes):
        last[node.outputs[0].id] = k  # a value nothing reads is released right after it is made
        for o in node.operands:
            if isinstance(o, Value):
                last[o.id] = k
    release: list[list[int]] = [[] for _ in graph.nodes]
    for vid, k in last.items():
        if vid not in keep:
            release[k].append(vid)
    reads_values = all(any(isinstance(o, Value) for o in n.operands) for n in graph.nodes)
    result = (tuple(tuple(r) for r in release), inplace_operands(graph), reads_values)
    _RELEASE[graph] = result
    return result


def destinations(graph: Graph, targets: dict[int, Value]) -> dict[int, int]:
    """Which graph outputs may be computed straight into the memory of the tensor they replace.

    `targets` maps an output's position in ``graph.outputs`` to the graph input or constant holding the
    tensor it will be copied into (a parameter, an optimiser state tensor). The output's producer may
    write into that tensor when it is a fused elementwise kernel (one output allocated once, each
    element written after the operands at its index are read) of the tensor's shape and dtype, and no
    later node reads the tensor (directly or through a view). Returns node index -> output position.
    """
    producer = {n.outputs[0].id: k for k, n in enumerate(graph.nodes)}
    last = _last_reads(graph)
    chosen: dict[int, int] = {}
    for pos, holder in targets.items():
        v = graph.outputs[pos]
        k = producer.get(v.id)
        if k is None or k in chosen or v.shape != holder.shape or v.dtype is not holder.dtype:
            continue
        kernel = graph.nodes[k].prim.kernels.get("cpu")
        if not isinstance(kernel, FusedKernel) or kernel.reduce_dims or len(kernel.outputs) != 1:
            continue
        if last.get(holder.id, -1) <= k and sum(o.id == v.id for o in graph.outputs) == 1:
            chosen[k] = pos
    return chosen


def _last_reads(graph: Graph) -> dict[int, int]:
    """Value id -> index of the last node reading it or any view of it (views of views included; a
    node reading it through a view counts as reading it after itself), ``len(nodes)`` for returned
    values."""
    root: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, n in enumerate(graph.nodes):
        for o in n.operands:
            if isinstance(o, Value):
                r = root.get(o.id, o.id)
                # a node reading a view of a value cannot write over the value: mark it as read later
                last[r] = max(last.get(r, -1), k if r == o.id else k + 1)
        if n.prim.view and n.operands and isinstance(n.operands[0], Value):
            root[n.outputs[0].id] = root.get(n.operands[0].id, n.operands[0].id)
    for v in graph.outputs:  # returned values (and the values they are views of) are read at the end
        last[root.get(v.id, v.id)] = len(graph.nodes)
    return last


def updates_last(graph: Graph, chosen: set[int]) -> tuple[Graph, dict[int, int]] | None:
    """`graph` with the `chosen` nodes (those computing into tensors in place) and everything reading
    their results moved after all other nodes, and the chosen nodes' new indices; None if one of those
    readers is neither chosen nor a view (it could fail after a tensor was overwritten). Run so, a step
    that fails, whatever the node, fails before it has changed any tensor: the in-place writes are the
    last thing it does, and they allocate nothing."""
    tainted: set[int] = set()  # ids of values computed from a chosen node's result
    head, tail = [], []
    for k, n in enumerate(graph.nodes):
        if k in chosen or any(isinstance(o, Value) and o.id in tainted for o in n.operands):
            if k not in chosen and not n.prim.view:
                return None
            tainted.update(v.id for v in n.outputs)
            tail.append(k)
        else:
            head.append(k)
    order = head + tail
    moved = Graph(graph.inputs, [graph.nodes[k] for k in order], graph.outputs, graph.constants,
                  graph.const_values)
    return moved, {old: new for new, old in enumerate(order) if old in chosen}
