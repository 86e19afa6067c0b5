"""Device objects and the registry that maps device types to backends."""
from __future__ import annotations

from ..backends import CPU, Backend
from .errors import DeviceError

_BACKENDS: dict[str, Backend] = {"cpu": CPU}


class Device:
    """A device such as ``ember.device("cpu")``: a type, an index and the backend that runs it."""

    __slots__ = ("type", "index", "backend")

    def __init__(self, type: str, index: int | None = None):
        if type not in _BACKENDS:
            raise DeviceError("device", f"unknown or unavailable device type {type!r}; "
                              f"available: {sorted(_BACKENDS)}")
        self.type = type
        self.index = index
        self.backend = _BACKENDS[type]

    def __eq__(self, other) -> bool:
        other = as_device(other) if isinstance(other, str) else other
        if not isinstance(other, Device):
            return False
        return other.type == self.type and (other.index or 0) == (self.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def register_backend(type: str, backend: Backend) -> None:
    """Make a new device type available (a new device is a new backend module and this call)."""
    _BACKENDS[type] = backend


_CACHE: dict = {}


def as_device(value) -> Device:
    """Accept a Device, "cpu", "cuda:0" or None (the default device) and return the Device."""
    if isinstance(value, Device):
        return value
    if value is None:
        return CPU_DEVICE
    dev = _CACHE.get(value)
    if dev is None:
        type_, _, idx = str(value).partition(":")
        dev = Device(type_, int(idx) if idx else None)
        _CACHE[value] = dev
    return dev


CPU_DEVICE = Device("cpu")
_CACHE["cpu"] = CPU_DEVICE
