"""Runs a graph: every node through ``bind`` on real tensors.

Binding (rather than calling kernels directly) keeps compiled functions differentiable with
``backward()`` and composable with the function transforms (``vmap(jit(f))``, ``grad(jit(f))``).
"""
from __future__ import annotations

from typing import Any, Sequence

from .._core.dispatch import bind
from .ir import Graph, Value


def run(graph: Graph, inputs: Sequence[Any], trace_values: dict | None = None,
        overrides: dict[int, tuple[tuple, dict]] | None = None) -> list[Any]:
    """Evaluate `graph` on `inputs` (in the order of ``graph.inputs``); returns the outputs.

    With `trace_values` (a dict), every node's output is also stored there by value id. `overrides` maps
    a node's index to the operands and attributes to use instead of its own (dynamic dimensions).
    """
    env: dict[int, Any] = {v.id: t for v, t in zip(graph.inputs, inputs)}
    env.update(graph.constants)
    for k, node in enumerate(graph.nodes):
        operands, attrs = overrides[k] if overrides and k in overrides else (node.operands, node.attrs)
        args = [env[o.id] if isinstance(o, Value) else o.value for o in operands]
        out = bind(node.prim, *args, **attrs)
        env[node.outputs[0].id] = out
        if trace_values is not None:
            trace_values[node.outputs[0].id] = out
    return [env[v.id] for v in graph.outputs]
