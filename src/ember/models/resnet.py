"""ResNet-18/34/50 (He et al., 2016) with torchvision's layout, so its state dicts load unchanged.

Parameter names: ``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.bn1``, …, ``layer2.0.downsample.0``
(1×1 conv) and ``.1`` (batch norm), ``fc``. Bottleneck blocks stride in the 3×3 convolution (ResNet v1.5,
as torchvision).
"""
from __future__ import annotations

from typing import Any, Sequence

from .. import nn
from .._core.tensor import Tensor
from ..nn import init

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50"]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or projected) shortcut; expansion 1.

    Args:
        inplanes: input channels.
        planes: output channels.
        stride: stride of the first convolution.
        downsample: module applied to the shortcut when shape changes (1×1 conv + batch norm).

    Shape: (N, inplanes, H, W) -> (N, planes, H/stride, W/stride).

    Example:
        >>> import ember
        >>> tuple(ember.models.BasicBlock(4, 4)(ember.ones(1, 4, 6, 6)).shape)
        (1, 4, 6, 6)
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (strided), 1×1 expand (×4), each with batch norm, plus the shortcut.

    Args:
        inplanes: input channels.
        planes: bottleneck width; the output has ``4 · planes`` channels.
        stride: stride of the 3×3 convolution.
        downsample: module applied to the shortcut when shape changes.

    Shape: (N, inplanes, H, W) -> (N, 4·planes, H/stride, W/stride).

    Example:
        >>> import ember
        >>> block = ember.models.Bottleneck(16, 4)
        >>> tuple(block(ember.ones(1, 16, 5, 5)).shape)
        (1, 16, 5, 5)
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Residual network: stem, four stages of blocks, global average pooling and a linear classifier.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        num_classes: classifier outputs.
        zero_init_residual: start each block's last batch-norm scale at 0 (the block starts as identity).
        cifar_stem: 3×3 stride-1 first convolution and no max pooling (for 32×32 inputs) instead of the
            ImageNet stem (7×7 stride 2 and a 3×3 stride-2 max pool). Same parameter names either way.
        width: channels of the first stage (64 in the paper); stages double it.
        in_channels: input channels.

    Shape: (N, in_channels, H, W) -> (N, num_classes).

    Example:
        >>> import ember
        >>> net = ember.models.ResNet(ember.models.BasicBlock, [1, 1, 1, 1], num_classes=5, width=4)
        >>> tuple(net(ember.ones(2, 3, 32, 32)).shape)
        (2, 5)
    """

    def __init__(self, block: type, layers: Sequence[int], num_classes: int = 1000,
                 zero_init_residual: bool = False, cifar_stem: bool = False, width: int = 64,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.inplanes = width
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        stage = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        stage += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # torchvision's scheme: He-normal (fan_out) convolutions, unit/zero batch norm.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    init.zeros_(m.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes: int = 1000, cifar_stem: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-18: BasicBlocks [2, 2, 2, 2]; 11,689,512 parameters with 1000 classes.

    Example:
        >>> import ember
        >>> net = ember.models.resnet18(num_classes=10, cifar_stem=True, width=8)
        >>> tuple(net(ember.ones(1, 3, 32, 32)).shape)
        (1, 10)
    """
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, cifar_stem=cifar_stem, **kwargs)


def resnet34(num_classes: int = 1000, cifar_stem: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-34: BasicBlocks [3, 4, 6, 3]; 21,797,672 parameters with 1000 classes.

    Example:
        >>> import ember
        >>> len(ember.models.resnet34(width=4).layer3)
        6
    """
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, cifar_stem=cifar_stem, **kwargs)


def resnet50(num_classes: int = 1000, cifar_stem: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-50: Bottlenecks [3, 4, 6, 3]; 25,557,032 parameters with 1000 classes.

    Example:
        >>> import ember
        >>> ember.models.resnet50(width=4).fc.in_features
        128
    """
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, cifar_stem=cifar_stem, **kwargs)
