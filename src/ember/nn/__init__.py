"""Neural-network building blocks with PyTorch's API: Module, Parameter, layers, losses, init.

Each layer family lives in its own module and lists its public names in ``__all__``.
"""
from . import functional, init
from .containers import ModuleDict, ModuleList, ParameterList, Sequential
from .config import ConfigError, from_config, known_layers, register_layer, to_config
from .layers import *  # noqa: F403
from .normalization import *  # noqa: F403
from .activation import *  # noqa: F403
from .loss import *  # noqa: F403
from .sparse import *  # noqa: F403
from .misc import *  # noqa: F403
from .conv import *  # noqa: F403
from .pooling import *  # noqa: F403
from .module import Module, StateDictError
from .parameter import Parameter
from .rnn import *  # noqa: F403
from .activation_attn import *  # noqa: F403
from .transformer import *  # noqa: F403
