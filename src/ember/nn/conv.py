"""Convolution layers with PyTorch's API: Conv1d/2d/3d and ConvTranspose1d/2d/3d."""
from __future__ import annotations

import math
from typing import Any

from .. import _core
from .._core.errors import ShapeError
from .._core.primitives import movement
from .._core.tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(value, nd: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * nd
    value = tuple(int(v) for v in value)
    if len(value) != nd:
        raise ShapeError(name, f"expected an int or a tuple of {nd} ints, got {value}")
    return value


class _ConvNd(Module):
    """Shared parameters, initialisation and repr of the convolution layers."""

    _nd = 0
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", output_padding=0,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name, nd = type(self).__name__, self._nd
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ShapeError(name, f"in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                             f"divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ShapeError(name, f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _ntuple(kernel_size, nd, name)
        self.stride, self.dilation = _ntuple(stride, nd, name), _ntuple(dilation, nd, name)
        self.output_padding = _ntuple(output_padding, nd, name)
        self.padding = padding if isinstance(padding, str) else _ntuple(padding, nd, name)
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ShapeError(name, f"padding must be 'same', 'valid', an int or a tuple, got {padding!r}")
        if padding == "same" and any(s != 1 for s in self.stride):
            raise ShapeError(name, "padding='same' is not supported for strided convolutions")
        self.padding_mode = padding_mode
        if self._transposed:
            shape = (in_channels, out_channels // groups)
        else:
            shape = (out_channels, in_channels // groups)
        self.weight = Parameter(_core.creation.empty(*shape, *self.kernel_size, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(_core.creation.empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the weight (Kaiming uniform, a=√5) and bias (U(±1/√fan_in)), as PyTorch does."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def _edge_padding(self) -> list[int]:
        """F.pad amounts (last dim first) for a non-zero padding mode."""
        if self.padding == "same":
            pairs = F.same_padding(self.kernel_size, self.dilation)
        elif self.padding == "valid":
            pairs = ((0, 0),) * self._nd
        else:
            pairs = tuple((p, p) for p in self.padding)
        return [v for pair in reversed(pairs) for v in pair]

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    _fn: Any = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        fn = type(self)._fn
        if self.padding_mode == "zeros":
            return fn(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        x = movement.pad(input, self._edge_padding(), mode=self.padding_mode)
        return fn(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Conv1d(_Conv):
    """1-d convolution layer (cross-correlation), as ``torch.nn.Conv1d``.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size, stride, dilation: ints or 1-tuples.
        padding: int, 1-tuple, 'valid' or 'same'.
        groups: channel groups (``groups == in_channels`` is depthwise).
        bias: learn an additive bias.
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.

    Shape: (N, C_in, L) -> (N, C_out, L_out); weight (C_out, C_in / groups, k), bias (C_out,).

    Example:
        >>> import ember
        >>> ember.nn.Conv1d(2, 4, 3, padding=1)(ember.ones(5, 2, 10)).shape
        (5, 4, 10)
    """

    _nd = 1
    _fn = staticmethod(F.conv1d)


class Conv2d(_Conv):
    """2-d convolution layer, as ``torch.nn.Conv2d`` (arguments as in :class:`Conv1d`, with pairs).

    Shape: (N, C_in, H, W) -> (N, C_out, H_out, W_out); weight (C_out, C_in / groups, kH, kW).

    Example:
        >>> import ember
        >>> ember.nn.Conv2d(3, 8, 3, stride=2, padding=1)(ember.ones(2, 3, 32, 32)).shape
        (2, 8, 16, 16)
    """

    _nd = 2
    _fn = staticmethod(F.conv2d)


class Conv3d(_Conv):
    """3-d convolution layer, as ``torch.nn.Conv3d`` (arguments as in :class:`Conv1d`, with triples).

    Shape: (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out); weight (C_out, C_in / groups, kD, kH, kW).

    Example:
        >>> import ember
        >>> ember.nn.Conv3d(1, 2, 3, padding="same")(ember.ones(1, 1, 4, 4, 4)).shape
        (1, 2, 4, 4, 4)
    """

    _nd = 3
    _fn = staticmethod(F.conv3d)


class _ConvTranspose(_ConvNd):
    _transposed = True
    _fn: Any = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        if padding_mode != "zeros":
            raise ShapeError(type(self).__name__, f"only 'zeros' padding mode is supported, got "
                             f"{padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device, dtype)

    def _output_padding(self, input: Tensor, output_size) -> tuple[int, ...]:
        """The output_padding that gives `output_size` (PyTorch's rule), or the configured one."""
        if output_size is None:
            return self.output_padding
        nd = self._nd
        size = tuple(output_size)[-nd:]
        pads = []
        for d in range(nd):
            smallest = ((input.shape[-nd + d] - 1) * self.stride[d] - 2 * self.padding[d]
                        + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            extra = size[d] - smallest
            if not 0 <= extra < max(self.stride[d], self.dilation[d]):
                raise ShapeError(type(self).__name__, f"requested output size {size} is not reachable "
                                 f"from an input of shape {tuple(input.shape)}", (input,))
            pads.append(extra)
        return tuple(pads)

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        out_pad = self._output_padding(input, output_size)
        return type(self)._fn(input, self.weight, self.bias, self.stride, self.padding, out_pad, self.groups,
                              self.dilation)


class ConvTranspose1d(_ConvTranspose):
    """1-d transposed convolution layer, as ``torch.nn.ConvTranspose1d``.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size, stride, padding, dilation: those of the convolution being transposed.
        output_padding: extra size added at the end of the output.
        groups, bias: as in :class:`Conv1d`.

    Shape: (N, C_in, L) -> (N, C_out, L_out) with
        ``L_out = (L-1)·stride - 2·padding + dilation·(k-1) + output_padding + 1``;
        weight (C_in, C_out / groups, k).

    Example:
        >>> import ember
        >>> ember.nn.ConvTranspose1d(4, 2, 3, stride=2)(ember.ones(1, 4, 5)).shape
        (1, 2, 11)
    """

    _nd = 1
    _fn = staticmethod(F.conv_transpose1d)


class ConvTranspose2d(_ConvTranspose):
    """2-d transposed convolution layer, as ``torch.nn.ConvTranspose2d`` (see :class:`ConvTranspose1d`).

    Shape: (N, C_in, H, W) -> (N, C_out, H_out, W_out); weight (C_in, C_out / groups, kH, kW).

    Example:
        >>> import ember
        >>> up = ember.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        >>> up(ember.ones(1, 4, 8, 8)).shape
        (1, 2, 16, 16)
    """

    _nd = 2
    _fn = staticmethod(F.conv_transpose2d)


class ConvTranspose3d(_ConvTranspose):
    """3-d transposed convolution layer, as ``torch.nn.ConvTranspose3d`` (see :class:`ConvTranspose1d`).

    Shape: (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out); weight (C_in, C_out / groups, kD, kH, kW).

    Example:
        >>> import ember
        >>> ember.nn.ConvTranspose3d(2, 1, 2, stride=2)(ember.ones(1, 2, 3, 3, 3)).shape
        (1, 1, 6, 6, 6)
    """

    _nd = 3
    _fn = staticmethod(F.conv_transpose3d)
