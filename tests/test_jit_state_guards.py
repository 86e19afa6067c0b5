"""ember.jit guards on state read from outside the arguments that plain numbers do not cover: NumPy
scalars, builtins, partials, bound methods, tuples and frozensets in globals and closure variables;
NumPy scalars, lists, dicts and partials held by a module; the attributes of the object a compiled
bound method belongs to. And tensors computed inside a compiled function never stay behind in a
module attribute or in Python state outside the function (``leaked_tracers``).

Each case compares the compiled function with eager execution over several calls (the first traces),
and checks that values left unchanged do not recompile."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember.compiler import guards
from ember.compiler.trace import GraphTracer
from ember.errors import TraceError

NP_SCALE = 1 / np.sqrt(4.0)  # np.float64
NP32 = np.float32(2.0)
PARTIAL = functools.partial(math.pow, 2.0)
BUILTIN = math.sqrt
WEIGHTS = (ember.tensor([1.0, 2.0]), ember.tensor([3.0, 4.0]))
KEYS = frozenset({"scale"})
ZERO = 0.0
NAN = float("nan")
RESULTS: dict = {}
LOG: list = []


class _Holder:
    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor
        self.v = None
        self.items: list = []

    def times(self, x):
        return x * self.factor

    def number(self):
        return self.factor


HOLDER = _Holder()
METHOD = _Holder(2.0).number


def _values(t):
    return np.asarray(t.detach().numpy())


def _attention(q, k):
    return (q @ k.t()) * NP_SCALE


def _scaled32(x):
    return x * NP32


def _with_partial(x):
    return x * PARTIAL(3.0)


def _with_builtin(x):
    return x * BUILTIN(4.0)


def _with_method(x):
    return x * METHOD()


def _weighted(x):
    return x * WEIGHTS[0] + WEIGHTS[1]


def _keyed(x):
    return x * (3.0 if "scale" in KEYS else 1.0)


def _reciprocal_of_zero(x):
    return x / (x * ZERO)


def _nan_filled(x):
    return ember.where(x > 0, x, NAN)


def _run(f, jf, args, calls=3):
    """Compiled and eager agree over `calls` calls; returns the compiled results."""
    out = []
    for _ in range(calls):
        want, got = f(*args), jf(*args)
        np.testing.assert_allclose(_values(got), _values(want), equal_nan=True)
        out.append(got)
    return out


@pytest.fixture(autouse=True)
def _reset_globals():
    global NP_SCALE, NP32, PARTIAL, BUILTIN, WEIGHTS, KEYS, ZERO, NAN, METHOD
    yield
    NP_SCALE, NP32 = 1 / np.sqrt(4.0), np.float32(2.0)
    PARTIAL, BUILTIN, METHOD = functools.partial(math.pow, 2.0), math.sqrt, _Holder(2.0).number
    WEIGHTS = (ember.tensor([1.0, 2.0]), ember.tensor([3.0, 4.0]))
    KEYS, ZERO, NAN = frozenset({"scale"}), 0.0, float("nan")
    RESULTS.clear()
    LOG.clear()
    HOLDER.v, HOLDER.items = None, []


# -- globals and closure variables ------------------------------------------------------------------


def test_numpy_float64_global():
    global NP_SCALE
    f = ember.jit(_attention)
    q = k = ember.ones(1, 4)
    assert [r.tolist() for r in _run(_attention, f, (q, k))] == [[[2.0]]] * 3
    assert f.compile_count == 1
    NP_SCALE = 1 / np.sqrt(16.0)
    assert [r.tolist() for r in _run(_attention, f, (q, k))] == [[[1.0]]] * 3
    assert f.compile_count == 2
    NP_SCALE = np.float64(0.5)  # another object with a value seen before: the first graph again
    _run(_attention, f, (q, k))
    assert f.compile_count == 2


def test_numpy_float32_global():
    global NP32
    f = ember.jit(_scaled32)
    x = ember.ones(2)
    _run(_scaled32, f, (x,))
    NP32 = np.float32(5.0)
    np.testing.assert_allclose(_values(_run(_scaled32, f, (x,))[-1]), [5, 5])
    NP32 = np.float64(5.0)  # the same value, another type: a graph of its own
    _run(_scaled32, f, (x,))
    assert f.compile_count == 3


def test_numpy_scalar_in_a_closure():
    scale = np.float64(2.0)
    f = ember.jit(lambda x: x * scale)
    x = ember.ones(2)
    for value in (2.0, 2.0, 3.0, 3.0, 2.0):
        scale = np.float64(value)
        np.testing.assert_allclose(_values(f(x)), [value, value])
    assert f.compile_count == 2


def test_partial_builtin_and_bound_method_globals():
    global PARTIAL, BUILTIN, METHOD
    cases = [(_with_partial, lambda: functools.partial(math.pow, 3.0)),
             (_with_builtin, lambda: math.exp),
             (_with_method, lambda: _Holder(5.0).number)]
    x = ember.ones(2)
    for fn, swap in cases:
        f = ember.jit(fn)
        _run(fn, f, (x,))
        assert f.compile_count == 1
        new = swap()
        if fn is _with_partial:
            PARTIAL = new
        elif fn is _with_builtin:
            BUILTIN = new
        else:
            METHOD = new
        _run(fn, f, (x,))
        assert f.compile_count == 2, fn.__name__


def test_partial_with_equal_parts_does_not_recompile():
    global PARTIAL
    f = ember.jit(_with_partial)
    x = ember.ones(2)
    for _ in range(3):
        PARTIAL = functools.partial(math.pow, 2.0)  # a new object each time, the same function and args
        _run(_with_partial, f, (x,), calls=1)
    assert f.compile_count == 1


def test_bound_method_of_another_object_recompiles():
    global METHOD
    a, b = _Holder(2.0), _Holder(7.0)
    f = ember.jit(_with_method)
    x = ember.ones(1)
    for holder in (a, a, b, b, a):
        METHOD = holder.number  # a new bound-method object on every access
        _run(_with_method, f, (x,), calls=1)
    assert f.compile_count == 2


def test_tuple_of_tensors_global():
    global WEIGHTS
    f = ember.jit(_weighted)
    x = ember.ones(2)
    _run(_weighted, f, (x,))
    WEIGHTS[0].mul_(2)  # in place: the graph reads the tensor at each run
    _run(_weighted, f, (x,))
    assert f.compile_count == 1
    WEIGHTS = (ember.tensor([5.0, 5.0]), WEIGHTS[1])
    np.testing.assert_allclose(_values(_run(_weighted, f, (x,))[-1]), [8, 9])
    assert f.compile_count == 2


def test_frozenset_global():
    global KEYS
    f = ember.jit(_keyed)
    x = ember.ones(2)
    _run(_keyed, f, (x,))
    KEYS = frozenset({"scale"})  # equal: no new graph
    _run(_keyed, f, (x,))
    assert f.compile_count == 1
    KEYS = frozenset({"shift"})
    np.testing.assert_allclose(_values(_run(_keyed, f, (x,))[-1]), [1, 1])
    assert f.compile_count == 2


@pytest.mark.parametrize("zero", [0.0, np.float64(0.0)], ids=["float", "float64"])
def test_signed_zero_does_not_share_a_graph(zero):
    global ZERO
    ZERO = zero
    f = ember.jit(_reciprocal_of_zero)
    x = ember.ones(2)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert _values(_run(_reciprocal_of_zero, f, (x,))[-1]).tolist() == [math.inf] * 2
        ZERO = -zero
        assert _values(_run(_reciprocal_of_zero, f, (x,))[-1]).tolist() == [-math.inf] * 2
    assert f.compile_count == 2


@pytest.mark.parametrize("make", [lambda: float("nan"), lambda: np.float64("nan")], ids=["float", "float64"])
def test_nan_does_not_recompile_on_every_call(make):
    global NAN
    f = ember.jit(_nan_filled)
    x = ember.tensor([1.0, -1.0])
    for _ in range(4):
        NAN = make()  # a new NaN object each call
        _run(_nan_filled, f, (x,), calls=1)
    assert f.compile_count == 1


def test_explain_names_a_numpy_scalar(capsys):
    global NP_SCALE
    f = ember.jit(_attention, explain=True)
    q = ember.ones(1, 4)
    f(q, q)
    NP_SCALE = np.float64(0.25)
    f(q, q)
    err = capsys.readouterr().err
    assert "global variable 'NP_SCALE'" in err and "0.5" in err and "0.25" in err


def test_guard_keys():
    """The keys behind the guards: equal values share one, what a graph may differ on does not."""
    key = guards.value_key
    assert key(0.0) != key(-0.0) and key(np.float32(0.0)) != key(np.float32(-0.0))
    assert key(float("nan")) == key(float("nan")) and key(np.float64("nan")) == key(np.float64("nan"))
    assert key(1) != key(1.0) != key(True) and key((1,)) != key((1.0,))
    assert key(np.float32(0.5)) != key(np.float64(0.5)) != key(0.5)
    assert key([1, 2]) is None and key({"a": 1}) is None  # mutable: only as module attributes
    assert key([1, 2], mutable=True) != key([1, 3], mutable=True)
    assert key({"a": [1.0]}, mutable=True) == key({"a": [1.0]}, mutable=True)
    t = ember.ones(1)
    assert key((t, 1)) == key((t, 1)) and key((t, 1)) != key((ember.ones(1), 1))
    big = list(range(1000))  # past the size limit: identity and length
    assert key(big, mutable=True) != key(list(range(1000)), mutable=True)
    assert key(big, mutable=True) == key(big, mutable=True)
    big.append(0)
    assert key(big, mutable=True) != key(list(range(1000)), mutable=True)
    loop: list = [1]
    loop.append(loop)  # refers to itself: the size limit ends the walk
    assert key(loop, mutable=True) == key(loop, mutable=True)
    assert key(object()) is None and key(_Holder) is None


# -- module attributes ------------------------------------------------------------------------------


class _Configured(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = np.float64(2.0)
        self.sizes = [2, 3]
        self.weights = {"a": 1.0, "b": 0.5}
        self.act = functools.partial(ember.clamp, min=0.0)
        self.label = "net"

    def forward(self, x):
        y = x * self.scale + self.weights["a"] * x.sum() - self.weights["b"]
        return self.act(y).reshape(*self.sizes) if self.sizes[0] * self.sizes[1] == 6 else y


@pytest.mark.parametrize("change", ["numpy", "list", "list in place", "dict in place", "partial"])
def test_module_attributes_recompile_when_changed(change):
    m = _Configured()
    f = ember.jit(m)
    x = ember.arange(6, dtype=ember.float32) - 2
    _run(m, f, (x,))
    m.label = "net"  # unchanged values: no new graph
    m.sizes = [2, 3]
    _run(m, f, (x,))
    assert f.compile_count == 1
    if change == "numpy":
        m.scale = np.float64(-3.0)
    elif change == "list":
        m.sizes = [3, 2]
    elif change == "list in place":
        m.sizes[0], m.sizes[1] = 1, 6
    elif change == "dict in place":
        m.weights["b"] = 4.0
    else:
        m.act = functools.partial(ember.clamp, min=-1.0)
    _run(m, f, (x,))
    assert f.compile_count == 2


def test_module_attributes_past_the_size_limit_count_by_identity_and_length():
    class Table(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = [1.0] * 1000

        def forward(self, x):
            return x * len(self.table)

    m = Table()
    f = ember.jit(m)
    x = ember.ones(1)
    _run(m, f, (x,))
    m.table.append(1.0)
    _run(m, f, (x,))
    assert f.compile_count == 2


def test_module_signature_ignores_plain_objects_and_distinguishes_numbers():
    m = nn.Linear(2, 2)
    before = m._jit_signature()
    m.note = _Holder()  # a plain object: not part of the key (as documented)
    assert m._jit_signature() == before
    m.flag = 1
    one = m._jit_signature()
    m.flag = 1.0
    assert m._jit_signature() != one
    m.flag = -0.0
    neg = m._jit_signature()
    m.flag = 0.0
    assert m._jit_signature() != neg


# -- the object a compiled bound method belongs to ------------------------------------------------------


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        ember.manual_seed(0)
        self.lin = nn.Linear(2, 2)
        self.temperature = 1.0

    def forward(self, x):
        return self.lin(x) / self.temperature


def test_compiled_forward_guards_the_module_attributes():
    m = _Net()
    fwd = ember.jit(m.forward)
    x = ember.ones(1, 2)
    _run(m, fwd, (x,))
    assert fwd.compile_count == 1
    m.temperature = 10.0
    _run(m, fwd, (x,))
    assert fwd.compile_count == 2
    m.lin.bias.data.mul_(0)  # an in-place update of a parameter does not recompile
    m.temperature = 1.0
    _run(m, fwd, (x,))
    assert fwd.compile_count == 2


class _Stepping(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.k = 1.0

    def forward(self, x):
        self.k = self.k + 1  # a Python setting the forward changes itself
        return x * self.k


@pytest.mark.parametrize("bound", [False, True], ids=["module", "forward"])
def test_forward_that_changes_a_setting_of_its_module_never_reuses_a_stale_graph(bound):
    m, e = _Stepping(), _Stepping()
    f = ember.jit(m.forward if bound else m)
    for _ in range(3):
        np.testing.assert_allclose(_values(f(ember.ones(1))), _values(e(ember.ones(1))))
    assert f.compile_count == 3  # each call finds another value: traced again (or run eagerly past the cache)


def test_compiled_method_of_a_plain_object_guards_the_attributes_it_reads():
    h = _Holder(2.0)
    f = ember.jit(h.times)
    x = ember.ones(2)
    _run(h.times, f, (x,))
    h.factor = np.float32(3.0)
    np.testing.assert_allclose(_values(_run(h.times, f, (x,))[-1]), [3, 3])
    assert f.compile_count == 2
    h.items = [1]  # an attribute the method does not read
    h.v = 5
    _run(h.times, f, (x,))
    assert f.compile_count == 2


class _Stepper:
    """A training-loop object: its step counter changes on every call, outside the compiled method."""

    def __init__(self) -> None:
        self.step = 0
        self.history: list = []
        self.lr = 0.5
        self.calls = 0

    @property
    def rate(self):
        return self.lr

    def _scale(self):
        return self.rate * 2

    def train_step(self, x):
        self.calls += 1  # assigned by the method itself: not guarded (a compiled run executes no Python)
        return x * self._scale()


def test_compiled_method_ignores_attributes_it_does_not_read():
    s, e = _Stepper(), _Stepper()
    f = ember.jit(s.train_step)
    x = ember.ones(2)
    for _ in range(5):
        np.testing.assert_allclose(_values(f(x)), _values(e.train_step(x)))
        s.step += 1
        s.history.append({"loss": 1.0})
    assert f.compile_count == 1
    s.lr = e.lr = 0.25  # read through the helper method it calls
    for _ in range(3):
        np.testing.assert_allclose(_values(f(x)), _values(e.train_step(x)))
    assert f.compile_count == 2


def test_explain_names_the_attribute_of_the_bound_object(capsys):
    s = _Stepper()
    f = ember.jit(s.train_step, explain=True)
    f(ember.ones(1))
    s.lr = 0.25
    f(ember.ones(1))
    err = capsys.readouterr().err
    assert "of the _Stepper object the compiled method is bound to" in err and "lr: 0.5 -> 0.25" in err


def test_bound_slots():
    m, h = _Net(), _Holder()
    cache: dict = {}
    assert guards.bound_slots(m.forward, cache) == [m]
    assert guards.bound_slots(functools.partial(m.forward), cache) == [m]
    [slot] = guards.bound_slots(h.times, cache)
    assert guards.bound_slots(h.times, cache) == [slot]  # one slot per object and method
    assert slot.names == ("factor",)
    sig = slot._jit_signature()
    h.items = [2]
    assert slot._jit_signature() == sig
    h.factor = 3.0
    assert slot._jit_signature() != sig and "factor" in slot.describe()
    assert guards.bound_slots(_attention, cache) == [] and guards.bound_slots(m, cache) == []
    assert guards.bound_slots(math.sqrt, cache) == [] and guards.bound_slots(_Holder.times, cache) == []
    [slot] = guards.bound_slots(_Stepper().train_step, cache)
    assert slot.names == ("lr",)  # calls is assigned, _scale a method; lr is read by _scale


# -- tensors computed inside a compiled function kept in a module attribute ---------------------------


class _Ema(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.avg = ember.zeros(2)  # a plain attribute, not a buffer

    def forward(self, x):
        self.avg = 0.5 * self.avg + x
        return self.avg * 1


def test_plain_tensor_attribute_is_written_like_a_buffer():
    eager, compiled = _Ema(), _Ema()
    held = compiled.avg
    f = ember.jit(compiled)
    for i in range(4):
        x = ember.full((2,), float(i))
        np.testing.assert_allclose(_values(f(x)), _values(eager(x)))
        assert type(compiled.avg) is ember.Tensor and compiled.avg is held
        np.testing.assert_allclose(_values(compiled.avg), _values(eager.avg))
    assert f.compile_count == 1


def test_plain_tensor_attribute_through_a_compiled_forward():
    eager, compiled = _Ema(), _Ema()
    f = ember.jit(compiled.forward)
    for _ in range(3):
        np.testing.assert_allclose(_values(f(ember.ones(2))), _values(eager(ember.ones(2))))
        assert type(compiled.avg) is ember.Tensor
    assert f.compile_count == 1


class _Logged(nn.Module):
    def __init__(self, last=None) -> None:
        super().__init__()
        self.last_attn = last

    def forward(self, x):
        a = (x * 2).softmax(-1)
        self.last_attn = a.detach()  # kept for logging
        return a * x


def test_detached_value_kept_for_logging():
    m = _Logged()
    f = ember.jit(m)
    with pytest.raises(TraceError, match="attribute 'last_attn' of _Logged.*register_buffer"):
        f(ember.ones(3))
    assert m.last_attn is None  # nothing traced left behind
    # holding a tensor of that shape already: each run writes the new value into it
    eager, compiled = _Logged(ember.zeros(3)), _Logged(ember.zeros(3))
    f = ember.jit(compiled)
    for i in range(3):
        x = ember.arange(3, dtype=ember.float32) * i
        np.testing.assert_allclose(_values(f(x)), _values(eager(x)), rtol=1e-6)
        assert type(compiled.last_attn) is ember.Tensor
        np.testing.assert_allclose(_values(compiled.last_attn), _values(eager.last_attn), rtol=1e-6)
    assert f.compile_count == 1


def test_plain_tensor_attribute_of_another_shape_is_refused():
    m = _Logged(ember.zeros(2))
    with pytest.raises(TraceError, match="attribute 'last_attn'.*shape"):
        ember.jit(m)(ember.ones(3))
    assert type(m.last_attn) is ember.Tensor and m.last_attn.shape == (2,)


def test_plain_attributes_outside_a_trace_are_assigned_as_before():
    m = _Ema()
    m.avg = ember.ones(5)  # eagerly: any tensor
    assert m.avg.shape == (5,)
    m.avg = ember.zeros(2)
    np.testing.assert_allclose(_values(m(ember.ones(2))), [1, 1])  # eager forward: a new tensor each call
    assert m.avg.shape == (2,)


# -- tensors left in Python state outside the function (guards.leaked_tracers) ------------------------

_LEAK = object()  # stands for a value of the trace in the direct tests


def _ours(v):
    return v is _LEAK


def _stores_in_dict(x):
    RESULTS["y"] = x
    return x


def _appends(x):
    LOG.append(x)
    return x


def _sets_attribute(x):
    HOLDER.v = x
    return x


def _appends_to_attribute(x):
    HOLDER.items.append(x)
    return x


def _reads_only(x):
    return x * len(RESULTS) + len(LOG) + HOLDER.factor


@pytest.mark.parametrize("fn, where", [(_stores_in_dict, "global dict RESULTS['y']"),
                                       (_appends, "global list LOG[0]"),
                                       (_sets_attribute, "global _Holder HOLDER.v"),
                                       (_appends_to_attribute, "global _Holder HOLDER.items[0]")])
def test_leaked_tracers_in_globals(fn, where):
    assert guards.leaked_tracers(fn, (_LEAK,), {}, _ours) is None
    fn(_LEAK)
    assert guards.leaked_tracers(fn, (_LEAK,), {}, _ours) == where
    assert guards.leaked_tracers(_reads_only, (_LEAK,), {}, _ours) is not None  # it reads the same globals


def test_leaked_tracers_in_closures_arguments_and_the_bound_object():
    cache: dict = {}

    def memo(x):
        cache["x"] = x
        return x

    assert guards.leaked_tracers(memo, (_LEAK,), {}, _ours) is None
    memo(_LEAK)
    assert guards.leaked_tracers(memo, (_LEAK,), {}, _ours) == "closure variable (dict) cache['x'] of " + \
        memo.__qualname__

    def keep(obj, x):
        obj.v = x
        return x

    holder = _Holder()
    args = ([_LEAK, {"a": _LEAK}], holder)  # the traced arguments themselves are not leaks
    assert guards.leaked_tracers(keep, args, {"x": _LEAK}, _ours) is None
    keep(holder, _LEAK)
    assert guards.leaked_tracers(keep, args, {}, _ours) == "argument args[1].v"
    assert guards.leaked_tracers(keep, ([holder],), {}, _ours) == "argument args[0][0].v"
    assert guards.leaked_tracers(keep, (), {"o": holder}, _ours) == "argument kwargs['o'].v"

    h = _Holder()
    h.items.append(_LEAK)
    assert guards.leaked_tracers(h.times, (), {}, _ours) == "self.items[0] (_Holder the compiled method is bound to)"


def test_leaked_tracers_in_a_compiled_module():
    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.outputs: list = []

        def forward(self, x):
            self.outputs.append(x)
            return x

    m = Recorder()
    assert guards.leaked_tracers(m, (_LEAK,), {}, _ours) is None
    m(_LEAK)
    assert guards.leaked_tracers(m, (_LEAK,), {}, _ours) == "self.outputs[0] (Recorder compiled)"
    assert guards.leaked_tracers(m.forward, (), {}, _ours) == \
        "self.outputs[0] (Recorder the compiled method is bound to)"


def test_leaked_tracers_after_a_real_trace():
    """Inside a compiled function, after the store: the scan finds the trace's value in the global dict
    (the compiled function then refuses it); removing it again leaves nothing to find."""
    found = []

    def step(x):
        y = x * 2
        RESULTS["y"] = y
        is_ours = lambda v: isinstance(v, GraphTracer)  # noqa: E731
        found.append(guards.leaked_tracers(step, (x,), {}, is_ours))
        del RESULTS["y"]
        found.append(guards.leaked_tracers(step, (x,), {}, is_ours))
        return y

    ember.jit(step)(ember.ones(2))
    assert found == ["global dict RESULTS['y']", None]
    assert RESULTS == {}


def test_leak_scan_is_bounded():
    big = {i: i for i in range(100_000)}

    def reads_big(x):
        return x * len(big)

    big[99_999] = _LEAK  # past the scan's limit: not looked at
    assert guards.leaked_tracers(reads_big, (), {}, _ours) is None
    big[0] = _LEAK
    assert guards.leaked_tracers(reads_big, (), {}, _ours) == "closure variable (dict) big[0] of " + \
        reads_big.__qualname__


def test_leaked_tracers_deep_in_nested_state():
    class Node:
        pass

    root = Node()
    root.child = Node()
    root.child.log = {"steps": [[]]}

    def deep(x):
        root.child.log["steps"][0].append(x)
        return x

    assert guards.leaked_tracers(deep, (_LEAK,), {}, _ours) is None
    deep(_LEAK)  # five levels below the closure variable
    assert guards.leaked_tracers(deep, (_LEAK,), {}, _ours) == \
        f"closure variable (Node) root.child.log['steps'][0][0] of {deep.__qualname__}"


def test_leak_scan_looks_near_before_deep():
    """A deep branch that alone would use up the scan's budget does not hide a leak one level down."""
    wide = [{i: i for i in range(4_000)} for _ in range(4)]
    state = {"a_deep": wide, "z_leak": _LEAK}

    def reads(x):
        return x * len(state)

    assert guards.leaked_tracers(reads, (), {}, _ours) == "closure variable (dict) state['z_leak'] of " + \
        reads.__qualname__


def test_a_compiled_step_that_stores_a_traced_value_deep_raises_naming_where():
    class Node:
        pass

    root = Node()
    root.inner = Node()
    root.inner.history = {"loss": []}

    def step(x):
        y = (x * 2).sum()
        root.inner.history["loss"].append(y)
        return y

    with pytest.raises(TraceError, match=r"root\.inner\.history\['loss'\]\[0\]"):
        ember.jit(step)(ember.ones(3))


def test_guard_check_cost_stays_small():
    """The module signature is computed for every module on every call: no slower than a few
    microseconds for a typical layer."""
    import timeit

    m = nn.Linear(4, 4)
    m.sizes = [2, 3]
    m.scale = np.float64(0.5)
    per_call = min(timeit.repeat(m._jit_signature, number=2000, repeat=3)) / 2000
    assert per_call < 50e-6, per_call
