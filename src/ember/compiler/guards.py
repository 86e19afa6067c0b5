"""Guards on the Python values a traced function read from outside its arguments.

A graph bakes in every Python number it met while tracing, and it reads the very tensors, modules and
optimisers the traced code used. When such a value lives in a global variable or in a closure, a later
call may find a different one there: ``k = 7.0`` after ``f = ember.jit(lambda x: x * k)`` was traced with
``k = 2.0``, or a global tensor rebound to a new one. :class:`Reads` records which globals the traced
user code loads (its own frames, not Ember's or a library's) and which closure variables the compiled
function and the functions it holds refer to; each becomes a *slot* whose ``_jit_signature()`` joins the
cache key like a module's, so a changed value recompiles (and ``explain=True`` names the variable)
instead of giving the old graph's numbers.

What counts: numbers, strings, bytes, ``None``, dtypes, enum members and tuples of those by value;
tensors, modules, optimisers and functions by identity (a tensor's contents are read at each run
anyway). Other objects (classes, lists, dicts) and attributes read from them are not guarded. Globals and
closure variables that the traced code itself assigns (a call counter) are not guarded either: a
compiled run does not execute Python code, so such a guard could never hold.

The user code that ran is found from the stack of each operation the trace records (the frames
between the operation and the call of the compiled function), together with the compiled function,
the functions its closure holds, and the user functions those call by global name. Closure variables
count for the compiled function and the functions its closure holds; those of other functions the
traced code calls are not guarded.
"""
from __future__ import annotations

import dis
import enum
import os
import sysconfig
import types
from typing import Any, Callable, Iterator

from .._core import methods as _methods
from .._core.dispatch import is_grad_enabled
from .._core.dtypes import DType, get_default_dtype
from .._core.errors import _is_inside, _source_line
from .._core.tensor import Tensor

_VALUE_TYPES = frozenset({bool, int, float, complex, str, bytes, type(None)})
_MISSING = ("missing",)
# the interpreter's library and installed packages: their module-level constants do not change
_LIBRARY = tuple(sorted({os.path.join(os.path.abspath(p), "") for key, p in sysconfig.get_paths().items()
                         if key in ("stdlib", "platstdlib", "purelib", "platlib")}))
_USER: dict[str, bool] = {}


def _is_user(filename: str) -> bool:
    """Whether code from `filename` is the user's: not Ember's, the interpreter's or a package's."""
    user = _USER.get(filename)
    if user is None:
        user = not (_is_inside(filename) or os.path.abspath(filename).startswith(_LIBRARY))
        _USER[filename] = user
    return user


def _plain(v: Any) -> bool:
    t = type(v)
    if t in _VALUE_TYPES or isinstance(v, (DType, enum.Enum)):
        return True
    return t is tuple and all(_plain(x) for x in v)


def _by_identity(v: Any) -> bool:
    return isinstance(v, (Tensor, types.FunctionType)) or hasattr(v, "_jit_signature")


def _tracked(v: Any) -> bool:
    """Whether a graph traced with `v` in a global or closure variable depends on which value it is."""
    return _plain(v) or _by_identity(v)


def guard_value(v: Any) -> Any:
    """The part of `v` a graph depends on: plain values themselves; tensors, modules, optimisers and
    functions by identity; anything else by its type only."""
    if _plain(v):
        return ("value", type(v).__name__, v)
    if _by_identity(v):
        return ("object", type(v).__name__, id(v))
    return ("other", type(v).__name__)


def describe_change(before: Any, after: Any) -> str:
    """How a guarded value changed, in words: ``2.0 -> 7.0``, ``another Tensor``."""
    def show(sig: Any) -> str:
        if sig == _MISSING:
            return "unbound"
        return repr(sig[2]) if sig[0] == "value" else f"a {sig[1]}"

    if before[0] == after[0] == "object" and before[1] == after[1]:
        return f"now holds another {after[1]}"
    return f"{show(before)} -> {show(after)}"


class GlobalSlot:
    """Global variable `name` of the namespace `namespace` (a module's ``__dict__``)."""

    __slots__ = ("namespace", "name")

    def __init__(self, namespace: dict, name: str) -> None:
        self.namespace = namespace
        self.name = name

    def _jit_signature(self) -> Any:
        return guard_value(self.namespace[self.name]) if self.name in self.namespace else _MISSING

    def describe(self) -> str:
        return f"global variable {self.name!r} (module {self.namespace.get('__name__', '?')})"


class CellSlot:
    """Closure variable `name` (the cell `cell`) of function `owner`."""

    __slots__ = ("cell", "name", "owner")

    def __init__(self, cell: types.CellType, name: str, owner: str) -> None:
        self.cell = cell
        self.name = name
        self.owner = owner

    def _jit_signature(self) -> Any:
        try:
            return guard_value(self.cell.cell_contents)
        except ValueError:  # an empty cell
            return _MISSING

    def describe(self) -> str:
        return f"closure variable {self.name!r} of {self.owner}"


class DefaultDtypeSlot:
    """``ember.get_default_dtype()``: creation functions and integer-to-float promotions read it."""

    def _jit_signature(self) -> Any:
        return ("value", "dtype", get_default_dtype())

    def describe(self) -> str:
        return "the default dtype (ember.set_default_dtype)"


class DataAssignmentsSlot:
    """How often ``t.data = ...`` changed a tensor's shape, dtype or device (``Module.to(dtype)`` does it
    for every parameter): a graph that captured such a tensor was traced for the old ones."""

    def _jit_signature(self) -> Any:
        return ("value", "int", _methods.DATA_ASSIGNMENTS.value)

    def describe(self) -> str:
        return "the number of '.data =' assignments that changed a tensor's shape, dtype or device"


class GradModeSlot:
    """Whether gradients are recorded (``ember.no_grad``, ``ember.enable_grad``): a graph with parts traced
    with recording off keeps the gradient from flowing back through them only for calls made with
    recording on (and such a graph is traced again when the mode at the call changes)."""

    def _jit_signature(self) -> Any:
        return ("value", "bool", is_grad_enabled())

    def describe(self) -> str:
        return "gradient recording (ember.no_grad / ember.enable_grad around the call)"


DEFAULT_DTYPE = DefaultDtypeSlot()
GRAD_MODE = GradModeSlot()
DATA_ASSIGNMENTS = DataAssignmentsSlot()
GLOBAL_STATE = (DEFAULT_DTYPE, DATA_ASSIGNMENTS)  # slots every compiled function's key holds

_OPS: dict[types.CodeType, tuple[frozenset, frozenset, frozenset]] = {}


def _names(code: types.CodeType) -> tuple[frozenset, frozenset, frozenset]:
    """(globals loaded, globals stored, closure variables stored) by `code`'s own instructions."""
    found = _OPS.get(code)
    if found is None:
        loads, stores, cells = set(), set(), set()
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                loads.add(ins.argval)
            elif ins.opname in ("STORE_GLOBAL", "DELETE_GLOBAL"):
                stores.add(ins.argval)
            elif ins.opname in ("STORE_DEREF", "DELETE_DEREF"):
                cells.add(ins.argval)
        if len(_OPS) > 4096:
            _OPS.clear()
        found = _OPS[code] = (frozenset(loads), frozenset(stores), frozenset(cells))
    return found


def _functions(fn: Any, depth: int = 0) -> Iterator[types.FunctionType]:
    """`fn` as plain functions (through bound methods and ``functools.partial``), then the functions its
    closure cells hold, a few levels deep."""
    fn = getattr(fn, "__func__", fn)
    if isinstance(fn, types.FunctionType):
        yield fn
        if depth < 3:
            for cell in fn.__closure__ or ():
                try:
                    inner = cell.cell_contents
                except ValueError:
                    continue
                if isinstance(inner, types.FunctionType):
                    yield from _functions(inner, depth + 1)
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and depth < 3:
        yield from _functions(inner, depth + 1)


class Reads:
    """The user code one trace ran, as ``code -> globals``, for :meth:`slots`.

    :meth:`walk` runs for every recorded operation: it names the user's line (the innermost frame
    outside Ember, as :func:`ember._core.errors.user_frame` does) and records every frame between it and
    the trace's `boundary` (the frame that started tracing), so that the functions which called the
    operation count as well as the one which applied it.
    """

    def __init__(self, boundary: types.FrameType | None) -> None:
        self.boundary = boundary
        self.frames: dict[types.CodeType, dict] = {}
        self._seen: dict[int, types.FrameType] = {}  # frames walked (held, so that ids stay unique)

    def walk(self, frame: types.FrameType | None) -> tuple[str, int, str] | None:
        """The user's (file, line, source) for an operation applied with `frame` innermost."""
        where = None
        while frame is not None and frame is not self.boundary:
            filename = frame.f_code.co_filename
            if not _is_inside(filename):
                if where is None:
                    where = (filename, frame.f_lineno, _source_line(filename, frame.f_lineno))
                if id(frame) in self._seen:  # walked before, and the frames around it with it
                    break
                self._seen[id(frame)] = frame
                self.frames.setdefault(frame.f_code, frame.f_globals)
            frame = frame.f_back
        return where

    def _codes(self, fn: Callable) -> dict[types.CodeType, dict]:
        """The user code that ran, the compiled function and the functions its closure holds, and what
        they call by global name or define inside (a helper that computes a number applies no
        operation, so no walk sees it)."""
        codes = {c: g for c, g in self.frames.items() if _is_user(c.co_filename)}
        for f in _functions(fn):
            codes.setdefault(f.__code__, f.__globals__)
        todo, depth = list(codes.items()), 0
        while todo and depth < 3:
            found = []
            for code, namespace in todo:
                inner = [(c, namespace) for c in code.co_consts if isinstance(c, types.CodeType)]
                for name in _names(code)[0]:
                    f = namespace.get(name)
                    if isinstance(f, types.FunctionType) and _is_user(f.__code__.co_filename):
                        inner.append((f.__code__, f.__globals__))
                for c, g in inner:
                    if c not in codes:
                        codes[c] = g
                        found.append((c, g))
            todo, depth = found, depth + 1
        return codes

    def slots(self, fn: Callable, cache: dict) -> list[Any]:
        """Slots (reused from `cache` across traces) for every tracked value the code read."""
        self._seen.clear()
        codes = self._codes(fn)
        written: dict[int, set] = {}
        cells_written: set = set()
        for code, namespace in codes.items():
            _, stores, cells = _names(code)
            written.setdefault(id(namespace), set()).update(stores)
            cells_written.update(cells)
        out = []
        for code, namespace in codes.items():
            for name in _names(code)[0]:
                if name in namespace and name not in written[id(namespace)] and _tracked(namespace[name]):
                    key = (id(namespace), name)
                    out.append(cache.setdefault(key, GlobalSlot(namespace, name)))
        for f in _functions(fn):
            for name, cell in zip(f.__code__.co_freevars, f.__closure__ or ()):
                try:
                    value = cell.cell_contents
                except ValueError:
                    continue
                if name not in cells_written and _tracked(value):
                    out.append(cache.setdefault(id(cell), CellSlot(cell, name, f.__qualname__)))
        return out
