"""A static cost model: floating-point operations and bytes moved per node of a graph.

- elementwise primitives (those with a formula): output elements × operations in the formula;
- ``matmul``: ``2·m·n·k`` (times the batch); with an epilogue, plus its output elements;
- reductions and scans along an axis: elements of the input;
- view primitives (reshape, transpose, slicing): nothing (they move no data);
- control flow: ``scan`` costs its body times its length, ``cond`` its dearer branch, ``while_loop`` one
  iteration of condition and body (flagged ``per_iteration``: the trip count is not known ahead);
- anything else: output elements.

Bytes moved are the bytes of the node's tensor operands (read) plus its outputs (written).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._core import expr
from .ir import Graph, Node, Value
from .memory import nbytes

__all__ = ["cost", "node_cost"]

REDUCTIONS = frozenset({"reduce_sum", "reduce_prod", "reduce_max", "reduce_min", "reduce_var", "reduce_all",
                        "reduce_any", "argmax", "argmin", "cumsum", "cumprod"})


def _numel(v: Value) -> int:
    n = 1
    for s in v.shape:
        n *= s
    return n


def formula_ops(prim) -> int:
    """Scalar operations in an elementwise primitive's formula (at least one)."""
    return max(1, len(expr.topo_nodes(prim.formula)))


def _flops(n: Node) -> int:
    out = n.outputs[0]
    if n.prim.view:
        return 0
    if n.prim.formula is not None:
        return _numel(out) * formula_ops(n.prim)
    if n.prim.name == "matmul":
        k = n.operands[0].shape[-1]
        return 2 * _numel(out) * k
    if n.prim.name.startswith("matmul_fused_"):  # a product and its elementwise epilogue
        a, b = n.operands[:2]
        product = math.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])) * a.shape[-2] * b.shape[-1]
        return 2 * product * a.shape[-1] + _numel(out)
    if n.prim.name in REDUCTIONS and isinstance(n.operands[0], Value):
        return _numel(n.operands[0])
    return _numel(out)


def _moved(n: Node) -> int:
    if n.prim.view:
        return 0
    reads = sum(nbytes(o) for o in n.operands if isinstance(o, Value))
    return reads + sum(nbytes(v) for v in n.outputs)


def _nested(n: Node) -> tuple[int, int, bool]:
    """Flops and bytes of the sub-graphs a control-flow node runs, and whether they are per iteration."""
    subs = {k: cost(g) for k, g in n.attrs.items() if isinstance(g, Graph)}
    if not subs:
        return 0, 0, False
    if n.prim.name == "scan":
        body = subs["body"]
        return body["flops"] * n.attrs["length"], body["bytes"] * n.attrs["length"], False
    if n.prim.name == "cond":
        dear = max(subs.values(), key=lambda c: (c["flops"], c["bytes"]))
        return dear["flops"], dear["bytes"], False
    flops = sum(c["flops"] for c in subs.values())
    return flops, sum(c["bytes"] for c in subs.values()), n.prim.name == "while_loop"


def node_cost(n: Node) -> dict[str, Any]:
    """``{"op", "outputs", "flops", "bytes", "per_iteration"}`` for one node."""
    flops, moved, per_iter = _nested(n)
    if not flops and not moved:
        flops = _flops(n)
    return {"op": n.prim.name, "outputs": [v.id for v in n.outputs], "flops": flops,
            "bytes": moved + _moved(n), "per_iteration": per_iter}


def cost(graph: Graph) -> dict[str, Any]:
    """FLOPs and bytes moved of every node of `graph` and in total.

    Returns:
        ``{"flops": total, "bytes": total, "nodes": [node_cost(n) for each node]}``.

    Example:
        >>> import ember
        >>> c = cost(ember.jit(lambda a, b: a @ b).lower(ember.ones(2, 3), ember.ones(3, 4)).graph)
        >>> c["flops"], c["bytes"]
        (48, 112)
    """
    nodes = [node_cost(n) for n in graph.nodes]
    return {"flops": sum(c["flops"] for c in nodes), "bytes": sum(c["bytes"] for c in nodes), "nodes": nodes}
