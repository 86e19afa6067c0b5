"""MobileNetV2 (Sandler et al., 2018) in torchvision's layout (``features.N.conv…``, ``classifier.1``)."""
from __future__ import annotations

from typing import Any, Sequence

from .. import nn
from .._core.tensor import Tensor
from ..nn import init

__all__ = ["Conv2dNormActivation", "InvertedResidual", "MobileNetV2", "mobilenet_v2", "make_divisible"]

# t (expansion), c (output channels), n (repeats), s (stride of the first repeat)
_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
            [6, 320, 1, 1]]


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never below 90 % of `v` (the TF reference rule).

    Example:
        >>> from ember.models import make_divisible
        >>> make_divisible(32 * 0.75), make_divisible(1280 * 1.4)
        (24, 1792)
    """
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → activation, as children ``0``, ``1``, ``2`` (torchvision's block).

    Args:
        in_channels, out_channels: channels.
        kernel_size: square kernel side; padding keeps the size ((k - 1) // 2).
        stride: convolution stride.
        groups: convolution groups (``in_channels`` for a depthwise convolution).
        activation: activation class (ReLU6 in MobileNetV2), or None for none.

    Shape: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).

    Example:
        >>> import ember
        >>> block = ember.models.Conv2dNormActivation(3, 8, stride=2)
        >>> tuple(block(ember.ones(1, 3, 8, 8)).shape)
        (1, 8, 4, 4)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: type | None = nn.ReLU6) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels)]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """1×1 expansion (skipped when ``expand_ratio == 1``), 3×3 depthwise, linear 1×1 projection; residual
    when the stride is 1 and the channel count is kept.

    Args:
        inp, oup: input and output channels.
        stride: 1 or 2 (depthwise convolution).
        expand_ratio: hidden width as a multiple of `inp`.

    Shape: (N, inp, H, W) -> (N, oup, H/stride, W/stride).

    Example:
        >>> import ember
        >>> block = ember.models.InvertedResidual(8, 8, 1, 6)
        >>> block.use_res_connect, tuple(block(ember.ones(1, 8, 4, 4)).shape)
        (True, (1, 8, 4, 4))
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: float) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2 instead of {stride}")
        hidden = int(round(inp * expand_ratio))
        self.stride, self.out_channels = stride, oup
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1))
        layers += [Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2: a strided stem, 17 inverted-residual blocks, a 1×1 head convolution, pooling, classifier.

    Args:
        num_classes: classifier outputs.
        width_mult: multiplies every channel count (rounded with :func:`make_divisible`).
        inverted_residual_setting: rows ``[t, c, n, s]`` (expansion, channels, repeats, first stride);
            the paper's table by default.
        round_nearest: channel counts are multiples of this.
        dropout: dropout before the classifier's Linear layer.
        in_channels: input channels.

    Shape: (N, in_channels, H, W) -> (N, num_classes).

    Example:
        >>> import ember
        >>> net = ember.models.mobilenet_v2(num_classes=5, width_mult=0.25).eval()
        >>> tuple(net(ember.ones(1, 3, 32, 32)).shape)
        (1, 5)
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0,
                 inverted_residual_setting: Sequence[Sequence[int]] | None = None, round_nearest: int = 8,
                 dropout: float = 0.2, in_channels: int = 3) -> None:
        super().__init__()
        setting = _SETTING if inverted_residual_setting is None else inverted_residual_setting
        if len(setting) == 0 or any(len(row) != 4 for row in setting):
            raise ValueError(f"inverted_residual_setting should be non-empty rows of 4, got {setting}")
        channels = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [Conv2dNormActivation(in_channels, channels, stride=2)]
        for t, c, n, s in setting:
            out = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, expand_ratio=t))
                channels = out
        features.append(Conv2dNormActivation(channels, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init.normal_(m.weight, 0.0, 0.01)
                init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(x.flatten(1))


def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2; 3,504,872 parameters with 1000 classes and ``width_mult=1``.

    Example:
        >>> import ember
        >>> len(ember.models.mobilenet_v2(width_mult=0.25).features)
        19
    """
    return MobileNetV2(num_classes, width_mult, **kwargs)
