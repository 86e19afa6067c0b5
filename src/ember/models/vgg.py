"""VGG-11/16 (Simonyan & Zisserman, 2015), with or without batch norm, in torchvision's layout.

Parameter names: ``features.N`` (convolutions and batch norms at their torchvision positions),
``classifier.0`` / ``.3`` / ``.6`` (the three Linear layers); ``avgpool`` has no parameters.
"""
from __future__ import annotations

from typing import Any, Sequence

from .. import nn
from .._core.tensor import Tensor
from ..nn import init

__all__ = ["VGG", "make_vgg_features", "VGG_CONFIGS", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn"]

# "M" = 2×2 max pooling; numbers = output channels of a 3×3 convolution.
VGG_CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def make_vgg_features(cfg: Sequence[int | str], batch_norm: bool = False,
                      in_channels: int = 3) -> nn.Sequential:
    """The convolutional trunk: 3×3 conv (+ batch norm) + ReLU per number, max pooling per ``"M"``.

    Example:
        >>> import ember
        >>> trunk = ember.models.make_vgg_features([8, "M", 16], batch_norm=True)
        >>> len(trunk)
        7
    """
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        in_channels = int(v)
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: a convolutional trunk, adaptive average pooling and a three-layer classifier.

    Args:
        features: the trunk (see :func:`make_vgg_features`); its last layer gives `trunk_channels`.
        num_classes: classifier outputs.
        init_weights: torchvision's initialisation (He-normal convolutions, N(0, 0.01) linear layers).
        dropout: dropout probability in the classifier.
        hidden: width of the two hidden classifier layers (4096 in the paper).
        pool_size: output side of the adaptive average pooling (7 in the paper).
        trunk_channels: channels the trunk ends with (512 in the paper).

    Shape: (N, C, H, W) -> (N, num_classes).

    Example:
        >>> import ember
        >>> from ember.models import VGG, make_vgg_features
        >>> net = VGG(make_vgg_features([8, "M"]), num_classes=3, hidden=16, pool_size=2, trunk_channels=8)
        >>> tuple(net(ember.ones(2, 3, 8, 8)).shape)
        (2, 3)
    """

    def __init__(self, features: nn.Module, num_classes: int = 1000, init_weights: bool = True,
                 dropout: float = 0.5, hidden: int = 4096, pool_size: int = 7,
                 trunk_channels: int = 512) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(trunk_channels * pool_size * pool_size, hidden), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes))
        if init_weights:
            self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init.normal_(m.weight, 0.0, 0.01)
                init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _vgg(cfg: str, batch_norm: bool, num_classes: int, kwargs: dict) -> VGG:
    in_channels = kwargs.pop("in_channels", 3)
    return VGG(make_vgg_features(VGG_CONFIGS[cfg], batch_norm, in_channels), num_classes, **kwargs)


def vgg11(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-11 (configuration A): 132,863,336 parameters with 1000 classes.

    Args:
        num_classes: classifier outputs.
        kwargs: ``in_channels`` and the :class:`VGG` options (dropout, hidden, pool_size, init_weights).

    Example:
        >>> import ember
        >>> net = ember.models.vgg11(num_classes=4, hidden=8, pool_size=1)
        >>> tuple(net(ember.ones(1, 3, 32, 32)).shape)
        (1, 4)
    """
    return _vgg("A", False, num_classes, kwargs)


def vgg11_bn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-11 with batch norm after every convolution: 132,868,840 parameters with 1000 classes.

    Example:
        >>> import ember
        >>> type(ember.models.vgg11_bn(hidden=8, pool_size=1).features[1]).__name__
        'BatchNorm2d'
    """
    return _vgg("A", True, num_classes, kwargs)


def vgg16(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters with 1000 classes.

    Example:
        >>> import ember
        >>> len(ember.models.vgg16(hidden=8, pool_size=1).features)
        31
    """
    return _vgg("D", False, num_classes, kwargs)


def vgg16_bn(num_classes: int = 1000, **kwargs: Any) -> VGG:
    """VGG-16 with batch norm after every convolution: 138,365,992 parameters with 1000 classes.

    Example:
        >>> import ember
        >>> len(ember.models.vgg16_bn(hidden=8, pool_size=1).features)
        44
    """
    return _vgg("D", True, num_classes, kwargs)
