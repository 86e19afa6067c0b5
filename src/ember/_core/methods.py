"""Operators and methods of :class:`Tensor`, installed from the op families in one explicit list."""
from __future__ import annotations

import weakref

from . import creation, dtypes, random
from .errors import AutogradError
from .inplace import inplace
from .primitives import elementwise as ew
from .primitives import indexing, linalg, movement, reduce
from .tensor import Tensor, Tracer, VersionCounter


def _rev(fn):
    def method(self, other):
        return fn(other, self)

    return method


def _logical_or_bitwise(logical, bitwise):
    def fn(x, y):
        if x.dtype is dtypes.bool_ and (not isinstance(y, Tensor) or y.dtype is dtypes.bool_):
            return logical(x, y)
        return bitwise(x, y)

    return fn


def _invert(x: Tensor) -> Tensor:
    return ew.logical_not(x) if x.dtype is dtypes.bool_ else ew.bitwise_not(x)


def _pos(x):
    return x


# bumped whenever ``t.data = ...`` changes a tensor's shape, dtype or device: a compiled graph that captured
# the tensor was traced for the old ones (ember.jit keys on it)
DATA_ASSIGNMENTS = VersionCounter()


def _set_data(x: Tensor, value: Tensor) -> None:
    """``x.data = value``: `x` takes `value`'s data, shared as with a view, and its shape, dtype and
    device, keeping its identity, ``requires_grad``, gradient and autograd history (PyTorch's
    ``set_data``). Modules convert parameters this way, so optimisers keep holding them."""
    if not isinstance(value, Tensor):
        raise TypeError(f"data must be set to a Tensor, got {type(value).__name__}")
    if isinstance(x, Tracer) or isinstance(value, Tracer):
        raise AutogradError("data", "cannot assign .data of a tensor being traced by a transform", (x, value))
    if x._requires_grad and not (value._dtype.is_floating_point or value._dtype.is_complex):
        raise AutogradError("data", f"a tensor that requires grad cannot take {value._dtype} data",
                            (x, value))
    if (x._data.shape, x._dtype, x._device) != (value._data.shape, value._dtype, value._device):
        DATA_ASSIGNMENTS.value += 1
    x._data, x._dtype, x._device = value._data, value._dtype, value._device


def detach(x: Tensor) -> Tensor:
    """A tensor sharing `x`'s data but cut from the autograd graph. A value traced by a transform
    (``jvp``, ``vmap``, ``ember.jit``) goes through the ``stop_gradient`` primitive, so that no
    derivative flows through it there either (a compiled function may be differentiated later)."""
    if isinstance(x, Tracer):
        out = movement.stop_gradient(x)
        out._node, out._requires_grad, out._grad, out._hooks = None, False, None, None
        return out
    out = Tensor._make(x._data, x._dtype, x._device)
    out._vc = x._version_counter()
    return out


def register_hook(x: Tensor, hook):
    """Call ``hook(grad)`` when the gradient of `x` is computed; a returned tensor replaces the gradient."""
    if not x._requires_grad:
        raise AutogradError("register_hook", "cannot register a hook on a tensor that doesn't require grad",
                            (x,))
    note = getattr(x._trace, "note_hook", None) if isinstance(x, Tracer) else None
    if note is not None:
        note(x)
    if x._hooks is None:
        x._hooks = []
    x._hooks.append(hook)
    return _HookHandle(x._hooks, hook)


class _HookHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def retain_grad(x: Tensor) -> None:
    """Populate ``.grad`` of a non-leaf tensor during backward."""
    if x._node is None:
        return
    ref = weakref.ref(x)

    def keep(g):
        t = ref()
        if t is not None:
            t._grad = g if t._grad is None else t._grad + g

    register_hook(x, keep)


def backward(x: Tensor, gradient=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
    """Accumulate the gradient of `x` with respect to graph leaves into their ``.grad``."""
    from . import autograd

    autograd.backward(x, gradient, retain_graph, create_graph, inputs)


def to(x: Tensor, *args, **kwargs) -> Tensor:
    """Convert dtype and/or move to a device: ``x.to("cpu")``, ``x.to(ember.float64)``, ``x.to(other)``."""
    from .device import Device, as_device

    dtype = kwargs.get("dtype")
    device = kwargs.get("device")
    for a in args:
        if isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif isinstance(a, (Device, str)) and not (isinstance(a, str) and a in dtypes._BY_NAME):
            device = a
        else:
            dtype = a
    out = x if dtype is None else ew.convert(x, dtype)
    if device is not None and as_device(device) != out.device:
        dev = as_device(device)
        host = out._device.backend.to_numpy(out._data)
        out = Tensor._make(dev.backend.asarray(host, out.dtype), out.dtype, dev)
    return out


def _type_method(dt):
    def method(self):
        return ew.convert(self, dt)

    return method


def _inplace_method(fn):
    def method(self, *args, **kwargs):
        return inplace(self, fn, *args, **kwargs)

    method.__name__ = fn.__name__ + "_"
    return method


def _fill(x, value):
    return creation.full_like(x, value)


def _zero(x):
    return creation.zeros_like(x)


def _copy(x, src):
    src = src if isinstance(src, Tensor) else creation.tensor(src)
    return ew.convert(movement.broadcast_to(src, x.shape), x.dtype)


METHODS = {
    "__add__": ew.add, "__radd__": _rev(ew.add), "__sub__": ew.sub, "__rsub__": _rev(ew.sub),
    "__mul__": ew.mul, "__rmul__": _rev(ew.mul), "__truediv__": ew.true_divide,
    "__rtruediv__": _rev(ew.true_divide), "__floordiv__": ew.floor_divide,
    "__rfloordiv__": _rev(ew.floor_divide), "__mod__": ew.remainder, "__rmod__": _rev(ew.remainder),
    "__pow__": ew.pow, "__rpow__": _rev(ew.pow), "__neg__": ew.neg, "__pos__": _pos, "__abs__": ew.abs,
    "__matmul__": linalg.matmul, "__rmatmul__": _rev(linalg.matmul),
    "__lt__": ew.lt, "__le__": ew.le, "__gt__": ew.gt, "__ge__": ew.ge, "__eq__": ew.eq, "__ne__": ew.ne,
    "__and__": _logical_or_bitwise(ew.logical_and, ew.bitwise_and),
    "__or__": _logical_or_bitwise(ew.logical_or, ew.bitwise_or),
    "__xor__": _logical_or_bitwise(ew.logical_xor, ew.bitwise_xor), "__invert__": _invert,
    "__rand__": _rev(_logical_or_bitwise(ew.logical_and, ew.bitwise_and)),
    "__ror__": _rev(_logical_or_bitwise(ew.logical_or, ew.bitwise_or)),
    "__lshift__": ew.bitwise_left_shift, "__rshift__": ew.bitwise_right_shift,
    "add": ew.add, "sub": ew.sub, "subtract": ew.sub, "mul": ew.mul, "multiply": ew.mul, "div": ew.div,
    "divide": ew.div, "true_divide": ew.true_divide, "floor_divide": ew.floor_divide,
    "remainder": ew.remainder, "pow": ew.pow, "neg": ew.neg, "negative": ew.neg, "abs": ew.abs,
    "sign": ew.sign, "square": ew.square, "exp": ew.exp, "log": ew.log, "sin": ew.sin, "cos": ew.cos,
    "tan": ew.tan, "tanh": ew.tanh, "sinh": ew.sinh, "cosh": ew.cosh, "asin": ew.asin, "acos": ew.acos,
    "atan": ew.atan, "asinh": ew.asinh, "acosh": ew.acosh, "atanh": ew.atanh, "arcsin": ew.asin,
    "arccos": ew.acos, "arctan": ew.atan, "sqrt": ew.sqrt, "rsqrt": ew.rsqrt, "log1p": ew.log1p,
    "expm1": ew.expm1, "erf": ew.erf, "erfinv": ew.erfinv, "log2": ew.log2, "log10": ew.log10,
    "exp2": ew.exp2, "reciprocal": ew.reciprocal, "logit": ew.logit, "floor": ew.floor, "ceil": ew.ceil,
    "round": ew.round, "trunc": ew.trunc, "sigmoid": ew.sigmoid, "relu": ew.relu, "maximum": ew.maximum,
    "minimum": ew.minimum, "atan2": ew.atan2, "clamp": ew.clamp, "clip": ew.clamp, "lerp": ew.lerp,
    "nan_to_num": ew.nan_to_num, "where": lambda self, cond, other: ew.where(cond, self, other),
    "lt": ew.lt, "le": ew.le, "gt": ew.gt, "ge": ew.ge, "eq": ew.eq, "ne": ew.ne,
    "logical_and": ew.logical_and, "logical_or": ew.logical_or, "logical_xor": ew.logical_xor,
    "logical_not": ew.logical_not, "isnan": ew.isnan, "isinf": ew.isinf, "isfinite": ew.isfinite,
    "bitwise_and": ew.bitwise_and, "bitwise_or": ew.bitwise_or, "bitwise_xor": ew.bitwise_xor,
    "bitwise_not": ew.bitwise_not,
    "clone": ew.clone, "detach": detach, "register_hook": register_hook, "retain_grad": retain_grad,
    "backward": backward,
    "to": to, "float": _type_method(dtypes.float32), "double": _type_method(dtypes.float64),
    "half": _type_method(dtypes.float16), "bfloat16": _type_method(dtypes.bfloat16),
    "int": _type_method(dtypes.int32), "long": _type_method(dtypes.int64), "bool": _type_method(dtypes.bool_),
    "type_as": lambda self, other: ew.convert(self, other.dtype), "cpu": lambda self: to(self, "cpu"),
    "fmod": ew.fmod, "hypot": ew.hypot, "logaddexp": ew.logaddexp, "logaddexp2": ew.logaddexp2,
    "xlogy": ew.xlogy, "frac": ew.frac, "deg2rad": ew.deg2rad, "rad2deg": ew.rad2deg, "isclose": ew.isclose,
    "allclose": ew.allclose, "equal": ew.equal, "erfc": ew.erfc, "sinc": ew.sinc, "signbit": ew.signbit,
    "copysign": ew.copysign, "fmax": ew.fmax, "fmin": ew.fmin, "heaviside": ew.heaviside,
    "addcmul": ew.addcmul, "addcdiv": ew.addcdiv, "clamp_min": ew.clamp_min, "clamp_max": ew.clamp_max,
    "float_power": ew.float_power, "isposinf": ew.isposinf, "isneginf": ew.isneginf, "sgn": ew.sign,
    "positive": _pos, "not_equal": ew.ne, "greater": ew.gt, "less": ew.lt, "greater_equal": ew.ge,
    "less_equal": ew.le, "conj": ew.conj, "conj_physical": ew.conj, "resolve_conj": lambda self: self,
    "angle": ew.angle,
}

INPLACE = {
    "add_": ew.add, "sub_": ew.sub, "mul_": ew.mul, "div_": ew.div, "pow_": ew.pow, "neg_": ew.neg,
    "abs_": ew.abs, "exp_": ew.exp, "log_": ew.log, "sqrt_": ew.sqrt, "sigmoid_": ew.sigmoid,
    "tanh_": ew.tanh, "relu_": ew.relu, "clamp_": ew.clamp, "clip_": ew.clamp, "floor_": ew.floor,
    "ceil_": ew.ceil, "round_": ew.round, "trunc_": ew.trunc, "fill_": _fill, "zero_": _zero,
    "copy_": _copy, "square_": ew.square, "sin_": ew.sin, "cos_": ew.cos, "reciprocal_": ew.reciprocal,
    "nan_to_num_": ew.nan_to_num, "maximum_": ew.maximum, "minimum_": ew.minimum, "lerp_": ew.lerp,
    "fmod_": ew.fmod, "hypot_": ew.hypot, "xlogy_": ew.xlogy, "frac_": ew.frac, "deg2rad_": ew.deg2rad,
    "rad2deg_": ew.rad2deg, "addcmul_": ew.addcmul, "addcdiv_": ew.addcdiv, "clamp_min_": ew.clamp_min,
    "clamp_max_": ew.clamp_max, "copysign_": ew.copysign, "erfc_": ew.erfc,
    "__iadd__": ew.add, "__isub__": ew.sub, "__imul__": ew.mul, "__itruediv__": ew.true_divide,
    "__ipow__": ew.pow, "__ifloordiv__": ew.floor_divide, "__imod__": ew.remainder,
}


def _new(make, what: str):
    """A ``Tensor.new_*`` method: `make(*shape, dtype=, device=)` with this tensor's dtype and device as
    defaults; the size as one tuple or as separate ints, as PyTorch takes it."""
    def method(self, *size, dtype=None, device=None, requires_grad: bool = False):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
        return make(*shape, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)
    method.__doc__ = (f"A new tensor of {what} of the given size, with this tensor's dtype and device unless "
                      "`dtype` or `device` is given.")
    return method


def _new_full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor of `size` filled with `fill_value`, with this tensor's dtype and device unless `dtype`
    or `device` is given."""
    return creation.full(tuple(size), fill_value, dtype=dtype or self.dtype, device=device or self.device,
                         requires_grad=requires_grad)


def _new_tensor(self, data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data`, with this tensor's dtype and device unless `dtype` or
    `device` is given."""
    return creation.tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                           requires_grad=requires_grad)


METHODS.update({"new_zeros": _new(creation.zeros, "zeros"), "new_ones": _new(creation.ones, "ones"),
                "new_empty": _new(creation.empty, "uninitialised values"), "new_full": _new_full,
                "new_tensor": _new_tensor})


def install(methods: dict, inplace_methods: dict | None = None) -> None:
    """Attach `methods` (name -> function taking the tensor first) and in-place variants to Tensor."""
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    for name, fn in (inplace_methods or {}).items():
        setattr(Tensor, name, _inplace_method(fn))


# Each op family lists its own Tensor methods (name -> function taking the tensor first).
FAMILIES = [reduce, movement, linalg, random, indexing]

install(METHODS, INPLACE)
for _family in FAMILIES:
    install(_family.TENSOR_METHODS, getattr(_family, "TENSOR_INPLACE", None))
Tensor.T = property(lambda self: movement.permute(self, tuple(reversed(range(self.ndim)))),
                    doc="All dimensions reversed.")
Tensor.mT = property(lambda self: movement.transpose(self, -2, -1), doc="The last two dimensions swapped.")
Tensor.data = property(detach, _set_data, doc="The data, cut from the autograd graph; assigning a tensor "
                       "makes this tensor share that one's data (see _set_data).")
