"""DataLoader: batches from a dataset, in the main process or in worker processes.

With ``num_workers > 0`` the loader starts worker processes (the 'fork' start method where the
platform has it). Each worker owns an index queue; all share one result queue. The main process
keeps ``prefetch_factor * num_workers`` batch requests in flight, hands them to the workers in
turn, and delivers the batches in the sampler's order, holding early arrivals in a reorder buffer.
Batches cross the process boundary as NumPy arrays and become ember tensors in the main process.

Each worker seeds Python's ``random``, ember's default generator and NumPy's global generator from
``base_seed + worker_id``, where ``base_seed`` is drawn in the main process from the loader's
`generator` (or ember's default generator) once per iterator; so ``ember.manual_seed`` makes the
workers' random augmentations repeat, and different workers draw different numbers.
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import queue
from typing import Any, Callable, Generic, Iterator, TypeVar

from .._core.random import Generator
from ._worker import (
    STATUS_CHECK_INTERVAL,
    ExceptionWrapper,
    IterableFetcher,
    IterableStop,
    MapFetcher,
    ResumeIteration,
    WorkerConfig,
    from_wire,
    worker_loop,
)
from .collate import default_collate, default_convert
from .dataset import Dataset, IterableDataset
from .errors import DataError, DataLoaderError, WorkerError
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, fresh_seed

__all__ = ["DataLoader"]

T = TypeVar("T")
_JOIN_TIMEOUT = 5.0  # seconds a worker gets to exit by itself before it is terminated


class _InfiniteConstantSampler(Sampler):
    """Yields None forever: the 'indices' of an iterable dataset (each worker reads its own stream)."""

    def __iter__(self) -> Iterator[None]:
        while True:
            yield None


def _default_context() -> Any:
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)


class DataLoader(Generic[T]):
    """Iterate over a dataset in batches, optionally shuffled, optionally with worker processes.

    Args:
        dataset: a map-style :class:`Dataset` (or any object with ``__getitem__``/``__len__``) or
            an :class:`IterableDataset`.
        batch_size: samples per batch; ``None`` turns automatic batching off (one sample per step,
            NumPy arrays converted to tensors).
        shuffle: visit a map-style dataset in a new random order each epoch.
        sampler: the order of indices (excludes `shuffle`).
        batch_sampler: yields whole lists of indices (excludes batch_size, shuffle, sampler, drop_last).
        num_workers: worker processes (0 loads in the main process).
        collate_fn: merges a list of samples into a batch (default :func:`default_collate`).
        pin_memory: accepted for compatibility; ignored (pinned memory only matters for GPU copies).
        drop_last: drop the last incomplete batch.
        timeout: seconds to wait for a batch from the workers (0: wait forever).
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker after seeding.
        multiprocessing_context: a start method name or a multiprocessing context.
        generator: the ember Generator for shuffling and for the workers' base seed.
        prefetch_factor: batches requested ahead per worker (default 2 with workers).
        persistent_workers: keep the workers alive across epochs.
        pin_memory_device: accepted for compatibility; ignored.

    Example:
        >>> import ember
        >>> from ember.data import TensorDataset
        >>> loader = DataLoader(TensorDataset(ember.arange(5)), batch_size=2)
        >>> [b[0].tolist() for b in loader]
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, dataset: Dataset[T], batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | None = None, batch_sampler: Sampler | None = None, num_workers: int = 0,
                 collate_fn: Callable | None = None, pin_memory: bool = False, drop_last: bool = False,
                 timeout: float = 0, worker_init_fn: Callable[[int], None] | None = None,
                 multiprocessing_context: Any = None, generator: Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = ""):
        _check_workers(num_workers, timeout, prefetch_factor, persistent_workers)
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers > 0 else prefetch_factor
        self.pin_memory, self.pin_memory_device = pin_memory, pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        self._iterable = isinstance(dataset, IterableDataset)
        sampler, batch_sampler = _build_samplers(dataset, self._iterable, batch_size, shuffle, sampler,
                                                 batch_sampler, drop_last, generator)
        self.batch_size = None if batch_sampler is None or batch_size is None else batch_size
        self.drop_last = drop_last
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.collate_fn = collate_fn or (default_collate if batch_sampler is not None else default_convert)
        self._iterator: _MultiProcessIter | None = None

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self) -> Any:
        return self.batch_sampler if self._auto_collation else self.sampler

    def _context(self) -> Any:
        ctx = self.multiprocessing_context
        if ctx is None:
            return _default_context()
        return mp.get_context(ctx) if isinstance(ctx, str) else ctx

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if not self.persistent_workers:
            return _MultiProcessIter(self)
        if self._iterator is None or self._iterator._shutdown:
            self._iterator = _MultiProcessIter(self)
        else:
            self._iterator._reset()
        return self._iterator

    def __len__(self) -> int:
        if not self._iterable:
            return len(self._index_sampler)
        n = len(self.dataset)  # an iterable dataset without __len__ raises TypeError, as in PyTorch
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _check_workers(num_workers: int, timeout: float, prefetch_factor: int | None,
                   persistent_workers: bool) -> None:
    if not isinstance(num_workers, int) or num_workers < 0:
        raise DataError("DataLoader", f"num_workers option should be a non-negative integer, "
                        f"got {num_workers!r}")
    if timeout < 0:
        raise DataError("DataLoader", f"timeout option should be non-negative, got {timeout!r}")
    if num_workers == 0 and prefetch_factor is not None:
        raise DataError("DataLoader", "prefetch_factor option could only be specified in multiprocessing; "
                        "let num_workers > 0 to enable multiprocessing")
    if prefetch_factor is not None and prefetch_factor < 1:
        raise DataError("DataLoader", f"prefetch_factor option should be a positive integer, "
                        f"got {prefetch_factor}")
    if persistent_workers and num_workers == 0:
        raise DataError("DataLoader", "persistent_workers option needs num_workers > 0")


def _build_samplers(dataset: Any, iterable: bool, batch_size: int | None, shuffle: bool | None,
                    sampler: Any, batch_sampler: Any, drop_last: bool,
                    generator: Generator | None) -> tuple[Any, Any]:
    """The sampler and batch sampler the options describe, after PyTorch's consistency checks."""
    if iterable and shuffle not in (None, False):
        raise DataError("DataLoader", f"with an IterableDataset, expected unspecified shuffle, got {shuffle}")
    if iterable and (sampler is not None or batch_sampler is not None):
        raise DataError("DataLoader", "with an IterableDataset, expected no sampler or batch_sampler")
    if sampler is not None and shuffle:
        raise DataError("DataLoader", "sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise DataError("DataLoader", "batch_sampler option is mutually exclusive with batch_size, "
                            "shuffle, sampler, and drop_last")
        return sampler, batch_sampler
    if batch_size is None and drop_last:
        raise DataError("DataLoader", "batch_size=None option disables auto-batching and is mutually "
                        "exclusive with drop_last")
    if sampler is None:
        if iterable:
            sampler = _InfiniteConstantSampler()
        elif shuffle:
            sampler = RandomSampler(dataset, generator=generator)
        else:
            sampler = SequentialSampler(dataset)
    if batch_size is not None:
        batch_sampler = BatchSampler(sampler, batch_size, drop_last)
    return sampler, batch_sampler


class _BaseIter:
    """What both iterators share: the index stream of one epoch and the base seed of the workers."""

    def __init__(self, loader: DataLoader):
        self._index_sampler = loader._index_sampler
        self._generator = loader.generator
        self._base_seed = fresh_seed(loader.generator)
        self._sampler_iter = iter(self._index_sampler)

    def __iter__(self) -> "_BaseIter":
        return self

    def __next__(self) -> Any:
        return self._next_data()

    def __len__(self) -> int:
        return len(self._index_sampler)

    def _next_data(self) -> Any:
        raise NotImplementedError


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader: DataLoader):
        super().__init__(loader)
        kind = IterableFetcher if loader._iterable else MapFetcher
        self._fetcher = kind(loader.dataset, loader._auto_collation, loader.collate_fn, loader.drop_last)

    def _next_data(self) -> Any:
        return self._fetcher.fetch(next(self._sampler_iter))


class _MultiProcessIter(_BaseIter):
    """Runs the workers: in-flight requests, the reorder buffer, errors, timeouts and shutdown."""

    def __init__(self, loader: DataLoader):
        super().__init__(loader)
        self._shutdown = True  # until the workers exist
        self._num_workers = loader.num_workers
        self._prefetch = loader.prefetch_factor * loader.num_workers
        self._timeout = loader.timeout
        self._persistent = loader.persistent_workers
        self._start_workers(loader)
        self._reset(first=True)

    def _start_workers(self, loader: DataLoader) -> None:
        ctx = loader._context()
        self._result_queue = ctx.Queue()
        self._done_event = ctx.Event()
        self._index_queues, self._workers = [], []
        self._shutdown = False
        for wid in range(self._num_workers):
            cfg = WorkerConfig(loader._iterable, loader.dataset, loader._auto_collation, loader.collate_fn,
                               loader.drop_last, self._base_seed, loader.worker_init_fn, wid,
                               self._num_workers)
            index_queue = ctx.Queue()
            index_queue.cancel_join_thread()
            w = ctx.Process(target=worker_loop, args=(cfg, index_queue, self._result_queue, self._done_event),
                            daemon=True)
            w.start()
            self._index_queues.append(index_queue)
            self._workers.append(w)

    def _reset(self, first: bool = False) -> None:
        """Start an epoch: a new index stream, and (for persistent workers) a resume handshake."""
        if not first:
            self._sampler_iter = iter(self._index_sampler)
        self._send_idx = self._rcvd_idx = self._outstanding = 0
        self._task_info: dict[int, list] = {}  # task -> [worker id] or [worker id, data] once received
        self._active = [True] * self._num_workers
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        if not first:
            self._resume_workers()
        for _ in range(self._prefetch):
            self._try_put_index()

    def _resume_workers(self) -> None:
        for q in self._index_queues:
            q.put(ResumeIteration())
        waiting = self._num_workers
        while waiting:  # results of the previous epoch that arrive first are dropped
            task, _ = self._get_data()
            waiting -= isinstance(task, ResumeIteration)

    def _try_put_index(self) -> None:
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            return
        for _ in range(self._num_workers):
            wid = next(self._worker_cycle)
            if self._active[wid]:
                break
        else:
            return
        self._index_queues[wid].put((self._send_idx, index))
        self._task_info[self._send_idx] = [wid]
        self._outstanding += 1
        self._send_idx += 1

    def _next_data(self) -> Any:
        while True:
            while self._rcvd_idx < self._send_idx:
                info = self._task_info[self._rcvd_idx]
                if len(info) == 2 or self._active[info[0]]:
                    break
                del self._task_info[self._rcvd_idx]  # its worker's stream ended: it will never come
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown_workers()
                raise StopIteration
            info = self._task_info[self._rcvd_idx]
            if len(info) == 2:
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
                return self._process(info[1])
            task, data = self._get_data()
            self._outstanding -= 1
            if isinstance(data, IterableStop):
                self._active[data.worker_id] = False
                self._try_put_index()
            elif task == self._rcvd_idx:
                del self._task_info[task]
                self._rcvd_idx += 1
                return self._process(data)
            elif task in self._task_info:
                self._task_info[task].append(data)

    def _process(self, data: Any) -> Any:
        self._try_put_index()
        if isinstance(data, ExceptionWrapper):
            self._shutdown_workers()
            raise WorkerError("DataLoader", f"caught {data.exc_type} in DataLoader worker {data.worker_id}: "
                              f"{data.message}\n\nOriginal traceback in worker {data.worker_id}:\n"
                              f"{data.traceback}", worker_id=data.worker_id, exc_type=data.exc_type,
                              worker_traceback=data.traceback)
        return from_wire(data)

    def _get_data(self) -> tuple[Any, Any]:
        if self._timeout > 0:
            found, item = self._try_get(self._timeout)
            if not found:
                self._shutdown_workers()
                raise DataLoaderError("DataLoader", f"timed out after {self._timeout} seconds waiting for "
                                      f"a batch from the worker processes")
            return item
        while True:
            found, item = self._try_get(STATUS_CHECK_INTERVAL)
            if found:
                return item

    def _try_get(self, timeout: float) -> tuple[bool, Any]:
        try:
            return True, self._result_queue.get(timeout=timeout)
        except queue.Empty:
            self._check_alive()
            return False, None

    def _check_alive(self) -> None:
        dead = [(wid, w) for wid, w in enumerate(self._workers) if not w.is_alive()]
        if dead:
            wid, w = dead[0]
            self._shutdown_workers()
            raise DataLoaderError("DataLoader", f"DataLoader worker {wid} (pid {w.pid}) exited unexpectedly "
                                  f"with exit code {w.exitcode}")

    def _shutdown_workers(self) -> None:
        """Tell every worker to exit, wait for it (terminating it if it hangs) and close the queues."""
        if self._shutdown:
            return
        self._shutdown = True
        self._done_event.set()
        for q in self._index_queues:
            q.put(None)
        for w in self._workers:
            w.join(timeout=_JOIN_TIMEOUT)
            if w.is_alive():
                w.terminate()
                w.join()
        for q in (*self._index_queues, self._result_queue):
            q.cancel_join_thread()
            q.close()

    def __del__(self) -> None:
        try:
            self._shutdown_workers()
        except Exception:  # interpreter shutdown: the modules this needs may already be gone
            pass
