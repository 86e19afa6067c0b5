"""Training checkpoints: model, optimiser, scheduler, step, random-number state and metadata in one
atomic file, restored in place so that a resumed run continues bit-identically."""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np

from .._core import random as ember_random
from .._core.errors import EmberError
from ._files import SerializationError, target_name
from .serialization import load, save

__all__ = ["save_checkpoint", "load_checkpoint"]

_MARKER = "ember_checkpoint"
_PARTS = ("model", "optimizer", "scheduler")


def _rng_state() -> dict:
    return {"ember": ember_random.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def _restore_rng(state: dict) -> None:
    if "ember" in state:
        ember_random.set_rng_state(state["ember"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "python" in state:
        random.setstate(state["python"])


def save_checkpoint(path: str | os.PathLike, *, model: Any = None, optimizer: Any = None,
                    scheduler: Any = None, step: Any = None, rng: bool = True, **metadata: Any) -> None:
    """Write a training checkpoint atomically (temporary file, fsync, rename over `path`).

    A crash while writing leaves the previous checkpoint at `path` intact and loadable. The file is an
    :func:`ember.save` file, so ``ember.load(path)`` shows everything in it.

    Args:
        path: the checkpoint file.
        model: a module (its ``state_dict()`` is saved).
        optimizer: an optimiser (its ``state_dict()``: per-parameter tensors and hyper-parameters).
        scheduler: a learning-rate scheduler (its ``state_dict()``).
        step: the training step or epoch, returned by :func:`load_checkpoint`.
        rng: also save the state of Ember's default generator, NumPy's global generator and Python's
            ``random`` module, which :func:`load_checkpoint` restores.
        **metadata: further values to store (anything :func:`ember.save` accepts), returned on load.

    Example:
        >>> import ember, os, tempfile
        >>> model = ember.nn.Linear(2, 1)
        >>> opt = ember.optim.Adam(model.parameters())
        >>> with tempfile.TemporaryDirectory() as d:
        ...     ember.io.save_checkpoint(os.path.join(d, "ckpt"), model=model, optimizer=opt, step=10,
        ...                              best_loss=0.5)
        ...     info = ember.io.load_checkpoint(os.path.join(d, "ckpt"), model=model, optimizer=opt)
        >>> info
        {'step': 10, 'best_loss': 0.5}
    """
    ckpt: dict[str, Any] = {_MARKER: 1, "step": step, "metadata": metadata}
    for name, obj in zip(_PARTS, (model, optimizer, scheduler)):
        if obj is not None:
            ckpt[name] = obj.state_dict()
    if rng:
        ckpt["rng"] = _rng_state()
    save(ckpt, path)


def _check_optimizer(optimizer: Any, state: Any, name: str) -> None:
    """Refuse an optimiser state that does not fit before anything has been restored."""
    groups = state.get("param_groups") if isinstance(state, dict) else None
    ours = getattr(optimizer, "param_groups", None)
    if groups is None or ours is None:
        return
    sizes = [len(g.get("params", [])) for g in groups]
    if sizes != [len(g["params"]) for g in ours]:
        raise SerializationError("load_checkpoint", f"{name}: the optimizer state has parameter groups of "
                                 f"sizes {sizes}, the optimizer {[len(g['params']) for g in ours]}")


def load_checkpoint(path: str | os.PathLike, *, model: Any = None, optimizer: Any = None,
                    scheduler: Any = None, strict: bool = True, map_location: Any = None,
                    rng: bool = True) -> dict:
    """Restore a checkpoint written by :func:`save_checkpoint` into the given objects, in place.

    Every object passed must have its state in the file. Parameters keep their identity (the optimiser
    still holds them), so training continues exactly where it stopped.

    Args:
        path: the checkpoint file.
        model: the module to load the weights into (``load_state_dict``; key mismatches raise
            ``nn.StateDictError`` listing them).
        optimizer: the optimiser to restore (built over the same parameters in the same order).
        scheduler: the learning-rate scheduler to restore.
        strict: passed to the model's ``load_state_dict``.
        map_location: where to put the tensors (see :func:`ember.load`).
        rng: restore the saved random-number states (Ember's default generator, NumPy, Python).

    Returns:
        ``{"step": step, **metadata}`` as given to :func:`save_checkpoint`.

    Raises:
        SerializationError: the file is corrupt or not a checkpoint, or lacks a state that was asked for.

    Example:
        >>> import ember, os, tempfile
        >>> model = ember.nn.Linear(2, 1)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     ember.io.save_checkpoint(os.path.join(d, "ckpt"), model=model, step=3)
        ...     ember.io.load_checkpoint(os.path.join(d, "ckpt"), model=ember.nn.Linear(2, 1))["step"]
        3
    """
    name = target_name(path)
    ckpt = load(path, map_location=map_location)
    if not (isinstance(ckpt, dict) and ckpt.get(_MARKER) == 1):
        raise SerializationError("load_checkpoint", f"{name}: not a checkpoint written by save_checkpoint")
    wanted = [(part, obj) for part, obj in zip(_PARTS, (model, optimizer, scheduler)) if obj is not None]
    missing = [part for part, _ in wanted if part not in ckpt]
    if missing:
        raise SerializationError("load_checkpoint", f"{name}: the checkpoint has no {' or '.join(missing)} "
                                 f"state (it holds: {', '.join(p for p in _PARTS if p in ckpt) or 'none'})")
    if optimizer is not None:
        _check_optimizer(optimizer, ckpt["optimizer"], name)
    for part, obj in wanted:
        try:
            if part == "model":
                obj.load_state_dict(ckpt[part], strict=strict)
            else:
                obj.load_state_dict(ckpt[part])
        except EmberError as err:
            raise type(err)("load_checkpoint", f"{name}: {part}: {err.detail}") from err
    if rng and isinstance(ckpt.get("rng"), dict):
        _restore_rng(ckpt["rng"])
    return {"step": ckpt.get("step"), **ckpt.get("metadata", {})}
