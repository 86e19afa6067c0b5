"""Random numbers under transforms. Inside ember.jit a compiled function draws what eager execution would
draw from the generators' state at each call, and moves the generators on as eager execution does;
inside vmap, ``randomness`` chooses one draw per batch element, one shared draw, or an error."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import nn
from ember._core.dispatch import bind
from ember._core.random import sample_p
from ember.compiler import executor, ir
from ember.errors import TraceError
from ember.func import grad, vmap
from ember.models import GPT, GPTConfig

from helpers import training_step


def _mixed(x):
    """Draws of every kind, from the default generator."""
    a = F.dropout(x, 0.4)
    b = ember.randn(*x.shape) * 0.1
    c = ember.randint(0, 7, x.shape).float()
    d = ember.bernoulli(ember.full(x.shape, 0.3))
    e = ember.multinomial(F.softmax(x, dim=-1), 3, replacement=True).float().sum()
    f = ember.normal(0.0, 2.0, x.shape, dtype=ember.float64).float()
    return a + b + c + d + e + f + ember.rand(*x.shape, dtype=ember.float64).float()


def _runs(fn, x, seed, calls):
    ember.manual_seed(seed)
    outs = [fn(x).numpy() for _ in range(calls)]
    return outs, ember.get_rng_state().tolist()


def test_compiled_draws_equal_eager_draws_call_after_call():
    x = ember.randn(5, 6)
    compiled = ember.jit(_mixed)
    eager, eager_state = _runs(_mixed, x, 11, 3)
    ours, our_state = _runs(compiled, x, 11, 3)
    assert our_state == eager_state
    for a, b in zip(ours, eager):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(ours[0], ours[1])  # a new mask on every call
    assert compiled.compile_count == 1


def test_reseeding_or_restoring_state_between_calls_replays_eager_numbers():
    x = ember.ones(4, 4)
    compiled = ember.jit(lambda x: F.dropout(x, 0.5) + ember.rand(4))
    ember.manual_seed(3)
    compiled(x)
    state = ember.get_rng_state()
    second = compiled(x).numpy()
    ember.set_rng_state(state)
    np.testing.assert_array_equal(compiled(x).numpy(), second)
    ember.manual_seed(3)
    first = compiled(x).numpy()
    ember.manual_seed(3)
    np.testing.assert_array_equal((F.dropout(x, 0.5) + ember.rand(4)).numpy(), first)


def test_explicit_generators_are_read_and_advanced_separately():
    g1, g2 = ember.Generator().manual_seed(1), ember.Generator().manual_seed(2)

    def f(x):
        return x + ember.rand(3, generator=g1) * ember.randn(3, generator=g2) + ember.rand(3, generator=g1)

    x = ember.zeros(3)
    compiled = ember.jit(f)
    default_before = ember.get_rng_state().tolist()
    ours = [compiled(x).numpy() for _ in range(2)]
    after = (g1.get_state().tolist(), g2.get_state().tolist())
    g1.manual_seed(1), g2.manual_seed(2)
    eager = [f(x).numpy() for _ in range(2)]
    assert (g1.get_state().tolist(), g2.get_state().tolist()) == after
    assert ember.get_rng_state().tolist() == default_before
    for a, b in zip(ours, eager):
        np.testing.assert_array_equal(a, b)


def test_tracing_alone_draws_nothing():
    compiled = ember.jit(lambda x: x + ember.rand(3))
    before = ember.get_rng_state().tolist()
    text = compiled.lower(ember.zeros(3)).as_text()
    assert ember.get_rng_state().tolist() == before
    assert "random_sample_at" in text and "delta=0" in text


def test_a_trace_that_fails_after_drawing_hands_the_draws_back():
    def f(x):
        ember.rand(8)
        return x.reshape(5)  # fails: 3 elements

    before = ember.get_rng_state().tolist()
    with pytest.raises(ember.errors.EmberError):
        ember.jit(f)(ember.zeros(3))
    assert ember.get_rng_state().tolist() == before


def test_a_failed_run_leaves_the_generator_where_it_was(monkeypatch):
    compiled = ember.jit(lambda x: x + ember.rand(3))
    compiled.lower(ember.zeros(3))
    before = ember.get_rng_state().tolist()

    def failing(*args, **kwargs):
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(executor, "run", failing)
    with pytest.raises(RuntimeError):
        compiled(ember.zeros(3))
    assert ember.get_rng_state().tolist() == before


def test_check_mode_compares_the_same_draws():
    x = ember.randn(6, 5)
    compiled = ember.jit(_mixed, check=True)
    ember.manual_seed(4)
    ours = compiled(x).numpy()
    ember.manual_seed(4)
    np.testing.assert_array_equal(ours, _mixed(x).numpy())


def test_the_graph_text_round_trips_and_verifies():
    graph = ember.jit(_mixed).lower(ember.randn(2, 3)).graph
    text = str(graph)
    assert str(ir.parse(text)) == text
    ir.verify(graph)


def test_nested_jit_draws_like_eager():
    inner = ember.jit(lambda x: F.dropout(x, 0.5))

    def outer(x):
        return inner(x) * 2 + ember.rand(*x.shape)

    x = ember.ones(8)
    inner(x)  # compiled alone first
    eager, eager_state = _runs(outer, x, 9, 2)
    ours, our_state = _runs(ember.jit(outer), x, 9, 2)
    assert our_state == eager_state
    for a, b in zip(ours, eager):
        np.testing.assert_array_equal(a, b)


def test_gradients_through_dropout_under_jit_and_around_it():
    w = ember.randn(6, 4)
    x = ember.randn(3, 6)

    def loss(w):
        return (F.dropout(x @ w, 0.5) ** 2).sum()

    ember.manual_seed(2)
    expected = grad(loss)(w).numpy()
    ember.manual_seed(2)
    np.testing.assert_allclose(ember.jit(grad(loss))(w).numpy(), expected, rtol=1e-6)
    ember.manual_seed(2)
    np.testing.assert_allclose(grad(ember.jit(loss))(w).numpy(), expected, rtol=1e-6)


def _train(model, compiled, steps, seed, memory_budget=None):
    opt = ember.optim.AdamW(model.parameters(), lr=1e-2)

    def step(x, y):
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    fn = ember.jit(step, memory_budget=memory_budget) if compiled else step
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 32, (4, 9))
    x, y = ember.tensor(tokens[:, :-1]), ember.tensor(tokens[:, 1:])
    ember.manual_seed(seed)
    return [fn(x, y).item() for _ in range(steps)], fn


def test_a_gpt_with_dropout_trains_the_same_compiled_and_eager():
    ember.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.2))
    twin = copy.deepcopy(model)
    eager, _ = _train(model, False, 6, 5)
    ours, step = _train(twin, True, 6, 5)
    np.testing.assert_allclose(ours, eager, rtol=1e-5)
    sampled = [n.prim.name for n in step.lower(*_inputs()).graph.nodes if "random" in n.prim.name]
    assert len(sampled) == 2 * 3 + 1  # attention weights and two residual branches per block, embeddings
    for a, b in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-4, atol=1e-4)


def _inputs():
    tokens = np.random.default_rng(0).integers(0, 32, (4, 9))
    return ember.tensor(tokens[:, :-1]), ember.tensor(tokens[:, 1:])


def test_recomputed_activations_draw_the_same_masks():
    def make():
        ember.manual_seed(0)
        layers = []
        for _ in range(4):
            layers += [nn.Linear(32, 32), nn.Tanh(), nn.Dropout(0.3)]
        return nn.Sequential(*layers, nn.Linear(32, 3))

    x, y = ember.randn(512, 32), ember.tensor(np.arange(512) % 3)

    def losses(model, budget=None, compiled=True):
        step = training_step(model, ember.optim.SGD(model.parameters(), lr=0.1))
        fn = ember.jit(step, memory_budget=budget) if compiled else step
        ember.manual_seed(8)
        return [fn(x, y).item() for _ in range(3)], fn

    eager, _ = losses(make(), compiled=False)
    free, plain = losses(make())
    peak = plain.lower(x, y).memory()["peak_bytes"]
    ours, budgeted = losses(make(), budget=int(peak * 0.5))

    def draws(fn):
        return sum(n.prim.name == "random_sample_at" for n in fn.lower(x, y).graph.nodes)

    assert draws(budgeted) > draws(plain) == 4  # some masks are drawn again in the backward pass
    np.testing.assert_allclose(free, eager, rtol=1e-5)
    np.testing.assert_allclose(ours, eager, rtol=1e-5)


def test_what_cannot_be_replayed_is_refused():
    with pytest.raises(TraceError, match="random"):  # vmap inside jit: every row would share numbers
        ember.jit(lambda x: vmap(lambda r: r + ember.rand(3))(x))(ember.zeros(2, 3))
    with pytest.raises(TraceError, match="re-seeded"):
        ember.jit(lambda x: x + ember.rand(2) + ember.manual_seed(1).initial_seed() * ember.rand(2))(
            ember.zeros(2))
    with pytest.raises(TraceError, match="draw random"):
        ember.jit(lambda x: x + ember.rand(*x.shape), dynamic_dims={0: [0]})(ember.zeros(3))
    with pytest.raises(TraceError, match="random sampling"):  # the attribute form, bound directly
        ember.jit(lambda x: x + bind(sample_p, shape=(2,), dist="uniform", dtype=ember.float32,
                                     params=(0.0, 1.0), seed=0, offset=0, device=x.device))(ember.zeros(2))


def test_in_place_fills_of_captured_tensors_happen_after_each_run():
    noise = ember.zeros(4)

    def f(x):
        noise.uniform_(-1.0, 1.0)
        return x + noise

    compiled = ember.jit(f)
    ember.manual_seed(6)
    first = compiled(ember.zeros(4)).numpy()
    np.testing.assert_array_equal(noise.numpy(), first)
    ember.manual_seed(6)
    np.testing.assert_array_equal(f(ember.zeros(4)).numpy(), first)
    assert not np.array_equal(compiled(ember.zeros(4)).numpy(), first)


def test_compiled_multinomial_checks_each_calls_weights():
    compiled = ember.jit(lambda w: ember.multinomial(w, 2, replacement=False))
    ember.manual_seed(1)
    ours = compiled(ember.tensor([[0.2, 0.0, 0.8, 0.5]])).tolist()
    ember.manual_seed(1)
    assert ours == ember.multinomial(ember.tensor([[0.2, 0.0, 0.8, 0.5]]), 2, replacement=False).tolist()
    with pytest.raises(ember.errors.EmberError, match="non-zero weights"):
        compiled(ember.tensor([[0.0, 0.0, 0.8, 0.0]]))
    with pytest.raises(ember.errors.EmberError, match="finite and non-negative"):
        compiled(ember.tensor([[0.1, -1.0, 0.8, 0.3]]))


def _checkpointed_step(model, compiled):
    from ember.utils.checkpoint import checkpoint

    opt = ember.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        hidden = checkpoint(lambda t: F.dropout(ember.tanh(model[0](t)), 0.4), x)
        loss = F.cross_entropy(F.dropout(model[1](hidden), 0.2), y)
        loss.backward()
        opt.step()
        return loss

    return ember.jit(step) if compiled else step


def test_activation_checkpointing_replays_masks_and_leaves_the_generator_moved_on():
    def make():
        ember.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 16), nn.Linear(16, 3))

    x, y = ember.randn(10, 6), ember.tensor(np.arange(10) % 3)
    plain = make()
    opt = ember.optim.SGD(plain.parameters(), lr=0.1)
    ember.manual_seed(4)
    expected = []
    for _ in range(3):  # the same step without checkpointing
        opt.zero_grad()
        loss = F.cross_entropy(F.dropout(plain[1](F.dropout(ember.tanh(plain[0](x)), 0.4)), 0.2), y)
        loss.backward()
        opt.step()
        expected.append(loss.item())
    after = ember.get_rng_state().tolist()
    for compiled in (False, True):
        step = _checkpointed_step(make(), compiled)
        ember.manual_seed(4)
        np.testing.assert_allclose([step(x, y).item() for _ in range(3)], expected, rtol=1e-5)
        assert ember.get_rng_state().tolist() == after  # not rewound by the recomputation


def test_vmap_randomness_different_draws_one_batch_of_numbers():
    x = ember.zeros(4, 3)
    ember.manual_seed(0)
    ours = vmap(lambda r: r + ember.rand(3), randomness="different")(x).numpy()
    after = ember.get_rng_state().tolist()
    ember.manual_seed(0)
    np.testing.assert_array_equal(ours, ember.rand(4, 3).numpy())  # row i is element i's draw
    assert ember.get_rng_state().tolist() == after
    ember.manual_seed(0)
    nested = vmap(vmap(lambda r: r + ember.randn(2), randomness="different"), randomness="different")(
        ember.zeros(3, 4, 2))
    ember.manual_seed(0)
    np.testing.assert_array_equal(nested.numpy(), ember.randn(3, 4, 2).numpy())


def test_vmap_randomness_same_shares_one_draw():
    ember.manual_seed(0)
    ours = vmap(lambda r: F.dropout(r, 0.5), randomness="same")(ember.ones(5, 8)).numpy()
    assert (ours == ours[0]).all() and (ours == 0).any() and (ours == 2).any()
    ember.manual_seed(0)
    np.testing.assert_array_equal(ours[0], F.dropout(ember.ones(8), 0.5).numpy())


def test_vmap_randomness_under_jit_matches_eager():
    def f(x):
        return vmap(lambda r: F.dropout(r, 0.5) + ember.rand(3), randomness="different")(x)

    x = ember.ones(4, 3)
    compiled = ember.jit(f)
    for _ in range(2):
        ember.manual_seed(1)
        ours = compiled(x).numpy()
        ember.manual_seed(1)
        np.testing.assert_array_equal(ours, f(x).numpy())


def test_vmap_randomness_refusals():
    with pytest.raises(TraceError, match="randomness='different'"):
        vmap(lambda r: r + ember.rand(3))(ember.zeros(2, 3))
    with pytest.raises(ember.errors.EmberError, match="randomness must be"):
        vmap(lambda r: r, randomness="sometimes")(ember.zeros(2, 3))
    weights = ember.ones(3, 4)
    with pytest.raises(TraceError, match="multinomial"):
        vmap(lambda r: ember.multinomial(weights[0], 2), randomness="different")(ember.zeros(2, 3))
    with pytest.raises(TraceError, match="multinomial"):  # weights that differ per element
        vmap(lambda w: ember.multinomial(w, 2), randomness="same")(weights)
    with pytest.raises(TraceError, match="in place"):
        vmap(lambda r: r + ember.zeros(3).uniform_(), randomness="different")(ember.zeros(2, 3))


@pytest.mark.parametrize("randomness", ["different", "same"])
def test_a_compiled_function_drawing_numbers_under_vmap_draws_as_vmap_says(randomness):
    from ember.func import vmap

    def f(v):
        return v + ember.randn(2)

    ember.manual_seed(0)
    want = vmap(f, randomness=randomness)(ember.ones(3, 2))
    ember.manual_seed(0)
    got = vmap(ember.jit(f), randomness=randomness)(ember.ones(3, 2))
    assert type(got) is ember.Tensor
    np.testing.assert_array_equal(got.numpy(), want.numpy())
