"""Jacobians and Hessians built from vjp/jvp and vmap."""
from __future__ import annotations

from typing import Callable

from .._core.creation import eye
from .._core.primitives.movement import moveaxis, reshape
from ._grad import vjp
from ._jvp import jvp
from ._vmap import vmap


def _split(args: tuple, argnums):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def partial_fn(func):
        def call(*diff_args):
            full = list(args)
            for n, a in zip(nums, diff_args):
                full[n] = a
            return func(*full)

        return call

    return nums, partial_fn


def _basis(n: int, shape: tuple, like):
    return reshape(eye(n, dtype=like.dtype, device=like.device), (n,) + tuple(shape))


def jacrev(func: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The Jacobian of `func` by reverse mode (one vmapped VJP over the output basis).

    The result has shape ``out.shape + arg.shape`` (a tuple of them for a tuple `argnums`).

    Example:
        >>> import ember
        >>> from ember.func import jacrev
        >>> jacrev(lambda x: x * 2)(ember.ones(2)).tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """
    def wrapper(*args):
        nums, partial_fn = _split(args, argnums)
        diff = [args[n] for n in nums]
        out, fn = vjp(partial_fn(func), *diff)
        rows = vmap(fn)(_basis(out.numel(), tuple(out.shape), out))
        jacs = tuple(reshape(r, tuple(out.shape) + tuple(a.shape)) for r, a in zip(rows, diff))
        return jacs[0] if isinstance(argnums, int) else jacs

    return wrapper


def jacfwd(func: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The Jacobian of `func` by forward mode (one vmapped JVP over the input basis).

    Example:
        >>> import ember
        >>> from ember.func import jacfwd
        >>> jacfwd(lambda x: x * 2)(ember.ones(2)).tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """
    def wrapper(*args):
        nums, partial_fn = _split(args, argnums)
        diff = [args[n] for n in nums]
        jacs = []
        for i, a in enumerate(diff):
            def push(t, i=i):
                tangents = tuple(t if j == i else d * 0 for j, d in enumerate(diff))
                return jvp(partial_fn(func), tuple(diff), tangents)[1]

            cols = vmap(push)(_basis(a.numel(), tuple(a.shape), a))  # (n, *out.shape)
            out_shape = tuple(cols.shape[1:])
            cols = reshape(cols, (a.numel(), -1))
            jacs.append(reshape(moveaxis(cols, 0, 1), out_shape + tuple(a.shape)))
        return jacs[0] if isinstance(argnums, int) else tuple(jacs)

    return wrapper


def hessian(func: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The Hessian of a scalar function: ``jacfwd(jacrev(func))`` (forward-over-reverse).

    Example:
        >>> import ember
        >>> from ember.func import hessian
        >>> hessian(lambda x: (x ** 3).sum())(ember.tensor([1.0, 2.0])).tolist()
        [[6.0, 0.0], [0.0, 12.0]]
    """
    return jacfwd(jacrev(func, argnums), argnums)
