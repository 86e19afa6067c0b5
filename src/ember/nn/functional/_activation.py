"""Activation functions beyond the basic ones: each elementwise one is a formula of the elementwise DSL.

A formula gives the kernel, the derivatives (to any order) and the batching rule at once. Scalar
hyper-parameters (slopes, thresholds) are extra formula inputs passed as Python numbers, so they need
no primitive per value and receive no gradient.
"""
from __future__ import annotations

from ..._core.errors import ShapeError
from ..._core.primitives import elementwise as ew
from ..._core.primitives import movement
from ..._core.primitives.elementwise import FLOAT, SAME, apply, elementwise
from ..._core.tensor import Tensor
from ._basic import softmax

__all__ = ["leaky_relu", "prelu", "elu", "celu", "selu", "mish", "hardswish", "hardsigmoid", "hardtanh",
           "relu6", "softsign", "tanhshrink", "logsigmoid", "glu", "softmin", "threshold", "softshrink",
           "hardshrink"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

# The comparisons follow PyTorch's kernels so that gradients at the kinks agree (e.g. leaky_relu
# takes the negative slope at 0, hardtanh has zero gradient on its boundaries).
leaky_relu_p = elementwise("leaky_relu", "where(x > 0, x, x * a)", SAME, ("x", "a"))
prelu_p = elementwise("prelu", "where(x > 0, x, w * x)", SAME, ("x", "w"))
elu_p = elementwise("elu", "where(x > 0, x, a * expm1(x))", FLOAT, ("x", "a"))
celu_p = elementwise("celu", "where(x > 0, x, a * expm1(x / a))", FLOAT, ("x", "a"))
selu_p = elementwise("selu", f"{_SELU_SCALE} * where(x > 0, x, {_SELU_ALPHA} * expm1(x))", FLOAT)
mish_p = elementwise("mish", "x * tanh(where(x > 20, x, log1p(exp(x))))", FLOAT)
hardswish_p = elementwise("hardswish", "x * where(x <= -3, 0, where(x >= 3, 1, (x + 3) / 6))", SAME)
hardsigmoid_p = elementwise("hardsigmoid", "where(x <= -3, 0, where(x >= 3, 1, x / 6 + 0.5))", SAME)
hardtanh_p = elementwise("hardtanh", "where(x <= lo, lo, where(x >= hi, hi, x))", SAME, ("x", "lo", "hi"))
softsign_p = elementwise("softsign", "x / (1 + abs(x))", FLOAT)
tanhshrink_p = elementwise("tanhshrink", "x - tanh(x)", FLOAT)
logsigmoid_p = elementwise("logsigmoid", "where(x < -20, x, -log1p(exp(-x)))", FLOAT)
threshold_p = elementwise("threshold", "where(x > t, x, v)", SAME, ("x", "t", "v"))
softshrink_p = elementwise("softshrink", "where(x > l, x - l, where(x < -l, x + l, 0))", SAME, ("x", "l"))
hardshrink_p = elementwise("hardshrink", "where(x > l, x, where(x < -l, x, 0))", SAME, ("x", "l"))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    Example:
        >>> F.leaky_relu(ember.tensor([-2.0, 3.0]), 0.5).tolist()
        [-1.0, 3.0]
    """
    return apply(leaky_relu_p, input, negative_slope)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """Leaky ReLU with a learned slope per channel (dimension 1) or one shared slope.

    Args:
        input: tensor of shape (N, C, *) or (C, *) or a scalar.
        weight: slopes of shape (C,) or (1,).

    Example:
        >>> F.prelu(ember.tensor([[-2.0, 2.0]]), ember.tensor([0.25])).tolist()
        [[-0.5, 2.0]]
    """
    if weight.ndim != 1:
        raise ShapeError("prelu", f"weight must be 1-d, got shape {tuple(weight.shape)}", (input, weight))
    c = weight.shape[0]
    if c != 1:
        channels = input.shape[1] if input.ndim >= 2 else (input.shape[0] if input.ndim == 1 else 1)
        if channels != c:
            raise ShapeError("prelu", f"weight has {c} slopes but the input has {channels} channels",
                             (input, weight))
        if input.ndim >= 2:
            weight = movement.reshape(weight, (c,) + (1,) * (input.ndim - 2))
    return apply(prelu_p, input, weight)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    Example:
        >>> round(F.elu(ember.tensor([-1.0])).item(), 4)
        -0.6321
    """
    return apply(elu_p, input, alpha)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    Example:
        >>> round(F.celu(ember.tensor([-1.0]), 2.0).item(), 4)
        -0.7869
    """
    if alpha == 0:
        raise ValueError("celu: alpha must not be zero")
    return apply(celu_p, input, alpha)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """Scaled ELU with the self-normalising constants (scale ≈ 1.0507, alpha ≈ 1.6733).

    Example:
        >>> round(F.selu(ember.tensor([1.0])).item(), 4)
        1.0507
    """
    return apply(selu_p, input)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))``.

    Example:
        >>> round(F.mish(ember.tensor([1.0])).item(), 4)
        0.8651
    """
    return apply(mish_p, input)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6``.

    Example:
        >>> F.hardswish(ember.tensor([-4.0, 0.0, 1.0, 4.0])).tolist()[1:]
        [0.0, 0.6666666865348816, 4.0]
    """
    return apply(hardswish_p, input)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(x + 3) / 6``: 0 below -3, 1 above 3, linear between.

    Example:
        >>> F.hardsigmoid(ember.tensor([-4.0, 0.0, 4.0])).tolist()
        [0.0, 0.5, 1.0]
    """
    return apply(hardsigmoid_p, input)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """Clamp to ``[min_val, max_val]`` (zero gradient outside the open interval).

    Example:
        >>> F.hardtanh(ember.tensor([-2.0, 0.5, 2.0])).tolist()
        [-1.0, 0.5, 1.0]
    """
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    return apply(hardtanh_p, input, min_val, max_val)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(0, x), 6)``.

    Example:
        >>> F.relu6(ember.tensor([-1.0, 3.0, 7.0])).tolist()
        [0.0, 3.0, 6.0]
    """
    return apply(hardtanh_p, input, 0.0, 6.0)


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``.

    Example:
        >>> F.softsign(ember.tensor([1.0, -3.0])).tolist()
        [0.5, -0.75]
    """
    return apply(softsign_p, input)


def tanhshrink(input: Tensor) -> Tensor:
    """``x - tanh(x)``.

    Example:
        >>> F.tanhshrink(ember.tensor([0.0])).tolist()
        [0.0]
    """
    return apply(tanhshrink_p, input)


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x))``, computed stably for large ``|x|``.

    Example:
        >>> F.logsigmoid(ember.tensor([-1000.0])).item()
        -1000.0
    """
    return apply(logsigmoid_p, input)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x`` where ``x > threshold``, else `value`.

    Example:
        >>> F.threshold(ember.tensor([0.5, 2.0]), 1.0, -1.0).tolist()
        [-1.0, 2.0]
    """
    return apply(threshold_p, input, threshold, value)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """Shrink towards zero by `lambd`: ``x - lambd`` above it, ``x + lambd`` below ``-lambd``, else 0.

    Example:
        >>> F.softshrink(ember.tensor([-1.0, 0.2, 1.0])).tolist()
        [-0.5, 0.0, 0.5]
    """
    return apply(softshrink_p, input, lambd)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x`` where ``|x| > lambd``, else 0.

    Example:
        >>> F.hardshrink(ember.tensor([-1.0, 0.2, 1.0])).tolist()
        [-1.0, 0.0, 1.0]
    """
    return apply(hardshrink_p, input, lambd)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """Gated linear unit: split `input` in halves ``a, b`` along `dim` and return ``a * sigmoid(b)``.

    Example:
        >>> F.glu(ember.tensor([2.0, 0.0])).tolist()
        [1.0]
    """
    if input.ndim == 0:
        raise ShapeError("glu", "glu does not support scalars (0-d tensors)", (input,))
    d = dim % input.ndim
    if input.shape[d] % 2:
        raise ShapeError("glu", f"halving dimension {dim} needs an even size, got {input.shape[d]} "
                         f"(input shape {tuple(input.shape)})", (input,))
    a, b = movement.chunk(input, 2, d)
    return a * ew.sigmoid(b)


def softmin(input: Tensor, dim: int, dtype=None) -> Tensor:
    """``softmax(-x)`` along `dim`.

    Example:
        >>> [round(v, 4) for v in F.softmin(ember.tensor([0.0, 1.0]), 0).tolist()]
        [0.7311, 0.2689]
    """
    return softmax(-input if dtype is None else -ew.convert(input, dtype), dim)
