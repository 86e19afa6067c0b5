"""Graph → Graph passes. Each is small, testable alone, and keeps the program's outputs.

The pipeline is a readable list (:data:`PIPELINE`); :func:`run_pipeline` applies it and can keep the
text of the graph before and after every pass.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .._core.dispatch import bind, state_changed
from .._core.primitive import PRIMITIVES
from .ir import Graph, Literal, Node, Value, verify


def _rename(g: Graph, mapping: dict[int, Value]) -> Graph:
    """`g` with every use of value id k replaced by mapping[k]."""
    def sub(o):
        while isinstance(o, Value) and o.id in mapping:
            o = mapping[o.id]
        return o

    nodes = [Node(n.prim, tuple(sub(o) for o in n.operands), n.attrs, n.outputs, n.where) for n in g.nodes]
    return Graph(g.inputs, nodes, [sub(v) for v in g.outputs], g.constants, g.const_values)


def dce(g: Graph) -> Graph:
    """Dead-code elimination: drop nodes whose outputs nothing uses (primitives are pure)."""
    live = {v.id for v in g.outputs}
    kept = []
    for n in reversed(g.nodes):
        if any(v.id in live for v in n.outputs):
            kept.append(n)
            live.update(o.id for o in n.operands if isinstance(o, Value))
    consts = [v for v in g.const_values if v.id in live]
    return Graph(g.inputs, list(reversed(kept)), g.outputs, {v.id: g.constants[v.id] for v in consts}, consts)


def drop_stop_gradients(g: Graph) -> Graph:
    """Remove ``stop_gradient`` nodes (their uses read the operand): for graphs that will not be
    differentiated (nothing they read requires grad, or a training step run without recording), where
    the nodes would only stand between fusable operations."""
    mapping = {n.outputs[0].id: n.operands[0] for n in g.nodes if n.prim.name == "stop_gradient"}
    return dce(_rename(g, mapping)) if mapping else g


def _key(n: Node):
    ops = tuple(("v", o.id) if isinstance(o, Value) else ("l", repr(o)) for o in n.operands)
    try:
        attrs = tuple(sorted((k, repr(v)) for k, v in n.attrs.items()))
    except TypeError:
        return None
    return (n.prim.name, ops, attrs)


def cse(g: Graph) -> Graph:
    """Common-subexpression elimination: a node equal to an earlier one (same primitive, operands and
    attributes) is replaced by it."""
    seen: dict = {}
    mapping: dict[int, Value] = {}
    nodes = []
    for n in _rename(g, {}).nodes:
        n = Node(n.prim, tuple(mapping.get(o.id, o) if isinstance(o, Value) else o for o in n.operands),
                 n.attrs, n.outputs, n.where)
        key = _key(n)
        if key is not None and key in seen:
            for old, new in zip(n.outputs, seen[key].outputs):
                mapping[old.id] = new
            continue
        if key is not None:
            seen[key] = n
        nodes.append(n)
    return _rename(Graph(g.inputs, nodes, g.outputs, g.constants, g.const_values), mapping)


def _is_literal(o, value: float) -> bool:
    return isinstance(o, Literal) and not isinstance(o.value, (bool, complex)) and float(o.value) == value


def _identity_of(n: Node, producers: dict[int, Node]) -> Value | None:
    """The value `n` merely passes through (x*1, x+0, x-0, x/1, transpose∘transpose, reshape to the same
    shape, a row-major copy of a product), or None."""
    name, ops = n.prim.name, n.operands
    out = n.outputs[0]

    def same(v) -> bool:
        return isinstance(v, Value) and v.shape == out.shape and v.dtype is out.dtype

    if name == "mul" and len(ops) == 2:
        for a, b in (ops, ops[::-1]):
            if _is_literal(b, 1.0) and same(a):
                return a
    if name == "add" and len(ops) == 2:
        for a, b in (ops, ops[::-1]):
            if _is_literal(b, 0.0) and same(a):
                return a
    if name in ("sub", "div") and len(ops) == 2 and _is_literal(ops[1], 0.0 if name == "sub" else 1.0) \
            and same(ops[0]):
        return ops[0]
    if name in ("reshape", "broadcast_to", "convert_element_type") and same(ops[0]):
        return ops[0]
    if name == "contiguous" and same(ops[0]) and ops[0].id in producers:
        if producers[ops[0].id].prim.name == "matmul":  # (the layout rewrite below leaves such copies)
            return ops[0]  # a product is written into a new row-major array
    if name == "transpose" and isinstance(ops[0], Value) and ops[0].id in producers:
        inner = producers[ops[0].id]
        if inner.prim.name == "transpose":
            composed = tuple(inner.attrs["perm"][p] for p in n.attrs["perm"])
            if composed == tuple(range(len(composed))) and same(inner.operands[0]):
                return inner.operands[0]
    return None


def _leading_ones_only(a: tuple, b: tuple) -> bool:
    """True if shapes `a` and `b` differ only by leading 1s (``(1, 1, 32)`` and ``(32,)``)."""
    a, b = tuple(a), tuple(b)
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    lead = len(long) - len(short)
    return long[lead:] == short and all(d == 1 for d in long[:lead])


def _fold_broadcasts(n: Node, producers: dict[int, Node]) -> Node:
    """Broadcast folding: an elementwise operand made by ``broadcast_to``, or by a ``reshape`` that only
    adds or removes leading 1s, is replaced by that node's source when the other operands still
    broadcast it to the node's output shape (elementwise primitives broadcast their operands themselves,
    so the expanded copy is never needed, and leading 1s do not change a broadcast)."""
    if n.prim.formula is None or len(n.operands) < 2:
        return n
    ops = list(n.operands)
    out_shape = n.outputs[0].shape
    for i, o in enumerate(ops):
        inner = producers.get(o.id) if isinstance(o, Value) else None
        if inner is None or not isinstance(inner.operands[0], Value):
            continue
        if inner.prim.name != "broadcast_to" and not (
                inner.prim.name == "reshape" and _leading_ones_only(inner.operands[0].shape, o.shape)):
            continue
        trial = ops[:i] + [inner.operands[0]] + ops[i + 1:]
        try:
            shape = np.broadcast_shapes(*(v.shape for v in trial if isinstance(v, Value)))
        except ValueError:
            continue
        if tuple(shape) == tuple(out_shape):
            ops = trial
    return n if ops == list(n.operands) else Node(n.prim, tuple(ops), n.attrs, n.outputs, n.where)


def _sink_broadcast(n: Node, producers: dict[int, Node], new_id: int) -> list[Node] | None:
    """``f(broadcast_to(x))`` for a one-operand elementwise `f` becomes ``broadcast_to(f(x))``: `f` runs
    on the small tensor, and the broadcast can then fold into the elementwise node that reads it."""
    if n.prim.formula is None or len(n.operands) != 1 or not isinstance(n.operands[0], Value):
        return None
    inner = producers.get(n.operands[0].id)
    if inner is None or inner.prim.name != "broadcast_to" or not isinstance(inner.operands[0], Value):
        return None
    src, out = inner.operands[0], n.outputs[0]
    small = Value(new_id, src.shape, out.dtype)
    return [Node(n.prim, (src,), n.attrs, (small,), n.where),
            Node(inner.prim, (small,), inner.attrs, (out,), inner.where)]


def _sink_reshape(n: Node, producers: dict[int, Node], new_id: int) -> list[Node] | None:
    """``f(reshape(x), y)`` for an elementwise `f` whose tensor operands all have the output's shape
    (or are 0-d: those broadcast to any shape) becomes ``reshape(f(x, reshape(y)))``: `f` then runs in
    the shape of `x` and can fuse with the elementwise node that made `x` (a linear layer's bias add and
    the activation or residual add that follows it, split by the reshape of the batch dimensions; an
    optimiser update scaled by a learning rate read at run time)."""
    if n.prim.formula is None or len(n.outputs) != 1:
        return None
    out = n.outputs[0]
    values = [o for o in n.operands if isinstance(o, Value) and o.shape != ()]
    if not values or any(v.shape != out.shape for v in values):
        return None
    source = None
    for v in values:
        inner = producers.get(v.id)
        if inner is not None and inner.prim.name == "reshape" and isinstance(inner.operands[0], Value):
            source = inner
            break
    if source is None:
        return None
    shape, where = source.operands[0].shape, source.where
    nodes: list[Node] = []
    operands = []
    for o in n.operands:
        inner = producers.get(o.id) if isinstance(o, Value) else None
        if not isinstance(o, Value) or o.shape == ():
            operands.append(o)
        elif inner is not None and inner.prim.name == "reshape" and isinstance(inner.operands[0], Value) \
                and inner.operands[0].shape == shape:
            operands.append(inner.operands[0])
        else:
            moved = Value(new_id + len(nodes), shape, o.dtype)
            nodes.append(Node(source.prim, (o,), {**source.attrs, "shape": tuple(shape)}, (moved,), where))
            operands.append(moved)
    small = Value(new_id + len(nodes), shape, out.dtype)
    nodes.append(Node(n.prim, tuple(operands), n.attrs, (small,), n.where))
    nodes.append(Node(source.prim, (small,), {**source.attrs, "shape": tuple(out.shape)}, (out,), where))
    return nodes


def _drop_kept_dims(n: Node, inner: Node, uses: dict[int, int]) -> Node:
    """``reshape(reduce_sum(x, axis, keepdims=True))`` to the sum's shape without the kept 1s becomes
    ``reduce_sum(x, axis, keepdims=False)`` when nothing else reads the kept sum (the same sum; the
    gradient of a broadcast bias is such a pair). The reshape would otherwise sink below the elementwise
    nodes that read it and make them, an optimiser's update of the bias, run in the kept shape between
    reshapes (and their results be reshaped back)."""
    axis = inner.attrs.get("axis")
    if inner.prim.name != "reduce_sum" or not inner.attrs.get("keepdims") or not isinstance(axis, tuple) \
            or uses.get(inner.outputs[0].id, 0) != 1 or not isinstance(inner.operands[0], Value):
        return n
    x = inner.operands[0]
    axes = {a % len(x.shape) for a in axis} if x.shape else set()
    if tuple(n.outputs[0].shape) != tuple(d for i, d in enumerate(x.shape) if i not in axes):
        return n
    return Node(inner.prim, (x,), {**inner.attrs, "keepdims": False}, n.outputs, inner.where)


def _swaps_last_two(perm) -> bool:
    k = len(perm)
    return k >= 2 and tuple(perm) == tuple(range(k - 2)) + (k - 1, k - 2)


def _transpose_matmul(n: Node, producers: dict[int, Node], uses: dict[int, int],
                      new_id: int) -> list[Node] | None:
    """Layout: ``transpose(matmul(a, b))`` (last two axes) becomes ``matmul(bᵀ, aᵀ)`` when nothing else
    reads the product. BLAS reads transposed operands in place, so the result comes out contiguous in
    the layout its readers want; a linear layer's weight gradient is such a transposed product, which
    the optimiser update would otherwise copy into row-major order first."""
    if n.prim.name != "transpose" or not _swaps_last_two(n.attrs["perm"]) \
            or not isinstance(n.operands[0], Value):
        return None
    mm = producers.get(n.operands[0].id)
    if mm is None or mm.prim.name != "matmul" or uses.get(n.operands[0].id, 0) != 1:
        return None
    a, b = mm.operands
    rank = len(n.outputs[0].shape)
    if not (isinstance(a, Value) and isinstance(b, Value) and len(a.shape) == len(b.shape) == rank):
        return None
    nodes: list[Node] = []

    def transposed(v: Value) -> Value:
        inner = producers.get(v.id)
        if inner is not None and inner.prim.name == "transpose" and tuple(inner.attrs["perm"]) == \
                tuple(n.attrs["perm"]) and isinstance(inner.operands[0], Value):
            return inner.operands[0]
        out = Value(new_id + len(nodes), tuple(v.shape[:-2]) + (v.shape[-1], v.shape[-2]), v.dtype)
        nodes.append(Node(n.prim, (v,), dict(n.attrs), (out,), n.where))
        return out

    bt, at = transposed(b), transposed(a)
    nodes.append(Node(mm.prim, (bt, at), dict(mm.attrs), n.outputs, mm.where))
    return nodes


def _relu_mask_before_scatter(n: Node, producers: dict[int, Node], uses: dict[int, int],
                              new_id: int) -> list[Node] | None:
    """``relu_vjp_x(h, pool_scatter(g, pool_argmax(y, p)))`` with ``y = relu(h)`` and ``p = max_pool(y)``
    becomes ``pool_scatter(relu_vjp_x(p, g), ...)``: the max-pool gradient is nonzero only where a
    window's maximum sits, and there ``h > 0`` exactly when the pooled maximum ``p > 0`` (ties and NaN
    alike), so the ReLU's mask goes on the pooled gradient (a quarter of the elements for 2 x 2 windows)
    instead of a pass over the full-size one; the pre-activation ``h`` is then often no longer kept."""
    if n.prim.name != "relu_vjp_x" or not all(isinstance(o, Value) for o in n.operands):
        return None
    h, s = n.operands
    scatter = producers.get(s.id)
    if scatter is None or scatter.prim.name != "pool_scatter" or uses.get(s.id, 0) != 1:
        return None
    g, idx = scatter.operands
    argmax = producers.get(idx.id) if isinstance(idx, Value) else None
    if argmax is None or argmax.prim.name != "pool_argmax":
        return None
    y, p = argmax.operands
    relu, pool = producers.get(y.id), producers.get(p.id)
    if relu is None or relu.prim.name != "relu" or h.id not in (y.id, getattr(relu.operands[0], "id", None)):
        return None
    if pool is None or pool.prim.name != "max_pool" or pool.operands[0].id != y.id \
            or pool.attrs != argmax.attrs or tuple(p.shape) != tuple(g.shape) or p.dtype is not g.dtype:
        return None
    masked = Value(new_id, tuple(g.shape), g.dtype)
    return [Node(n.prim, (p, g), dict(n.attrs), (masked,), n.where),
            Node(scatter.prim, (masked, idx), dict(scatter.attrs), n.outputs, scatter.where)]


def _relu_grad_from_output(n: Node, relu_of: dict[int, Value]) -> Node:
    """``relu_vjp_x(h, g)`` reads ``relu(h)`` instead of ``h`` when the graph computes it (``relu(h) > 0``
    exactly when ``h > 0``, NaN included): the forward pass then need not keep the pre-activation, which
    a fused bias add + ReLU would otherwise return as a second output."""
    if n.prim.name == "relu_vjp_x" and isinstance(n.operands[0], Value) and n.operands[0].id in relu_of:
        return Node(n.prim, (relu_of[n.operands[0].id],) + tuple(n.operands[1:]), n.attrs, n.outputs, n.where)
    return n


def _zero_pad_axis(n: Node) -> int | None:
    """The one axis a zero ``pad`` node pads (no interior padding, nothing cropped), else None."""
    if n.prim.name != "pad" or n.attrs.get("value", 0) != 0 or not isinstance(n.operands[0], Value):
        return None
    padded = [i for i, (lo, hi, interior) in enumerate(n.attrs["config"]) if lo or hi or interior]
    if len(padded) != 1:
        return None
    lo, hi, interior = n.attrs["config"][padded[0]]
    return padded[0] if lo >= 0 and hi >= 0 and not interior else None


def _pieces(v: Value, producers: dict[int, Node], uses: dict[int, int]) -> tuple[int, list] | None:
    """``(axis, [(offset, value), ...])`` if `v` is zeros except for tensors laid side by side along one
    axis (a zero pad, maybe of a ``cat`` along that axis), else None. Values this pass made (absent from
    `uses`) have one reader."""
    pad = producers.get(v.id)
    if pad is None or uses.get(v.id, 0) != 1:
        return None
    axis = _zero_pad_axis(pad)
    if axis is None:
        return None
    src, offset = pad.operands[0], pad.attrs["config"][axis][0]
    inner = producers.get(src.id)
    if inner is not None and inner.prim.name == "cat" and inner.attrs["dim"] % len(src.shape) == axis \
            and uses.get(src.id, 1) == 1 and all(isinstance(o, Value) for o in inner.operands):
        parts = []
        for o in inner.operands:
            parts.append((offset, o))
            offset += o.shape[axis]
        return axis, parts
    return axis, [(offset, src)]


def _pads_to_cat(n: Node, producers: dict[int, Node], uses: dict[int, int], new_id: int) -> list[Node] | None:
    """``pad(a) + pad(b)`` where the pads place `a` and `b` side by side along one axis becomes
    ``pad(cat(a, b))`` (just ``cat`` when they fill the axis): the gradient of a ``split`` (a fused
    q/k/v projection) is such a sum of zero-padded pieces."""
    if n.prim.name != "add" or len(n.operands) != 2 or not all(isinstance(o, Value) for o in n.operands):
        return None
    out = n.outputs[0]
    left, right = (_pieces(o, producers, uses) for o in n.operands)
    if left is None or right is None or left[0] != right[0] \
            or any(o.shape != out.shape or o.dtype is not out.dtype for o in n.operands):
        return None
    axis = left[0]
    parts = sorted(left[1] + right[1], key=lambda p: p[0])
    for (start, v), (nxt, _) in zip(parts, parts[1:]):
        if start + v.shape[axis] != nxt:
            return None
    lo, end = parts[0][0], parts[-1][0] + parts[-1][1].shape[axis]
    pad_node = producers[n.operands[0].id]
    cat_prim = PRIMITIVES["cat"]
    if lo == 0 and end == out.shape[axis]:
        return [Node(cat_prim, tuple(v for _, v in parts), {"dim": axis}, (out,), n.where)]
    shape = tuple(out.shape[:axis]) + (end - lo,) + tuple(out.shape[axis + 1:])
    joined = Value(new_id, shape, out.dtype)
    config = tuple((lo, out.shape[axis] - end, 0) if i == axis else (0, 0, 0) for i in range(len(shape)))
    return [Node(cat_prim, tuple(v for _, v in parts), {"dim": axis}, (joined,), n.where),
            Node(pad_node.prim, (joined,), {**pad_node.attrs, "config": config}, (out,), n.where)]


def _cat_of_merges(n: Node, producers: dict[int, Node], uses: dict[int, int],
                   new_id: int) -> list[Node] | None:
    """``cat([reshape(a), reshape(b)], -1)`` where each reshape merges the last two axes of its operand
    (with a common last extent) becomes ``reshape(cat([a, b], -2))``: the copy that the reshape of a
    transposed operand would make is folded into the one copy the ``cat`` makes (the q/k/v gradients of
    multi-head attention, with their heads transposed back, are such operands)."""
    if n.prim.name != "cat" or len(n.operands) < 2 or not all(isinstance(o, Value) for o in n.operands):
        return None
    out = n.outputs[0]
    rank = len(out.shape)
    if rank == 0 or n.attrs["dim"] % rank != rank - 1:
        return None
    sources = []
    for o in n.operands:
        inner = producers.get(o.id)
        if inner is None or inner.prim.name != "reshape" or uses.get(o.id, 0) != 1 \
                or not isinstance(inner.operands[0], Value):
            return None
        src = inner.operands[0]
        if len(src.shape) != rank + 1 or tuple(src.shape[:-2]) != tuple(o.shape[:-1]):
            return None
        sources.append(src)
    if len({s.shape[-1] for s in sources}) != 1:
        return None
    joined = Value(new_id, tuple(out.shape[:-1]) + (sum(s.shape[-2] for s in sources), sources[0].shape[-1]),
                   out.dtype)
    reshape = producers[n.operands[0].id].prim
    return [Node(n.prim, tuple(sources), {**n.attrs, "dim": rank - 1}, (joined,), n.where),
            Node(reshape, (joined,), {"shape": tuple(out.shape)}, (out,), n.where)]


def simplify(g: Graph, rounds: int = 3) -> Graph:
    """Algebraic simplification: x*1, x+0, x-0, x/1, transpose∘transpose, no-op reshapes/broadcasts/casts,
    row-major copies of products, reshape∘reshape (the inner reshape is skipped), a kept-dims sum
    reshaped to drop those dims as one plain sum, broadcast folding (``add(x, broadcast_to(b))``
    becomes ``add(x, b)`` when `x` already has the output's shape; likewise a reshape adding or
    removing leading 1s), elementwise nodes moved before the broadcast or reshape that feeds them,
    transposed matrix products computed as products of the transposed operands, sums of side-by-side
    zero pads as a ``cat``, and a ``cat`` of merging reshapes as a reshape of a ``cat``. Repeated (up to
    `rounds` times) while the graph changes, since one rewrite can enable another."""
    for _ in range(rounds):
        out = _simplify_once(g)
        if _signature(out) == _signature(g):
            return out
        g = out
    return g


def _signature(g: Graph) -> tuple:
    """The graph's structure: each node's primitive, operand ids and output ids (attributes aside)."""
    return tuple((n.prim.name, tuple(o.id if isinstance(o, Value) else None for o in n.operands),
                  tuple(v.id for v in n.outputs)) for n in g.nodes) + (tuple(v.id for v in g.outputs),)


def _simplify_once(g: Graph) -> Graph:
    """One pass of :func:`simplify` over the nodes in order."""
    mapping: dict[int, Value] = {}
    producers: dict[int, Node] = {}
    relu_of: dict[int, Value] = {}  # value id -> its relu, where the graph computes one
    nodes: list[Node] = []
    next_id = max((v.id for v in g.values()), default=-1) + 1
    uses: dict[int, int] = {}
    for n in g.nodes:
        for o in n.operands:
            if isinstance(o, Value):
                uses[o.id] = uses.get(o.id, 0) + 1
    for v in g.outputs:
        uses[v.id] = uses.get(v.id, 0) + 1
    for n in g.nodes:
        n = Node(n.prim, tuple(mapping.get(o.id, o) if isinstance(o, Value) else o for o in n.operands),
                 n.attrs, n.outputs, n.where)
        target = _identity_of(n, producers)
        if target is not None:
            mapping[n.outputs[0].id] = target
            continue
        n = _relu_grad_from_output(_fold_broadcasts(n, producers), relu_of)
        if n.prim.name == "relu" and isinstance(n.operands[0], Value):
            relu_of.setdefault(n.operands[0].id, n.outputs[0])
        sunk = (_sink_broadcast(n, producers, next_id) or _sink_reshape(n, producers, next_id)
                or _transpose_matmul(n, producers, uses, next_id)
                or _relu_mask_before_scatter(n, producers, uses, next_id)
                or _pads_to_cat(n, producers, uses, next_id) or _cat_of_merges(n, producers, uses, next_id))
        if sunk is not None:
            next_id += len(sunk) - 1
            for m in sunk:
                producers[m.outputs[0].id] = m
                nodes.append(m)
            continue
        if n.prim.name == "reshape" and isinstance(n.operands[0], Value) and n.operands[0].id in producers:
            inner = producers[n.operands[0].id]
            if inner.prim.name == "reshape":
                n = Node(n.prim, (inner.operands[0],), n.attrs, n.outputs, n.where)
            n = _drop_kept_dims(n, inner, uses)
        for v in n.outputs:
            producers[v.id] = n
        nodes.append(n)
    return dce(_rename(Graph(g.inputs, nodes, g.outputs, g.constants, g.const_values), mapping))


_FOLD_MIN_BYTES = 1 << 16


def _nbytes(v: Value) -> int:
    return int(np.prod(v.shape, dtype=np.int64)) * v.dtype.itemsize


def fold_constants(g: Graph, foldable: set[int] | None = None) -> Graph:
    """Constant folding: a node whose operands are all literals or foldable constants is evaluated now and
    its output becomes a constant of the graph.

    `foldable` names the constants whose values cannot change between runs (tensors the traced code
    created itself); captured tensors such as parameters are read at run time and never folded.
    Random and control-flow primitives stay, and so do nodes whose value the graph returns (a call must
    return a new tensor) and nodes whose result would be larger than both their operands and 64 KiB
    (folding a broadcast would only trade compute for memory).
    """
    known = {vid: g.constants[vid] for vid in (foldable or ()) if g.constants.get(vid) is not None}
    constants, const_values = dict(g.constants), list(g.const_values)
    returned = {v.id for v in g.outputs}  # a returned value must be a new tensor on every call
    nodes = []
    chosen: dict[int, Value] = {}  # where(c, a, b) with c known all true or all false: a or b
    for n in g.nodes:
        out = n.outputs[0]
        picked = _known_choice(n, known)
        if picked is not None:
            chosen[out.id] = picked
            continue
        ok = (len(n.outputs) == 1 and out.id not in returned and n.prim.effect is None
              and not n.prim.multiple_results and not any(isinstance(a, Graph) for a in n.attrs.values())
              and all(isinstance(o, Literal) or o.id in known for o in n.operands))
        if ok:
            size = sum(_nbytes(o) for o in n.operands if isinstance(o, Value))
            ok = _nbytes(out) <= max(size, _FOLD_MIN_BYTES)
        if not ok:
            nodes.append(n)
            continue
        args = [known[o.id] if isinstance(o, Value) else o.value for o in n.operands]
        with state_changed(grad=False, traces=()):
            value = bind(n.prim, *args, **n.attrs)
        known[out.id] = constants[out.id] = value
        const_values.append(out)
    if len(nodes) == len(g.nodes):
        return g
    return dce(_rename(Graph(g.inputs, nodes, g.outputs, constants, const_values), chosen))


def _known_choice(n: Node, known: dict[int, Any]) -> Value | None:
    """The operand a ``where`` selects everywhere, when its condition is a literal or a known constant that
    is all true or all false and that operand already has the output's shape and dtype; else None."""
    if n.prim.name != "where" or len(n.operands) != 3:
        return None
    cond, out = n.operands[0], n.outputs[0]
    if isinstance(cond, Literal):
        values = np.asarray(cond.value)
    elif cond.id in known:
        values = np.asarray(known[cond.id].numpy())
    else:
        return None
    pick = n.operands[1] if values.all() else n.operands[2] if not values.any() else None
    if isinstance(pick, Value) and pick.shape == out.shape and pick.dtype is out.dtype:
        return pick
    return None


def _feature_vector(v, features: tuple) -> bool:
    """True if `v` is a value holding one number per feature (shape `features`, maybe with leading 1s)."""
    if not isinstance(v, Value):
        return False
    lead = len(v.shape) - len(features)
    return lead >= 0 and tuple(v.shape[lead:]) == features and all(d == 1 for d in v.shape[:lead])


def _rows_axes(x: Value, n: int) -> tuple[int, ...]:
    return tuple(range(len(x.shape) - n))


def _weight_grad_key(node: Node, producers: dict[int, Node]) -> tuple | None:
    """``(g, x, n, eps, shape)`` if `node` is ``sum(g * normalize(x))`` over all rows (a layer norm's
    weight gradient; `shape` is that of `g` where the rows of `x` were regrouped by a reshape), else
    None."""
    if node.prim.name != "reduce_sum" or node.attrs.get("dtype") is not None:
        return None
    summed = node.operands[0]
    prod = producers.get(summed.id)
    if prod is not None and prod.prim.name == "reshape" and isinstance(prod.operands[0], Value):
        prod = producers.get(prod.operands[0].id)  # the product was taken with the rows regrouped
    if prod is None or prod.prim.name != "mul" or len(prod.operands) != 2:
        return None
    for a, b in (prod.operands, prod.operands[::-1]):
        norm = producers.get(b.id) if isinstance(b, Value) else None
        if norm is not None and norm.prim.name == "reshape" and isinstance(norm.operands[0], Value):
            norm = producers.get(norm.operands[0].id)  # rows regrouped (a linear layer's flattening)
        if norm is None or norm.prim.name != "normalize" or not isinstance(a, Value) or a.shape != b.shape:
            continue
        x, n = norm.operands[0], norm.attrs["n"]
        features = tuple(x.shape[len(x.shape) - n:])
        if any(tuple(v.shape[len(v.shape) - n:]) != features for v in (a, summed)):
            continue
        if tuple(node.attrs["axis"]) == _rows_axes(summed, n) and x.dtype is a.dtype:
            return (a.id, x.id, n, norm.attrs["eps"], None if x.shape == a.shape else tuple(a.shape))
    return None


def _scaled_normalize_grad(node: Node, producers: dict[int, Node], new_value: Callable,
                           scaled, reshape) -> list[Node]:
    """``normalize_grad(g * w, x)`` with `w` one weight per feature as ``normalize_grad_scaled(g, x, w)``
    (with a reshape of `w` first where it carries leading 1s); otherwise the node itself."""
    prod = producers.get(node.operands[0].id) if isinstance(node.operands[0], Value) else None
    x = node.operands[1]
    features = tuple(x.shape[len(x.shape) - node.attrs["n"]:])
    if prod is None or prod.prim.name != "mul" or len(prod.operands) != 2:
        return [node]
    for a, w in (prod.operands, prod.operands[::-1]):
        if not (isinstance(a, Value) and a.shape == x.shape and a.dtype is x.dtype
                and _feature_vector(w, features) and w.dtype is x.dtype):
            continue
        nodes = []
        if tuple(w.shape) != features:
            flat = new_value(features, w.dtype)
            nodes.append(Node(reshape, (w,), {"shape": features}, (flat,), node.where))
            w = flat
        return nodes + [Node(scaled, (a, x, w), dict(node.attrs), node.outputs, node.where)]
    return [node]


def _regrouped(x: Value, shape: tuple, producers: dict[int, Node], new_value: Callable, nodes: list[Node],
               where: tuple | None) -> Value:
    """`x` read in `shape`: the value a reshape made `x` from when it has that shape (no reshape chain),
    else a new reshape of `x` appended to `nodes`."""
    inner = producers.get(x.id)
    if inner is not None and inner.prim.name == "reshape" and isinstance(inner.operands[0], Value) \
            and tuple(inner.operands[0].shape) == tuple(shape):
        return inner.operands[0]
    out = new_value(shape, x.dtype)
    nodes.append(Node(PRIMITIVES["reshape"], (x,), {"shape": tuple(shape)}, (out,), where))
    return out


def fold_norm_grads(g: Graph) -> Graph:
    """Layer-norm backward folding: ``normalize_grad(g * w, x)`` with `w` one weight per feature becomes
    ``normalize_grad_scaled(g, x, w)``, and the weight and bias gradients, ``sum(g * normalize(x))`` and
    ``sum(g)`` over all rows, become the two halves of one ``norm_param_grads(g, x)`` (one pass over `g`
    and `x`, without the normalised activations)."""
    from .._core.primitives import indexing

    scaled, param_grads = PRIMITIVES.get("normalize_grad_scaled"), PRIMITIVES.get("norm_param_grads")
    if scaled is None or param_grads is None:
        return g
    reshape = PRIMITIVES["reshape"]
    producers = {v.id: n for n in g.nodes for v in n.outputs}
    values = {v.id: v for v in g.values()}
    counter = [max(values, default=-1) + 1]

    def new_value(shape, dtype) -> Value:
        counter[0] += 1
        return Value(counter[0] - 1, tuple(shape), dtype)

    packs: dict[tuple, Value] = {}  # (g, x, n, eps, shape) -> the packed [weight grad, bias grad]
    wanted: dict[int, tuple[tuple, int]] = {}  # id(reduce_sum node) -> (pack key, half)
    for node in g.nodes:
        key = _weight_grad_key(node, producers)
        if key is not None:
            x = values[key[1]]
            packs.setdefault(key, new_value((2,) + tuple(x.shape[len(x.shape) - key[2]:]), x.dtype))
            wanted[id(node)] = (key, 0)
    for node in g.nodes:  # the bias gradients: sums of the same g over the same rows
        if node.prim.name == "reduce_sum" and id(node) not in wanted and node.attrs.get("dtype") is None:
            a = node.operands[0]
            for key in packs:
                if key[0] == a.id and tuple(node.attrs["axis"]) == _rows_axes(a, key[2]):
                    wanted[id(node)] = (key, 1)
                    break
    nodes: list[Node] = []
    made: set[tuple] = set()
    for node in g.nodes:
        if node.prim.name == "normalize_grad":
            nodes += _scaled_normalize_grad(node, producers, new_value, scaled, reshape)
            continue
        if id(node) not in wanted:
            nodes.append(node)
            continue
        key, half = wanted[id(node)]
        pack, out = packs[key], node.outputs[0]
        if key not in made:
            made.add(key)
            x = values[key[1]]
            if key[4] is not None:  # read x with the rows grouped as in g (a view)
                x = _regrouped(x, key[4], producers, new_value, nodes, node.where)
            nodes.append(Node(param_grads, (values[key[0]], x), {"n": key[2], "eps": key[3]}, (pack,),
                              node.where))
        part = out if tuple(out.shape) == pack.shape[1:] else new_value(pack.shape[1:], pack.dtype)
        nodes.append(Node(indexing.getitem_p, (pack,), {"index": (half,)}, (part,), node.where))
        if part is not out:
            nodes.append(Node(reshape, (part,), {"shape": tuple(out.shape)}, (out,), node.where))
    if not packs and all(a is b for a, b in zip(nodes, g.nodes)) and len(nodes) == len(g.nodes):
        return g
    from .fusion import _topological
    defined = {v.id for v in g.inputs} | {v.id for v in g.const_values}
    return dce(Graph(g.inputs, _topological(nodes, defined), g.outputs, g.constants, g.const_values))


PIPELINE: list[tuple[str, Callable[[Graph], Graph]]] = [
    ("simplify", simplify),
    ("cse", cse),
    ("dce", dce),
    ("fold_norm_grads", fold_norm_grads),
    ("fuse", __import__("ember.compiler.fusion", fromlist=["fuse"]).fuse),  # elementwise fusion, C kernels
    # elementwise groups fed by a matrix product run in the product's kernel
    ("fuse_epilogues", __import__("ember.compiler.epilogues", fromlist=["fuse_epilogues"]).fuse_epilogues),
]


def run_pipeline(g: Graph, dumps: list | None = None, check: bool = True,
                 options: dict[str, dict] | None = None) -> Graph:
    """Apply every pass of :data:`PIPELINE` in order, verifying the IR between stages.

    With `dumps` (a list), append ``(pass name, text before, text after)`` for each pass. `options` maps a
    pass name to keyword arguments for it (``{"fuse": {"multi_output": False}}``).
    """
    options = options or {}
    for name, fn in PIPELINE:
        before = str(g) if dumps is not None else None
        g = fn(g, **options.get(name, {}))
        if check:
            verify(g)
        if dumps is not None:
            dumps.append((name, before, str(g)))
    return g
