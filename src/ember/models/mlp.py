"""Multi-layer perceptron: Linear layers with an activation (and optional dropout) between them."""
from __future__ import annotations

from typing import Callable, Sequence

from .. import nn
from .._core.errors import EmberError

__all__ = ["MLP", "mlp", "activation_layer"]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "relu6": nn.ReLU6, "identity": nn.Identity,
}


def activation_layer(activation: str | Callable[[], nn.Module], op: str = "activation_layer") -> nn.Module:
    """A fresh activation module from a name (``"relu"``, ``"gelu"``, ``"tanh"``…) or a Module class.

    Example:
        >>> from ember.models import activation_layer
        >>> activation_layer("gelu")
        GELU(approximate='none')
    """
    if isinstance(activation, str):
        if activation.lower() not in _ACTIVATIONS:
            known = ", ".join(sorted(_ACTIVATIONS))
            raise EmberError(op, f"unknown activation {activation!r}; known: {known}")
        return _ACTIVATIONS[activation.lower()]()
    module = activation()
    if not isinstance(module, nn.Module):
        raise EmberError(op, f"activation must build a Module, got {type(module).__name__}")
    return module


class MLP(nn.Sequential):
    """Linear layers of the given sizes with an activation (and dropout) after every hidden layer.

    The children are numbered like a Sequential: ``0`` Linear, ``1`` activation, (``2`` Dropout), …, and the
    last Linear has no activation after it.

    Args:
        sizes: ``[in_features, hidden_1, …, out_features]`` (at least two entries).
        activation: name (``relu``, ``gelu``, ``tanh``, ``sigmoid``, ``silu``, ``leaky_relu``, ``elu``,
            ``relu6``, ``identity``) or Module class used between layers.
        dropout: dropout probability after each hidden activation (no Dropout layer when 0).
        bias: learn biases in the Linear layers.

    Shape: (*, sizes[0]) -> (*, sizes[-1]).

    Example:
        >>> import ember
        >>> net = ember.models.MLP([4, 16, 3])
        >>> tuple(net(ember.ones(2, 4)).shape)
        (2, 3)
    """

    def __init__(self, sizes: Sequence[int], activation: str | Callable[[], nn.Module] = "relu",
                 dropout: float = 0.0, bias: bool = True) -> None:
        sizes = list(sizes)
        if len(sizes) < 2 or any(not isinstance(s, int) or s <= 0 for s in sizes):
            raise EmberError("MLP", f"sizes must hold at least two positive ints, got {sizes}")
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out, bias=bias))
            if i < len(sizes) - 2:
                layers.append(activation_layer(activation, "MLP"))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
        self.sizes, self.activation, self.dropout, self.bias = sizes, activation, dropout, bias


def mlp(sizes: Sequence[int], activation: str | Callable[[], nn.Module] = "relu", dropout: float = 0.0,
        bias: bool = True) -> MLP:
    """Build an :class:`MLP` (same arguments).

    Example:
        >>> import ember
        >>> sum(p.numel() for p in ember.models.mlp([4, 8, 2]).parameters())
        58
    """
    return MLP(sizes, activation, dropout, bias)
