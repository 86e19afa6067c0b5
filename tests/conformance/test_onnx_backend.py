"""ONNX operator conformance: the PyTorch-exported cases shipped in the ``onnx`` wheel.

Each case directory holds ``model.onnx`` and ``test_data_set_N/{input,output}_K.pb``. The model is
loaded once with ``ember.onnx.load``, fed every data set's inputs eagerly and through ``ember.jit``,
and compared with the shipped expected outputs (no runtime other than ember is involved).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import ember

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

SUITES = ("pytorch-converted", "pytorch-operator")
RTOL, ATOL = 1e-3, 1e-5

# Cases that need looser tolerances than (RTOL, ATOL), with the reason.
TOLERANCES: dict[str, tuple[float, float]] = {}

# Cases not supported yet: case name -> precise reason (strict xfail, so a fix shows up).
XFAIL: dict[str, str] = {}


def _data_root() -> str:
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def _cases() -> list:
    params = []
    for suite in SUITES:
        root = os.path.join(_data_root(), suite)
        for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            marks = [pytest.mark.xfail(reason=XFAIL[name], strict=True)] if name in XFAIL else []
            params.append(pytest.param(os.path.join(root, name), id=f"{suite}/{name}", marks=marks))
    return params


def _read(path: str) -> np.ndarray:
    tensor = onnx.TensorProto()
    with open(path, "rb") as f:
        tensor.ParseFromString(f.read())
    return numpy_helper.to_array(tensor)


def _data_sets(case: str) -> list[tuple[list, list]]:
    sets = []
    for d in sorted(x for x in os.listdir(case) if x.startswith("test_data_set_")):
        files = sorted(os.listdir(os.path.join(case, d)))
        ins = [_read(os.path.join(case, d, f)) for f in files if f.startswith("input_")]
        outs = [_read(os.path.join(case, d, f)) for f in files if f.startswith("output_")]
        sets.append((ins, outs))
    return sets


def test_suites_are_present():
    counts = {s: len(os.listdir(os.path.join(_data_root(), s))) for s in SUITES}
    assert all(n > 0 for n in counts.values()), counts


@pytest.mark.parametrize("case", _cases())
def test_onnx_backend_case(case):
    model = ember.onnx.load(os.path.join(case, "model.onnx"))
    rtol, atol = TOLERANCES.get(os.path.basename(case), (RTOL, ATOL))
    jitted = ember.jit(model)
    with ember.no_grad():
        for inputs, expected in _data_sets(case):
            for run in (model, jitted):
                got = run(*[ember.tensor(x) for x in inputs])
                got = got if isinstance(got, tuple) else (got,)
                assert len(got) == len(expected)
                for g, e in zip(got, expected):
                    g = np.asarray(g.numpy())
                    assert g.dtype == e.dtype, (g.dtype, e.dtype)
                    np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)
