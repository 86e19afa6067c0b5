"""Jacobians and Hessians built from vjp/jvp and vmap, over pytrees of arguments and outputs."""
from __future__ import annotations

from typing import Any, Callable

from .._core import pytree
from .._core.creation import eye, zeros_like
from .._core.errors import AutogradError
from .._core.primitives.movement import moveaxis, reshape
from .._core.tensor import Tensor
from ._grad import vjp
from ._jvp import jvp
from ._vmap import vmap


def _split(args: tuple, argnums, kwargs: dict, name: str):
    """The argument numbers to differentiate, and a wrapper making `func` a function of those only."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise AutogradError(name, "argnums must name at least one positional argument")
    for n in nums:
        if not isinstance(n, int) or not -len(args) <= n < len(args):
            raise AutogradError(name, f"argnums {n!r} is out of range for {len(args)} positional arguments")

    def partial_fn(func):
        def call(*diff_args):
            full = list(args)
            for n, a in zip(nums, diff_args):
                full[n] = a
            return func(*full, **kwargs)

        return call

    return nums, partial_fn


def _leaves(tree: Any, name: str, what: str) -> tuple[list, pytree.TreeDef]:
    leaves, td = pytree.flatten(tree)
    for x in leaves:
        if not isinstance(x, Tensor):
            raise AutogradError(name, f"every leaf of the {what} must be a tensor, got {type(x).__name__}")
    return leaves, td


def _basis(n: int, shape: tuple, like):
    return reshape(eye(n, dtype=like.dtype, device=like.device), (n,) + tuple(shape))


def _assemble(o_def: pytree.TreeDef, d_def: pytree.TreeDef, jac: list, argnums) -> Any:
    """The Jacobian pytree, outputs outer and inputs inner, as in ``torch.func``: the output's structure
    with each leaf replaced by the structure of the differentiated argument (or a tuple of them, one per
    argnum, for a tuple `argnums`), whose leaves are the blocks ``jac[i][j]`` of shape
    ``out_i.shape + in_j.shape``."""
    per_out = []
    for row in jac:
        by_arg = pytree.unflatten(d_def, row)  # a tuple with one entry per argnum
        per_out.append(by_arg[0] if isinstance(argnums, int) else by_arg)
    return pytree.unflatten(o_def, per_out)


def jacrev(func: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False) -> Callable:
    """The Jacobian of `func` by reverse mode (one vmapped VJP over the basis of each output).

    Arguments and outputs may be pytrees (nested tuples, lists and dicts of tensors). The result has the
    output's structure (outputs outer); each of its leaves is replaced by the differentiated argument's
    structure (a tuple of them for a tuple `argnums`), whose leaves have shape ``out.shape + arg.shape``,
    as in ``torch.func.jacrev``. With `has_aux`, `func` returns ``(output, aux)`` and the result is
    ``(jacobian, aux)``. Keyword arguments are passed to `func` and not differentiated.

    Example:
        >>> import ember
        >>> from ember.func import jacrev
        >>> jacrev(lambda x: x * 2)(ember.ones(2)).tolist()
        [[2.0, 0.0], [0.0, 2.0]]
        >>> [j.shape for j in jacrev(lambda x: (x * 2, x.sum()))(ember.ones(2))]
        [(2, 2), (2,)]
    """
    def wrapper(*args, **kwargs):
        nums, partial_fn = _split(args, argnums, kwargs, "jacrev")
        diff = tuple(args[n] for n in nums)
        d_leaves, d_def = _leaves(diff, "jacrev", "differentiated arguments")
        result = vjp(partial_fn(func), *diff, has_aux=has_aux)
        out, fn = result[0], result[1]
        o_leaves, o_def = _leaves(out, "jacrev", "output")
        jac = []
        for i, o in enumerate(o_leaves):
            def pull(ct, i=i):
                cts = [ct if k == i else zeros_like(p) for k, p in enumerate(o_leaves)]
                return pytree.flatten(fn(pytree.unflatten(o_def, cts)))[0]

            o_shape = tuple(o.shape)
            rows = vmap(pull)(_basis(o.numel(), o_shape, o))  # one (n_out, *arg.shape) per argument leaf
            jac.append([reshape(r, o_shape + tuple(a.shape)) for r, a in zip(rows, d_leaves)])
        jacobian = _assemble(o_def, d_def, jac, argnums)
        return (jacobian, result[2]) if has_aux else jacobian

    return wrapper


def jacfwd(func: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False) -> Callable:
    """The Jacobian of `func` by forward mode (one vmapped JVP over the basis of each argument).

    Takes pytrees of arguments and outputs and returns the same structure as :func:`jacrev` (outputs
    outer, arguments inner, leaves of shape ``out.shape + arg.shape``), as ``torch.func.jacfwd`` does.
    With `has_aux`, `func` returns ``(output, aux)`` and the result is ``(jacobian, aux)``.

    Example:
        >>> import ember
        >>> from ember.func import jacfwd
        >>> jacfwd(lambda x: x * 2)(ember.ones(2)).tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """
    def wrapper(*args, **kwargs):
        nums, partial_fn = _split(args, argnums, kwargs, "jacfwd")
        diff = tuple(args[n] for n in nums)
        d_leaves, d_def = _leaves(diff, "jacfwd", "differentiated arguments")
        fn = partial_fn(func)
        found: dict = {}  # the output's leaves and structure (and aux), seen inside the vmapped JVP
        cols_by_arg = []  # per argument leaf: the output's leaves, each of shape (n_arg, *out.shape)
        for j, a in enumerate(d_leaves):
            def push(t, j=j):
                zeros = [t if k == j else zeros_like(d) for k, d in enumerate(d_leaves)]
                # aux goes through jvp as part of the output, so that it comes back as a plain value
                primal, tangent = jvp(fn if has_aux else lambda *x: (fn(*x), None), diff,
                                      pytree.unflatten(d_def, zeros))
                if not (isinstance(primal, (tuple, list)) and len(primal) == 2):
                    raise AutogradError("jacfwd", "with has_aux=True the function must return a pair "
                                        "(output, aux)")
                o_leaves, found["def"] = _leaves(primal[0], "jacfwd", "output")
                found["shapes"] = [tuple(o.shape) for o in o_leaves]
                return pytree.flatten(tangent[0])[0], primal[1]

            cols, found["aux"] = vmap(push, out_dims=(0, None))(_basis(a.numel(), tuple(a.shape), a))
            cols_by_arg.append(cols)
        jac = []
        for i, o_shape in enumerate(found["shapes"]):
            row = []
            for a, cols in zip(d_leaves, cols_by_arg):
                c = reshape(cols[i], (a.numel(), -1))
                row.append(reshape(moveaxis(c, 0, 1), o_shape + tuple(a.shape)))
            jac.append(row)
        jacobian = _assemble(found["def"], d_def, jac, argnums)
        return (jacobian, found["aux"]) if has_aux else jacobian

    return wrapper


def hessian(func: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The Hessian of a scalar function: ``jacfwd(jacrev(func, argnums), argnums)`` (forward-over-reverse).

    Pytrees follow :func:`jacrev`: with a tuple `argnums` the result is nested tuples, ``H[i][j]`` the
    block of shape ``out.shape + arg_i.shape + arg_j.shape``, as in ``torch.func.hessian``.

    Example:
        >>> import ember
        >>> from ember.func import hessian
        >>> hessian(lambda x: (x ** 3).sum())(ember.tensor([1.0, 2.0])).tolist()
        [[6.0, 0.0], [0.0, 12.0]]
    """
    return jacfwd(jacrev(func, argnums), argnums)
