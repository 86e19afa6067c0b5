"""LSTM language model in the layout of PyTorch's word-language-model example (encoder, rnn, decoder)."""
from __future__ import annotations

from typing import Any

from .. import nn
from .._core import creation
from .._core.errors import EmberError
from .._core.tensor import Tensor
from ..nn import init

__all__ = ["LSTMLanguageModel", "lstm_lm"]


class LSTMLanguageModel(nn.Module):
    """Token embedding → multi-layer LSTM → Linear decoder to vocabulary logits, with dropout in between.

    Parameter names follow PyTorch's word-language-model example: ``encoder.weight`` (the embedding),
    ``rnn.weight_ih_l0``…, ``decoder.weight`` / ``decoder.bias``. With `tie_weights` the decoder shares the
    embedding matrix (Press & Wolf, 2017); both keys stay in the state dict, as in PyTorch.

    Args:
        vocab_size: number of tokens.
        embed_dim: embedding size.
        hidden_size: LSTM hidden size (must equal `embed_dim` when tying weights).
        num_layers: stacked LSTM layers.
        dropout: dropout on the embeddings, between LSTM layers and before the decoder.
        tie_weights: share the decoder weight with the embedding.
        batch_first: inputs ``(N, T)`` instead of ``(T, N)``.

    Shape: tokens ``(T, N)`` (int64) -> logits ``(T, N, vocab_size)`` and the final ``(h, c)``, each
    ``(num_layers, N, hidden_size)``.

    Example:
        >>> import ember
        >>> lm = ember.models.lstm_lm(vocab_size=20, embed_dim=8, hidden_size=8, tie_weights=True)
        >>> logits, (h, c) = lm(ember.zeros(5, 2, dtype=ember.int64))
        >>> tuple(logits.shape), tuple(h.shape)
        ((5, 2, 20), (2, 2, 8))
    """

    def __init__(self, vocab_size: int, embed_dim: int = 200, hidden_size: int = 200, num_layers: int = 2,
                 dropout: float = 0.2, tie_weights: bool = False, batch_first: bool = False) -> None:
        super().__init__()
        if tie_weights and hidden_size != embed_dim:
            raise EmberError("LSTMLanguageModel", f"tie_weights needs hidden_size == embed_dim, got "
                             f"hidden_size={hidden_size} and embed_dim={embed_dim}")
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.batch_first = batch_first
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab_size, embed_dim)
        self.rnn = nn.LSTM(embed_dim, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0,
                           batch_first=batch_first)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        self._init_weights()
        if tie_weights:
            # Written into the parameter table directly so the key keeps its place (PyTorch's order).
            self.decoder._parameters["weight"] = self.encoder.weight

    def _init_weights(self, init_range: float = 0.1) -> None:
        init.uniform_(self.encoder.weight, -init_range, init_range)
        init.zeros_(self.decoder.bias)
        init.uniform_(self.decoder.weight, -init_range, init_range)

    def init_hidden(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Zero ``(h, c)`` states for a batch, shaped ``(num_layers, batch_size, hidden_size)``."""
        weight = self.decoder.weight
        shape = (self.num_layers, batch_size, self.hidden_size)
        return (creation.zeros(*shape, dtype=weight.dtype, device=weight.device),
                creation.zeros(*shape, dtype=weight.dtype, device=weight.device))

    def forward(self, tokens: Tensor, hidden: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Any]:
        emb = self.drop(self.encoder(tokens))
        out, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(out)), hidden


def lstm_lm(vocab_size: int, embed_dim: int = 200, hidden_size: int = 200, num_layers: int = 2,
            dropout: float = 0.2, tie_weights: bool = False, batch_first: bool = False) -> LSTMLanguageModel:
    """Build an :class:`LSTMLanguageModel` (same arguments).

    Example:
        >>> import ember
        >>> lm = ember.models.lstm_lm(10, 4, 4, num_layers=1, tie_weights=True)
        >>> lm.decoder.weight is lm.encoder.weight
        True
    """
    return LSTMLanguageModel(vocab_size, embed_dim, hidden_size, num_layers, dropout, tie_weights,
                             batch_first)
