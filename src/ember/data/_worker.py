"""What runs inside a DataLoader worker process, and the messages it exchanges with the main process.

Protocol: the main process puts ``(task_index, indices)`` on a worker's own index queue; the worker
fetches and collates the samples and puts ``(task_index, payload)`` on the shared result queue.
``None`` on the index queue means "exit"; a :class:`ResumeIteration` starts a new epoch in a
persistent worker, which answers with the same marker. Ember tensors travel as NumPy arrays
(:class:`TensorPayload`) and are wrapped again in the main process.
"""
from __future__ import annotations

import collections.abc as abc
import os
import queue
import random
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._core.creation import from_numpy
from .._core.random import manual_seed
from .._core.tensor import Tensor

__all__ = ["WorkerInfo", "get_worker_info"]

STATUS_CHECK_INTERVAL = 1.0  # seconds between a waiting process's checks on its peer

_worker_info: "WorkerInfo | None" = None


@dataclass(frozen=True)
class WorkerInfo:
    """Facts about the worker process this code runs in (see :func:`get_worker_info`).

    Attributes:
        id: this worker's index in ``0 .. num_workers - 1``.
        num_workers: how many workers the loader runs.
        seed: the seed of this worker's generators: the loader's base seed plus ``id``.
        dataset: this worker's copy of the dataset.
    """

    id: int
    num_workers: int
    seed: int
    dataset: Any


def get_worker_info() -> WorkerInfo | None:
    """Inside a DataLoader worker, its :class:`WorkerInfo`; in the main process, ``None``.

    Use it in an :class:`~ember.data.IterableDataset`'s ``__iter__`` to give each worker its own
    shard, or in a ``worker_init_fn`` to configure each worker's copy of the dataset.

    Example:
        >>> get_worker_info() is None  # the main process
        True
    """
    return _worker_info


@dataclass(frozen=True)
class ResumeIteration:
    """Start a new epoch (sent to persistent workers, echoed back as the acknowledgement)."""


@dataclass(frozen=True)
class IterableStop:
    """Sent by a worker whose copy of an iterable dataset is exhausted."""

    worker_id: int


@dataclass(frozen=True)
class ExceptionWrapper:
    """An exception caught in a worker: its class name, text and formatted traceback."""

    worker_id: int
    exc_type: str
    message: str
    traceback: str

    @classmethod
    def capture(cls, worker_id: int) -> "ExceptionWrapper":
        exc_type, exc, _ = sys.exc_info()
        return cls(worker_id, exc_type.__name__ if exc_type else "Exception", str(exc),
                   "".join(traceback.format_exception(exc)))


class TensorPayload:
    """An ember tensor on its way between processes: just its NumPy array."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __reduce__(self):
        return TensorPayload, (self.array,)


def _map_tree(fn: Callable[[Any], Any], data: Any) -> Any:
    """Apply `fn` to the leaves of nested dicts/lists/tuples, keeping the container types."""
    if isinstance(data, (Tensor, TensorPayload)):
        return fn(data)
    if isinstance(data, abc.Mapping):
        out = {k: _map_tree(fn, v) for k, v in data.items()}
        try:
            return type(data)(out)
        except TypeError:
            return out
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(_map_tree(fn, d) for d in data))
    if isinstance(data, (tuple, list)):
        items = [_map_tree(fn, d) for d in data]
        return type(data)(items) if type(data) in (tuple, list) else items
    return data


def to_wire(data: Any) -> Any:
    """Replace ember tensors by :class:`TensorPayload` (NumPy arrays) before pickling."""
    return _map_tree(lambda t: TensorPayload(t.numpy()) if isinstance(t, Tensor) else t, data)


def from_wire(data: Any) -> Any:
    """Wrap the :class:`TensorPayload` leaves of a received batch as ember tensors."""
    return _map_tree(lambda t: from_numpy(t.array) if isinstance(t, TensorPayload) else t, data)


def seed_worker(seed: int, worker_id: int, base_seed: int) -> None:
    """Seed Python's, ember's and NumPy's global generators of a worker."""
    random.seed(seed)
    manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))


class MapFetcher:
    """Fetches the samples at a list of indices (or one index when batching is off)."""

    def __init__(self, dataset: Any, auto_collation: bool, collate_fn: Callable, drop_last: bool):
        self.dataset, self.auto_collation, self.collate_fn = dataset, auto_collation, collate_fn

    def fetch(self, index: Any) -> Any:
        if not self.auto_collation:
            return self.collate_fn(self.dataset[index])
        getitems = getattr(self.dataset, "__getitems__", None)
        data = getitems(index) if getitems is not None else [self.dataset[i] for i in index]
        return self.collate_fn(data)


class IterableFetcher:
    """Pulls the next samples of an iterable dataset; raises StopIteration at its end."""

    def __init__(self, dataset: Any, auto_collation: bool, collate_fn: Callable, drop_last: bool):
        self.iterator = iter(dataset)
        self.auto_collation, self.collate_fn, self.drop_last = auto_collation, collate_fn, drop_last
        self.ended = False

    def fetch(self, index: Any) -> Any:
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.iterator))
        data = []
        for _ in index:
            try:
                data.append(next(self.iterator))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(index)):
            raise StopIteration
        return self.collate_fn(data)


@dataclass
class WorkerConfig:
    """Everything a worker needs, passed once when the process starts."""

    iterable: bool
    dataset: Any
    auto_collation: bool
    collate_fn: Callable
    drop_last: bool
    base_seed: int
    init_fn: Callable[[int], None] | None
    worker_id: int
    num_workers: int


def _make_fetcher(cfg: WorkerConfig) -> MapFetcher | IterableFetcher:
    kind = IterableFetcher if cfg.iterable else MapFetcher
    return kind(cfg.dataset, cfg.auto_collation, cfg.collate_fn, cfg.drop_last)


def _start(cfg: WorkerConfig) -> tuple[Any, ExceptionWrapper | None]:
    """Seed the worker, run the user's init function and build the fetcher."""
    global _worker_info
    seed = cfg.base_seed + cfg.worker_id
    seed_worker(seed, cfg.worker_id, cfg.base_seed)
    _worker_info = WorkerInfo(cfg.worker_id, cfg.num_workers, seed, cfg.dataset)
    try:
        if cfg.init_fn is not None:
            cfg.init_fn(cfg.worker_id)
        return _make_fetcher(cfg), None
    except Exception:
        return None, ExceptionWrapper.capture(cfg.worker_id)


def _fetch(fetcher: Any, index: Any, cfg: WorkerConfig) -> Any:
    try:
        return to_wire(fetcher.fetch(index))
    except StopIteration:
        if cfg.iterable:
            return IterableStop(cfg.worker_id)
        return ExceptionWrapper.capture(cfg.worker_id)
    except Exception:
        return ExceptionWrapper.capture(cfg.worker_id)


def _restart(fetcher: Any, failure: Any, cfg: WorkerConfig) -> tuple[Any, ExceptionWrapper | None]:
    """The fetcher for a new epoch: a new iterator over an iterable dataset."""
    if failure is not None or not cfg.iterable:
        return fetcher, failure
    try:
        return _make_fetcher(cfg), None
    except Exception:
        return None, ExceptionWrapper.capture(cfg.worker_id)


def worker_loop(cfg: WorkerConfig, index_queue: Any, result_queue: Any, done_event: Any) -> None:
    """The body of a worker process: serve fetch requests until told to exit or orphaned."""
    parent = os.getppid()
    try:
        fetcher, failure = _start(cfg)
        ended = False
        while True:
            try:
                request = index_queue.get(timeout=STATUS_CHECK_INTERVAL)
            except queue.Empty:
                if os.getppid() != parent:  # the main process died: nobody will read our results
                    break
                continue
            if request is None:
                break
            if isinstance(request, ResumeIteration):
                result_queue.put((request, None))
                fetcher, failure = _restart(fetcher, failure, cfg)
                ended = False
                continue
            if done_event.is_set() or ended:
                continue
            task, index = request
            if failure is not None:
                data, failure = failure, None
            else:
                data = _fetch(fetcher, index, cfg)
                ended = isinstance(data, IterableStop)
            result_queue.put((task, data))
    except KeyboardInterrupt:
        pass
    if done_event.is_set():  # the main process stops reading: do not wait to flush unread results
        result_queue.cancel_join_thread()
        result_queue.close()
