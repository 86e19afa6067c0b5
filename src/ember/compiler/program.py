"""A graph on NumPy arrays as one generated Python function: the executor's path for graphs whose
intermediate tensors nothing observes (a compiled training step, inference under ``no_grad``).

Interpreting a graph costs about a microsecond per node besides the kernel: operands looked up in a
dictionary, the checks for in-place reuse and for results computed into existing tensors, the release of
dead values. The generated function does the same in straight-line code with local variables: one line per
node calling its kernel, literals and attributes bound as constants, the checks only on the nodes they
concern, dead values dropped with ``del``. A view primitive whose CPU kernel is the reference one becomes
the NumPy method call itself (its ``array_method``: ``x.reshape(shape)``, ``x[key]``, ``x.transpose(perm)``).
A kernel's failure is reported as eager mode reports it: the line it was raised on names the node.
"""
from __future__ import annotations

import keyword
from typing import Any, Sequence

import numpy as np

from .._core import dtypes
from .._core.dispatch import kernel_error
from .._core.errors import EmberError
from .._core.tensor import Tensor
from ..backends import CPU
from .codegen.runtime import _shared_layout
from .ir import Graph, Node, Value


class Program:
    """`graph` as a Python function of its input and constant arrays.

    Args:
        graph: the graph to run.
        release: per node, the ids of the values it reads last (they are dropped after it).
        donations: node index -> position of the operand whose buffer the node's result may take over;
            empty where the run reuses no buffers.
        writes: the nodes that may compute their result into an existing array (given at each call).
        overridden: the nodes whose operands and attributes are given at each call (dynamic sizes).

    Calling it with the arrays of ``graph.inputs`` followed by those of ``graph.constants``, the
    destinations (node index -> array), the overrides (node index -> (operands, attributes)) and the
    device returns the arrays of ``graph.outputs``.
    """

    def __init__(self, graph: Graph, release: Sequence[Sequence[int]], donations: dict[int, int],
                 writes: Sequence[int], overridden: Sequence[int]):
        self.nodes = graph.nodes  # (not the graph: programs are cached per graph, weakly)
        self.lines: dict[int, int] = {}  # line of the source -> index of its node
        self.namespace: dict[str, Any] = {
            "_nd": np.ndarray, "_asarray": np.asarray, "_shared_layout": _shared_layout,
            "_donate": CPU.pool.donate, "_end_donation": CPU.pool.end_donation,
            "_redirect": CPU.pool.redirect, "_end_redirect": CPU.pool.end_redirect,
            "_operands": _operands, "_error": self._error}
        self.source = self._source(graph, release, donations, set(writes), set(overridden))
        exec(compile(self.source, f"<ember program {id(self):x}>", "exec"), self.namespace)
        self.fn = self.namespace["program"]

    def __call__(self, arrays: list, destinations: dict, overrides: dict, device: Any) -> list:
        return self.fn(arrays, destinations, overrides, device)

    def _source(self, graph: Graph, release, donations: dict[int, int], writes: set[int],
                overridden: set[int]) -> str:
        names = [_var(v) for v in graph.inputs] + [f"v{vid}" for vid in graph.constants]
        lines = ["def program(_arrays, _dest, _ov, _device):",
                 f"    ({', '.join(names)},) = _arrays" if names else "    pass",
                 "    try:"]
        for k, node in enumerate(graph.nodes):
            body = self._node(k, node, donations.get(k), k in writes, k in overridden)
            if release[k]:
                body.append("del " + ", ".join(f"v{vid}" for vid in release[k]))
            for line in body:
                lines.append("        " + line)
                self.lines[len(lines)] = k
        lines += ["        return [" + ", ".join(_var(v) for v in graph.outputs) + "]",
                  "    except BaseException as _exc:",
                  "        _end_donation()",
                  "        _end_redirect()",
                  "        _err = _error(_exc, locals())",
                  "        if _err is None:",
                  "            raise",
                  "        raise _err from _exc"]
        return "\n".join(lines) + "\n"

    def _node(self, k: int, node: Node, donor: int | None, writes: bool, overridden: bool) -> list[str]:
        """The lines running node `k`: the call, with a redirect into a destination or a donation around
        it, and the conversion of a scalar result to an array."""
        out = _var(node.outputs[0])
        args = [self._operand(k, j, o) for j, o in enumerate(node.operands)]
        kernel = CPU.kernel(node.prim)
        method = node.prim.array_method
        self.namespace[f"k{k}"] = kernel
        if overridden:
            call = f"k{k}(*_operands(_ov[{k}][0], locals()), **_ov[{k}][1])"
        elif method is not None and getattr(kernel, "reference", None) is node.prim.impl:
            name, argument = method(**node.attrs)
            self.namespace[f"a{k}"] = argument
            call = f"{args[0]}[a{k}]" if name == "__getitem__" else f"{args[0]}.{name}(a{k})"
            return [f"{out} = {call}"]  # (always an array)
        else:
            call = f"k{k}({', '.join(args + self._attributes(k, node.attrs))})"
        body = [f"{out} = {call}"]
        if writes:
            body = [f"_t = _dest.get({k})",
                    f"if _t is not None and _shared_layout(({', '.join(args)},)) is None:",
                    "    _redirect(_t)"]
            if donor is not None:
                body += ["elif _t is None:", f"    _donate({args[donor]})"]
            body += [f"{out} = {call}", "_end_redirect()"]
        elif donor is not None:
            body = [f"_donate({args[donor]})", f"{out} = {call}"]
        if donor is not None:
            body.append("_end_donation()")
        body.append(f"if {out}.__class__ is not _nd:")  # NumPy ufuncs return scalars for 0-d operands
        body.append(f"    {out} = _asarray({out})")
        return body

    def _operand(self, k: int, j: int, operand: Any) -> str:
        if isinstance(operand, Value):
            return _var(operand)
        self.namespace[f"c{k}_{j}"] = operand.value
        return f"c{k}_{j}"

    def _attributes(self, k: int, attrs: dict) -> list[str]:
        """Keyword arguments passing `attrs` (bound as constants of the function)."""
        if not all(name.isidentifier() and not keyword.iskeyword(name) for name in attrs):
            self.namespace[f"a{k}"] = attrs
            return [f"**a{k}"] if attrs else []
        for name, value in attrs.items():
            self.namespace[f"a{k}_{name}"] = value
        return [f"{name}=a{k}_{name}" for name in attrs]

    def _error(self, exc: BaseException, local: dict) -> EmberError | None:
        """The error to raise for `exc`, raised in the program: an EmberError naming the node's primitive
        and operands, as eager mode gives, or None to raise `exc` as it is."""
        tb = exc.__traceback__
        k = self.lines.get(tb.tb_lineno) if tb is not None else None
        if k is None or not isinstance(exc, Exception) or isinstance(exc, EmberError):
            return None
        node = self.nodes[k]
        operands, attrs = local["_ov"][k] if k in local["_ov"] else (node.operands, node.attrs)
        args = _operands(operands, local)
        wrapped = tuple(Tensor._make(a, dtypes._BY_NP[a.dtype], local["_device"])
                        if hasattr(a, "dtype") and a.dtype in dtypes._BY_NP else a for a in args)
        return kernel_error(node.prim, wrapped, attrs, exc)


def _var(v: Value) -> str:
    return f"v{v.id}"


def _operands(operands: Sequence[Any], local: dict) -> list:
    """The arguments for `operands` (values, read from the program's variables `local`, or literals)."""
    return [local[_var(o)] if isinstance(o, Value) else o.value for o in operands]
