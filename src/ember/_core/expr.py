"""The scalar-expression DSL that elementwise primitives are written in.

An elementwise primitive is a formula over named inputs (``"x * sigmoid(x)"``). From that one formula
come its NumPy kernel (:func:`compile_kernel`), its derivatives (:func:`diff`, symbolic, so they can be
differentiated again), and later the C and CUDA code of fused kernels. The building blocks are *atoms*:
functions with a NumPy ufunc, a C spelling and partial derivatives written as formulas of atoms.
"""
from __future__ import annotations

import ast
import math
from typing import Callable

import numpy as np
import scipy.special as _special


class Atom:
    """A basic scalar function: NumPy ufunc, C spelling and partial derivatives (as formulas)."""

    __slots__ = ("name", "arity", "np_fn", "c", "partials", "bool_out", "smooth")

    def __init__(self, name: str, arity: int, np_fn: Callable, c: str, partials: Callable | None,
                 bool_out: bool = False):
        self.name = name
        self.arity = arity
        self.np_fn = np_fn
        self.c = c
        self.partials = partials  # (args) -> tuple of Expr, one per argument; None: not differentiable
        self.bool_out = bool_out

    def __repr__(self) -> str:
        return f"Atom({self.name})"


class Expr:
    """A node of a formula. Built with Python operators; constants fold and 0/1 simplify."""

    __slots__ = ("key", "__weakref__")
    key: tuple  # structural identity: equal keys, equal formulas (set by each subclass)

    def __add__(self, o):
        return call("add", self, lift(o))

    def __radd__(self, o):
        return call("add", lift(o), self)

    def __sub__(self, o):
        return call("sub", self, lift(o))

    def __rsub__(self, o):
        return call("sub", lift(o), self)

    def __mul__(self, o):
        return call("mul", self, lift(o))

    def __rmul__(self, o):
        return call("mul", lift(o), self)

    def __truediv__(self, o):
        return call("div", self, lift(o))

    def __rtruediv__(self, o):
        return call("div", lift(o), self)

    def __neg__(self):
        return call("neg", self)

    def __pow__(self, o):
        return call("pow", self, lift(o))


class Var(Expr):
    """A formula input, by name."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name
        self.key = ("var", name)

    def __repr__(self) -> str:
        return self.name


class Const(Expr):
    """A numeric constant (a weak Python scalar when evaluated)."""

    __slots__ = ("value",)

    def __init__(self, value: float):
        self.value = value
        self.key = ("const", value)

    def __repr__(self) -> str:
        return repr(self.value)


class Call(Expr):
    """An atom applied to argument expressions."""

    __slots__ = ("atom", "args")

    def __init__(self, atom: Atom, args: tuple):
        self.atom = atom
        self.args = args
        self.key = (atom.name,) + tuple(a.key for a in args)

    def __repr__(self) -> str:
        return f"{self.atom.name}({', '.join(map(repr, self.args))})"


def lift(value) -> Expr:
    """Wrap a Python number as a Const; pass expressions through."""
    return value if isinstance(value, Expr) else Const(value)


def is_const(e: Expr, value=None) -> bool:
    """True if `e` is a constant (equal to `value`, when given)."""
    return isinstance(e, Const) and (value is None or e.value == value)


ATOMS: dict[str, Atom] = {}


def call(name: str, *args: Expr) -> Expr:
    """Apply atom `name`, folding constants and the identities x+0, x*1, x*0, x/1, x**1, --x."""
    atom = ATOMS[name]
    args = tuple(lift(a) for a in args)
    simple = _simplify(name, args)
    if simple is not None:
        return simple
    if all(isinstance(a, Const) for a in args) and not atom.bool_out and name != "where":
        with np.errstate(all="ignore"):
            return Const(float(atom.np_fn(*[np.float64(a.value) for a in args])))
    return Call(atom, args)


def _simplify(name: str, args: tuple) -> Expr | None:
    a = args[0]
    b = args[1] if len(args) > 1 else None
    if name == "add":
        return b if is_const(a, 0) else (a if is_const(b, 0) else None)
    if name == "sub":
        return a if is_const(b, 0) else (call("neg", b) if is_const(a, 0) else None)
    if name == "mul":
        if is_const(a, 0) or is_const(b, 0):
            return Const(0.0)
        if is_const(a, 1):
            return b
        if is_const(b, 1):
            return a
        if is_const(a, -1):
            return call("neg", b)
        if is_const(b, -1):
            return call("neg", a)
        return None
    if name == "div":
        return a if is_const(b, 1) else (Const(0.0) if is_const(a, 0) else None)
    if name == "pow":
        return a if is_const(b, 1) else (Const(1.0) if is_const(b, 0) else None)
    if name == "neg" and isinstance(a, Call) and a.atom.name == "neg":
        return a.args[0]
    return None


def _atom(name, arity, np_fn, c, partials=None, bool_out=False) -> None:
    ATOMS[name] = Atom(name, arity, np_fn, c, partials, bool_out)


def _zero(*args):
    return tuple(Const(0.0) for _ in args)


def _pow_partials(x, y):
    # d/dy x**y = log(x) x**y, defined as 0 where x == 0 (PyTorch's convention); d/dx is 0 where y == 0
    # (also PyTorch's), which keeps x**0 and the higher derivatives of x**n at x = 0 free of 0 * inf
    if isinstance(y, Const):
        dx = Const(0.0) if y.value == 0 else y * x ** (y - 1)
    else:
        dx = call("where", call("eq", y, 0.0), 0.0, y * x ** (y - 1))
    return (dx, call("where", call("eq", x, 0.0), 0.0, call("log", x) * x ** y))


def _max_partials(x, y):
    gx = call("where", call("gt", x, y), 1.0, call("where", call("eq", x, y), 0.5, 0.0))
    return (gx, 1.0 - gx)


_SQRT_PI = math.sqrt(math.pi)
_atom("add", 2, np.add, "({0} + {1})", lambda x, y: (Const(1.0), Const(1.0)))
_atom("sub", 2, np.subtract, "({0} - {1})", lambda x, y: (Const(1.0), Const(-1.0)))
_atom("mul", 2, np.multiply, "({0} * {1})", lambda x, y: (y, x))
_atom("div", 2, np.true_divide, "({0} / {1})", lambda x, y: (1.0 / y, -x / (y * y)))
_atom("neg", 1, np.negative, "(-{0})", lambda x: (Const(-1.0),))
_atom("pow", 2, np.power, "pow({0}, {1})", _pow_partials)
_atom("exp", 1, np.exp, "exp({0})", lambda x: (call("exp", x),))
_atom("log", 1, np.log, "log({0})", lambda x: (1.0 / x,))
_atom("sin", 1, np.sin, "sin({0})", lambda x: (call("cos", x),))
_atom("cos", 1, np.cos, "cos({0})", lambda x: (-call("sin", x),))
_atom("tan", 1, np.tan, "tan({0})", lambda x: (1.0 + call("tan", x) ** 2.0,))
_atom("tanh", 1, np.tanh, "tanh({0})", lambda x: (1.0 - call("tanh", x) ** 2.0,))
_atom("sinh", 1, np.sinh, "sinh({0})", lambda x: (call("cosh", x),))
_atom("cosh", 1, np.cosh, "cosh({0})", lambda x: (call("sinh", x),))
_atom("asin", 1, np.arcsin, "asin({0})", lambda x: (call("rsqrt", 1.0 - x * x),))
_atom("acos", 1, np.arccos, "acos({0})", lambda x: (-call("rsqrt", 1.0 - x * x),))
_atom("atan", 1, np.arctan, "atan({0})", lambda x: (1.0 / (1.0 + x * x),))
_atom("asinh", 1, np.arcsinh, "asinh({0})", lambda x: (call("rsqrt", x * x + 1.0),))
_atom("acosh", 1, np.arccosh, "acosh({0})", lambda x: (call("rsqrt", x * x - 1.0),))
_atom("atanh", 1, np.arctanh, "atanh({0})", lambda x: (1.0 / (1.0 - x * x),))
_atom("sqrt", 1, np.sqrt, "sqrt({0})", lambda x: (0.5 * call("rsqrt", x),))
_atom("rsqrt", 1, lambda x, out=None: np.divide(1.0, np.sqrt(x, out=out), out=out), "(1 / sqrt({0}))",
      lambda x: (-0.5 * call("rsqrt", x) / x,))
_atom("log1p", 1, np.log1p, "log1p({0})", lambda x: (1.0 / (1.0 + x),))
_atom("expm1", 1, np.expm1, "expm1({0})", lambda x: (call("exp", x),))
# conj: the identity on real numbers (its partial, 1, holds there); complex gradients use it below
_atom("conj", 1, np.conjugate, "({0})", lambda x: (Const(1.0),))
# abs's partial is written so that its conjugate is sgn(x), the gradient PyTorch gives for complex x
# (elementwise VJPs of complex inputs multiply by the conjugate partial); sign(x) for real x
_atom("abs", 1, np.abs, "fabs({0})", lambda x: (call("conj", call("sign", x)),))
_atom("sign", 1, np.sign, "sign({0})", _zero)
_atom("floor", 1, np.floor, "floor({0})", _zero)
_atom("ceil", 1, np.ceil, "ceil({0})", _zero)
_atom("round", 1, np.rint, "rint({0})", _zero)
_atom("trunc", 1, np.trunc, "trunc({0})", _zero)
_atom("erf", 1, _special.erf, "erf({0})", lambda x: ((2.0 / _SQRT_PI) * call("exp", -(x * x)),))
_atom("erfinv", 1, _special.erfinv, "erfinv({0})",
      lambda x: ((_SQRT_PI / 2.0) * call("exp", call("erfinv", x) ** 2.0),))
_atom("maximum", 2, np.maximum, "fmax({0}, {1})", _max_partials)
_atom("minimum", 2, np.minimum, "fmin({0}, {1})", lambda x, y: _max_partials(y, x))
_atom("atan2", 2, np.arctan2, "atan2({0}, {1})",
      lambda y, x: (x / (x * x + y * y), -y / (x * x + y * y)))
_atom("where", 3, np.where, "({0} ? {1} : {2})",
      lambda c, a, b: (Const(0.0), call("where", c, 1.0, 0.0), call("where", c, 0.0, 1.0)))
_atom("floor_divide", 2, np.floor_divide, "floor({0} / {1})", _zero)
_atom("remainder", 2, np.remainder, "remainder({0}, {1})",
      lambda x, y: (Const(1.0), -call("floor", x / y)))
_atom("fmod", 2, np.fmod, "fmod({0}, {1})", lambda x, y: (Const(1.0), -call("trunc", x / y)))
_atom("erfc", 1, _special.erfc, "erfc({0})", lambda x: ((-2.0 / _SQRT_PI) * call("exp", -(x * x)),))
def _polygamma(n, x, out=None):
    """scipy's polygamma (not a ufunc) in `x`'s dtype, written into `out` when given."""
    result = np.asarray(_special.polygamma(n, x), dtype=np.result_type(x, np.float32))
    if out is None:
        return result
    out[...] = result
    return out


# exp2, log2 and log10 from the C library: exact at powers of two (and ten), where exp(x ln 2) is not
_atom("exp2", 1, np.exp2, "exp2({0})", lambda x: (0.6931471805599453 * call("exp2", x),))
_atom("log2", 1, np.log2, "log2({0})", lambda x: (1.4426950408889634 / x,))
_atom("log10", 1, np.log10, "log10({0})", lambda x: (0.4342944819032518 / x,))
_atom("lgamma", 1, _special.gammaln, "lgamma({0})", lambda x: (call("digamma", x),))
_atom("digamma", 1, _special.psi, "digamma({0})", lambda x: (call("polygamma", Const(1.0), x),))
_atom("polygamma", 2, _polygamma, "polygamma({0}, {1})",
      lambda n, x: (Const(0.0), call("polygamma", n + 1.0, x)))
_atom("gcd", 2, np.gcd, "gcd({0}, {1})", None)
_atom("lcm", 2, np.lcm, "lcm({0}, {1})", None)
_atom("nextafter", 2, np.nextafter, "nextafter({0}, {1})", _zero)
_atom("copysign", 2, np.copysign, "copysign({0}, {1})",
      lambda x, y: (call("sign", x) * call("sign", call("copysign", 1.0, y)), Const(0.0)))
_atom("hypot", 2, np.hypot, "hypot({0}, {1})",
      lambda x, y: (x / call("hypot", x, y), y / call("hypot", x, y)))
# log(e^x + e^y) as one atom: its partials (the logistic function of the difference) are smooth, where
# those of a max-based formula lose the curvature at x == y
_atom("logaddexp", 2, np.logaddexp, "ember_logaddexp({0}, {1})",
      lambda x, y: (1.0 / (1.0 + call("exp", y - x)), 1.0 / (1.0 + call("exp", x - y))))
for _name, _fn, _c in [("lt", np.less, "<"), ("le", np.less_equal, "<="), ("gt", np.greater, ">"),
                       ("ge", np.greater_equal, ">="), ("eq", np.equal, "=="), ("ne", np.not_equal, "!=")]:
    _atom(_name, 2, _fn, "({0} %s {1})" % _c, None, bool_out=True)
for _name, _fn, _c in [("logical_and", np.logical_and, "({0} && {1})"),
                       ("logical_or", np.logical_or, "({0} || {1})"),
                       ("logical_xor", np.logical_xor, "(!{0} != !{1})")]:
    _atom(_name, 2, _fn, _c, None, bool_out=True)
_atom("logical_not", 1, np.logical_not, "(!{0})", None, bool_out=True)
for _name, _fn, _c in [("isnan", np.isnan, "isnan({0})"), ("isinf", np.isinf, "isinf({0})"),
                       ("isfinite", np.isfinite, "isfinite({0})")]:
    _atom(_name, 1, _fn, _c, None, bool_out=True)
for _name, _fn, _c in [("bitwise_and", np.bitwise_and, "({0} & {1})"),
                       ("bitwise_or", np.bitwise_or, "({0} | {1})"),
                       ("bitwise_xor", np.bitwise_xor, "({0} ^ {1})"),
                       ("left_shift", np.left_shift, "({0} << {1})"),
                       ("right_shift", np.right_shift, "({0} >> {1})")]:
    _atom(_name, 2, _fn, _c, None)
_atom("bitwise_not", 1, np.invert, "(~{0})", None)

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
_NAMED_CONSTS = {"pi": math.pi, "e": math.e, "inf": math.inf}


def parse(formula: str) -> Expr:
    """Parse a formula such as ``"0.5 * x * (1 + erf(x / sqrt(2)))"`` into an expression."""
    return _from_ast(ast.parse(formula, mode="eval").body)


def _from_ast(node) -> Expr:
    if isinstance(node, ast.BinOp):
        return call(_BINOPS[type(node.op)], _from_ast(node.left), _from_ast(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_from_ast(node.operand)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        return call(_CMPOPS[type(node.ops[0])], _from_ast(node.left), _from_ast(node.comparators[0]))
    if isinstance(node, ast.Call):
        return call(node.func.id, *[_from_ast(a) for a in node.args])
    if isinstance(node, ast.Constant):
        return Const(float(node.value))
    if isinstance(node, ast.Name):
        return Const(_NAMED_CONSTS[node.id]) if node.id in _NAMED_CONSTS else Var(node.id)
    raise SyntaxError(f"unsupported syntax in formula: {ast.dump(node)}")


def diff(e: Expr, var: str, memo: dict | None = None) -> Expr:
    """The symbolic derivative of `e` with respect to input `var`."""
    memo = {} if memo is None else memo
    if e.key in memo:
        return memo[e.key]
    if isinstance(e, Var):
        result = Const(1.0 if e.name == var else 0.0)
    elif isinstance(e, Const):
        result = Const(0.0)
    else:
        result = _diff_call(e, var, memo)
    memo[e.key] = result
    return result


def _diff_call(e: Call, var: str, memo: dict) -> Expr:
    if e.atom.bool_out:  # predicates are piecewise constant
        return Const(0.0)
    inner = [diff(a, var, memo) for a in e.args]
    if all(is_const(d, 0) for d in inner):
        return Const(0.0)
    if e.atom.partials is None:
        raise ValueError(f"{e.atom.name} is not differentiable")
    total: Expr = Const(0.0)
    for partial, d in zip(e.atom.partials(*e.args), inner):
        if not is_const(d, 0):
            total = total + times(lift(partial), d)
    return total


def times(a: Expr, b: Expr) -> Expr:
    """``a * b`` for the chain rule: a factor that is a choice with a constant branch (the derivative of
    ``where``, ``relu``, ``maximum``…) selects instead of multiplying, ``where(c, a * p, a * q)``, so an
    infinite or NaN factor on the side not chosen does not turn a zero into NaN (as PyTorch's backward
    of those operations selects the gradient)."""
    a, b = lift(a), lift(b)
    for x, y in ((a, b), (b, a)):
        if isinstance(y, Call) and y.atom.name == "where" and any(isinstance(v, Const) for v in y.args[1:]):
            c, p, q = y.args
            return call("where", c, times(x, p), times(x, q))
    return a * b


def variables(e: Expr) -> set[str]:
    """The names of the inputs a formula uses."""
    if isinstance(e, Var):
        return {e.name}
    if isinstance(e, Call):
        return set().union(*(variables(a) for a in e.args))
    return set()


def topo_nodes(e: Expr) -> list[Call]:
    """The distinct Call nodes of `e` (shared subexpressions once), inputs before users."""
    order: list[Call] = []
    seen: set = set()

    def visit(n: Expr) -> None:
        if not isinstance(n, Call) or n.key in seen:
            return
        for a in n.args:
            visit(a)
        seen.add(n.key)
        order.append(n)

    visit(e)
    return order


def evaluate(e: Expr, env: dict, apply: Callable) -> object:
    """Evaluate `e` with inputs from `env`, applying atoms with ``apply(atom_name, *values)``.

    Constants stay Python floats, so they promote as weak scalars. Shared subexpressions are computed once.
    """
    values: dict = {}

    def value(n: Expr):
        if isinstance(n, Var):
            return env[n.name]
        if isinstance(n, Const):
            return n.value
        return values[n.key]

    for node in topo_nodes(e):
        values[node.key] = apply(node.atom.name, *[value(a) for a in node.args])
    return value(e)


def compile_kernel(e: Expr, params: tuple[str, ...], namespace_module=np, alloc: Callable | None = None
                   ) -> Callable:
    """Generate a NumPy (or CuPy) function computing `e`, reusing dead temporaries in place.

    For one-input formulas every intermediate has the input's shape, so temporaries of the same
    dtype class are recycled with ``out=``; the input itself is never written. With `alloc`, every
    other result is written into ``alloc(fn, *args)`` (an output array from a backend's pool, or None
    to let ``fn`` allocate).
    """
    nodes = topo_nodes(e)
    last_use: dict = {}
    for i, n in enumerate(nodes):
        for a in n.args:
            last_use[a.key] = i
    reuse = len(params) == 1
    names: dict = {("var", p): p for p in params}
    free: dict = {True: [], False: []}
    # Constants take the dtype of the first floating input, so where(c, 1.0, 0.0) stays float32 for
    # float32 data; for integer data they stay weak Python numbers.
    lines = [f"def kernel({', '.join(params)}):", f"    _t = const_type({', '.join(params)})"]
    fns: dict = {}
    for i, n in enumerate(nodes):
        fname = f"f_{n.atom.name}"
        fns[fname] = _backend_fn(n.atom, namespace_module)
        args = [names[a.key] if not isinstance(a, Const) else f"_t({_literal(a.value)})" for a in n.args]
        target = f"t{i}"
        kind = n.atom.bool_out
        if reuse and free[kind] and n.atom.name != "where" and any(not isinstance(a, Const) for a in n.args):
            target = free[kind].pop()
            lines.append(f"    {target} = {fname}({', '.join(args)}, out={target})")
        elif alloc is not None and n.atom.name != "where":
            lines.append(f"    {target} = {fname}({', '.join(args)}, out=alloc({fname}, {', '.join(args)}))")
        else:
            lines.append(f"    {target} = {fname}({', '.join(args)})")
        names[n.key] = target
        for a in n.args:
            if isinstance(a, Call) and last_use.get(a.key) == i and names[a.key] != target:
                free[a.atom.bool_out].append(names[a.key])
    lines.append(f"    return {names[e.key] if not isinstance(e, Const) else f'_t({_literal(e.value)})'}")
    scope = dict(fns, __name__="ember._core.kernels", alloc=alloc, const_type=_const_type)
    exec("\n".join(lines), scope)
    kernel = scope["kernel"]
    source = "\n".join(lines)
    if reuse:  # ufuncs return scalars for 0-d arrays, which cannot be written with out=
        inner = kernel

        def kernel(x):
            if getattr(x, "ndim", 1) == 0:
                return inner(x.reshape(1)).reshape(())
            return inner(x)

    kernel.source = source
    return kernel


def _weak(value: float) -> float:
    """A constant for integer data: whole numbers as ints, so they do not promote the result to float."""
    return int(value) if float(value).is_integer() else value


def _const_type(*arrays) -> Callable:
    """The scalar type constants take in a kernel called with `arrays`."""
    for a in arrays:
        dt = getattr(a, "dtype", None)
        if dt is not None and dt.kind in "fc":
            return dt.type
    return _weak


def _literal(value: float) -> str:
    return repr(value) if math.isfinite(value) else f"float('{value}')"


def _backend_fn(atom: Atom, module) -> Callable:
    if module is np:
        return atom.np_fn
    return getattr(module, atom.np_fn.__name__)
