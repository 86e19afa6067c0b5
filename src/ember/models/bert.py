"""BERT-style encoder with Hugging Face ``BertModel``'s parameter names, so its checkpoints load unchanged.

Names: ``embeddings.word_embeddings`` / ``position_embeddings`` / ``token_type_embeddings`` /
``LayerNorm``, ``encoder.layer.N.attention.self.query`` / ``key`` / ``value``,
``encoder.layer.N.attention.output.dense`` / ``LayerNorm``, ``encoder.layer.N.intermediate.dense``,
``encoder.layer.N.output.dense`` / ``LayerNorm``, ``pooler.dense``. ``embeddings.position_ids`` is a
non-persistent buffer (as in current Hugging Face releases; drop it from older checkpoints).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .. import nn
from .._core import creation
from .._core.autograd import no_grad
from .._core.errors import ShapeError
from .._core.primitives import movement
from .._core.tensor import Tensor
from ..nn import functional as F
from ..nn import init
from .mlp import activation_layer

__all__ = ["BertConfig", "BertModel", "BertModelOutput", "bert"]


@dataclass
class BertConfig:
    """Hyper-parameters of :class:`BertModel` (Hugging Face's field names; defaults: BERT-base).

    ``BertConfig(hidden_size=384, num_hidden_layers=6, intermediate_size=1536)`` is all-MiniLM-L6-v2's
    shape (22,713,216 parameters); the defaults give BERT-base (109,482,240).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    add_pooling_layer: bool = True


class BertModelOutput(NamedTuple):
    """What :class:`BertModel` returns: per-token states and the pooled first-token state (or None)."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None


class _Embeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size,
                                            padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer("position_ids", creation.arange(config.max_position_embeddings)[None],
                             persistent=False)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None,
                position_ids: Tensor | None) -> Tensor:
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ShapeError("BertModel", f"sequence length {length} exceeds max_position_embeddings "
                             f"{self.position_embeddings.num_embeddings}", (input_ids,))
        if position_ids is None:
            position_ids = self.position_ids[:, :length]
        if token_type_ids is None:
            token_type_ids = creation.zeros_like(input_ids)
        x = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
             + self.position_embeddings(position_ids))
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ShapeError("BertModel", f"hidden_size ({config.hidden_size}) must be divisible by "
                             f"num_attention_heads ({config.num_attention_heads})")
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _heads(self, x: Tensor) -> Tensor:
        n, length, _ = x.shape
        return movement.transpose(x.reshape(n, length, self.num_heads, self.head_dim), 1, 2)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        p = self.dropout.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        n, _, length, _ = y.shape
        return movement.transpose(y, 1, 2).reshape(n, length, self.num_heads * self.head_dim)


class _DenseNorm(nn.Module):
    """``LayerNorm(dense(x) + residual)``: the output halves of the attention and feed-forward blocks."""

    def __init__(self, n_in: int, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(config)
        self.output = _DenseNorm(config.hidden_size, config)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.output(self.self(x, mask), x)


class _Intermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = activation_layer(config.hidden_act, "BertModel")

    def forward(self, x: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(config)
        self.intermediate = _Intermediate(config)
        self.output = _DenseNorm(config.intermediate_size, config)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([_Layer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        for layer in self.layer:
            x = layer(x, mask)
        return x


class _Pooler(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden: Tensor) -> Tensor:
        return self.activation(self.dense(hidden[:, 0]))


class BertModel(nn.Module):
    """Bidirectional transformer encoder (post-LayerNorm blocks, exact GELU) as Hugging Face's BertModel.

    Args:
        config: a :class:`BertConfig`.

    Call arguments:
        input_ids: (N, L) int64 token ids.
        attention_mask: (N, L), 1 (or True) for tokens to attend to and 0 for padding; all ones if None.
        token_type_ids: (N, L) segment ids; zeros if None.
        position_ids: (N, L) or (1, L) positions; ``0 … L-1`` if None.

    Returns:
        :class:`BertModelOutput`: ``last_hidden_state`` (N, L, hidden_size) and ``pooler_output``
        (N, hidden_size) = tanh(dense(first token)), None without the pooling layer.

    Example:
        >>> import ember
        >>> from ember.models import BertConfig, BertModel
        >>> cfg = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        ...                  intermediate_size=16, max_position_embeddings=16)
        >>> out = BertModel(cfg)(ember.ones(2, 5, dtype=ember.int64))
        >>> tuple(out.last_hidden_state.shape), tuple(out.pooler_output.shape)
        ((2, 5, 8), (2, 8))
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        self.pooler = _Pooler(config) if config.add_pooling_layer else None
        self._init_weights()

    def _init_weights(self) -> None:
        # Hugging Face's scheme: N(0, initializer_range) weights, zero biases, unit LayerNorm,
        # zero padding row.
        std = self.config.initializer_range
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with no_grad():
                    m.weight[m.padding_idx] = 0.0
            if isinstance(m, nn.LayerNorm):
                init.ones_(m.weight)
                init.zeros_(m.bias)

    def _attention_mask(self, attention_mask: Tensor | None, input_ids: Tensor) -> Tensor | None:
        if attention_mask is None:
            return None
        if tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ShapeError("BertModel", f"attention_mask of shape {tuple(attention_mask.shape)} does not "
                             f"match input_ids of shape {tuple(input_ids.shape)}",
                             (attention_mask, input_ids))
        keep = attention_mask != 0
        return keep[:, None, None, :]  # (N, 1, 1, L): every head and query sees the same keys

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None) -> BertModelOutput:
        if input_ids.ndim != 2:
            raise ShapeError("BertModel", "input_ids must be (batch, length)", (input_ids,))
        mask = self._attention_mask(attention_mask, input_ids)
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids, position_ids), mask)
        pooled = self.pooler(hidden) if self.pooler is not None else None
        return BertModelOutput(hidden, pooled)


def bert(config: BertConfig | None = None, **overrides: Any) -> BertModel:
    """Build a :class:`BertModel` from a config (BERT-base by default) with field overrides.

    Example:
        >>> import ember
        >>> model = ember.models.bert(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
        ...                           intermediate_size=16, vocab_size=30)
        >>> len(model.encoder.layer)
        2
    """
    config = BertConfig() if config is None else config
    if overrides:
        config = BertConfig(**{**config.__dict__, **overrides})
    return BertModel(config)


from .sentence import SentenceEncoder  # noqa: E402, F401  (ember.models.bert.SentenceEncoder)
