"""Functional forms of layers, activations and losses (``ember.nn.functional``, PyTorch's names).

Each family lives in its own module and lists its public names in ``__all__``.
"""
from ._basic import *  # noqa: F403
from ._attention import *  # noqa: F403
from ._conv import *  # noqa: F403
from ._activation import *  # noqa: F403
from ._norm import *  # noqa: F403
from ._loss import *  # noqa: F403
from ._misc import *  # noqa: F403

from ..._core.methods import install as _install


def _softmax_method(self, dim: int, dtype=None):
    """``softmax(self, dim)`` (``Tensor.softmax``)."""
    return softmax(self, dim, dtype=dtype)  # noqa: F405


def _log_softmax_method(self, dim: int, dtype=None):
    """``log_softmax(self, dim)`` (``Tensor.log_softmax``)."""
    return log_softmax(self, dim, dtype=dtype)  # noqa: F405


_install({"softmax": _softmax_method, "log_softmax": _log_softmax_method})
