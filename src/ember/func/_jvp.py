"""Forward mode: a JVP interpreter that pushes tangents through each primitive's JVP rule."""
from __future__ import annotations

from typing import Any, Callable

from .._core import pytree
from .._core.creation import zeros_like
from .._core.dispatch import Trace, bind, new_trace
from .._core.errors import ShapeError
from .._core.inplace import FollowsViews
from .._core.tensor import Tensor, Tracer


class JVPTracer(Tracer):
    """A value carrying a primal and its tangent."""

    __slots__ = ("primal", "tangent")

    @property
    def shape(self):
        return self.primal.shape

    def _concrete(self) -> Tensor:
        p = self.primal
        return p._concrete() if isinstance(p, Tracer) else p


def _make(trace: "JVPTrace", primal: Tensor, tangent: Tensor) -> JVPTracer:
    t = JVPTracer._make(None, primal.dtype, primal.device)
    t._trace = trace
    t.primal = primal
    t.tangent = tangent
    return t


class JVPTrace(FollowsViews, Trace):
    """Interprets primitives on JVPTracers with their JVP rules."""

    def __init__(self) -> None:
        super().__init__()
        self.created: dict[int, Tensor] = {}  # tensors made inside the function (see note_created)
        # id(tensor made inside) -> (that tensor, the JVPTracer it holds since an in-place update)
        self.writes: dict[int, tuple[Tensor, JVPTracer]] = {}

    def note_created(self, t: Tensor) -> None:
        """`t` was made by a creation function inside the function: it may take tangents in place."""
        self.created[id(t)] = t

    def hold_write(self, target: Tensor, value: JVPTracer) -> bool:
        """``target[...] = value`` with a value carrying a tangent. A tensor made inside the function
        holds `value` from now on (later reads and the function's results see it, as in eager mode), and
        so does one it views (written through a view such as ``y[1:]``, the tensor viewed holds its new
        whole value, from which reads of its views are taken); one captured from outside cannot carry a
        tangent: False, and the in-place op refuses it, as ``torch.func.jvp`` does."""
        child, new = target, value
        while self.created.get(id(child)) is not child:
            info = getattr(child, "_base", None)
            if info is None or isinstance(info[0], Tracer) or info[1].unview is None:
                return False
            base, prim, attrs = info
            new = prim.unview(self.held(base), new, **attrs)
            child = base
        self.writes[id(child)] = (child, new)
        return True

    def mutated(self, x: Tracer) -> None:
        """`x` was updated in place (see FollowsViews.mutated); a tensor made inside whose held value
        took the update (through a view) also takes the value's place on an enclosing reverse mode's
        tape."""
        super().mutated(x)
        for target, value in self.writes.values():
            if target._node is not value._node:  # (and a backward that saved it sees the change)
                target._node, target._requires_grad = value._node, value._requires_grad
                target._bump_version()

    def _holder(self, a: Any) -> Any:
        """The tensor made inside that holds a value for plain tensor `a` (`a` itself, or a tensor `a`
        views), or None."""
        while isinstance(a, Tensor) and not isinstance(a, Tracer):
            entry = self.writes.get(id(a))
            if entry is not None and entry[0] is a:
                return a
            info = a._base
            a = info[0] if info is not None else None
        return None

    def claims(self, args: tuple) -> bool:
        """Whether one of `args` is a tensor made inside that holds a value of this trace, or a view of
        one (its ops come here although no tracer is among them)."""
        return bool(self.writes) and any(self._holder(a) is not None for a in args if isinstance(a, Tensor))

    def held(self, a: Any) -> Any:
        """`a`, or the value a tensor made inside holds since an in-place update (for a view of such a
        tensor, the view taken of that value)."""
        if not self.writes or not isinstance(a, Tensor) or isinstance(a, Tracer):
            return a
        entry = self.writes.get(id(a))
        if entry is not None and entry[0] is a:
            return entry[1]
        info = a._base
        if info is None or isinstance(info[0], Tracer) or self._holder(info[0]) is None:
            return a
        base, prim, attrs = info
        return bind(prim, self.held(base), **attrs)

    def process(self, prim, args: tuple, attrs: dict) -> Any:
        primals, tangents = [], []
        for a in args:
            a = self.held(a)
            if isinstance(a, JVPTracer) and a._trace is self:
                self.fresh(a)
                primals.append(a.primal)
                tangents.append(a.tangent)
            else:
                primals.append(a)
                tangents.append(None)
        if prim.jvp is None or all(t is None for t in tangents):
            return bind(prim, *primals, **attrs)
        out, tangent = prim.jvp(primals, tangents, **attrs)
        if tangent is None or not (out.dtype.is_floating_point or out.dtype.is_complex):
            return out
        result = _make(self, out, tangent)
        base = self.held(args[0]) if args else None
        if prim.view and isinstance(base, JVPTracer) and base._trace is self:
            self.note_view(result, base, prim, attrs)  # (updates through it reach the base, and back)
        return result

    def lift(self, primal: Tensor, tangent: Tensor) -> JVPTracer:
        return _make(self, primal, tangent)

    def lower(self, value: Any) -> tuple[Any, Any]:
        value = self.held(value)
        if isinstance(value, JVPTracer) and value._trace is self:
            return value.primal, value.tangent
        if isinstance(value, Tensor):
            return value, zeros_like(value)
        return value, None


def jvp(func: Callable, primals, tangents, has_aux: bool = False):
    """Evaluate `func` at `primals` and its directional derivative along `tangents` (forward mode).

    Args:
        func: function of tensors (pytrees allowed).
        primals: tuple of arguments.
        tangents: tuple with the same structure and shapes as `primals`.

    Returns:
        ``(func(*primals), tangent_out)``, plus ``aux`` if `has_aux`.

    Example:
        >>> import ember
        >>> from ember.func import jvp
        >>> out, t = jvp(ember.sin, (ember.tensor(0.0),), (ember.tensor(1.0),))
        >>> float(t)
        1.0
    """
    p_leaves, p_def = pytree.flatten(tuple(primals))
    t_leaves, t_def = pytree.flatten(tuple(tangents))
    if p_def != t_def:
        raise ShapeError("jvp", "primals and tangents must have the same structure")
    for p, t in zip(p_leaves, t_leaves):
        if tuple(p.shape) != tuple(t.shape):
            raise ShapeError("jvp", f"tangent shape {tuple(t.shape)} does not match primal shape "
                             f"{tuple(p.shape)}", (p, t))
    trace = JVPTrace()
    with new_trace(trace):
        lifted = [trace.lift(p, t) for p, t in zip(p_leaves, t_leaves)]
        args = pytree.unflatten(p_def, lifted)
        result = func(*args)
    for p, tracer in zip(p_leaves, lifted):  # primals updated in place: the caller's tensors take the
        if tracer.primal is not p:  # update, as eager calls (and torch.func.jvp) would
            p.copy_(trace.lower(tracer)[0])
    out, aux = (result if has_aux else (result, None))
    o_leaves, o_def = pytree.flatten(out)
    pairs = [trace.lower(o) for o in o_leaves]
    outs = pytree.unflatten(o_def, [p for p, _ in pairs])
    tans = pytree.unflatten(o_def, [t for _, t in pairs])
    return (outs, tans, aux) if has_aux else (outs, tans)
