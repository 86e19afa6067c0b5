"""GPT: a decoder-only transformer with GPT-2's parameter names (``transformer.h.N.attn.c_attn``…).

The projections are ``Linear`` layers (weights ``(out, in)``); Hugging Face's GPT-2 checkpoints store
them as ``Conv1D`` weights ``(in, out)``, so ``c_attn``, ``c_proj`` and ``c_fc`` weights are transposed
when loading those.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import nn
from .._core import random
from .._core.autograd import no_grad
from .._core.errors import ShapeError
from .._core.primitives import indexing, movement
from .._core.tensor import Tensor
from ..nn import functional as F
from ..nn import init

__all__ = ["GPTConfig", "GPT", "CausalSelfAttention", "GPTBlock", "gpt"]


@dataclass
class GPTConfig:
    """Hyper-parameters of :class:`GPT` (defaults: GPT-2 small, 124,439,808 parameters).

    Attributes:
        vocab_size: number of tokens.
        block_size: longest sequence (positions).
        n_layer: transformer blocks.
        n_head: attention heads (must divide `n_embd`).
        n_embd: model width.
        dropout: dropout on embeddings, attention weights and residual branches.
        bias: biases in Linear and LayerNorm layers (GPT-2 has them).
        tie_weights: ``lm_head`` shares the token-embedding matrix (GPT-2 does).
    """

    vocab_size: int = 50257
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions ≤ t.

    ``c_attn`` projects to queries, keys and values at once (``3·n_embd`` outputs), ``c_proj`` mixes the
    heads back.

    Shape: (N, T, n_embd) -> (N, T, n_embd).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if config.n_embd % config.n_head:
            raise ShapeError("GPT", f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x: Tensor) -> Tensor:
        n, t, c = x.shape
        q, k, v = movement.split(self.c_attn(x), self.n_embd, dim=2)
        q, k, v = (movement.transpose(z.reshape(n, t, self.n_head, c // self.n_head), 1, 2)
                   for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        y = movement.transpose(y, 1, 2).reshape(n, t, c)
        return self.resid_dropout(self.c_proj(y))


class _MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class GPTBlock(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))`` (GELU, 4× width).

    Shape: (N, T, n_embd) -> (N, T, n_embd).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = _MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer language model (GPT-2 architecture).

    Names: ``transformer.wte`` / ``wpe`` (token and position embeddings), ``transformer.h.N`` (blocks:
    ``ln_1``, ``attn.c_attn``, ``attn.c_proj``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``), ``transformer.ln_f``,
    ``lm_head`` (no bias; tied to ``wte`` by default). Initialisation as GPT-2: N(0, 0.02) weights, zero
    biases, residual projections scaled by 1/√(2·n_layer).

    Args:
        config: a :class:`GPTConfig`.

    Shape: tokens (N, T) with T ≤ block_size -> logits (N, T, vocab_size).

    Example:
        >>> import ember
        >>> from ember.models import GPT, GPTConfig
        >>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
        >>> tuple(model(ember.zeros(2, 5, dtype=ember.int64)).shape)
        (2, 5, 11)
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([GPTBlock(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias)))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self._init_weights()
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                init.zeros_(m.bias)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.config.n_layer))

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[-1]
        if t > self.config.block_size:
            raise ShapeError("GPT", f"cannot run a sequence of length {t}: block_size is "
                             f"{self.config.block_size}", (idx,))
        # Rows 0..t-1 of the position table: the same as wpe(arange(t)), and it follows t when traced.
        pos = self.transformer.wpe.weight[:t]
        x = self.transformer.drop(self.transformer.wte(idx) + pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: random.Generator | None = None) -> Tensor:
        """Append `max_new_tokens` sampled tokens to each row of `idx` (the model sees the last block_size).

        Sampling uses ember's RNG (``ember.manual_seed`` or `generator`), so a seed fixes the output.

        Args:
            idx: (N, T) int64 context.
            max_new_tokens: tokens to add.
            temperature: logits are divided by it; 0 picks the most likely token (greedy).
            top_k: sample among the k most likely tokens only.
            generator: RNG to draw from (the default generator otherwise).

        Returns:
            (N, T + max_new_tokens) int64 tokens.
        """
        with no_grad():
            for _ in range(max_new_tokens):
                logits = self(idx[:, -self.config.block_size:])[:, -1, :]
                idx = movement.cat([idx, self._next_token(logits, temperature, top_k, generator)], dim=1)
        return idx

    def _next_token(self, logits: Tensor, temperature: float, top_k: int | None,
                    generator: Any) -> Tensor:
        if temperature == 0:
            return logits.argmax(dim=-1, keepdim=True)
        logits = logits / temperature
        if top_k is not None:
            kth = indexing.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
            logits = indexing.masked_fill(logits, logits < kth, float("-inf"))
        return random.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)


def gpt(config: GPTConfig | None = None, **overrides: Any) -> GPT:
    """Build a :class:`GPT` from a config (GPT-2 small by default) with field overrides.

    Example:
        >>> import ember
        >>> model = ember.models.gpt(vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=8)
        >>> len(model.transformer.h)
        2
    """
    config = GPTConfig() if config is None else config
    if overrides:
        config = GPTConfig(**{**config.__dict__, **overrides})
    return GPT(config)
