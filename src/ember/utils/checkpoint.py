"""Gradient checkpointing: keep only a segment's inputs, recompute its activations during backward."""
from __future__ import annotations

from typing import Any, Callable

from .._core import autograd
from .._core.custom import _record
from .._core.dispatch import STATE, state_changed
from .._core.tensor import Tensor


def _rng_state():
    try:
        from .._core import random as _random
    except ImportError:
        return None
    return _random.get_rng_state() if hasattr(_random, "get_rng_state") else None


def _set_rng_state(state) -> None:
    if state is not None:
        from .._core import random as _random

        _random.set_rng_state(state)


def checkpoint(function: Callable, *args: Any, use_reentrant: bool = False, preserve_rng_state: bool = True,
               **kwargs: Any) -> Any:
    """Run `function(*args)` without storing its intermediate activations; recompute them in backward.

    Gradients reach the tensor arguments and any parameters `function` closes over (they accumulate into
    ``.grad`` as in an ordinary backward). The random-number state is restored for the recomputation, so
    dropout masks match.

    Args:
        function: the segment to checkpoint; returns one tensor.
        *args: its arguments.
        preserve_rng_state: replay the same random numbers in the recomputation.

    Returns:
        ``function(*args)``.

    Example:
        >>> import ember
        >>> from ember.utils.checkpoint import checkpoint
        >>> x = ember.ones(3, requires_grad=True)
        >>> checkpoint(lambda t: (t.sin() * 2).sum(), x).backward()
        >>> [round(v, 4) for v in x.grad.tolist()]
        [1.0806, 1.0806, 1.0806]
    """
    if not STATE.get().grad:
        return function(*args, **kwargs)
    rng = _rng_state() if preserve_rng_state else None
    with state_changed(grad=False):
        out = function(*args, **kwargs)
    if not isinstance(out, Tensor):
        raise TypeError("checkpoint: the function must return a single tensor")

    def backward(g):
        # the recomputation draws the forward's numbers again, then the generator goes back to where it
        # was (as torch.utils.checkpoint forks it), so later draws do not repeat earlier ones
        now = _rng_state() if rng is not None else None
        _set_rng_state(rng)
        fresh = [a.detach().requires_grad_(a._requires_grad) if isinstance(a, Tensor) else a for a in args]
        try:
            with state_changed(grad=True):
                again = function(*fresh, **kwargs)
        finally:
            _set_rng_state(now)
        if not again._requires_grad:
            return tuple(None for _ in args)
        create = STATE.get().grad
        autograd.backward(again, g, retain_graph=create, create_graph=create)
        return tuple(f._grad if isinstance(f, Tensor) else None for f in fresh)

    _record("Checkpoint", args, out, backward)
    return out
