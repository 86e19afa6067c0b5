"""The graph IR: an SSA graph of primitive applications, its text form, parser and verifier.

```
graph(%0: float32[4, 3], %1: float32[3]) {
  %2: float32[4, 3] = mul(%0, %1)
  %3: float32[] = reduce_sum(%2) {axis=(0, 1), keepdims=False, dtype=None}
  return (%3)
}
```

Operands are values (``%n``) or literals (``float32(2.0)``, ``2``); attributes are Python literals plus
``dtype('name')``, ``slice(a, b, c)`` and ``Ellipsis``. Graphs are immutable once built: passes build new
ones. ``str(parse(text)) == text``.
"""
from __future__ import annotations

import ast
import re
from typing import Any, Iterator

import numpy as np

from .._core import dtypes
from .._core.errors import EmberError
from .._core.primitive import PRIMITIVES, Primitive


class IRError(EmberError, ValueError):
    """A malformed graph or graph text."""


class Value:
    """An SSA value: a shape and a dtype, produced by a node or a graph input/constant."""

    __slots__ = ("id", "shape", "dtype")

    def __init__(self, id: int, shape: tuple[int, ...], dtype: dtypes.DType):
        self.id = id
        self.shape = tuple(shape)
        self.dtype = dtype

    def type_str(self) -> str:
        return f"{self.dtype.name}[{', '.join(map(str, self.shape))}]"

    def __repr__(self) -> str:
        return f"%{self.id}"


class Literal:
    """A scalar operand (a Python or NumPy scalar), printed as ``float32(2.0)`` or ``2``."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        v = self.value
        if isinstance(v, np.generic):
            dt = dtypes.from_numpy(v.dtype)
            return f"{dt.name}({_scalar_text(v.item())})"
        return _scalar_text(v)

    def __eq__(self, other) -> bool:
        return isinstance(other, Literal) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


def _scalar_text(v: Any) -> str:
    if isinstance(v, float) and not np.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    return repr(v)


class Node:
    """One primitive application: ``outputs = prim(*operands, **attrs)``."""

    __slots__ = ("prim", "operands", "attrs", "outputs", "where")

    def __init__(self, prim: Primitive, operands: tuple, attrs: dict, outputs: tuple[Value, ...],
                 where: tuple | None = None):
        self.prim = prim
        self.operands = tuple(operands)
        self.attrs = dict(attrs)
        self.outputs = tuple(outputs)
        self.where = where  # (file, line, source) of the user's code that made it, when known

    def __repr__(self) -> str:
        return format_node(self)


class Graph:
    """Inputs, constants (captured tensors), nodes in execution order and outputs."""

    def __init__(self, inputs: list[Value], nodes: list[Node], outputs: list[Value],
                 constants: dict[int, Any] | None = None, const_values: list[Value] | None = None):
        self.inputs = list(inputs)
        self.nodes = list(nodes)
        self.outputs = list(outputs)
        self.constants = dict(constants or {})  # value id -> tensor (None when parsed from text)
        self.const_values = list(const_values or [])

    def values(self) -> Iterator[Value]:
        """Every value: inputs, constants, then node outputs."""
        yield from self.inputs
        yield from self.const_values
        for n in self.nodes:
            yield from n.outputs

    def __str__(self) -> str:
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph: {len(self.inputs)} inputs, {len(self.nodes)} nodes, {len(self.outputs)} outputs>"


class SubGraph(Graph):
    """A graph held in a node's attribute (a branch or a loop body), printed inline in the text form.

    Its repr is its text, so passes that compare attributes by repr (CSE) tell different bodies apart.
    """

    def __repr__(self) -> str:
        return print_graph(self)


# -- printing ---------------------------------------------------------------------------------------
def _attr_text(v: Any) -> str:
    if isinstance(v, Graph):
        return print_graph(v)
    if isinstance(v, dtypes.DType):
        return f"dtype('{v.name}')"
    if isinstance(v, slice):
        return f"slice({_attr_text(v.start)}, {_attr_text(v.stop)}, {_attr_text(v.step)})"
    if v is Ellipsis:
        return "Ellipsis"
    if isinstance(v, tuple):
        inner = ", ".join(_attr_text(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, list):
        return "[" + ", ".join(_attr_text(x) for x in v) + "]"
    if isinstance(v, np.generic):
        return _attr_text(v.item())
    if isinstance(v, float):
        return _scalar_text(v)
    return repr(v)


def format_node(n: Node) -> str:
    outs = ", ".join(f"%{v.id}: {v.type_str()}" for v in n.outputs)
    ops = ", ".join(repr(o) for o in n.operands)
    text = f"{outs} = {n.prim.name}({ops})"
    if n.attrs:
        text += " {" + ", ".join(f"{k}={_attr_text(v)}" for k, v in n.attrs.items()) + "}"
    return text


def print_graph(g: Graph) -> str:
    """The text form of `g`."""
    head = ", ".join(f"%{v.id}: {v.type_str()}" for v in g.inputs)
    lines = [f"graph({head}) {{"]
    lines += [f"  %{v.id}: {v.type_str()} = constant()" for v in g.const_values]
    lines += [f"  {line}" for n in g.nodes for line in format_node(n).split("\n")]  # nested graphs indent
    lines.append(f"  return ({', '.join(f'%{v.id}' for v in g.outputs)})")
    lines.append("}")
    return "\n".join(lines)


# -- parsing ----------------------------------------------------------------------------------------
_TYPE = re.compile(r"%(\d+): (\w+)\[([\d, ]*)\]")
_LINE = re.compile(r"^(?P<outs>%\d+: \w+\[[\d, ]*\](?:, %\d+: \w+\[[\d, ]*\])*) = "
                   r"(?P<op>\w+)\((?P<args>.*?)\)(?: \{(?P<attrs>.*)\})?$", re.DOTALL)


def _parse_type(m: re.Match) -> Value:
    shape = tuple(int(s) for s in m.group(3).split(",") if s.strip())
    return Value(int(m.group(1)), shape, dtypes.from_name(m.group(2)))


def _literal_eval(node: ast.AST, graphs: dict | None = None) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_literal_eval(e, graphs) for e in node.elts)
    if isinstance(node, ast.List):
        return [_literal_eval(e, graphs) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal_eval(node.operand)
    if isinstance(node, ast.Name):
        named = {"Ellipsis": Ellipsis, "inf": float("inf"), "nan": float("nan"), "None": None,
                 "True": True, "False": False, **(graphs or {})}
        if node.id in named:
            return named[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args = [_literal_eval(a) for a in node.args]
        if node.func.id == "dtype":
            return dtypes.from_name(args[0])
        if node.func.id == "slice":
            return slice(*args)
        if node.func.id in dtypes._BY_NAME:
            return dtypes.from_name(node.func.id).np.type(args[0])
    raise IRError("parse", f"unsupported literal {ast.dump(node)}")


def _parse_operands(text: str, values: dict[int, Value]) -> tuple:
    if not text.strip():
        return ()
    tree = ast.parse("f(" + re.sub(r"%(\d+)", r"_v\1", text) + ")", mode="eval").body
    assert isinstance(tree, ast.Call)
    out: list = []
    for a in tree.args:
        if isinstance(a, ast.Name) and a.id.startswith("_v"):
            out.append(values[int(a.id[2:])])
        else:
            out.append(Literal(_literal_eval(a)))
    return tuple(out)


def _brace_depth(text: str) -> int:
    """Open minus closed braces in `text`, outside quoted strings."""
    depth, quote = 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        else:
            depth += (ch == "{") - (ch == "}")
    return depth


def _nested_graphs(text: str) -> tuple[str, dict]:
    """`text` with each nested ``graph(...) {...}`` replaced by a name, and the parsed graphs by name."""
    graphs: dict[str, SubGraph] = {}
    while True:
        m = re.search(r"(?<=[=(\[ ])graph\(", text)
        if m is None:
            return text, graphs
        end = text.index("{", m.start())
        while _brace_depth(text[m.start():end + 1]) != 0:
            end = text.index("}", end + 1)
        g = parse(text[m.start():end + 1])
        name = f"_g{len(graphs)}"
        graphs[name] = SubGraph(g.inputs, g.nodes, g.outputs, g.constants, g.const_values)
        text = text[:m.start()] + name + text[end + 1:]


def _parse_attrs(text: str | None) -> dict:
    if not text:
        return {}
    text, graphs = _nested_graphs(text)
    tree = ast.parse(f"f({text})", mode="eval").body
    assert isinstance(tree, ast.Call)
    return {str(kw.arg): _literal_eval(kw.value, graphs) for kw in tree.keywords}


def _statements(lines: list[str]) -> Iterator[str]:
    """Join the lines of a node whose attributes hold nested graphs into one statement."""
    pending: list[str] = []
    for ln in lines:
        pending.append(ln)
        if _brace_depth("\n".join(pending)) == 0:
            yield "\n".join(pending)
            pending = []
    if pending:
        raise IRError("parse", f"unbalanced braces in: {pending[0]}")


def parse(text: str) -> Graph:
    """Read a graph back from its text form (constants come back without data)."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if not lines or not lines[0].startswith("graph(") or lines[-1] != "}":
        raise IRError("parse", "graph text must start with 'graph(' and end with '}'")
    values: dict[int, Value] = {}
    inputs = [_parse_type(m) for m in _TYPE.finditer(lines[0])]
    values.update((v.id, v) for v in inputs)
    nodes, consts, outputs = [], [], []
    for ln in _statements(lines[1:-1]):
        if ln.startswith("return"):
            outputs = [values[int(i)] for i in re.findall(r"%(\d+)", ln)]
            continue
        m = _LINE.match(ln)
        if m is None:
            raise IRError("parse", f"cannot parse line: {ln}")
        outs = [_parse_type(t) for t in _TYPE.finditer(m.group("outs"))]
        if m.group("op") == "constant":
            consts.extend(outs)
            values.update((v.id, v) for v in outs)
            continue
        if m.group("op") not in PRIMITIVES:
            raise IRError("parse", f"unknown primitive {m.group('op')!r}")
        node = Node(PRIMITIVES[m.group("op")], _parse_operands(m.group("args"), values),
                    _parse_attrs(m.group("attrs")), tuple(outs))
        nodes.append(node)
        values.update((v.id, v) for v in outs)
    return Graph(inputs, nodes, outputs, {v.id: None for v in consts}, consts)


# -- verification -----------------------------------------------------------------------------------
def verify(g: Graph) -> None:
    """Check SSA form (every value defined once, before use) and output types.

    Where a primitive has an ``abstract`` rule, the node's output shapes and dtypes must equal it.
    """
    defined: set[int] = set()
    for v in list(g.inputs) + list(g.const_values):
        if v.id in defined:
            raise IRError("verify", f"value %{v.id} is defined twice")
        defined.add(v.id)
    for n in g.nodes:
        for o in n.operands:
            if isinstance(o, Value) and o.id not in defined:
                raise IRError("verify", f"{n.prim.name}: operand %{o.id} is used before it is defined")
        for sub in n.attrs.values():
            if isinstance(sub, Graph):
                verify(sub)
        _check_abstract(n)
        for v in n.outputs:
            if v.id in defined:
                raise IRError("verify", f"value %{v.id} is defined twice")
            defined.add(v.id)
    for v in g.outputs:
        if v.id not in defined:
            raise IRError("verify", f"output %{v.id} is not defined")


def _check_abstract(n: Node) -> None:
    rule = n.prim.abstract
    if rule is None:
        return
    avals = [(o.shape, o.dtype) if isinstance(o, Value) else o.value for o in n.operands]
    expected = rule(*avals, **n.attrs)
    expected = expected if isinstance(expected, list) else [expected]
    for v, (shape, dtype) in zip(n.outputs, expected):
        if tuple(shape) != v.shape or dtype is not v.dtype:
            raise IRError("verify", f"{n.prim.name}: output %{v.id} is {v.type_str()} but the primitive's "
                          f"rule gives {dtype.name}{list(shape)}")
