"""The CPU reference backend, on NumPy."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import Backend


class NumpyBackend(Backend):
    """Runs every primitive's reference kernel with NumPy on the host."""

    name = "cpu"
    xp = np

    def asarray(self, data: Any, dtype) -> np.ndarray:
        return np.asarray(data, dtype=dtype.np)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return array

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        return np.empty(shape, dtype=dtype.np)


CPU = NumpyBackend()
