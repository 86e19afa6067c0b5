"""The epilogue pass: an elementwise group fed by a matrix product runs inside the product's kernel.

After :func:`~ember.compiler.fusion.fuse`, a ``matmul`` or ``conv`` whose result is read by exactly
one node, a fused elementwise group or a single elementwise node of the product's float dtype and
shape (a bias add, an activation, their gradients' masks), becomes one node of a primitive made for the pair
(``matmul_<group>_<operand>``, ``conv_<group>_<operand>``): its operands are the product's two and
the group's others, its attributes the product's; its CPU kernel runs the group on each block of the
product as the packed GEMM finishes it (:mod:`ember.compiler.codegen.epilogue`), so the product
never goes to memory and back. Its VJP, JVP and batching rules compose those of the product and of
the group, so compiled functions stay differentiable and transformable.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .._core.dispatch import bind, state_changed
from .._core.primitive import Primitive
from .._core.primitives.conv import conv_p
from .._core.primitives.linalg import matmul_p
from .codegen.epilogue import ConvEpilogue, MatmulEpilogue
from .codegen.runtime import FusedKernel
from .fusion import FLOATS, _spec, _users, fused_primitive, fusible_dtype
from .ir import Graph, Node, Value

_MADE: dict[tuple[str, str, int], Primitive] = {}  # (product, group, product's position) -> primitive


def _matmul_shape(a: tuple, b: tuple, **attrs: Any) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))) + (a[-2], b[-1])


def _conv_shape(x: tuple, w: tuple, stride, padding, dilation, groups) -> tuple[int, ...]:
    spatial = tuple((n + lo + hi - d * (k - 1) - 1) // s + 1
                    for n, k, s, (lo, hi), d in zip(x[2:], w[2:], stride, padding, dilation))
    return (x[0], w[0]) + spatial


# product primitive -> (shape of its result from its operands' shapes and attributes, epilogue kernel)
PRODUCTS: dict[Primitive, tuple[Callable, type]] = {matmul_p: (_matmul_shape, MatmulEpilogue),
                                                     conv_p: (_conv_shape, ConvEpilogue)}


def _insert(rest: tuple, pos: int, value: Any) -> tuple:
    return tuple(rest[:pos]) + (value,) + tuple(rest[pos:])


def epilogue_primitive(product: Primitive, group: Primitive, acc: int) -> Primitive:
    """The primitive computing ``group(*others[:acc], product(a, b), *others[acc:])`` from
    ``(a, b, *others)`` and the product's attributes."""
    key = (product.name, group.name, acc)
    if key in _MADE:
        return _MADE[key]
    shape_of, kernel_class = PRODUCTS[product]

    def impl(xp, a, b, *rest, **attrs):
        return group.impl(xp, *_insert(rest, acc, product.impl(xp, a, b, **attrs)))

    def abstract(a, b, *rest, **attrs):
        return group.abstract(*_insert(rest, acc, (shape_of(a[0], b[0], **attrs), a[1])))

    def vjp(g, out, a, b, *rest, **attrs):
        with state_changed(grad=True):  # marks the product as needing a gradient when a or b does
            value = bind(product, a, b, **attrs)
        grads = group.vjp(g, out, *_insert(rest, acc, value))
        ga = gb = None
        if grads[acc] is not None:
            ga, gb = product.vjp(grads[acc], value, a, b, **attrs)
        return (ga, gb) + tuple(grads[:acc]) + tuple(grads[acc + 1:])

    def jvp(primals, tangents, **attrs):
        a, b, *rest = primals
        ta, tb, *trest = tangents
        if ta is None and tb is None:
            value, tv = bind(product, a, b, **attrs), None
        else:
            value, tv = product.jvp((a, b), (ta, tb), **attrs)
        return group.jvp(_insert(tuple(rest), acc, value), _insert(tuple(trest), acc, tv))

    def batch(values, bdims, **attrs):
        a, b, *rest = values
        da, db, *drest = bdims
        value, dv = product.batch((a, b), (da, db), **attrs)
        return group.batch(_insert(tuple(rest), acc, value), _insert(tuple(drest), acc, dv))

    prim = Primitive(f"{product.name}_{group.name}_{acc}", impl, abstract=abstract, vjp=vjp, jvp=jvp,
                     batch=batch, doc=f"{product.name} with the epilogue {group.name} (operand {acc})")
    prim.kernels["cpu"] = kernel_class(group.kernels["cpu"], acc)
    prim.nondiff_inputs = tuple(j + 2 - (j > acc) for j in group.nondiff_inputs)
    _MADE[key] = prim
    return prim


def _group_of(g: Graph, k: int, users: dict, dtype) -> tuple[Primitive, tuple] | None:
    """The fused primitive node `k` runs (made for it if it is a single elementwise node) and its
    operands, if it can be an epilogue of a product of `dtype`."""
    node = g.nodes[k]
    kernel = node.prim.kernels.get("cpu")
    if node.prim.name.startswith("fused_") and isinstance(kernel, FusedKernel):
        return (node.prim, node.operands) if not kernel.reduce_dims else None
    if fusible_dtype(node) is not dtype or node.outputs[0].dtype is not dtype:
        return None
    spec, inputs, _ = _spec(g, [k], users, {k})
    return fused_primitive(spec), tuple(inputs)


def fuse_epilogues(g: Graph) -> Graph:
    """Merge each ``matmul`` or ``conv`` read only by one elementwise group (of its shape and dtype)
    into one node, placed where the product was or, if the group's other operands come later, where
    they are all defined (only when that keeps no operand of the product alive longer)."""
    users = _users(g)
    producer = {v.id: i for i, n in enumerate(g.nodes) for v in n.outputs}
    last_read = {vid: max((u for u in us if u != "output"), default=len(g.nodes)) if "output" not in us
                 else len(g.nodes) for vid, us in users.items()}
    merged: dict[int, Node] = {}  # consumer position -> its merged node
    placed: dict[int, list[Node]] = {}  # position -> merged nodes that run right after it
    dropped: set[int] = set()
    for i, n in enumerate(g.nodes):
        if n.prim not in PRODUCTS or (n.attrs and n.prim is matmul_p) or len(n.outputs) != 1:
            continue
        c = n.outputs[0]
        a, b = n.operands
        if c.dtype not in FLOATS or not isinstance(a, Value) or not isinstance(b, Value) \
                or a.dtype is not c.dtype or b.dtype is not c.dtype or len(a.shape) < 2 or len(b.shape) < 2:
            continue
        readers = users.get(c.id, [])
        if len(readers) != 1 or readers[0] == "output" or readers[0] in merged:
            continue
        k = readers[0]
        found = _group_of(g, k, users, c.dtype)
        if found is None:
            continue
        group, operands = found
        positions = [j for j, o in enumerate(operands) if isinstance(o, Value) and o.id == c.id]
        out = g.nodes[k].outputs[0]
        kernel = group.kernels["cpu"]
        assert isinstance(kernel, FusedKernel)
        shape = tuple(out.shape[1:]) if len(kernel.outputs) > 1 else tuple(out.shape)
        if len(positions) != 1 or shape != tuple(c.shape):
            continue
        acc = positions[0]
        prim = epilogue_primitive(n.prim, group, acc)
        rest = operands[:acc] + operands[acc + 1:]
        merged[k] = Node(prim, (a, b) + tuple(rest), dict(n.attrs), g.nodes[k].outputs, g.nodes[k].where)
        # as early as its operands allow; not later than the product if that would keep the product's
        # operands alive longer (a weight gradient feeding the optimiser's update at the end)
        at = max([i] + [producer.get(o.id, -1) for o in rest if isinstance(o, Value)])
        if at > i and any(o.id in producer and last_read[o.id] < at for o in (a, b)):
            del merged[k]
            continue
        placed.setdefault(at, []).append(merged[k])
        dropped |= {i, k}
    if not merged:
        return g
    nodes = []
    for k, node in enumerate(g.nodes):
        if k not in dropped:
            nodes.append(node)
        nodes += placed.get(k, [])
    return Graph(g.inputs, nodes, g.outputs, g.constants, g.const_values)
