"""Pooling layers with PyTorch's API: max, average and adaptive pooling in 1, 2 and 3 dimensions."""
from __future__ import annotations

from .._core.tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
           "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
           "AdaptiveMaxPool3d"]


class _MaxPoolNd(Module):
    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor):
        return type(self)._fn(input, self.kernel_size, self.stride, self.padding, self.dilation,
                              ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """1-d max pooling, as ``torch.nn.MaxPool1d``.

    Args:
        kernel_size: window size.
        stride: window step (default `kernel_size`).
        padding: implicit -inf padding on both sides (at most half the kernel).
        dilation: spacing of window elements.
        return_indices: also return the index of each maximum.
        ceil_mode: round the output size up.

    Shape: (N, C, L) -> (N, C, L_out).

    Example:
        >>> import ember
        >>> ember.nn.MaxPool1d(2)(ember.tensor([[[1.0, 3.0, 2.0, 0.0]]])).tolist()
        [[[3.0, 2.0]]]
    """

    _fn = staticmethod(F.max_pool1d)


class MaxPool2d(_MaxPoolNd):
    """2-d max pooling, as ``torch.nn.MaxPool2d`` (arguments as in :class:`MaxPool1d`).

    Shape: (N, C, H, W) -> (N, C, H_out, W_out).

    Example:
        >>> import ember
        >>> ember.nn.MaxPool2d(2)(ember.ones(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    _fn = staticmethod(F.max_pool2d)


class MaxPool3d(_MaxPoolNd):
    """3-d max pooling, as ``torch.nn.MaxPool3d`` (arguments as in :class:`MaxPool1d`).

    Shape: (N, C, D, H, W) -> (N, C, D_out, H_out, W_out).

    Example:
        >>> import ember
        >>> ember.nn.MaxPool3d(2)(ember.ones(1, 1, 4, 4, 4)).shape
        (1, 1, 2, 2, 2)
    """

    _fn = staticmethod(F.max_pool3d)


class _AvgPoolNd(Module):
    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """1-d average pooling, as ``torch.nn.AvgPool1d``.

    Args:
        kernel_size: window size.
        stride: window step (default `kernel_size`).
        padding: implicit zero padding on both sides.
        ceil_mode: round the output size up.
        count_include_pad: count padded zeros in the divisor.

    Shape: (N, C, L) -> (N, C, L_out).

    Example:
        >>> import ember
        >>> ember.nn.AvgPool1d(2)(ember.tensor([[[1.0, 3.0, 2.0, 0.0]]])).tolist()
        [[[2.0, 1.0]]]
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        one = (lambda v: (v,) if isinstance(v, int) else tuple(v))  # PyTorch stores 1-tuples here
        self.kernel_size, self.stride, self.padding = one(self.kernel_size), one(self.stride), one(padding)

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """2-d average pooling, as ``torch.nn.AvgPool2d`` (arguments as in :class:`AvgPool1d`, plus
    `divisor_override`, which replaces every window's divisor).

    Shape: (N, C, H, W) -> (N, C, H_out, W_out).

    Example:
        >>> import ember
        >>> ember.nn.AvgPool2d(2)(ember.ones(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    _fn = staticmethod(F.avg_pool2d)


class AvgPool3d(_AvgPoolNd):
    """3-d average pooling, as ``torch.nn.AvgPool3d`` (arguments as in :class:`AvgPool2d`).

    Shape: (N, C, D, H, W) -> (N, C, D_out, H_out, W_out).

    Example:
        >>> import ember
        >>> ember.nn.AvgPool3d(2)(ember.ones(1, 1, 4, 4, 4)).shape
        (1, 1, 2, 2, 2)
    """

    _fn = staticmethod(F.avg_pool3d)


class _AdaptiveAvgPoolNd(Module):
    _fn = None

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """1-d adaptive average pooling, as ``torch.nn.AdaptiveAvgPool1d``.

    Args:
        output_size: number of bins; bin i covers ``[floor(i·L/out), ceil((i+1)·L/out))``.

    Shape: (N, C, L) -> (N, C, output_size).

    Example:
        >>> import ember
        >>> ember.nn.AdaptiveAvgPool1d(2)(ember.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]])).tolist()
        [[[2.0, 4.0]]]
    """

    _fn = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """2-d adaptive average pooling, as ``torch.nn.AdaptiveAvgPool2d`` (None in `output_size` keeps a size).

    Shape: (N, C, H, W) -> (N, C, *output_size).

    Example:
        >>> import ember
        >>> ember.nn.AdaptiveAvgPool2d((1, 1))(ember.ones(2, 3, 7, 7)).shape
        (2, 3, 1, 1)
    """

    _fn = staticmethod(F.adaptive_avg_pool2d)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """3-d adaptive average pooling, as ``torch.nn.AdaptiveAvgPool3d``.

    Shape: (N, C, D, H, W) -> (N, C, *output_size).

    Example:
        >>> import ember
        >>> ember.nn.AdaptiveAvgPool3d(2)(ember.ones(1, 2, 5, 5, 5)).shape
        (1, 2, 2, 2, 2)
    """

    _fn = staticmethod(F.adaptive_avg_pool3d)


class _AdaptiveMaxPoolNd(Module):
    _fn = None

    def __init__(self, output_size, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input: Tensor):
        return type(self)._fn(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """1-d adaptive max pooling, as ``torch.nn.AdaptiveMaxPool1d``.

    Args:
        output_size: number of bins (PyTorch's bin boundaries).
        return_indices: also return the index of each maximum.

    Shape: (N, C, L) -> (N, C, output_size).

    Example:
        >>> import ember
        >>> ember.nn.AdaptiveMaxPool1d(2)(ember.tensor([[[1.0, 5.0, 3.0, 4.0, 2.0]]])).tolist()
        [[[5.0, 4.0]]]
    """

    _fn = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """2-d adaptive max pooling, as ``torch.nn.AdaptiveMaxPool2d``.

    Shape: (N, C, H, W) -> (N, C, *output_size).

    Example:
        >>> import ember
        >>> ember.nn.AdaptiveMaxPool2d(1)(ember.ones(2, 3, 7, 7)).shape
        (2, 3, 1, 1)
    """

    _fn = staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """3-d adaptive max pooling, as ``torch.nn.AdaptiveMaxPool3d``.

    Shape: (N, C, D, H, W) -> (N, C, *output_size).

    Example:
        >>> import ember
        >>> ember.nn.AdaptiveMaxPool3d(2)(ember.ones(1, 1, 5, 5, 5)).shape
        (1, 1, 2, 2, 2)
    """

    _fn = staticmethod(F.adaptive_max_pool3d)
