"""Samplers: the order in which a DataLoader visits a map-style dataset's indices.

Random samplers draw from ember's counter-based generator: pass ``generator=`` for a private
stream, or seed the default one with :func:`ember.manual_seed`; the same seed gives the same order.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence, Sized

import numpy as np

from .._core import dtypes
from .._core.creation import tensor
from .._core.random import Generator, default_generator, multinomial, randint, randperm
from .._core.tensor import Tensor
from .errors import DataError

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler"]


def fresh_seed(generator: Generator | None = None) -> int:
    """A 63-bit seed drawn from `generator` (default: ember's default generator)."""
    gen = generator if generator is not None else default_generator
    return int(randint(0, 2 ** 63 - 1, (1,), generator=gen).item())


def _private_generator(generator: Generator | None) -> Generator:
    """The generator to draw an epoch from: the given one, or a new one seeded from the default one
    (so that ``ember.manual_seed`` fixes the order but the epochs still differ)."""
    return generator if generator is not None else Generator().manual_seed(fresh_seed())


class Sampler:
    """Base class of samplers: an iterable of indices (or of lists of indices for batch samplers).

    Example:
        >>> class Evens(Sampler):
        ...     def __init__(self, n):
        ...         self.n = n
        ...     def __iter__(self):
        ...         return iter(range(0, self.n, 2))
        >>> list(Evens(5))
        [0, 2, 4]
    """

    def __init__(self, data_source: Sized | None = None):
        pass

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """Indices ``0, 1, …, len(data_source) - 1`` in order.

    Example:
        >>> list(SequentialSampler(range(3)))
        [0, 1, 2]
    """

    def __init__(self, data_source: Sized):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """Random indices: a permutation per pass, or draws with replacement.

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw indices with replacement.
        num_samples: how many indices to yield (default ``len(data_source)``); without replacement
            a larger number chains several permutations.
        generator: the ember Generator to draw from.

    Example:
        >>> import ember
        >>> s = RandomSampler(range(5), generator=ember.Generator().manual_seed(0))
        >>> sorted(s)
        [0, 1, 2, 3, 4]
    """

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None):
        if not isinstance(replacement, bool):
            raise DataError("RandomSampler", f"replacement should be a boolean value, got {replacement!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise DataError("RandomSampler", f"num_samples should be a positive integer value, "
                            f"got num_samples={self.num_samples!r}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        gen = _private_generator(self.generator)
        if self.replacement:
            yield from randint(0, n, (self.num_samples,), generator=gen).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from randperm(n, generator=gen).tolist()
        yield from randperm(n, generator=gen).tolist()[:self.num_samples % n]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order (a new permutation per pass).

    Example:
        >>> import ember
        >>> sorted(SubsetRandomSampler([7, 3, 5], generator=ember.Generator().manual_seed(1)))
        [3, 5, 7]
    """

    def __init__(self, indices: Sequence[int], generator: Generator | None = None):
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        gen = _private_generator(self.generator)
        for i in randperm(len(self.indices), generator=gen).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """Indices ``0 .. len(weights) - 1`` drawn with probabilities proportional to `weights`.

    Args:
        weights: non-negative weights (need not sum to one).
        num_samples: how many indices to draw.
        replacement: draw with replacement (without, each index appears at most once).
        generator: the ember Generator to draw from.

    Example:
        >>> import ember
        >>> list(WeightedRandomSampler([0.0, 1.0, 0.0], 3))
        [1, 1, 1]
    """

    def __init__(self, weights: Sequence[float] | Tensor, num_samples: int, replacement: bool = True,
                 generator: Generator | None = None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise DataError("WeightedRandomSampler", f"num_samples should be a positive integer value, "
                            f"got num_samples={num_samples!r}")
        if not isinstance(replacement, bool):
            raise DataError("WeightedRandomSampler", f"replacement should be a boolean value, "
                            f"got {replacement!r}")
        w = np.asarray(weights.numpy() if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if w.ndim != 1:
            raise DataError("WeightedRandomSampler", f"weights should be a 1-d sequence, got shape {w.shape}")
        self.weights = tensor(w, dtype=dtypes.float64)
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        gen = _private_generator(self.generator)
        drawn = multinomial(self.weights, self.num_samples, self.replacement, generator=gen)
        yield from drawn.tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of another sampler into lists of `batch_size`.

    Args:
        sampler: any iterable of indices.
        batch_size: the size of each batch.
        drop_last: drop the last batch if it is smaller than `batch_size`.

    Example:
        >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Sampler | Sequence[Any], batch_size: int, drop_last: bool):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise DataError("BatchSampler", f"batch_size should be a positive integer value, "
                            f"got batch_size={batch_size!r}")
        if not isinstance(drop_last, bool):
            raise DataError("BatchSampler", f"drop_last should be a boolean value, got {drop_last!r}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list]:
        batch: list = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
