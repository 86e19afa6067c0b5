"""The dispatch state: grad mode, the active transforms, anomaly mode (one context variable)."""
from __future__ import annotations

from contextvars import ContextVar


class State:
    """Dispatch state: grad mode, active transforms (innermost last), anomaly mode."""

    __slots__ = ("grad", "traces", "anomaly")

    def __init__(self, grad: bool, traces: tuple, anomaly: bool):
        self.grad = grad
        self.traces = traces
        self.anomaly = anomaly

    def replace(self, **changes) -> "State":
        values = {k: getattr(self, k) for k in self.__slots__}
        values.update(changes)
        return State(**values)


# State objects are never mutated (``replace`` makes a new one), so a shared default is safe.
STATE: ContextVar[State] = ContextVar("ember_state", default=State(True, (), False))  # noqa: B039
