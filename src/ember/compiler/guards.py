"""Guards on the Python values a traced function read from outside its arguments.

A graph bakes in every Python number it met while tracing, and it reads the very tensors, modules and
optimisers the traced code used. When such a value lives in a global variable or in a closure, a later
call may find a different one there: ``k = 7.0`` after ``f = ember.jit(lambda x: x * k)`` was traced with
``k = 2.0``, or a global tensor rebound to a new one. :class:`Reads` records which globals the traced
user code loads (its own frames, not Ember's or a library's) and which closure variables the compiled
function and the functions it holds refer to; each becomes a *slot* whose ``_jit_signature()`` joins the
cache key like a module's, so a changed value recompiles (and ``explain=True`` names the variable)
instead of giving the old graph's numbers.

What counts (:func:`value_key`): numbers, strings, bytes, ``None``, dtypes and enum members by type and
value (``0.0`` and ``-0.0`` apart, a NaN equal to itself), NumPy scalars by type and bits, small NumPy
arrays by contents, tuples and frozensets by their elements; tensors, modules, optimisers, functions and
builtins by identity (a tensor's contents are read at each run anyway), a bound method by its function
and the object it is bound to, a ``functools.partial`` by its function and arguments. Containers past
``_BUDGET`` elements count by identity. Other objects (classes, plain objects, and as global variables
lists, dicts and sets, which the traced code may use as caches) and attributes read from them are not
guarded. Globals and closure variables that the traced code itself assigns (a call counter) are not
guarded either: a compiled run does not execute Python code, so such a guard could never hold.

Modules guard their own attributes (``Module._jit_signature`` through :func:`attributes_key`, lists,
dicts and sets included), and a compiled bound method guards the object it belongs to
(:func:`bound_slots`). :func:`leaked_tracers` finds traced values the function left in Python state
that outlives the trace.

The user code that ran is found from the stack of each operation the trace records (the frames
between the operation and the call of the compiled function), together with the compiled function,
the functions its closure holds, and the user functions those call by global name. Closure variables
count for the compiled function and the functions its closure holds; those of other functions the
traced code calls are not guarded.
"""
from __future__ import annotations

import dis
import enum
import functools
import itertools
import os
import sysconfig
import types
from typing import Any, Callable, Container, Iterator

import numpy as np

from .._core import methods as _methods
from .._core.dispatch import is_grad_enabled
from .._core.dtypes import DType, get_default_dtype
from .._core.errors import _is_inside, _source_line
from .._core.tensor import Tensor

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


# What a value is, for its guard (see _kind): each type is classified once.
_ATOM, _TAGGED, _FLOAT, _COMPLEX, _NUMPY, _ARRAY, _TUPLE, _FROZENSET, _SET, _LIST, _DICT, _ID, _METHOD, \
    _PARTIAL, _OTHER = range(1, 16)
_SIMPLE = frozenset({int, str, bool, bytes, type(None)})  # module attributes keyed by type and value
_BY_VALUE = frozenset({_ATOM, _TAGGED, _FLOAT, _COMPLEX, _NUMPY})
_MUTABLE = frozenset({_SET, _LIST, _DICT})  # guarded as attributes of a module, not as global variables
_KINDS: dict[type, int] = {int: _ATOM, str: _ATOM, bytes: _ATOM, type(None): _ATOM, bool: _TAGGED,
                           float: _FLOAT, complex: _COMPLEX, tuple: _TUPLE, frozenset: _FROZENSET, set: _SET,
                           list: _LIST, dict: _DICT}
# functions and other callables the interpreter or NumPy define (math.sqrt, np.exp, str.upper)
_IDENTITY = (Tensor, types.FunctionType, types.BuiltinFunctionType, types.MethodWrapperType,
             types.WrapperDescriptorType, types.MethodDescriptorType, types.ClassMethodDescriptorType,
             np.ufunc)
_BUDGET = 64  # elements of a container compared by value; a larger one is guarded by identity
_SMALL_ARRAY = 16  # NumPy arrays of at most this many elements are guarded by their contents


class _TooBig(Exception):
    """A container has more than ``_BUDGET`` elements (nested ones included)."""


def _classify(t: type) -> int:
    """The kind of guard for values of type `t` (see :func:`_key`)."""
    if issubclass(t, (DType, enum.Enum)):
        return _TAGGED
    if issubclass(t, np.generic):
        return _NUMPY
    if issubclass(t, np.ndarray):
        return _ARRAY
    if issubclass(t, _IDENTITY) or hasattr(t, "_jit_signature"):
        return _ID
    if issubclass(t, types.MethodType):
        return _METHOD
    if issubclass(t, functools.partial):
        return _PARTIAL
    for base, kind in ((bool, _TAGGED), (float, _FLOAT), (complex, _COMPLEX), (tuple, _TUPLE),
                       (frozenset, _FROZENSET), (set, _SET), (list, _LIST), (dict, _DICT),
                       ((int, str, bytes), _TAGGED)):
        if issubclass(t, base):
            return kind
    return _OTHER


def _kind(t: type) -> int:
    """How a value of type `t` is guarded (one of the kinds above), cached per type."""
    kind = _KINDS.get(t)
    if kind is None:
        kind = _classify(t)
        if len(_KINDS) < 4096:
            _KINDS[t] = kind
    return kind


def _numpy_key(t: type, v: Any) -> Any:
    """The key of NumPy scalar `v` of type `t`: its type and value as a Python number (``0.0`` and
    ``-0.0`` apart, NaN equal to itself), or its type, dtype and bytes for other scalars (datetimes,
    strings, structured values)."""
    x = v.item()
    tx = type(x)
    if tx is float:
        return (t, x if x != 0.0 and x == x else repr(x))
    if tx is int or tx is bool:
        return (t, x)
    return (t, v.dtype.str, v.tobytes())


def _key(v: Any, left: list[int], mutable: bool) -> Any:
    """A hashable key of `v`: a graph traced with one value serves every value with an equal key.

    Numbers and strings count by type and value (``0.0`` and ``-0.0`` apart, a NaN equal to itself),
    NumPy scalars likewise (see :func:`_numpy_key`), small NumPy arrays by contents, containers by their
    elements' keys (lists, dicts and sets only when `mutable`), tensors, modules, optimisers and
    functions by identity, a bound method by its function and the object it is bound to,
    ``functools.partial`` by its parts; anything else by identity.
    `left` counts the container elements still allowed (``_TooBig`` past it)."""
    t = type(v)
    kind = _KINDS.get(t)
    if kind is None:
        kind = _kind(t)
    if kind == _ATOM:
        return v
    if kind == _FLOAT:
        return (t, v) if v != 0.0 and v == v else (t, repr(v))
    if kind == _TAGGED:
        return (t, v)
    if kind == _COMPLEX:
        return (t, repr(v))
    if kind == _NUMPY:
        return _numpy_key(t, v)
    if kind == _ID:
        return (t, id(v))
    if kind == _ARRAY:
        if v.size <= _SMALL_ARRAY:
            return (t, v.dtype.str, v.shape, v.tobytes())
        return (t, id(v), v.dtype.str, v.shape)
    if kind == _METHOD:
        return (t, id(v.__func__), id(v.__self__))
    if kind == _OTHER or (kind in _MUTABLE and not mutable):
        return (_OTHER, t, id(v))
    if kind == _PARTIAL:
        return (t, _key(v.func, left, mutable), _key(v.args, left, mutable), _key(v.keywords, left, True))
    left[0] -= len(v)
    if left[0] < 0:
        raise _TooBig
    if kind == _TUPLE or kind == _LIST:
        return (t, *[_key(x, left, mutable) for x in v])
    if kind == _DICT:
        return (t, *[(_key(k, left, mutable), _key(x, left, mutable)) for k, x in v.items()])
    return (t, frozenset([_key(x, left, mutable) for x in v]))


def value_key(v: Any, mutable: bool = False) -> Any:
    """The key :func:`_key` gives `v`, or ``None`` when `v` is not guarded: an object of another kind
    (a class, a plain object), or, unless `mutable`, a list, dict or set. A container with more than
    ``_BUDGET`` elements counts by identity (and length)."""
    kind = _kind(type(v))
    if kind == _OTHER or (kind in _MUTABLE and not mutable):
        return None
    try:
        return _key(v, [_BUDGET], mutable)
    except _TooBig:
        return (_OTHER, type(v), id(v), len(v))


def attributes_key(attrs: dict, skip: frozenset = frozenset()) -> tuple:
    """``(name, type, key)`` for every guarded value of `attrs` (an object's ``__dict__``) not named in
    `skip`, lists, dicts and sets included (see :func:`value_key`). It is computed on every call of a
    compiled function for every module the function used, so the common values (numbers, strings,
    None, tensors) take the shortest path."""
    out = []
    for name, v in attrs.items():
        t = type(v)
        if t in _SIMPLE:
            out.append((name, t, v))
        elif t is float:
            out.append((name, t, v if v != 0.0 and v == v else repr(v)))
        elif name not in skip:
            kind = _KINDS.get(t) or _kind(t)
            if kind == _ID:
                out.append((name, t, id(v)))
            elif kind != _OTHER:
                try:
                    out.append((name, t, _key(v, [_BUDGET], True)))
                except _TooBig:
                    out.append((name, t, (_OTHER, t, id(v), len(v))))
    return tuple(out)


def _tracked(v: Any) -> bool:
    """Whether a graph traced with `v` in a global or closure variable depends on which value it is."""
    kind = _kind(type(v))
    return kind != _OTHER and kind not in _MUTABLE


def guard_value(v: Any) -> Any:
    """The part of `v` a graph depends on: numbers, strings, NumPy scalars and other plain values by
    type and value, tuples and frozensets by their elements; tensors, modules, optimisers and functions
    (builtins, bound methods and partials included) by identity; anything else by its type only."""
    t = type(v)
    if t is float:
        return ("value", "float", (t, v) if v != 0.0 and v == v else (t, repr(v)))
    kind = _kind(t)
    if kind == _ATOM:
        return ("value", t.__name__, v)
    if kind == _ID:
        return ("object", t.__name__, (t, id(v)))
    if kind == _NUMPY:
        return ("value", t.__name__, _numpy_key(t, v))
    if kind == _OTHER or kind in _MUTABLE:
        return ("other", t.__name__)
    key = value_key(v)
    if kind in _BY_VALUE:
        return ("value", t.__name__, key)
    if (kind in (_TUPLE, _FROZENSET) and key[0] != _OTHER) or (kind == _ARRAY and v.size <= _SMALL_ARRAY):
        return ("value", t.__name__, key)
    return ("object", t.__name__, key)


def _show(key: Any) -> str:
    """A value's key (see :func:`_key`) in words."""
    if not isinstance(key, tuple) or not key:
        return repr(key)
    t = key[0]
    if isinstance(t, type) and issubclass(t, np.generic):
        if len(key) == 3:
            return repr(np.frombuffer(key[2], dtype=np.dtype(key[1]))[0])
        return f"{t.__name__}({key[1] if isinstance(key[1], str) else repr(key[1])})"
    if t is np.ndarray and len(key) == 4 and isinstance(key[3], bytes):
        return repr(np.frombuffer(key[3], dtype=np.dtype(key[1])).reshape(key[2]))
    if isinstance(t, type) and issubclass(t, (float, complex)):
        return key[1] if isinstance(key[1], str) else repr(key[1])
    if t in (tuple, list):
        inner = ", ".join(_show(k) for k in key[1:])
        if t is list:
            return f"[{inner}]"
        return f"({inner},)" if len(key) == 2 else f"({inner})"
    if t is frozenset and len(key) == 2:
        return "frozenset({" + ", ".join(sorted(_show(k) for k in key[1])) + "})"
    if isinstance(t, type) and len(key) == 2 and _kind(t) == _TAGGED:
        return repr(key[1])
    return f"a {key[1].__name__ if t == _OTHER else getattr(t, '__name__', '?')}"


def _show_attribute(entry: Any) -> str:
    """An attribute's ``(type, key)`` from :func:`attributes_key` in words (None: not set)."""
    if entry is None:
        return "unset"
    t, key = entry
    if t is float:
        return key if isinstance(key, str) else repr(key)
    if t in _SIMPLE:
        return repr(key)
    if _kind(t) == _ID:
        return f"a {t.__name__}"
    return _show(key)


def describe_change(before: Any, after: Any) -> str:
    """How a guarded value changed, in words: ``2.0 -> 7.0``, ``another Tensor``; for the attributes of
    an object (:class:`ObjectSlot`), each attribute that changed."""
    if before != _MISSING and after != _MISSING and before[:1] not in (("value",), ("object",), ("other",)):
        old = {name: (t, key) for name, t, key in before}
        new = {name: (t, key) for name, t, key in after}
        changed = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))

        def change(name: str) -> str:
            a, b = old.get(name), new.get(name)
            if a is not None and b is not None and a[0] is b[0] and _kind(a[0]) == _ID:
                return f"{name} now holds another {a[0].__name__}"
            return f"{name}: {_show_attribute(a)} -> {_show_attribute(b)}"

        return "; ".join(change(name) for name in changed) or "changed"

    def show(sig: Any) -> str:
        if sig == _MISSING:
            return "unbound"
        return _show(sig[2]) if sig[0] == "value" else f"a {sig[1]}"

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


_SELF_NAMES: dict[tuple[types.CodeType, str], tuple[frozenset, frozenset]] = {}


def _self_names(code: types.CodeType, me: str) -> tuple[frozenset, frozenset]:
    """(attributes loaded from, attributes assigned to) the variable `me` (a method's ``self``) by
    `code` and the functions and comprehensions defined in it: ``self.scale`` and ``self.n += 1`` read,
    ``self.n = ...`` and ``self.n += 1`` assign."""
    found = _SELF_NAMES.get((code, me))
    if found is None:
        loads: set = set()
        stores: set = set()
        on_self = False  # the value on top of the stack is `me` (or a copy of it)
        swapped = False  # an augmented assignment is storing into an attribute
        for ins in dis.get_instructions(code):
            op = ins.opname
            if op in ("LOAD_ATTR", "LOAD_METHOD") and on_self:
                loads.add(ins.argval)
            elif op in ("STORE_ATTR", "DELETE_ATTR") and (on_self or (swapped and ins.argval in loads)):
                stores.add(ins.argval)
            on_self = (op.startswith(("LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE")) and ins.argval == me) or (
                op == "COPY" and on_self)
            swapped = op == "SWAP"
        for inner in code.co_consts:
            if isinstance(inner, types.CodeType) and me in inner.co_freevars:
                more = _self_names(inner, me)
                loads.update(more[0])
                stores.update(more[1])
        if len(_SELF_NAMES) > 4096:
            _SELF_NAMES.clear()
        found = _SELF_NAMES[(code, me)] = (frozenset(loads), frozenset(stores))
    return found


def _read_attributes(fn: types.MethodType) -> tuple[str, ...]:
    """The attributes of ``fn.__self__`` that the method reads and does not assign (see
    :func:`_self_names`), following the methods and properties of the object it uses
    (``self.helper(x)``) a few levels deep."""
    obj = fn.__self__
    loads: set = set()
    stores: set = set()
    methods: set = set()
    todo, seen = [fn.__func__], set()
    while todo and len(seen) < 16:
        f = todo.pop()
        code = getattr(f, "__code__", None)
        if not isinstance(code, types.CodeType) or code in seen or not code.co_varnames:
            continue
        seen.add(code)
        more = _self_names(code, code.co_varnames[0])
        loads.update(more[0])
        stores.update(more[1])
        for name in more[0]:
            method = getattr(type(obj), name, None)
            if isinstance(method, property):
                method = method.fget
            if isinstance(method, types.FunctionType):
                todo.append(method)
                methods.add(name)
    return tuple(sorted(loads - stores - methods))


class ObjectSlot:
    """The attributes that a compiled bound method reads from the object it belongs to
    (``ember.jit(obj.method)``, where `obj` has no ``_jit_signature`` of its own), keyed as a module's
    settings are (see :func:`attributes_key`). Attributes the method assigns (a step counter) do not
    count, as for global variables: a compiled run executes no Python."""

    __slots__ = ("obj", "names")

    def __init__(self, obj: Any, names: tuple[str, ...]) -> None:
        self.obj = obj
        self.names = names

    def _jit_signature(self) -> Any:
        attrs = vars(self.obj)
        return attributes_key({name: attrs[name] for name in self.names if name in attrs})

    def describe(self) -> str:
        return (f"an attribute ({', '.join(self.names)}) of the {type(self.obj).__name__} object the "
                "compiled method is bound to")


def bound_slots(fn: Any, cache: dict) -> list[Any]:
    """What the object a compiled bound method belongs to contributes to the cache key: the object itself
    when it has a ``_jit_signature`` (``ember.jit(model.forward)`` depends on the module's settings as
    ``ember.jit(model)`` does), else an :class:`ObjectSlot` on the attributes the method reads (reused
    from `cache`). ``functools.partial`` wrappers are looked through. Empty for anything but a bound
    method.

    Taken before the function is traced, the signature is the one the traced code started from, also
    where the traced code changes the object: the next call, which finds the changed value, traces
    again instead of reusing a graph traced for the old one."""
    for _ in range(4):
        inner = getattr(fn, "func", None)
        if not isinstance(fn, functools.partial) or inner is None:
            break
        fn = inner
    if not isinstance(fn, types.MethodType):
        return []
    obj = fn.__self__
    if isinstance(obj, (type, types.ModuleType)):
        return []
    if hasattr(type(obj), "_jit_signature"):
        return [obj]
    if not isinstance(getattr(obj, "__dict__", None), dict):
        return []
    key = ("self", id(obj), fn.__func__)
    slot = cache.get(key)
    if slot is None:
        names = _read_attributes(fn)
        if not names:
            return []
        slot = cache[key] = ObjectSlot(obj, names)
    return [slot]


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
        for f, name, cell, value in _cells(fn):
            if name not in cells_written and _tracked(value):
                out.append(cache.setdefault(id(cell), CellSlot(cell, name, f.__qualname__)))
        return out + bound_slots(fn, cache)


def _cells(fn: Any) -> Iterator[tuple[Any, str, Any, Any]]:
    """(function, name, cell, value) of every filled closure cell of `fn` and of the functions its
    closure holds."""
    for f in _functions(fn):
        for name, cell in zip(f.__code__.co_freevars, f.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            yield f, name, cell, value


_SCAN_LIMIT = 10_000  # values a leak scan looks at, in all
_SCAN_DEPTH = 6  # levels of containers and attributes it opens below each root
_NOT_SCANNED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                functools.partial, Tensor)


class _Scan:
    """A bounded search of containers and plain objects for a value `is_ours` accepts."""

    def __init__(self, is_ours: Callable[[Any], bool], skip: Container = ()) -> None:
        self.is_ours = is_ours
        self.skip = skip  # (id of a dict, key) entries not looked at
        self.left = _SCAN_LIMIT
        self.seen: set[int] = set()

    def find(self, v: Any, path: str, depth: int) -> str | None:
        """The path (from `path`) to a value held by `v` that `is_ours` accepts, looking `depth` levels
        into containers (dicts, lists, tuples, sets) and objects' ``__dict__``, level by level (a value
        near `v` is found before the budget goes to a deep branch)."""
        # (objects to open, each with the path of its holder, the accessor format and its key)
        frontier: list[tuple[Any, str, str, Any]] = [(v, path, "{}", "")]
        for _ in range(depth):
            below: list[tuple[Any, str, str, Any]] = []
            for obj, holder, accessor, name in frontier:
                if self.left <= 0:
                    return None
                if id(obj) in self.seen or isinstance(obj, _NOT_SCANNED):
                    continue
                self.seen.add(id(obj))
                if isinstance(obj, dict):
                    items: Any = obj.items()
                    if self.skip:
                        items = [(k, x) for k, x in items if (id(obj), k) not in self.skip]
                    at = "[{!r}]"
                elif isinstance(obj, (list, tuple)):
                    items = enumerate(obj)
                    at = "[{}]"
                elif isinstance(obj, (set, frozenset)):
                    items = ((None, x) for x in obj)
                    at = " (an element)"
                else:
                    attrs = getattr(obj, "__dict__", None)
                    if not isinstance(attrs, dict):
                        continue
                    items = attrs.items()
                    at = ".{}"
                where = holder + accessor.format(name)
                for key, x in itertools.islice(items, max(self.left, 0)):
                    self.left -= 1
                    if self.is_ours(x):
                        return where + at.format(key)
                    if not isinstance(x, (int, float, str, bytes, type(None))):
                        below.append((x, where, at, key))
            frontier = below
        return None


def leaked_tracers(fn: Callable, args: tuple, kwargs: dict, is_ours: Callable[[Any], bool],
                   reads: Reads | None = None, skip: Container = ()) -> str | None:
    """Where a traced function left a value of its trace (`is_ours`) in Python state that outlives the
    trace, or None: an entry of a dict, list or set, or an attribute of a plain object, held by a global
    variable the traced code reads (``RESULTS["y"] = y``, ``LOG.append(y)``, ``STATE.v = y``), by a
    closure variable of the compiled function or the functions its closure holds, by the compiled
    object (a module: ``self.history.append(y)``) or the object a compiled bound method belongs to, or
    by an argument that is a plain object (``obj.v = y``; a list or
    dict argument changed is refused otherwise). A compiled run executes no Python, so such a value would
    exist only inside the graph and later calls would not update it.

    The search looks ``_SCAN_DEPTH`` levels deep (``RESULTS["y"]`` is one level into ``RESULTS``,
    ``STATE.log.items[0]`` three into ``STATE``), level by level, at most ``_SCAN_LIMIT`` values; a
    global or closure variable rebound to a traced value is for the caller to check. `reads` is the
    trace's :class:`Reads` (the user code it ran); without it, the code of `fn` and what it calls by
    global name. `skip` holds ``(id(dict), key)`` entries the trace itself keeps (optimiser state
    entries assigned during the trace, which the run assigns for real)."""
    scan = _Scan(is_ours, skip)
    codes = (reads if reads is not None else Reads(None))._codes(fn)
    namespaces: dict[int, tuple[dict, set]] = {}
    for code, namespace in codes.items():
        namespaces.setdefault(id(namespace), (namespace, set()))[1].update(_names(code)[0])
    for namespace, names in namespaces.values():
        for name in sorted(names):
            v = namespace.get(name, _MISSING)
            if v is not _MISSING and not is_ours(v):
                found = scan.find(v, name, _SCAN_DEPTH)
                if found is not None:
                    return f"global {type(v).__name__} {found}"
    for f, name, _, v in _cells(fn):
        if not is_ours(v):
            found = scan.find(v, name, _SCAN_DEPTH)
            if found is not None:
                return f"closure variable ({type(v).__name__}) {found} of {f.__qualname__}"
    owner = getattr(fn, "__self__", None) if isinstance(fn, types.MethodType) else fn
    if not isinstance(owner, _NOT_SCANNED):  # a compiled callable object (a module), or a method's object
        found = scan.find(owner, "self", _SCAN_DEPTH)
        if found is not None:
            what = "the compiled method is bound to" if owner is not fn else "compiled"
            return f"{found} ({type(owner).__name__} {what})"
    for path, v in _argument_objects((args, kwargs), "", 0):
        found = scan.find(v, path, _SCAN_DEPTH)
        if found is not None:
            return f"argument {found}"
    return None


def _argument_objects(v: Any, path: str, depth: int) -> Iterator[tuple[str, Any]]:
    """The objects among the arguments ``(args, kwargs)`` other than tensors, numbers, strings and the
    lists, tuples and dicts holding them, with their paths (``args[0]``, ``kwargs['opts']``). The
    containers themselves are not searched: they hold the traced arguments, and a change to one is
    refused otherwise."""
    if depth > 6:
        return
    if isinstance(v, dict):
        items: Any = v.items()
        at = "[{!r}]"
    elif isinstance(v, (list, tuple)):
        items = enumerate(v)
        at = "[{}]"
    else:
        if not isinstance(v, (Tensor, int, float, complex, str, bytes, type(None))):
            yield path, v
        return
    for key, x in items:
        where = ("args" if key == 0 else "kwargs") if depth == 0 else path + at.format(key)
        yield from _argument_objects(x, where, depth + 1)
