"""Variable-length sequences for recurrent layers: PackedSequence and the pack/pad helpers.

A :class:`PackedSequence` stores a batch of sequences of different lengths without padding: the
sequences are sorted by decreasing length and their steps are interleaved time-major, so the rows
of time step ``t`` are the first ``batch_sizes[t]`` sequences. Packing and unpacking are one gather
each (differentiable); the index arithmetic runs on the host in NumPy.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Sequence

import numpy as np

from ..._core import creation
from ..._core.errors import DTypeError, ShapeError
from ..._core.primitives import indexing, movement
from ..._core.tensor import Tensor

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence",
           "pad_sequence", "unpad_sequence", "pack_sequence", "unpack_sequence"]

_PackedFields = namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


def _host_ints(values: Any) -> np.ndarray:
    """Integer values (a tensor, list or array) as a 1-d int64 NumPy array."""
    if isinstance(values, Tensor):
        values = values.tolist()
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _index(values: np.ndarray, like: Tensor | None = None) -> Tensor:
    device = None if like is None else like.device
    return creation.tensor(np.asarray(values, dtype=np.int64), device=device)


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    """The inverse of a permutation of ``0..n-1`` (None stays None).

    Example:
        >>> import ember
        >>> from ember.nn.utils.rnn import invert_permutation
        >>> invert_permutation(ember.tensor([2, 0, 1])).tolist()
        [1, 2, 0]
    """
    if permutation is None:
        return None
    perm = _host_ints(permutation)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size)
    return _index(inverse, permutation)


class PackedSequence(_PackedFields):
    """A batch of variable-length sequences packed without padding (PyTorch's layout).

    Fields:
        data: the steps of every sequence, shape ``(sum(lengths), *)``, time-major: the rows of step
            ``t`` are the first ``batch_sizes[t]`` sequences in sorted (decreasing length) order.
        batch_sizes: int64 tensor, the number of sequences still running at each step.
        sorted_indices: the batch permutation that sorted the sequences by length (None if the input
            was already sorted).
        unsorted_indices: its inverse, which restores the caller's order.

    Build one with :func:`pack_padded_sequence` or :func:`pack_sequence` rather than directly.

    Example:
        >>> import ember
        >>> from ember.nn.utils.rnn import pack_sequence
        >>> p = pack_sequence([ember.tensor([1.0, 2.0, 3.0]), ember.tensor([4.0])])
        >>> p.data.tolist(), p.batch_sizes.tolist()
        ([1.0, 4.0, 2.0, 3.0], [2, 1, 1])
    """

    __slots__ = ()

    def __new__(cls, data: Tensor, batch_sizes: Tensor | None = None, sorted_indices: Tensor | None = None,
                unsorted_indices: Tensor | None = None) -> "PackedSequence":
        if batch_sizes is None:
            raise ShapeError("PackedSequence", "batch_sizes is required; build packed sequences with "
                             "pack_padded_sequence or pack_sequence", (data,))
        if not isinstance(batch_sizes, Tensor):
            batch_sizes = _index(_host_ints(batch_sizes))
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args: Any, **kwargs: Any) -> "PackedSequence":
        """Convert or move ``data`` (dtype and/or device); the index tensors keep their dtype."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        device = data.device
        indices = [None if t is None else t.to(device) for t in (self.sorted_indices, self.unsorted_indices)]
        return type(self)(data, self.batch_sizes, *indices)

    def float(self) -> "PackedSequence":
        """``data`` as float32."""
        return self.to("float32")

    def double(self) -> "PackedSequence":
        """``data`` as float64."""
        return self.to("float64")

    @property
    def is_cuda(self) -> bool:
        """True if ``data`` lives on a CUDA device."""
        return self.data.device.type == "cuda"


def _check_lengths(lengths: np.ndarray, n_batch: int, n_time: int, op: str, operand: Tensor) -> None:
    if lengths.size != n_batch:
        raise ShapeError(op, f"expected {n_batch} lengths (one per sequence in the batch), got "
                         f"{lengths.size}", (operand,))
    if lengths.size and lengths.min() <= 0:
        raise ShapeError(op, f"the length of every sequence has to be greater than 0, got lengths "
                         f"{lengths.tolist()}", (operand,))
    if lengths.size and lengths.max() > n_time:
        raise ShapeError(op, f"a length of {int(lengths.max())} exceeds the {n_time} time steps of the "
                         "padded input", (operand,))


def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch of sequences of the given lengths.

    Args:
        input: padded batch, ``(T, B, *)`` or ``(B, T, *)`` with `batch_first`.
        lengths: the length of each sequence (list or 1-d int tensor), each in ``1..T``.
        batch_first: whether `input` is batch-major.
        enforce_sorted: require `lengths` in decreasing order; with False the batch is sorted here and
            the permutation kept in the result so that unpacking restores the order.

    Returns:
        A :class:`PackedSequence` (differentiable with respect to `input`).

    Example:
        >>> import ember
        >>> from ember.nn.utils.rnn import pack_padded_sequence
        >>> x = ember.tensor([[1.0, 4.0], [2.0, 0.0], [3.0, 0.0]])  # (T=3, B=2)
        >>> pack_padded_sequence(x, [3, 1]).data.tolist()
        [1.0, 4.0, 2.0, 3.0]
    """
    op = "pack_padded_sequence"
    if input.ndim < 2:
        raise ShapeError(op, f"expected a padded batch with at least 2 dimensions (time and batch), got "
                         f"shape {tuple(input.shape)}", (input,))
    lens = _host_ints(lengths)
    batch_dim = 0 if batch_first else 1
    _check_lengths(lens, input.shape[batch_dim], input.shape[1 - batch_dim], op, input)
    sorted_indices = None
    if enforce_sorted:
        if np.any(np.diff(lens) > 0):
            raise ShapeError(op, f"lengths {lens.tolist()} must be sorted in decreasing order when "
                             "enforce_sorted is True; pass enforce_sorted=False to pack unsorted sequences",
                             (input,))
    else:
        order = np.argsort(-lens, kind="stable")
        lens = lens[order]
        sorted_indices = _index(order, input)
        input = indexing.index_select(input, batch_dim, sorted_indices)
    if batch_first:
        input = movement.transpose(input, 0, 1)
    n_time, n_batch = input.shape[0], input.shape[1]
    batch_sizes = (lens[None, :] > np.arange(int(lens.max()))[:, None]).sum(axis=1)
    rows = np.concatenate([t * n_batch + np.arange(b) for t, b in enumerate(batch_sizes)])
    flat = movement.reshape(input, (n_time * n_batch,) + tuple(input.shape[2:]))
    data = indexing.index_select(flat, 0, _index(rows, input))
    return PackedSequence(data, _index(batch_sizes), sorted_indices, invert_permutation(sorted_indices))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Unpack a :class:`PackedSequence` into a padded batch (the inverse of :func:`pack_padded_sequence`).

    Args:
        sequence: the packed batch.
        batch_first: return ``(B, T, *)`` instead of ``(T, B, *)``.
        padding_value: the value of the padded positions.
        total_length: pad to this many time steps (at least the longest sequence).

    Returns:
        ``(padded, lengths)``: the padded batch in the caller's original order and the int64 lengths.

    Example:
        >>> import ember
        >>> from ember.nn.utils.rnn import pack_sequence, pad_packed_sequence
        >>> p = pack_sequence([ember.tensor([1.0]), ember.tensor([2.0, 3.0])], enforce_sorted=False)
        >>> padded, lengths = pad_packed_sequence(p, batch_first=True)
        >>> padded.tolist(), lengths.tolist()
        ([[1.0, 0.0], [2.0, 3.0]], [1, 2])
    """
    op = "pad_packed_sequence"
    data = sequence.data
    sizes = _host_ints(sequence.batch_sizes)
    n_steps, n_batch = sizes.size, int(sizes[0])
    n_time = n_steps if total_length is None else int(total_length)
    if n_time < n_steps:
        raise ShapeError(op, f"expected total_length to be at least the length of the longest sequence "
                         f"({n_steps}), got total_length={total_length}", (data,))
    lengths = (sizes[None, :] > np.arange(n_batch)[:, None]).sum(axis=1)  # per sorted position
    order = np.arange(n_batch) if sequence.unsorted_indices is None else _host_ints(sequence.unsorted_indices)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    times = np.arange(n_time)[:, None]
    pos = order[None, :]
    running = times < lengths[order][None, :]
    # every padded position reads its packed row, or the extra padding row appended after the data
    src = np.where(running, offsets[np.minimum(times, n_steps - 1)] + pos, data.shape[0])
    if batch_first:
        src = src.T
    pad_row = creation.full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    rows = indexing.index_select(movement.cat([data, pad_row], 0), 0, _index(src.reshape(-1), data))
    padded = movement.reshape(rows, src.shape + tuple(data.shape[1:]))
    return padded, _index(lengths[order])


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack sequences of different lengths ``(L_i, *)`` into one padded batch.

    Args:
        sequences: tensors whose trailing dimensions agree.
        batch_first: return ``(B, T, *)`` instead of ``(T, B, *)``.
        padding_value: the fill value.
        padding_side: pad on the "right" (after each sequence) or the "left".

    Returns:
        The padded batch, ``T = max(L_i)``.

    Example:
        >>> import ember
        >>> from ember.nn.utils.rnn import pad_sequence
        >>> pad_sequence([ember.tensor([1, 2]), ember.tensor([3])], batch_first=True).tolist()
        [[1, 2], [3, 0]]
    """
    op = "pad_sequence"
    sequences = list(sequences)
    if not sequences:
        raise ShapeError(op, "received an empty list of sequences")
    if padding_side not in ("right", "left"):
        raise ValueError(f"{op}: padding_side must be 'left' or 'right', got {padding_side!r}")
    trailing = tuple(sequences[0].shape[1:])
    for s in sequences:
        if s.ndim == 0 or tuple(s.shape[1:]) != trailing:
            raise ShapeError(op, f"every sequence needs shape (L, *{trailing}), got shapes "
                             f"{[tuple(q.shape) for q in sequences]}", tuple(sequences))
        if s.dtype is not sequences[0].dtype:
            raise DTypeError(op, "all sequences must share one dtype", tuple(sequences))
    n_time = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        extra = n_time - s.shape[0]
        amounts = (0, extra) if padding_side == "right" else (extra, 0)
        padded.append(movement.pad(s, (0, 0) * len(trailing) + amounts, value=padding_value))
    return movement.stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences: Tensor, lengths: Any, batch_first: bool = False) -> list[Tensor]:
    """Split a padded batch back into its sequences (the inverse of :func:`pad_sequence`).

    Example:
        >>> import ember
        >>> from ember.nn.utils.rnn import unpad_sequence
        >>> [s.tolist() for s in unpad_sequence(ember.tensor([[1, 2], [3, 0]]), [2, 1], batch_first=True)]
        [[1, 2], [3]]
    """
    lens = _host_ints(lengths)
    batch = padded_sequences if batch_first else movement.transpose(padded_sequences, 0, 1)
    _check_lengths(lens, batch.shape[0], batch.shape[1], "unpad_sequence", padded_sequences)
    return [movement.narrow(row, 0, 0, int(n)) for row, n in zip(movement.unbind(batch, 0), lens)]


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences ``(L_i, *)`` (sorted by decreasing length unless `enforce_sorted` is False).

    Example:
        >>> import ember
        >>> from ember.nn.utils.rnn import pack_sequence
        >>> pack_sequence([ember.tensor([1, 2]), ember.tensor([3])]).batch_sizes.tolist()
        [2, 1]
    """
    lengths = [s.shape[0] if s.ndim else 0 for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """The list of sequences held by a :class:`PackedSequence`, in the caller's original order.

    Example:
        >>> import ember
        >>> from ember.nn.utils.rnn import pack_sequence, unpack_sequence
        >>> p = pack_sequence([ember.tensor([1]), ember.tensor([2, 3])], enforce_sorted=False)
        >>> [s.tolist() for s in unpack_sequence(p)]
        [[1], [2, 3]]
    """
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
