"""GPT training step: vocab 512, context 128, d_model 256, 4 layers, 4 heads, GELU MLP 4×, pre-LayerNorm,
batch 16, AdamW, float32, ms per step.

Ember runs ``ember.models.GPT`` (GPT-2 parameter names, tied token embedding and output layer);
PyTorch runs the same architecture written here with the same parameter names, so Ember's initial
weights load into it directly. The first losses are checked to agree before timing.

Rows: eager and compiled (``ember.jit`` of the whole step) against PyTorch eager and ``torch.compile``
(see :mod:`.training`); the peak memory of one compiled step against one PyTorch eager step; and the
compile time of the step (first call minus a steady call) in a fresh process with an empty kernel cache
(cold) and again with the cache it filled (warm).
"""
from __future__ import annotations

import copy
import dataclasses
import tempfile

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as tF

import ember
from ember.models import GPT, GPTConfig

from ..harness import Row, Target, compare
from .training import (
    compile_seconds,
    copy_weights,
    ember_step_peak,
    ember_trainer,
    torch_step_peak,
    torch_trainer,
    training_rows,
)


class TorchAttention(tnn.Module):
    def __init__(self, d: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.c_attn, self.c_proj, self.heads = tnn.Linear(d, 3 * d), tnn.Linear(d, d), heads
        self.resid_dropout, self.p = tnn.Dropout(dropout), dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = (z.view(n, t, self.heads, c // self.heads).transpose(1, 2)
                   for z in self.c_attn(x).split(c, dim=2))
        p = self.p if self.training else 0.0
        y = tF.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(n, t, c)))


class TorchMLP(tnn.Module):
    def __init__(self, d: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.c_fc, self.c_proj = tnn.Linear(d, 4 * d), tnn.Linear(4 * d, d)
        self.dropout = tnn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(tF.gelu(self.c_fc(x))))


class TorchBlock(tnn.Module):
    def __init__(self, d: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.ln_1, self.attn = tnn.LayerNorm(d), TorchAttention(d, heads, dropout)
        self.ln_2, self.mlp = tnn.LayerNorm(d), TorchMLP(d, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(tnn.Module):
    """GPT-2 architecture with GPT-2 parameter names; the output layer shares the token embedding."""

    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(c.vocab_size, c.n_embd), wpe=tnn.Embedding(c.block_size, c.n_embd),
            h=tnn.ModuleList([TorchBlock(c.n_embd, c.n_head, c.dropout) for _ in range(c.n_layer)]),
            ln_f=tnn.LayerNorm(c.n_embd)))
        self.drop = tnn.Dropout(c.dropout)
        self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[-1])
        x = self.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


_COMPILE_SETUP = """
import numpy as np
import ember
import ember.nn.functional as F
from ember.models import GPT, GPTConfig
ember.manual_seed(0)
model = GPT(GPTConfig(vocab_size=512, block_size=128, n_layer=4, n_head=4, n_embd=256))
opt = ember.optim.AdamW(model.parameters(), lr=3e-4)
tokens = np.random.default_rng(0).integers(0, 512, (16, 129))
x, y = ember.tensor(tokens[:, :-1]), ember.tensor(tokens[:, 1:].reshape(-1))

@ember.jit
def train(x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x).reshape(-1, 512), y)
    loss.backward()
    opt.step()
    return loss

step = lambda: train(x, y).item()
"""


def _memory_row(model: GPT, peer: torch.nn.Module, x: np.ndarray, y: np.ndarray, case: str) -> Row:
    """Peak bytes of one compiled Ember step and one PyTorch eager step (each on a fresh copy, warm)."""
    model, peer = copy.deepcopy(model), copy.deepcopy(peer)
    opt = ember.optim.AdamW(model.parameters(), lr=3e-4)
    peer_opt = torch.optim.AdamW(peer.parameters(), lr=3e-4)
    ours = ember_trainer(model, opt, ember.tensor(x), ember.tensor(y), jit=True)
    theirs = torch_trainer(peer, peer_opt, torch.from_numpy(x), torch.from_numpy(y))
    for _ in range(2):
        ours(), theirs()
    mb = 1 / 2 ** 20
    peak = {"ember": ember_step_peak(model, opt, ours) * mb,
            "torch": torch_step_peak(peer, peer_opt, theirs) * mb}
    return Row("gpt_train", f"{case}, peak memory of one step (ember.jit vs eager)", "MB", peak["ember"],
               {"torch": peak["torch"]}, Target("torch", 1.0))


def _dropout_row(config: GPTConfig, x: np.ndarray, y: np.ndarray, case: str, quick: bool) -> Row:
    """The compiled step of the same GPT with dropout 0.1 (embeddings, attention weights, residual
    branches) against PyTorch eager. The masks differ between frameworks, so only the first losses are
    compared, loosely; compiled-against-eager equality of Ember's own losses is a unit test."""
    config = dataclasses.replace(config, dropout=0.1)
    ember.manual_seed(0)
    model, peer = GPT(config), TorchGPT(config)
    copy_weights(model, peer)
    ours = ember_trainer(model, ember.optim.AdamW(model.parameters(), lr=3e-4), ember.tensor(x),
                         ember.tensor(y), jit=True)
    theirs = torch_trainer(peer, torch.optim.AdamW(peer.parameters(), lr=3e-4), torch.from_numpy(x),
                           torch.from_numpy(y))
    first, reference = ours(), theirs()
    if not abs(first - reference) <= 0.05 * abs(reference):
        raise AssertionError(f"gpt_train (dropout): first loss {first!r} vs {reference!r} (torch)")
    times = compare({"ember_jit": ours, "torch": theirs}, warmup=1 if quick else 2, repeat=1 if quick else 7)
    return Row("gpt_train", f"{case}, dropout 0.1, ember.jit", "ms/step", times["ember_jit"] * 1e3,
               {"torch": times["torch"] * 1e3}, Target("torch", 1.0))


def _compile_rows(case: str) -> list[Row]:
    with tempfile.TemporaryDirectory() as cache:
        cold = compile_seconds(_COMPILE_SETUP, cache)
        warm = compile_seconds(_COMPILE_SETUP, cache)
    return [Row("gpt_train", f"{case}, compile time (cold kernel cache)", "s", cold),
            Row("gpt_train", f"{case}, compile time (warm kernel cache)", "s", warm)]


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
    case = (f"GPT {config.n_layer}L d{config.n_embd} {config.n_head}h, vocab {config.vocab_size}, "
            f"{batch}x{config.block_size} tokens, AdamW")
    pristine = copy.deepcopy(model), copy.deepcopy(peer)
    rows = training_rows("gpt_train", case, model, peer, lambda m: ember.optim.AdamW(m.parameters(), lr=3e-4),
                         lambda m: torch.optim.AdamW(m.parameters(), lr=3e-4), x, y, quick,
                         eager_limit=1.5, jit_limit=1.0, torch_compile_limit=1.2)
    rows.append(_memory_row(*pristine, x, y, case))
    rows.append(_dropout_row(config, x, y, case, quick))
    if not quick:
        rows += _compile_rows(case)
    return rows
