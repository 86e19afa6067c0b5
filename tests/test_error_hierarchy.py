"""The error classes: one base, each also the matching Python built-in, reachable from the top level."""
import pytest

import ember
from ember import errors


@pytest.mark.parametrize("cls, builtin", [
    (errors.ShapeError, ValueError), (errors.DTypeError, TypeError), (errors.DeviceError, RuntimeError),
    (errors.IndexingError, IndexError), (errors.AutogradError, RuntimeError),
    (errors.TraceError, RuntimeError), (errors.AnomalyError, RuntimeError), (errors.ConfigError, ValueError),
])
def test_every_error_is_an_ember_error_and_its_builtin(cls, builtin):
    assert issubclass(cls, ember.EmberError) and issubclass(cls, builtin)


def test_top_level_names_are_the_error_classes():
    assert ember.EmberError is errors.EmberError
    assert ember.TraceError is errors.TraceError
    with pytest.raises(ember.EmberError) as info:
        ember.ones(2, 3) + ember.ones(4)
    assert isinstance(info.value, errors.ShapeError) and "(2, 3)" in str(info.value)
