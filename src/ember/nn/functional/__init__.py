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
