"""Text datasets: a corpus as token ids, cut into windows for next-token prediction."""
from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from .._core.creation import from_numpy
from .._core.errors import IndexingError
from .._core.tensor import Tensor
from .dataset import Dataset
from .errors import DataError

__all__ = ["CharDataset"]

# Words, runs of white space, and single other characters: the pieces concatenate back to the text.
_WORD_PIECES = re.compile(r"\w+|\s+|[^\w\s]")


class CharDataset(Dataset):
    """A text as token ids, served as ``(x, y)`` windows of `block_size` where ``y`` is ``x`` shifted by one.

    Item ``i`` is ``x = ids[i : i + block_size]`` and ``y = ids[i + 1 : i + block_size + 1]`` (int64
    tensors), so there are ``len(ids) - block_size`` items. The vocabulary is the sorted set of
    tokens of the text; ``stoi``/``itos`` map between tokens and ids.

    Args:
        path: a text file (UTF-8 unless `encoding` says otherwise); or give `text`.
        block_size: the window length.
        text: the text itself instead of a file.
        level: "char" (one token per character) or "word" (words, white-space runs and single
            punctuation marks, which join back to the exact text).
        encoding: the file's encoding.

    Example:
        >>> ds = CharDataset(text="hello", block_size=2)
        >>> len(ds), ds.vocab_size, ds.decode(ds[0][0].tolist()), ds.decode(ds[0][1].tolist())
        (3, 4, 'he', 'el')
    """

    def __init__(self, path: str | os.PathLike | None = None, block_size: int = 128, *,
                 text: str | None = None, level: str = "char", encoding: str = "utf-8"):
        if (path is None) == (text is None):
            raise DataError("CharDataset", "give exactly one of path and text")
        if level not in ("char", "word"):
            raise DataError("CharDataset", f"level must be 'char' or 'word', got {level!r}")
        if path is not None:
            with open(path, encoding=encoding) as f:
                text = f.read()
        tokens = list(text) if level == "char" else _WORD_PIECES.findall(text)
        if not isinstance(block_size, int) or block_size <= 0 or len(tokens) <= block_size:
            raise DataError("CharDataset", f"block_size must be a positive int smaller than the number of "
                            f"tokens ({len(tokens)}), got {block_size!r}")
        self.block_size, self.level = block_size, level
        self.itos = sorted(set(tokens))
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.data = self._ids(text, tokens)

    def _ids(self, text: str, tokens: list[str]) -> np.ndarray:
        if self.level == "char":  # vectorised: code points, then their rank in the sorted vocabulary
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            vocab = np.array([ord(c) for c in self.itos], dtype=np.uint32)
            return np.searchsorted(vocab, codes).astype(np.int64)
        return np.array([self.stoi[t] for t in tokens], dtype=np.int64)

    @property
    def vocab_size(self) -> int:
        """The number of distinct tokens."""
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """The token ids of `text` (every token must be in the vocabulary)."""
        tokens = list(text) if self.level == "char" else _WORD_PIECES.findall(text)
        unknown = sorted({t for t in tokens if t not in self.stoi})
        if unknown:
            raise DataError("CharDataset.encode", f"tokens not in the vocabulary: {unknown[:10]!r}")
        return [self.stoi[t] for t in tokens]

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """The text of a sequence of token ids."""
        values = ids.tolist() if isinstance(ids, Tensor) else ids
        return "".join(self.itos[int(i)] for i in values)

    def __len__(self) -> int:
        return len(self.data) - self.block_size

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor]:
        n = len(self)
        if not -n <= idx < n:
            raise IndexingError("CharDataset", f"index {idx} is out of range for {n} windows")
        idx %= n
        chunk = self.data[idx:idx + self.block_size + 1]
        return from_numpy(chunk[:-1]), from_numpy(chunk[1:])
