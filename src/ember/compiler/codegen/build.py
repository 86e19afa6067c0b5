"""Compile C sources into shared libraries, cached on disk by the SHA-256 of source and flags.

The compiler is ``$CC`` (default ``cc``), run once per process with a probe to learn which of
``-march=native`` and ``-fopenmp`` it accepts. Libraries live in ``$EMBER_CACHE_DIR`` (default
``~/.cache/ember/kernels``) as ``<sha256>.so``; a build writes to a temporary file in that directory and
renames it into place, so concurrent processes never see a partial library. ``-ffp-contract=off``
keeps ``a * b + c`` as two roundings, like NumPy's separate kernels.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np

BASE_FLAGS = ("-O3", "-shared", "-fPIC", "-ffp-contract=off")
OPTIONAL_FLAGS = ("-march=native", "-fopenmp")

STATS = {"builds": 0, "disk_hits": 0, "memory_hits": 0}
_FLAGS: dict[str, tuple[str, ...]] = {}  # compiler -> flags it accepts
_LOADED: dict[str, ctypes.CDLL] = {}  # library path -> loaded library


# OpenMP threads of generated kernels must not spin long between kernels: spinning threads take the
# cores from the BLAS threads of the next matmul (the GPT training step measured 1.7x slower on 2 cores
# with libgomp's default of 300,000 spins, 2.7x with OMP_WAIT_POLICY=ACTIVE). A short spin (10,000) is as good
# for Ember as passive waiting and, unlike passive waiting, leaves PyTorch's speed alone when both share
# one libgomp in a process (PyTorch's GPT step: 307-345 ms vs 317-318 ms with the defaults). libgomp
# reads it when it loads (with the first kernel library, or earlier with another library that uses it);
# an explicit setting by the user wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

# The data pointer of a NumPy array, for kernel calls. ``a.ctypes.data`` builds a ctypes helper object
# on every access (about 1 µs, several per kernel call); NumPy's C API reads the pointer as the first
# field after the object header (``PyArray_DATA``: ``PyArrayObject_fields.data``), which ctypes can read
# in 0.15 µs. A probe at import checks the layout against ``.ctypes.data`` and keeps the slow path where
# it differs (another Python implementation or object header).
_HEAD = object.__basicsize__
_from_address = ctypes.c_void_p.from_address


def _probe_layout() -> bool:
    try:
        probe = np.arange(8.0)[3:]
        return _from_address(id(probe) + _HEAD).value == probe.ctypes.data
    except Exception:  # noqa: BLE001 (any failure: use the documented path)
        return False


_FAST_POINTERS = _probe_layout()


def data_pointer(a) -> int:
    """The address of the first element of NumPy array `a` (as ``a.ctypes.data``, faster)."""
    if _FAST_POINTERS and isinstance(a, np.ndarray):
        return _from_address(id(a) + _HEAD).value or 0
    return a.ctypes.data


class CompilerUnavailable(RuntimeError):
    """No working C compiler (``$CC`` missing or failing)."""


def compiler() -> str:
    """The C compiler command: ``$CC`` or ``cc``."""
    return os.environ.get("CC") or "cc"


def cache_dir() -> Path:
    """Where built kernels are kept: ``$EMBER_CACHE_DIR`` or ``~/.cache/ember/kernels``."""
    root = os.environ.get("EMBER_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "ember" / "kernels"


def clear_memory_cache() -> None:
    """Forget probed compiler flags and loaded libraries (the disk cache stays), and zero STATS."""
    _FLAGS.clear()
    _LOADED.clear()
    for key in STATS:
        STATS[key] = 0


def flags(cc: str | None = None) -> tuple[str, ...]:
    """The flags used with compiler `cc`: the base flags plus each optional flag it accepts."""
    cc = cc or compiler()
    if cc not in _FLAGS:
        if shutil.which(cc) is None:
            raise CompilerUnavailable(f"C compiler {cc!r} not found")
        probe = "#include <math.h>\nint f(double *x) {\n#pragma omp parallel for\n" \
                "  for (int i = 0; i < 4; i++) x[i] = exp(x[i]);\n  return 0;\n}\n"
        chosen: tuple[str, ...] = BASE_FLAGS
        if not _compiles(cc, probe, BASE_FLAGS):
            raise CompilerUnavailable(f"C compiler {cc!r} cannot build a shared library")
        for flag in OPTIONAL_FLAGS:
            if _compiles(cc, probe, chosen + (flag,)):
                chosen += (flag,)
        _FLAGS[cc] = chosen
    return _FLAGS[cc]


def compiler_available() -> bool:
    """True if the configured C compiler builds shared libraries (probed once per compiler)."""
    try:
        flags()
    except CompilerUnavailable:
        return False
    return True


def try_build(source: str) -> ctypes.CDLL | None:
    """:func:`build`, or None when no working C compiler is available (callers keep a NumPy path)."""
    if not compiler_available():
        return None
    try:
        return build(source)
    except CompilerUnavailable:
        return None


def try_build_typed(source: str, names: list[str], argtypes: list,
                    restype=ctypes.c_int) -> ctypes.CDLL | None:
    """:func:`try_build`, with the functions `names` given `argtypes` and `restype` (None: no compiler)."""
    lib = try_build(source)
    if lib is not None:
        for name in names:
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = restype
    return lib


def _compiles(cc: str, source: str, flag_set: tuple[str, ...]) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(source)
        result = subprocess.run([cc, *flag_set, str(src), "-o", str(Path(tmp) / "probe.so"), "-lm"],
                                capture_output=True)
        return result.returncode == 0


def library_path(source: str, cc: str | None = None) -> Path:
    """The cache path of the library built from `source` with the current compiler and flags."""
    cc = cc or compiler()
    key = hashlib.sha256("\n".join([source, cc, *flags(cc)]).encode()).hexdigest()
    return cache_dir() / f"{key}.so"


def build(source: str) -> ctypes.CDLL:
    """The loaded library of `source`: from memory, from the disk cache, or compiled now.

    Raises:
        CompilerUnavailable: when there is no working compiler or the source does not compile.
    """
    cc = compiler()
    path = library_path(source, cc)
    key = str(path)
    if key in _LOADED:
        STATS["memory_hits"] += 1
        return _LOADED[key]
    if path.exists():
        STATS["disk_hits"] += 1
    else:
        _compile(cc, source, path)
        STATS["builds"] += 1
    _LOADED[key] = ctypes.CDLL(key)
    return _LOADED[key]


def prebuild(sources: Iterable[str], workers: int | None = None) -> int:
    """Compile side by side, into the disk cache, those of `sources` that are not there yet; returns how
    many were compiled. The libraries are loaded later, by :func:`build` when first used. A source that
    fails to compile is left for :func:`build` to report when it is used.

    A compiled graph needs all its fused kernels before its first run; one compiler process per core
    took the cold compile of the GPT benchmark step from 6.9 s to 5.6-5.9 s on two cores (the shared
    libraries it also needs are built on first use)."""
    if not compiler_available():
        return 0
    cc = compiler()
    flags(cc)  # (probed once, before the threads)
    todo = {}
    for source in sources:
        path = library_path(source, cc)
        if str(path) not in _LOADED and not path.exists():
            todo[str(path)] = (source, path)
    if len(todo) < 2:  # one library: build() compiles it when it is first used, at no loss
        return 0

    def attempt(item: tuple[str, Path]) -> bool:
        try:
            _compile(cc, *item)
            return True
        except (CompilerUnavailable, OSError):
            return False

    count = min(len(todo), workers or os.cpu_count() or 1)
    with ThreadPoolExecutor(count) as pool:
        done = sum(pool.map(attempt, todo.values()))
    STATS["builds"] += done
    return done


def _compile(cc: str, source: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_lib = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    src = Path(tmp_lib).with_suffix(".c")
    try:
        src.write_text(source)
        result = subprocess.run([cc, *flags(cc), str(src), "-o", tmp_lib, "-lm"], capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise CompilerUnavailable(f"{cc} failed on a generated kernel:\n{result.stderr[-2000:]}")
        os.replace(tmp_lib, path)
        # the source next to the library, for reading what was generated
        src_final = path.with_suffix(".c")
        os.replace(src, src_final)
    finally:
        for leftover in (tmp_lib, str(src)):
            if os.path.exists(leftover):
                os.unlink(leftover)
