"""Compiled functions behave as the eager ones in the corners of tensor semantics: parameters updated in
place without recording keep collecting gradients, memory layouts are seen as eagerly, requires_grad_
on an argument, returned optimiser state, signed zeros as static arguments, read-only arguments and
methods decorated with ``ember.jit``."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember.errors import AutogradError, ShapeError


class _Renorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(ember.full((3,), 2.0))
        self.b = nn.Parameter(ember.zeros(3))

    def forward(self, x):
        with ember.no_grad():
            self.w.clamp_(max=1.0)
        return x * self.w + self.b


def test_a_parameter_updated_under_no_grad_inside_keeps_collecting_gradients():
    results = []
    for compiled in (False, True):
        m = _Renorm()
        f = ember.jit(m) if compiled else m
        for _ in range(3):
            m.zero_grad()
            out = f(ember.arange(3.0))
            (out * out).sum().backward()
        assert m.w._node is None and m.w.requires_grad  # still a leaf
        results.append((m.w.grad.numpy().copy(), m.b.grad.numpy().copy(), m.w.detach().numpy().copy()))
    for eager, jit in zip(*results):
        np.testing.assert_allclose(jit, eager, rtol=1e-6)


def test_embedding_with_max_norm_trains_compiled_as_eagerly():
    results = []
    for compiled in (False, True):
        ember.manual_seed(0)
        emb = nn.Embedding(5, 3, max_norm=1.0)
        f = ember.jit(emb) if compiled else emb
        idx = ember.tensor([0, 2, 2])
        for _ in range(3):
            emb.zero_grad()
            (f(idx) * ember.arange(3.0)).sum().backward()
        results.append((emb.weight.grad.numpy().copy(), emb.weight.detach().numpy().copy()))
    for eager, jit in zip(*results):
        np.testing.assert_allclose(jit, eager, rtol=1e-6)


def test_the_traced_code_sees_memory_layouts_as_eagerly():
    def f(x):
        return x * 1.0 if x.is_contiguous() else x * 2.0

    jf = ember.jit(f)
    a, b = ember.ones(2, 3), ember.ones(3, 2).t()
    for x in (a, b, a, b):
        np.testing.assert_array_equal(jf(x).numpy(), f(x).numpy())
    assert jf.compile_count == 2
    assert not ember.jit(lambda x: ember.tensor(x.t().is_contiguous()))(a).item()
    with pytest.raises(ShapeError, match="view"):
        ember.jit(lambda x: x.t().view(-1))(a)


def test_requires_grad_on_an_argument_inside_is_set_on_the_callers_tensor():
    def f(x):
        x.requires_grad_()
        return (x * x).sum()

    jf = ember.jit(f)
    for _ in range(3):
        x = ember.arange(3.0)
        y = jf(x)
        assert x.requires_grad and y.requires_grad
        y.backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 * np.arange(3.0))


def test_requires_grad_on_an_argument_after_using_it_is_refused():
    def f(x):
        y = x * 2
        x.requires_grad_()
        return y

    with pytest.raises(ember.errors.TraceError, match="requires_grad_"):
        ember.jit(f)(ember.ones(2))


def _momentum_steps(compiled):
    ember.manual_seed(0)
    m = nn.Linear(2, 1)
    opt = ember.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)

    def step(x):
        opt.zero_grad()
        m(x).sum().backward()
        opt.step()
        return opt.state[m.weight]["momentum_buffer"]

    f = ember.jit(step) if compiled else step
    outs = [f(ember.ones(1, 2)) for _ in range(4)]
    return [o.numpy().copy() for o in outs]


def test_returned_optimiser_state_is_each_steps_value():
    runs = [_momentum_steps(False), _momentum_steps(True)]
    for eager, jit in zip(*runs):
        np.testing.assert_allclose(jit, eager, rtol=1e-6)


def test_signed_zero_static_arguments_get_their_own_graphs():
    jf = ember.jit(lambda x, s: x / s)
    assert jf(ember.ones(1), 0.0).item() == np.inf
    assert jf(ember.ones(1), -0.0).item() == -np.inf
    jf(ember.ones(1), float("nan"))
    jf(ember.ones(1), float("nan"))
    assert jf.compile_count == 3  # a NaN matches itself


def test_an_in_place_update_of_a_broadcast_argument_is_refused_as_eagerly():
    x = ember.ones(1, 3).expand(2, 3)
    with pytest.raises(AutogradError, match="broadcast"):
        x.add_(1)
    with pytest.raises(AutogradError, match="broadcast"):
        ember.jit(lambda t: t.add_(1))(x)
    np.testing.assert_array_equal(x.numpy(), np.ones((2, 3)))


def test_jit_decorates_a_method():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        @ember.jit
        def forward(self, x):
            return self.lin(x) * 2

    net, x = Net(), ember.ones(1, 2)
    want = (net.lin(x) * 2).detach().numpy()
    for _ in range(3):
        np.testing.assert_allclose(net(x).detach().numpy(), want, rtol=1e-6)
    assert Net.forward.compile_count == 1


@pytest.mark.parametrize("case", ["argument is the written global", "argument is a view, written"])
def test_an_argument_sharing_memory_with_a_captured_tensor_runs_as_eagerly(case):
    def run(compiled):
        g = ember.zeros(3)
        if case == "argument is the written global":
            def f(a):
                g.add_(1)
                return a * 10
            arg = g
        else:
            def f(a):
                a.add_(1)
                return g * 10
            arg = g[1:]
        fn = ember.jit(f) if compiled else f
        out = []
        for _ in range(3):
            with pytest.warns(ember.errors.EagerFallbackWarning) if compiled and not out else _no_warning():
                out.append(fn(arg).numpy().copy())
        return out, g.numpy().copy()

    (eager, g_eager), (jit, g_jit) = run(False), run(True)
    for a, b in zip(eager, jit):
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(g_jit, g_eager)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_switching_a_modules_mode_inside_is_refused_and_leaves_the_mode():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).eval()
    m[0].train()

    def f(x):
        out = m(x)
        m.train(not m.training)
        return out

    with pytest.raises(ember.errors.TraceError, match="evaluation|training"):
        ember.jit(f)(ember.ones(1, 2))
    assert not m.training and m[0].training and not m[1].training
