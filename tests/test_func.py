"""Function transforms and their compositions, checked against torch.func and finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.errors import ShapeError, TraceError
from ember.func import custom_vjp, grad, hessian, jacfwd, jacrev, jvp, value_and_grad, vjp, vmap

from helpers import assert_close, np_of, numerical_grad, t64, torch


def f_scalar(x):
    return (ember.sin(x) * x ** 2).sum()


def tf_scalar(x):
    return (torch.sin(x) * x ** 2).sum()


def test_grad_matches_torch_func(rng):
    x = rng.standard_normal(5)
    assert_close(grad(f_scalar)(t64(x)), torch.func.grad(tf_scalar)(torch.tensor(x)).numpy(), rtol=1e-12)


def test_grad_of_grad_matches_finite_differences():
    x = 0.3
    d2 = grad(grad(lambda s: ember.sin(s) * s ** 2))(t64(x))
    want = numerical_grad(lambda a: float(np_of(grad(lambda s: ember.sin(s) * s ** 2)(t64(a[0])))),
                          [np.array(x)])[0]
    assert_close(d2, want, rtol=1e-6)


def test_grad_argnums_has_aux_and_value_and_grad():
    def f(a, b):
        return (a * b).sum(), {"prod": a * b}

    a, b = t64([1.0, 2.0]), t64([3.0, 4.0])
    (ga, gb), aux = grad(f, argnums=(0, 1), has_aux=True)(a, b)
    assert ga.tolist() == [3.0, 4.0] and gb.tolist() == [1.0, 2.0] and aux["prod"].tolist() == [3.0, 8.0]
    (value, aux2), g = value_and_grad(f, argnums=1, has_aux=True)(a, b)
    assert float(value) == 11.0 and g.tolist() == [1.0, 2.0]


def test_grad_over_pytree_arguments():
    params = {"w": t64([1.0, 2.0]), "b": t64(0.5)}
    g = grad(lambda p, x: ((p["w"] * x).sum() + p["b"]) ** 2)(params, t64([1.0, 1.0]))
    assert g["w"].tolist() == [7.0, 7.0] and float(g["b"]) == 7.0


def test_grad_requires_a_scalar_output():
    with pytest.raises(ShapeError, match="scalar"):
        grad(lambda x: x * 2)(t64([1.0, 2.0]))


def test_grad_of_constant_function_is_zero():
    assert grad(lambda x: t64(3.0))(t64([1.0, 2.0])).tolist() == [0.0, 0.0]


def test_nested_grad_has_no_perturbation_confusion():
    # d/dx [ x * d/dy (x + y) ] = 1
    out = grad(lambda x: x * grad(lambda y: x + y)(t64(2.0)))(t64(5.0))
    assert float(out) == 1.0


def test_vjp_and_jvp_match_torch(rng):
    x = rng.standard_normal((3, 4))
    v = rng.standard_normal((3, 4))

    def f(t):
        return ember.tanh(t) * t

    out, fn = vjp(f, t64(x))
    (ct,) = fn(t64(v))
    _, tfn = torch.func.vjp(lambda t: torch.tanh(t) * t, torch.tensor(x))
    assert_close(ct, tfn(torch.tensor(v))[0].numpy(), rtol=1e-12)
    _, tan = jvp(f, (t64(x),), (t64(v),))
    _, ttan = torch.func.jvp(lambda t: torch.tanh(t) * t, (torch.tensor(x),), (torch.tensor(v),))
    assert_close(tan, ttan.numpy(), rtol=1e-12)


def test_jvp_shape_mismatch_raises():
    with pytest.raises(ShapeError, match="tangent shape"):
        jvp(ember.sin, (t64([1.0, 2.0]),), (t64([1.0]),))


def test_vmap_of_vmap_matches_loops(rng):
    x = rng.standard_normal((2, 3, 4))
    y = rng.standard_normal(4)
    out = vmap(vmap(lambda a, b: (a * b).sum(), in_dims=(0, None)), in_dims=(0, None))(t64(x), t64(y))
    assert_close(out, (x * y).sum(-1), rtol=1e-12)


def test_vmap_in_dims_out_dims_and_unbatched_outputs(rng):
    x = rng.standard_normal((3, 5))
    out = vmap(lambda r: ember.exp(r), in_dims=1, out_dims=1)(t64(x))
    assert_close(out, np.exp(x), rtol=1e-12)
    const = vmap(lambda r: t64([1.0, 2.0]))(t64(x))
    assert tuple(const.shape) == (3, 2)


def test_vmap_errors():
    with pytest.raises(ShapeError, match="different sizes"):
        vmap(lambda a, b: a + b)(t64(np.ones((2, 3))), t64(np.ones((3, 3))))
    with pytest.raises(TraceError, match="vmap"):
        vmap(lambda a: a * 2 if float(a.sum()) > 0 else a)(t64(np.ones((2, 3))))


def test_per_sample_gradients_with_vmap_of_grad_match_a_loop(rng):
    w = rng.standard_normal((4, 3))
    xs = rng.standard_normal((6, 4))
    ys = rng.standard_normal((6, 3))

    def loss(w, x, y):
        return ((ember.tanh(x @ w) - y) ** 2).sum()

    per = vmap(grad(loss), in_dims=(None, 0, 0))(t64(w), t64(xs), t64(ys))
    loop = np.stack([np_of(grad(loss)(t64(w), t64(x), t64(y))) for x, y in zip(xs, ys)])
    assert_close(per, loop, rtol=1e-12)
    tper = torch.func.vmap(torch.func.grad(lambda w, x, y: ((torch.tanh(x @ w) - y) ** 2).sum()),
                           in_dims=(None, 0, 0))(torch.tensor(w), torch.tensor(xs), torch.tensor(ys))
    assert_close(per, tper.numpy(), rtol=1e-10)


def test_hessian_vector_product_with_jvp_of_grad(rng):
    x = rng.standard_normal(4)
    v = rng.standard_normal(4)
    _, hvp = jvp(grad(f_scalar), (t64(x),), (t64(v),))
    h = torch.func.hessian(tf_scalar)(torch.tensor(x)).numpy()
    assert_close(hvp, h @ v, rtol=1e-10)


def test_jacobians_and_hessian_match_torch(rng):
    x = rng.standard_normal(3)

    def f(t):
        return ember.sin(t) * t.sum()

    def tf(t):
        return torch.sin(t) * t.sum()

    want = torch.func.jacrev(tf)(torch.tensor(x)).numpy()
    assert_close(jacrev(f)(t64(x)), want, rtol=1e-12)
    assert_close(jacfwd(f)(t64(x)), want, rtol=1e-12)
    assert_close(hessian(f_scalar)(t64(x)), torch.func.hessian(tf_scalar)(torch.tensor(x)).numpy(), rtol=1e-10)


def test_jacrev_of_matrix_function_has_out_shape_plus_in_shape(rng):
    a = rng.standard_normal((2, 3))
    jac = jacrev(lambda m: m @ t64(np.ones((3, 4))))(t64(a))
    assert tuple(jac.shape) == (2, 4, 2, 3)


def test_grad_of_a_function_that_uses_backward_internally():
    def f(x):
        w = t64([1.0, 2.0]).requires_grad_()
        inner = (w * x).sum() ** 2
        inner.backward()
        return (w.grad * x).sum()  # w.grad = 2 (w.x) x  -> f = 2 (w.x) |x|^2

    x = np.array([0.5, -1.5])
    got = grad(f)(t64(x))
    want = numerical_grad(lambda a: float(np_of(f(t64(a[0])))), [x.copy()])[0]
    assert_close(got, want, rtol=1e-6)


def test_grad_composes_with_pytorch_style_backward_outside():
    x = t64([1.0, 2.0]).requires_grad_()
    g = grad(lambda t: (t ** 3).sum())(x)  # 3 x^2, still differentiable w.r.t. x
    g.sum().backward()
    assert x.grad.tolist() == [6.0, 12.0]


def test_custom_vjp_uses_the_given_backward():
    @custom_vjp
    def clip_gradient(x):
        return x * 1.0

    clip_gradient.defvjp(lambda x: (x * 1.0, None), lambda res, g: (ember.clamp(g, -1.0, 1.0),))
    x = t64([1.0, 2.0]).requires_grad_()
    (clip_gradient(x) * 5.0).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
    assert grad(lambda t: (clip_gradient(t) * 5.0).sum())(t64([3.0])).tolist() == [1.0]


def test_vmap_of_jvp_gives_jacobian_columns(rng):
    x = rng.standard_normal(3)
    cols = vmap(lambda t: jvp(ember.sin, (t64(x),), (t,))[1])(t64(np.eye(3)))
    assert_close(cols, np.diag(np.cos(x)), rtol=1e-12)


# -- in-place writes under grad: a tensor the function captured vs one it made ------------------------------
def _write_captured(lib, buf):
    def f(x):
        buf[...] = x * 2
        return (x * x).sum()
    return f


def _add_into_captured_view(lib, buf):
    def f(x):
        buf[:3].add_(x)
        return x.sum()
    return f


def _copy_inside_inner_grad(lib, buf):
    g = torch.func.grad if lib is torch else grad

    def f(x):
        def inner(z):
            buf.copy_(z * 3)
            return (z ** 3).sum()
        return g(inner)(x).sum()
    return f


@pytest.mark.parametrize("make", [_write_captured, _add_into_captured_view, _copy_inside_inner_grad],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_differentiated_value_into_a_captured_tensor_is_refused_as_in_torch(make):
    buf = ember.zeros(4 if make is _add_into_captured_view else 3)
    with pytest.raises(TraceError, match="captured by a transform") as info:
        grad(make(ember, buf))(t64(np.array([1.0, 2.0, 3.0])))
    assert "test_func.py" in str(info.value)  # the user's line
    assert_close(buf, np.zeros(buf.shape))  # left as it was
    assert not buf.requires_grad and buf.grad_fn is None  # holds no graph of the transform
    tbuf = torch.zeros(tuple(buf.shape), dtype=torch.float64)
    with pytest.raises(RuntimeError, match="captured"):
        torch.func.grad(make(torch, tbuf))(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def _own_tensor(lib):
    def f(x):
        y = lib.zeros(4, dtype=x.dtype)
        y[:3] = x * 2
        y[:2].mul_(x[1:])
        y[3] = x[0] ** 3
        return (y * y).sum()
    return f


def test_in_place_writes_into_a_tensor_the_function_made_match_torch(rng):
    x = rng.standard_normal(3)
    assert_close(grad(_own_tensor(ember))(t64(x)),
                 torch.func.grad(_own_tensor(torch))(torch.tensor(x)).numpy(), rtol=1e-12)
    for transform, peer in [(hessian, torch.func.hessian),
                            (lambda f: jacrev(jacfwd(f)), lambda f: torch.func.jacrev(torch.func.jacfwd(f))),
                            (lambda f: jacrev(jacrev(f)), lambda f: torch.func.jacrev(torch.func.jacrev(f)))]:
        assert_close(transform(_own_tensor(ember))(t64(x)), peer(_own_tensor(torch))(torch.tensor(x)).numpy(),
                     rtol=1e-12)


def test_a_value_the_transform_does_not_differentiate_may_go_into_a_captured_tensor(rng):
    """Unlike torch.func (which refuses any in-place write into a captured tensor), a value cut from the
    tape or computed from tensors outside the transform carries nothing of it and is written, as in
    eager mode."""
    x, w = rng.standard_normal(3), rng.standard_normal(3)
    buf = ember.zeros(3, dtype=ember.float64)
    outside = t64(w).requires_grad_(True)

    def f(v):
        buf[...] = (v * 2).detach()
        buf.add_((outside * 3).detach())
        return (v * buf).sum()

    assert_close(grad(f)(t64(x)), 2 * x + 3 * w, rtol=1e-12)
    assert_close(buf, 2 * x + 3 * w, rtol=1e-12)
    assert not buf.requires_grad


def test_a_hessian_vector_product_through_in_place_writes_matches_torch(rng):
    """grad inside jvp, the function filling a tensor it made in place (one of them through a view)."""
    x, t = rng.standard_normal(3), rng.standard_normal(3)
    got = jvp(grad(_own_tensor(ember)), (t64(x),), (t64(t),))[1]
    want = torch.func.jvp(torch.func.grad(_own_tensor(torch)), (torch.tensor(x),), (torch.tensor(t),))[1]
    assert_close(got, want.numpy(), rtol=1e-12)
