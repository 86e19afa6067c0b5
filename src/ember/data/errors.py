"""The errors of the data pipeline; every one is an :class:`~ember.errors.EmberError`."""
from __future__ import annotations

from .._core.errors import EmberError

__all__ = ["DataError", "DataLoaderError", "WorkerError", "DatasetNotFoundError", "ChecksumError"]


class DataError(EmberError, ValueError):
    """A bad argument to a dataset, sampler, transform or loader (a size, a fraction, an option)."""


class DataLoaderError(EmberError, RuntimeError):
    """The loader could not produce a batch: a timeout, or a worker process that died."""


class WorkerError(DataLoaderError):
    """An exception raised inside a DataLoader worker process.

    The message names the worker id, the original exception type and text, and carries the
    worker's formatted traceback. ``worker_id``, ``exc_type`` (the original class name) and
    ``worker_traceback`` hold them as attributes.
    """

    def __init__(self, op: str, detail: str, *, worker_id: int, exc_type: str, worker_traceback: str):
        self.worker_id = worker_id
        self.exc_type = exc_type
        self.worker_traceback = worker_traceback
        super().__init__(op, detail)


class DatasetNotFoundError(EmberError, FileNotFoundError):
    """Files a dataset reader needs are not in the directory it was given (Ember never downloads)."""


class ChecksumError(EmberError, ValueError):
    """A dataset file whose MD5/SHA-256 digest differs from the expected one."""
