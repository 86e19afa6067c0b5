"""Optimisers with PyTorch's API."""
from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .lbfgs import LBFGS
from .lion import Lion
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
__all__ += ["Adagrad", "Adadelta", "RMSprop", "NAdam", "RAdam", "Adamax", "Lion", "LBFGS", "lr_scheduler"]
