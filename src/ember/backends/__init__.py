"""Device backends: the NumPy CPU reference backend is always present."""
from .base import Backend
from .numpy_backend import CPU, NumpyBackend

__all__ = ["Backend", "NumpyBackend", "CPU"]
