"""Pretrained weights: PyTorch-layout state dicts (safetensors files or dicts) loaded into the zoo models.

The zoo models already use their reference implementations' parameter names (torchvision for ResNet, VGG
and MobileNetV2; Hugging Face for GPT-2 and BERT), so most checkpoints load by name. Where a checkpoint
differs, a :class:`KeyMapping` says how: optional prefixes (``transformer.``, ``bert.``), keys to drop
(non-persistent buffers saved by older releases, heads the model does not have), renames (old
``gamma``/``beta`` LayerNorm names) and weights to transpose (GPT-2's ``Conv1D`` layers store
``(in, out)``).
"""
from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple

import numpy as np

from .. import nn
from .._core.tensor import Tensor
from ..io import load_file
from ..nn import StateDictError, init
from .bert import BertModel
from .gpt import GPT

__all__ = ["KeyMapping", "LoadResult", "MAPPINGS", "IDENTITY", "GPT2_HF", "BERT_HF", "map_state_dict",
           "load_pretrained", "skip_random_init"]

_RANDOM_INITS = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                 "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


@dataclass(frozen=True)
class KeyMapping:
    """How the keys of a checkpoint become the keys of a model's state dict.

    Each checkpoint key goes through, in order: `drop` (a key matching one of these regular expressions is
    left out), `renames` (``re.sub(pattern, replacement, key)`` for each pair), then `prefixes` (the key
    may carry or lack each of these prefixes relative to the model's name: ``bert.pooler.dense.weight``
    and ``h.0.ln_1.weight`` find ``pooler.dense.weight`` and ``transformer.h.0.ln_1.weight``). A 2-D
    tensor whose model key matches one of `transpose` is transposed.

    Args:
        name: shown in error messages.
        prefixes: optional prefixes.
        drop: patterns of checkpoint keys to leave out.
        renames: ``(pattern, replacement)`` substitutions.
        transpose: patterns of model keys whose 2-D tensors are transposed.

    Example:
        >>> from ember.models import KeyMapping
        >>> m = KeyMapping("old", renames=((r"\\.gamma$", ".weight"),))
        >>> m.rename("norm.gamma")
        'norm.weight'
    """

    name: str
    prefixes: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    transpose: tuple[str, ...] = ()

    def dropped(self, key: str) -> bool:
        """Whether checkpoint `key` (or `key` without one of the optional prefixes) is left out."""
        forms = [key] + [key[len(p):] for p in self.prefixes if key.startswith(p)]
        return any(re.search(p, form) for p in self.drop for form in forms)

    def rename(self, key: str) -> str:
        """`key` after the renames (prefixes are resolved against the model by :func:`map_state_dict`)."""
        for pattern, replacement in self.renames:
            key = re.sub(pattern, replacement, key)
        return key

    def candidates(self, key: str) -> list[str]:
        """Model keys that renamed checkpoint `key` may stand for, most literal first."""
        out = [key]
        for p in self.prefixes:
            out.append(key[len(p):] if key.startswith(p) else p + key)
        return out

    def transposed(self, model_key: str) -> bool:
        """Whether the tensor loaded into `model_key` is transposed."""
        return any(re.search(p, model_key) for p in self.transpose)

    def extend(self, *, drop: tuple[str, ...] = (),
               renames: tuple[tuple[str, str], ...] = ()) -> "KeyMapping":
        """This mapping with more keys to drop and more renames.

        Example:
            >>> from ember.models import BERT_HF
            >>> BERT_HF.extend(drop=(r"^pooler\\.",)).dropped("pooler.dense.weight")
            True
        """
        return KeyMapping(self.name, self.prefixes, self.drop + drop, self.renames + renames, self.transpose)


IDENTITY = KeyMapping("identity")
"""Names already match (torchvision's ResNet, VGG and MobileNetV2 checkpoints; Ember's own state dicts)."""

GPT2_HF = KeyMapping(
    "gpt2", prefixes=("transformer.",),
    drop=(r"\.attn\.bias$", r"\.attn\.masked_bias$"),
    transpose=(r"\.(c_attn|c_proj|c_fc)\.weight$",))
"""Hugging Face GPT-2 (``GPT2Model`` or ``GPT2LMHeadModel``): Conv1D weights transposed, the causal-mask
buffers dropped, the ``transformer.`` prefix optional, ``lm_head.weight`` optional when tied."""

BERT_HF = KeyMapping(
    "bert", prefixes=("bert.",),
    drop=(r"^embeddings\.position_ids$", r"^cls\."),
    renames=((r"LayerNorm\.gamma$", "LayerNorm.weight"), (r"LayerNorm\.beta$", "LayerNorm.bias")))
"""Hugging Face BERT (``BertModel`` or a task model's ``bert.`` part): ``position_ids`` dropped, the
pre-training heads (``cls.``) dropped, old ``gamma``/``beta`` LayerNorm names renamed."""

MAPPINGS: dict[str, KeyMapping] = {"identity": IDENTITY, "torchvision": IDENTITY, "gpt2": GPT2_HF,
                                   "bert": BERT_HF}


class LoadResult(NamedTuple):
    """What :func:`load_pretrained` did: model keys left as they were (only with ``strict=False``),
    checkpoint keys it did not use (only with ``strict=False``), and checkpoint keys the mapping dropped."""

    missing_keys: list[str]
    unexpected_keys: list[str]
    dropped_keys: list[str]


def _as_array(value: Any, key: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value._device.backend.to_numpy(value.detach()._data)
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a PyTorch tensor, without importing torch
        return value.detach().cpu().numpy()
    raise StateDictError("load_pretrained", f"checkpoint entry {key!r} is a {type(value).__name__}, not a "
                         "tensor or array")


def _read(source: Any) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    path = Path(os.fspath(source))
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise StateDictError("load_pretrained", f"no checkpoint file at {str(path)!r}")
    return load_file(path)


def _resolve(mapping: KeyMapping | str | None, model: nn.Module, state: Mapping[str, Any]) -> KeyMapping:
    if isinstance(mapping, KeyMapping):
        return mapping
    if isinstance(mapping, str):
        if mapping not in MAPPINGS:
            raise StateDictError("load_pretrained", f"unknown mapping {mapping!r}; known: {sorted(MAPPINGS)}")
        return MAPPINGS[mapping]
    if isinstance(model, BertModel):
        return BERT_HF
    if isinstance(model, GPT):
        return GPT2_HF if _conv1d_layout(model, state) else IDENTITY.extend(drop=GPT2_HF.drop)
    return IDENTITY


def _conv1d_layout(model: GPT, state: Mapping[str, Any]) -> bool:
    """Whether a GPT checkpoint stores ``c_attn`` as Conv1D ``(in, 3·in)`` (Hugging Face) or (3·in, in)."""
    width = model.config.n_embd
    shapes = [tuple(v.shape) for k, v in state.items() if k.endswith("attn.c_attn.weight")]
    return any(s == (width, 3 * width) for s in shapes)


def map_state_dict(model: nn.Module, state: Mapping[str, Any],
                   mapping: KeyMapping | str | None = None) -> tuple[dict[str, np.ndarray], LoadResult]:
    """Rename (and transpose where the mapping says) a checkpoint's entries to `model`'s keys.

    Nothing is copied into the model and nothing is checked: :func:`load_pretrained` does both.

    Args:
        model: the target module.
        state: checkpoint key -> tensor (ember, NumPy or PyTorch).
        mapping: a :class:`KeyMapping`, a name in :data:`MAPPINGS`, or None to choose by model type.

    Returns:
        ``(mapped, result)``: model key -> array, and a :class:`LoadResult` whose `missing_keys` are the
        model keys nothing maps to (tied parameters count as loaded with their twin) and whose
        `unexpected_keys` are the checkpoint keys that match no model key.

    Example:
        >>> import numpy as np, ember
        >>> from ember.models import map_state_dict
        >>> state = {"bert.embeddings.LayerNorm.gamma": np.ones(4, np.float32)}
        >>> model = ember.models.bert(hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
        ...                           intermediate_size=8, vocab_size=10)
        >>> mapped, result = map_state_dict(model, state)
        >>> list(mapped), len(result.missing_keys) > 0
        (['embeddings.LayerNorm.weight'], True)
    """
    mapping = _resolve(mapping, model, state)
    own = model.state_dict(keep_vars=True)
    mapped: dict[str, np.ndarray] = {}
    unexpected, dropped = [], []
    for key, value in state.items():
        if mapping.dropped(key):
            dropped.append(key)
            continue
        target = next((c for c in mapping.candidates(mapping.rename(key)) if c in own), None)
        if target is None:
            unexpected.append(key)
            continue
        arr = _as_array(value, key)
        mapped[target] = arr.T if arr.ndim == 2 and mapping.transposed(target) else arr
    loaded = {id(own[k]) for k in mapped}
    missing = [k for k in own if k not in mapped and id(own[k]) not in loaded]
    return mapped, LoadResult(missing, unexpected, dropped)


def _check(model: nn.Module, mapped: dict[str, np.ndarray], result: LoadResult, mapping_name: str,
           strict: bool) -> None:
    own = model.state_dict(keep_vars=True)
    problems = []
    if strict and result.unexpected_keys:
        problems.append("checkpoint keys with no model key: " + ", ".join(result.unexpected_keys))
    if strict and result.missing_keys:
        problems.append("model keys the checkpoint lacks: " + ", ".join(result.missing_keys))
    bad = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
           for k, v in mapped.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        problems.append("shape mismatches: " + "; ".join(bad))
    if problems:
        raise StateDictError("load_pretrained", f"cannot load the checkpoint into {type(model).__name__} "
                             f"with mapping {mapping_name!r}: " + " | ".join(problems))


def load_pretrained(model: nn.Module, source: Any, mapping: KeyMapping | str | None = None,
                    strict: bool = True) -> LoadResult:
    """Load a PyTorch-layout checkpoint into `model` in place, renaming keys with a :class:`KeyMapping`.

    Values are cast to each parameter's dtype (a float32 checkpoint loads into a float64 model).

    Args:
        model: an ``ember.nn.Module`` (e.g. ``ember.models.resnet18()``, ``gpt()``, ``bert()``).
        source: a safetensors file, a directory holding ``model.safetensors``, or a dict of tensors
            (ember, NumPy or PyTorch).
        mapping: a :class:`KeyMapping`, one of ``"identity"``, ``"torchvision"``, ``"gpt2"``, ``"bert"``, or
            None: ``"bert"`` for a BertModel, ``"gpt2"`` for a GPT whose checkpoint has Conv1D weights
            (Ember's own GPT state dicts load unchanged), ``"identity"`` otherwise.
        strict: every model key must be loaded and every checkpoint key used (dropped keys aside).

    Returns:
        A :class:`LoadResult` (missing, unexpected and dropped keys).

    Raises:
        StateDictError: listing every unmapped checkpoint key and every model key left out (when
            `strict`) and every shape mismatch (always); nothing is copied then.

    Example:
        >>> import numpy as np, ember
        >>> from ember.models import load_pretrained
        >>> model = ember.models.gpt(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4)
        >>> hf = {k.replace("transformer.", ""): v.numpy() for k, v in model.state_dict().items()
        ...       if k != "lm_head.weight"}
        >>> for k in list(hf):
        ...     if k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
        ...         hf[k] = hf[k].T  # Hugging Face's Conv1D layout
        >>> hf["h.0.attn.bias"] = np.tril(np.ones((1, 1, 4, 4), np.float32))
        >>> load_pretrained(model, hf).dropped_keys
        ['h.0.attn.bias']
    """
    state = _read(source)
    resolved = _resolve(mapping, model, state)
    mapped, result = map_state_dict(model, state, resolved)
    _check(model, mapped, result, resolved.name, strict)
    model.load_state_dict(mapped, strict=False)
    return result


@contextlib.contextmanager
def skip_random_init() -> Iterator[None]:
    """Build models without drawing their random initial weights (a checkpoint overwrites them anyway).

    Inside the block the random initialisers of ``ember.nn.init`` leave tensors as allocated; constant
    ones (``zeros_``, ``ones_``) still run. Drawing BERT-base's 110M initial numbers takes seconds; a
    model built here must get every parameter from a checkpoint (``load_pretrained(..., strict=True)``
    checks that). The switch is process-wide while the block runs: do not build models in other threads
    meanwhile.

    Example:
        >>> import ember
        >>> from ember.models import load_pretrained, skip_random_init
        >>> source = ember.nn.Linear(3, 2)
        >>> with skip_random_init():
        ...     target = ember.nn.Linear(3, 2)
        >>> _ = load_pretrained(target, source.state_dict())
        >>> target.weight.tolist() == source.weight.tolist()
        True
    """
    saved = {name: getattr(init, name) for name in _RANDOM_INITS}
    try:
        for name in _RANDOM_INITS:
            setattr(init, name, _leave_as_is)
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


def _leave_as_is(tensor: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    return tensor
