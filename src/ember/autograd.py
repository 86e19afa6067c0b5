"""PyTorch-style autograd API: ``backward``, ``grad``, custom ``Function``, grad modes, anomaly mode."""
from ._core.autograd import (
                             backward,
                             detect_anomaly,
                             enable_grad,
                             grad,
                             inference_mode,
                             is_anomaly_enabled,
                             no_grad,
                             set_detect_anomaly,
                             set_grad_enabled,
)
from ._core.custom import Function, FunctionCtx

__all__ = ["backward", "grad", "Function", "FunctionCtx", "no_grad", "enable_grad", "set_grad_enabled",
           "inference_mode", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled"]
