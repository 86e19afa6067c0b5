"""The reverse-mode engine: ``backward`` and ``grad`` over the tape that ``bind`` records.

VJP rules are written with ember ops, so running them with grad mode on (``create_graph=True``)
records the backward pass itself and gives derivatives of any order.
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Any, Iterable, Sequence

from .dispatch import STATE, Node, check_finite, next_node_seq, state_changed
from .effects import note_grad, note_grad_read
from .errors import AnomalyError, AutogradError, ShapeError
from .tensor import GRAD_EPOCH, Tensor, born


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator that disables gradient recording."""

    def __enter__(self):
        self._token = STATE.set(STATE.get().replace(grad=False))

    def __exit__(self, *exc):
        STATE.reset(self._token)
        return False


class enable_grad(contextlib.ContextDecorator):
    """Context manager and decorator that enables gradient recording."""

    def __enter__(self):
        self._token = STATE.set(STATE.get().replace(grad=True))

    def __exit__(self, *exc):
        STATE.reset(self._token)
        return False


class set_grad_enabled(contextlib.ContextDecorator):
    """Enable or disable gradient recording (as a context manager or a plain call)."""

    def __init__(self, mode: bool):
        self._token = STATE.set(STATE.get().replace(grad=bool(mode)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        STATE.reset(self._token)
        return False


class inference_mode(no_grad):
    """Like :class:`no_grad`: nothing is recorded inside."""

    def __init__(self, mode: bool = True):
        self.mode = mode

    def __enter__(self):
        self._token = STATE.set(STATE.get().replace(grad=not self.mode))


class detect_anomaly(contextlib.ContextDecorator):
    """Anomaly mode: the first op whose forward or backward output holds NaN/Inf raises AnomalyError.

    The error names the op, the source line that created it and statistics of its inputs.
    """

    def __init__(self, mode: bool = True):
        self.mode = mode

    def __enter__(self):
        self._token = STATE.set(STATE.get().replace(anomaly=self.mode))

    def __exit__(self, *exc):
        STATE.reset(self._token)
        return False


def set_detect_anomaly(mode: bool) -> None:
    """Switch anomaly mode on or off globally."""
    STATE.set(STATE.get().replace(anomaly=bool(mode)))


def is_anomaly_enabled() -> bool:
    """True if anomaly mode is on."""
    return STATE.get().anomaly


# -- functional reverse-mode levels ----------------------------------------------------------------
class GradLevel:
    """One running functional reverse-mode transform: its epoch (tensors made inside it record it), the
    first tape node it may have recorded, and the ids of the inputs it differentiates."""

    __slots__ = ("epoch", "start", "watched")

    def __init__(self, epoch: int, start: int) -> None:
        self.epoch = epoch
        self.start = start
        self.watched: set[int] = set()


_LEVELS: list[GradLevel] = []
_EPOCHS = itertools.count(1)


@contextlib.contextmanager
def grad_level():
    """Marks code running inside a functional reverse-mode transform (``ember.func.grad`` and friends);
    yields its :class:`GradLevel`."""
    level = GradLevel(next(_EPOCHS), next_node_seq())
    _LEVELS.append(level)
    GRAD_EPOCH[0] = level.epoch
    try:
        yield level
    finally:
        _LEVELS.pop()
        GRAD_EPOCH[0] = _LEVELS[-1].epoch if _LEVELS else 0


def grad_level_depth() -> int:
    """How many functional reverse-mode transforms enclose the current code."""
    return len(_LEVELS)


def captured_write(target: Tensor, values: Sequence[Any]) -> bool:
    """Whether writing a result computed from `values` into `target` inside a functional reverse-mode
    transform would put a value the transform differentiates into a tensor made outside it (`target`,
    or a tensor it is a view of)."""
    if not _LEVELS:
        return False
    level = _LEVELS[-1]
    t: Any = target
    while t is not None and born(t) >= level.epoch:
        info = getattr(t, "_base", None)
        t = info[0] if info is not None else None
    if t is None:
        return False  # made by the function being transformed
    stack = []
    for v in values:
        if isinstance(v, Tensor) and v._requires_grad:
            if id(v) in level.watched:
                return True
            if v._node is not None:
                stack.append(v._node)
    seen: set[int] = set()
    while stack:  # does a value depend on an input of this transform? (its tape since the level began)
        node = stack.pop()
        if id(node) in seen or node.seq < level.start:
            continue
        seen.add(id(node))
        for a, edge in zip(node.inputs or (), node.edges):
            if id(a) in level.watched:
                return True
            if edge is not None:
                stack.append(edge)
    return False


# -- the engine -------------------------------------------------------------------------------------
def _collect(roots: Sequence[Tensor]) -> list[Node]:
    """Every node reachable from `roots`, latest first (a valid reverse topological order)."""
    seen: dict[int, Node] = {}
    stack = [r._node for r in roots if r._node is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        if node.inputs is None:
            raise AutogradError(node.prim.name, "trying to backward through the graph a second time (or "
                                "after its saved tensors were freed); pass retain_graph=True to the first "
                                "backward call")
        seen[id(node)] = node
        for edge in node.edges:
            if edge is not None:
                stack.append(edge)
    return sorted(seen.values(), key=lambda n: n.seq, reverse=True)


def _relevant(nodes: list[Node], targets: set[int]) -> set[int]:
    """Ids of the nodes through which gradient can reach a tensor in `targets` (by id)."""
    good: set[int] = set()
    for node in reversed(nodes):  # earliest first: inputs are decided before their users
        for a, edge in zip(node.inputs or (), node.edges):
            if (isinstance(a, Tensor) and id(a) in targets) or (edge is not None and id(edge) in good):
                good.add(id(node))
                break
    return good


def _read_positions(node: Node) -> set | None:
    """Inputs whose values this node's VJP will read (None: all of them)."""
    reads = getattr(node.prim, "reads", None)
    if not isinstance(reads, dict):
        return None if reads is None else set(reads)
    needed: set = set()
    for i, a in enumerate(node.inputs or ()):
        if isinstance(a, Tensor) and a._requires_grad:
            needed.update(reads.get(i, ()))
    return needed


def _check_saved(node: Node) -> None:
    reads = _read_positions(node)
    for i, (a, v) in enumerate(zip(node.inputs or (), node.versions)):
        if reads is not None and i not in reads:
            continue
        if isinstance(a, Tensor) and a._vc is not None and a._vc.value != v:
            raise AutogradError(node.prim.name, f"a tensor needed for gradient computation was modified by "
                                f"an in-place operation (version {a._vc.value}, expected {v}); "
                                "use an out-of-place op or .clone()", (a,))


def _accumulate(store: dict, key: int, value: Any) -> None:
    old = store.get(key)
    store[key] = value if old is None else old + value


def _run_hooks(t: Tensor | None, g: Tensor) -> Tensor:
    if t is not None and t._hooks:
        for hook in t._hooks:
            result = hook(g)
            if result is not None:
                g = result
    return g


def run_backward(roots: Sequence[Tensor], seeds: Sequence[Tensor], retain_graph: bool, create_graph: bool,
                 targets: Sequence[Tensor] | None = None) -> dict[int, Any]:
    """Propagate `seeds` from `roots` through the tape.

    With `targets`, return {id(target): gradient} and leave ``.grad`` alone; otherwise accumulate into
    the ``.grad`` of leaves that require grad (and of non-leaves that called ``retain_grad``).
    """
    nodes = _collect(roots)
    outs = {id(n): n.out_ref() for n in nodes}  # keeps every output alive until its node has run
    target_ids = {id(t) for t in targets} if targets is not None else None
    live = _relevant(nodes, target_ids) if target_ids is not None else None
    grads: dict[int, Any] = {}
    leaf_grads: dict[int, Any] = {}
    leaves: dict[int, Tensor] = {}
    for r, s in zip(roots, seeds):
        if r._node is None:
            leaves[id(r)] = r
            _accumulate(leaf_grads, id(r), s)
        else:
            _accumulate(grads, id(r._node), s)
    anomaly = STATE.get().anomaly
    with state_changed(grad=create_graph, anomaly=False):  # anomaly checks each VJP's result instead
        for node in nodes:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            out = outs[id(node)]
            g = _run_hooks(out, g)
            if target_ids is not None and id(out) in target_ids:
                leaf_grads[id(out)] = g
            if live is not None and id(node) not in live:
                continue
            _backward_node(node, out, g, anomaly, grads, leaf_grads, leaves, target_ids)
            if not retain_graph:
                node.inputs = None
    return _finish(leaf_grads, leaves, target_ids)


def _backward_node(node, out, g, anomaly, grads, leaf_grads, leaves, target_ids) -> None:
    _check_saved(node)
    in_grads = node.prim.vjp(g, out, *node.inputs, **node.attrs)
    if anomaly:
        try:
            check_finite(node.prim, in_grads, node.inputs, "backward")
        except AnomalyError as err:
            where = f"\n  the forward op was created at {node.where[0]}:{node.where[1]}: {node.where[2]}" \
                if node.where else ""
            raise AnomalyError(node.prim.name, err.detail + where) from None
    for a, edge, ga in zip(node.inputs, node.edges, in_grads):
        if ga is None or not isinstance(a, Tensor) or (edge is None and not a._requires_grad):
            continue
        if tuple(ga.shape) != tuple(a.shape):
            raise ShapeError(node.prim.name, f"VJP rule returned a gradient of shape {tuple(ga.shape)} for "
                             f"an input of shape {tuple(a.shape)}")
        if edge is None:
            leaves[id(a)] = a
            _accumulate(leaf_grads, id(a), ga)
        else:
            _accumulate(grads, id(edge), ga)


def _finish(leaf_grads: dict, leaves: dict, target_ids: set | None) -> dict:
    if target_ids is not None:
        for key, leaf in leaves.items():
            if key in target_ids and key in leaf_grads:
                leaf_grads[key] = _run_hooks(leaf, leaf_grads[key])
        return leaf_grads
    for key, leaf in leaves.items():
        if not leaf._requires_grad:
            continue
        g = _run_hooks(leaf, leaf_grads[key])
        note_grad_read(leaf)
        note_grad(leaf)
        leaf._grad = _in_layout_of(leaf, g) if leaf._grad is None else leaf._grad + g
    return {}


def _in_layout_of(leaf: Tensor, g: Any) -> Any:
    """`g` as a new ``.grad`` of `leaf`: row-major when `leaf` is (as PyTorch's gradient layout
    contract). A linear layer's weight gradient arrives as a transposed view, and the optimiser's
    in-place updates would read it with strides on every step."""
    from .primitives.movement import contiguous, is_contiguous

    if isinstance(g, Tensor) and not is_contiguous(g) and is_contiguous(leaf):
        return contiguous(g)
    return g


def _seed(out: Tensor, grad: Any, op: str) -> Tensor:
    from . import creation

    if grad is None:
        if out.numel() != 1:
            raise AutogradError(op, f"grad can be implicitly created only for scalar outputs, got shape "
                                f"{tuple(out.shape)}; pass a gradient", (out,))
        return creation.ones_like(out)
    if not isinstance(grad, Tensor):
        grad = creation.tensor(grad, dtype=out.dtype)
    if tuple(grad.shape) != tuple(out.shape):
        raise ShapeError(op, f"gradient of shape {tuple(grad.shape)} does not match output of shape "
                         f"{tuple(out.shape)}", (out, grad))
    return grad


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs: Iterable[Tensor] | None = None) -> None:
    """Accumulate d(tensors)/d(leaf) into each leaf's ``.grad`` (like ``torch.autograd.backward``)."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors)
    for t in tensors:
        if not t._requires_grad:
            raise AutogradError("backward", "element 0 of tensors does not require grad and does not have a "
                                "grad_fn", (t,))
    seeds = [_seed(t, g, "backward") for t, g in zip(tensors, grad_tensors)]
    # Inside ember.func.grad the gradients written to .grad must stay differentiable for the outer level.
    create_graph = create_graph or (bool(_LEVELS) and STATE.get().grad)
    retain = create_graph if retain_graph is None else retain_graph
    if inputs is not None:
        inputs = list(inputs)
        found = run_backward(tensors, seeds, retain, create_graph, targets=inputs)
        for t in inputs:
            if id(t) in found:
                note_grad_read(t)
                note_grad(t)
                t._grad = found[id(t)] if t._grad is None else t._grad + found[id(t)]
        return
    run_backward(tensors, seeds, retain, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple:
    """Return d(outputs)/d(inputs) without touching ``.grad`` (like ``torch.autograd.grad``)."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    for t in inputs:
        if not t._requires_grad:
            raise AutogradError("grad", "one of the differentiated tensors does not require grad", (t,))
    for o in outputs:
        if not o._requires_grad:
            raise AutogradError("grad", "an output does not require grad and does not have a grad_fn; "
                                "it does not depend on the inputs", (o,))
    seeds = [_seed(o, g, "grad") for o, g in zip(outputs, grad_outputs)]
    retain = create_graph if retain_graph is None else retain_graph
    found = run_backward(outputs, seeds, retain, create_graph, targets=inputs)
    result = []
    for t in inputs:
        g = found.get(id(t))
        if g is None and not allow_unused:
            raise AutogradError("grad", "one of the differentiated tensors was not used in the graph; "
                                "pass allow_unused=True", (t,))
        result.append(g)
    return tuple(result)


def captured_inputs(outputs: list, boundary: set[int], start: int | None = None) -> list:
    """The tensors requiring grad that the tape behind `outputs` reads, found by walking it back: leaves,
    and with `start` (a node number) also values made by nodes older than `start`; the walk does not
    pass the tensors whose ids are in `boundary`."""
    found: dict[int, Any] = {}
    stack = [o._node for o in outputs if isinstance(o, Tensor) and o._node is not None]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for a, edge in zip(node.inputs or (), node.edges):
            if not isinstance(a, Tensor) or id(a) in boundary:
                continue
            if edge is not None and (start is None or edge.seq >= start):
                stack.append(edge)
            elif a._requires_grad:
                found.setdefault(id(a), a)
    return list(found.values())
