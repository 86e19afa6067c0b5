"""Rematerialisation: fit a graph's predicted peak memory under a budget by recomputing activations.

At the step where the most bytes are live, a value that is resting there (made before, read only after)
is recomputed just before its next reader instead of being kept: the producing node is copied in front
of the first later use, and the later uses read the copy. Only nodes whose operands are alive at that
point anyway (or are inputs and constants) are copied, so one recomputation never extends another
value's life. The greedy loop repeats until the peak fits or nothing resting remains; then the smallest
peak it reached is reported.
"""
from __future__ import annotations

from .._core.errors import EmberError
from .ir import Graph, Node, Value, verify
from .memory import base_ranges

# Copying these costs real work; they are chosen only when cheap candidates run out.
_EXPENSIVE = {"matmul", "conv", "conv_input_grad", "conv_weight_grad", "einsum"}


class MemoryBudgetError(EmberError, MemoryError):
    """The memory budget cannot be met by recomputation."""


def live_bytes(graph: Graph) -> tuple[list[int], dict]:
    """Bytes live at each step (views count nothing of their own) and the buffers by value id.

    In-place reuse is left out: recomputation works on each value's own buffer, so the peak it reaches
    is an upper bound of the executed one (which reuses dying operands' buffers where it can)."""
    bufs = base_ranges(graph)
    steps = max(len(graph.nodes), 1)
    diff = [0] * (steps + 1)
    for b in bufs.values():
        if b.bytes:
            diff[b.start] += b.bytes
            diff[b.end + 1] -= b.bytes
    live, total = [], 0
    for k in range(steps):
        total += diff[k]
        live.append(total)
    return live, bufs


def _uses(graph: Graph) -> dict[int, list[int]]:
    uses: dict[int, list[int]] = {}
    for k, n in enumerate(graph.nodes):
        for o in n.operands:
            if isinstance(o, Value):
                uses.setdefault(o.id, []).append(k)
    return uses


def _family(bufs: dict) -> dict[int, list[int]]:
    """For each buffer that views alias, the ids of those views (directly or through other views)."""
    family: dict[int, list[int]] = {}
    for b in bufs.values():
        if b.alias_of is not None:
            family.setdefault(b.alias_of, []).append(b.value.id)
    return family


def _candidate(graph: Graph, bufs: dict, uses: dict, t: int, keep: set) -> tuple | None:
    """The best (node indices to copy, first later step, later readers) that frees a buffer resting across
    step `t`, or None. A buffer's views come along: they are cheap and read it."""
    family = _family(bufs)
    best, best_score = None, 0.0
    for b in bufs.values():
        vid = b.value.id
        if b.kind != "intermediate" or not b.bytes or vid in keep or not b.start < t < b.end:
            continue
        members = [vid] + family.get(vid, [])
        if any(m in keep for m in members):
            continue
        reads = sorted({u for m in members for u in uses.get(m, [])})
        view_nodes = sorted(bufs[m].start for m in members[1:])
        if t in reads or t in view_nodes:
            continue
        late = [u for u in reads if u > t]
        if not late:
            continue
        first = late[0]
        chain = _chain(graph, bufs, b.start, first, depth=6)
        if chain is None:
            continue
        chain = chain + view_nodes
        expensive = sum(graph.nodes[k].prim.name in _EXPENSIVE for k in chain)
        score = b.bytes / (1.0 + 7.0 * expensive) / len(chain)
        if score > best_score:
            best, best_score = (chain, first, late), score
    return best


def _chain(graph: Graph, bufs: dict, producer: int, first: int, depth: int) -> list[int] | None:
    """Producer indices to copy, in order, so that `producer`'s value can be remade at step `first`:
    operands not alive there are remade too (up to `depth` levels), or None."""
    node = graph.nodes[producer]
    chain: list[int] = []
    for o in node.operands:
        if _alive(o, bufs, first):
            continue
        b = bufs[o.id]
        if depth == 0 or b.kind not in ("intermediate", "view"):
            return None
        sub = _chain(graph, bufs, b.start, first, depth - 1)
        if sub is None:
            return None
        chain.extend(k for k in sub if k not in chain)
    chain.append(producer)
    return chain


def _alive(operand, bufs: dict, step: int) -> bool:
    """Is `operand` available at `step` without extending any life (a literal, input, constant or live)?"""
    if not isinstance(operand, Value):
        return True
    b = bufs[operand.id]
    return b.kind in ("input", "constant") or b.end >= step


def _recompute(graph: Graph, chain: list[int], first: int, late: list[int], new_id: int
               ) -> tuple[Graph, int]:
    """Insert copies of the `chain` nodes before step `first`; the `late` readers read the copies.
    Returns the new graph and the next free value id."""
    renamed: dict[int, Value] = {}
    copies = []
    for k in chain:
        node = graph.nodes[k]
        out = node.outputs[0]
        copy = Value(new_id, out.shape, out.dtype)
        new_id += 1
        operands = tuple(renamed.get(o.id, o) if isinstance(o, Value) else o for o in node.operands)
        copies.append(Node(node.prim, operands, node.attrs, (copy,), node.where))
        renamed[out.id] = copy
    late_set = set(late)
    nodes = []
    for k, n in enumerate(graph.nodes):
        if k == first:
            nodes.extend(copies)
        if k in late_set:
            operands = tuple(renamed.get(o.id, o) if isinstance(o, Value) else o for o in n.operands)
            n = Node(n.prim, operands, n.attrs, n.outputs, n.where)
        nodes.append(n)
    return Graph(graph.inputs, nodes, graph.outputs, graph.constants, graph.const_values), new_id


def rematerialize(graph: Graph, budget: int, max_steps: int = 10_000) -> Graph:
    """A graph computing the same outputs whose predicted peak is at most `budget` bytes.

    Raises:
        MemoryBudgetError: naming the smallest peak that recomputation reached.
    """
    keep = {v.id for v in graph.outputs}
    next_id = max((v.id for v in graph.values()), default=-1) + 1
    best = None
    for _ in range(max_steps):
        live, bufs = live_bytes(graph)
        peak = max(live, default=0)
        best = peak if best is None else min(best, peak)
        if peak <= budget:
            verify(graph)
            return graph
        t = live.index(peak)
        choice = _candidate(graph, bufs, _uses(graph), t, keep)
        if choice is None:
            break
        chain, first, late = choice
        graph, next_id = _recompute(graph, chain, first, late, next_id)
    raise MemoryBudgetError("jit", f"memory_budget of {budget} bytes cannot be met by recomputing "
                            f"activations; the smallest feasible budget found is {best} bytes")
