"""ember.jit guards on values read from outside the arguments: globals, closure variables, the default
dtype, submodules and hooks. A changed value recompiles (and explain/strict name it) instead of
returning the old graph's numbers."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember.errors import TraceError

SCALE = 2.0
OFFSET = ember.tensor([1.0, 2.0, 3.0])
CALLS = 0
UNRELATED = 0


def _scaled(x):
    return x * SCALE


def _shifted(x):
    return x + OFFSET


def _factor():
    return SCALE * 10  # applies no operation: seen through the global name of the caller


def _through_helper(x):
    return x * _factor()


def _counting(x):
    global CALLS
    CALLS += 1
    return x * 3


class _Scaled(nn.Module):
    def forward(self, x):
        return x * SCALE


@pytest.fixture(autouse=True)
def _reset_globals():
    global SCALE, OFFSET, CALLS
    yield
    SCALE, OFFSET, CALLS = 2.0, ember.tensor([1.0, 2.0, 3.0]), 0


def _values(t):
    return t.detach().numpy()


def test_global_number_change_recompiles():
    global SCALE
    f = ember.jit(_scaled)
    x = ember.ones(3)
    np.testing.assert_allclose(_values(f(x)), [2, 2, 2])
    SCALE = 5.0
    np.testing.assert_allclose(_values(f(x)), [5, 5, 5])
    assert f.compile_count == 2
    SCALE = 2.0  # back to a value seen before: the first graph again
    np.testing.assert_allclose(_values(f(x)), [2, 2, 2])
    assert f.compile_count == 2


def test_global_tensor_rebound_recompiles_and_in_place_update_does_not():
    global OFFSET
    f = ember.jit(_shifted)
    x = ember.zeros(3)
    np.testing.assert_allclose(_values(f(x)), [1, 2, 3])
    OFFSET.mul_(2)  # the graph reads this very tensor at each run
    np.testing.assert_allclose(_values(f(x)), [2, 4, 6])
    assert f.compile_count == 1
    OFFSET = ember.tensor([7.0, 7.0, 7.0])
    np.testing.assert_allclose(_values(f(x)), [7, 7, 7])
    assert f.compile_count == 2


def test_closure_variable_change_recompiles():
    k = 2.0
    f = ember.jit(lambda x: x * k)
    x = ember.ones(2)
    np.testing.assert_allclose(_values(f(x)), [2, 2])
    k = 7.0
    np.testing.assert_allclose(_values(f(x)), [7, 7])


def test_closure_of_a_function_held_in_the_closure():
    def make(c):
        return lambda x: x + c

    inner = make(1.0)
    f = ember.jit(lambda x: inner(x) * 2)
    x = ember.zeros(2)
    np.testing.assert_allclose(_values(f(x)), [2, 2])
    inner = make(3.0)  # noqa: F841 (read by the lambda)
    np.testing.assert_allclose(_values(f(x)), [6, 6])


def test_global_read_by_a_helper_without_operations():
    global SCALE
    f = ember.jit(_through_helper)
    x = ember.ones(1)
    np.testing.assert_allclose(_values(f(x)), [20])
    SCALE = 3.0
    np.testing.assert_allclose(_values(f(x)), [30])


def test_global_written_by_the_traced_code_is_not_guarded():
    f = ember.jit(_counting)
    x = ember.ones(1)
    for _ in range(4):
        np.testing.assert_allclose(_values(f(x)), [3])
    assert f.compile_count == 1
    assert CALLS == 1  # Python side effects run while tracing only


def test_globals_of_the_caller_do_not_count():
    global UNRELATED
    f = ember.jit(_scaled)
    x = ember.ones(1)
    for i in range(3):
        UNRELATED = i  # read by this test function, outside the compiled one
        f(x * UNRELATED)
    assert f.compile_count == 1


def test_explain_and_strict_name_the_variable(capsys):
    global SCALE
    f = ember.jit(_scaled, explain=True)
    x = ember.ones(1)
    f(x)
    SCALE = 3.0
    f(x)
    err = capsys.readouterr().err
    assert "global variable 'SCALE'" in err and "2.0 -> 3.0" in err and "tensor" in err
    s = ember.jit(_scaled, strict=True)
    s(x)
    SCALE = 4.0
    with pytest.raises(TraceError, match="global variable 'SCALE'"):
        s(x)


def test_default_dtype_change_recompiles():
    f = ember.jit(lambda x: x + ember.ones(2))
    x = ember.zeros(2, dtype=ember.float64)
    assert f(ember.zeros(2)).dtype == ember.float32
    ember.set_default_dtype(ember.float64)
    try:
        assert f(ember.zeros(2, dtype=ember.float64)).dtype == ember.float64
        assert f(x).dtype == (x + ember.ones(2)).dtype
    finally:
        ember.set_default_dtype(ember.float32)


def test_replaced_submodule_and_new_hooks_recompile():
    model = nn.Sequential(nn.Linear(3, 2))
    f = ember.jit(model)
    x = ember.randn(4, 3)
    f(x)
    model[0] = nn.Linear(3, 2)
    np.testing.assert_allclose(_values(f(x)), _values(model(x)), rtol=1e-6)
    handle = model.register_forward_hook(lambda mod, inp, out: out * 0)
    np.testing.assert_allclose(_values(f(x)), np.zeros((4, 2)))
    handle.remove()
    np.testing.assert_allclose(_values(f(x)), _values(model(x)), rtol=1e-6)


def _branchy(x):
    return ember.cond(x.sum() > 0, lambda v: v * SCALE, lambda v: v - SCALE, x)


@pytest.mark.parametrize("make", [_Scaled, lambda: _branchy], ids=["module forward", "cond branch"])
def test_global_read_in_a_module_forward_or_a_cond_branch(make):
    global SCALE
    f = ember.jit(make())
    x = ember.ones(2)
    np.testing.assert_allclose(_values(f(x)), [2, 2])
    SCALE = 6.0
    np.testing.assert_allclose(_values(f(x)), [6, 6])
    assert f.compile_count == 2


def test_data_assignment_and_dtype_conversion_recompile():
    m = nn.Linear(3, 2)
    f = ember.jit(m)
    x = ember.randn(4, 3)
    f(x)
    m.weight.data = ember.zeros(2, 3)  # same shape and dtype: the graph reads the new data
    np.testing.assert_allclose(_values(f(x)), _values(m(x)), rtol=1e-6)
    assert f.compile_count == 1
    m.double()
    out = f(x.double())
    assert out.dtype is ember.float64 and f.compile_count == 2
    np.testing.assert_allclose(_values(out), _values(m(x.double())), rtol=1e-12)
