"""The fusion pass: chains and DAGs of elementwise nodes become one node running one generated kernel.

A *group* is a set of elementwise nodes (primitives with a ``formula``) of one float dtype and one
output shape (inputs may broadcast to it). Values produced inside a group and used only there never
reach memory; values also used outside become extra outputs. Each group of two or more nodes is
replaced by one node of a primitive made for it (``fused_<hash>``), whose kernel is C code generated from
the composed formulas (:mod:`ember.compiler.codegen`). Its VJP, JVP and batching rules replay the
original nodes with their own rules, so compiled functions stay differentiable and transformable.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .._core import dtypes, expr
from .._core.creation import zeros_like
from .._core.dispatch import bind, state_changed
from .._core.primitive import Primitive
from .._core.primitives import elementwise, indexing, movement, reduce
from .._core.tensor import Tensor
from .codegen.c import SUPPORTED
from .codegen.kernel import broadcast_shape
from .codegen.runtime import FusedKernel
from .ir import Graph, Literal, Node, Value

FLOATS = (dtypes.float32, dtypes.float64)
_REDUCE_SUM = reduce.sum_p
MAX_TREE = 4096  # largest composed expression (counted as a tree) a group may produce
_FUSED: dict[str, Primitive] = {}  # name -> fused primitive made in this process


# -- which nodes may fuse --------------------------------------------------------------------------
def _renderable(prim: Primitive) -> bool:
    return prim.formula is not None and all(n.atom.name in SUPPORTED for n in expr.topo_nodes(prim.formula))


def _scalar_literal(o: Any) -> bool:
    v = o.value
    return isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating))


def fusible_dtype(n: Node) -> dtypes.DType | None:
    """The float dtype a node computes in if it may join a fused group, else None."""
    if n.attrs or len(n.outputs) != 1 or not _renderable(n.prim) or len(n.operands) != len(n.prim.params):
        return None
    values = [o for o in n.operands if isinstance(o, Value)] + [n.outputs[0]]
    if not all(_scalar_literal(o) for o in n.operands if isinstance(o, Literal)):
        return None
    floats = {v.dtype for v in values if v.dtype in FLOATS}
    if len(floats) != 1 or any(v.dtype not in FLOATS and v.dtype is not dtypes.bool_ for v in values):
        return None
    return floats.pop()


# -- grouping --------------------------------------------------------------------------------------
class _Groups:
    """Union-find over node positions, with what each value depends on (for cycle checks)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.key: dict[int, tuple] = {}  # root -> (dtype, shape)
        self.gdep: dict[int, set[int]] = {}  # root -> groups its members' operands depend on
        self.dep: dict[int, set[int]] = {}  # value id -> groups it depends on (its own included)
        self.size: dict[int, int] = {}  # value id -> tree size of its expression within its group
        self.producer: dict[int, int] = {}  # value id -> node position

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def roots(self, ids) -> set[int]:
        return {self.find(i) for i in ids}

    def group_of(self, v: Any) -> int | None:
        if isinstance(v, Value) and v.id in self.producer and self.producer[v.id] in self.parent:
            return self.find(self.producer[v.id])
        return None


def _reach(gs: _Groups, ids) -> set[int]:
    """The groups that the groups of `ids` depend on, transitively (those groups included).

    A value's recorded dependencies are the groups as they were when it was made; a group that grew
    since may depend on more, so the closure goes through each group's current dependencies."""
    seen: set[int] = set()
    stack = list(gs.roots(ids))
    while stack:
        r = stack.pop()
        if r not in seen:
            seen.add(r)
            stack.extend(gs.roots(gs.gdep.get(r, ())) - seen)
    return seen


def _legal(gs: _Groups, chosen: set[int], n: Node) -> bool:
    """May node `n` join the union of groups `chosen` without making the group graph cyclic?"""
    outside = [gs.dep.get(o.id, ()) for o in n.operands
               if isinstance(o, Value) and gs.group_of(o) not in chosen]
    if _reach(gs, set().union(*outside)) & chosen:
        return False
    if len(chosen) > 1:
        for a in chosen:
            if _reach(gs, gs.gdep[a]) & (chosen - {a}):
                return False
    return True


def _tree_size(gs: _Groups, chosen: set[int], n: Node) -> int:
    return 1 + sum(gs.size.get(o.id, 1) if gs.group_of(o) in chosen else 1
                   for o in n.operands if isinstance(o, Value))


def find_groups(g: Graph, excluded: frozenset = frozenset()) -> dict[int, int]:
    """Node position -> group id for every fusible node (positions in `excluded` stay alone)."""
    gs = _Groups()
    for i, n in enumerate(g.nodes):
        out = n.outputs[0]
        operand_deps = set().union(*(gs.dep.get(o.id, set()) for o in n.operands if isinstance(o, Value)))
        dt = None if i in excluded else fusible_dtype(n)
        for v in n.outputs:
            gs.producer[v.id] = i
        if dt is None:
            for v in n.outputs:
                gs.dep[v.id] = operand_deps
            continue
        key = (dt, out.shape)
        chosen: set[int] = set()
        for o in n.operands:
            root = gs.group_of(o)
            if root is not None and gs.key[root] == key and root not in chosen:
                trial = chosen | {root}
                if _legal(gs, trial, n) and _tree_size(gs, trial, n) <= MAX_TREE:
                    chosen = trial
        gs.size[out.id] = _tree_size(gs, chosen, n)
        gs.parent[i] = i
        gdep = set(operand_deps)
        for root in chosen:
            gdep |= gs.gdep.pop(root)
            gs.parent[root] = i
        gs.key[i] = key
        gs.gdep[i] = gdep
        gs.dep[out.id] = gdep | {i}
    return {i: gs.find(i) for i in gs.parent}


def _users(g: Graph) -> dict[int, list]:
    users: dict[int, list] = {}
    for i, n in enumerate(g.nodes):
        for o in n.operands:
            if isinstance(o, Value):
                users.setdefault(o.id, []).append(i)
    for v in g.outputs:
        users.setdefault(v.id, []).append("output")
    return users


def _stable_groups(g: Graph) -> dict[int, list[int]]:
    """Groups (id -> member positions, in order) where no bool value leaves its group."""
    users = _users(g)
    excluded: set[int] = set()
    while True:
        assignment = find_groups(g, frozenset(excluded))
        bad = set()
        for i, grp in assignment.items():
            out = g.nodes[i].outputs[0]
            if out.dtype is dtypes.bool_ and any(u == "output" or assignment.get(u) != grp
                                                 for u in users.get(out.id, [])):
                bad.add(i)
        if not bad:
            break
        excluded |= bad
    groups: dict[int, list[int]] = {}
    for i in sorted(assignment):
        groups.setdefault(assignment[i], []).append(i)
    return groups


# -- the fused primitive ---------------------------------------------------------------------------
class GroupSpec:
    """A fused group detached from the graph: its members as (primitive, operand refs, attributes) and
    its outputs.

    Operand refs are ``("in", j)`` (the j-th group input), ``("node", m)`` (member m's value) or
    ``("lit", value)``. A group may end with a sum over the last ``reduce_dims`` dimensions of its one
    output (then its last member is that ``reduce_sum``).
    """

    def __init__(self, members: list[tuple[Primitive, tuple, dict]], outputs: list[int], in_dtypes: tuple,
                 dtype: dtypes.DType, comment: tuple[str, ...]):
        last = members[-1]
        self.reduce_dims = len(last[2]["axis"]) if last[0] is _REDUCE_SUM else 0
        self.keepdims = bool(last[2].get("keepdims")) if self.reduce_dims else False
        self.members = members
        self.outputs = outputs
        self.in_dtypes = in_dtypes
        self.dtype = dtype
        self.comment = comment

    def canonical(self) -> str:
        parts = [f"{p.name}{refs!r}{sorted(attrs.items())!r}" for p, refs, attrs in self.members]
        return f"{parts} -> {self.outputs} ({[d.name for d in self.in_dtypes]}; {self.dtype.name})"

    def expressions(self) -> tuple[expr.Expr, ...]:
        """One composed formula per output, over inputs named ``in0, in1, ...``."""
        values: list[expr.Expr] = []
        for prim, refs, _ in self.members:
            if prim is _REDUCE_SUM:  # the kernel sums the expression of its operand
                values.append(values[refs[0][1]])
                continue
            env = {p: _ref_expr(r, values) for p, r in zip(prim.params, refs)}
            assert prim.formula is not None  # group members are formula primitives
            values.append(_substitute(prim.formula, env, {}))
        return tuple(values[m] for m in self.outputs)


def _ref_expr(ref: tuple, values: list) -> expr.Expr:
    kind, x = ref
    if kind == "in":
        return expr.Var(f"in{x}")
    if kind == "node":
        return values[x]
    return expr.Const(float(x))


def _substitute(e: expr.Expr, env: dict, memo: dict) -> expr.Expr:
    """`e` with its variables replaced; no folding, so the composed formula computes exactly the same."""
    if isinstance(e, expr.Var):
        return env[e.name]
    if isinstance(e, expr.Const):
        return e
    assert isinstance(e, expr.Call)
    if id(e) not in memo:
        memo[id(e)] = expr.Call(e.atom, tuple(_substitute(a, env, memo) for a in e.args))
    return memo[id(e)]


def fused_primitive(spec: GroupSpec) -> Primitive:
    """The primitive running group `spec` (one per distinct group in a process)."""
    name = "fused_" + hashlib.sha256(spec.canonical().encode()).hexdigest()[:12]
    if name in _FUSED:
        return _FUSED[name]
    exprs = spec.expressions()
    names = tuple(f"in{j}" for j in range(len(spec.in_dtypes)))
    kernel = FusedKernel(name, names, tuple(d.name for d in spec.in_dtypes), exprs, spec.dtype.name,
                         spec.comment, spec.reduce_dims, spec.keepdims)
    prim = Primitive(name, _impl_rule(kernel), doc="fused elementwise group: " + spec.canonical())
    prim.kernels["cpu"] = kernel
    prim.abstract = _abstract_rule(spec, kernel)
    prim.vjp = _vjp_rule(spec)
    prim.jvp = _jvp_rule(spec, prim)
    prim.batch = _batch_rule(spec, prim)
    prim.nondiff_inputs = tuple(j for j, d in enumerate(spec.in_dtypes) if d is dtypes.bool_)
    _FUSED[name] = prim
    return prim


def _impl_rule(kernel: FusedKernel):
    def impl(xp, *arrays):
        if xp is np:
            return kernel(*arrays)
        outs = [expr.compile_kernel(e, kernel.names, xp)(*arrays) for e in kernel.outputs]
        shape = broadcast_shape([a.shape for a in arrays])
        outs = [xp.broadcast_to(xp.asarray(o, dtype=kernel.dtype), shape) for o in outs]
        if kernel.reduce_dims:
            axes = tuple(range(len(shape) - kernel.reduce_dims, len(shape)))
            return xp.sum(outs[0], axis=axes, keepdims=kernel.keepdims)
        return outs[0].copy() if len(outs) == 1 else xp.stack(outs)

    return impl


def _abstract_rule(spec: GroupSpec, kernel: FusedKernel):
    def abstract(*avals):
        shape = broadcast_shape([tuple(a[0]) for a in avals])
        return kernel.out_shape(shape), spec.dtype

    return abstract


def _replay(spec: GroupSpec, inputs: tuple) -> list:
    """Every member's value, computed by binding the original primitives."""
    values: list = []
    for prim, refs, attrs in spec.members:
        args = [inputs[x] if kind == "in" else (values[x] if kind == "node" else x) for kind, x in refs]
        values.append(bind(prim, *args, **attrs))
    return values


def _pack(spec: GroupSpec, values: list) -> Tensor:
    outs = [values[m] for m in spec.outputs]
    return outs[0] if len(outs) == 1 else movement.stack(outs)


def _vjp_rule(spec: GroupSpec):
    def vjp(g, out, *inputs):
        with state_changed(grad=True):  # marks which member values depend on inputs needing grads
            values = _replay(spec, inputs)
        cts: dict[int, Any] = {}
        for j, m in enumerate(spec.outputs):
            _accumulate(cts, m, g if len(spec.outputs) == 1 else bind(indexing.getitem_p, g, index=(j,)))
        in_cts: dict[int, Any] = {}
        for m in range(len(spec.members) - 1, -1, -1):
            ct = cts.pop(m, None)
            prim, refs, attrs = spec.members[m]
            if ct is None or prim.vjp is None:
                continue
            args = [inputs[x] if kind == "in" else (values[x] if kind == "node" else x) for kind, x in refs]
            for (kind, x), gx in zip(refs, prim.vjp(ct, values[m], *args, **attrs)):
                if gx is not None and kind != "lit":
                    _accumulate(cts if kind == "node" else in_cts, x, gx)
        return tuple(in_cts.get(j) for j in range(len(inputs)))

    return vjp


def _accumulate(table: dict, key: int, value: Any) -> None:
    table[key] = value if key not in table else elementwise.add(table[key], value)


def _jvp_rule(spec: GroupSpec, fused: Primitive):
    def jvp(primals, tangents):
        values: list = []
        tans: list = []
        for prim, refs, attrs in spec.members:
            args = [primals[x] if kind == "in" else (values[x] if kind == "node" else x) for kind, x in refs]
            targs = [tangents[x] if kind == "in" else (tans[x] if kind == "node" else None)
                     for kind, x in refs]
            if prim.jvp is None or all(t is None for t in targs):
                values.append(bind(prim, *args, **attrs))
                tans.append(None)
            else:
                value, tangent = prim.jvp(tuple(args), tuple(targs), **attrs)
                values.append(value)
                tans.append(tangent)
        out = bind(fused, *primals)
        full = [tans[m] if tans[m] is not None else zeros_like(values[m]) for m in spec.outputs]
        return out, (full[0] if len(full) == 1 else movement.stack(full))

    return jvp


def _batch_rule(spec: GroupSpec, fused: Primitive):
    def batch(values, bdims):
        rank = max(len(v.shape) - (b is not None) for v, b in zip(values, bdims))
        moved = []
        for v, b in zip(values, bdims):
            if b is not None:
                v = movement.moveaxis(v, b, 0) if b != 0 else v
                extra = rank - (len(v.shape) - 1)
                if extra:
                    v = movement.reshape(v, (v.shape[0],) + (1,) * extra + tuple(v.shape[1:]))
            moved.append(v)
        return bind(fused, *moved), (0 if len(spec.outputs) == 1 else 1)

    return batch


# -- the pass --------------------------------------------------------------------------------------
def _spec(g: Graph, members: list[int], users: dict,
          escaping: set[int] | None = None) -> tuple[GroupSpec, list[Value], list[Value]]:
    """The group's spec, its input values and its output values (in order): the members whose values
    are used outside the group, or those in `escaping` (node positions) when given."""
    position = {g.nodes[i].outputs[0].id: m for m, i in enumerate(members)}
    inputs: list[Value] = []
    index: dict[int, int] = {}
    rows = []
    for i in members:
        refs = []
        for o in g.nodes[i].operands:
            if isinstance(o, Literal):
                refs.append(("lit", o.value))
            elif o.id in position:
                refs.append(("node", position[o.id]))
            else:
                if o.id not in index:
                    index[o.id] = len(inputs)
                    inputs.append(o)
                refs.append(("in", index[o.id]))
        rows.append((g.nodes[i].prim, tuple(refs), dict(g.nodes[i].attrs)))
    member_set = set(members)
    outs = [m for m, i in enumerate(members)
            if (i in escaping if escaping is not None else
                any(u == "output" or u not in member_set for u in users.get(g.nodes[i].outputs[0].id, [])))]
    dtype = next(g.nodes[i].outputs[0].dtype for i in members if g.nodes[i].outputs[0].dtype in FLOATS)
    spec = GroupSpec(rows, outs, tuple(v.dtype for v in inputs), dtype, _comment(g, members))
    return spec, inputs, [g.nodes[members[m]].outputs[0] for m in outs]


def _comment(g: Graph, members: list[int]) -> tuple[str, ...]:
    lines = ["fused: " + ", ".join(g.nodes[i].prim.name for i in members)]
    seen = set()
    for i in members:
        where = g.nodes[i].where
        if where and (where[0], where[1]) not in seen:
            seen.add((where[0], where[1]))
            source = str(where[2]).strip().replace("*/", "* /")
            lines.append(f"{where[0].rsplit('/', 1)[-1]}:{where[1]}: {source}")
    return tuple(lines)


def _fused_nodes(g: Graph, members: list[int], users: dict, next_id: list[int],
                 escaping: set[int] | None = None) -> list[Node]:
    if len(members) == 1:  # a group split down to one node keeps the node
        return [g.nodes[members[0]]]
    spec, inputs, outputs = _spec(g, members, users, escaping)
    if not outputs:  # a dead group (the graph had not been through dce)
        return []
    prim = fused_primitive(spec)
    where = g.nodes[members[-1]].where
    if len(outputs) == 1:
        return [Node(prim, tuple(inputs), {}, (outputs[0],), where)]
    shape, dtype = outputs[0].shape, outputs[0].dtype
    packed = Value(next_id[0], (len(outputs),) + shape, dtype)
    next_id[0] += 1
    nodes = [Node(prim, tuple(inputs), {}, (packed,), where)]
    for j, v in enumerate(outputs):
        nodes.append(Node(indexing.getitem_p, (packed,), {"index": (j,)}, (v,), where))
    return nodes


def _topological(nodes: list[Node], defined: set[int]) -> list[Node]:
    """`nodes` reordered so that every operand is defined before use (keeping the order where possible)."""
    producer = {v.id: k for k, n in enumerate(nodes) for v in n.outputs}
    done: set[int] = set()
    open_: set[int] = set()  # expanded, not yet placed: the nodes on the current path
    order: list[Node] = []

    def visit(k: int) -> None:
        stack = [(k, False)]
        while stack:
            j, expanded = stack.pop()
            if j in done:
                continue
            if expanded:
                open_.discard(j)
                done.add(j)
                order.append(nodes[j])
                continue
            if j in open_:
                raise AssertionError(f"the nodes form a cycle through {nodes[j].prim.name}")
            open_.add(j)
            stack.append((j, True))
            for o in reversed(nodes[j].operands):
                p = producer.get(o.id) if isinstance(o, Value) and o.id not in defined else None
                if p is not None and p not in done:
                    stack.append((p, False))

    for k in range(len(nodes)):
        visit(k)
    return order


def _absorb_reductions(g: Graph, groups: dict[int, list[int]], users: dict) -> None:
    """Append to a group a ``reduce_sum`` over trailing dimensions of its only output."""
    position = {n.outputs[0].id: i for i, n in enumerate(g.nodes)}
    group_of = {i: k for k, members in groups.items() for i in members}
    for r, n in enumerate(g.nodes):
        if n.prim is not _REDUCE_SUM or n.attrs.get("dtype") is not None:
            continue
        v = n.operands[0]
        rank = len(v.shape)
        if not rank or tuple(n.attrs["axis"]) != tuple(range(rank - len(n.attrs["axis"]), rank)):
            continue
        k = group_of.get(position.get(v.id, -1))
        if k is None or users.get(v.id) != [r] or v.dtype not in FLOATS:
            continue
        members = set(groups[k])
        escaping = [i for i in groups[k] if any(u == "output" or u not in members
                                                for u in users.get(g.nodes[i].outputs[0].id, []))]
        if escaping == [position[v.id]]:
            groups[k].append(r)


def _escaping(g: Graph, members: list[int], users: dict) -> list[int]:
    """The members of a group whose values are used outside it."""
    inside = set(members)
    return [i for i in members
            if any(u == "output" or u not in inside for u in users.get(g.nodes[i].outputs[0].id, []))]


def _only_outputs(g: Graph, members: list[int], users: dict) -> bool:
    """True if a group has several escaping values and each is an output of the graph."""
    escaping = _escaping(g, members, users)
    return len(escaping) > 1 and all("output" in users.get(g.nodes[i].outputs[0].id, []) for i in escaping)


def _split(g: Graph, members: list[int], users: dict) -> list[tuple[list[int], set[int]]]:
    """A group with several escaping values as one-output groups: each escaping value with the members
    it needs that no other escaping value stands for (shared interior members are recomputed)."""
    escaping = _escaping(g, members, users)
    if len(escaping) <= 1:
        return [(members, set(escaping))]
    inside, stops = set(members), set(escaping)
    producer = {g.nodes[i].outputs[0].id: i for i in members}
    parts = []
    for root in escaping:
        cone, stack = {root}, [root]
        while stack:
            for o in g.nodes[stack.pop()].operands:
                i = producer.get(o.id) if isinstance(o, Value) else None
                if i is not None and i in inside and i not in stops and i not in cone:
                    cone.add(i)
                    stack.append(i)
        parts.append((sorted(cone), {root}))
    return parts


def fuse(g: Graph, multi_output: bool = True) -> Graph:
    """Replace each group of two or more fusible elementwise nodes (possibly ending in a sum over trailing
    dimensions) by one fused node.

    A group whose values are also used elsewhere computes them all in one pass and returns them packed
    in one buffer (read through views). With ``multi_output=False`` (used under a memory budget) such a
    group is split instead, so that every escaping value has a buffer of its own that can be freed, or
    recomputed, alone. A group whose escaping values are all outputs of the graph (an optimiser's update
    of a parameter and its state) is split too: each output then has a buffer of its own, which a
    compiled training step can make the tensor it updates (see ``executor.run``'s `destinations`).
    """
    users = _users(g)
    groups = _stable_groups(g)
    _absorb_reductions(g, groups, users)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return g
    parts = [part for members in groups.values()
             for part in ([(members, None)] if multi_output and not _only_outputs(g, members, users)
                          else _split(g, members, users))]
    next_id = [1 + max((v.id for v in g.values()), default=-1)]
    first = {max(members): (members, escaping) for members, escaping in parts}
    grouped = {i for members in groups.values() for i in members}  # members no part needs are dead
    nodes: list[Node] = []
    for i, n in enumerate(g.nodes):
        if i in first:
            nodes += _fused_nodes(g, first[i][0], users, next_id, first[i][1])
        elif i not in grouped:
            nodes.append(n)
    defined = {v.id for v in g.inputs} | {v.id for v in g.const_values}
    return Graph(g.inputs, _topological(nodes, defined), g.outputs, g.constants, g.const_values)
