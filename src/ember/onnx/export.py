"""ONNX export: trace a model with ``ember.jit`` and lower the graph IR to an ONNX ModelProto.

Each primitive has one lowering in :data:`LOWERINGS`. Elementwise primitives need none of their own:
their DSL formula is walked atom by atom (:data:`ATOM_OPS`), so every op defined by a formula exports.
Shape-bearing attributes are written so that dynamic axes survive: a reshape copies leading dimensions
that it keeps (ONNX's ``0``) and infers one more (``-1``), an expand keeps dimensions it does not
stretch, and a slice only names the axes it cuts.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import numpy as np

from .._core import dtypes, expr
from .._core.creation import zeros
from .._core.errors import TraceError
from .._core.tensor import Tensor
from ..compiler import dynamic
from ._common import MissingDependencyError, OnnxError

DEFAULT_OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("onnx.export", "exporting needs the onnx package "
                                     "(pip install onnx)") from None
    return onnx


class UnsupportedPrimitiveError(OnnxError, NotImplementedError):
    """A traced primitive has no ONNX lowering."""


class _Builder:
    """Collects nodes and initializers and hands out fresh names."""

    def __init__(self, onnx: Any, opset: int):
        self.onnx = onnx
        self.helper = onnx.helper
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.names: dict[int, str] = {}  # IR value id -> ONNX name
        self._count = itertools.count()
        self._consts: dict = {}
        self.dynamic_dims: dict = {}  # (id(node), attribute) -> {position: (coef, symbols)}
        self.symbols: dict[str, tuple[str, int]] = {}  # symbol -> (input name, axis)

    def fresh(self, hint: str = "t") -> str:
        return f"{hint}_{next(self._count)}"

    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value: Any, dtype: Any = None, name: str | None = None) -> str:
        arr = np.asarray(value, dtype=dtype)
        key = (name, arr.dtype.str, arr.shape, arr.tobytes())
        if name is None and key in self._consts:
            return self._consts[key]
        name = name or self.fresh("const")
        self.initializers.append(self.onnx.numpy_helper.from_array(_onnx_array(arr), name))
        if key[0] is None:
            self._consts[key] = name
        return name

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64))

    def shape_vector(self, node: Any, attr: str, values: Sequence[int],
                     rewrite: Callable | None = None) -> str:
        """An int64 vector input for `values`, computed at run time where dynamic axes change it."""
        exprs = self.dynamic_dims.get((id(node), attr), {})
        if rewrite is not None:
            values = rewrite(list(values))
        if not exprs:
            return self.ints(values)
        parts = []
        for j, v in enumerate(values):
            e = exprs.get(j)
            parts.append(self.ints([v]) if e is None else self.dim_expr(*e))
        return self.op("Concat", parts, axis=0)

    def dim_expr(self, coef: int, symbols: tuple) -> str:
        """``coef · prod(sizes of symbols)`` as a 1-element int64 vector read from the inputs' shapes."""
        out = None
        for sym in symbols:
            name, axis = self.symbols[sym]
            size = self.op("Gather", [self.op("Shape", [name]), self.ints([axis])], axis=0)
            out = size if out is None else self.op("Mul", [out, size])
        return out if coef == 1 else self.op("Mul", [out, self.ints([coef])])


def _onnx_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == dtypes.bfloat16.np:
        return arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def _np_dtype(dt: dtypes.DType) -> np.dtype:
    return np.dtype(np.float32) if dt is dtypes.bfloat16 else dt.np


_ONNX_TYPES = {"bool": 9, "uint8": 2, "int8": 3, "int16": 5, "int32": 6, "int64": 7, "float16": 10,
               "bfloat16": 16, "float32": 1, "float64": 11, "complex64": 14, "complex128": 15}


# -- elementwise: formulas, atom by atom ----------------------------------------------------------------
def _unary(op: str) -> Callable:
    return lambda b, a: b.op(op, [a[0]])


def _binary(op: str) -> Callable:
    return lambda b, a: b.op(op, [a[0], a[1]])


def _trunc(b, a):
    return b.op("Mul", [b.op("Sign", [a[0]]), b.op("Floor", [b.op("Abs", [a[0]])])])


def _remainder(b, a):
    q = b.op("Floor", [b.op("Div", [a[0], a[1]])])
    return b.op("Sub", [a[0], b.op("Mul", [q, a[1]])])


ATOM_OPS: dict[str, Callable] = {
    "add": _binary("Add"), "sub": _binary("Sub"), "mul": _binary("Mul"), "div": _binary("Div"),
    "pow": _binary("Pow"), "maximum": _binary("Max"), "minimum": _binary("Min"),
    "neg": _unary("Neg"), "exp": _unary("Exp"), "log": _unary("Log"), "sin": _unary("Sin"),
    "cos": _unary("Cos"), "tan": _unary("Tan"), "tanh": _unary("Tanh"), "sinh": _unary("Sinh"),
    "cosh": _unary("Cosh"), "asin": _unary("Asin"), "acos": _unary("Acos"), "atan": _unary("Atan"),
    "asinh": _unary("Asinh"), "acosh": _unary("Acosh"), "atanh": _unary("Atanh"), "sqrt": _unary("Sqrt"),
    "abs": _unary("Abs"), "sign": _unary("Sign"), "floor": _unary("Floor"), "ceil": _unary("Ceil"),
    "round": _unary("Round"), "erf": _unary("Erf"), "isnan": _unary("IsNaN"), "isinf": _unary("IsInf"),
    "rsqrt": lambda b, a: b.op("Reciprocal", [b.op("Sqrt", [a[0]])]),
    "trunc": _trunc, "remainder": _remainder,
    "floor_divide": lambda b, a: b.op("Floor", [b.op("Div", [a[0], a[1]])]),
    "where": lambda b, a: b.op("Where", [a[0], a[1], a[2]]),
    "lt": _binary("Less"), "le": _binary("LessOrEqual"), "gt": _binary("Greater"),
    "ge": _binary("GreaterOrEqual"), "eq": _binary("Equal"),
    "ne": lambda b, a: b.op("Not", [b.op("Equal", [a[0], a[1]])]),
    "logical_and": _binary("And"), "logical_or": _binary("Or"), "logical_xor": _binary("Xor"),
    "logical_not": _unary("Not"),
    "isfinite": lambda b, a: b.op("Not", [b.op("Or", [b.op("IsNaN", [a[0]]), b.op("IsInf", [a[0]])])]),
}


def _lower_formula(b: _Builder, prim, operands: list[str], compute: np.dtype) -> str:
    env = dict(zip(prim.params, operands))

    def apply(name: str, *args):
        fn = ATOM_OPS.get(name)
        if fn is None:
            raise UnsupportedPrimitiveError("onnx.export", f"{prim.name}: the formula uses '{name}', "
                                            "which has no ONNX lowering")
        return fn(b, [a if isinstance(a, str) else b.const(a, compute) for a in args])

    result = expr.evaluate(prim.formula, env, apply)
    return result if isinstance(result, str) else b.const(np.full((), result, dtype=compute))


# -- the other primitives ------------------------------------------------------------------------------
def _reshape_target(in_shape: tuple, out_shape: tuple) -> list[int]:
    """ONNX Reshape's shape input: copy the kept leading dims (0), infer the next one (-1)."""
    target = list(out_shape)
    i = 0
    while i < min(len(in_shape), len(out_shape)) and in_shape[i] == out_shape[i]:
        target[i] = 0
        i += 1
    if i < len(target) and all(d > 0 for d in out_shape):
        target[i] = -1
    return target


def _lower_reshape(b, node, a, vals):
    if (id(node), "shape") in b.dynamic_dims:
        return b.op("Reshape", [a[0], b.shape_vector(node, "shape", node.attrs["shape"])])
    return b.op("Reshape", [a[0], b.ints(_reshape_target(vals[0].shape, node.outputs[0].shape))])


def _lower_expand(b, node, a, vals):
    out = node.outputs[0].shape
    src = (1,) * (len(out) - len(vals[0].shape)) + tuple(vals[0].shape)
    if (id(node), "shape") in b.dynamic_dims:
        return b.op("Expand", [a[0], b.shape_vector(node, "shape", node.attrs["shape"])])
    return b.op("Expand", [a[0], b.ints([1 if s == o else o for s, o in zip(src, out)])])


def _lower_slice(b, node, a, vals):
    shape = vals[0].shape
    axes, starts, ends, steps = [], [], [], []
    for ax, (s, e, st) in enumerate(zip(node.attrs["starts"], node.attrs["stops"], node.attrs["steps"])):
        if (s, e, st) != (0, shape[ax], 1):
            axes.append(ax)
            starts.append(s)
            ends.append(e)
            steps.append(st)
    dyn = (id(node), "stops") in b.dynamic_dims or (id(node), "starts") in b.dynamic_dims
    if dyn:  # a cut that depends on a dynamic size: name every axis and compute the bounds at run time
        n = len(shape)
        return b.op("Slice", [a[0], b.shape_vector(node, "starts", node.attrs["starts"]),
                              b.shape_vector(node, "stops", node.attrs["stops"]), b.ints(range(n)),
                              b.ints(node.attrs["steps"])])
    if not axes:
        return b.op("Identity", [a[0]])
    return b.op("Slice", [a[0], b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)])


def _lower_getitem(b, node, a, vals):
    if (id(node), "stops") in b.dynamic_dims:
        return _lower_getitem_dynamic(b, node, a, vals)
    x, shape = a[0], vals[0].shape
    axes, starts, ends, steps, squeeze, unsqueeze = [], [], [], [], [], []
    dim = out_pos = 0
    for entry in node.attrs["index"]:
        if entry is None:
            unsqueeze.append(out_pos)
            out_pos += 1
            continue
        if isinstance(entry, tuple):
            start, stop, step = slice(*entry).indices(shape[dim])
            if (start, stop, step) != (0, shape[dim], 1):
                axes.append(dim)
                starts.append(start)
                ends.append(stop if stop >= 0 or step > 0 else -(2 ** 62))
                steps.append(step)
            out_pos += 1
        else:
            i = int(entry) % shape[dim]
            axes.append(dim)
            starts.append(i)
            ends.append(i + 1)
            steps.append(1)
            squeeze.append(dim)
        dim += 1
    if axes:
        x = b.op("Slice", [x, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)])
    if squeeze:
        x = b.op("Squeeze", [x, b.ints(squeeze)])
    if unsqueeze:
        x = b.op("Unsqueeze", [x, b.ints(unsqueeze)])
    return x if x != a[0] else b.op("Identity", [x])


def _lower_getitem_dynamic(b, node, a, vals):
    """Basic indexing whose slice ends follow dynamic sizes: every slice entry is cut at run time."""
    axes, starts, steps, squeeze, unsqueeze, dim, out_pos = [], [], [], [], [], 0, 0
    x = a[0]
    for entry in node.attrs["index"]:
        if entry is None:
            unsqueeze.append(out_pos)
            out_pos += 1
            continue
        if isinstance(entry, tuple):
            if entry[2] not in (None, 1) or (entry[0] or 0) < 0:
                raise UnsupportedPrimitiveError("onnx.export", "a stepped or negative slice whose end "
                                                "follows a dynamic axis has no ONNX lowering yet")
            axes.append(dim)
            starts.append(entry[0] or 0)
            steps.append(1)
            out_pos += 1
        else:
            squeeze.append(dim)
            x = b.op("Gather", [x, b.ints([int(entry)])], axis=dim)
        dim += 1
    x = b.op("Slice", [x, b.ints(starts), b.shape_vector(node, "stops", _getitem_stops(node)), b.ints(axes),
                       b.ints(steps)])
    if squeeze:
        x = b.op("Squeeze", [x, b.ints(squeeze)])
    if unsqueeze:
        x = b.op("Unsqueeze", [x, b.ints(unsqueeze)])
    return x


def _lower_reduce(op: str) -> Callable:
    def lower(b, node, a, vals):
        axes = list(node.attrs["axis"])
        keep = int(node.attrs["keepdims"])
        if not axes:
            return b.op("Identity", [a[0]])
        if op == "ReduceSum" or b.opset >= 18:
            return b.op(op, [a[0], b.ints(axes)], keepdims=keep)
        return b.op(op, [a[0]], axes=axes, keepdims=keep)

    return lower


def _lower_var(b, node, a, vals):
    axes, keep = list(node.attrs["axis"]), int(node.attrs["keepdims"])
    n = int(np.prod([vals[0].shape[i] for i in axes])) if axes else 1
    dt = _np_dtype(vals[0].dtype)
    mean = _reduce_mean(b, a[0], axes, 1)
    centred = b.op("Sub", [a[0], mean])
    total = b.op("ReduceSum", [b.op("Mul", [centred, centred]), b.ints(axes)], keepdims=keep)
    return b.op("Div", [total, b.const(max(n - node.attrs.get("correction", 1), 0), dt)])


def _reduce_mean(b, x: str, axes: list[int], keep: int) -> str:
    if b.opset >= 18:
        return b.op("ReduceMean", [x, b.ints(axes)], keepdims=keep)
    return b.op("ReduceMean", [x], axes=axes, keepdims=keep)


def _lower_normalize(b, node, a, vals):
    rank, n = len(vals[0].shape), node.attrs["n"]
    axes = list(range(rank - n, rank))
    dt = _np_dtype(vals[0].dtype)
    centred = b.op("Sub", [a[0], _reduce_mean(b, a[0], axes, 1)])
    var = _reduce_mean(b, b.op("Mul", [centred, centred]), axes, 1)
    return b.op("Div", [centred, b.op("Sqrt", [b.op("Add", [var, b.const(node.attrs["eps"], dt)])])])


def _safe_softmax(b, x: str, dt) -> str:
    """Softmax over the last axis where a row with no finite entry gives zeros, not NaN."""
    y = b.op("Softmax", [x], axis=-1)
    if b.opset >= 18:
        top = b.op("ReduceMax", [x, b.ints([-1])], keepdims=1)
    else:
        top = b.op("ReduceMax", [x], axes=[-1], keepdims=1)
    dead = b.op("Equal", [top, b.const(float("-inf"), dt)])
    return b.op("Where", [dead, b.const(0.0, dt), y])


def _lower_softmax(b, node, a, vals):
    if not node.attrs["safe"]:
        return b.op("Softmax", [a[0]], axis=-1)
    return _safe_softmax(b, a[0], _np_dtype(vals[0].dtype))


def _lower_attention(b, node, a, vals):
    dt = _np_dtype(vals[0].dtype)
    rank = len(vals[1].shape)
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    scores = b.op("Mul", [b.op("MatMul", [a[0], b.op("Transpose", [a[1]], perm=perm)]),
                          b.const(node.attrs["scale"], dt)])
    if len(a) == 4:
        scores = b.op("Add", [scores, a[3]])
    if node.attrs["causal"]:  # keys j <= i: the lower triangle of an (L, S) block of ones
        lengths = [b.op("Shape", [x], start=-2, end=-1) for x in a[:2]]
        true = b.onnx.numpy_helper.from_array(np.ones((1,), dtype=bool))
        ones = b.op("ConstantOfShape", [b.op("Concat", lengths, axis=0)], value=true)
        scores = b.op("Where", [b.op("Trilu", [ones], upper=0), scores, b.const(float("-inf"), dt)])
    return b.op("MatMul", [_safe_softmax(b, scores, dt), a[2]])


def _pads(padding) -> list[int]:
    return [lo for lo, _ in padding] + [hi for _, hi in padding]


def _lower_conv(b, node, a, vals):
    return b.op("Conv", [a[0], a[1]], strides=list(node.attrs["stride"]), pads=_pads(node.attrs["padding"]),
                dilations=list(node.attrs["dilation"]), group=int(node.attrs["groups"]))


def _lower_max_pool(b, node, a, vals):
    return b.op("MaxPool", [a[0]], kernel_shape=list(node.attrs["kernel"]),
                strides=list(node.attrs["stride"]), dilations=list(node.attrs["dilation"]))


def _lower_pool_sum(b, node, a, vals):
    kernel = node.attrs["kernel"]
    if any(d != 1 for d in node.attrs["dilation"]):
        raise UnsupportedPrimitiveError("onnx.export", "pool_sum with dilation has no ONNX lowering")
    mean = b.op("AveragePool", [a[0]], kernel_shape=list(kernel), strides=list(node.attrs["stride"]))
    return b.op("Mul", [mean, b.const(float(np.prod(kernel)), _np_dtype(vals[0].dtype))])


def _lower_pad(b, node, a, vals):
    config = node.attrs["config"]  # (low, high, interior) per dimension; negative amounts crop
    if any(interior for _, _, interior in config):
        raise UnsupportedPrimitiveError("onnx.export", "interior padding has no ONNX lowering")
    value = b.const(np.full((), node.attrs.get("value", 0), dtype=_np_dtype(vals[0].dtype)))
    pads = [lo for lo, _, _ in config] + [hi for _, hi, _ in config]
    return b.op("Pad", [a[0], b.ints(pads), value], mode="constant")


def _lower_index(b, node, a, vals):
    if len(a) == 2:
        return b.op("Gather", [a[0], a[1]], axis=0)
    # several index tensors for the leading dims: broadcast them, stack on a last axis, GatherND
    n, out = len(a) - 1, node.outputs[0].shape
    idx_shape = out[:len(out) - (len(vals[0].shape) - n)]
    stacked = [b.op("Unsqueeze", [b.op("Expand", [i, b.ints(idx_shape)]), b.ints([-1])]) for i in a[1:]]
    return b.op("GatherND", [a[0], b.op("Concat", stacked, axis=-1)])


def _lower_einsum(b, node, a, vals):
    letters = sorted(set(c for c in node.attrs["equation"] if c.isalpha()))
    lower = dict(zip(letters, "abcdefghijklmnopqrstuvwxyz"))
    equation = "".join(lower.get(c, c) for c in node.attrs["equation"])
    return b.op("Einsum", list(a), equation=equation)


def _lower_full_like(b, node, a, vals):
    dt = node.attrs["dtype"]
    value = b.onnx.numpy_helper.from_array(np.full((1,), node.attrs["fill_value"], dtype=_np_dtype(dt)))
    return b.op("ConstantOfShape", [b.op("Shape", [a[0]])], value=value)


def _lower_cast(b, node, a, vals):
    return b.op("Cast", [a[0]], to=_ONNX_TYPES[node.attrs["dtype"].name])


LOWERINGS: dict[str, Callable] = {
    "reshape": _lower_reshape, "broadcast_to": _lower_expand, "slice": _lower_slice,
    "getitem": _lower_getitem,
    "transpose": lambda b, node, a, vals: b.op("Transpose", [a[0]], perm=list(node.attrs["perm"])),
    "cat": lambda b, node, a, vals: b.op("Concat", list(a), axis=int(node.attrs["dim"])),
    "matmul": lambda b, node, a, vals: b.op("MatMul", [a[0], a[1]]),
    "einsum": _lower_einsum,
    "reduce_sum": _lower_reduce("ReduceSum"), "reduce_max": _lower_reduce("ReduceMax"),
    "reduce_min": _lower_reduce("ReduceMin"), "reduce_prod": _lower_reduce("ReduceProd"),
    "reduce_var": _lower_var, "normalize": _lower_normalize, "softmax": _lower_softmax,
    "attention": _lower_attention,
    "log_softmax": lambda b, node, a, vals: b.op("LogSoftmax", [a[0]], axis=-1),
    "conv": _lower_conv, "max_pool": _lower_max_pool, "pool_sum": _lower_pool_sum, "pad": _lower_pad,
    "index": _lower_index, "convert_element_type": _lower_cast, "full_like": _lower_full_like,
    "cumsum": lambda b, node, a, vals: b.op("CumSum", [a[0], b.ints([node.attrs["axis"]])],
                                            reverse=int(node.attrs["reverse"])),
    "copy": lambda b, node, a, vals: b.op("Identity", [a[0]]),
    "stop_gradient": lambda b, node, a, vals: b.op("Identity", [a[0]]),
    "contiguous": lambda b, node, a, vals: b.op("Identity", [a[0]]),
    "alias": lambda b, node, a, vals: b.op("Identity", [a[0]]),
}


# -- dynamic axes: trace again with other sizes and see which shape attributes follow ---------------------
_UNBOUNDED = 2 ** 62  # an ONNX Slice end meaning "to the end"


def _getitem_stops(node) -> list[int]:
    return [_UNBOUNDED if e[1] is None else e[1] for e in node.attrs["index"] if isinstance(e, tuple)]


def _traced(model: Any, args: tuple):
    from ..compiler import jit, passes

    return passes.dce(passes.cse(passes.simplify(jit(model).lower(*args).raw)))


def _analyse_dynamic(model: Any, args: tuple, graph, symbols: dict[str, list[tuple[int, int]]]) -> dict:
    """Trace again with each dynamic size changed and fit every number that follows it (the compiler's
    analysis, ``ember.compiler.dynamic``); returns the runtime expressions the lowerings use."""
    if not symbols:
        return {}
    names = list(symbols)
    places = [(i, ax, sym) for sym, pl in symbols.items() for i, ax in pl]
    others, graphs = [], []
    for k, sym in enumerate(names):
        moved, s0, s1 = dynamic.resized(list(args), places, sym,
                                        lambda shape, t: zeros(*shape, dtype=t.dtype))
        g = _traced(model, tuple(moved))
        others.append((g, k, s0, s1))
        graphs.append(g)
    try:
        rules = dynamic.analyse(graph, others, "onnx.export")
    except TraceError as err:
        raise OnnxError("onnx.export", err.detail) from None
    result: dict = {"outputs": _output_dims(graph, graphs, names)}
    for rule in rules:
        _place_rule(result, graph.nodes[rule.node], rule, names)
    return result


def _place_rule(result: dict, node, rule, names: list[str]) -> None:
    """File one size-following number where its lowering looks for it."""
    kind, key = rule.where
    symbols = tuple(names[k] for k, _, _ in rule.factors)
    if kind == "operand":  # a literal such as the 1/N of a mean: computed at run time
        result.setdefault("literals", {})[(id(node), key)] = (rule, symbols)
        return
    shape_attr = (node.prim.name in ("reshape", "broadcast_to") and key == "shape") or \
        (node.prim.name == "slice" and key in ("starts", "stops"))
    position = rule.path[0] if len(rule.path) == 1 else None
    if node.prim.name == "getitem" and key == "index" and len(rule.path) == 2 and rule.path[1] == 1:
        entries = node.attrs["index"][:rule.path[0]]
        key, position, shape_attr = "stops", sum(isinstance(e, tuple) for e in entries), True
    if not shape_attr or position is None or any(p != 1 for _, _, p in rule.factors):
        raise OnnxError("onnx.export", f"{node.prim.name}: attribute {key} follows the dynamic sizes "
                        f"{list(symbols)} in a way the ONNX lowering cannot express")
    coef = rule.v0 / np.prod([s0 for _, s0, _ in rule.factors])
    result.setdefault((id(node), key), {})[position] = (int(round(coef)), symbols)


def _output_dims(graph, graphs: list, names: list[str]) -> list[dict[int, str]]:
    """For each output, the dims that follow dynamic sizes, named after them (``batch*seq`` for products)."""
    dims = []
    for k, v in enumerate(graph.outputs):
        found = {}
        for j, d in enumerate(v.shape):
            changed = [name for name, g in zip(names, graphs) if g.outputs[k].shape[j] != d]
            if changed:
                found[j] = "*".join(changed)
        dims.append(found)
    return dims


# -- the driver ------------------------------------------------------------------------------------
def _value_info(b: _Builder, name: str, dtype: dtypes.DType, shape: Sequence, dynamic: dict) -> Any:
    dims = [dynamic.get(i, d) for i, d in enumerate(shape)]
    return b.helper.make_tensor_value_info(name, _ONNX_TYPES[dtype.name], dims)


def _dynamic(spec: Any) -> dict[int, str]:
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return {int(k): str(v) for k, v in spec.items()}
    return {int(i): f"dim_{i}" for i in spec}


def _constant_names(model: Any) -> dict[int, str]:
    names: dict[int, str] = {}
    if hasattr(model, "named_parameters"):
        for n, p in list(model.named_parameters()) + list(model.named_buffers()):
            names.setdefault(id(p), n)
    return names


def _missing_lowerings(graph) -> list[str]:
    missing = set()
    for node in graph.nodes:
        if node.prim.name not in LOWERINGS and node.prim.formula is None:
            missing.add(node.prim.name)
    return sorted(missing)


def export(model: Any, args: Any, f: Any = None, *, input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None, dynamic_axes: dict | None = None,
           opset_version: int = DEFAULT_OPSET, check: bool = True) -> Any:
    """Export a Module or function to ONNX (arguments named as in ``torch.onnx.export``).

    Args:
        model: an ``ember.nn.Module`` (exported in its current train/eval mode) or a function of tensors.
        args: example inputs: a tensor or a tuple of tensors.
        f: a path or binary file to write; None returns the ModelProto only.
        input_names, output_names: graph input/output names (default ``input_i`` / ``output_i``).
        dynamic_axes: ``{name: {axis: "symbol"}}`` or ``{name: [axes]}`` for dimensions that may vary.
        opset_version: the ONNX opset (17 or newer).
        check: run ``onnx.checker.check_model(full_check=True)`` on the result.

    Returns:
        The ``onnx.ModelProto``.

    Raises:
        UnsupportedPrimitiveError: listing every traced primitive that has no ONNX lowering.
    """
    onnx = _onnx()
    if opset_version < 17:
        raise OnnxError("onnx.export", f"opset_version must be 17 or newer, got {opset_version}")
    args = args if isinstance(args, tuple) else (args,)
    graph = _traced(model, args)
    missing = _missing_lowerings(graph)
    if missing:
        raise UnsupportedPrimitiveError("onnx.export", "no ONNX lowering for primitive(s): "
                                        + ", ".join(missing))
    b = _Builder(onnx, opset_version)
    input_names = list(input_names or [f"input_{i}" for i in range(len(graph.inputs))])
    output_names = list(output_names or [f"output_{i}" for i in range(len(graph.outputs))])
    dynamic_axes = dynamic_axes or {}
    for v, name in zip(graph.inputs, input_names):
        b.names[v.id] = name
    symbols = {}
    for i, name in enumerate(input_names):
        for axis, sym in _dynamic(dynamic_axes.get(name)).items():
            symbols.setdefault(sym, []).append((i, axis))
            b.symbols.setdefault(sym, (name, axis))
    b.dynamic_dims = _analyse_dynamic(model, args, graph, symbols)
    out_dims = b.dynamic_dims.pop("outputs", [{} for _ in graph.outputs])
    own = _constant_names(model)
    for v in graph.const_values:
        t = graph.constants[v.id]
        data = np.asarray(t.detach().numpy()) if isinstance(t, Tensor) else np.asarray(t)
        b.names[v.id] = b.const(data, name=own.get(id(t), b.fresh("constant")))
    values = {v.id: v for v in graph.values()}
    for node in graph.nodes:
        _emit(b, node, values)
    outputs = []
    for v, name, dims in zip(graph.outputs, output_names, out_dims):
        b.nodes.append(b.helper.make_node("Identity", [b.names[v.id]], [name]))
        outputs.append(_value_info(b, name, v.dtype, v.shape, _dynamic(dynamic_axes.get(name)) or dims))
    inputs = [_value_info(b, name, v.dtype, v.shape, _dynamic(dynamic_axes.get(name)))
              for v, name in zip(graph.inputs, input_names)]
    proto = b.helper.make_model(b.helper.make_graph(b.nodes, "ember", inputs, outputs, b.initializers),
                                opset_imports=[b.helper.make_opsetid("", opset_version)],
                                producer_name="ember")
    proto.ir_version = min(proto.ir_version, 9)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    if f is not None:
        data = proto.SerializeToString()
        if hasattr(f, "write"):
            f.write(data)
        else:
            with open(f, "wb") as fh:
                fh.write(data)
    return proto


def _runtime_literal(b: _Builder, rule, symbols: tuple, compute: np.dtype) -> str:
    """``v0 · Π (size / s0) ** ±1`` from the inputs' shapes, as a 0-d tensor of the compute dtype."""
    value = b.const(np.asarray(rule.v0, dtype=compute))
    to = _ONNX_TYPES[dtypes.from_numpy(compute).name]
    for (_, s0, power), sym in zip(rule.factors, symbols):
        size = b.op("Cast", [b.dim_expr(1, (sym,))], to=to)
        ratio = b.op("Div", [size, b.const(np.asarray(s0, dtype=compute))])
        value = b.op("Mul" if power == 1 else "Div", [value, ratio])
    return b.op("Reshape", [value, b.ints([])])


def _emit(b: _Builder, node, values: dict) -> None:
    from ..compiler.ir import Value

    out = node.outputs[0]
    compute = None
    operands = []
    for o in node.operands:
        if isinstance(o, Value):
            operands.append(b.names[o.id])
            if o.dtype is not dtypes.bool_:  # constants take the dtype of the data, not of a condition
                compute = compute or _np_dtype(o.dtype)
        else:
            operands.append(o.value)
    compute = compute or _np_dtype(out.dtype)
    literals = b.dynamic_dims.get("literals", {})
    operands = [o if isinstance(o, str) else
                (_runtime_literal(b, *literals[(id(node), i)], compute) if (id(node), i) in literals
                 else b.const(np.asarray(o, dtype=compute)))
                for i, o in enumerate(operands)]
    vals = [o for o in node.operands]
    if node.prim.name in LOWERINGS:
        name = LOWERINGS[node.prim.name](b, node, operands, vals)
    else:
        name = _lower_formula(b, node.prim, operands, compute)
    b.names[out.id] = name


__all__ = ["export", "UnsupportedPrimitiveError", "LOWERINGS", "ATOM_OPS"]
