"""Elementwise primitives, each written as one formula of the scalar-expression DSL.

From the formula come the NumPy kernel, the VJP and JVP (symbolic derivatives that are themselves
elementwise primitives, so they can be differentiated again) and the batching rule. Adding an op is
one ``elementwise(...)`` line.
"""
from __future__ import annotations

import builtins
import functools
import math
import warnings
from collections import namedtuple
from typing import Any

import numpy as np

from ...backends import CPU
from .. import dtypes, expr
from ..dispatch import STATE, bind, record
from ..errors import DTypeError
from ..primitive import PRIMITIVES, Primitive
from ..tensor import Tensor

__all__ = ["abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "bitwise_and",
           "bitwise_left_shift", "bitwise_not", "bitwise_or", "bitwise_right_shift", "bitwise_xor",
           "ceil", "clamp", "clone", "cos", "cosh", "div", "eq", "erf", "erfinv", "exp", "exp2",
           "expm1", "floor", "floor_divide", "ge", "gelu", "gelu_tanh", "gt", "isfinite", "isinf",
           "isnan", "le", "lerp", "log", "log1p", "log2", "log10", "logical_and", "logical_not", "logical_or",
           "logical_xor", "logit", "lt", "maximum", "minimum", "mul", "nan_to_num", "ne", "neg", "pow",
           "reciprocal", "relu", "remainder", "round", "rsqrt", "sigmoid", "sign", "silu", "sin",
           "sinh", "softplus", "sqrt", "square", "sub", "tan", "tanh", "true_divide", "trunc", "where",
           "fmod", "hypot", "logaddexp", "logaddexp2", "xlogy", "frac", "deg2rad", "rad2deg", "isclose",
           "allclose", "equal", "erfc", "sinc", "signbit", "copysign", "fmax", "fmin", "heaviside", "addcmul",
           "addcdiv", "clamp_min", "clamp_max", "float_power", "isposinf", "isneginf", "lgamma", "digamma",
           "polygamma", "mvlgamma", "gcd", "lcm", "nextafter", "ldexp", "frexp", "conj", "real", "imag",
           "angle", "complex", "polar", "view_as_real", "view_as_complex"]

SAME, FLOAT, BOOL, INT = "same", "float", "bool", "int"
_HALF = (dtypes.float16, dtypes.bfloat16)


def elementwise(name: str, formula: str | expr.Expr, kind: str = SAME, params: tuple[str, ...] | None = None,
                doc: str = "") -> Primitive:
    """Define an elementwise primitive from a formula.

    Args:
        name: primitive name.
        formula: DSL text such as ``"x * sigmoid(x)"``, or an expression.
        kind: dtype rule: "same" (promoted input dtype), "float" (integers promote to the default float),
            "bool" (boolean result) or "int" (integer and bool inputs only).
        params: input names in order (default: sorted names used by the formula).
    """
    e = expr.parse(formula) if isinstance(formula, str) else formula
    params = params or tuple(sorted(expr.variables(e)))
    prim = Primitive(name, doc=doc)
    prim.formula = e
    prim.params = params
    prim.dtype_rule = kind
    prim.fast_dtypes = _fast_dtypes(kind)
    prim.impl = _make_impl(e, params)
    direct = _direct_ufunc(e, params)
    # CPU: the ufunc (or compiled formula); results of large inputs are written into pooled buffers
    def large(alloc):  # composite formulas: generated C when available, else pooled NumPy passes
        pooled = expr.compile_kernel(e, params, np, alloc)
        return pooled if direct else CPU.formula_kernel(name, e, params, pooled)

    prim.kernels["cpu"] = CPU.elementwise_kernel(direct or functools.partial(prim.impl, np), large)
    smooth = kind in (SAME, FLOAT) and _differentiable(e)
    if smooth:
        prim.vjp = _make_vjp(prim)
        prim.jvp = _make_jvp(prim)
        prim.reads = _read_inputs(e, params)
    prim.batch = _batch_rule(prim)
    return prim


def _read_inputs(e: expr.Expr, params: tuple[str, ...]) -> dict[int, tuple[int, ...]]:
    """For each input, the positions of the inputs its partial derivative depends on (what its VJP reads)."""
    reads = {}
    for i, p in enumerate(params):
        used = expr.variables(expr.diff(e, p))
        reads[i] = tuple(j for j, q in enumerate(params) if q in used)
    return reads


def _differentiable(e: expr.Expr) -> bool:
    return all(n.atom.partials is not None or n.atom.bool_out for n in expr.topo_nodes(e))


def _direct_ufunc(e: expr.Expr, params: tuple[str, ...]):
    """If the formula is one atom applied to the inputs in order, its ufunc is the CPU kernel."""
    if isinstance(e, expr.Call) and all(isinstance(a, expr.Var) for a in e.args) and \
            tuple(a.name for a in e.args) == params:
        return e.atom.np_fn
    return None


def _make_impl(e: expr.Expr, params: tuple[str, ...]):
    cache: dict = {}

    def impl(xp, *arrays):
        kernel = cache.get(xp)
        if kernel is None:
            kernel = cache[xp] = expr.compile_kernel(e, params, xp)
        return kernel(*arrays)

    return impl


# -- derived primitives: derivatives of formulas are formulas ----------------------------------------
_DERIVED: dict[tuple, Any] = {}


def _derived(key: tuple, formula: expr.Expr, params: tuple[str, ...]):
    """The primitive computing `formula`, or a shortcut when the formula is trivial."""
    if key in _DERIVED:
        return _DERIVED[key]
    used = expr.variables(formula)
    if isinstance(formula, expr.Var):
        result = ("var", formula.name)
    elif isinstance(formula, expr.Const):
        result = ("const", formula.value)
    elif isinstance(formula, expr.Call) and formula.atom.name in PRIMITIVES and \
            all(isinstance(a, (expr.Var, expr.Const)) for a in formula.args):
        result = ("atom", formula)
    else:
        name = "_".join(str(k) for k in key)
        result = ("prim", elementwise(name, formula, SAME, tuple(p for p in params if p in used)))
    _DERIVED[key] = result
    return result


def _apply_derived(entry, env: dict, like: Tensor):
    tag, value = entry
    if tag == "var":
        return env[value]
    if tag == "const":
        from ..creation import full_like
        return full_like(like, value)
    if tag == "atom":
        args = [env[a.name] if isinstance(a, expr.Var) else a.value for a in value.args]
        return apply(PRIMITIVES[value.atom.name], *args)
    return bind(value, *[env[p] for p in value.params])


def _fresh(base: str, taken: tuple[str, ...]) -> str:
    name = base
    while name in taken:
        name += "_"
    return name


def _make_vjp(prim: Primitive):
    gname = _fresh("g_", prim.params)
    gvar = expr.Var(gname)
    # (input position, whether it is complex) -> derived primitive of g * d(formula)/d(input)
    entries: dict[tuple[int, bool], Any] = {}

    def entry(i: int, complex_input: bool):
        if (i, complex_input) not in entries:
            partial = expr.diff(prim.formula, prim.params[i])
            if complex_input:  # PyTorch's convention: the cotangent times the conjugate derivative
                partial = expr.call("conj", partial)
            key = (prim.name, "vjp", prim.params[i]) + (("conj",) if complex_input else ())
            entries[i, complex_input] = _derived(key, expr.times(gvar, partial), prim.params + (gname,))
        return entries[i, complex_input]

    def vjp(g, out, *inputs):
        env = dict(zip(prim.params, inputs))
        env[gname] = g
        grads = []
        for i, x in enumerate(inputs):
            if not (isinstance(x, Tensor) and x._requires_grad):
                grads.append(None)
                continue
            gi = _apply_derived(entry(i, x.dtype.is_complex), env, g)
            grads.append(reduce.sum_to_shape(gi, x.shape))
        return tuple(grads)

    return vjp


def _make_jvp(prim: Primitive):
    tnames = tuple(_fresh(f"t{i}_", prim.params) for i in range(len(prim.params)))
    entries: dict[tuple, Any] = {}  # positions with tangents -> derived primitive of the tangent formula

    def entry(present: tuple):
        if present not in entries:
            total = expr.Const(0.0)
            for i in present:
                total = total + expr.times(expr.diff(prim.formula, prim.params[i]), expr.Var(tnames[i]))
            params = prim.params + tuple(tnames[i] for i in present)
            entries[present] = _derived((prim.name, "jvp") + present, total, params)
        return entries[present]

    def jvp(primals, tangents):
        out = bind(prim, *primals)
        present = tuple(i for i, t in enumerate(tangents) if t is not None)
        env = dict(zip(prim.params, primals))
        env.update({tnames[i]: tangents[i] for i in present})
        tangent = _apply_derived(entry(present), env, out)
        if tangent.dtype.is_complex and not out.dtype.is_complex:  # abs of a complex number: the real part
            tangent = _real_part(tangent)
        if tuple(tangent.shape) != tuple(out.shape):
            tangent = movement.broadcast_to(tangent, out.shape)
        return out, tangent

    return jvp


def _batch_rule(prim: Primitive):
    def batch(values, bdims):
        rank = max((len(v.shape) - (b is not None) for v, b in zip(values, bdims) if isinstance(v, Tensor)),
                   default=0)
        moved = []
        for v, b in zip(values, bdims):
            if b is None:
                moved.append(v)
                continue
            v = movement.moveaxis(v, b, 0) if b != 0 else v
            extra = rank - (len(v.shape) - 1)
            if extra:
                v = movement.reshape(v, (v.shape[0],) + (1,) * extra + tuple(v.shape[1:]))
            moved.append(v)
        return bind(prim, *moved), 0

    return batch


# -- the front end: dtype promotion, then bind -------------------------------------------------------
def compute_dtype(prim: Primitive, args: tuple) -> dtypes.DType:
    """The dtype the primitive computes in, from PyTorch's promotion of its operands."""
    dt = dtypes.result_type(*args)
    kind = prim.dtype_rule
    if kind == FLOAT and dt.kind < dtypes._FLOAT:
        return dtypes.get_default_dtype()
    if kind == INT and dt.kind > dtypes._INT:
        raise DTypeError(prim.name, f"expected integer or bool operands, got {dt}",
                         tuple(a for a in args if isinstance(a, Tensor)))
    return dt


def _fast_dtypes(kind: str) -> frozenset:
    """Dtypes for which same-dtype operands need no cast and the result dtype is known in advance."""
    if kind == FLOAT:
        return frozenset((dtypes.float32, dtypes.float64, dtypes.complex64, dtypes.complex128))
    if kind == INT:
        return frozenset(dtypes.INTS + (dtypes.bool_,))
    return frozenset(dtypes.ALL)


_FLOAT_TYPES = (dtypes.float32, dtypes.float64)
_SCALAR_TYPES = frozenset((float, int, np.float32, np.float64))


def _fast_binary(prim: Primitive, a: Any, b: Any) -> Tensor | None:
    """The eager fast path for two operands that need no promotion work, or None to take the long way.

    Covers two tensors of one dtype, and a float32/float64 tensor with a Python float or int (a weak
    scalar keeps the tensor's dtype).
    """
    ta, tb = type(a) is Tensor, type(b) is Tensor
    if ta and tb:
        if a._dtype is not b._dtype or a._device is not b._device or a._dtype not in prim.fast_dtypes:
            return None
        x, args = a, (a, b)
    elif ta and type(b) in _SCALAR_TYPES and a._dtype in _FLOAT_TYPES:
        x, args = a, (a, a._dtype.np.type(b))
    elif tb and type(a) in _SCALAR_TYPES and b._dtype in _FLOAT_TYPES:
        x, args = b, (b._dtype.np.type(a), b)
    else:
        return None
    st = STATE.get()
    kernel = prim.kernels.get(x._device.backend.name)
    if st.traces or st.anomaly or kernel is None:
        return None
    u, v = args
    try:
        data = kernel(u._data if type(u) is Tensor else u, v._data if type(v) is Tensor else v)
    except Exception:  # the general path produces the detailed error
        return None
    if type(data) is not x._device.backend.array_type:  # a NumPy scalar from 0-d operands
        data = x._device.backend.xp.asarray(data)
    out = Tensor._make(data, dtypes.bool_ if prim.dtype_rule == BOOL else x._dtype, x._device)
    if st.grad and (x._requires_grad or (ta and tb and b._requires_grad)):
        record(prim, args, {}, out, False)
    return out


def _scalar_as(value: Any, dtype: dtypes.DType, prim: Primitive, args: tuple) -> Any:
    try:
        return dtype.np.type(value)
    except (OverflowError, ValueError, TypeError):
        raise DTypeError(prim.name, f"value {value!r} cannot be converted to {dtype} without overflow",
                         tuple(a for a in args if isinstance(a, Tensor))) from None


def apply(prim: Primitive, *args: Any) -> Tensor:
    """Promote operands (Python scalars stay weak), cast tensors to the compute dtype, and bind.

    Two tensors of one dtype on one device with no transform active take the eager fast path: the
    backend kernel runs directly and only what ``bind`` would do for them is done.
    """
    if len(args) == 2:
        out = _fast_binary(prim, args[0], args[1])
        if out is not None:
            return out
    if not any(isinstance(a, Tensor) for a in args):
        from ..creation import tensor
        args = (tensor(args[0]),) + args[1:]
    dt = compute_dtype(prim, args)
    upcast = prim.dtype_rule == FLOAT and dt in _HALF
    target = dtypes.float32 if upcast else dt
    cast = []
    for a in args:
        if isinstance(a, Tensor):
            cast.append(a if a._dtype is target else convert(a, target))
        else:  # a NumPy scalar of the compute dtype: scalar-only subexpressions then stay in that dtype
            cast.append(_scalar_as(a, target, prim, args))
    out = bind(prim, *cast)
    return convert(out, dt) if upcast else out


# -- dtype conversion ------------------------------------------------------------------------------
def _convert_impl(xp, x, dtype):
    return x.astype(dtype.np, copy=False)


def _convert_vjp(g, out, x, dtype):
    return (convert(g, x.dtype),)


def _convert_jvp(primals, tangents, dtype):
    return convert(primals[0], dtype), convert(tangents[0], dtype)


def _convert_batch(values, bdims, dtype):
    return convert(values[0], dtype), bdims[0]


convert_p = Primitive("convert_element_type", _convert_impl, vjp=_convert_vjp, jvp=_convert_jvp,
                      batch=_convert_batch, reads=())


def convert(x: Tensor, dtype) -> Tensor:
    """``x`` cast to `dtype` (differentiable between floating types)."""
    dtype = dtypes.as_dtype(dtype)
    if x.dtype is dtype:
        return x
    out = bind(convert_p, x, dtype=dtype)
    if not (dtype.is_floating_point or dtype.is_complex) and out._node is not None:
        out._node = None
        out._requires_grad = False
    return out


# -- the ops ---------------------------------------------------------------------------------------
add_p = elementwise("add", "add(x, y)")
sub_p = elementwise("sub", "sub(x, y)")
mul_p = elementwise("mul", "mul(x, y)")
div_p = elementwise("div", "div(x, y)", FLOAT)
neg_p = elementwise("neg", "neg(x)")
pow_p = elementwise("pow", "pow(x, y)")
maximum_p = elementwise("maximum", "maximum(x, y)")
minimum_p = elementwise("minimum", "minimum(x, y)")
atan2_p = elementwise("atan2", "atan2(y, x)", FLOAT, ("y", "x"))
floor_divide_p = elementwise("floor_divide", "floor_divide(x, y)")
remainder_p = elementwise("remainder", "remainder(x, y)")
fmod_p = elementwise("fmod", "fmod(x, y)")
hypot_p = elementwise("hypot", "hypot(x, y)", FLOAT)
logaddexp_p = elementwise("logaddexp", "logaddexp(x, y)", FLOAT)
logaddexp2_p = elementwise(
    "logaddexp2", "logaddexp(x * 0.6931471805599453, y * 0.6931471805599453) * 1.4426950408889634", FLOAT)
# 0 where x is 0 (unless y is NaN), as PyTorch's xlogy
copysign_p = elementwise("copysign", "copysign(x, y)", FLOAT)
conj_p = elementwise("conj", "conj(x)")
polygamma_p = elementwise("polygamma", "polygamma(n, x)", FLOAT, ("n", "x"))
gcd_p = elementwise("gcd", "gcd(x, y)")
lcm_p = elementwise("lcm", "lcm(x, y)")
nextafter_p = elementwise("nextafter", "nextafter(x, y)", FLOAT)
ldexp_p = elementwise("ldexp", "x * pow(2.0, y)", FLOAT)
# NaN-ignoring maximum and minimum: the other operand where one is NaN
fmax_p = elementwise("fmax", "where(isnan(y), x, where(isnan(x), y, maximum(x, y)))")
fmin_p = elementwise("fmin", "where(isnan(y), x, where(isnan(x), y, minimum(x, y)))")
heaviside_p = elementwise("heaviside", "where(eq(x, 0), y, where(x > 0, 1, 0))")
addcmul_p = elementwise("addcmul", "x + v * (a * b)", SAME, ("x", "a", "b", "v"))
addcdiv_p = elementwise("addcdiv", "x + v * (a / b)", FLOAT, ("x", "a", "b", "v"))
xlogy_p = elementwise("xlogy", "where(logical_and(eq(x, 0), logical_not(isnan(y))), 0, x * log(y))", FLOAT)
abs_p = elementwise("abs", "abs(x)")
sign_p = elementwise("sign", "sign(x)")
square_p = elementwise("square", "x * x")
where_p = elementwise("where", "where(c, x, y)", SAME, ("c", "x", "y"))

_FLOAT_UNARY = ["exp", "log", "sin", "cos", "tan", "tanh", "sinh", "cosh", "asin", "acos", "atan", "asinh",
                "acosh", "atanh", "sqrt", "rsqrt", "log1p", "expm1", "erf", "erfinv"]
UNARY = {n: elementwise(n, f"{n}(x)", FLOAT) for n in _FLOAT_UNARY}
UNARY.update({n: elementwise(n, f"{n}(x)") for n in ["floor", "ceil", "round", "trunc"]})
UNARY["log2"] = elementwise("log2", "log2(x)", FLOAT)
UNARY["log10"] = elementwise("log10", "log10(x)", FLOAT)
UNARY["exp2"] = elementwise("exp2", "exp2(x)", FLOAT)
UNARY["reciprocal"] = elementwise("reciprocal", "1 / x", FLOAT)
UNARY["frac"] = elementwise("frac", "x - trunc(x)")
UNARY["erfc"] = elementwise("erfc", "erfc(x)", FLOAT)
UNARY["lgamma"] = elementwise("lgamma", "lgamma(x)", FLOAT)
UNARY["digamma"] = elementwise("digamma", "digamma(x)", FLOAT)


def _sinc_formula() -> str:
    """sin(t) / t for t = pi x; below |t| = 0.39 its Taylor series in s = t^2 (Horner's rule, to s^6: exact
    to float64 there), which keeps the derivative accurate where (t cos t - sin t) / t^2 would cancel (a
    float32 gradient at x = 1e-4 would come out 0, or 3 times too large)."""
    s = "((x * 3.141592653589793) * (x * 3.141592653589793))"
    series = "1.6059043836821613e-10"  # (-1)^k / (2k + 1)!, k = 6 down to 0
    for c in ("-2.505210838544172e-08", "2.7557319223985893e-06", "-0.0001984126984126984",
              "0.008333333333333333", "-0.16666666666666666", "1"):
        series = f"{c} + {s} * ({series})"
    return f"where(abs(x) < 0.125, {series}, sin(x * 3.141592653589793) / (x * 3.141592653589793))"


UNARY["sinc"] = elementwise("sinc", _sinc_formula(), FLOAT)
UNARY["signbit"] = elementwise("signbit", "lt(copysign(1, x), 0)", BOOL)
UNARY["deg2rad"] = elementwise("deg2rad", "x * 0.017453292519943295", FLOAT)
UNARY["rad2deg"] = elementwise("rad2deg", "x * 57.29577951308232", FLOAT)
UNARY["sigmoid"] = elementwise("sigmoid", "1 / (1 + exp(-x))", FLOAT)
UNARY["gelu"] = elementwise("gelu", "0.5 * x * (1 + erf(x * 0.7071067811865476))", FLOAT)
# 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3): one exp, no cancellation;
# -2u written as x (a + b x^2), four operations before the exp instead of five
UNARY["gelu_tanh"] = elementwise(
    "gelu_tanh", "x / (1 + exp(x * (-1.5957691216057308 + -0.07135481627260025 * (x * x))))", FLOAT)
UNARY["silu"] = elementwise("silu", "x / (1 + exp(-x))", FLOAT)
# (above 20, log1p(exp(x)) is x to float64 precision, as PyTorch's threshold; the smooth branch keeps the
# derivatives right at 0, where the max(x, 0) + log1p(exp(-|x|)) form loses the curvature)
UNARY["softplus"] = elementwise("softplus", "where(x > 20, x, log1p(exp(x)))", FLOAT)
UNARY["relu"] = elementwise("relu", "where(x > 0, x, 0)")
UNARY["logit"] = elementwise("logit", "log(x / (1 - x))", FLOAT)

COMPARE = {n: elementwise(n, f"{n}(x, y)", BOOL) for n in ["lt", "le", "gt", "ge", "eq", "ne"]}
LOGICAL = {n: elementwise(n, f"{n}(x, y)", BOOL) for n in ["logical_and", "logical_or", "logical_xor"]}
LOGICAL["logical_not"] = elementwise("logical_not", "logical_not(x)", BOOL)
PREDICATES = {n: elementwise(n, f"{n}(x)", BOOL) for n in ["isnan", "isinf", "isfinite"]}
BITWISE = {n: elementwise(n, f"{n}(x, y)", INT) for n in ["bitwise_and", "bitwise_or", "bitwise_xor",
                                                             "left_shift", "right_shift"]}
BITWISE["bitwise_not"] = elementwise("bitwise_not", "bitwise_not(x)", INT)


# -- public functions ----------------------------------------------------------------------------------
clamp_p = elementwise("clamp", "where(x < lo, lo, where(x > hi, hi, x))", SAME, ("x", "lo", "hi"))
clamp_min_p = elementwise("clamp_min", "where(x < lo, lo, x)", SAME, ("x", "lo"))
clamp_max_p = elementwise("clamp_max", "where(x > hi, hi, x)", SAME, ("x", "hi"))
# PyTorch's form: from the nearer end, so that weight 1 gives `end` exactly
lerp_p = elementwise("lerp", "where(w < 0.5, x + w * (y - x), y - (y - x) * (1 - w))", FLOAT, ("x", "y", "w"))
nan_to_num_p = elementwise("nan_to_num", "where(isnan(x), n, where(x == inf, p, where(x == -inf, m, x)))",
                           SAME, ("x", "n", "p", "m"))


def _unary(prim: Primitive, doc: str):
    def fn(x):
        return apply(prim, x)

    fn.__name__ = fn.__qualname__ = prim.name
    fn.__doc__ = doc
    return fn


def _binary(prim: Primitive, doc: str):
    def fn(x, y):
        return apply(prim, x, y)

    fn.__name__ = fn.__qualname__ = prim.name
    fn.__doc__ = doc
    return fn


def add(x, y, *, alpha=1) -> Tensor:
    """Elementwise ``x + alpha * y`` with broadcasting and PyTorch type promotion."""
    return apply(add_p, x, y if alpha == 1 else apply(mul_p, y, alpha))


def sub(x, y, *, alpha=1) -> Tensor:
    """Elementwise ``x - alpha * y``."""
    return apply(sub_p, x, y if alpha == 1 else apply(mul_p, y, alpha))


def div(x, y, *, rounding_mode: str | None = None) -> Tensor:
    """Elementwise division: true division, or rounded with rounding_mode "trunc" or "floor"."""
    if rounding_mode is None:
        return apply(div_p, x, y)
    if rounding_mode == "floor":
        return apply(floor_divide_p, x, y)
    if rounding_mode == "trunc":
        q = apply(div_p, x, y)
        out = apply(UNARY["trunc"], q)
        dt = dtypes.result_type(x, y)
        return convert(out, dt) if dt is not out.dtype else out
    raise DTypeError("div", f"rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")


def where(condition, x, y) -> Tensor:
    """Elementwise choice: `x` where `condition` is true, else `y` (broadcasting all three)."""
    from ..creation import _note_created, tensor

    if not isinstance(condition, Tensor):  # (made here from a Python value: a trace may fold it)
        condition = _note_created(tensor(condition))
    if condition.dtype is not dtypes.bool_:
        condition = convert(condition, dtypes.bool_)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = _note_created(tensor(x))
    dt = dtypes.result_type(x, y)
    x = convert(x, dt) if isinstance(x, Tensor) else x
    y = convert(y, dt) if isinstance(y, Tensor) else y
    return bind(where_p, condition, x, y)


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    """Limit values to [min, max]; the gradient passes where min <= x <= max."""
    if min is None and max is None:
        raise DTypeError("clamp", "at least one of min and max must be given", (x,))
    if max is None:
        return apply(clamp_min_p, x, min)
    if min is None:
        return apply(clamp_max_p, x, max)
    return apply(clamp_p, x, min, max)


def lerp(input: Tensor, end: Any, weight: Any) -> Tensor:
    """Linear interpolation ``input + weight * (end - input)``, with broadcasting (PyTorch's ``lerp``).

    Computed from the nearer end (``end - (end - input) * (1 - weight)`` for weights of at least 0.5),
    so a weight of 1 gives `end` exactly. The usual use is an exponential moving average of weights,
    ``ema.lerp_(param, 1 - decay)``.

    Example:
        >>> import ember
        >>> ember.lerp(ember.tensor([0.0, 10.0]), ember.tensor([1.0, 20.0]), 0.25).tolist()
        [0.25, 12.5]
    """
    return apply(lerp_p, input, end, weight)


def isclose(input: Tensor, other: Any, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Tensor:
    """Elementwise ``|input - other| <= atol + rtol * |other|`` (equal infinities are close; NaNs only
    with `equal_nan`), with broadcasting; a bool tensor, as PyTorch's ``isclose``.

    Example:
        >>> import ember
        >>> ember.isclose(ember.tensor([1.0, 2.0]), ember.tensor([1.0 + 1e-7, 2.1])).tolist()
        [True, False]
    """
    diff = abs(sub(input, other))
    close = logical_or(eq(input, other), logical_and(isfinite(diff), diff <= atol + rtol * abs(other)))
    if equal_nan:
        close = logical_or(close, logical_and(isnan(input), isnan(other)))
    return close


def allclose(input: Tensor, other: Any, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """Whether every element of :func:`isclose` holds (a Python bool).

    Example:
        >>> import ember
        >>> ember.allclose(ember.ones(3), ember.ones(3) + 1e-9)
        True
    """
    return bool(isclose(input, other, rtol, atol, equal_nan).all())


def equal(input: Tensor, other: Tensor) -> bool:
    """Whether the two tensors have the same shape and the same values (a Python bool).

    Example:
        >>> import ember
        >>> ember.equal(ember.tensor([1, 2]), ember.tensor([1, 2])), ember.equal(ember.ones(2), ember.ones(3))
        (True, False)
    """
    return tuple(input.shape) == tuple(other.shape) and bool(eq(input, other).all())


frexp_result = namedtuple("frexp", ["mantissa", "exponent"])


def nan_to_num(x: Tensor, nan: float = 0.0, posinf: float | None = None,
               neginf: float | None = None) -> Tensor:
    """Replace NaN with `nan`, +inf with `posinf` and -inf with `neginf` (default: the dtype's extremes)."""
    import numpy as np

    if not x.dtype.is_floating_point:
        return x
    info = np.finfo(x.dtype.np)
    posinf = float(info.max) if posinf is None else posinf
    neginf = float(info.min) if neginf is None else neginf
    t = x.dtype.np.type
    return bind(nan_to_num_p, x, t(nan), t(posinf), t(neginf))


mul = _binary(mul_p, "Elementwise product with broadcasting.")
true_divide = _binary(div_p, "Elementwise true division (integers promote to float).")
pow = _binary(pow_p, "Elementwise power ``x ** y``.")
maximum = _binary(maximum_p, "Elementwise maximum (the gradient is split evenly at ties).")
minimum = _binary(minimum_p, "Elementwise minimum (the gradient is split evenly at ties).")
atan2 = _binary(atan2_p, "Elementwise arctangent of y/x using the signs of both.")
floor_divide = _binary(floor_divide_p, "Elementwise division rounded down.")
remainder = _binary(remainder_p, "Elementwise remainder with the sign of the divisor (Python's %).")
fmod = _binary(fmod_p, "Elementwise remainder with the sign of the dividend (C's fmod; PyTorch's fmod).")
hypot = _binary(hypot_p, "Elementwise ``sqrt(x**2 + y**2)`` without overflow or underflow on the way.")
logaddexp = _binary(logaddexp_p, "Elementwise ``log(exp(x) + exp(y))``, computed stably.")
logaddexp2 = _binary(logaddexp2_p, "Elementwise ``log2(2**x + 2**y)``, computed stably.")
xlogy = _binary(xlogy_p, "Elementwise ``x * log(y)``, 0 where x is 0 (unless y is NaN).")
def conj(x: Tensor) -> Tensor:
    """Elementwise complex conjugate (the tensor itself for real dtypes); its gradient is the
    conjugate of the cotangent, as in PyTorch.

    Example:
        >>> import ember
        >>> ember.conj(ember.tensor([1 + 2j])).tolist()
        [(1-2j)]
    """
    if not x.dtype.is_complex:
        return x
    return apply(conj_p, x)


def _real_part(z: Tensor) -> Tensor:
    with warnings.catch_warnings():  # (dropping the imaginary part is the point)
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        return convert(z, dtypes.real_for(z.dtype))


def real(input: Tensor) -> Tensor:
    """The real part (the tensor itself for real dtypes); differentiable.

    Example:
        >>> import ember
        >>> ember.real(ember.tensor([1 + 2j])).tolist()
        [1.0]
    """
    return _real_part(input) if input.dtype.is_complex else input


def imag(input: Tensor) -> Tensor:
    """The imaginary part of a complex tensor; differentiable.

    Example:
        >>> import ember
        >>> ember.imag(ember.tensor([1 + 2j])).tolist()
        [2.0]
    """
    if not input.dtype.is_complex:
        raise DTypeError("imag", f"expected a complex tensor, got {input.dtype}", (input,))
    return _real_part(mul(input, -1j))


def angle(input: Tensor) -> Tensor:
    """The argument (phase) of each element: ``atan2(imag, real)`` for complex values, 0 or pi for real
    ones (NaN stays NaN), as PyTorch's ``angle``.

    Example:
        >>> import ember
        >>> round(ember.angle(ember.tensor([1j])).item(), 4)
        1.5708
    """
    if input.dtype.is_complex:
        return atan2(imag(input), real(input))
    x = input if input.dtype.is_floating_point else convert(input, dtypes.get_default_dtype())
    return where(isnan(x), x, mul(convert(lt(x, 0), x.dtype), 3.141592653589793))


def complex(real: Tensor, imag: Tensor) -> Tensor:
    """The complex tensor ``real + i imag`` from two real tensors of one float dtype (broadcasting).

    Example:
        >>> import ember
        >>> ember.complex(ember.tensor([1.0]), ember.tensor([2.0])).tolist()
        [(1+2j)]
    """
    if not (real.dtype.is_floating_point and imag.dtype.is_floating_point) or real.dtype is not imag.dtype:
        raise DTypeError("complex", f"expected two float tensors of one dtype, got {real.dtype} and "
                         f"{imag.dtype}", (real, imag))
    wide = dtypes.complex_for(real.dtype)
    return add(convert(real, wide), mul(convert(imag, wide), 1j))


def polar(abs: Tensor, angle: Tensor) -> Tensor:
    """The complex tensor with magnitudes `abs` and phases `angle`: ``abs (cos angle + i sin angle)``."""
    return complex(mul(abs, cos(angle)), mul(abs, sin(angle)))


def view_as_real(input: Tensor) -> Tensor:
    """A complex tensor as a real one with a last dimension of 2 (real and imaginary parts)."""
    from .movement import stack

    if not input.dtype.is_complex:
        raise DTypeError("view_as_real", f"expected a complex tensor, got {input.dtype}", (input,))
    return stack([real(input), imag(input)], -1)


def view_as_complex(input: Tensor) -> Tensor:
    """A real tensor whose last dimension has size 2 as a complex one (real and imaginary parts)."""
    from .movement import select

    if input.ndim == 0 or input.shape[-1] != 2:
        raise DTypeError("view_as_complex", f"expected a last dimension of size 2, got shape "
                         f"{tuple(input.shape)}", (input,))
    return complex(select(input, -1, 0), select(input, -1, 1))


conj_p.vjp = lambda g, out, x: (conj(g),)  # conj is not holomorphic: no conjugate-derivative rule
conj_p.jvp = lambda primals, tangents: (conj(primals[0]), conj(tangents[0]))
frac = _unary(UNARY["frac"], "Elementwise fractional part ``x - trunc(x)`` (the sign of x).")
erfc = _unary(UNARY["erfc"], "Elementwise complementary error function ``1 - erf(x)``, accurate for large x.")
sinc = _unary(UNARY["sinc"], "Elementwise normalised sinc ``sin(pi x) / (pi x)`` (1 at 0).")
signbit = _unary(UNARY["signbit"], "Elementwise: whether the sign bit is set (True for -0.0); returns bool.")
copysign = _binary(copysign_p, "Elementwise magnitude of x with the sign of y.")
fmax = _binary(fmax_p, "Elementwise maximum that ignores NaN (the other value where one is NaN).")
fmin = _binary(fmin_p, "Elementwise minimum that ignores NaN (the other value where one is NaN).")
heaviside = _binary(heaviside_p, "Elementwise step: 0 below 0, `values` at 0, 1 above.")


lgamma = _unary(UNARY["lgamma"], "Elementwise log of the absolute value of the gamma function.")
digamma = _unary(UNARY["digamma"], "Elementwise digamma (the derivative of lgamma).")
nextafter = _binary(nextafter_p, "Elementwise next representable value after x towards y.")
ldexp = _binary(ldexp_p, "Elementwise ``x * 2**y``.")


def gcd(x: Tensor, y: Any) -> Tensor:
    """Elementwise greatest common divisor of integers (non-negative; ``gcd(0, 0) = 0``)."""
    _integers("gcd", x, y)
    return apply(gcd_p, x, y)


def lcm(x: Tensor, y: Any) -> Tensor:
    """Elementwise least common multiple of integers (non-negative)."""
    _integers("lcm", x, y)
    return apply(lcm_p, x, y)


def _integers(op: str, *operands) -> None:
    for t in operands:
        if isinstance(t, Tensor) and (t.dtype.is_floating_point or t.dtype.is_complex):
            raise DTypeError(op, f"expected integer tensors, got {t.dtype}", (t,))
        if isinstance(t, float):
            raise DTypeError(op, f"expected integers, got {t!r}")


def polygamma(n: int, input: Tensor) -> Tensor:
    """Elementwise n-th derivative of digamma (``polygamma(0, x)`` is digamma); differentiable in x to
    any order.

    Example:
        >>> import ember
        >>> round(ember.polygamma(1, ember.tensor([1.0])).item(), 5)  # pi**2 / 6
        1.64493
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise DTypeError("polygamma", f"n must be a non-negative int, got {n!r}", (input,))
    return apply(polygamma_p, n, input)


def mvlgamma(input: Tensor, p: int) -> Tensor:
    """Elementwise log of the multivariate gamma function of dimension `p`:
    ``p (p - 1) / 4 log(pi) + sum_i lgamma(x - i / 2)`` for i < p (every x must exceed (p - 1) / 2)."""
    if not isinstance(p, int) or p < 1:
        raise DTypeError("mvlgamma", f"p must be a positive int, got {p!r}", (input,))
    total = lgamma(input)
    for i in range(1, p):
        total = add(total, lgamma(sub(input, i / 2)))
    return add(total, p * (p - 1) / 4 * math.log(math.pi))


def addcmul(input: Tensor, tensor1: Any, tensor2: Any, *, value=1) -> Tensor:
    """``input + value * tensor1 * tensor2`` in one pass, with broadcasting.

    Example:
        >>> import ember
        >>> a, b = ember.tensor([1.0, 2.0]), ember.tensor([3.0, 4.0])
        >>> ember.addcmul(ember.ones(2), a, b, value=0.5).tolist()
        [2.5, 5.0]
    """
    return apply(addcmul_p, input, tensor1, tensor2, value)


def addcdiv(input: Tensor, tensor1: Any, tensor2: Any, *, value=1) -> Tensor:
    """``input + value * tensor1 / tensor2`` in one pass, with broadcasting.

    Example:
        >>> import ember
        >>> a, b = ember.tensor([1.0, 2.0]), ember.tensor([4.0, 4.0])
        >>> ember.addcdiv(ember.zeros(2), a, b, value=2).tolist()
        [0.5, 1.0]
    """
    return apply(addcdiv_p, input, tensor1, tensor2, value)


def clamp_min(x: Tensor, min) -> Tensor:
    """:func:`clamp` with only a lower bound."""
    return clamp(x, min=min)


def clamp_max(x: Tensor, max) -> Tensor:
    """:func:`clamp` with only an upper bound."""
    return clamp(x, max=max)


def float_power(x: Any, y: Any) -> Tensor:
    """``x ** y`` computed in float64 (complex128 for complex operands), as PyTorch's ``float_power``."""
    complex_operand = any(isinstance(t, Tensor) and t.dtype.is_complex or isinstance(t, builtins.complex)
                          for t in (x, y))
    wide = dtypes.complex128 if complex_operand else dtypes.float64
    return pow(*(convert(t, wide) if isinstance(t, Tensor) else t for t in (x, y)))


def frexp(input: Tensor):
    """Mantissa and exponent with ``input = mantissa * 2**exponent``, ``0.5 <= |mantissa| < 1`` (0 and
    non-finite values give themselves and exponent 0), as a namedtuple ``(mantissa, exponent)`` with an
    int32 exponent; the mantissa is differentiable.

    Example:
        >>> import ember
        >>> m, e = ember.frexp(ember.tensor([8.0, -5.0]))
        >>> m.tolist(), e.tolist()
        ([0.5, -0.625], [4, 3])
    """
    if not input.dtype.is_floating_point:
        raise DTypeError("frexp", f"expected a floating point input, got {input.dtype}", (input,))
    wide = convert(input, dtypes.float64)
    size = abs(wide)
    plain = logical_or(eq(size, 0), logical_not(isfinite(wide)))
    e = where(plain, 0.0, floor(log2(where(plain, 1.0, size))) + 1)
    half = floor(e * 0.5)
    m = wide * exp2(-half) * exp2(half - e)  # (two factors: each stays in range for subnormals)
    finite = logical_not(plain)
    big, small = logical_and(ge(abs(m), 1.0), finite), logical_and(lt(abs(m), 0.5), finite)
    m = where(big, m * 0.5, where(small, m * 2.0, m))  # log2 rounded across a power of two
    e = where(big, e + 1, where(small, e - 1, e))
    return frexp_result(convert(m, input.dtype), convert(e, dtypes.int32))


def isposinf(x: Tensor) -> Tensor:
    """Elementwise: whether the value is +inf; returns bool."""
    return logical_and(isinf(x), gt(x, 0))


def isneginf(x: Tensor) -> Tensor:
    """Elementwise: whether the value is -inf; returns bool."""
    return logical_and(isinf(x), lt(x, 0))
deg2rad = _unary(UNARY["deg2rad"], "Elementwise degrees to radians.")
rad2deg = _unary(UNARY["rad2deg"], "Elementwise radians to degrees.")
neg = _unary(neg_p, "Elementwise negation.")
abs = _unary(abs_p, "Elementwise absolute value.")
sign = _unary(sign_p, "Elementwise sign (-1, 0 or 1).")
square = _unary(square_p, "Elementwise square.")
exp, log, sin, cos, tan, tanh, sinh, cosh = (_unary(UNARY[n], f"Elementwise {n}.") for n in
                                             ["exp", "log", "sin", "cos", "tan", "tanh", "sinh", "cosh"])
asin, acos, atan, asinh, acosh, atanh = (_unary(UNARY[n], f"Elementwise {n}.") for n in
                                         ["asin", "acos", "atan", "asinh", "acosh", "atanh"])
sqrt, rsqrt, log1p, expm1, erf, erfinv = (_unary(UNARY[n], f"Elementwise {n}.") for n in
                                          ["sqrt", "rsqrt", "log1p", "expm1", "erf", "erfinv"])
log2, log10, exp2, reciprocal, logit = (_unary(UNARY[n], f"Elementwise {n}.") for n in
                                        ["log2", "log10", "exp2", "reciprocal", "logit"])
floor, ceil, round, trunc = (_unary(UNARY[n], f"Elementwise {n} (round half to even for round).")
                             for n in ["floor", "ceil", "round", "trunc"])
sigmoid = _unary(UNARY["sigmoid"], "Elementwise logistic sigmoid 1 / (1 + exp(-x)).")
relu = _unary(UNARY["relu"], "Elementwise max(x, 0); the gradient at 0 is 0.")
gelu = _unary(UNARY["gelu"], "Exact GELU: x * Φ(x).")
gelu_tanh = _unary(UNARY["gelu_tanh"], "GELU with the tanh approximation.")
silu = _unary(UNARY["silu"], "SiLU / swish: x * sigmoid(x).")
softplus = _unary(UNARY["softplus"], "log(1 + exp(x)), computed stably.")
lt, le, gt, ge, eq, ne = (_binary(COMPARE[n], f"Elementwise comparison ({n}); returns bool.")
                          for n in ["lt", "le", "gt", "ge", "eq", "ne"])
logical_and, logical_or, logical_xor = (_binary(LOGICAL[n], f"Elementwise {n}; returns bool.")
                                        for n in ["logical_and", "logical_or", "logical_xor"])
logical_not = _unary(LOGICAL["logical_not"], "Elementwise logical not; returns bool.")
isnan, isinf, isfinite = (_unary(PREDICATES[n], f"Elementwise {n}; returns bool.")
                          for n in ["isnan", "isinf", "isfinite"])
bitwise_and, bitwise_or, bitwise_xor, bitwise_left_shift, bitwise_right_shift = (
    _binary(BITWISE[n], f"Elementwise {n} of integer or bool tensors.")
    for n in ["bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift"])
bitwise_not = _unary(BITWISE["bitwise_not"], "Elementwise bitwise not of integer or bool tensors.")


def _copy_impl(xp, x):
    return xp.array(x, copy=True)


copy_p = Primitive("copy", _copy_impl, vjp=lambda g, out, x: (g,),
                   jvp=lambda primals, tangents: (clone(primals[0]), tangents[0]),
                   batch=lambda values, bdims: (clone(values[0]), bdims[0]), reads=())


def clone(x: Tensor) -> Tensor:
    """A copy of `x` with its own storage (differentiable)."""
    return bind(copy_p, x)


# Shape ops are used by the rules above at call time. Movement and reduction composites use elementwise
# ops, so those modules are imported last, once every name here exists (either module may load first).
from . import movement, reduce  # noqa: E402
