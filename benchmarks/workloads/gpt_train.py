"""GPT training step: vocab 512, context 128, d_model 256, 4 layers, 4 heads, GELU MLP 4×, pre-LayerNorm,
batch 16, AdamW, float32, ms per step.

Ember runs ``ember.models.GPT`` (GPT-2 parameter names, tied token embedding and output layer);
PyTorch runs the same architecture written here with the same parameter names, so Ember's initial
weights load into it directly. The first losses are checked to agree before timing.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as tF

import ember
from ember.models import GPT, GPTConfig

from ..harness import Row
from .mlp_train import check_losses, copy_weights, ember_trainer, time_steps, torch_trainer


class TorchAttention(tnn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.c_attn, self.c_proj, self.heads = tnn.Linear(d, 3 * d), tnn.Linear(d, d), heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = (z.view(n, t, self.heads, c // self.heads).transpose(1, 2)
                   for z in self.c_attn(x).split(c, dim=2))
        y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(n, t, c))


class TorchMLP(tnn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.c_fc, self.c_proj = tnn.Linear(d, 4 * d), tnn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(tF.gelu(self.c_fc(x)))


class TorchBlock(tnn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln_1, self.attn = tnn.LayerNorm(d), TorchAttention(d, heads)
        self.ln_2, self.mlp = tnn.LayerNorm(d), TorchMLP(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(tnn.Module):
    """GPT-2 architecture with GPT-2 parameter names; the output layer shares the token embedding."""

    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(c.vocab_size, c.n_embd), wpe=tnn.Embedding(c.block_size, c.n_embd),
            h=tnn.ModuleList([TorchBlock(c.n_embd, c.n_head) for _ in range(c.n_layer)]),
            ln_f=tnn.LayerNorm(c.n_embd)))
        self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[-1])
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def run(quick: bool = False) -> list[Row]:
    if quick:
        config, batch = GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=16), 2
    else:
        config, batch = GPTConfig(vocab_size=512, block_size=128, n_layer=4, n_head=4, n_embd=256), 16
    ember.manual_seed(0)
    model, peer = GPT(config), TorchGPT(config)
    copy_weights(model, peer)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, config.vocab_size, (batch, config.block_size + 1))
    x, y = tokens[:, :-1], tokens[:, 1:].reshape(-1)
    ember_step = ember_trainer(model, ember.optim.AdamW(model.parameters(), lr=3e-4), ember.tensor(x),
                               ember.tensor(y))
    torch_step = torch_trainer(peer, torch.optim.AdamW(peer.parameters(), lr=3e-4), torch.from_numpy(x),
                               torch.from_numpy(y))
    check_losses("gpt_train", ember_step, torch_step)
    case = (f"GPT {config.n_layer}L d{config.n_embd} {config.n_head}h, vocab {config.vocab_size}, "
            f"{batch}x{config.block_size} tokens, AdamW")
    return [time_steps("gpt_train", case, ember_step, torch_step, quick, 1.5)]
