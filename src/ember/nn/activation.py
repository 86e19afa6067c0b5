"""Activation modules over the functional activations (PyTorch's names and constructor arguments)."""
from __future__ import annotations

from typing import Any

from .. import _core
from .._core.tensor import Tensor
from . import functional as F
from .module import Module
from .parameter import Parameter

__all__ = ["LeakyReLU", "PReLU", "ELU", "CELU", "SELU", "Mish", "Softplus", "Hardswish", "Hardsigmoid",
           "Hardtanh", "ReLU6", "Softsign", "Tanhshrink", "LogSigmoid", "GLU", "Softmin", "Threshold",
           "Softshrink", "Hardshrink"]


class _Pointwise(Module):
    """An activation without state: ``fn(x, *args)`` with the arguments named in `_args`."""

    _args: tuple[str, ...] = ()

    @staticmethod
    def fn(x: Tensor, *args: Any) -> Tensor:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        return type(self).fn(input, *(getattr(self, a) for a in self._args))

    def extra_repr(self) -> str:
        return ", ".join(f"{a}={getattr(self, a)}" for a in self._args)


class LeakyReLU(_Pointwise):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    Shape: any -> same.

    Example:
        >>> ember.nn.LeakyReLU(0.5)(ember.tensor([-2.0])).tolist()
        [-1.0]
    """

    _args = ("negative_slope",)
    fn = staticmethod(F.leaky_relu)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope


class PReLU(Module):
    """Leaky ReLU with learned slopes: one shared (``num_parameters=1``) or one per channel.

    Args:
        num_parameters: 1 or the number of input channels (dimension 1).
        init: initial slope.

    Shape: (N, C, *) -> same. Parameter ``weight`` of shape (num_parameters,).

    Example:
        >>> ember.nn.PReLU()(ember.tensor([-4.0])).tolist()
        [-1.0]
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(_core.creation.full((num_parameters,), init, dtype=dtype, device=device))

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(_Pointwise):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    Example:
        >>> ember.nn.ELU()(ember.tensor([0.0])).tolist()
        [0.0]
    """

    _args = ("alpha",)
    fn = staticmethod(F.elu)

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = alpha


class CELU(ELU):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    Example:
        >>> ember.nn.CELU()(ember.tensor([1.0])).tolist()
        [1.0]
    """

    fn = staticmethod(F.celu)


class SELU(_Pointwise):
    """Scaled ELU with the self-normalising constants.

    Example:
        >>> ember.nn.SELU()(ember.tensor([0.0])).tolist()
        [0.0]
    """

    fn = staticmethod(F.selu)

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()


class Mish(_Pointwise):
    """``x * tanh(softplus(x))``.

    Example:
        >>> ember.nn.Mish()(ember.tensor([0.0])).tolist()
        [0.0]
    """

    fn = staticmethod(F.mish)

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()


class Softplus(_Pointwise):
    """``log(1 + exp(beta x)) / beta``, linear where ``beta x > threshold``.

    Example:
        >>> ember.nn.Softplus(threshold=1.0)(ember.tensor([5.0])).tolist()
        [5.0]
    """

    _args = ("beta", "threshold")
    fn = staticmethod(F.softplus)

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold


class Hardswish(SELU):
    """``x * relu6(x + 3) / 6``.

    Example:
        >>> ember.nn.Hardswish()(ember.tensor([3.0])).tolist()
        [3.0]
    """

    fn = staticmethod(F.hardswish)


class Hardsigmoid(SELU):
    """``relu6(x + 3) / 6``.

    Example:
        >>> ember.nn.Hardsigmoid()(ember.tensor([0.0])).tolist()
        [0.5]
    """

    fn = staticmethod(F.hardsigmoid)


class Hardtanh(_Pointwise):
    """Clamp to ``[min_val, max_val]``.

    Example:
        >>> ember.nn.Hardtanh()(ember.tensor([2.0])).tolist()
        [1.0]
    """

    _args = ("min_val", "max_val")
    fn = staticmethod(F.hardtanh)

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
        self.min_val, self.max_val = min_val, max_val


class ReLU6(Hardtanh):
    """``min(max(0, x), 6)``.

    Example:
        >>> ember.nn.ReLU6()(ember.tensor([7.0])).tolist()
        [6.0]
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0)

    def extra_repr(self) -> str:
        return ""


class Softsign(_Pointwise):
    """``x / (1 + |x|)``.

    Example:
        >>> ember.nn.Softsign()(ember.tensor([1.0])).tolist()
        [0.5]
    """

    fn = staticmethod(F.softsign)


class Tanhshrink(_Pointwise):
    """``x - tanh(x)``.

    Example:
        >>> ember.nn.Tanhshrink()(ember.tensor([0.0])).tolist()
        [0.0]
    """

    fn = staticmethod(F.tanhshrink)


class LogSigmoid(_Pointwise):
    """``log(sigmoid(x))``, stable.

    Example:
        >>> round(ember.nn.LogSigmoid()(ember.tensor([0.0])).item(), 4)
        -0.6931
    """

    fn = staticmethod(F.logsigmoid)


class GLU(_Pointwise):
    """Gated linear unit along `dim`: ``a * sigmoid(b)`` of the two halves.

    Shape: (*, 2n, *) -> (*, n, *).

    Example:
        >>> ember.nn.GLU()(ember.tensor([2.0, 0.0])).tolist()
        [1.0]
    """

    _args = ("dim",)
    fn = staticmethod(F.glu)

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim


class Softmin(GLU):
    """``softmax(-x)`` along `dim`.

    Example:
        >>> ember.nn.Softmin(0)(ember.tensor([0.0, 0.0])).tolist()
        [0.5, 0.5]
    """

    fn = staticmethod(F.softmin)

    def __init__(self, dim: int | None = None) -> None:
        super().__init__(-1 if dim is None else dim)


class Threshold(_Pointwise):
    """``x`` where ``x > threshold``, else `value`.

    Example:
        >>> ember.nn.Threshold(1.0, 0.0)(ember.tensor([0.5, 2.0])).tolist()
        [0.0, 2.0]
    """

    _args = ("threshold", "value")
    fn = staticmethod(F.threshold)

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold, self.value = threshold, value


class Softshrink(_Pointwise):
    """Soft shrinkage by `lambd`.

    Example:
        >>> ember.nn.Softshrink()(ember.tensor([1.0])).tolist()
        [0.5]
    """

    _args = ("lambd",)
    fn = staticmethod(F.softshrink)

    def __init__(self, lambd: float = 0.5) -> None:
        super().__init__()
        self.lambd = lambd


class Hardshrink(Softshrink):
    """Hard shrinkage: zero where ``|x| <= lambd``.

    Example:
        >>> ember.nn.Hardshrink()(ember.tensor([0.2, 1.0])).tolist()
        [0.0, 1.0]
    """

    fn = staticmethod(F.hardshrink)
