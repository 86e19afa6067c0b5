"""Quick start: train a softmax-regression classifier on scikit-learn's handwritten digits with
ember's autograd and plain gradient descent, then report test accuracy."""
from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits

import ember


def main() -> float:
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    y = digits.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    x_train, x_test = ember.tensor(x[:split]), ember.tensor(x[split:])
    onehot = ember.tensor(np.eye(10, dtype=np.float32)[y[:split]])

    w = ember.zeros(64, 10, requires_grad=True)
    b = ember.zeros(10, requires_grad=True)
    start = time.perf_counter()
    for step in range(300):
        logits = x_train @ w + b
        # cross-entropy; logits stay small here so exp() cannot overflow
        log_probs = logits - ember.log(ember.exp(logits).sum(1, keepdim=True))
        loss = -(onehot * log_probs).sum() / split
        loss.backward()
        with ember.no_grad():
            w -= 0.5 * w.grad
            b -= 0.5 * b.grad
        w.grad = None
        b.grad = None
        if step % 50 == 0:
            print(f"step {step:3d}  loss {float(loss):.4f}")
    pred = np.argmax((x_test @ w + b).detach().numpy(), axis=1)
    accuracy = float((pred == y[split:]).mean())
    print(f"test accuracy {accuracy:.3f}  ({time.perf_counter() - start:.1f} s)")
    return accuracy


if __name__ == "__main__":
    main()
