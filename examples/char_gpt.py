"""Train a small character-level GPT on Tiny Shakespeare and sample text from it.

Usage: python examples/char_gpt.py [--data PATH] [--steps N] [--compile]

The text file defaults to ``../shared/data/tinyshakespeare.txt`` next to the checkout; any plain text
file works.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import ember
import ember.nn.functional as F
from ember.data.text import CharDataset

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tinyshakespeare.txt")


def main(data: str = DEFAULT_DATA, steps: int = 400, batch_size: int = 16, block_size: int = 64,
         n_layer: int = 2, n_head: int = 4, n_embd: int = 96, lr: float = 3e-3, sample_chars: int = 300,
         log_every: int = 50, prompt: str = "ROMEO:", compile: bool = False) -> dict:
    ember.manual_seed(0)
    ds = CharDataset(data, block_size=block_size)
    model = ember.models.gpt(vocab_size=ds.vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                             n_embd=n_embd, dropout=0.0)
    opt = ember.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = ember.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 10)
    rng = np.random.default_rng(0)

    def train_step(x, y):
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, ds.vocab_size), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        ember.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    if compile:  # one graph for the whole step; the schedule's learning rate is read at each run
        train_step = ember.jit(train_step)
    losses = []
    start = time.perf_counter()
    for step in range(steps):
        idx = rng.integers(0, len(ds), batch_size)
        x = ember.stack([ds[int(i)][0] for i in idx])
        y = ember.stack([ds[int(i)][1] for i in idx])
        loss = train_step(x, y)
        sched.step()
        losses.append(float(loss))
        if step % log_every == 0 or step == steps - 1:
            rate = (step + 1) * batch_size * block_size / (time.perf_counter() - start)
            print(f"step {step:4d}  loss {np.mean(losses[-log_every:]):.3f}  ({rate:.0f} tokens/s)")
    model.eval()
    with ember.no_grad():
        out = model.generate(ember.tensor([ds.encode(prompt)]), max_new_tokens=sample_chars,
                             temperature=0.8, top_k=10)
    text = ds.decode(out[0].tolist())
    print("-" * 40)
    print(text)
    return {"first_loss": losses[0], "final_loss": float(np.mean(losses[-20:])), "sample": text,
            "losses": losses}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--compile", action="store_true", help="compile the training step with ember.jit")
    args = parser.parse_args()
    main(args.data, args.steps, compile=args.compile)
