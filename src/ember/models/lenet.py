"""LeNet-5 (LeCun et al., 1998): two convolution/subsampling stages and three fully connected layers."""
from __future__ import annotations

from typing import Any, Callable

from .. import nn
from .._core.tensor import Tensor
from .mlp import activation_layer

__all__ = ["LeNet5", "lenet5"]


class LeNet5(nn.Module):
    """LeNet-5 for 1×32×32 inputs (or 1×28×28 with ``padding=2``, the MNIST convention).

    Layout (``features`` / ``classifier`` as in torchvision's classic models)::

        features:   0 Conv2d(C, 6, 5, padding)  1 act  2 pool(2)  3 Conv2d(6, 16, 5)  4 act  5 pool(2)
        classifier: 0 Linear(400, 120)  1 act  2 Linear(120, 84)  3 act  4 Linear(84, num_classes)

    61,706 parameters with 10 classes and one input channel (full C3 connectivity; C5 as a Linear layer).

    Args:
        num_classes: size of the output.
        in_channels: input channels.
        padding: padding of the first convolution (0 for 32×32 inputs, 2 for 28×28).
        activation: name or Module class (``tanh`` in the original; ``relu`` is common today).
        pool: ``"avg"`` (subsampling, the original) or ``"max"``.

    Shape: (N, C, 32, 32) (or 28×28 with ``padding=2``) -> (N, num_classes).

    Example:
        >>> import ember
        >>> net = ember.models.lenet5(padding=2)
        >>> tuple(net(ember.zeros(2, 1, 28, 28)).shape)
        (2, 10)
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, padding: int = 0,
                 activation: str | Callable[[], nn.Module] = "tanh", pool: str = "avg") -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        pooling = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=padding), activation_layer(activation, "LeNet5"), pooling(2),
            nn.Conv2d(6, 16, 5), activation_layer(activation, "LeNet5"), pooling(2))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), activation_layer(activation, "LeNet5"),
            nn.Linear(120, 84), activation_layer(activation, "LeNet5"), nn.Linear(84, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def lenet5(num_classes: int = 10, in_channels: int = 1, padding: int = 0, **kwargs: Any) -> LeNet5:
    """Build a :class:`LeNet5` (``padding=2`` for 28×28 inputs; `kwargs`: activation, pool).

    Example:
        >>> import ember
        >>> sum(p.numel() for p in ember.models.lenet5().parameters())
        61706
    """
    return LeNet5(num_classes, in_channels, padding, **kwargs)
