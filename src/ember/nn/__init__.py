"""Neural-network building blocks with PyTorch's API: Module, Parameter, layers, losses, init."""
from . import functional, init
from .containers import ModuleDict, ModuleList, ParameterList, Sequential
from .layers import (
                     GELU,
                     CrossEntropyLoss,
                     Dropout,
                     Flatten,
                     Identity,
                     Linear,
                     LogSoftmax,
                     MSELoss,
                     NLLLoss,
                     ReLU,
                     Sigmoid,
                     SiLU,
                     Softmax,
                     Tanh,
)
from .module import Module, StateDictError
from .parameter import Parameter

__all__ = ["Module", "Parameter", "StateDictError", "Sequential", "ModuleList", "ModuleDict", "ParameterList",
           "Linear", "Identity", "Flatten", "Dropout", "ReLU", "Tanh", "Sigmoid", "SiLU", "GELU", "Softmax",
           "LogSoftmax", "MSELoss", "CrossEntropyLoss", "NLLLoss", "functional", "init"]
