"""Side effects seen by a recording transform (``ember.jit``).

A compiled training step writes parameters, gradients, buffers and optimiser state. While such a step is
traced, those writes must not touch real tensors; they are handed to the active recorder, which turns
them into graph outputs applied after each run. Outside tracing every function here is a cheap no-op.
"""
from __future__ import annotations

from typing import Any

from .dispatch import STATE
from .tensor import Tensor, Tracer


def recorder() -> Any:
    """The innermost active trace that records effects, or None."""
    traces = STATE.get().traces
    if not traces:
        return None
    for t in reversed(traces):
        if hasattr(t, "defer_write"):
            return t
    return None


def write(target: Tensor, value: Any, rebinds: bool = False) -> bool:
    """Defer ``target[...] = value`` if `value` is being traced for `target` (returns True), else False
    (also when the trace's ``defer_write`` or ``hold_write`` returns False: it cannot hold the write).
    With `rebinds`, eager code would have replaced `target` by `value` (an optimiser's new state), where
    the trace writes into `target` instead: returning `target` then returns the new value, not `target`."""
    if isinstance(value, Tracer) and not isinstance(target, Tracer):
        # a recorder defers the write to each run; another trace may hold it for the rest of the trace
        if rebinds and hasattr(value._trace, "note_rebind"):  # (eagerly, the owner would hold `value`)
            value._trace.note_rebind(target)
        defer = getattr(value._trace, "defer_write", None) or getattr(value._trace, "hold_write", None)
        if defer is not None:
            return defer(target, value) is not False  # (False: the trace cannot hold it)
    return False


def note_grad(t: Tensor) -> None:
    """`t.grad` is about to be assigned; a recorder keeps the value it had before tracing."""
    rec = recorder()
    if rec is not None and not isinstance(t, Tracer):
        rec.note_grad(t)
    elif isinstance(t, Tracer) and hasattr(t._trace, "argument_grad"):
        t._trace.argument_grad(t)


def note_grad_read(t: Tensor) -> None:
    """`t.grad` is about to be read (by the traced code, or by backward to accumulate into it): a
    recorder reads the gradient that `t` has when the graph runs, not the one it had while tracing."""
    rec = recorder()
    if rec is not None and not isinstance(t, Tracer):
        rec.note_grad_read(t)
    elif isinstance(t, Tracer) and hasattr(t._trace, "argument_grad"):
        t._trace.argument_grad(t)


def note_state(obj: Any) -> None:
    """`obj` (a module or optimiser) took part in the traced code; its ``_jit_signature()`` joins the key."""
    rec = recorder()
    if rec is not None:
        rec.note_state(obj)


def note_refresh(obj: Any) -> bool:
    """Under a recorder that reads run-time scalars (``ember.jit``): ``obj._jit_refresh()`` is called
    before each run of the graph, to write values that change between calls (an optimiser's learning
    rate) into the tensors the graph reads them from. False (nothing recorded) outside such a recorder."""
    rec = recorder()
    if rec is None or not hasattr(rec, "note_refresh"):
        return False
    rec.note_refresh(obj)
    return True


MISSING = object()  # `before` of an entry the traced code added


def defer_item(container: dict, key: Any, value: Any, before: Any = MISSING) -> None:
    """Under a recorder, ``container[key] = value`` (a traced value, or a constant the traced code made)
    takes effect after each run, holding the run's result; until a run, the entry is `before`
    (``MISSING``: absent)."""
    rec = value._trace if isinstance(value, Tracer) else recorder()
    if rec is not None and hasattr(rec, "defer_item"):
        rec.defer_item(container, key, value, before)


def random_state(generator: Any, offset: int) -> tuple[Tensor, int] | None:
    """Under a recorder that replays random draws (``ember.jit``): the tensor from which the graph reads
    `generator`'s ``[seed, offset]`` when it runs, and how many blocks past that offset a draw starting
    at block `offset` begins. None otherwise (the draw runs with its seed and offset as attributes)."""
    rec = recorder()
    if rec is None or not hasattr(rec, "random_state"):
        return None
    return rec.random_state(generator, offset)


def note_seed(generator: Any, before: tuple[int, int]) -> None:
    """`generator` was just seeded, or its state was set to one of another seed. Under a recorder that
    replays random draws (``ember.jit``), each run sets that state again before drawing, as the traced
    code did; `before` is the generator's (seed, offset) before (tracing itself changes nothing). (Setting
    a state of the same seed rewinds relative to the call's state, as activation checkpointing does to
    replay its draws, and is not reported.)"""
    rec = recorder()
    if rec is not None and hasattr(rec, "note_seed"):
        rec.note_seed(generator, before)


def batch_draws() -> list:
    """The active batching transforms (vmap), outermost first, whose batch elements each draw their own
    random numbers (``randomness="different"``): a sampling function draws ``sizes + shape`` values and
    hands them to :func:`batched_draw`."""
    return [t for t in STATE.get().traces if getattr(t, "randomness", None) == "different"]


def batched_draw(value: Tensor, traces: list) -> Any:
    """`value`, drawn with the batch sizes of `traces` as its leading dimensions, as a batched value of
    those transforms (each element sees its own slice)."""
    for trace in traces:
        value = trace.wrap(value, 0)
    return value
