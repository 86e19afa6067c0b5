"""Bilinear, Unflatten, Upsample, PixelShuffle/PixelUnshuffle and channel-wise dropout layers."""
from __future__ import annotations

import math
from typing import Any, Sequence

from .. import _core
from .._core.primitives import movement
from .._core.tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Bilinear", "Unflatten", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
           "PixelUnshuffle", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout"]


class Bilinear(Module):
    """``y_k = x1ᵀ W_k x2 + b_k``, initialised U(±1/√in1_features) like PyTorch.

    Args:
        in1_features, in2_features: sizes of the last dimension of the two inputs.
        out_features: output size.
        bias: learn an additive bias.

    Shape: (*, in1), (*, in2) -> (*, out). Parameters ``weight`` (out, in1, in2), ``bias`` (out,).

    Example:
        >>> ember.nn.Bilinear(2, 3, 4)(ember.randn(5, 2), ember.randn(5, 3)).shape
        (5, 4)
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = Parameter(_core.creation.empty(out_features, in1_features, in2_features, dtype=dtype,
                                                     device=device))
        if bias:
            self.bias = Parameter(_core.creation.empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw weight and bias from U(-1/√in1_features, 1/√in1_features)."""
        bound = 1 / math.sqrt(self.in1_features) if self.in1_features > 0 else 0.0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Unflatten(Module):
    """Expand dimension `dim` into `unflattened_size`.

    Shape: (*, S, *) -> (*, *unflattened_size, *) where prod(unflattened_size) = S.

    Example:
        >>> ember.nn.Unflatten(1, (2, 3))(ember.zeros(4, 6)).shape
        (4, 2, 3)
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input: Tensor) -> Tensor:
        return movement.unflatten(input, self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Upsample(Module):
    """Resample spatial dimensions by `size` or `scale_factor` (see ``functional.interpolate``).

    Shape: (N, C, *spatial) -> (N, C, *new_spatial).

    Example:
        >>> ember.nn.Upsample(scale_factor=2, mode="bilinear")(ember.zeros(1, 1, 2, 2)).shape
        (1, 1, 4, 4)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None) -> None:
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self) -> str:
        what = f"scale_factor={self.scale_factor}" if self.scale_factor is not None else f"size={self.size}"
        return f"{what}, mode='{self.mode}'"


class UpsamplingNearest2d(Upsample):
    """2-d nearest-neighbour upsampling.

    Example:
        >>> ember.nn.UpsamplingNearest2d(scale_factor=2)(ember.zeros(1, 1, 1, 1)).shape
        (1, 1, 2, 2)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, "nearest")


class UpsamplingBilinear2d(Upsample):
    """2-d bilinear upsampling with ``align_corners=True``.

    Example:
        >>> ember.nn.UpsamplingBilinear2d(size=3)(ember.zeros(1, 1, 2, 2)).shape
        (1, 1, 3, 3)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, "bilinear", True)


class PixelShuffle(Module):
    """(*, C·r², H, W) -> (*, C, H·r, W·r).

    Example:
        >>> ember.nn.PixelShuffle(2)(ember.zeros(1, 8, 3, 3)).shape
        (1, 2, 6, 6)
    """

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H·r, W·r) -> (*, C·r², H, W).

    Example:
        >>> ember.nn.PixelUnshuffle(2)(ember.zeros(1, 2, 6, 6)).shape
        (1, 8, 3, 3)
    """

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


class _DropoutNd(Module):
    fn: Any = None

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:
        return type(self).fn(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability `p` in training.

    Example:
        >>> ember.nn.Dropout1d(0.5).eval()(ember.ones(1, 2, 3)).sum().item()
        6.0
    """

    fn = staticmethod(F.dropout1d)


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) or (C, H, W) inputs with probability `p` in training.

    Example:
        >>> ember.nn.Dropout2d(0.0)(ember.ones(1, 2, 2, 2)).sum().item()
        8.0
    """

    fn = staticmethod(F.dropout2d)


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs with probability `p` in training.

    Example:
        >>> ember.nn.Dropout3d(0.0)(ember.ones(1, 2, 1, 1, 1)).sum().item()
        2.0
    """

    fn = staticmethod(F.dropout3d)


class AlphaDropout(_DropoutNd):
    """Dropout that keeps the mean and variance of SELU activations.

    Example:
        >>> ember.nn.AlphaDropout(0.5).eval()(ember.ones(2)).tolist()
        [1.0, 1.0]
    """

    fn = staticmethod(F.alpha_dropout)
