"""Devices and the backend contract: a second device type runs every primitive through the reference
kernels, and mixing devices is a clear error."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember._core.device import _BACKENDS, register_backend
from ember.backends import NumpyBackend
from ember.errors import DeviceError


class _HostCopyBackend(NumpyBackend):
    """A device that keeps its data in NumPy arrays but is a distinct device (as a new backend would be)."""

    name = "testdev"

    def asarray(self, data, dtype):
        return np.array(data, dtype=dtype.np, copy=True)


@pytest.fixture(scope="module", autouse=True)
def testdev():
    register_backend("testdev", _HostCopyBackend())
    yield
    _BACKENDS.pop("testdev", None)


def test_default_device_is_cpu():
    x = ember.ones(2)
    assert x.device == ember.device("cpu") and x.device == "cpu" and str(x.device) == "cpu"


def test_unknown_device_raises():
    with pytest.raises(DeviceError, match="unknown or unavailable device type 'tpu'"):
        ember.device("tpu")


def test_a_new_backend_runs_ops_and_autograd_through_reference_kernels():
    x = ember.tensor([1.0, 2.0], device="testdev", requires_grad=True)
    y = (ember.exp(x) * x).sum()
    y.backward()
    assert y.device == ember.device("testdev") and x.grad.device == ember.device("testdev")
    np.testing.assert_allclose(x.grad.tolist(), np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0])), rtol=1e-6)


def test_to_moves_between_devices_and_keeps_values():
    x = ember.tensor([1.0, 2.0])
    y = x.to("testdev")
    assert y.device == "testdev" and y.tolist() == [1.0, 2.0]
    assert y.to("cpu").device == "cpu"
    assert x.to(ember.float64).dtype is ember.float64


def test_mixing_devices_raises_naming_the_op_and_devices():
    a = ember.ones(2)
    b = ember.ones(2, device="testdev")
    with pytest.raises(DeviceError) as info:
        a + b
    msg = str(info.value)
    assert "add" in msg and "cpu" in msg and "testdev" in msg and "test_devices.py" in msg
