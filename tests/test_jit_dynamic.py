"""Dynamic dimensions of ``ember.jit`` that Python code uses in ways the fitted rules do not see: every
new size is traced once and checked, and a size where the function traces otherwise gets its own graph,
so results always match eager mode."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.compiler import dynamic
from ember.errors import DynamicDimsWarning, RecompileLimitWarning, TraceError

from helpers import assert_close, np_of

# (a first size whose neighbour halves otherwise, as x[:n//2] at n = 8 and 7, cannot be fitted: that
# warns, once per function, and is tested on its own below)
pytestmark = pytest.mark.filterwarnings("ignore::ember.errors.DynamicDimsWarning")


def _clamped(x):
    return x * max(x.shape[0], 5)  # linear above 5, constant below


def _branch(x):
    return x * 2 if x.shape[0] > 5 else x * 3


def _halves(x):
    return x[: x.shape[0] // 2] * 2


def _counted(x):
    return x.sum() * 1, x.shape[0]  # a Python int returned as it is


def _from_size(x):
    return x * ember.tensor(float(x.shape[0] % 3))  # a constant made from the size, same shape each time


@pytest.mark.parametrize("fn", [_clamped, _branch, _halves, _from_size])
@pytest.mark.parametrize("first", [3, 9, 11])
def test_non_linear_uses_of_a_dynamic_size_match_eager_mode(fn, first):
    jf = ember.jit(fn, dynamic_dims={0: [0]})
    for n in [first, 2, 10, 4, first, 7, 13, 6, 2]:
        x = ember.arange(n).float() + 1
        assert_close(jf(x), np_of(fn(x)))


def test_a_size_used_where_no_rule_can_follow_it_warns_and_compiles_per_size():
    jf = ember.jit(_halves, dynamic_dims={0: {0: "batch"}})
    with pytest.warns(DynamicDimsWarning, match="not proportional"):
        jf(ember.ones(8))
    for n in (8, 6, 7, 6):
        x = ember.arange(n).float()
        assert_close(jf(x), np_of(_halves(x)))
    assert jf.compile_count == 2  # 7 takes x[:3] as 6 does: the graph compiled at 6 serves it


def test_a_returned_size_follows_the_call():
    jf = ember.jit(_counted, dynamic_dims={0: [0]})
    for n in [6, 9, 6, 2]:
        total, size = jf(ember.ones(n))
        assert size == n and float(total) == n


def test_each_new_size_is_traced_once_and_sizes_that_agree_share_the_graph():
    traced = []

    def f(x):
        traced.append(x.shape[0])
        return (x * 2).mean()  # its 1/N follows the size: one graph for every size

    jf = ember.jit(f, dynamic_dims={0: [0]})
    for n in [8, 9, 8, 9, 12, 12, 8]:
        assert_close(jf(ember.ones(n)), 2.0)
    assert jf.compile_count == 1
    assert traced == [8, 7, 9, 12]  # the first size and its neighbour, then each new size once


def test_sizes_on_the_other_side_of_a_branch_share_a_second_graph():
    jf = ember.jit(_branch, dynamic_dims={0: [0]})
    for n in [8, 9, 3, 4, 2, 3, 10]:
        x = ember.ones(n)
        assert_close(jf(x), np_of(_branch(x)))
    assert jf.compile_count == 2


def test_explain_names_the_size_and_the_node_that_differs(capsys):
    jf = ember.jit(_clamped, dynamic_dims={0: {0: "batch"}}, explain=True)
    jf(ember.ones(8))
    jf(ember.ones(3))
    err = capsys.readouterr().err
    assert "batch=3" in err and "mul" in err and "test_jit_dynamic.py" in err


def test_strict_raises_only_where_a_size_traces_otherwise():
    jf = ember.jit(_clamped, dynamic_dims={0: [0]}, strict=True)
    jf(ember.ones(8))
    jf(ember.ones(12))  # agrees with the dynamic graph
    with pytest.raises(TraceError, match="strict"):
        jf(ember.ones(3))


def test_graphs_for_single_sizes_count_toward_the_cache_size():
    jf = ember.jit(_counted, dynamic_dims={0: [0]}, cache_size=2)
    with pytest.warns(RecompileLimitWarning):
        for n in [6, 9, 4, 3]:
            total, size = jf(ember.ones(n))
            assert size == n and float(total) == n
    assert jf.compile_count == 2 and jf.eager_calls == 2


def test_check_compares_the_graph_of_a_new_size_with_eager_mode():
    jf = ember.jit(_halves, dynamic_dims={0: [0]}, check=True)
    for n in [9, 4, 12]:
        x = ember.arange(n).float()
        assert_close(jf(x), np_of(_halves(x)))


def test_a_training_step_with_a_size_dependent_branch_matches_eager():
    def run(compiled):
        ember.manual_seed(0)
        model = ember.nn.Linear(3, 2)
        opt = ember.optim.SGD(model.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            out = model(x)
            loss = out.pow(2).mean() if x.shape[0] > 4 else out.abs().mean()
            loss.backward()
            opt.step()
            return loss

        fn = ember.jit(step, dynamic_dims={0: [0]}) if compiled else step
        ember.manual_seed(1)
        data = [ember.randn(n, 3) for n in (6, 8, 3, 7, 2, 6)]
        return [float(fn(x)) for x in data], model.weight.detach().numpy().copy()

    (eager_losses, eager_w), (jit_losses, jit_w) = run(False), run(True)
    np.testing.assert_allclose(jit_losses, eager_losses, rtol=1e-5)
    np.testing.assert_allclose(jit_w, eager_w, rtol=1e-5, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(2, 14), min_size=1, max_size=6),
       st.sampled_from([_clamped, _branch, _halves, _from_size]))
def test_any_sequence_of_sizes_matches_eager_mode(sizes, fn):
    jf = ember.jit(fn, dynamic_dims={0: [0]})
    for n in sizes:
        x = ember.arange(n).float() - 3
        assert_close(jf(x), np_of(fn(x)))


def test_skeletons_tell_apart_wiring_literals_and_bodies_but_not_shapes():
    def graph_of(fn, n):
        return ember.jit(fn).lower(ember.ones(n, 3)).graph

    a, b = dynamic.skeleton(graph_of(lambda x: x * 2 + x, 4)), dynamic.skeleton(graph_of(lambda x: x * 2 + x, 6))
    assert a == b  # the same computation at another size
    assert a != dynamic.skeleton(graph_of(lambda x: x * 3 + x, 4))  # another literal
    assert dynamic.skeleton(graph_of(lambda x: x.sum(0), 4)) != dynamic.skeleton(graph_of(lambda x: x.sum(1), 4))
    body = dynamic.skeleton(graph_of(lambda x: ember.cond(x.sum() > 0, lambda v: v * 2, lambda v: v, x), 4))
    other = dynamic.skeleton(graph_of(lambda x: ember.cond(x.sum() > 0, lambda v: v * 5, lambda v: v, x), 4))
    assert body != other  # a literal inside a branch
