"""The memory planner: live ranges over the schedule, one arena with reuse, the predicted peak.

The schedule is the graph's node order: node ``i`` runs at step ``i``. A value produced by node ``i`` is
live from step ``i`` to the last step that reads it (to the last step if it is a graph output); an
operand is still live while the node reading it writes its outputs. Inputs and constants are live
throughout and are not placed in the arena (their memory belongs to the caller).

Outputs of view primitives (reshape, transpose, slicing) take no memory: they alias the buffer they
view, whose live range is extended to cover theirs. In-place reuse: an elementwise node (a formula
primitive or a fused group with one output) whose operand of the same shape and float dtype dies at it
(no view of it, not a graph output) writes its result into that operand's buffer; its output is then a
``reuse`` buffer aliasing the operand's (see :func:`inplace_operands`; the executor hands the buffer
over when no gradient is being recorded). Every other intermediate is placed in one arena by
greedy best-fit in order of decreasing size (the "greedy by size" planner of mobile inference engines):
a buffer goes into the smallest gap, between buffers whose live ranges overlap its own, that holds it,
else above them all. Sizes and offsets are multiples of the alignment (64 bytes).

The peak is the largest total of live bytes at any step (the least any allocator can do); the arena may
be larger through fragmentation and alignment. Sub-graphs of control-flow nodes are not planned here:
their results are counted, their scratch memory is not.
"""
from __future__ import annotations

from typing import Any

from .ir import Graph, Value

__all__ = ["Buffer", "MemoryPlan", "base_ranges", "inplace_operands", "live_ranges", "plan"]

ALIGNMENT = 64


def nbytes(v: Value) -> int:
    """Bytes of the tensor that `v` stands for."""
    n = v.dtype.itemsize
    for s in v.shape:
        n *= s
    return n


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


class Buffer:
    """One value's place in the plan: its live range ``[start, end]`` (steps, inclusive) and arena offset.

    Inputs and constants have ``offset`` None (they live outside the arena); a view has ``alias_of`` set
    to the value it shares memory with and no bytes of its own.
    """

    __slots__ = ("value", "op", "bytes", "size", "start", "end", "offset", "alias_of", "kind")

    def __init__(self, value: Value, op: str, kind: str, start: int, end: int):
        self.value = value
        self.op = op
        self.kind = kind  # "input", "constant", "intermediate", "view" or "reuse" (in place)
        self.bytes = 0 if kind in ("view", "reuse") else nbytes(value)
        self.size = 0
        self.start, self.end = start, end
        self.offset: int | None = None
        self.alias_of: int | None = None

    def overlaps(self, other: "Buffer") -> bool:
        """True if the two live ranges share a step."""
        return self.start <= other.end and other.start <= self.end

    def as_dict(self) -> dict[str, Any]:
        v = self.value
        return {"value": v.id, "op": self.op, "kind": self.kind, "shape": v.shape, "dtype": v.dtype.name,
                "bytes": self.bytes, "offset": self.offset, "live": (self.start, self.end),
                "alias_of": self.alias_of}

    def __repr__(self) -> str:
        return (f"Buffer(%{self.value.id} {self.op} {self.bytes}B @{self.offset} "
                f"live {self.start}..{self.end})")


def live_ranges(graph: Graph) -> dict[int, Buffer]:
    """A :class:`Buffer` (live range, kind, no offset yet) for every value of `graph`, by value id."""
    bufs = base_ranges(graph)
    for i, position in inplace_operands(graph, bufs).items():
        out, src = bufs[graph.nodes[i].outputs[0].id], bufs[graph.nodes[i].operands[position].id]
        root_id = src.alias_of if src.alias_of is not None else src.value.id
        out.kind, out.bytes, out.alias_of = "reuse", 0, root_id
        root = bufs[out.alias_of]
        root.end = max(root.end, out.end)
    return bufs


def base_ranges(graph: Graph) -> dict[int, Buffer]:
    """Live ranges with views resolved, before in-place reuse."""
    last = max(len(graph.nodes) - 1, 0)
    bufs: dict[int, Buffer] = {}
    for v in graph.inputs:
        bufs[v.id] = Buffer(v, "input", "input", 0, last)
    for v in graph.const_values:
        bufs[v.id] = Buffer(v, "constant", "constant", 0, last)
    for i, n in enumerate(graph.nodes):
        kind = "view" if n.prim.view and isinstance(n.operands[0], Value) else "intermediate"
        for v in n.outputs:
            bufs[v.id] = Buffer(v, n.prim.name, kind, i, i)
        for o in n.operands:
            if isinstance(o, Value):
                bufs[o.id].end = max(bufs[o.id].end, i)
    for v in graph.outputs:
        bufs[v.id].end = last
    _resolve_views(graph, bufs)
    return bufs


_FLOATS = ("float32", "float64")


def _elementwise_in_place(prim) -> bool:
    """True for primitives whose CPU kernel may write its result over an operand of the result's shape:
    formula primitives (one generated loop or one ufunc) and fused groups with one output and no sum."""
    if prim.formula is not None:
        return True
    kernel = prim.kernels.get("cpu")
    return prim.name.startswith("fused_") and getattr(kernel, "reduce_dims", 1) == 0 \
        and len(getattr(kernel, "outputs", ())) == 1


def inplace_operands(graph: Graph, bufs: dict[int, Buffer] | None = None) -> dict[int, int]:
    # `bufs`: the ranges of :func:`base_ranges` (before reuse), when the caller has them
    """For each node that can run in place, the position of the operand whose buffer it reuses.

    The operand must be an intermediate of the result's shape and float dtype whose last reader is the
    node, that no view aliases and that is read once by the node; its buffer then holds the result.
    """
    if bufs is None:
        bufs = base_ranges(graph)
    aliased = {b.alias_of for b in bufs.values() if b.alias_of is not None}
    outputs = {v.id for v in graph.outputs}
    pairs: dict[int, int] = {}
    for i, n in enumerate(graph.nodes):
        if len(n.outputs) != 1 or not _elementwise_in_place(n.prim):
            continue
        out = n.outputs[0]
        if out.dtype.name not in _FLOATS:
            continue
        ids = [o.id for o in n.operands if isinstance(o, Value)]
        for position, o in enumerate(n.operands):
            if not isinstance(o, Value) or o.shape != out.shape or o.dtype is not out.dtype:
                continue
            b = bufs[o.id]
            if b.kind == "intermediate" and b.end == i and o.id not in aliased and o.id not in outputs \
                    and ids.count(o.id) == 1:
                pairs[i] = position
                break
    return pairs


def _resolve_views(graph: Graph, bufs: dict[int, Buffer]) -> None:
    """Point each view at the buffer it aliases and stretch that buffer's range over the view's."""
    roots: dict[int, int] = {}
    for n in graph.nodes:
        if bufs[n.outputs[0].id].kind == "view":
            src = n.operands[0].id
            roots[n.outputs[0].id] = roots.get(src, src)
    for n in reversed(graph.nodes):  # latest views first, so chains of views stretch their base
        vid = n.outputs[0].id
        if vid in roots:
            src = bufs[n.operands[0].id]
            src.end = max(src.end, bufs[vid].end)
    for vid, root in roots.items():
        bufs[vid].alias_of = root


def _best_fit(buf: Buffer, placed: list[Buffer]) -> int:
    """The offset of the smallest gap among the overlapping placed buffers that holds `buf`."""
    busy = sorted((p for p in placed if p.overlaps(buf) and p.size), key=lambda p: p.offset or 0)
    best, best_gap, top = None, None, 0
    for p in busy:
        offset = p.offset or 0  # placed buffers always have one
        gap = offset - top
        if gap >= buf.size and (best_gap is None or gap < best_gap):
            best, best_gap = top, gap
        top = max(top, offset + p.size)
    return top if best is None else best


class MemoryPlan:
    """The result of :func:`plan`: buffers by value id, arena size and predicted peak."""

    def __init__(self, buffers: dict[int, Buffer], arena_bytes: int, peak_bytes: int, alignment: int):
        self.buffers = buffers
        self.arena_bytes = arena_bytes
        self.peak_bytes = peak_bytes
        self.alignment = alignment

    def _total(self, kind: str) -> int:
        return sum(b.bytes for b in self.buffers.values() if b.kind == kind)

    def as_dict(self) -> dict[str, Any]:
        """``peak_bytes``, ``arena_bytes``, ``input_bytes``, ``constant_bytes``, ``alignment`` and
        ``buffers`` (one dict per value: id, op, kind, shape, dtype, bytes, offset, live range, alias)."""
        return {"peak_bytes": self.peak_bytes, "arena_bytes": self.arena_bytes,
                "input_bytes": self._total("input"), "constant_bytes": self._total("constant"),
                "alignment": self.alignment, "buffers": [b.as_dict() for b in self.buffers.values()]}


def peak_bytes(bufs: dict[int, Buffer], steps: int) -> int:
    """The largest total of bytes live at one step."""
    delta = [0] * (max(steps, 1) + 1)
    for b in bufs.values():
        delta[b.start] += b.bytes
        delta[b.end + 1] -= b.bytes
    peak = live = 0
    for d in delta:
        live += d
        peak = max(peak, live)
    return peak


def plan(graph: Graph, alignment: int = ALIGNMENT) -> MemoryPlan:
    """Plan the memory of `graph`: live ranges, arena offsets for intermediates, predicted peak.

    Args:
        graph: the graph to plan (its node order is the schedule).
        alignment: every arena offset and size is a multiple of this many bytes.

    Returns:
        A :class:`MemoryPlan`; ``plan(g).as_dict()`` is what ``Lowered.memory()`` reports.

    Example:
        >>> import ember
        >>> f = ember.jit(lambda x: ((x * 2).exp() + 1).sum())
        >>> p = plan(f.lower(ember.ones(1024)).graph)
        >>> p.arena_bytes >= 4096 and p.peak_bytes >= 8192
        True
    """
    bufs = live_ranges(graph)
    arena = [b for b in bufs.values() if b.kind == "intermediate"]
    for b in arena:
        b.size = _align(b.bytes, alignment)
    placed: list[Buffer] = []
    for b in sorted(arena, key=lambda b: (-b.size, b.start, b.value.id)):
        b.offset = _best_fit(b, placed)
        placed.append(b)
    for b in bufs.values():
        if b.alias_of is not None:
            b.offset = bufs[b.alias_of].offset  # views and in-place results share their root's place
    size = max(((b.offset or 0) + b.size for b in arena), default=0)
    return MemoryPlan(bufs, size, peak_bytes(bufs, len(graph.nodes)), alignment)
