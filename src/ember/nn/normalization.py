"""Normalisation layers: BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, LayerNorm, GroupNorm, RMSNorm.

Parameter and buffer names (weight, bias, running_mean, running_var, num_batches_tracked) match
PyTorch's, so state dicts load across.
"""
from __future__ import annotations

from typing import Any, Sequence

from .. import _core
from .._core import dtypes
from .._core.autograd import no_grad
from .._core.errors import ShapeError
from .._core.primitives import movement
from .._core.tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "LayerNorm", "GroupNorm", "RMSNorm"]


class _NormBase(Module):
    """Shared state of batch and instance norm: affine parameters and running statistics."""

    def __init__(self, num_features: int, eps: float, momentum: float | None, affine: bool,
                 track_running_stats: bool, dtype: Any = None, device: Any = None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(_core.creation.ones(num_features, dtype=dtype, device=device))
            self.bias = Parameter(_core.creation.zeros(num_features, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            zeros = _core.creation.zeros(num_features, dtype=dtype, device=device)
            self.register_buffer("running_mean", zeros)
            self.register_buffer("running_var", _core.creation.ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", _core.creation.tensor(0, dtype=dtypes.int64,
                                                                              device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Zero the running mean and batch count, set the running variance to one."""
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            with no_grad():
                self.num_batches_tracked.fill_(0)

    def reset_parameters(self) -> None:
        """Reset the running statistics and set weight to one and bias to zero."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _factor(self) -> float | Tensor:
        """The momentum of this step (a cumulative average when momentum is None); counts the batch.
        The cumulative average's weight, one over the count, is a 0-d tensor computed from the counter,
        so that a compiled step reads the count when it runs."""
        if not (self.training and self.track_running_stats):
            return 0.0 if self.momentum is None else self.momentum
        with no_grad():
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                count = self.num_batches_tracked
                return 1.0 / (count if self.running_mean is None else count.to(self.running_mean.dtype))
        return self.momentum

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    _dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True,
                 track_running_stats: bool = True, dtype: Any = None, device: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, device)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ShapeError(type(self).__name__, f"expected {want} input (got {input.ndim}D input of shape "
                             f"{tuple(input.shape)})", (input,))
        factor = self._factor()
        use_batch = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if keep else None, self.running_var if keep else None,
                            self.weight, self.bias, use_batch, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs.

    In training the batch statistics normalise and update ``running_mean``/``running_var`` (unbiased
    variance) with `momentum`, or a cumulative average when `momentum` is None; in eval mode the
    running statistics normalise.

    Args:
        num_features: the number of channels C.
        eps: added to the variance.
        momentum: weight of the new batch statistic (None: cumulative moving average).
        affine: learn ``weight`` (ones) and ``bias`` (zeros).
        track_running_stats: keep running statistics (else batch statistics are used in eval too).

    Shape: (N, C) or (N, C, L) -> same.

    Example:
        >>> bn = ember.nn.BatchNorm1d(3)
        >>> bn(ember.randn(4, 3)).shape
        (4, 3)
    """

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) inputs (see :class:`BatchNorm1d`).

    Shape: (N, C, H, W) -> same.

    Example:
        >>> ember.nn.BatchNorm2d(2)(ember.randn(2, 2, 3, 3)).shape
        (2, 2, 3, 3)
    """

    _dims = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalisation over (N, C, D, H, W) inputs (see :class:`BatchNorm1d`).

    Shape: (N, C, D, H, W) -> same.

    Example:
        >>> ember.nn.BatchNorm3d(2)(ember.randn(2, 2, 1, 2, 2)).shape
        (2, 2, 1, 2, 2)
    """

    _dims = (5,)


class _InstanceNorm(_NormBase):
    _batched = 3

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False,
                 track_running_stats: bool = False, dtype: Any = None, device: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype, device)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (self._batched - 1, self._batched):
            raise ShapeError(type(self).__name__, f"expected {self._batched - 1}D (unbatched) or "
                             f"{self._batched}D (batched) input, got shape {tuple(input.shape)}", (input,))
        unbatched = input.ndim == self._batched - 1
        x = movement.unsqueeze(input, 0) if unbatched else input
        use_input_stats = self.training or not self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum  # PyTorch counts no batches here
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              use_input_stats, factor, self.eps)
        return movement.squeeze(out, 0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation: each channel of each sample over its length.

    Args as :class:`BatchNorm1d`, but `affine` and `track_running_stats` default to False.

    Shape: (N, C, L) or (C, L) -> same.

    Example:
        >>> ember.nn.InstanceNorm1d(2)(ember.randn(3, 2, 5)).shape
        (3, 2, 5)
    """

    _batched = 3


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation over the (H, W) of each channel of each sample.

    Shape: (N, C, H, W) or (C, H, W) -> same.

    Example:
        >>> ember.nn.InstanceNorm2d(2)(ember.randn(1, 2, 3, 3)).shape
        (1, 2, 3, 3)
    """

    _batched = 4


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation over the (D, H, W) of each channel of each sample.

    Shape: (N, C, D, H, W) or (C, D, H, W) -> same.

    Example:
        >>> ember.nn.InstanceNorm3d(2)(ember.randn(1, 2, 2, 2, 2)).shape
        (1, 2, 2, 2, 2)
    """

    _batched = 5


def _as_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


class LayerNorm(Module):
    """Layer normalisation over the trailing `normalized_shape` dimensions.

    Args:
        normalized_shape: the shape of the normalised trailing dimensions.
        eps: added to the variance.
        elementwise_affine: learn ``weight`` (ones) and, with `bias`, ``bias`` (zeros).
        bias: learn the additive bias (with `elementwise_affine`).

    Shape: (*, *normalized_shape) -> same.

    Example:
        >>> ember.nn.LayerNorm(4)(ember.randn(2, 4)).shape
        (2, 4)
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, dtype: Any = None,
                 device: Any = None) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(_core.creation.ones(*self.normalized_shape, dtype=dtype, device=device))
            if bias:
                zeros = _core.creation.zeros(*self.normalized_shape, dtype=dtype, device=device)
                self.bias = Parameter(zeros)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        """Weight to one, bias to zero."""
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Group normalisation: channels split into `num_groups` groups, each normalised per sample.

    Args:
        num_groups: number of groups (must divide `num_channels`).
        num_channels: number of channels C.
        eps: added to the variance.
        affine: learn per-channel ``weight`` (ones) and ``bias`` (zeros).

    Shape: (N, C, *) -> same.

    Example:
        >>> ember.nn.GroupNorm(2, 4)(ember.randn(3, 4, 5)).shape
        (3, 4, 5)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype: Any = None, device: Any = None) -> None:
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        if affine:
            self.weight = Parameter(_core.creation.ones(num_channels, dtype=dtype, device=device))
            self.bias = Parameter(_core.creation.zeros(num_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class RMSNorm(Module):
    """Root-mean-square normalisation over the trailing `normalized_shape` dimensions.

    Args:
        normalized_shape: the shape of the normalised trailing dimensions.
        eps: added to the mean square (None: the input dtype's machine epsilon).
        elementwise_affine: learn ``weight`` (ones).

    Shape: (*, *normalized_shape) -> same.

    Example:
        >>> ember.nn.RMSNorm(4)(ember.randn(2, 4)).shape
        (2, 4)
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float | None = None,
                 elementwise_affine: bool = True, dtype: Any = None, device: Any = None) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(_core.creation.ones(*self.normalized_shape, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
