"""Reverse mode as functions: grad, value_and_grad, vjp (over the same tape as ``backward``)."""
from __future__ import annotations

from typing import Any, Callable

from .._core import autograd, pytree
from .._core.creation import tensor, zeros_like
from .._core.dispatch import STATE, bind, state_changed
from .._core.errors import AutogradError, ShapeError
from .._core.primitive import Primitive
from .._core.tensor import Tensor


def _alias_batch(values, bdims):
    return bind(alias_p, values[0]), bdims[0]


alias_p = Primitive("alias", lambda xp, x: x, vjp=lambda g, out, x: (g,),
                    jvp=lambda primals, tangents: (bind(alias_p, primals[0]), tangents[0]),
                    batch=_alias_batch, view=True, reads=())


def watch(x: Any) -> Tensor:
    """A fresh tensor equal to `x` whose gradient is tracked, still connected to outer transforms."""
    if not isinstance(x, Tensor):
        x = tensor(x)
    y = bind(alias_p, x)
    if not y._requires_grad:
        y.requires_grad_(True)
    return y


def _create_graph(leaves: list) -> bool:
    st = STATE.get()
    if not st.grad:
        return False
    # Forward mode and vmap see the backward ops without a tape; only an enclosing reverse mode needs one.
    return autograd.grad_level_depth() > 1 or any(isinstance(x, Tensor) and x._requires_grad for x in leaves)


def vjp(func: Callable, *primals, has_aux: bool = False):
    """Evaluate `func` and return its output with a function computing vector-Jacobian products.

    Returns:
        ``(out, vjp_fn)`` (plus ``aux`` if `has_aux`); ``vjp_fn(cotangent)`` returns a tuple with one
        cotangent per primal (pytrees allowed).

    Example:
        >>> import ember
        >>> from ember.func import vjp
        >>> out, fn = vjp(lambda x: x * 3, ember.tensor([1.0, 2.0]))
        >>> fn(ember.ones(2))[0].tolist()
        [3.0, 3.0]
    """
    leaves, tdef = pytree.flatten(primals)
    with autograd.grad_level() as level:
        create = _create_graph(leaves)
        watched = [watch(x) for x in leaves]
        level.watched.update(id(w) for w in watched)
        with state_changed(grad=True):
            result = func(*pytree.unflatten(tdef, watched))
    out, aux = result if has_aux else (result, None)
    out_leaves, out_def = pytree.flatten(out)
    if not create and STATE.get().grad:
        # a tensor the function closes over requires grad (a gradient penalty, an inner step of
        # meta-learning): the gradients depend on it, so they keep their graph, as in torch.func
        create = bool(autograd.captured_inputs(out_leaves, {id(w) for w in watched}))

    def vjp_fn(cotangents):
        ct_leaves, ct_def = pytree.flatten(cotangents)
        if ct_def != out_def:
            raise ShapeError("vjp", "the cotangent must have the same structure as the output")
        pairs = [(o, c) for o, c in zip(out_leaves, ct_leaves) if o._requires_grad]
        grads = [None] * len(watched)
        if pairs:
            with autograd.grad_level():
                found = autograd.grad([o for o, _ in pairs], watched, [c for _, c in pairs],
                                      retain_graph=True, create_graph=create, allow_unused=True)
            grads = list(found)
        grads = [zeros_like(w) if g is None else g for w, g in zip(watched, grads)]
        return pytree.unflatten(tdef, grads)

    # Values handed back carry no graph of this transform's own, unless an outer reverse mode needs it.
    out_clean = pytree.unflatten(out_def, [_plain(o, create) for o in out_leaves])
    if has_aux:
        aux = pytree.tree_map(lambda a: _plain(a, create), aux)
    return (out_clean, vjp_fn, aux) if has_aux else (out_clean, vjp_fn)


def _plain(value: Any, keep_graph: bool) -> Any:
    if keep_graph or not isinstance(value, Tensor) or value._node is None:
        return value
    return value.detach()


def value_and_grad(func: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False) -> Callable:
    """Like :func:`grad` but the returned function gives ``(value, gradient)``.

    With `has_aux`, `func` returns ``(value, aux)`` and the result is ``((value, aux), gradient)``.
    """
    def wrapper(*args, **kwargs):
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        for n in nums:
            if not -len(args) <= n < len(args):
                raise AutogradError("grad", f"argnums {n} is out of range for {len(args)} positional "
                                    "arguments")

        def partial(*diff_args):
            full = list(args)
            for n, a in zip(nums, diff_args):
                full[n] = a
            return func(*full, **kwargs)

        result = vjp(partial, *[args[n] for n in nums], has_aux=has_aux)
        out, fn = result[0], result[1]
        if not isinstance(out, Tensor) or out.numel() != 1:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ShapeError("grad", f"the function must return a scalar tensor, got {shape}; use vjp or "
                             "jacrev for non-scalar outputs")
        from .._core.creation import ones_like

        grads = fn(ones_like(out))
        g = grads[0] if isinstance(argnums, int) else grads
        value = (out, result[2]) if has_aux else out
        return value, g

    return wrapper


def grad(func: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar function, as a function (``torch.func.grad`` / ``jax.grad``).

    Args:
        func: function returning a one-element tensor (or ``(value, aux)`` with `has_aux`).
        argnums: which positional argument(s) to differentiate; an int gives one gradient, a tuple a tuple.
        has_aux: `func` returns ``(value, aux)``; the result is then ``(gradient, aux)``.

    Example:
        >>> import ember
        >>> from ember.func import grad
        >>> float(grad(lambda x: (x ** 3).sum())(ember.tensor(2.0)))
        12.0
    """
    vg = value_and_grad(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper
