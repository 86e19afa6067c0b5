"""User-defined differentiation: PyTorch's ``autograd.Function`` and JAX's ``custom_vjp``."""
from __future__ import annotations

from typing import Any, Callable

from .dispatch import STATE, Node, state_changed
from .errors import AutogradError
from .tensor import Tensor


class _CustomRule:
    """Stands in for a primitive in a tape node: a name and a VJP that calls user code."""

    def __init__(self, name: str, backward: Callable, n_inputs: int):
        self.name = name
        self._backward = backward
        self._n = n_inputs

    def vjp(self, g, out, *inputs, **attrs):
        grads = self._backward(g)
        grads = grads if isinstance(grads, tuple) else (grads,)
        if len(grads) != self._n:
            raise AutogradError(self.name, f"backward returned {len(grads)} gradients but forward took "
                                f"{self._n} inputs")
        return grads


def _record(name: str, inputs: tuple, out: Tensor, backward: Callable) -> None:
    rule = _CustomRule(name, backward, len(inputs))
    node = Node.__new__(Node)
    Node.__init__(node, rule, inputs, {}, out)
    out._node = node
    out._requires_grad = True


class FunctionCtx:
    """The context passed to ``Function.forward``/``backward``: ``save_for_backward`` and attributes."""

    def __init__(self) -> None:
        self.saved_tensors: tuple = ()
        self.needs_input_grad: tuple = ()

    def save_for_backward(self, *tensors: Tensor) -> None:
        """Keep tensors for the backward pass (read back as ``ctx.saved_tensors``)."""
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """Accepted for PyTorch compatibility; outputs of integer dtype never require grad anyway."""


class Function:
    """Define an op with a hand-written backward, as in PyTorch.

    Subclass it with static ``forward(ctx, *args)`` and ``backward(ctx, grad_output)``, then call
    ``MyFn.apply(*args)``. ``backward`` returns one gradient (or None) per forward input.

    Example:
        >>> import ember
        >>> class Double(ember.autograd.Function):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         return x * 2
        ...     @staticmethod
        ...     def backward(ctx, g):
        ...         return g * 2
        >>> x = ember.ones(2, requires_grad=True)
        >>> Double.apply(x).sum().backward()
        >>> x.grad.tolist()
        [2.0, 2.0]
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any) -> Any:
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
        with state_changed(grad=False):
            out = cls.forward(ctx, *args)
        if STATE.get().grad and any(ctx.needs_input_grad) and isinstance(out, Tensor):
            _record(cls.__name__, args, out, lambda g: cls.backward(ctx, g))
        return out


class custom_vjp:
    """JAX-style custom VJP: ``f = custom_vjp(f); f.defvjp(fwd, bwd)``.

    ``fwd(*args)`` returns ``(out, residuals)``; ``bwd(residuals, g)`` returns a tuple of gradients, one
    per argument.
    """

    def __init__(self, fun: Callable):
        self.fun = fun
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None
        self.__name__ = getattr(fun, "__name__", "custom_vjp")
        self.__doc__ = fun.__doc__

    def defvjp(self, fwd: Callable, bwd: Callable) -> "custom_vjp":
        """Set the forward (with residuals) and backward functions."""
        self.fwd, self.bwd = fwd, bwd
        return self

    def __call__(self, *args: Any) -> Any:
        needs = STATE.get().grad and any(isinstance(a, Tensor) and a._requires_grad for a in args)
        if not needs or self.fwd is None:
            return self.fun(*args)
        with state_changed(grad=False):
            out, res = self.fwd(*args)
        bwd = self.bwd
        _record(self.__name__, args, out, lambda g: bwd(res, g))
        return out
