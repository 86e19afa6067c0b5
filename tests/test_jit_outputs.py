"""Compiled functions return what eager execution returns and record the same tape: outputs never share
memory with inputs or with each other unless the traced code made them views, functions with effects
(batch norm in training mode, arguments updated in place) stay differentiable, and a compiled function
with effects called inside another transform runs as traced code."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.errors import AutogradError
from ember.func import grad


@pytest.mark.parametrize("fn", [lambda x: x * 1.0, lambda x: x + 0, lambda x: x.t().t() * 1,
                                lambda x: x.reshape(-1) * 1, lambda x: x.detach() * 1,
                                lambda x: x.to(ember.float32) * 1],
                         ids=["mul1", "add0", "tt", "reshape", "detach", "to"])
def test_a_simplified_output_is_a_new_tensor(fn):
    f = ember.jit(fn)
    for _ in range(3):
        x = ember.ones(2, 3)
        out = f(x)
        out.add_(10)
        np.testing.assert_array_equal(x.numpy(), np.ones((2, 3)))


def test_equal_outputs_merged_by_cse_are_separate_tensors():
    f = ember.jit(lambda x: (x * 2, x * 2))
    for _ in range(3):
        a, b = f(ember.ones(2))
        a.add_(1)
        np.testing.assert_array_equal(b.numpy(), [2.0, 2.0])


def test_an_output_read_before_an_update_of_its_argument_keeps_the_old_value():
    def f(x):
        old = x * 1
        x.add_(1)
        return old

    jf = ember.jit(f)
    for i in range(3):
        x = ember.zeros(3) + i
        np.testing.assert_array_equal(jf(x).numpy(), [i] * 3)
        np.testing.assert_array_equal(x.numpy(), [i + 1] * 3)


def test_an_argument_returned_is_that_tensor_after_its_update():
    f = ember.jit(lambda x: x.copy_(x.t()))
    for _ in range(3):
        x = ember.arange(4.0).reshape(2, 2)
        out = f(x)
        assert out is x
        np.testing.assert_array_equal(x.numpy(), [[0.0, 2.0], [1.0, 3.0]])
    g = ember.jit(lambda x: x)
    x = ember.ones(2)
    assert g(x) is x and g(x) is x


def test_views_of_arguments_returned_stay_views():
    f = ember.jit(lambda x: x[0])
    x = ember.zeros(2, 2)
    f(x)
    out = f(x)
    out.add_(1)  # eagerly x[0] is a view of x
    np.testing.assert_array_equal(x.numpy(), [[1.0, 1.0], [0.0, 0.0]])


def test_batch_norm_in_training_mode_stays_differentiable_compiled():
    ember.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    x = ember.randn(4, 3)
    f = lambda t: bn(t).pow(3).sum()  # noqa: E731
    want = grad(f)(x).detach()  # (the gradient keeps its graph to bn's parameters, as in torch.func)
    for _ in range(2):
        np.testing.assert_allclose(grad(ember.jit(f))(x).detach().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    runs = []
    for compiled in (False, True):
        ember.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        forward = ember.jit(model) if compiled else model
        grads, stats = [], []
        for _ in range(3):
            model.zero_grad()
            loss = F.cross_entropy(forward(ember.randn(8, 3)), ember.randint(0, 2, (8,)))
            loss.backward()
            grads.append([p.grad.numpy().copy() for p in model.parameters()])
            stats.append(model[1].running_mean.numpy().copy())
        runs.append((grads, stats))
    (eager_grads, eager_stats), (jit_grads, jit_stats) = runs
    for got, want_grads in zip(jit_grads, eager_grads):
        for g, w in zip(got, want_grads):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(jit_stats, eager_stats, rtol=1e-5, atol=1e-7)


def test_an_argument_updated_in_place_takes_its_new_place_in_the_tape():
    def g(y):
        y.mul_(3)
        return y

    for fn in (g, ember.jit(g), ember.jit(g)):
        x = ember.ones(2, requires_grad=True)
        y = x * 1
        out = fn(y)
        assert out.requires_grad and y.requires_grad
        y.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    leaf = ember.ones(2, requires_grad=True)
    with pytest.raises(AutogradError, match="leaf"):
        ember.jit(g)(leaf)
    np.testing.assert_array_equal(leaf.detach().numpy(), [1.0, 1.0])


def test_a_compiled_function_with_effects_inside_another_compiled_function():
    inner = ember.jit(lambda x: x.add_(1))

    def outer(x):
        inner(x)
        return x * 2

    jouter = ember.jit(outer)
    for _ in range(3):
        x = ember.ones(3)
        np.testing.assert_array_equal(jouter(x).numpy(), [4.0] * 3)
        np.testing.assert_array_equal(x.numpy(), [2.0] * 3)
    c = ember.zeros(3)
    inner2 = ember.jit(lambda x: c.add_(x))
    f = ember.jit(lambda x: inner2(x) * 1)
    for i in range(3):
        f(ember.ones(3))
        np.testing.assert_array_equal(c.numpy(), [i + 1.0] * 3)


def test_a_gradient_hook_inside_a_function_differentiated_from_outside_is_refused():
    def f(w):
        y = w * 2
        y.register_hook(lambda g: g * 10)
        return (y ** 2).sum()

    def g(w):
        y = w * 3
        y.retain_grad()
        return y.sum()

    for fn in (f, g):
        with pytest.raises(ember.errors.TraceError, match="gradient hook"):
            ember.jit(fn)(ember.ones(2, requires_grad=True))


def test_a_gradient_hook_inside_a_compiled_training_step_runs():
    ember.manual_seed(0)
    models = [nn.Linear(2, 1)]
    models.append(nn.Linear(2, 1))
    models[1].load_state_dict(models[0].state_dict())
    steps = []
    for model in models:
        opt = ember.optim.SGD(model.parameters(), lr=0.1)

        def step(x, model=model, opt=opt):
            opt.zero_grad()
            y = model(x)
            y.register_hook(lambda g: g * 10)
            y.sum().backward()
            opt.step()
            return y.sum()

        steps.append(step)
    compiled = ember.jit(steps[1])
    x = ember.ones(3, 2)
    for _ in range(3):
        steps[0](x)
        compiled(x)
    np.testing.assert_allclose(models[1].weight.detach().numpy(), models[0].weight.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("fn", [lambda x: x[x > 0].mean(), lambda x: ember.nonzero(x > 0).float().sum(),
                                lambda x: ember.masked_select(x, x > 0).sum(), lambda x: ember.unique(x)],
                         ids=["mask", "nonzero", "masked_select", "unique"])
def test_results_sized_by_values_are_refused(fn):
    with pytest.raises(ember.errors.TraceError, match="depends on the values"):
        ember.jit(fn)(ember.tensor([1.0, -1.0, 3.0, -1.0]))


def test_assigning_one_value_through_a_full_mask_compiles_for_every_count():
    torch = pytest.importorskip("torch")

    def g(x):
        x[x > 0] = 0.5
        return x * 2

    jg = ember.jit(g)
    for data in ([1.0, -1.0, 2.0], [1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]):
        np.testing.assert_array_equal(jg(ember.tensor(data)).numpy(), g(ember.tensor(data)).numpy())
    x, tx = ember.tensor([1.0, -2.0, 3.0], requires_grad=True), torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y, ty = x * 1, tx * 1
    y[y > 0] = 5.0
    ty[ty > 0] = 5.0
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())


def test_python_side_effects_that_a_run_would_lose_are_refused():
    def fill(d):
        d["out"] = d["a"] * 2
        return d["a"] + 1

    def append(items, x):
        items.append(x * 2)
        return x

    with pytest.raises(ember.errors.TraceError, match="list or dict argument"):
        ember.jit(fill)({"a": ember.ones(2)})
    with pytest.raises(ember.errors.TraceError, match="list or dict argument"):
        ember.jit(append)([], ember.ones(2))
    box = [ember.zeros(2)]

    def accumulate(x):
        nonlocal_total = box[0]  # (read through a list: allowed, nothing is assigned)
        return nonlocal_total + x

    ember.jit(accumulate)(ember.ones(2))
    total = ember.zeros(2)

    def leak(x):
        nonlocal total
        total = total + x
        return x

    with pytest.raises(ember.errors.TraceError, match="'total'"):
        ember.jit(leak)(ember.ones(2))
    model = nn.Linear(4, 1)
    opt = ember.optim.SGD(model.parameters(), lr=1.0)
    sched = ember.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    def step(x):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
        sched.step()

    with pytest.raises(ember.errors.TraceError, match="scheduler"):
        ember.jit(step)(ember.ones(2, 4))
    assert opt.param_groups[0]["lr"] == 1.0 and sched.last_epoch == 0


def test_a_buffer_reassigned_in_forward_is_written_in_place_by_each_run():
    class Ema(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("ema", ember.zeros(3))

        def forward(self, x):
            self.ema = 0.9 * self.ema + 0.1 * x
            return self.ema * 2

    eager, compiled = Ema(), Ema()
    buffer = compiled.ema
    forward = ember.jit(compiled)
    for i in range(3):
        x = ember.full((3,), float(i))
        np.testing.assert_allclose(forward(x).numpy(), eager(x).numpy(), rtol=1e-6)
        np.testing.assert_allclose(compiled.ema.numpy(), eager.ema.numpy(), rtol=1e-6)
    assert compiled.ema is buffer and list(compiled.state_dict()) == ["ema"]

    class Grow(Ema):
        def forward(self, x):
            self.ema = ember.cat([self.ema, x])
            return x

    with pytest.raises(ember.errors.TraceError, match="buffer 'ema'"):
        ember.jit(Grow())(ember.ones(1))


def test_a_tensor_made_inside_and_updated_in_place_starts_afresh_on_every_call():
    def f(a):
        b = ember.zeros(3)
        b.add_(1.0)
        b[0] = 5.0
        c = ember.ones(2, 3)
        c[1].mul_(a)  # through a view
        return a + b, b, c

    jf = ember.jit(f)
    a = ember.arange(3.0)
    for _ in range(3):
        for got, want in zip(jf(a), f(a)):
            np.testing.assert_allclose(got.numpy(), want.numpy())
    assert len(jf.lower(a).graph.outputs) == 3  # the results only: nothing is written back anywhere


def test_a_buffer_made_inside_a_training_step_is_local_to_each_step():
    ember.manual_seed(0)
    layer = ember.nn.Linear(3, 1)
    opt = ember.optim.SGD(layer.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        scale = ember.ones(1)
        scale.mul_(2.0)
        loss = (layer(x) * scale).pow(2).mean()
        loss.backward()
        opt.step()
        return loss, scale

    x = ember.randn(4, 3)
    eager = []
    state = {k: v.detach().clone() for k, v in layer.state_dict().items()}
    for _ in range(3):
        loss, scale = step(x)
        eager.append((float(loss), scale.tolist()))
    layer.load_state_dict(state)
    jstep = ember.jit(step)
    for want in eager:
        loss, scale = jstep(x)
        assert float(loss) == pytest.approx(want[0], rel=1e-5) and scale.tolist() == want[1]


@pytest.mark.parametrize("made", ["inside", "outside"])
def test_an_update_through_a_view_of_a_captured_tensor_reaches_it(made):
    """``buf[1].mul_(a)`` on a captured tensor (or through a view of it made outside the function) writes
    into it on every run, and later reads in the function see the update, as in eager mode."""
    def make():
        buf = ember.ones(2, 3)
        view = buf[1] if made == "outside" else None
        return buf, view

    def body(buf, view, a):
        (buf[1] if view is None else view).mul_(a)
        return buf * 1

    a = ember.arange(3.0) + 1
    eager_buf, eager_view = make()
    want = [body(eager_buf, eager_view, a).numpy() for _ in range(3)]
    buf, view = make()
    jf = ember.jit(lambda a: body(buf, view, a))
    for w in want:
        np.testing.assert_allclose(jf(a).numpy(), w)
    np.testing.assert_allclose(buf.numpy(), eager_buf.numpy())


def test_enable_grad_inside_records_when_called_under_no_grad():
    def f(x):
        z = x * 3
        with ember.enable_grad():
            y = (x * x).sum()
        return y, z

    jf = ember.jit(f)
    x = ember.arange(3.0).requires_grad_()
    for _ in range(3):
        with ember.no_grad():
            y, z = jf(x)
            ye, ze = f(x)
        assert (y.requires_grad, z.requires_grad) == (ye.requires_grad, ze.requires_grad) == (True, False)
        (gx,) = ember.autograd.grad(y, [x])
        np.testing.assert_allclose(gx.numpy(), 2 * np.arange(3.0))
    y, z = jf(x)  # with recording on: another graph, where both record
    assert y.requires_grad and z.requires_grad and jf.compile_count == 2
