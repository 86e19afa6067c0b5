"""Gradient checkpointing: keep only a segment's inputs, recompute its activations during backward."""
from __future__ import annotations

from typing import Any, Callable

from .._core import autograd
from .._core.custom import _record
from .._core.dispatch import _SEQ, STATE, state_changed
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
    # The forward runs once with recording on, to find the tensors that require grad which the segment
    # reads from outside its arguments (closed-over parameters, or the inputs of an enclosing
    # ember.func.grad); its graph is dropped at once (the segment's activations live only while it runs,
    # as they do again in the recomputation), and those tensors become inputs of the checkpoint node,
    # so that gradients reach them through the tape like any other input.
    start = next(_SEQ)
    probe = function(*args, **kwargs)
    if not isinstance(probe, Tensor):
        raise TypeError("checkpoint: the function must return a single tensor")
    captured = autograd.captured_inputs([probe], {id(a) for a in args if isinstance(a, Tensor)}, start)
    out = probe.detach()
    del probe
    inputs = tuple(args) + tuple(captured)

    def backward(g):
        # the recomputation draws the forward's numbers again, then the generator goes back to where it
        # was (as torch.utils.checkpoint forks it), so later draws do not repeat earlier ones
        create = STATE.get().grad  # (a backward that records: higher derivatives go through the args)
        now = _rng_state() if rng is not None else None
        _set_rng_state(rng)
        fresh = list(args) if create else [
            a.detach().requires_grad_(a._requires_grad) if isinstance(a, Tensor) else a for a in args]
        try:
            with state_changed(grad=True):
                again = function(*fresh, **kwargs)
        finally:
            _set_rng_state(now)
        wrt = [t for t in [*fresh, *captured] if isinstance(t, Tensor) and t._requires_grad]
        if not again._requires_grad or not wrt:
            return tuple(None for _ in inputs)
        found = iter(autograd.grad([again], wrt, [g], retain_graph=create, create_graph=create,
                                   allow_unused=True))
        return tuple(next(found) if isinstance(t, Tensor) and t._requires_grad else None
                     for t in [*fresh, *captured])

    _record("Checkpoint", inputs, out, backward)
    return out

