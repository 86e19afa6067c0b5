"""Low-level file handling shared by the savers: the error class, atomic writes, reading safetensors.

Every format in :mod:`ember.io` is a safetensors file (an 8-byte header length, a JSON header, raw
little-endian tensor bytes), written and read with the ``safetensors`` package's NumPy API. Writes to a
path are atomic: the bytes go to a temporary file in the same directory, which is flushed, synced to
disk and then renamed over the target, so a crash mid-write leaves the previous file intact.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from typing import IO, Any, Union

import numpy as np
import safetensors
import safetensors.numpy as st_numpy

from .._core.errors import EmberError

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]

# the NumPy dtypes (by name) that safetensors stores natively
SAFETENSORS_DTYPES = frozenset({"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64",
                                "int64", "float16", "bfloat16", "float32", "float64", "complex64"})

_CHUNK = 16 << 20  # bytes per write() call: keeps each system call bounded for very large files


class SerializationError(EmberError, ValueError):
    """A file that cannot be written or read: corrupt or truncated data, a foreign format, a missing
    entry, or an object that the safe format cannot represent. The message names the file."""


def is_path(target: Any) -> bool:
    """True for a filesystem path (str or os.PathLike), False for a file object."""
    return isinstance(target, (str, os.PathLike))


def target_name(target: Any) -> str:
    """The file's name for messages: the path, or a file object's ``name`` attribute."""
    if is_path(target):
        return os.fspath(target)
    return str(getattr(target, "name", f"<{type(target).__name__}>"))


def c_contiguous(arr: np.ndarray) -> np.ndarray:
    """`arr` itself if it is C-contiguous, else a C-contiguous copy (0-d arrays stay 0-d, unlike
    ``np.ascontiguousarray``)."""
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _write_payload(f: IO[bytes], data: bytes) -> None:
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        f.write(view[start:start + _CHUNK])


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; not every platform can open a directory (Windows cannot).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically: temporary file in the same directory, flush, fsync, rename.

    A failure at any point removes the temporary file and leaves an existing file at `path` untouched.

    Args:
        path: the destination.
        data: the complete file contents.

    Example:
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     atomic_write(os.path.join(d, "a.bin"), b"abc")
        ...     open(os.path.join(d, "a.bin"), "rb").read()
        b'abc'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_payload(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def write_safetensors(target: PathOrFile, arrays: dict[str, np.ndarray], metadata: dict[str, str] | None,
                      op: str) -> None:
    """Serialise `arrays` with safetensors and write them to a path (atomically) or a file object."""
    try:
        data = st_numpy.save(arrays, metadata=metadata)
    except (safetensors.SafetensorError, ValueError, TypeError) as err:
        raise SerializationError(op, f"{target_name(target)}: cannot serialise: {err}") from None
    if is_path(target):
        atomic_write(target, data)
    elif hasattr(target, "write"):
        _write_payload(target, data)
    else:
        raise SerializationError(op, f"expected a path or a binary file object, got {type(target).__name__}")


def _sniff(path: str) -> str:
    """A hint at what a file that is not safetensors actually is."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return ""
    if head.startswith(b"PK\x03\x04"):
        return " (it is a zip archive, e.g. a torch.save file: Ember never loads pickles; convert it to " \
               "safetensors with safetensors.torch.save_file)"
    if head[:1] == b"\x80":
        return " (it looks like a Python pickle, which Ember never loads)"
    if len(head) < 8:
        return f" (the file has only {len(head)} bytes)"
    return ""


def _read_path(path: str, op: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory")
    try:
        with safetensors.safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
            arrays = {key: f.get_tensor(key) for key in f.keys()}
    except FileNotFoundError:
        raise
    except (safetensors.SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        raise SerializationError(op, f"{path}: not a valid safetensors file: {err}{_sniff(path)}") from None
    return metadata, arrays


def read_safetensors(source: PathOrFile, op: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Read every array and the metadata of a safetensors file given by path or binary file object.

    Arrays come back writable and with their stored dtype (bfloat16 as ``ml_dtypes.bfloat16``).
    Missing files raise FileNotFoundError; anything unreadable raises :class:`SerializationError`.
    """
    if is_path(source):
        metadata, arrays = _read_path(os.fspath(source), op)
    elif hasattr(source, "read"):
        # safe_open reads paths only (and safetensors.numpy.load cannot map bfloat16), so a file object
        # is spooled to a private temporary file and read by the same path reader.
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = os.path.join(tmp_dir, "spool.safetensors")
            with open(tmp, "wb") as f:
                f.write(source.read())
            try:
                metadata, arrays = _read_path(tmp, op)
            except SerializationError as err:
                detail = err.detail.replace(tmp, target_name(source))
                raise SerializationError(op, detail) from None
    else:
        raise SerializationError(op, f"expected a path or a binary file object, got {type(source).__name__}")
    for key, arr in arrays.items():
        if not arr.flags.writeable:
            arrays[key] = arr.copy()
    return metadata, arrays
