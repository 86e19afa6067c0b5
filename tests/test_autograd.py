"""Reverse mode, PyTorch-style: backward, grad, accumulation, hooks, grad modes, in-place safety,
custom functions, checkpointing and anomaly mode."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.errors import AnomalyError, AutogradError
from ember.utils.checkpoint import checkpoint

from helpers import assert_close, check_grad, torch


def test_backward_matches_torch_on_a_small_network(rng):
    x = rng.standard_normal((4, 3))
    w = rng.standard_normal((3, 5))
    b = rng.standard_normal(5)
    ex, ew, eb = (ember.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    (ember.tanh(ex @ ew + eb) ** 2).sum().backward()
    (torch.tanh(tx @ tw + tb) ** 2).sum().backward()
    for e, t in [(ex, tx), (ew, tw), (eb, tb)]:
        assert_close(e.grad, t.grad.numpy(), rtol=1e-10)


def test_grad_accumulates_across_backward_calls():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]


def test_second_backward_without_retain_graph_raises():
    x = ember.tensor([1.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(AutogradError, match="second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = ember.tensor([1.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad, [4 * np.e])


def test_create_graph_gives_third_derivatives():
    x = ember.tensor(0.7, dtype=ember.float64, requires_grad=True)
    y = ember.sin(x) * x
    (g1,) = ember.autograd.grad(y, x, create_graph=True)
    (g2,) = ember.autograd.grad(g1, x, create_graph=True)
    (g3,) = ember.autograd.grad(g2, x)
    v = 0.7
    assert_close(g1, np.cos(v) * v + np.sin(v))
    assert_close(g2, -np.sin(v) * v + 2 * np.cos(v))
    assert_close(g3, -np.cos(v) * v - 3 * np.sin(v))


def test_backward_of_nonscalar_needs_a_gradient():
    x = ember.ones(3, requires_grad=True)
    with pytest.raises(AutogradError, match="scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(ember.tensor([1.0, 2.0, 3.0]))
    assert x.grad.tolist() == [2.0, 4.0, 6.0]


def test_grad_with_nonleaf_inputs_and_allow_unused():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    u = ember.ones(2, requires_grad=True)
    gh, gu = ember.autograd.grad(y, [h, u], allow_unused=True)
    assert gh.tolist() == [4.0, 8.0] and gu is None
    assert x.grad is None
    with pytest.raises(AutogradError, match="not used"):
        ember.autograd.grad((x * 1).sum(), [u])


def test_backward_through_non_differentiable_op_raises():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = (x > 1.0)
    assert not y.requires_grad
    with pytest.raises(AutogradError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_enable_grad_and_inference_mode():
    x = ember.ones(2, requires_grad=True)
    with ember.no_grad():
        assert not (x * 2).requires_grad
        with ember.enable_grad():
            assert (x * 2).requires_grad
    with ember.inference_mode():
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad

    @ember.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    ember.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        ember.set_grad_enabled(True)


def test_detach_shares_data_and_cuts_the_graph():
    x = ember.ones(2, requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    assert d.tolist() == [2.0, 2.0]


def test_tensor_hooks_can_replace_gradients_and_be_removed():
    x = ember.ones(2, requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.tolist()))
    h = x * 3
    h.register_hook(lambda g: g * 10)
    h.sum().backward()
    assert seen == [[30.0, 30.0]] and x.grad.tolist() == [30.0, 30.0]
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    assert len(seen) == 1


def test_retain_grad_populates_nonleaf_grad():
    x = ember.ones(2, requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    assert h.grad.tolist() == [6.0, 6.0]


def test_inplace_modification_of_saved_tensor_raises_naming_the_op():
    x = ember.ones(3, requires_grad=True)
    h = x * 2
    y = h * h  # saves h
    h.add_(1.0)
    with pytest.raises(AutogradError) as info:
        y.sum().backward()
    assert "mul" in str(info.value) and "in-place" in str(info.value)


def test_inplace_on_leaf_requiring_grad_raises_but_works_under_no_grad():
    x = ember.ones(2, requires_grad=True)
    with pytest.raises(AutogradError, match="leaf"):
        x.add_(1.0)
    with ember.no_grad():
        x.add_(1.0)
    assert x.tolist() == [2.0, 2.0] and x._version == 1


def test_inplace_ops_are_differentiated_like_torch():
    a = np.array([0.5, -1.0, 2.0])
    x = ember.tensor(a, requires_grad=True)
    h = x * 2
    h.mul_(3.0)
    h.add_(x * x)
    h.exp_()
    h.sum().backward()
    tx = torch.tensor(a, requires_grad=True)
    th = tx * 2
    th.mul_(3.0)
    th.add_(tx * tx)
    th.exp_()
    th.sum().backward()
    assert_close(h.detach(), th.detach().numpy())
    assert_close(x.grad, tx.grad.numpy(), rtol=1e-10)


def test_inplace_with_itself_as_operand_uses_the_old_value():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    h.mul_(h)  # h <- h * h, both operands the value before the write
    h.sum().backward()
    assert h.tolist() == [1.0, 4.0] and x.grad.tolist() == [2.0, 4.0]


def test_views_share_the_version_counter():
    x = ember.zeros(2, 3)
    v = x.reshape(6)
    v.add_(1.0)
    assert x._version == 1 and x.tolist() == [[1.0] * 3] * 2


def test_requires_grad_only_on_float_tensors():
    with pytest.raises(ember.errors.DTypeError, match="floating point"):
        ember.tensor([1, 2]).requires_grad_()


def test_numpy_of_a_tensor_requiring_grad_raises():
    with pytest.raises(AutogradError, match="detach"):
        ember.ones(2, requires_grad=True).numpy()


class _Cube(ember.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x


def test_custom_function_forward_and_backward():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = _Cube.apply(x)
    assert y.tolist() == [1.0, 8.0] and y.grad_fn is not None
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 12.0]


def test_custom_function_backward_is_differentiable():
    x = ember.tensor([2.0], requires_grad=True)
    (g,) = ember.autograd.grad(_Cube.apply(x).sum(), x, create_graph=True)
    (gg,) = ember.autograd.grad(g.sum(), x)
    assert gg.tolist() == [12.0]


def test_custom_function_wrong_number_of_gradients_raises():
    class Bad(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    x = ember.ones(1, requires_grad=True)
    with pytest.raises(AutogradError, match="2 inputs"):
        Bad.apply(x, ember.ones(1)).sum().backward()


def test_checkpoint_matches_plain_backward_and_reaches_closed_over_parameters(rng):
    w = ember.tensor(rng.standard_normal((4, 4)), requires_grad=True)
    x_data = rng.standard_normal((3, 4))

    def block(t):
        return ember.tanh(t @ w) @ w

    x1 = ember.tensor(x_data, requires_grad=True)
    (block(x1) ** 2).sum().backward()
    gx, gw = x1.grad, w.grad
    w.grad = None
    x2 = ember.tensor(x_data, requires_grad=True)
    (checkpoint(block, x2) ** 2).sum().backward()
    assert_close(x2.grad, gx.numpy(), rtol=1e-12)
    assert_close(w.grad, gw.numpy(), rtol=1e-12)


def test_checkpoint_does_not_keep_intermediate_nodes():
    x = ember.ones(3, requires_grad=True)
    out = checkpoint(lambda t: ember.exp(ember.sin(t)) * 2, x)
    assert out.grad_fn.inputs == (x,)


def test_anomaly_mode_names_forward_op_and_inputs():
    x = ember.tensor([1.0, -1.0])
    with ember.autograd.detect_anomaly():
        with pytest.raises(AnomalyError) as info:
            ember.log(x - 1.0)
    msg = str(info.value)
    assert "log" in msg and "NaN" in msg and "min=" in msg and "test_autograd.py" in msg


def test_anomaly_mode_catches_nan_in_backward_and_names_the_forward_line():
    x = ember.tensor([0.0], requires_grad=True)
    with ember.autograd.detect_anomaly():
        y = ember.sqrt(x) * 0.0  # forward is finite; d sqrt / dx at 0 is inf, times 0 -> NaN
        with pytest.raises(AnomalyError) as info:
            y.sum().backward()
    msg = str(info.value)
    assert "backward" in msg and "sqrt" in msg and "y = ember.sqrt(x)" in msg


def test_anomaly_mode_global_switch():
    ember.autograd.set_detect_anomaly(True)
    try:
        assert ember.autograd.is_anomaly_enabled()
        with pytest.raises(AnomalyError):
            ember.tensor([0.0]) / 0.0
    finally:
        ember.autograd.set_detect_anomaly(False)
    assert not ember.autograd.is_anomaly_enabled()
    assert ember.isnan(ember.tensor([0.0]) / 0.0).tolist() == [True]


def test_inplace_on_an_input_whose_value_the_vjp_does_not_read_is_allowed_like_torch():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    y = h * 2  # mul's VJP for h reads only the constant 2
    h.add_(1.0)
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("make_view", [lambda t: t[0], lambda t: t[:, 1:], lambda t: t.reshape(6), lambda t: t.T],
                         ids=["int", "slice", "reshape", "transpose"])
def test_inplace_through_a_view_updates_the_base_graph_like_torch(make_view, rng):
    a = rng.standard_normal((2, 3))
    grads = []
    for lib in (ember, torch):
        x = lib.tensor(a, requires_grad=True)
        h = x * 2
        v = make_view(h)
        v.mul_(lib.tensor(3.0, dtype=lib.float64))
        (h * h).sum().backward()
        grads.append(np.asarray(x.grad))
    assert_close(grads[0], grads[1])


def test_inplace_through_a_view_of_a_leaf_requiring_grad_raises():
    x = ember.ones(2, 3, requires_grad=True)
    with pytest.raises(AutogradError, match="view of a leaf"):
        x[0].mul_(2.0)


def test_overwriting_with_a_constant_drops_the_dependency():
    x = ember.ones(2, requires_grad=True)
    h = x * 2
    h.copy_(ember.tensor([5.0, 6.0]))
    assert not h.requires_grad and h.grad_fn is None
    h2 = x * 2
    h2.copy_(x * 3)
    h2.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]



@pytest.mark.parametrize("write", ["copy_", "setitem"])
def test_copying_a_leaf_into_a_tensor_passes_the_gradient_back_as_in_torch(write, rng):
    """The write hands back the leaf itself; the tensor written must not take over the leaf's place in
    the graph (the leaf's gradient went to it and the leaf got none)."""
    a = rng.standard_normal(3)
    got, want = {}, {}
    for lib, out in ((ember, got), (torch, want)):
        x = lib.tensor(a, requires_grad=True)
        y = lib.zeros(3, dtype=x.dtype)
        if write == "copy_":
            y.copy_(x)
        else:
            y[...] = x
        y[0:1].mul_(x[0:1])  # and a write through a view of it does not reach the leaf
        (y * y).sum().backward()
        out["grad"], out["y"] = x.grad.numpy(), y.detach().numpy()
        out["x"] = x.detach().numpy()
    assert_close(got["grad"], want["grad"], rtol=1e-12)
    assert_close(got["y"], want["y"], rtol=1e-12)
    assert_close(got["x"], a, rtol=0)


_COMPLEX_LOSSES = {
    "mul-div": lambda a, b: ((a * b) / (b + 3)).abs().sum(),
    "exp-log": lambda a, b: (a.exp() + (b * b + 2).log()).abs().sum(),
    "trig": lambda a, b: (a.sin() * b.cos() + a.tanh()).abs().sum(),
    "sqrt-pow": lambda a, b: ((a * a + 4).sqrt() + b ** 2).abs().pow(2).sum(),
    "matmul": lambda a, b: (a @ b).abs().sum(),
    "conj": lambda a, b: (a @ b.conj() + a.conj()).abs().mean(),
    "reciprocal-square": lambda a, b: (a.reciprocal() + b.square()).abs().sum(),
    "vector-products": lambda a, b: (a[0] @ b @ a[1]).abs(),
}


@pytest.mark.parametrize("name", list(_COMPLEX_LOSSES))
def test_gradients_of_complex_inputs_follow_pytorchs_convention(name):
    """For a real loss L of complex z, PyTorch's gradient is dL/dx + i dL/dy: each elementwise VJP takes
    the conjugate derivative, a matrix product the conjugate transposes, conj conjugates the cotangent
    and abs passes sgn(z)."""
    rng = np.random.default_rng(0)
    z, w = (rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3)) for _ in range(2))
    loss = _COMPLEX_LOSSES[name]
    ours = [ember.tensor(v, requires_grad=True) for v in (z, w)]
    loss(*ours).backward()
    theirs = [torch.tensor(v, requires_grad=True) for v in (z, w)]
    loss(*theirs).backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.resolve_conj().numpy(), rtol=1e-10, atol=1e-12)
    tangents = [rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3)) for _ in range(2)]
    _, ours_t = ember.func.jvp(loss, tuple(map(ember.tensor, (z, w))), tuple(map(ember.tensor, tangents)))
    _, theirs_t = torch.func.jvp(loss, tuple(map(torch.tensor, (z, w))), tuple(map(torch.tensor, tangents)))
    np.testing.assert_allclose(ours_t.numpy(), theirs_t.numpy(), rtol=1e-10, atol=1e-12)
    x, y = rng.standard_normal((2, 3, 3))  # the same losses on real inputs: finite differences
    check_grad(lambda p, q: loss(p, q), [x, y], second_order=False)


def test_complex_parts_match_torch_with_their_gradients():
    rng = np.random.default_rng(1)
    z = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    a, b = rng.standard_normal(5), rng.standard_normal(5)
    for name in ("real", "imag", "angle"):
        np.testing.assert_allclose(getattr(ember, name)(ember.tensor(z)).numpy(),
                                   getattr(torch, name)(torch.from_numpy(z)).numpy(), rtol=1e-12)
        ours, theirs = ember.tensor(z, requires_grad=True), torch.tensor(z, requires_grad=True)
        (getattr(ember, name)(ours * ours.exp()) ** 2).sum().backward()
        (getattr(torch, name)(theirs * theirs.exp()) ** 2).sum().backward()
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.resolve_conj().numpy(), rtol=1e-10)
    real = np.array([-1.0, 0.0, 2.0, np.nan])
    np.testing.assert_array_equal(ember.angle(ember.tensor(real)).numpy(), torch.angle(torch.from_numpy(real)).numpy())
    np.testing.assert_allclose(ember.complex(ember.tensor(a), ember.tensor(b)).numpy(),
                               torch.complex(torch.from_numpy(a), torch.from_numpy(b)).numpy())
    np.testing.assert_allclose(ember.polar(ember.tensor(np.abs(a)), ember.tensor(b)).numpy(),
                               torch.polar(torch.from_numpy(np.abs(a)), torch.from_numpy(b)).numpy(), rtol=1e-12)
    pairs = np.stack([a, b], -1)
    np.testing.assert_array_equal(ember.view_as_real(ember.tensor(z)).numpy(),
                                  torch.view_as_real(torch.from_numpy(z)).numpy())
    np.testing.assert_array_equal(ember.view_as_complex(ember.tensor(pairs)).numpy(),
                                  torch.view_as_complex(torch.from_numpy(pairs)).numpy())
    with pytest.raises(ember.errors.DTypeError, match="imag"):
        ember.imag(ember.ones(2))


def test_assigning_data_follows_torch():
    ours, theirs = ember.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    new_ours, new_theirs = ember.tensor([1.0, 2.0, 3.0], dtype=ember.float64), torch.tensor([1.0, 2.0, 3.0],
                                                                                           dtype=torch.float64)
    ours.data, theirs.data = new_ours, new_theirs
    assert ours.shape == tuple(theirs.shape) == (3,) and ours.dtype is ember.float64
    assert ours.requires_grad and ours.is_leaf
    new_ours.add_(1)  # the data is shared, as in PyTorch
    new_theirs.add_(1)
    np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())
    (ours * ours).sum().backward()
    (theirs * theirs).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy())
    with pytest.raises(TypeError, match="Tensor"):
        ours.data = [1.0]
    with pytest.raises(ember.errors.AutogradError, match="requires grad"):
        ours.data = ember.tensor([1, 2])
