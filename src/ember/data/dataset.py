"""Datasets: the map-style and iterable protocols, and datasets built from others.

A map-style :class:`Dataset` answers ``dataset[i]`` and ``len(dataset)``; an
:class:`IterableDataset` is a stream (``iter(dataset)``). The semantics follow
``torch.utils.data``.
"""
from __future__ import annotations

import bisect
import itertools
import math
from typing import Any, Generic, Iterable, Iterator, Sequence, TypeVar

from .._core.errors import IndexingError
from .._core.random import Generator, randperm
from .._core.tensor import Tensor
from .errors import DataError

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset", "Subset",
           "random_split"]

T = TypeVar("T")


class Dataset(Generic[T]):
    """A map-style dataset: subclasses define ``__getitem__(index)`` and usually ``__len__()``.

    ``a + b`` concatenates two datasets (a :class:`ConcatDataset`).

    Example:
        >>> class Squares(Dataset):
        ...     def __len__(self):
        ...         return 4
        ...     def __getitem__(self, i):
        ...         return i * i
        >>> [Squares()[i] for i in range(4)]
        [0, 1, 4, 9]
    """

    def __getitem__(self, index: Any) -> T:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: "Dataset[T]") -> "ConcatDataset[T]":
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T]):
    """A dataset that is a stream of samples: subclasses define ``__iter__``.

    With ``num_workers > 0`` every worker process iterates its own copy of the dataset, so without
    sharding each sample is produced once per worker. Shard inside ``__iter__`` with
    :func:`~ember.data.get_worker_info`: for example worker ``info.id`` of ``info.num_workers``
    yields items ``info.id, info.id + info.num_workers, …`` (or a contiguous slice).

    Example:
        >>> class Count(IterableDataset):
        ...     def __iter__(self):
        ...         return iter(range(3))
        >>> list(Count())
        [0, 1, 2]
    """

    def __iter__(self) -> Iterator[T]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __add__(self, other: "Dataset[T]") -> "ChainDataset":
        return ChainDataset([self, other])


class TensorDataset(Dataset[tuple]):
    """Samples are the i-th rows of the given tensors (or NumPy arrays), which share their first size.

    Args:
        tensors: tensors with the same size in dimension 0.

    Example:
        >>> import ember
        >>> ds = TensorDataset(ember.arange(3), ember.zeros(3, 2))
        >>> len(ds), ds[1][0].item(), ds[1][1].shape
        (3, 1, (2,))
    """

    def __init__(self, *tensors: Any):
        if not tensors:
            raise DataError("TensorDataset", "expected at least one tensor")
        sizes = [len(t) if not isinstance(t, Tensor) else (t.shape[0] if t.ndim else -1) for t in tensors]
        if any(s != sizes[0] for s in sizes) or sizes[0] < 0:
            raise DataError("TensorDataset", f"size mismatch between tensors: first dimensions {sizes}",
                            tuple(t for t in tensors if isinstance(t, Tensor)))
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])


class ConcatDataset(Dataset[T]):
    """The concatenation of map-style datasets: index ``i`` runs through the first, then the next….

    Args:
        datasets: the datasets (not iterable ones), each with a length.

    Example:
        >>> ds = ConcatDataset([[1, 2], [3]])
        >>> len(ds), ds[2], ds[-1]
        (3, 3, 3)
    """

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise DataError("ConcatDataset", "datasets should not be an empty iterable")
        if any(isinstance(d, IterableDataset) for d in self.datasets):
            raise DataError("ConcatDataset", "does not support IterableDataset (use ChainDataset)")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> T:
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise IndexingError("ConcatDataset", f"index {idx} is out of range for length {n}")
            idx += n
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which else 0
        if which >= len(self.datasets):
            raise IndexingError("ConcatDataset", f"index {idx} is out of range for length {n}")
        return self.datasets[which][idx - start]


class ChainDataset(IterableDataset):
    """The streams of several iterable datasets, one after another.

    Example:
        >>> class Count(IterableDataset):
        ...     def __iter__(self):
        ...         return iter(range(2))
        >>> list(ChainDataset([Count(), Count()]))
        [0, 1, 0, 1]
    """

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)

    def __iter__(self) -> Iterator:
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


class Subset(Dataset[T]):
    """The items of `dataset` at the given indices, in that order.

    Args:
        dataset: the whole dataset.
        indices: the indices to keep.

    Example:
        >>> s = Subset([10, 11, 12, 13], [3, 1])
        >>> len(s), s[0], s[1]
        (2, 13, 11)
    """

    def __init__(self, dataset: Dataset[T], indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx: int) -> T:
        return self.dataset[self.indices[idx]]

    def __len__(self) -> int:
        return len(self.indices)


def _split_lengths(n: int, lengths: Sequence[float]) -> list[int]:
    """Absolute lengths from fractions summing to 1; the remainder goes round-robin from the first."""
    if any(not 0 <= f <= 1 for f in lengths):
        raise DataError("random_split", f"fractions must lie in [0, 1], got {list(lengths)}")
    sizes = [int(math.floor(n * f)) for f in lengths]
    for i in range(n - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


def random_split(dataset: Dataset[T], lengths: Sequence[int | float],
                 generator: Generator | None = None) -> list[Subset[T]]:
    """Split `dataset` into non-overlapping random subsets of the given lengths.

    Lengths that are all fractions summing to 1 are turned into counts ``floor(n * f)``, and the
    remaining items are handed out one each to the subsets in order (as PyTorch does).

    Args:
        dataset: the dataset to split.
        lengths: the sizes (summing to ``len(dataset)``) or the fractions of each part.
        generator: the ember Generator for the permutation (default: the default generator).

    Returns:
        A list of :class:`Subset`.

    Example:
        >>> import ember
        >>> a, b = random_split(range(10), [0.7, 0.3], generator=ember.Generator().manual_seed(0))
        >>> len(a), len(b), sorted(list(a) + list(b)) == list(range(10))
        (7, 3, True)
    """
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        lengths = _split_lengths(n, lengths)
    lengths = [int(x) for x in lengths]
    if any(x < 0 for x in lengths) or sum(lengths) != n:
        raise DataError("random_split", f"sum of input lengths {lengths} does not equal the length of the "
                        f"input dataset ({n})")
    order = randperm(n, generator=generator).tolist()
    bounds = list(itertools.accumulate(lengths))
    return [Subset(dataset, order[end - size:end]) for size, end in zip(lengths, bounds)]
