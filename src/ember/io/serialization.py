"""``ember.save`` / ``ember.load``: tensors and nested containers in a safe, self-describing file.

The file is an ordinary safetensors file. Its tensors are the *storages* (the bytes of the saved tensors),
and its metadata holds a JSON description of the saved object: the containers, the plain values and, for
every tensor, which storage it reads, at which byte offset, with which shape, strides, dtype, device,
``requires_grad`` and whether it is an ``nn.Parameter``. Loading parses JSON and copies bytes; it never
imports or calls anything named by the file, so loading an untrusted file cannot run code.

Tensors whose memory overlaps (the same tensor twice, a tensor and its views, a parameter and its
``detach()``) share one storage and come back sharing memory; the same tensor object saved twice comes
back as one object. A CRC-32 of every storage and of the description detects corrupt files.
"""
from __future__ import annotations

import base64
import collections
import json
import keyword
import zlib
from typing import Any, Callable

import numpy as np

from .._core import dtypes
from .._core.device import Device, as_device
from .._core.errors import DeviceError, EmberError
from .._core.tensor import Tensor, Tracer, VersionCounter
from ..nn.parameter import Parameter
from ._files import (
    SAFETENSORS_DTYPES,
    PathOrFile,
    SerializationError,
    c_contiguous,
    read_safetensors,
    target_name,
    write_safetensors,
)

__all__ = ["save", "load"]

FORMAT = "ember"
VERSION = "1"

_NATIVE = SAFETENSORS_DTYPES  # other dtypes (complex128) are stored as raw bytes
# every dtype a saved array may have (the load side accepts nothing else: no object or string arrays)
_NP_DTYPES = {name: np.dtype(name) for name in _NATIVE | {"complex128"}}
_EMBER_DTYPES = {d.name: d for d in dtypes.ALL}

_byte_bounds = getattr(np, "byte_bounds", None) or np.lib.array_utils.byte_bounds


def _bytes_of(arr: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous array as a flat uint8 view (0-d arrays included)."""
    return arr.reshape(-1).view(np.uint8)


# -- saving ------------------------------------------------------------------------------------------------
class _Encoder:
    """Turns an object tree into a JSON-able description plus the arrays it refers to."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entries: list[dict] = []
        self.arrays: list[np.ndarray] = []
        self.paths: list[tuple] = []
        self.index: dict[int, int] = {}  # id(tensor or ndarray) -> entry number
        self.keep: list[Any] = []  # keeps indexed objects alive so that their ids stay unique
        self.active: set[int] = set()  # containers being encoded, to detect cycles

    def fail(self, path: tuple, detail: str) -> SerializationError:
        where = "obj" + "".join(f"[{p!r}]" for p in path)
        return SerializationError("save", f"{self.name}: {where}: {detail}")

    def encode(self, obj: Any, path: tuple) -> Any:
        if isinstance(obj, (Tensor, np.ndarray, np.generic)):  # first: np.float64 is also a float
            return {"ref": self.array_entry(obj, path)}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, complex):
            return {"complex": [obj.real, obj.imag]}
        if isinstance(obj, (bytes, bytearray)):
            return {"bytes": base64.b64encode(bytes(obj)).decode("ascii")}
        if isinstance(obj, dtypes.DType):
            return {"dtype": obj.name}
        if isinstance(obj, Device):
            return {"device": str(obj)}
        if isinstance(obj, (list, tuple, dict, set, frozenset)):
            return self.container(obj, path)
        raise self.fail(path, f"cannot save an object of type {type(obj).__name__}: only tensors, NumPy "
                        "arrays, dicts, lists, tuples, sets, None, bool, int, float, complex, str and bytes "
                        "are supported")

    def container(self, obj: Any, path: tuple) -> dict:
        if id(obj) in self.active:
            raise self.fail(path, f"the {type(obj).__name__} contains itself")
        self.active.add(id(obj))
        try:
            if isinstance(obj, dict):
                tag = "odict" if isinstance(obj, collections.OrderedDict) else (
                    "counter" if isinstance(obj, collections.Counter) else "dict")
                return {tag: [[self.encode(k, path + (k,)), self.encode(v, path + (k,))]
                              for k, v in obj.items()]}
            items = [self.encode(v, path + (i,)) for i, v in enumerate(obj)]
            if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):
                return {"namedtuple": type(obj).__name__, "fields": list(type(obj)._fields), "items": items}
            tag = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
            return {next(v for k, v in tag.items() if isinstance(obj, k)): items}
        finally:
            self.active.discard(id(obj))

    def array_entry(self, obj: Any, path: tuple) -> int:
        if id(obj) in self.index:
            return self.index[id(obj)]
        if isinstance(obj, Tracer) or (isinstance(obj, Tensor) and obj._data is None):
            raise self.fail(path, "cannot save a tensor that is being transformed (inside jit, vmap, grad…)")
        if isinstance(obj, Tensor):
            arr = obj._device.backend.to_numpy(obj._data)
            entry = {"kind": "parameter" if isinstance(obj, Parameter) else "tensor", "dtype": obj.dtype.name,
                     "requires_grad": bool(obj._requires_grad), "device": str(obj.device)}
        else:
            arr = np.asarray(obj)
            if arr.dtype.name not in _NP_DTYPES:
                raise self.fail(path, f"cannot save a NumPy array of dtype {arr.dtype}")
            entry = {"kind": "ndarray" if isinstance(obj, np.ndarray) else "scalar", "dtype": arr.dtype.name}
        entry["shape"] = list(arr.shape)
        self.index[id(obj)] = len(self.entries)
        self.keep.append(obj)
        self.entries.append(entry)
        self.arrays.append(arr)
        self.paths.append(path)
        return self.index[id(obj)]

    def storages(self) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        """Assign every entry to a storage: alone if its memory overlaps no other, else a shared byte span."""
        stores: dict[str, np.ndarray] = {}
        for group in _overlap_groups(self.arrays):
            key = _storage_key(self.paths[group[0]], stores)
            if len(group) == 1:
                stores[key] = self._place_alone(group[0], key)
            else:
                stores[key] = self._place_shared(group, key)
        info = {key: {"nbytes": int(a.nbytes), "crc32": zlib.crc32(_bytes_of(a))}
                for key, a in stores.items()}
        return stores, info

    def _place_alone(self, i: int, key: str) -> np.ndarray:
        arr = c_contiguous(self.arrays[i])
        self.entries[i].update(storage=key, offset=0, strides=None)
        return arr if arr.dtype.name in _NATIVE else _bytes_of(arr)

    def _place_shared(self, group: list[int], key: str) -> np.ndarray:
        bounds = [_byte_bounds(self.arrays[i]) for i in group]
        low = min(b[0] for b in bounds)
        span = np.zeros(max(b[1] for b in bounds) - low, np.uint8)
        for i in group:
            arr = self.arrays[i]
            offset = arr.__array_interface__["data"][0] - low
            np.ndarray(arr.shape, arr.dtype, span, offset, arr.strides)[...] = arr
            self.entries[i].update(storage=key, offset=offset, strides=list(arr.strides))
        return span


def _overlap_groups(arrays: list[np.ndarray]) -> list[list[int]]:
    """Indices of arrays grouped so that arrays whose byte ranges overlap fall in one group."""
    spans = []
    for i, arr in enumerate(arrays):
        if arr.size == 0:
            spans.append((0, 0, i))
        else:
            low, high = _byte_bounds(arr)
            spans.append((low, high, i))
    groups: list[list[int]] = []
    end = -1
    for low, high, i in sorted(spans, key=lambda s: (s[0], s[2])):
        if groups and high > low and low < end:
            groups[-1].append(i)
            end = max(end, high)
        else:
            groups.append([i])
            end = high if high > low else -1
    return [sorted(g) for g in groups]


def _storage_key(path: tuple, taken: dict) -> str:
    base = "/".join(str(p) if isinstance(p, (str, int)) else type(p).__name__ for p in path) or "root"
    key, n = base, 1
    while key in taken or key == "__metadata__":
        n += 1
        key = f"{base}#{n}"
    return key


def save(obj: Any, f: PathOrFile) -> None:
    """Save tensors and nested containers of them to a file, in a safe format (no pickle).

    Supported values: ``Tensor`` and ``nn.Parameter`` (dtype, shape, ``requires_grad`` and device are kept),
    NumPy arrays and scalars of numeric dtypes, ``dict`` (any keys of these types), ``OrderedDict``,
    ``Counter``, ``list``, ``tuple``, named tuples (restored as a named tuple with the same name and
    fields), ``set``, ``frozenset``, ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
    ``bytes``, ember dtypes and devices. Tensors that share memory are stored once and come back sharing
    memory. Gradients (``.grad``) and autograd history are not saved: a saved tensor loads as a leaf.

    Writing to a path is atomic (temporary file, fsync, rename): a crash leaves an older file intact.

    Args:
        obj: the object to save.
        f: a path, or a binary file object opened for writing.

    Raises:
        SerializationError: `obj` contains a value of another type, or contains itself.

    Example:
        >>> import ember, os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = os.path.join(d, "data.ember")
        ...     ember.save({"w": ember.ones(2), "step": 3}, path)
        ...     back = ember.load(path)
        >>> back["w"].tolist(), back["step"]
        ([1.0, 1.0], 3)
    """
    enc = _Encoder(target_name(f))
    root = enc.encode(obj, ())
    stores, info = enc.storages()
    structure = json.dumps({"root": root, "entries": enc.entries, "storages": info}, separators=(",", ":"))
    metadata = {"format": FORMAT, "version": VERSION, "structure": structure,
                "structure_crc32": str(zlib.crc32(structure.encode("utf-8")))}
    write_safetensors(f, stores, metadata, "save")


# -- loading -----------------------------------------------------------------------------------------------
class _Malformed(Exception):
    """Internal: the description does not have the expected form (reported as a SerializationError)."""


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise _Malformed(what)


class _Decoder:
    """Rebuilds the saved object from the description and the storages."""

    def __init__(self, doc: dict, stores: dict[str, np.ndarray], map_location: Any, name: str) -> None:
        self.name = name
        self.doc = doc
        self.stores = stores
        self.map_location = map_location
        self.built: dict[int, Any] = {}
        self.versions: dict[str, VersionCounter] = {}
        self.classes: dict[tuple, type] = {}

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        _require(isinstance(node, dict) and len(node) >= 1, f"unexpected value {node!r}")
        tag = next(iter(node))
        rule = _DECODERS.get(tag)
        _require(rule is not None, f"unknown tag {tag!r}")
        return rule(self, node)

    def items(self, node: dict, tag: str) -> list:
        value = node[tag]
        _require(isinstance(value, list), f"{tag} items must be a list")
        return [self.decode(v) for v in value]

    def pairs(self, node: dict, tag: str) -> list[tuple]:
        value = node[tag]
        _require(isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value),
                 f"{tag} entries must be key/value pairs")
        return [(self.decode(k), self.decode(v)) for k, v in value]

    def namedtuple(self, node: dict) -> tuple:
        name, fields = node["namedtuple"], node.get("fields")
        _require(isinstance(name, str) and isinstance(fields, list), "bad named tuple")
        # only identifiers reach namedtuple(), which builds its constructor from the field names
        _require(all(isinstance(n, str) and n.isidentifier() and not keyword.iskeyword(n)
                     for n in [name, *fields]), "bad named tuple")
        key = (name, tuple(fields))
        if key not in self.classes:
            self.classes[key] = collections.namedtuple(name, fields)  # validates the identifiers
        return self.classes[key](*self.items(node, "items"))

    def ref(self, node: dict) -> Any:
        index = node["ref"]
        _require(isinstance(index, int) and 0 <= index < len(self.doc["entries"]),
                 f"bad tensor index {index!r}")
        if index not in self.built:
            self.built[index] = self.build(self.doc["entries"][index])
        return self.built[index]

    def build(self, entry: dict) -> Any:
        arr = _view(entry, self.stores)
        kind = entry["kind"]
        if kind == "ndarray":
            return arr
        if kind == "scalar":
            return arr[()]
        _require(kind in ("tensor", "parameter"), f"unknown entry kind {kind!r}")
        dt = _EMBER_DTYPES.get(entry["dtype"])
        _require(dt is not None, f"unknown dtype {entry['dtype']!r}")
        device = _target_device(entry["device"], self.map_location, self.name)
        if device.type == "cpu":
            t = Tensor._make(arr, dt, device)
            t._vc = self.versions.setdefault(entry["storage"], VersionCounter())
        else:
            t = Tensor._make(device.backend.asarray(arr, dt), dt, device)
        requires_grad = entry["requires_grad"]
        _require(isinstance(requires_grad, bool), "requires_grad must be a bool")
        if kind == "parameter":
            return Parameter(t, requires_grad)
        return t.requires_grad_(True) if requires_grad else t


def _decode_bytes(dec: _Decoder, node: dict) -> bytes:
    return base64.b64decode(node["bytes"], validate=True)


def _decode_complex(dec: _Decoder, node: dict) -> complex:
    re, im = node["complex"]
    _require(all(isinstance(v, (int, float)) for v in (re, im)), "bad complex number")
    return complex(re, im)


def _decode_dtype(dec: _Decoder, node: dict) -> dtypes.DType:
    _require(node["dtype"] in _EMBER_DTYPES, f"unknown dtype {node['dtype']!r}")
    return _EMBER_DTYPES[node["dtype"]]


_DECODERS: dict[str, Callable[[_Decoder, dict], Any]] = {
    "list": lambda d, n: d.items(n, "list"),
    "tuple": lambda d, n: tuple(d.items(n, "tuple")),
    "set": lambda d, n: set(d.items(n, "set")),
    "frozenset": lambda d, n: frozenset(d.items(n, "frozenset")),
    "dict": lambda d, n: dict(d.pairs(n, "dict")),
    "odict": lambda d, n: collections.OrderedDict(d.pairs(n, "odict")),
    "counter": lambda d, n: collections.Counter(dict(d.pairs(n, "counter"))),
    "namedtuple": lambda d, n: d.namedtuple(n),
    "ref": lambda d, n: d.ref(n),
    "bytes": _decode_bytes,
    "complex": _decode_complex,
    "dtype": _decode_dtype,
    "device": lambda d, n: as_device(str(n["device"])),
}


def _view(entry: dict, stores: dict[str, np.ndarray]) -> np.ndarray:
    """The array an entry describes: a view into its storage's bytes, after checking it stays inside."""
    store = stores.get(entry["storage"])
    _require(store is not None, f"no storage {entry['storage']!r}")
    np_dtype = _NP_DTYPES.get(entry["dtype"])
    _require(np_dtype is not None, f"unknown dtype {entry['dtype']!r}")
    shape, offset, strides = entry["shape"], entry["offset"], entry["strides"]
    _require(isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape), "bad shape")
    _require(isinstance(offset, int) and offset >= 0, "bad offset")
    if strides is None:
        strides = _c_strides(shape, np_dtype.itemsize)
    _require(isinstance(strides, list) and len(strides) == len(shape)
             and all(isinstance(s, int) for s in strides), "bad strides")
    raw = _bytes_of(c_contiguous(store))
    if all(shape):
        low = offset + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides))
        high = offset + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides)) + np_dtype.itemsize
        _require(low >= 0 and high <= raw.size, f"tensor bytes [{low}, {high}) outside its storage of "
                 f"{raw.size} bytes")
    else:
        offset = 0
    return np.ndarray(tuple(shape), np_dtype, raw, offset, tuple(strides))


def _c_strides(shape: list[int], itemsize: int) -> list[int]:
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return strides[::-1]


def _target_device(saved: Any, map_location: Any, name: str) -> Device:
    _require(isinstance(saved, str), "bad device")
    if map_location is None:
        loc = saved
    elif isinstance(map_location, dict):
        table = {str(k): v for k, v in map_location.items()}
        loc = table.get(saved, saved)
    else:
        loc = map_location
    try:
        return as_device(loc)
    except DeviceError:
        raise SerializationError("load", f"{name}: a tensor was saved on device {saved!r}, which is not "
                                 "available here; pass map_location (e.g. map_location='cpu')") from None


def _description(metadata: dict[str, str], name: str) -> dict:
    if metadata.get("format") != FORMAT:
        raise SerializationError("load", f"{name}: not an Ember save file (the safetensors metadata has no "
                                 "'format': 'ember' entry); plain safetensors files load with "
                                 "ember.io.load_file")
    if metadata.get("version") != VERSION:
        raise SerializationError("load", f"{name}: unsupported Ember file version "
                                 f"{metadata.get('version')!r} (this Ember reads version {VERSION})")
    structure = metadata.get("structure", "")
    if str(zlib.crc32(structure.encode("utf-8"))) != metadata.get("structure_crc32"):
        raise SerializationError("load", f"{name}: the file is corrupt: the checksum of its description does "
                                 "not match")
    try:
        doc = json.loads(structure)
    except ValueError as err:
        raise SerializationError("load", f"{name}: the file is corrupt: bad description ({err})") from None
    if not (isinstance(doc, dict) and {"root", "entries", "storages"} <= doc.keys()):
        raise SerializationError("load", f"{name}: the file is corrupt: incomplete description")
    return doc


def _check_storages(doc: dict, stores: dict[str, np.ndarray], name: str) -> None:
    expected = doc["storages"]
    missing = [k for k in expected if k not in stores]
    extra = [k for k in stores if k not in expected]
    if missing or extra:
        parts = ([f"missing entries {missing}"] if missing else []) + ([f"unexpected entries {extra}"]
                                                                       if extra else [])
        raise SerializationError("load", f"{name}: the file is corrupt: " + ", ".join(parts))
    for key, info in expected.items():
        data = _bytes_of(c_contiguous(stores[key]))
        if data.size != info.get("nbytes") or zlib.crc32(data) != info.get("crc32"):
            raise SerializationError("load", f"{name}: the file is corrupt: checksum mismatch in entry "
                                     f"{key!r}")


def load(f: PathOrFile, map_location: Any = None) -> Any:
    """Load an object saved by :func:`save`.

    Nothing in the file is executed: containers, values and tensors are rebuilt from a JSON description.
    Tensors come back with their dtype, shape, ``requires_grad`` and ``nn.Parameter``-ness; tensors that
    shared memory when saved share memory again, and a tensor saved twice comes back as one object.

    Args:
        f: a path, or a binary file object opened for reading.
        map_location: where to put the tensors: None (the device each was saved on), a device or device
            name for all of them, or a dict mapping saved device names to devices.

    Returns:
        The saved object.

    Raises:
        SerializationError: the file is truncated or corrupt, is not an Ember file, or names a device that
            is not available (pass `map_location`).
        FileNotFoundError: there is no such file.

    Example:
        >>> import ember, io
        >>> buf = io.BytesIO()
        >>> w = ember.nn.Parameter(ember.zeros(3))
        >>> ember.save([w, w], buf)
        >>> _ = buf.seek(0)
        >>> a, b = ember.load(buf)
        >>> a is b, type(a).__name__
        (True, 'Parameter')
    """
    name = target_name(f)
    metadata, stores = read_safetensors(f, "load")
    doc = _description(metadata, name)
    _check_storages(doc, stores, name)
    try:
        return _Decoder(doc, stores, map_location, name).decode(doc["root"])
    except SerializationError:
        raise
    except (_Malformed, EmberError, KeyError, TypeError, ValueError, IndexError) as err:
        raise SerializationError("load", f"{name}: the file is corrupt: malformed description "
                                 f"({type(err).__name__}: {err})") from None
