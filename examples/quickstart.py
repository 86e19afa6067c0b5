"""Quick start: train a small MLP on scikit-learn's handwritten digits (8×8 images, offline) with
ember.nn, ember.optim and autograd, then report test accuracy."""
from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits

import ember
import ember.nn as nn
import ember.nn.functional as F


def main(epochs: int = 30, batch_size: int = 64) -> float:
    ember.manual_seed(0)
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    x_train, y_train = ember.tensor(x[:split]), ember.tensor(y[:split])
    x_test, y_test = ember.tensor(x[split:]), y[split:]

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    opt = ember.optim.Adam(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = ember.randperm(split)
        total = 0.0
        for i in range(0, split, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        if epoch % 5 == 0 or epoch == epochs - 1:
            print(f"epoch {epoch:2d}  loss {total / split:.4f}")
    model.eval()
    with ember.no_grad():
        pred = model(x_test).argmax(1).numpy()
    accuracy = float((pred == y_test).mean())
    print(f"test accuracy {accuracy:.3f}  ({time.perf_counter() - start:.1f} s)")
    return accuracy


if __name__ == "__main__":
    main()
