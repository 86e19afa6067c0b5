"""The errors Ember raises: every one is an :class:`EmberError`."""
from ._core.errors import (
                           AnomalyError,
                           AutogradError,
                           ConfigError,
                           DeviceError,
                           DTypeError,
                           DynamicDimsWarning,
                           EagerFallbackWarning,
                           EmberError,
                           IndexingError,
                           RecompileLimitWarning,
                           ShapeError,
                           TraceError,
)

__all__ = ["EmberError", "ShapeError", "DTypeError", "DeviceError", "IndexingError", "AutogradError",
           "TraceError", "AnomalyError", "ConfigError", "RecompileLimitWarning",
           "EagerFallbackWarning", "DynamicDimsWarning"]
