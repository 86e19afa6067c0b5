"""ember.jit and the state that a compiled function reads or writes outside its arguments' values:
gradients produced by an eager backward pass, generators seeded inside the function, arguments updated
in place (also through views), and tensors held in module attributes. Each compiled run must do what
eager execution of the same Python function does."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.errors import TraceError

from helpers import training_step

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 6)).astype(np.float32)
Y = RNG.integers(0, 3, 8)


def _model():
    ember.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def _loss(m, rows=slice(None)):
    return F.cross_entropy(m(ember.tensor(X[rows])), ember.tensor(Y[rows]))


def _params(m):
    return [p.detach().numpy().copy() for p in m.parameters()]


@pytest.mark.parametrize("make_opt, graphs", [(lambda p: ember.optim.SGD(p, lr=0.1, momentum=0.9), 2),
                                              (lambda p: ember.optim.Adam(p, lr=0.05), 2),
                                              (lambda p: ember.optim.Adagrad(p, lr=0.1), 1)],
                         ids=["sgd", "adam", "adagrad"])
def test_compiled_optimizer_step_reads_the_gradients_of_each_eager_backward(make_opt, graphs):
    """Only the update is compiled (as with torch.compile(opt.step)): each eager backward makes new
    gradient tensors, and every run reads those, not the ones present when it was traced."""
    results = []
    for compiled in (False, True):
        m = _model()
        opt = make_opt(m.parameters())
        step = ember.jit(opt.step) if compiled else opt.step
        clip = lambda m=m: nn.utils.clip_grad_norm_(m.parameters(), 0.5)  # noqa: E731
        clip = ember.jit(clip) if compiled else clip
        for i in range(5):
            opt.zero_grad()
            _loss(m, slice(i % 2 * 4, i % 2 * 4 + 4)).backward()
            clip()
            step()
        results.append(_params(m))
        if compiled:  # (a second graph once the optimiser has made its state on the first step)
            assert (step.compile_count, clip.compile_count) == (graphs, 1)
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_gradients_accumulate_across_compiled_backward_calls():
    results = []
    for compiled in (False, True):
        m = _model()
        opt = ember.optim.SGD(m.parameters(), lr=0.1)

        def accumulate(x, y, m=m):
            F.cross_entropy(m(x), y).backward()

        run = ember.jit(accumulate) if compiled else accumulate
        grads = []
        for i in range(6):
            rows = slice(i % 2 * 4, i % 2 * 4 + 4)
            run(ember.tensor(X[rows]), ember.tensor(Y[rows]))
            grads.append(m[0].weight.grad.numpy().copy())
            if i % 2:
                opt.step()
                opt.zero_grad()
        results.append((grads, _params(m)))
        if compiled:  # one graph that creates the gradients and one that adds to them
            assert run.compile_count == 2
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_a_gradient_replaced_between_calls_is_the_one_read():
    m = nn.Linear(3, 2)
    opt = ember.optim.SGD(m.parameters(), lr=1.0)
    step = ember.jit(opt.step)
    for value in (1.0, 2.0, 3.0):
        before = m.weight.detach().numpy().copy()
        m.weight.grad = ember.full((2, 3), value)
        m.bias.grad = ember.zeros(2)
        step()
        np.testing.assert_allclose(m.weight.detach().numpy(), before - value)
    assert step.compile_count == 1
    m.weight.grad = None  # the optimiser skips a parameter without a gradient: another graph
    before = m.weight.detach().numpy().copy()
    step()
    np.testing.assert_array_equal(m.weight.detach().numpy(), before)
    assert step.compile_count == 2


def test_compiled_zero_grad_in_place_zeroes_the_current_gradients():
    m = _model()
    opt = ember.optim.SGD(m.parameters(), lr=0.1)
    zero = ember.jit(lambda: opt.zero_grad(set_to_none=False))
    for _ in range(3):
        _loss(m).backward()
        zero()
        assert all(not p.grad.numpy().any() for p in m.parameters())


def test_backward_with_inputs_under_jit_matches_eager():
    results = []
    for compiled in (False, True):
        m = _model()

        def grads_of_first_layer(x, y, m=m):
            F.cross_entropy(m(x), y).backward(inputs=[m[0].weight])

        run = ember.jit(grads_of_first_layer) if compiled else grads_of_first_layer
        for _ in range(2):
            run(ember.tensor(X), ember.tensor(Y))
        results.append((m[0].weight.grad.numpy().copy(), m[2].weight.grad))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    assert results[0][1] is None and results[1][1] is None


def test_seeding_inside_a_compiled_function_replays_as_eager():
    def noisy(x):
        ember.manual_seed(3)
        return x + ember.randn(*x.shape)

    x = ember.tensor(X)
    eager = [noisy(x).numpy() for _ in range(2)]
    eager_state = ember.get_rng_state().tolist()
    ember.manual_seed(11)
    compiled = ember.jit(noisy)
    got = [compiled(x).numpy() for _ in range(2)]
    for a, b in zip(eager, got):
        np.testing.assert_array_equal(b, a)
    assert ember.get_rng_state().tolist() == eager_state
    ember.manual_seed(11)
    ember.rand(5)  # the call's seeding wins over the generator's state
    np.testing.assert_array_equal(compiled(x).numpy(), eager[0])


def test_seeding_after_a_draw_inside_a_compiled_function_is_refused():
    def twice(x):
        a = ember.rand(*x.shape)
        ember.manual_seed(1)
        return x + a + ember.rand(*x.shape)

    with pytest.raises(TraceError, match="after drawing from it"):
        ember.jit(twice)(ember.tensor(X))


def _add(x):
    x.add_(1.0)
    return x * 2


def _setitem(x):
    x[0] = 5.0
    return x.sum()


def _column(x):
    x[:, 1].mul_(3.0)
    return x.sum()


def _copy_into(x, y):
    y.copy_(x * 2)
    return x + y


def _flat_zero(x):
    x.view(-1)[:3].zero_()
    return x.sum()


def _stale_views(x):
    row, t = x[0], x.t()  # made before the update: they see it, as views of the same memory do
    x.mul_(2.0)
    return row.sum() + t[0, 0] * 10


def _view_of_view(x):
    rest = x[1:]
    rest[0].add_(100.0)
    return x.sum() + rest.sum()


def _transposed_fill(x):
    x.transpose(0, 1)[0].fill_(3.0)
    return x.clone()


def _temporary(x):
    y = x * 1.0
    y.view(-1)[0] = 7.0
    return y


@pytest.mark.parametrize("fn", [_add, _setitem, _column, _copy_into, _flat_zero, _stale_views,
                                _view_of_view, _transposed_fill, _temporary], ids=lambda f: f.__name__)
def test_arguments_updated_in_place_are_updated_by_each_run(fn):
    n_args = 2 if fn is _copy_into else 1
    values = [RNG.standard_normal((3, 4)).astype(np.float32) for _ in range(n_args)]
    eager_args = [ember.tensor(v.copy()) for v in values]
    expected = fn(*eager_args).numpy()
    compiled = ember.jit(fn)
    for _ in range(2):  # the traced call and a cached one, each on fresh arguments
        args = [ember.tensor(v.copy()) for v in values]
        np.testing.assert_allclose(compiled(*args).numpy(), expected, rtol=1e-6)
        for got, want in zip(args, eager_args):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert compiled.compile_count == 1


def test_an_update_through_a_view_that_cannot_be_written_back_is_refused():
    def diagonal_fill(x):
        x.diagonal().fill_(0.0)
        return x

    with pytest.raises(TraceError, match="diagonal"):
        ember.jit(diagonal_fill)(ember.ones(3, 3))


def test_a_tensor_held_in_a_module_attribute_is_part_of_the_cache_key():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 3)
            self.scale = ember.tensor(2.0)

        def forward(self, x):
            return self.lin(x) * self.scale

    m = Scaled()
    compiled = ember.jit(m)
    x = ember.tensor(X)
    first = compiled(x).detach().numpy()
    m.scale = ember.tensor(3.0)
    np.testing.assert_allclose(compiled(x).detach().numpy(), first * 1.5, rtol=1e-5)
    assert compiled.compile_count == 2


def test_the_recompilation_reason_names_a_gradient_that_appeared(capsys):
    m = nn.Linear(3, 2)
    opt = ember.optim.SGD(m.parameters(), lr=1.0)
    step = ember.jit(opt.step, explain=True)
    m.weight.grad, m.bias.grad = ember.ones(2, 3), None
    step()
    m.bias.grad = ember.ones(2)
    step()
    assert "gradient that the function reads changed from None to a float32 tensor of shape (2,)" in \
        capsys.readouterr().err


def _compiled_and_eager(make, args, steps=3):
    """Per-step losses and final parameters and buffers of `make()`'s (model, step) run eagerly and
    compiled, from the same seed."""
    runs = []
    for compiled in (False, True):
        ember.manual_seed(0)
        model, step = make()
        fn = ember.jit(step) if compiled else step
        losses = [float(fn(*args)) for _ in range(steps)]
        runs.append((losses, [t.detach().numpy().copy() for t in [*model.parameters(), *model.buffers()]]))
    return runs


def test_batch_norm_cumulative_average_compiles():
    """momentum=None weighs each batch by one over the count of batches, read when the step runs."""
    def make():
        m = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16, momentum=None), nn.Linear(16, 3))
        return m, training_step(m, ember.optim.SGD(m.parameters(), lr=0.1))

    (eager_losses, eager_state), (losses, state) = _compiled_and_eager(make, (ember.tensor(X), ember.tensor(Y)))
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    for a, b in zip(eager_state, state):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert int(state[-1]) == 3  # num_batches_tracked


def test_embedding_max_norm_compiles():
    """The rows looked up are renormalised in place inside the graph (duplicated indices included)."""
    def make():
        m = nn.Embedding(10, 4, max_norm=1.0)
        with ember.no_grad():
            m.weight.mul_(3.0)
        opt = ember.optim.SGD(m.parameters(), lr=0.5)

        def step(ids):
            opt.zero_grad()
            loss = (m(ids) ** 2).sum()
            loss.backward()
            opt.step()
            return loss
        return m, step

    ids = ember.tensor(np.array([[1, 3, 3], [7, 1, 0]]))
    (eager_losses, eager_state), (losses, state) = _compiled_and_eager(make, (ids,))
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    np.testing.assert_allclose(state[0], eager_state[0], rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(state[0][[2, 4]], axis=1).min() > 1.0  # rows not looked up keep their norm


def test_a_trace_that_fails_leaves_gradients_state_and_buffers_as_they_were():
    ember.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    opt = ember.optim.Adam(m.parameters(), lr=0.1)
    x, y = ember.tensor(X), ember.tensor(Y)
    opt.zero_grad()
    F.cross_entropy(m(x), y).backward()
    opt.step()

    def snapshot():
        return ([v.numpy().copy() for v in m.state_dict().values()],
                [p.grad.numpy().copy() for p in m.parameters()],
                [v.numpy().copy() for s in opt.state.values() for v in s.values()])

    before = snapshot()

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        if loss.item() > 0:  # data-dependent Python: the trace fails after the update
            return loss
        return -loss

    leaked = []

    def returns_a_foreign_tracer(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        ember.func.jvp(lambda t: leaked.append(t) or t, (x.float(),), (x.float(),))
        return loss, leaked[-1]  # refused once the update has been traced

    for failing in (step, returns_a_foreign_tracer):
        with pytest.raises(TraceError):
            ember.jit(failing)(x, y)
        for got, want in zip(snapshot(), before):
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)
    compiled = ember.jit(training_step(m, opt))  # the same objects go on training, compiled or not
    losses = [float(compiled(x, y)) for _ in range(3)]
    assert losses[-1] < losses[0]


def test_lowering_a_function_that_seeds_leaves_the_generator_where_it_was():
    def noisy(x):
        ember.manual_seed(3)
        return x + ember.rand(*x.shape)

    ember.manual_seed(5)
    ember.rand(2)
    state = ember.get_rng_state().tolist()
    ember.jit(noisy).lower(ember.tensor(X))
    assert ember.get_rng_state().tolist() == state


def test_module_compile_in_place_trains_copies_and_keeps_its_state_dict():
    import copy
    import pickle

    ember.manual_seed(0)
    eager, compiled = _model(), _model()
    keys = list(compiled.state_dict())
    compiled.compile(strict=True)
    assert list(compiled.state_dict()) == keys
    x, y = ember.tensor(X), ember.tensor(Y)
    opts = [ember.optim.SGD(m.parameters(), lr=0.1) for m in (eager, compiled)]
    for _ in range(3):  # the compiled forward is differentiated by an eager backward pass
        for m, opt in zip((eager, compiled), opts):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
    for a, b in zip(_params(eager), _params(compiled)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert compiled._compiled_call.compile_count == 1
    with pytest.raises(TraceError, match="strict"):
        compiled(ember.tensor(X[:4]))
    for twin in (copy.deepcopy(compiled), pickle.loads(pickle.dumps(compiled))):
        assert twin._compiled_call is not compiled._compiled_call  # its own graphs, of its own tensors
        np.testing.assert_allclose(twin(x).detach().numpy(), compiled(x).detach().numpy(), rtol=1e-6)


def _bump_first(a, b):
    a.add_(1)
    return b * 2


def test_the_same_tensor_passed_twice_is_one_input():
    f = ember.jit(_bump_first)
    y = ember.zeros(3)
    np.testing.assert_allclose(f(y, y).numpy(), [2, 2, 2])  # b sees a's update, as in eager mode
    np.testing.assert_allclose(y.numpy(), [1, 1, 1])
    np.testing.assert_allclose(f(ember.zeros(3), y).numpy(), [2, 2, 2])  # another signature
    assert f.compile_count == 2
    np.testing.assert_allclose(f(y, y).numpy(), [4, 4, 4])
    np.testing.assert_allclose(y.numpy(), [2, 2, 2])
    assert f.compile_count == 2


def test_arguments_sharing_memory_with_an_updated_one_run_eagerly():
    from ember.errors import EagerFallbackWarning

    f = ember.jit(_bump_first)
    f(ember.zeros(4), ember.zeros(2))
    y = ember.zeros(4)
    with pytest.warns(EagerFallbackWarning, match="share memory"):
        out = f(y, y[:2])
    np.testing.assert_allclose(out.numpy(), [2, 2])
    np.testing.assert_allclose(y.numpy(), [1, 1, 1, 1])
    z = ember.zeros(4)
    np.testing.assert_allclose(f(z[:2], z[2:]).numpy(), [0, 0])  # disjoint halves run compiled
    assert f.eager_calls == 1
    g = ember.jit(lambda a, b: a * b)  # no update: views of one tensor are fine
    np.testing.assert_allclose(g(y, y).numpy(), [1, 1, 1, 1])


def test_values_not_computed_from_the_inputs_are_returned_as_eager_mode_returns_them():
    held = ember.tensor([1.0, 2.0])
    f = ember.jit(lambda a: (a * 2, 3, "s", held, ember.zeros(2), None))
    x = ember.ones(2)
    first = f(x)
    second = f(x)
    assert first[1:4] == second[1:4] == (3, "s", held) and second[3] is held and second[5] is None
    assert second[4] is not first[4]  # made inside: a new tensor per call
    np.testing.assert_allclose(second[4].numpy(), [0, 0])
    assert ember.jit(lambda a: 7)(x) == 7


@pytest.mark.parametrize("write", ["copy", "copy_product", "view", "views_then_whole", "copy_then_slice",
                                   "read_between"])
def test_a_tensor_made_inside_a_compiled_step_and_filled_in_place_carries_the_gradient(write):
    w = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)

    def step(x):
        y = ember.zeros(3)
        if write == "copy":
            y.copy_(w)  # (hands back `w` itself)
        elif write == "copy_product":
            y.copy_(w * 1.5)
        elif write == "view":
            y[1:].add_(w[1:] * 2)
        elif write == "views_then_whole":  # (the first write's saved operand is the view's old value)
            y[1:3].mul_(w[1:3])
            y[1:2].add_(w[1:2])
            y.add_(w * x)
        elif write == "copy_then_slice":  # (the slice is written into the copied value)
            y.copy_(ember.tanh(w))
            y[2:3] = w[2:3] * 3
        else:  # a product that saved `y` is differentiated after `y` changed: refused, as in PyTorch
            y.copy_(w * 2)
            z = y * y
            y[0:1].mul_(w[0:1])
            y = y + z
        loss = (y * y * x).sum()
        loss.backward()
        g = w.grad.clone()
        w.grad = None
        return g

    x = ember.tensor([1.0, -1.0, 0.5])
    if write == "read_between":
        for fn in (step, ember.jit(step)):
            with pytest.raises(ember.errors.AutogradError, match="modified by an in-place operation"):
                fn(x)
            w.grad = None
        return
    want = step(x).numpy()
    assert np.abs(want).sum() > 0
    compiled = ember.jit(step)
    for _ in range(2):
        np.testing.assert_allclose(compiled(x).numpy(), want, rtol=1e-6)
    assert w.grad is None


def test_a_plain_value_written_after_a_traced_one_is_the_one_kept():
    """The second write hands the tensor a value made in the traced code without the inputs
    (``ember.ones``); it must replace the first, traced write, as eagerly."""
    def run(fn, buf):
        out = fn(ember.tensor([1.0, 2.0, 3.0]), buf)
        return out.numpy(), buf.numpy().copy()

    def fn(x, buf):
        buf.copy_(x * 2)
        buf[1:] = ember.ones(2)
        made = ember.zeros(3)
        made.mul_(x)
        made.copy_(ember.full((3,), 4.0))
        return buf * 1 + made

    want = run(fn, ember.zeros(3))
    compiled = ember.jit(fn)
    for _ in range(2):
        got = run(compiled, ember.zeros(3))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w)
