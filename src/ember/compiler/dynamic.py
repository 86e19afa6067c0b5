"""Dynamic dimensions for ``ember.jit``: one graph for every size of the marked input dimensions.

The function is traced at the sizes of the first call and once more per marked dimension with that
dimension changed. Every number in a node's attributes or literal operands that differs between the
traces is fitted as ``c · size`` or ``c / size`` of the dimension that moved it; at run time those numbers
are recomputed from the actual sizes (a reshape target, a slice bound, the ``1/N`` of a mean). Anything
that cannot be expressed so (a constant whose shape follows the size, a graph whose structure changes)
is refused with a TraceError naming it.
"""
from __future__ import annotations

from typing import Any, Callable

from .._core.errors import TraceError
from .ir import Graph, Literal

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
