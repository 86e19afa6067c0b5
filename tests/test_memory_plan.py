"""The memory planner (live ranges, arena packing, predicted peak) and the static cost model."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.compiler.cost import cost
from ember.compiler.ir import Graph, Literal, Node, Value
from ember.compiler.memory import inplace_operands, live_ranges, nbytes, plan

P = ember._core.primitive.PRIMITIVES
F32, F64 = ember.float32, ember.float64


class _Builder:
    """Builds straight-line graphs value by value."""

    def __init__(self, *input_shapes, dtype=F32):
        self.next = 0
        self.inputs = [self.value(s, dtype) for s in input_shapes]
        self.nodes: list[Node] = []

    def value(self, shape, dtype=F32) -> Value:
        v = Value(self.next, tuple(shape), dtype)
        self.next += 1
        return v

    def op(self, name: str, operands, out_shape, out_dtype=F32, /, **attrs) -> Value:
        out = self.value(out_shape, out_dtype)
        self.nodes.append(Node(P[name], tuple(operands), attrs, (out,)))
        return out

    def graph(self, *outputs) -> Graph:
        return Graph(self.inputs, self.nodes, list(outputs))


@st.composite
def _random_graph(draw):
    """Random 1-d programs: elementwise ops, concatenation, reductions and reshape views, any sizes."""
    b = _Builder(*[(draw(st.integers(1, 300)),) for _ in range(draw(st.integers(1, 3)))])
    vals = list(b.inputs)
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["exp", "mul", "cat", "sum", "view"]))
        a = vals[draw(st.integers(0, len(vals) - 1))]
        n = a.shape[0] if a.shape else 1
        if kind == "exp":
            vals.append(b.op("exp", [a], a.shape))
        elif kind == "mul":
            vals.append(b.op("mul", [a, Literal(2.0)], a.shape))
        elif kind == "cat":
            c = vals[draw(st.integers(0, len(vals) - 1))]
            m = c.shape[0] if c.shape else 1
            vals.append(b.op("cat", [a, c], (n + m,), axis=0))
        elif kind == "sum":
            vals.append(b.op("reduce_sum", [a], (), axis=(0,), keepdims=False, dtype=None))
        else:
            vals.append(b.op("reshape", [a], (n, 1) if a.shape else (1,), shape=(n, 1)))
    outs = draw(st.lists(st.sampled_from(vals[len(b.inputs):]), min_size=1, max_size=2, unique_by=id))
    return b.graph(*outs)


def _brute_force_peak(g: Graph) -> int:
    """Max over steps of the bytes held, from first principles: a node's buffer is held from its step
    until no later step reads it or a view of it, and to the end if it or a view of it is an output."""
    last = max(len(g.nodes) - 1, 0)
    base: dict[int, int] = {}
    in_place = inplace_operands(g)  # which nodes write over an operand (its rules have their own test)
    for i, n in enumerate(g.nodes):
        src = n.operands[in_place[i]] if i in in_place else n.operands[0]
        if (n.prim.view or i in in_place) and isinstance(src, Value):
            base[n.outputs[0].id] = base.get(src.id, src.id)
    step_of = {v.id: i for i, n in enumerate(g.nodes) for v in n.outputs}
    uses: dict[int, int] = {}
    for i, n in enumerate(g.nodes):
        for o in n.operands:
            if isinstance(o, Value):
                root = base.get(o.id, o.id)
                uses[root] = max(uses.get(root, -1), i)
    for v in g.outputs:
        uses[base.get(v.id, v.id)] = last
    fixed = sum(nbytes(v) for v in list(g.inputs) + list(g.const_values))
    peak = fixed
    for t in range(len(g.nodes)):
        held = 0
        for n in g.nodes:
            for v in n.outputs:
                if v.id in base:
                    continue
                if step_of[v.id] <= t <= max(uses.get(v.id, -1), step_of[v.id]):
                    held += nbytes(v)
        peak = max(peak, fixed + held)
    return peak


def _assert_no_overlap(p) -> None:
    arena = [b for b in p.buffers.values() if b.kind == "intermediate" and b.size]
    for i, a in enumerate(arena):
        assert a.offset % 64 == 0 and a.size % 64 == 0 and a.size >= a.bytes
        assert a.offset + a.size <= p.arena_bytes
        for c in arena[i + 1:]:
            if a.overlaps(c):
                assert a.offset + a.size <= c.offset or c.offset + c.size <= a.offset, (a, c)


@settings(max_examples=150, deadline=None)
@given(_random_graph())
def test_buffers_live_at_the_same_time_never_overlap(g):
    _assert_no_overlap(plan(g))


@settings(max_examples=150, deadline=None)
@given(_random_graph())
def test_predicted_peak_equals_a_brute_force_count(g):
    p = plan(g)
    assert p.peak_bytes == _brute_force_peak(g)
    fixed = sum(nbytes(v) for v in g.inputs)
    assert p.arena_bytes >= p.peak_bytes - fixed  # the arena holds at least what is live at the peak


@settings(max_examples=60, deadline=None)
@given(_random_graph())
def test_views_take_no_memory_and_keep_their_base_alive(g):
    bufs = live_ranges(g)
    for b in bufs.values():
        if b.kind == "view":
            root = bufs[b.alias_of]
            assert b.bytes == 0 and root.kind != "view"
            assert root.start <= b.start and b.end <= root.end


def test_a_chain_of_non_elementwise_ops_reuses_two_buffers():
    b = _Builder((256,))
    v = b.inputs[0]
    for _ in range(8):
        v = b.op("cumsum", [v], (256,), axis=0, reverse=False)
    p = plan(b.graph(v))
    offsets = {x.offset for x in p.buffers.values() if x.kind == "intermediate"}
    assert offsets == {0, 1024}  # ping-pong between two 1 KiB buffers
    assert p.arena_bytes == 2048
    assert p.peak_bytes == 1024 + 2048  # the input plus one operand and one result


def test_an_elementwise_chain_runs_in_one_buffer():
    b = _Builder((256,))
    v = b.inputs[0]
    for _ in range(8):
        v = b.op("exp", [v], (256,))
    g = b.graph(v)
    assert inplace_operands(g) == {k: 0 for k in range(1, 8)}  # the first exp must not write its input
    p = plan(g)
    assert {x.offset for x in p.buffers.values() if x.kind == "intermediate"} == {0}
    assert p.arena_bytes == 1024 and p.peak_bytes == 1024 + 1024  # the input plus one buffer
    assert all(x.kind == "reuse" and x.alias_of == 1 for x in p.buffers.values() if x.value.id > 1)


def test_in_place_reuse_needs_an_operand_that_dies_unaliased_with_the_result_shape():
    b = _Builder((64,), (1,))
    x = b.op("exp", [b.inputs[0]], (64,))
    view = b.op("reshape", [x], (64, 1), shape=(64, 1))
    y = b.op("exp", [x], (64,))  # x is still read through its view below: no reuse
    z = b.op("mul", [y, b.inputs[1]], (64,))  # y dies here with z's shape: reuse
    w = b.op("add", [z, z], (64,))  # z read twice by one node: no reuse
    ints = b.op("convert_element_type", [w], (64,), F32, dtype=F32)  # not a formula primitive
    g = b.graph(ints, view)
    assert inplace_operands(g) == {3: 0}


def test_inputs_and_constants_live_throughout_and_outputs_to_the_end():
    b = _Builder((4,), (8,))
    c = Value(99, (16,), F64)
    x = b.op("exp", [b.inputs[0]], (4,))
    y = b.op("add", [x, c], (16,))
    z = b.op("exp", [b.inputs[1]], (8,))
    g = Graph(b.inputs, b.nodes, [x, z], {99: None}, [c])
    bufs = live_ranges(g)
    assert (bufs[0].start, bufs[0].end) == (0, 2) and (bufs[99].start, bufs[99].end) == (0, 2)
    assert (bufs[x.id].start, bufs[x.id].end) == (0, 2)  # an output: to the end
    assert (bufs[y.id].start, bufs[y.id].end) == (1, 1)  # never read: only while it is written
    p = plan(g)
    assert bufs[0].offset is None and p.buffers[99].offset is None
    assert p.as_dict()["constant_bytes"] == 128 and p.as_dict()["input_bytes"] == 48


def test_best_fit_takes_the_smallest_gap():
    # Once b2 (1 KiB) and b4 (256 B) die, the live b1, b3, b5 leave two holes; the 256 B `d` takes the
    # 256 B one (first fit would take the 1 KiB hole).
    b = _Builder((1,))
    x = b.inputs[0]
    b1, b2, b3 = b.op("exp", [x], (512,)), b.op("exp", [x], (256,)), b.op("exp", [x], (256,))
    b4, b5 = b.op("exp", [x], (64,)), b.op("exp", [x], (64,))
    d = b.op("exp", [b.op("add", [b2, b4], (1,))], (64,))
    p = plan(b.graph(b1, b3, b5, d))
    assert [p.buffers[v.id].offset for v in (b1, b2, b3, b4, b5)] == [0, 2048, 3072, 4096, 4352]
    assert p.buffers[d.id].offset == 4096
    _assert_no_overlap(p)


def test_lowered_memory_reports_every_buffer(rng):
    f = ember.jit(lambda x, w: (ember.tanh(x @ w).T.reshape(-1) * 2).sum())
    x, w = ember.randn(8, 16), ember.randn(16, 32)
    report = f.lower(x, w).memory()
    assert set(report) >= {"peak_bytes", "arena_bytes", "buffers"}
    graph = f.lower(x, w).graph
    assert report["peak_bytes"] == _brute_force_peak(graph)
    by_id = {b["value"]: b for b in report["buffers"]}
    assert set(by_id) == {v.id for v in graph.values()}
    mm = next(b for b in report["buffers"] if b["op"].startswith("matmul"))  # tanh is its epilogue
    assert mm["bytes"] == 8 * 32 * 4 and mm["shape"] == (8, 32) and mm["dtype"] == "float32"
    assert mm["offset"] % 64 == 0 and mm["live"][0] <= mm["live"][1]


def test_memory_plan_of_a_compiled_lstm_step_is_consistent():
    def f(xs, w):
        return ember.scan(lambda c, x: (ember.tanh(c @ w + x), c.sum()), ember.zeros(2, 4), xs)[1]

    lowered = ember.jit(f).lower(ember.randn(5, 2, 4), ember.randn(4, 4))
    p = plan(lowered.graph)
    _assert_no_overlap(p)
    assert p.peak_bytes == _brute_force_peak(lowered.graph)
    assert lowered.memory()["peak_bytes"] == p.peak_bytes


# -- cost ---------------------------------------------------------------------------------------------------
def test_cost_of_a_matmul_is_two_m_n_k():
    b = _Builder((2, 3), (3, 4))
    y = b.op("matmul", b.inputs, (2, 4))
    c = cost(b.graph(y))
    assert c["flops"] == 2 * 2 * 4 * 3
    assert c["bytes"] == (6 + 12 + 8) * 4
    bb = _Builder((5, 2, 3), (3, 4), dtype=F64)  # batched: the batch multiplies
    y = bb.op("matmul", bb.inputs, (5, 2, 4), F64)
    assert cost(bb.graph(y))["flops"] == 5 * 2 * 2 * 4 * 3


@pytest.mark.parametrize("name,ops", [("add", 1), ("silu", 4), ("gelu", 5), ("relu", 2)])
def test_cost_of_elementwise_ops_counts_the_formula(name, ops):
    b = _Builder((3, 10))
    args = [b.inputs[0], b.inputs[0]] if name == "add" else [b.inputs[0]]
    y = b.op(name, args, (3, 10))
    c = cost(b.graph(y))
    assert c["flops"] == 30 * ops
    assert c["bytes"] == (len(args) + 1) * 30 * 4


def test_cost_of_reductions_views_and_others():
    b = _Builder((4, 5))
    s = b.op("reduce_sum", [b.inputs[0]], (5,), axis=(0,), keepdims=False, dtype=None)
    r = b.op("reshape", [b.inputs[0]], (20,), shape=(20,))
    c = b.op("cat", [r, r], (40,), axis=0)
    per = cost(b.graph(s, c))["nodes"]
    assert [(n["op"], n["flops"], n["bytes"]) for n in per] == [
        ("reduce_sum", 20, 80 + 20), ("reshape", 0, 0), ("cat", 40, 160 + 160)]


def test_cost_of_control_flow_counts_the_bodies():
    f = ember.jit(lambda xs: ember.scan(lambda c, x: (c + x * 2.0, c), ember.zeros(3), xs)[1])
    lowered = f.lower(ember.ones(7, 3))
    node = next(n for n in lowered.cost()["nodes"] if n["op"] == "scan")
    body = cost(lowered.graph.nodes[[n.prim.name for n in lowered.graph.nodes].index("scan")].attrs["body"])
    assert node["flops"] == 7 * body["flops"] > 0
    w = ember.jit(lambda x: ember.while_loop(lambda v: v.sum() < 9, lambda v: v * 2, x))
    wnode = next(n for n in w.lower(ember.ones(3)).cost()["nodes"] if n["op"] == "while_loop")
    assert wnode["per_iteration"] and wnode["flops"] == 3 + 3 + 1  # sum, mul, compare


def test_lowered_cost_totals_are_the_sum_of_the_nodes():
    f = ember.jit(lambda a, b: (a @ b).relu().sum())
    c = f.lower(ember.ones(4, 3), ember.ones(3, 5)).cost()
    assert c["flops"] == sum(n["flops"] for n in c["nodes"]) and c["bytes"] == sum(n["bytes"] for n in c["nodes"])
    assert c["nodes"][0]["op"] == "matmul" and c["nodes"][0]["flops"] == 2 * 4 * 5 * 3
