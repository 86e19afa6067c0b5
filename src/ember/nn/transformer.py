"""Transformer layers: encoder and decoder layers and stacks, and the full Transformer (PyTorch's API).

Submodule names (``self_attn``, ``multihead_attn``, ``linear1``, ``linear2``, ``norm1``…) follow PyTorch
so that state dicts load either way.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from .._core import creation, dtypes
from .._core.errors import ShapeError
from .._core.tensor import Tensor
from . import functional as F
from . import init
from .activation_attn import MultiheadAttention
from .containers import ModuleList
from .layers import Dropout, Linear
from .module import Module
from .normalization import LayerNorm

__all__ = ["TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer", "TransformerDecoder",
           "Transformer"]

_ACTIVATIONS: dict[str, Callable] = {"relu": F.relu, "gelu": F.gelu}


def _activation(activation: str | Callable) -> Callable:
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation should be relu/gelu, not {activation}")
        return _ACTIVATIONS[activation]
    return activation


def _layer_norm(d_model: int, eps: float, bias: bool, device: Any, dtype: Any) -> Module:
    return LayerNorm(d_model, eps=eps, bias=bias, device=device, dtype=dtype)


def _clones(module: Module, n: int) -> ModuleList:
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


def _hint(is_causal: bool | None) -> bool:
    return bool(is_causal) if is_causal is not None else False


class _FeedForwardLayer(Module):
    """The position-wise feed-forward block and the options shared by encoder and decoder layers."""

    def _init_common(self, d_model: int, dim_feedforward: int, dropout: float, activation: str | Callable,
                     norm_first: bool, bias: bool, device: Any, dtype: Any) -> None:
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm_first = norm_first
        self.activation = _activation(activation)
        self.activation_relu_or_gelu = {F.relu: 1, F.gelu: 2}.get(self.activation, 0)

    def _ff_block(self, x: Tensor, out_dropout: Module) -> Tensor:
        return out_dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    @staticmethod
    def _attend(attn: MultiheadAttention, x: Tensor, mem: Tensor, mask: Tensor | None,
                key_padding_mask: Tensor | None, is_causal: bool, out_dropout: Module) -> Tensor:
        out = attn(x, mem, mem, attn_mask=mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                   need_weights=False)[0]
        return out_dropout(out)


class TransformerEncoderLayer(_FeedForwardLayer):
    """Self-attention followed by a feed-forward network, each with a residual connection and LayerNorm.

    Post-norm (default): ``x = norm1(x + sa(x)); x = norm2(x + ff(x))``; with `norm_first`:
    ``x = x + sa(norm1(x)); x = x + ff(norm2(x))``.

    Args:
        d_model: model dimension.
        nhead: attention heads.
        dim_feedforward: hidden size of the feed-forward network.
        dropout: dropout after attention, inside and after the feed-forward network.
        activation: "relu", "gelu" or a callable.
        layer_norm_eps: LayerNorm epsilon.
        batch_first: tensors are ``(N, S, E)`` instead of ``(S, N, E)``.
        norm_first: pre-norm instead of post-norm.
        bias: learn biases in the linear layers and LayerNorms.

    Shape:
        src ``(S, N, E)`` (``(N, S, E)`` with batch_first, ``(S, E)`` unbatched); src_mask ``(S, S)`` or
        ``(N·nhead, S, S)``; src_key_padding_mask ``(N, S)``. Output shaped like src.

    Example:
        >>> import ember
        >>> layer = ember.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
        >>> tuple(layer(ember.randn(3, 5, 8)).shape)
        (3, 5, 8)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable = F.relu, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, device=device, dtype=dtype)
        self._init_common(d_model, dim_feedforward, dropout, activation, norm_first, bias, device, dtype)
        self.norm1 = _layer_norm(d_model, layer_norm_eps, bias, device, dtype)
        self.norm2 = _layer_norm(d_model, layer_norm_eps, bias, device, dtype)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)

    def forward(self, src: Tensor, src_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x), self.dropout2)
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x, self.dropout2))

    def _sa_block(self, x: Tensor, mask: Tensor | None, key_padding_mask: Tensor | None,
                  is_causal: bool) -> Tensor:
        return self._attend(self.self_attn, x, x, mask, key_padding_mask, is_causal, self.dropout1)


class TransformerDecoderLayer(_FeedForwardLayer):
    """Self-attention, attention over the encoder output (memory), then a feed-forward network.

    Each block has a residual connection and a LayerNorm (``norm1``, ``norm2``, ``norm3``), after the
    block by default or before it with `norm_first`.

    Args:
        d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first, bias:
            as in :class:`TransformerEncoderLayer`.

    Shape:
        tgt ``(T, N, E)``, memory ``(S, N, E)`` (batch first with `batch_first`); tgt_mask ``(T, T)``;
        memory_mask ``(T, S)``; tgt_key_padding_mask ``(N, T)``; memory_key_padding_mask ``(N, S)``.
        Output shaped like tgt.

    Example:
        >>> import ember
        >>> layer = ember.nn.TransformerDecoderLayer(8, 2, dim_feedforward=16)
        >>> tuple(layer(ember.randn(4, 2, 8), ember.randn(6, 2, 8)).shape)
        (4, 2, 8)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable = F.relu, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, device=device, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, device=device, dtype=dtype)
        self._init_common(d_model, dim_feedforward, dropout, activation, norm_first, bias, device, dtype)
        self.norm1 = _layer_norm(d_model, layer_norm_eps, bias, device, dtype)
        self.norm2 = _layer_norm(d_model, layer_norm_eps, bias, device, dtype)
        self.norm3 = _layer_norm(d_model, layer_norm_eps, bias, device, dtype)
        self.dropout1, self.dropout2, self.dropout3 = Dropout(dropout), Dropout(dropout), Dropout(dropout)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, tgt_key_padding_mask: Tensor | None = None,
                memory_key_padding_mask: Tensor | None = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> Tensor:
        x = tgt
        sa = (tgt_mask, tgt_key_padding_mask, tgt_is_causal, self.dropout1)
        mha = (memory_mask, memory_key_padding_mask, memory_is_causal, self.dropout2)
        if self.norm_first:
            y = self.norm1(x)
            x = x + self._attend(self.self_attn, y, y, *sa)
            x = x + self._attend(self.multihead_attn, self.norm2(x), memory, *mha)
            return x + self._ff_block(self.norm3(x), self.dropout3)
        x = self.norm1(x + self._attend(self.self_attn, x, x, *sa))
        x = self.norm2(x + self._attend(self.multihead_attn, x, memory, *mha))
        return self.norm3(x + self._ff_block(x, self.dropout3))


class TransformerEncoder(Module):
    """A stack of `num_layers` copies of `encoder_layer` (each with its own parameters), then `norm`.

    Args:
        encoder_layer: the layer to copy.
        num_layers: number of layers.
        norm: optional final normalisation module.
        enable_nested_tensor, mask_check: accepted for PyTorch compatibility (no nested-tensor fast
            path: padded positions are computed like the others).

    Example:
        >>> import ember
        >>> layer = ember.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
        >>> enc = ember.nn.TransformerEncoder(layer, num_layers=2)
        >>> tuple(enc(ember.randn(5, 3, 8)).shape)
        (5, 3, 8)
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check

    def forward(self, src: Tensor, mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool | None = None) -> Tensor:
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                        is_causal=_hint(is_causal))
        return out if self.norm is None else self.norm(out)


class TransformerDecoder(Module):
    """A stack of `num_layers` copies of `decoder_layer`, then `norm`.

    Example:
        >>> import ember
        >>> layer = ember.nn.TransformerDecoderLayer(8, 2, dim_feedforward=16)
        >>> dec = ember.nn.TransformerDecoder(layer, num_layers=2)
        >>> tuple(dec(ember.randn(4, 3, 8), ember.randn(6, 3, 8)).shape)
        (4, 3, 8)
    """

    def __init__(self, decoder_layer: Module, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, tgt_key_padding_mask: Tensor | None = None,
                memory_key_padding_mask: Tensor | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        out = tgt
        for layer in self.layers:
            out = layer(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=_hint(tgt_is_causal),
                        memory_is_causal=memory_is_causal)
        return out if self.norm is None else self.norm(out)


class Transformer(Module):
    """The encoder-decoder Transformer ("Attention Is All You Need"), as ``torch.nn.Transformer``.

    Args:
        d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first, bias:
            as in :class:`TransformerEncoderLayer`.
        num_encoder_layers, num_decoder_layers: depth of the two stacks.
        custom_encoder, custom_decoder: modules used instead of the default stacks.

    Shape:
        src ``(S, N, E)``, tgt ``(T, N, E)`` (batch first with `batch_first`) -> ``(T, N, E)``.

    Example:
        >>> import ember
        >>> model = ember.nn.Transformer(8, 2, 1, 1, dim_feedforward=16)
        >>> mask = ember.nn.Transformer.generate_square_subsequent_mask(4)
        >>> tuple(model(ember.randn(6, 2, 8), ember.randn(4, 2, 8), tgt_mask=mask).shape)
        (4, 2, 8)
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable = F.relu, custom_encoder: Module | None = None,
                 custom_decoder: Module | None = None, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        layer_args = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                          layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first,
                          bias=bias, device=device, dtype=dtype)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, **layer_args)
            norm = _layer_norm(d_model, layer_norm_eps, bias, device, dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, **layer_args)
            norm = _layer_norm(d_model, layer_norm_eps, bias, device, dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, norm)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Xavier-uniform initialisation of every parameter with more than one dimension."""
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None,
                tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None,
                tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Tensor:
        batch_dim = 0 if self.batch_first else 1
        if src.ndim == 3 and tgt.ndim == 3 and src.shape[batch_dim] != tgt.shape[batch_dim]:
            raise ShapeError("Transformer", "the batch number of src and tgt must be equal", (src, tgt))
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ShapeError("Transformer", f"the feature number of src and tgt must be equal to d_model "
                             f"({self.d_model})", (src, tgt))
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
        """The float causal mask of size ``(sz, sz)``: 0 on and below the diagonal, -inf above.

        Example:
            >>> import ember
            >>> ember.nn.Transformer.generate_square_subsequent_mask(2).tolist()
            [[0.0, -inf], [0.0, 0.0]]
        """
        mask = np.triu(np.full((sz, sz), -np.inf), 1)
        return creation.tensor(mask, dtype=dtype if dtype is not None else dtypes.get_default_dtype(),
                               device=device)
