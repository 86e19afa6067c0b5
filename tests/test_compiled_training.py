"""Whole training steps under ember.jit: forward, loss.backward(), optimizer.step() and zero_grad in one
graph whose parameters, gradients, buffers and optimiser state are updated after each run. Compiled
steps must give the eager losses, step after step, for the benchmark models."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember import models

from helpers import np_of, training_step


def _lstm_model():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 8, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    return Tagger()


CASES = {
    "mlp": (lambda: nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3)),
            lambda p: ember.optim.SGD(p, lr=0.1, momentum=0.9),
            lambda: (ember.randn(16, 8), ember.randint(0, 3, (16,)))),
    "cnn": (lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(4 * 4 * 4, 3)),
            lambda p: ember.optim.Adam(p, lr=1e-2),
            lambda: (ember.randn(8, 1, 8, 8), ember.randint(0, 3, (8,)))),
    "gpt": (lambda: models.gpt(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0),
            lambda p: ember.optim.AdamW(p, lr=1e-2),
            lambda: (ember.randint(0, 16, (4, 8)), ember.randint(0, 16, (4, 8)))),
    "lstm": (_lstm_model, lambda p: ember.optim.Adam(p, lr=1e-2),
             lambda: (ember.randn(4, 5, 4), ember.randint(0, 3, (4,)))),
}


def _step_of(model, opt):
    """A training step (cross-entropy over the last dim, backward, update) of `model` and `opt`."""
    def step(x, y):
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def _setup(name: str):
    """The model, its training step and the data of case `name`, from seed 0."""
    build, make_opt, data = CASES[name]
    ember.manual_seed(0)
    model = build()
    step = _step_of(model, make_opt(model.parameters()))
    return model, step, data()


def _run(name: str, compiled: bool, steps: int = 20) -> tuple[list[float], dict]:
    model, step, (x, y) = _setup(name)
    fn = ember.jit(step) if compiled else step
    losses = [float(fn(x, y)) for _ in range(steps)]
    if compiled:
        assert fn.compile_count == 2  # before and after the optimiser state exists
    return losses, {k: v.numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_training_steps_match_eager_for_20_steps(name):
    eager, eager_state = _run(name, compiled=False)
    compiled, compiled_state = _run(name, compiled=True)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    assert compiled[-1] < compiled[0]
    for key in eager_state:
        # Adam normalises updates, so last-bit differences in near-zero gradients (fused sums reassociate)
        # can move a parameter by a fraction of the learning rate; the losses above are the contract.
        np.testing.assert_allclose(compiled_state[key], eager_state[key], rtol=1e-3, atol=2e-3)


@pytest.mark.parametrize("name", list(CASES))
def test_a_training_step_with_a_dynamic_batch_dimension_compiles_once_for_every_batch_size(name):
    """``dynamic_dims`` on the batch dimension of a whole training step (backward, optimiser and the
    ``1/N`` of the mean loss): one graph per optimiser-state structure, whatever the batch size."""
    runs = []
    for compiled in (False, True):
        _, step, (x, y) = _setup(name)
        fn = ember.jit(step, dynamic_dims={0: {0: "batch"}, 1: {0: "batch"}}) if compiled else step
        sizes = [x.shape[0], 2, x.shape[0], 3, x.shape[0] - 1]
        runs.append([float(fn(x[:n], y[:n])) for n in sizes])
        if compiled:
            assert fn.compile_count == 2  # before and after the optimiser state exists
        # batch 1 may get a graph of its own: where the loss's 1/N is 1, the simplifier removes it, so
        # the function traces otherwise (each new size is traced once and checked against the graph)
        runs[-1].append(float(fn(x[:1], y[:1])))
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-5)


def test_compiled_training_is_deterministic_across_runs():
    assert _run("mlp", compiled=True)[0] == _run("mlp", compiled=True)[0]


def test_batch_norm_buffers_are_updated_by_the_compiled_step():
    def run(compiled):
        ember.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
        opt = ember.optim.SGD(model.parameters(), lr=0.1)
        x, y = ember.randn(10, 4), ember.randint(0, 2, (10,))
        step = _step_of(model, opt)
        fn = ember.jit(step) if compiled else step
        for _ in range(5):
            fn(x, y)
        return model[1].running_mean.numpy().copy(), int(model[1].num_batches_tracked.item())

    (mean_e, n_e), (mean_c, n_c) = run(False), run(True)
    np.testing.assert_allclose(mean_c, mean_e, rtol=1e-6)
    assert n_e == n_c == 5


def test_switching_to_eval_mode_or_changing_a_fixed_hyper_parameter_recompiles(capsys):
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.0), nn.Linear(4, 2))
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    x, y = ember.randn(6, 4), ember.randint(0, 2, (6,))
    fn = ember.jit(_step_of(model, opt), explain=True)
    fn(x, y)
    fn(x, y)
    count = fn.compile_count
    opt.param_groups[0]["weight_decay"] = 0.05
    fn(x, y)
    assert fn.compile_count == count + 1
    assert "optimiser" in capsys.readouterr().err
    model.eval()
    fn(x, y)
    assert fn.compile_count == count + 2


def test_gradients_after_a_compiled_step_are_real_tensors():
    ember.manual_seed(0)
    model = nn.Linear(3, 2)
    x = ember.randn(4, 3)

    @ember.jit
    def grads(x):
        model.zero_grad()
        loss = (model(x) ** 2).sum()
        loss.backward()
        return loss

    grads(x)
    assert type(model.weight.grad) is ember.Tensor
    w = model.weight.detach().requires_grad_()
    (F.linear(x, w, model.bias.detach()) ** 2).sum().backward()
    np.testing.assert_allclose(model.weight.grad.numpy(), w.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("make_opt", [lambda ps: ember.optim.SGD(ps, lr=0.1, momentum=0.9),
                                      lambda ps: ember.optim.Adam(ps, lr=0.01)])
def test_lowering_a_step_before_running_it_changes_no_state(make_opt):
    rng = np.random.default_rng(0)
    x, y = ember.tensor(rng.standard_normal((16, 8)).astype(np.float32)), ember.tensor(rng.integers(0, 4, 16))
    losses = []
    for lower_first in (False, True):
        ember.manual_seed(0)
        model = nn.Linear(8, 4)
        opt = make_opt(model.parameters())
        step = ember.jit(training_step(model, opt))
        if lower_first:
            step.lower(x, y)  # traces the first step's graph; momentum buffers are not created yet
            assert all(not s for s in opt.state.values()) and model.weight.grad is None, opt.state
        losses.append([step(x, y).item() for _ in range(3)])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)


@pytest.mark.parametrize("make_opt", [lambda ps: ember.optim.SGD(ps, lr=0.1, momentum=0.9),
                                      lambda ps: ember.optim.AdamW(ps, lr=0.01)])
def test_compiled_updates_write_parameters_and_state_in_place(make_opt, monkeypatch):
    from ember.backends import CPU

    rng = np.random.default_rng(0)
    x, y = ember.tensor(rng.standard_normal((64, 96)).astype(np.float32)), ember.tensor(rng.integers(0, 4, 64))
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(96, 256), nn.ReLU(), nn.Linear(256, 4))
    opt = make_opt(model.parameters())
    step = ember.jit(training_step(model, opt))
    step(x, y)  # the first step creates the optimiser state
    weight = model[0].weight
    storage, row = weight._data, weight[0]  # a view taken before the steps
    state = {k: v._data for k, v in opt.state[weight].items() if isinstance(v, ember.Tensor) and v.numel() > 1}
    taken = []
    real = CPU.pool.end_redirect
    monkeypatch.setattr(CPU.pool, "end_redirect", lambda: taken.append(real()) or taken[-1])
    losses = [step(x, y).item() for _ in range(3)]
    assert taken and all(taken)  # each new weight and state tensor computed straight into its memory
    assert weight._data is storage and all(opt.state[weight][k]._data is a for k, a in state.items())
    np.testing.assert_array_equal(np_of(row), np_of(weight)[0])  # the view sees the updates
    assert losses[-1] < losses[0]


def test_a_parameter_read_after_its_update_is_not_written_early():
    from ember.compiler import executor

    p, g = ember.randn(64, 300), ember.randn(64, 300)
    cases = {"updated last": (lambda p, g: (p - 0.1 * g) * 1.5, True),
             "read later": (lambda p, g: ((p - 0.1 * g) * 1.5, (p * 2.0).sum()), False),
             "read through a view": (lambda p, g: ((p - 0.1 * g) * 1.5, p.T.sum()), False)}
    for name, (f, allowed) in cases.items():
        graph = ember.jit(f).lower(p, g).graph
        chosen = executor.destinations(graph, {0: graph.inputs[0]})
        assert bool(chosen) == allowed, name


def test_a_compiled_step_that_fails_late_leaves_parameters_and_state_unchanged(monkeypatch):
    from ember.compiler.codegen.runtime import FusedKernel

    rng = np.random.default_rng(0)
    x, y = ember.tensor(rng.standard_normal((64, 96)).astype(np.float32)), ember.tensor(rng.integers(0, 4, 64))
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(96, 256), nn.ReLU(), nn.Linear(256, 4))
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train = training_step(model, opt)

    def train_then_more(x, y):  # a fused group traced after the updates, which compute in place
        return train(x, y), ember.tanh(x) * 2.0

    step = ember.jit(train_then_more)
    step(x, y)
    step(x, y)  # the steady-state graph, whose updates compute in place
    before = {k: np_of(v).copy() for k, v in model.state_dict().items()}
    buffers = {id(p): np_of(s["momentum_buffer"]).copy() for p, s in opt.state.items()}
    real = FusedKernel.__call__

    def failing(self, *arrays):  # the group traced after the updates runs out of memory
        if any("tanh" in line for line in self.comment):
            raise MemoryError("out of memory")
        return real(self, *arrays)

    monkeypatch.setattr(FusedKernel, "__call__", failing)
    with pytest.raises(ember.errors.EmberError, match="out of memory"):
        step(x, y)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(np_of(v), before[k], err_msg=k)
    for p, s in opt.state.items():
        np.testing.assert_array_equal(np_of(s["momentum_buffer"]), buffers[id(p)])


@pytest.mark.parametrize("make_opt", [lambda ps: ember.optim.SGD(ps, lr=0.01, momentum=0.9),
                                      lambda ps: ember.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-3),
                                      lambda ps: ember.optim.Adam(ps, lr=1e-3),
                                      lambda ps: ember.optim.AdamW(ps, lr=1e-3)])
def test_compiled_steps_with_in_place_updates_match_eager(make_opt):
    # the first step's graph (state created) and the steady one, both reordered to update last
    sizes = (784, 64, 64, 10)
    eager, _ = _mlp_losses(sizes, make_opt, jit=False, steps=4)
    compiled, step = _mlp_losses(sizes, make_opt, jit=True, steps=4)
    assert any(c.writes for c in step.cache.values())
    np.testing.assert_allclose(compiled, eager, rtol=1e-6)


def _mlp_losses(sizes, make_opt, jit, steps):
    """The losses of `steps` training steps of a ReLU MLP of `sizes` on fixed random data, and the step."""
    rng = np.random.default_rng(0)
    x = ember.tensor(rng.standard_normal((16, sizes[0])).astype(np.float32))
    y = ember.tensor(rng.integers(0, sizes[-1], 16))
    ember.manual_seed(0)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    step = training_step(model, make_opt(model.parameters()))
    step = ember.jit(step) if jit else step
    return [step(x, y).item() for _ in range(steps)], step


@pytest.mark.parametrize("name", ["Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "Lion", "NAdam", "RAdam",
                                  "RMSprop", "SGD"])
def test_every_optimizer_compiles_once_for_its_steady_state(name):
    # step counts are tensors, so the graph does not bake them in; RAdam selects its rectified update
    # with a tensor condition
    make_opt = lambda ps: getattr(ember.optim, name)(ps, lr=1e-2)  # noqa: E731
    eager, _ = _mlp_losses((20, 300, 5), make_opt, jit=False, steps=5)
    compiled, step = _mlp_losses((20, 300, 5), make_opt, jit=True, steps=5)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    assert step.compile_count <= 2


# -- hyper-parameters read at run time: schedules do not recompile --------------------------------------

def _scheduled_losses(make_opt, make_sched, jit, steps=8, clip=None, **jit_kwargs):
    """Losses (and the step) of an MLP trained with `make_opt` while `make_sched`'s scheduler changes the
    hyper-parameters after every step."""
    rng = np.random.default_rng(1)
    x = ember.tensor(rng.standard_normal((16, 6)).astype(np.float32))
    y = ember.tensor(rng.integers(0, 3, 16))
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 24), nn.Tanh(), nn.Linear(24, 3))
    opt = make_opt(model.parameters())
    sched = make_sched(opt)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return loss

    fn = ember.jit(step, **jit_kwargs) if jit else step
    losses = []
    for _ in range(steps):
        losses.append(float(fn(x, y)))
        sched.step()
    return losses, fn


SCHEDULES = {
    "cosine": lambda opt: ember.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6, eta_min=1e-3),
    "warmup": lambda opt: ember.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 4)),
    # OneCycleLR also cycles SGD's momentum or Adam's first beta
    "one_cycle": lambda opt: ember.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.02, total_steps=10, cycle_momentum=bool({"momentum", "betas"} & set(opt.defaults))),
}


@pytest.mark.parametrize("name", ["Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "Lion", "NAdam", "RAdam",
                                  "RMSprop", "SGD"])
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_a_scheduled_learning_rate_does_not_recompile_and_matches_eager(name, schedule):
    kwargs = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    make_opt = lambda ps: getattr(ember.optim, name)(ps, lr=0.02, **kwargs)  # noqa: E731
    eager, _ = _scheduled_losses(make_opt, SCHEDULES[schedule], jit=False)
    compiled, fn = _scheduled_losses(make_opt, SCHEDULES[schedule], jit=True)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    # the first step (before any optimiser state) and the steady one; Adagrad makes its state up front
    assert fn.compile_count == (1 if name == "Adagrad" else 2)


def test_the_run_time_learning_rate_is_the_one_set_before_each_call():
    # the same compiled step with lr 0, then lr 0.1 set by hand: the first call leaves the weights alone
    ember.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    x, y = ember.randn(5, 3), ember.randn(5, 1)

    @ember.jit
    def step(x, y):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    step(x, y)
    opt.param_groups[0]["lr"] = 1e-3
    before = np_of(model.weight).copy()
    loss = float(step(x, y))
    grad = np_of(model.weight.grad)
    np.testing.assert_allclose(np_of(model.weight), before - 1e-3 * grad, rtol=1e-5, atol=1e-7)
    opt.param_groups[0]["lr"] = 0.5
    before = np_of(model.weight).copy()
    assert float(step(x, y)) < loss
    np.testing.assert_allclose(np_of(model.weight), before - 0.5 * np_of(model.weight.grad), rtol=1e-5,
                               atol=1e-7)
    assert step.compile_count == 1


def _linear_after(make_opt, key, values, wrap=None):
    """Train a Linear(3, 2) one cross-entropy step per entry of `values`, set as ``group[key]`` before
    each step, eagerly or through `wrap`(step); returns the losses, the final weight and the step."""
    ember.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = make_opt(model.parameters())
    x, y = ember.randn(5, 3), ember.randint(0, 2, (5,))
    fn = training_step(model, opt)
    fn = wrap(fn) if wrap is not None else fn
    losses = []
    for value in values:
        opt.param_groups[0][key] = value
        losses.append(float(fn(x, y)))
    return losses, np_of(model.weight).copy(), fn


def test_a_hyper_parameter_the_update_branches_on_recompiles_when_it_becomes_zero():
    # SGD skips its momentum buffer when momentum is 0: a zero momentum is a different graph
    make_opt = lambda ps: ember.optim.SGD(ps, lr=0.1, momentum=0.5)  # noqa: E731
    momenta = (0.5, 0.5, 0.0, 0.0, 0.9)
    eager, _, _ = _linear_after(make_opt, "momentum", momenta)
    compiled, _, fn = _linear_after(make_opt, "momentum", momenta, ember.jit)
    np.testing.assert_allclose(compiled, eager, rtol=1e-6)
    assert fn.compile_count == 3  # first step, momentum 0.5 and 0.9 (one graph), momentum 0


def test_a_scheduled_step_compiles_strictly_and_under_check():
    make_opt = lambda ps: ember.optim.AdamW(ps, lr=0.02)  # noqa: E731
    eager, _ = _scheduled_losses(make_opt, SCHEDULES["cosine"], jit=False)
    checked, fn = _scheduled_losses(make_opt, SCHEDULES["cosine"], jit=True, check=True)
    np.testing.assert_allclose(checked, eager, rtol=1e-5)
    fn.strict = True
    x, y = ember.randn(16, 6), ember.randint(0, 3, (16,))
    fn(x, y)  # a ninth step, lr changed again: no recompilation


def test_gradient_clipping_compiles_and_matches_eager():
    make_opt = lambda ps: ember.optim.SGD(ps, lr=0.5)  # noqa: E731
    eager, _ = _scheduled_losses(make_opt, SCHEDULES["warmup"], jit=False, clip=0.05)
    compiled, fn = _scheduled_losses(make_opt, SCHEDULES["warmup"], jit=True, clip=0.05)
    unclipped, _ = _scheduled_losses(make_opt, SCHEDULES["warmup"], jit=False)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    assert not np.allclose(eager, unclipped)  # the clip was active
    assert fn.compile_count == 1  # SGD without momentum has no state: one graph from the start


def test_a_compiled_step_called_inside_another_reads_the_learning_rate_at_run_time():
    make_opt = lambda ps: ember.optim.Adam(ps, lr=0.1)  # noqa: E731
    nest = lambda step: ember.jit(lambda x, y: ember.jit(step)(x, y) * 1.0)  # noqa: E731
    _, eager, _ = _linear_after(make_opt, "lr", (0.1, 0.1, 0.01, 0.3))
    _, compiled, outer = _linear_after(make_opt, "lr", (0.1, 0.1, 0.01, 0.3), nest)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    assert outer.compile_count == 2


def test_an_optimizer_that_declares_no_run_time_hyper_parameters_recompiles_for_a_new_rate():
    # a user's optimiser may branch on its learning rate in Python: it keeps the rate in the signature
    class Clipped(ember.optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        def _updates(self, group, p, grad, state):
            return p - min(group["lr"], 0.05) * grad

    make_opt = lambda ps: Clipped(ps, lr=0.01)  # noqa: E731
    _, eager, _ = _linear_after(make_opt, "lr", (0.01, 0.02, 0.1))
    _, compiled, fn = _linear_after(make_opt, "lr", (0.01, 0.02, 0.1), ember.jit)
    np.testing.assert_allclose(compiled, eager, rtol=1e-6)
    assert fn.compile_count == 3


def test_clipping_that_must_check_the_norm_in_python_says_so_under_jit():
    model = nn.Linear(3, 2)

    @ember.jit
    def step(x):
        model(x).sum().backward()
        return nn.utils.clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)

    with pytest.raises(ember.errors.TraceError, match="error_if_nonfinite=False and check the returned"):
        step(ember.randn(4, 3))


# -- the tensors a compiled step reads are the ones the module and optimiser hold now ------------------

def _resumed_losses(jit, replace=None):
    """Six Adam steps of a Linear(3, 2), a checkpoint taken after three, the optimiser and the model
    restored from it after six (and `replace`(model, opt) applied), then three more steps' losses."""
    ember.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = ember.optim.Adam(model.parameters(), lr=0.1)
    x, y = ember.randn(5, 3), ember.randint(0, 2, (5,))
    fn = training_step(model, opt)
    fn = ember.jit(fn) if jit else fn
    for _ in range(3):
        fn(x, y)
    saved = opt.state_dict()
    saved = {"state": {k: {n: (v.clone() if isinstance(v, ember.Tensor) else v) for n, v in s.items()}
                       for k, s in saved["state"].items()}, "param_groups": saved["param_groups"]}
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(3):
        fn(x, y)
    opt.load_state_dict(saved)
    model.load_state_dict(weights)
    if replace is not None:
        replace(model, opt)
    return [float(fn(x, y)) for _ in range(3)], fn


def test_a_compiled_step_after_loading_a_checkpoint_continues_from_it():
    eager, _ = _resumed_losses(jit=False)
    compiled, fn = _resumed_losses(jit=True)
    np.testing.assert_allclose(compiled, eager, rtol=1e-6)
    assert fn.compile_count == 2  # the state was copied into the tensors the graph reads


def _fresh_moments(model, opt):
    for p in model.parameters():
        opt.state[p]["exp_avg"] = ember.zeros_like(p)


def _fresh_weight(model, opt):
    model.weight = nn.Parameter(ember.ones(2, 3))
    opt.param_groups[0]["params"][0] = model.weight
    opt.state[model.weight] = opt.state.pop(next(p for p in opt.state if p is not model.bias
                                                 and p is not model.weight))


@pytest.mark.parametrize("replace", [_fresh_moments, _fresh_weight])
def test_replacing_a_tensor_that_a_compiled_step_reads_recompiles(replace):
    eager, _ = _resumed_losses(jit=False, replace=replace)
    compiled, fn = _resumed_losses(jit=True, replace=replace)
    np.testing.assert_allclose(compiled, eager, rtol=1e-6)
    assert fn.compile_count == 3


def test_loading_an_optimizer_state_that_does_not_fit_changes_nothing():
    model = nn.Linear(3, 2)
    opt = ember.optim.Adam(model.parameters(), lr=0.1)
    model(ember.randn(4, 3)).sum().backward()
    opt.step()
    before = {id(p): {k: np_of(v).copy() for k, v in s.items()} for p, s in opt.state.items()}
    saved = opt.state_dict()
    saved["state"][0] = {k: v * 2 for k, v in saved["state"][0].items()}
    saved["state"][7] = saved["state"][1]
    with pytest.raises(ember.errors.EmberError, match="parameter 7"):
        opt.load_state_dict(saved)
    for p, s in opt.state.items():
        for k, v in s.items():
            np.testing.assert_array_equal(np_of(v), before[id(p)][k])


def test_lbfgs_runs_a_compiled_closure_and_refuses_to_be_compiled_itself():
    def run(jit_closure):
        ember.manual_seed(0)
        model = nn.Linear(4, 3)
        opt = ember.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
        x, y = ember.randn(16, 4), ember.randint(0, 3, (16,))

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        closure = ember.jit(closure) if jit_closure else closure
        return [float(opt.step(closure)) for _ in range(3)], opt, closure

    eager, _, _ = run(False)
    compiled, opt, closure = run(True)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    assert closure.compile_count == 1
    with pytest.raises(ember.errors.TraceError, match="compile the closure instead"):
        ember.jit(lambda: opt.step(closure))()


def test_a_value_kept_from_a_trace_is_refused_or_says_it_holds_no_data():
    kept: list = []
    deep: dict = {"a": {"b": {"c": []}}}
    deeper: dict = {"a": {"b": {"c": {"d": {"e": {"f": []}}}}}}

    @ember.jit
    def f(x):
        kept.append(x * 2)
        return x + 1

    with pytest.raises(ember.errors.TraceError, match=r"kept\[0\]"):  # found when the trace ends
        f(ember.ones(2))

    @ember.jit
    def g(x):
        deep["a"]["b"]["c"].append(x * 2)
        return x + 1

    with pytest.raises(ember.errors.TraceError, match=r"deep\['a'\]\['b'\]\['c'\]\[0\]"):
        g(ember.ones(2))

    @ember.jit
    def h(x):
        deeper["a"]["b"]["c"]["d"]["e"]["f"].append(x * 2)  # (deeper than the search goes)
        return x + 1

    h(ember.ones(2))
    with pytest.raises(ember.errors.TraceError, match="kept outside it"):
        deeper["a"]["b"]["c"]["d"]["e"]["f"][0].numpy()


def test_a_zero_dim_loss_scaled_by_a_python_number_differentiates_under_jit():
    # static loss scaling: the scalar is saved for the backward pass in the compute dtype
    w = nn.Parameter(ember.randn(3))

    def scaled(x):
        w.grad = None
        ((x * w).sum() * 1024.0).backward()
        grad = w.grad.detach() / 1024.0
        return grad

    x = ember.randn(3)
    np.testing.assert_allclose(np_of(ember.jit(scaled)(x)), np_of(scaled(x)), rtol=1e-6)
    np.testing.assert_allclose(np_of(scaled(x)), np_of(x), rtol=1e-6)


def test_an_exponential_moving_average_with_lerp_compiles():
    def run(jit):
        ember.manual_seed(0)
        model = nn.Linear(4, 3)
        opt = ember.optim.Adam(model.parameters(), lr=0.05)
        shadow = [p.detach().clone() for p in model.parameters()]
        x, y = ember.randn(8, 4), ember.randint(0, 3, (8,))
        step = training_step(model, opt)

        def step_with_ema(x, y):
            loss = step(x, y)
            with ember.no_grad():
                for s, p in zip(shadow, model.parameters()):
                    s.lerp_(p, 0.1)
            return loss

        fn = ember.jit(step_with_ema) if jit else step_with_ema
        for _ in range(4):
            fn(x, y)
        return np_of(shadow[0]).copy()

    np.testing.assert_allclose(run(True), run(False), rtol=1e-6)


def test_freezing_and_unfreezing_a_layer_recompiles_and_matches_eager():
    def run(jit):
        ember.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x, y = ember.randn(6, 4), ember.randint(0, 3, (6,))
        fn = training_step(model, opt)
        fn = ember.jit(fn) if jit else fn
        for frozen in (False, False, True, True, False):
            for p in model[0].parameters():
                p.requires_grad_(not frozen)
            fn(x, y)
        return np_of(model[0].weight).copy(), np_of(model[2].weight).copy(), fn

    first_e, last_e, _ = run(False)
    first_c, last_c, fn = run(True)
    np.testing.assert_allclose(first_c, first_e, rtol=1e-6)
    np.testing.assert_allclose(last_c, last_e, rtol=1e-6)
    assert fn.compile_count == 3  # first step, steady state, and the frozen first layer


def test_changing_a_module_setting_such_as_the_dropout_rate_recompiles():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.0))
    fn = ember.jit(lambda x: model(x))
    x = ember.ones(64, 4)
    with ember.no_grad():
        kept = np_of(fn(x)).copy()
        model[1].p = 0.9
        dropped = np_of(fn(x))
        model[1].p = 0.0
        again = np_of(fn(x))
    assert (dropped == 0).mean() > 0.5 and (kept != 0).all()
    np.testing.assert_array_equal(again, kept)
    assert fn.compile_count == 2


@pytest.mark.parametrize("cell", [nn.RNNCell, nn.GRUCell, nn.LSTMCell])
def test_recurrent_cells_without_a_state_follow_a_dynamic_batch(cell):
    ember.manual_seed(0)
    layer = cell(3, 4)
    f = ember.jit(lambda x: layer(x), dynamic_dims={0: [0]})
    for n in (5, 2, 7):
        x = ember.randn(n, 3)
        got, want = f(x), layer(x)
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        for a, b in zip(got, want):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert f.compile_count == 1
