"""Dynamic dimensions for ``ember.jit``: one graph for every size of the marked input dimensions.

The function is traced at the sizes of the first call and once more per marked dimension with that
dimension changed. Every number in a node's attributes or literal operands that differs between the
traces is fitted as ``c · size`` or ``c / size`` of the dimension that moved it; at run time those numbers
are recomputed from the actual sizes (a reshape target, a slice bound, the ``1/N`` of a mean). `analyse`
raises a TraceError naming anything that cannot be expressed so (a constant whose shape follows the
size, a graph whose structure changes); the graph then serves its own sizes only.

Python code may use a size where the two traces show nothing (``max(n, 5)``, ``if n > 5``), so a new size
is traced once more and checked before it runs: `disagreement` compares that trace with the graph's rules
applied at the size, through `skeleton` (the graph without its value shapes).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .._core.errors import TraceError
from .ir import Graph, Literal, _attr_text

Path = tuple  # positions into a nested attribute value


def numbers(value: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """The int/float leaves of a (nested tuple) attribute value, with their paths."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)) or hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        return [(path, value)]
    if isinstance(value, tuple):
        out: list = []
        for i, v in enumerate(value):
            out.extend(numbers(v, path + (i,)))
        return out
    return []


def replace(value: Any, path: Path, new: Any) -> Any:
    """`value` with the leaf at `path` replaced by `new` (tuples are rebuilt)."""
    if not path:
        return type(value)(new) if hasattr(value, "dtype") else new
    items = list(value)
    items[path[0]] = replace(items[path[0]], path[1:], new)
    return tuple(items)


class Rule:
    """One number that follows dynamic sizes: ``v0 · Π (size_s / s0_s) ** power_s`` over the symbols
    (dynamic dimensions) that move it, each with power +1 or -1."""

    __slots__ = ("node", "where", "path", "v0", "factors", "integer")

    def __init__(self, node: int, where: Any, path: Path, v0: float, integer: bool):
        self.node, self.where, self.path = node, where, path  # where: ("attr", name) or ("operand", i)
        self.v0, self.integer = v0, integer
        self.factors: list[tuple[int, int, int]] = []  # (symbol, size traced at, power)

    def value(self, sizes: list[int]) -> Any:
        v = float(self.v0)
        for symbol, s0, power in self.factors:
            v *= (sizes[symbol] / s0) ** power
        return int(round(v)) if self.integer else v


def _leaves(graph: Graph) -> list[list[tuple[Any, Path, Any]]]:
    per_node = []
    for n in graph.nodes:
        items = [(("attr", k), p, v) for k, a in n.attrs.items() for p, v in numbers(a)]
        items += [(("operand", i), p, v) for i, o in enumerate(n.operands) if isinstance(o, Literal)
                  for p, v in numbers(o.value)]
        per_node.append(items)
    return per_node


def _power(v0: float, s0: int, v1: float, s1: int) -> int | None:
    for power in (1, -1):
        if abs(v0 * (s1 / s0) ** power - v1) <= 1e-9 * max(1.0, abs(v1)):
            return power
    return None


def analyse(base: Graph, others: list[tuple[Graph, int, int, int]], name: str) -> list[Rule]:
    """Rules for every number of `base` that moves in one of `others` ((graph, symbol, s0, s1) per symbol)."""
    base_leaves = _leaves(base)
    rules: dict[tuple, Rule] = {}
    for graph, symbol, s0, s1 in others:
        if [n.prim.name for n in graph.nodes] != [n.prim.name for n in base.nodes]:
            raise TraceError("jit", f"{name}: the traced graph changes with dynamic dimension {symbol}; "
                             "its structure must not depend on that size")
        for c0, c1 in zip(base.const_values, graph.const_values):
            if c0.shape != c1.shape:
                raise TraceError("jit", f"{name}: a constant of shape {c0.shape} made inside the function "
                                 f"follows dynamic dimension {symbol}; derive it from an input instead "
                                 "(e.g. ember.zeros_like, or slice a buffer)")
        for k, (mine, theirs) in enumerate(zip(base_leaves, _leaves(graph))):
            for (where, path, v0), (_, _, v1) in zip(mine, theirs):
                if v0 == v1:
                    continue
                power = _power(float(v0), s0, float(v1), s1)
                if power is None:
                    raise TraceError("jit", f"{name}: {base.nodes[k].prim.name} has the number {v0} which "
                                     f"becomes {v1} when dynamic dimension {symbol} goes from {s0} to {s1}; "
                                     "it is not proportional to that size")
                key = (k, where, path)
                if key not in rules:
                    rules[key] = Rule(k, where, path, v0, isinstance(v0, int) and not isinstance(v0, bool))
                rules[key].factors.append((symbol, s0, power))
    return list(rules.values())


def overrides(graph: Graph, rules: list[Rule], sizes: list[int]) -> dict[int, tuple[tuple, dict]]:
    """Per node index, the operands and attributes to use for these sizes."""
    out: dict[int, tuple[tuple, dict]] = {}
    for r in rules:
        node = graph.nodes[r.node]
        operands, attrs = out.get(r.node, (node.operands, dict(node.attrs)))
        kind, key = r.where
        if kind == "attr":
            attrs[key] = replace(attrs[key], r.path, r.value(sizes))
        else:
            ops = list(operands)
            ops[key] = Literal(replace(ops[key].value, r.path, r.value(sizes)))
            operands = tuple(ops)
        out[r.node] = (operands, attrs)
    return out


def resized(leaves: list, places: list[tuple[int, int, str]], symbol: str, make: Callable
            ) -> tuple[list, int, int]:
    """`leaves` with every dimension named `symbol` changed in size; returns (leaves, old, new size)."""
    out = list(leaves)
    old = new = 0
    made: dict[int, Any] = {}  # a tensor passed twice is resized once
    for index, axis, name in places:
        if name != symbol:
            continue
        key = id(leaves[index])
        current = made.get(key, leaves[index])
        shape = list(current.shape)
        old = shape[axis]
        new = old + 1 if old < 3 else old - 1
        shape[axis] = new
        made[key] = make(shape, current)
    for i, x in enumerate(leaves):  # every place of a resized tensor gets the resized one
        if id(x) in made:
            out[i] = made[id(x)]
    return out, old, new


# -- checking a size the rules were not fitted at ---------------------------------------------------------
def _attr_skeleton(value: Any) -> Any:
    if isinstance(value, Graph):
        return skeleton(value)
    if isinstance(value, (tuple, list)):
        return tuple(_attr_skeleton(v) for v in value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) or isinstance(value, np.generic) and value.shape == ():
        return _Number(value)
    return _attr_text(value)


class _Number:
    """A number in a skeleton: integers compare exactly, floats to 1e-9 relative (a rule recomputes
    ``1/N`` as ``(1/N0) · N0/N``, which may differ from ``1/N`` in the last bit)."""

    __slots__ = ("kind", "value")

    def __init__(self, value: Any):
        self.kind = np.dtype(type(value)).kind if isinstance(value, np.generic) else type(value).__name__
        self.value = value.item() if isinstance(value, np.generic) else value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Number) or self.kind != other.kind:
            return False
        a, b = self.value, other.value
        if isinstance(a, float) or isinstance(b, float):
            return a == b or (a != a and b != b) or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
        return bool(a == b)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.value)


def skeleton(graph: Graph, replaced: dict[int, tuple[tuple, dict]] | None = None) -> tuple:
    """What `graph` computes, without the shapes of its values: per node the primitive, where each operand
    comes from (an input, a constant, an earlier node's output, or a literal) and the attributes (bodies
    as skeletons), then where the outputs come from. `replaced` (from `overrides`) gives some nodes other
    operands and attributes."""
    where: dict[int, tuple] = {v.id: ("input", i) for i, v in enumerate(graph.inputs)}
    where.update({v.id: ("constant", i) for i, v in enumerate(graph.const_values)})
    nodes = []
    for k, n in enumerate(graph.nodes):
        operands, attrs = replaced[k] if replaced and k in replaced else (n.operands, n.attrs)
        ops = tuple(_attr_skeleton(o.value) if isinstance(o, Literal) else where.get(o.id, ("outer", o.id))
                    for o in operands)
        nodes.append((n.prim.name, ops, tuple((key, _attr_skeleton(attrs[key])) for key in sorted(attrs))))
        where.update({v.id: (k, j) for j, v in enumerate(n.outputs)})
    return tuple(nodes), tuple(where.get(v.id, ("outer", v.id)) for v in graph.outputs)


def disagreement(base: Graph, rules: list[Rule], other: Graph, sizes: list[int]) -> str | None:
    """None when `other` (the function traced at `sizes`) is `base` with its rules applied at those sizes;
    otherwise what differs, in words."""
    mine, my_outputs = skeleton(base, overrides(base, rules, sizes))
    theirs, their_outputs = skeleton(other)
    if [n[0] for n in mine] != [n[0] for n in theirs]:
        return "its operations differ"
    for k, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            node = base.nodes[k]
            at = f" ({node.where[0]}:{node.where[1]})" if node.where else ""
            return f"{node.prim.name} (node {k}{at}) has other operands or attributes"
    if my_outputs != their_outputs:
        return "its outputs come from other values"
    if len(base.const_values) != len(other.const_values):
        return "it captures other constants"
    for v0, v1 in zip(base.const_values, other.const_values):
        c0, c1 = base.constants.get(v0.id), other.constants.get(v1.id)
        if c0 is c1:
            continue
        if c0 is None or c1 is None or c0.shape != c1.shape or c0.dtype != c1.dtype or (
                c0.numpy().tobytes() != c1.numpy().tobytes()):
            return f"a constant of shape {tuple(v1.shape)} made inside the function differs"
    return None
