"""Embedding: a lookup table of learned vectors."""
from __future__ import annotations

from typing import Any

from .. import _core
from .._core.autograd import no_grad
from .._core.errors import ShapeError
from .._core.tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """A table of `num_embeddings` vectors of size `embedding_dim`, indexed by integer tensors.

    Args:
        num_embeddings: number of rows.
        embedding_dim: size of each vector.
        padding_idx: this row is initialised to zeros and receives no gradient.
        max_norm: rows looked up are renormalised in place to at most this norm.
        norm_type: the p of the norm for `max_norm`.
        scale_grad_by_freq: divide gradients by the frequency of each index in the batch.
        sparse: accepted for compatibility; gradients are dense.
        _weight: an initial table instead of N(0, 1) samples.
        _freeze: do not learn the table.

    Shape: (*) integer -> (*, embedding_dim). Parameter ``weight`` (num_embeddings, embedding_dim).

    Example:
        >>> emb = ember.nn.Embedding(10, 3, padding_idx=0)
        >>> emb(ember.tensor([[0, 2]])).shape
        (1, 2, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Tensor | None = None, _freeze: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError("padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(_core.creation.empty(num_embeddings, embedding_dim, dtype=dtype,
                                                         device=device), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ShapeError("Embedding", f"_weight has shape {tuple(_weight.shape)}, expected "
                                 f"{(num_embeddings, embedding_dim)}", (_weight,))
            self.weight = Parameter(_weight.detach(), requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """Draw the table from N(0, 1) and zero the padding row."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0,
                        scale_grad_by_freq: bool = False, sparse: bool = False) -> "Embedding":
        """An Embedding holding a copy of the 2-d `embeddings` (frozen unless ``freeze=False``).

        Example:
            >>> e = ember.nn.Embedding.from_pretrained(ember.tensor([[1.0, 2.0]]))
            >>> e(ember.tensor([0])).tolist(), e.weight.requires_grad
            ([[1.0, 2.0]], False)
        """
        if embeddings.ndim != 2:
            raise ShapeError("Embedding.from_pretrained", f"embeddings must be 2-d, got shape "
                             f"{tuple(embeddings.shape)}", (embeddings,))
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings.clone(), _freeze=freeze)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            text += f", max_norm={self.max_norm}"
        return text
