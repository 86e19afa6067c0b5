"""Dtype objects and PyTorch's type-promotion rules (Python scalars are weak types)."""
from __future__ import annotations

import ml_dtypes
import numpy as np

from .errors import DTypeError

_BOOL, _INT, _FLOAT, _COMPLEX = 0, 1, 2, 3


class DType:
    """A tensor element type: a name, a NumPy dtype and a category (bool/int/float/complex)."""

    __slots__ = ("name", "np", "kind", "itemsize", "is_signed")

    def __init__(self, name: str, np_dtype, kind: int, is_signed: bool = True):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.kind = kind
        self.itemsize = self.np.itemsize
        self.is_signed = is_signed

    @property
    def is_floating_point(self) -> bool:
        """True for float16, bfloat16, float32 and float64."""
        return self.kind == _FLOAT

    @property
    def is_complex(self) -> bool:
        """True for complex64 and complex128."""
        return self.kind == _COMPLEX

    def __repr__(self) -> str:
        return f"ember.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))


bool_ = DType("bool", np.bool_, _BOOL, False)
uint8 = DType("uint8", np.uint8, _INT, False)
int8 = DType("int8", np.int8, _INT)
int16 = DType("int16", np.int16, _INT)
int32 = DType("int32", np.int32, _INT)
int64 = DType("int64", np.int64, _INT)
float16 = DType("float16", np.float16, _FLOAT)
bfloat16 = DType("bfloat16", ml_dtypes.bfloat16, _FLOAT)
float32 = DType("float32", np.float32, _FLOAT)
float64 = DType("float64", np.float64, _FLOAT)
complex64 = DType("complex64", np.complex64, _COMPLEX)
complex128 = DType("complex128", np.complex128, _COMPLEX)

ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64, complex64, complex128)
FLOATS = (float16, bfloat16, float32, float64)
INTS = (uint8, int8, int16, int32, int64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"half": float16, "float": float32, "double": float64, "long": int64, "int": int32,
                 "short": int16, "cfloat": complex64, "cdouble": complex128})
_BY_NP = {d.np: d for d in ALL}

_default_float = float32


def from_name(name: str) -> DType:
    """The dtype called `name` ("float32", "bfloat16", "long"…)."""
    return _BY_NAME[name]


def from_numpy(np_dtype) -> DType:
    """The Ember dtype of a NumPy dtype; raises DTypeError for types Ember does not have."""
    try:
        return _BY_NP[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise DTypeError("tensor", f"NumPy dtype {np_dtype} has no Ember equivalent") from None


def as_dtype(value) -> DType:
    """Accept an Ember dtype, a NumPy dtype/type, a name or a Python type and return the Ember dtype."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        if value not in _BY_NAME:
            raise DTypeError("dtype", f"unknown dtype name {value!r}")
        return _BY_NAME[value]
    if value is bool:
        return bool_
    if value is int:
        return int64
    if value is float:
        return _default_float
    if value is complex:
        return complex_for(_default_float)
    return from_numpy(value)


def get_default_dtype() -> DType:
    """The dtype given to Python floats and to float tensors created without a dtype."""
    return _default_float


def set_default_dtype(dtype) -> None:
    """Set the default floating dtype (float32 or float64, as in PyTorch)."""
    global _default_float
    dtype = as_dtype(dtype)
    if dtype.kind != _FLOAT:
        raise DTypeError("set_default_dtype", f"expected a floating dtype, got {dtype}")
    _default_float = dtype


def complex_for(dtype: DType) -> DType:
    """The complex dtype whose components have `dtype`'s precision."""
    return complex128 if dtype is float64 else complex64


def real_for(dtype: DType) -> DType:
    """The real dtype of a complex dtype's components (identity for real dtypes)."""
    if dtype is complex128:
        return float64
    if dtype is complex64:
        return float32
    return dtype


def _promote_pair(a: DType, b: DType) -> DType:
    if a is b:
        return a
    if a.kind != b.kind:
        hi, lo = (a, b) if a.kind > b.kind else (b, a)
        if hi.kind == _COMPLEX and lo.kind == _FLOAT and lo is float64:
            return complex128
        return hi
    if a.kind == _FLOAT:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a.itemsize > b.itemsize else b
    if a.kind == _COMPLEX:
        return a if a.itemsize > b.itemsize else b
    return _BY_NP[np.promote_types(a.np, b.np)]


_PAIR = {(a, b): _promote_pair(a, b) for a in ALL for b in ALL}


def promote(a: DType, b: DType) -> DType:
    """Promote two tensor dtypes as PyTorch does (uint8+int8→int16, int+float→float…)."""
    return _PAIR[(a, b)]


def scalar_dtype(value) -> DType:
    """The dtype a Python scalar would have as a tensor."""
    if isinstance(value, bool):
        return bool_
    if isinstance(value, int):
        return int64
    if isinstance(value, float):
        return _default_float
    if isinstance(value, complex):
        return complex_for(_default_float)
    raise DTypeError("tensor", f"cannot make a tensor element from {type(value).__name__}")


def combine_weak(strong: DType | None, weak: DType | None) -> DType | None:
    """Combine a higher-priority dtype with a lower-priority one (0-d tensor or Python scalar).

    Only the lower one's category can raise the result, as in PyTorch's result_type.
    """
    if strong is None:
        return weak
    if weak is None or strong.kind == _COMPLEX:
        return strong
    if weak.kind == _COMPLEX:
        return complex_for(strong) if strong.kind == _FLOAT else weak
    if strong.kind == _FLOAT:
        return strong
    if strong.kind == _BOOL or weak.kind == _FLOAT:
        return _PAIR[(strong, weak)]
    return strong


def result_type(*operands) -> DType:
    """PyTorch's result_type: tensors with dims > 0-d tensors > Python scalars, by category."""
    dim_t = zero_t = scal = None
    for op in operands:
        if isinstance(op, np.generic):  # a weak scalar already held in a compute dtype (a saved operand)
            op = op.item()
        if isinstance(op, (bool, int, float, complex)):
            d = scalar_dtype(op)
            scal = d if scal is None else _PAIR[(scal, d)]
        elif len(op.shape) == 0:
            zero_t = op.dtype if zero_t is None else _PAIR[(zero_t, op.dtype)]
        else:
            dim_t = op.dtype if dim_t is None else _PAIR[(dim_t, op.dtype)]
    if scal is not None and scal.kind == _FLOAT:
        scal = _default_float
    result = combine_weak(dim_t, combine_weak(zero_t, scal))
    if result is None:
        raise DTypeError("result_type", "needs at least one tensor or scalar operand")
    return result
