"""Parameter: a tensor that a Module registers as learnable."""
from __future__ import annotations

from .._core.creation import tensor as _tensor
from .._core.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and is registered when assigned to a Module attribute.

    Example:
        >>> import ember
        >>> p = ember.nn.Parameter(ember.zeros(3))
        >>> p.requires_grad, p.is_leaf
        (True, True)
    """

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True) -> "Parameter":
        if data is None:
            data = _tensor([])
        if not isinstance(data, Tensor):
            data = _tensor(data)
        p = cls._make(data._data, data._dtype, data._device)
        p._vc = data._version_counter()
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        import numpy as np

        data = np.asarray(self._device.backend.to_numpy(self._data))
        return (_rebuild_parameter, (data, self._requires_grad))


def _rebuild_parameter(array, requires_grad: bool) -> Parameter:
    return Parameter(_tensor(array), requires_grad)
