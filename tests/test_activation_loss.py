"""Activations and losses against PyTorch: values, gradients (incl. the kinks), reductions, errors."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

from helpers import assert_close, check_grad, check_vmap, torch

TF = None if torch is None else torch.nn.functional

# name, positional args, smooth (second-order check), tolerance vs torch
ACTIVATIONS = [
    ("leaky_relu", (0.1,), False, 1e-12), ("elu", (1.3,), True, 1e-12), ("celu", (0.7,), True, 1e-7),
    ("selu", (), True, 1e-12), ("mish", (), True, 1e-12), ("hardswish", (), False, 1e-12),
    ("hardsigmoid", (), False, 1e-7), ("hardtanh", (-0.5, 2.0), False, 1e-12), ("relu6", (), False, 1e-12),
    ("softsign", (), True, 1e-12), ("tanhshrink", (), True, 1e-12), ("logsigmoid", (), True, 1e-12),
    ("threshold", (0.5, -2.0), False, 1e-12), ("softshrink", (0.5,), False, 1e-12),
    ("hardshrink", (0.5,), False, 1e-12),
]


@pytest.mark.parametrize("name,args,smooth,tol", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_values_and_gradients_match_torch(name, args, smooth, tol):
    x = np.concatenate([np.linspace(-7, 7, 57), [-3.0, 3.0, 0.0, -0.5, 0.5, 6.0, -1.0, 1.0]])
    xe, xt = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ye, yt = getattr(F, name)(xe, *args), getattr(TF, name)(xt, *args)
    assert_close(ye, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    ye.sum().backward()
    yt.sum().backward()
    assert_close(xe.grad, xt.grad.numpy(), rtol=tol, atol=tol)  # kinks included
    if smooth:
        check_grad(lambda v: getattr(F, name)(v, *args), [np.array([-1.3, -0.2, 0.4, 2.1])])


def test_activations_keep_float32_and_extremes():
    x = ember.tensor([-1000.0, 1000.0])
    assert F.logsigmoid(x).tolist() == [-1000.0, 0.0]
    assert F.mish(x).tolist() == [-0.0, 1000.0]
    assert F.elu(ember.tensor([1.0])).dtype is ember.float32


@pytest.mark.parametrize("num,shape", [(1, (2, 3, 4)), (3, (2, 3, 4)), (3, (5, 3)), (1, (4,))])
def test_prelu_matches_torch(num, shape, rng):
    mod, tmod = nn.PReLU(num, init=0.3).double(), torch.nn.PReLU(num, init=0.3).double()
    assert list(mod.state_dict()) == list(tmod.state_dict()) == ["weight"]
    w = rng.standard_normal(num)
    with ember.no_grad():
        mod.weight.copy_(ember.tensor(w))
    with torch.no_grad():
        tmod.weight.copy_(torch.tensor(w))
    x = rng.standard_normal(shape)
    xe, xt = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ye, yt = mod(xe), tmod(xt)
    assert_close(ye, yt.detach().numpy(), rtol=1e-12)
    ye.sum().backward()
    yt.sum().backward()
    assert_close(xe.grad, xt.grad.numpy(), rtol=1e-12)
    assert_close(mod.weight.grad, tmod.weight.grad.numpy(), rtol=1e-12)


def test_prelu_errors():
    with pytest.raises(ember.errors.ShapeError, match="prelu: weight has 3 slopes but the input has 4 channels"):
        F.prelu(ember.zeros(2, 4), ember.ones(3))


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_glu_softmin_match_torch(dim, rng):
    x = rng.standard_normal((4, 6))
    check = [(F.glu(ember.tensor(x), dim), TF.glu(torch.tensor(x), dim)),
             (F.softmin(ember.tensor(x), dim), TF.softmin(torch.tensor(x), dim))]
    for got, want in check:
        assert_close(got, want.numpy(), rtol=1e-12)
    check_grad(lambda v: F.glu(v, dim), [rng.standard_normal((2, 4))])


def test_glu_odd_size_error():
    with pytest.raises(ember.errors.ShapeError, match="glu: halving dimension -1 needs an even size, got 3"):
        F.glu(ember.zeros(2, 3))


def test_activation_modules_forward_functionals(rng):
    x = rng.standard_normal((4, 4))
    pairs = [(nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (nn.ELU(0.5), torch.nn.ELU(0.5)),
             (nn.CELU(2.0), torch.nn.CELU(2.0)), (nn.SELU(), torch.nn.SELU()), (nn.Mish(), torch.nn.Mish()),
             (nn.Softplus(2.0, 1.0), torch.nn.Softplus(2.0, 1.0)), (nn.Hardswish(), torch.nn.Hardswish()),
             (nn.Hardsigmoid(), torch.nn.Hardsigmoid()), (nn.Hardtanh(-2, 2), torch.nn.Hardtanh(-2, 2)),
             (nn.ReLU6(), torch.nn.ReLU6()), (nn.Softsign(), torch.nn.Softsign()),
             (nn.Tanhshrink(), torch.nn.Tanhshrink()), (nn.LogSigmoid(), torch.nn.LogSigmoid()),
             (nn.GLU(0), torch.nn.GLU(0)), (nn.Softmin(1), torch.nn.Softmin(1)),
             (nn.Threshold(0.1, 20.0), torch.nn.Threshold(0.1, 20.0)), (nn.Softshrink(0.3), torch.nn.Softshrink(0.3)),
             (nn.Hardshrink(0.3), torch.nn.Hardshrink(0.3))]
    for mod, tmod in pairs:
        assert_close(mod(ember.tensor(x)), tmod(torch.tensor(x)).numpy(), rtol=1e-12, msg=repr(mod))
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Hardtanh()) == "Hardtanh(min_val=-1.0, max_val=1.0)"


def test_activation_vmap(rng):
    check_vmap(lambda v: F.leaky_relu(v, 0.2), [rng.standard_normal((3, 4))], [0])
    check_vmap(lambda v, w: F.prelu(v, w), [rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 4))], [0, 0])


# -- losses ---------------------------------------------------------------------------------------
def _pair(shape, rng, kind="real"):
    x = rng.standard_normal(shape)
    if kind == "prob":
        return rng.uniform(0.05, 0.95, shape), rng.uniform(0, 1, shape)
    if kind == "sign":
        return x, np.where(rng.standard_normal(shape) > 0, 1.0, -1.0)
    if kind == "logprob":
        return np.log(rng.dirichlet(np.ones(shape[-1]), shape[:-1])), rng.dirichlet(np.ones(shape[-1]), shape[:-1])
    return x, rng.standard_normal(shape)


# name, kwargs, input kind
LOSSES = [
    ("l1_loss", {}, "real"), ("smooth_l1_loss", {"beta": 0.7}, "real"), ("smooth_l1_loss", {"beta": 0.0}, "real"),
    ("huber_loss", {"delta": 0.6}, "real"), ("binary_cross_entropy", {}, "prob"),
    ("binary_cross_entropy_with_logits", {}, "prob"), ("kl_div", {}, "logprob"),
    ("kl_div", {"log_target": True}, "logprob"), ("soft_margin_loss", {}, "sign"),
    ("multilabel_soft_margin_loss", {}, "prob"),
]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name,kwargs,kind", LOSSES, ids=[f"{n}-{k}" for n, k, _ in LOSSES])
def test_pointwise_losses_match_torch(name, kwargs, kind, reduction, rng):
    x, t = _pair((4, 5), rng, kind)
    if kwargs.get("log_target"):
        t = np.log(t)
    xe, xt = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    le = getattr(F, name)(xe, ember.tensor(t), reduction=reduction, **kwargs)
    lt = getattr(TF, name)(xt, torch.tensor(t), reduction=reduction, **kwargs)
    assert_close(le, lt.detach().numpy(), rtol=1e-11, atol=1e-12)
    g = np.cos(np.arange(lt.numel())).reshape(lt.shape)
    (le * ember.tensor(g)).sum().backward()
    (lt * torch.tensor(g)).sum().backward()
    assert_close(xe.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_kl_div_batchmean_and_zero_targets(rng):
    x, t = _pair((3, 4), rng, "logprob")
    t[0, 1] = 0.0
    got = F.kl_div(ember.tensor(x), ember.tensor(t), reduction="batchmean")
    want = TF.kl_div(torch.tensor(x), torch.tensor(t), reduction="batchmean")
    assert_close(got, want.numpy(), rtol=1e-12)
    assert_close(nn.KLDivLoss(reduction="batchmean")(ember.tensor(x), ember.tensor(t)), want.numpy(), rtol=1e-12)


def test_bce_weights_pos_weight_and_clamp(rng):
    x, t = _pair((4, 3), rng, "prob")
    w, pw = rng.uniform(0.5, 2, (4, 3)), rng.uniform(0.5, 2, 3)
    logits = rng.standard_normal((4, 3)) * 30  # large logits stay finite
    xe, xt = ember.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    le = nn.BCEWithLogitsLoss(ember.tensor(w), pos_weight=ember.tensor(pw))(xe, ember.tensor(t))
    lt = torch.nn.BCEWithLogitsLoss(torch.tensor(w), pos_weight=torch.tensor(pw))(xt, torch.tensor(t))
    assert_close(le, lt.detach().numpy(), rtol=1e-12)
    le.backward()
    lt.backward()
    assert_close(xe.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    got = nn.BCELoss(ember.tensor(w), reduction="sum")(ember.tensor(x), ember.tensor(t))
    assert_close(got, torch.nn.BCELoss(torch.tensor(w), reduction="sum")(torch.tensor(x), torch.tensor(t)).numpy(),
                 rtol=1e-12)
    edge = F.binary_cross_entropy(ember.tensor([0.0, 1.0]), ember.tensor([1.0, 0.0]), reduction="none")
    assert edge.tolist() == [100.0, 100.0]  # log clamped at -100 as in PyTorch


def test_smooth_losses_second_order(rng):
    x, t = rng.standard_normal(5), rng.standard_normal(5)
    check_grad(lambda a: F.huber_loss(a, ember.tensor(t), delta=0.5, reduction="sum"), [x])
    check_grad(lambda a: F.binary_cross_entropy_with_logits(a, ember.tensor(np.abs(t) / 3)), [x])
    check_grad(lambda a, b: F.cosine_embedding_loss(a, b, ember.tensor([1.0, -1.0]), margin=-0.5),
               [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_pair_losses_match_torch(reduction, margin, rng):
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    y = np.array([1.0, -1.0, 1.0, -1.0, -1.0])
    cases = [(F.cosine_embedding_loss, TF.cosine_embedding_loss, (a, b, y)),
             (F.margin_ranking_loss, TF.margin_ranking_loss, (a[:, 0], b[:, 0], y))]
    for fe, ft, arrays in cases:
        es = [ember.tensor(v, requires_grad=i < 2) for i, v in enumerate(arrays)]
        ts = [torch.tensor(v, requires_grad=i < 2) for i, v in enumerate(arrays)]
        le, lt = fe(*es, margin=margin, reduction=reduction), ft(*ts, margin=margin, reduction=reduction)
        assert_close(le, lt.detach().numpy(), rtol=1e-12, atol=1e-14)
        le.sum().backward()
        lt.sum().backward()
        for e, t in zip(es[:2], ts[:2]):
            assert_close(e.grad, t.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kwargs", [{}, {"p": 1.0}, {"swap": True, "margin": 2.0}, {"reduction": "none"},
                                    {"reduction": "sum", "eps": 1e-3}])
def test_triplet_margin_loss_matches_torch(kwargs, rng):
    arrays = [rng.standard_normal((6, 4)) for _ in range(3)]
    es = [ember.tensor(v, requires_grad=True) for v in arrays]
    ts = [torch.tensor(v, requires_grad=True) for v in arrays]
    le, lt = nn.TripletMarginLoss(**kwargs)(*es), torch.nn.TripletMarginLoss(**kwargs)(*ts)
    assert_close(le, lt.detach().numpy(), rtol=1e-12)
    le.sum().backward()
    lt.sum().backward()
    for e, t in zip(es, ts):
        assert_close(e.grad, t.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_loss_modules_and_state(rng):
    x, t = _pair((3, 4), rng, "prob")
    w = rng.uniform(size=4)
    mod = nn.MultiLabelSoftMarginLoss(ember.tensor(w))
    assert list(mod.state_dict()) == ["weight"]
    want = torch.nn.MultiLabelSoftMarginLoss(torch.tensor(w))(torch.tensor(x), torch.tensor(t))
    assert_close(mod(ember.tensor(x), ember.tensor(t)), want.numpy(), rtol=1e-12)
    for mod, tmod in [(nn.L1Loss(), torch.nn.L1Loss()), (nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5)),
                      (nn.HuberLoss(delta=0.5), torch.nn.HuberLoss(delta=0.5)),
                      (nn.SoftMarginLoss(), torch.nn.SoftMarginLoss())]:
        assert_close(mod(ember.tensor(x), ember.tensor(t)), tmod(torch.tensor(x), torch.tensor(t)).numpy(), rtol=1e-12)


def test_loss_errors():
    with pytest.raises(ember.errors.ShapeError, match=r"l1_loss: input shape \(2, 3\) and target shape \(3,\)"):
        F.l1_loss(ember.zeros(2, 3), ember.zeros(3))
    with pytest.raises(ValueError, match="reduction must be"):
        F.huber_loss(ember.zeros(2), ember.zeros(2), reduction="avg")
    with pytest.raises(ember.errors.ShapeError, match="triplet_margin_loss: anchor, positive and negative"):
        F.triplet_margin_loss(ember.zeros(2, 3), ember.zeros(3), ember.zeros(2, 3))
    with pytest.raises(ember.errors.ShapeError, match=r"cosine_embedding_loss: target shape \(3,\)"):
        F.cosine_embedding_loss(ember.zeros(2, 3), ember.zeros(2, 3), ember.ones(3))


# -- CTC ------------------------------------------------------------------------------------------
def _ctc_case(rng):
    steps, batch, classes = 10, 4, 5
    logits = rng.standard_normal((steps, batch, classes))
    targets = rng.integers(1, classes, (batch, 4))
    targets[1, 1] = targets[1, 0]  # a repeated label needs a blank between
    return logits, targets, np.array([10, 9, 6, 10]), np.array([4, 3, 2, 0])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("concatenated", [False, True])
def test_ctc_loss_matches_torch_through_log_softmax(reduction, concatenated, rng):
    logits, targets, in_len, tg_len = _ctc_case(rng)
    if concatenated:
        targets = np.concatenate([targets[i, :n] for i, n in enumerate(tg_len)])
    le, lt = ember.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    got = nn.CTCLoss(reduction=reduction)(F.log_softmax(le, 2), ember.tensor(targets), ember.tensor(in_len),
                                          ember.tensor(tg_len))
    want = TF.ctc_loss(torch.log_softmax(lt, 2), torch.tensor(targets), torch.tensor(in_len),
                       torch.tensor(tg_len), reduction=reduction)
    assert_close(got, want.detach().numpy(), rtol=1e-12)
    got.sum().backward()
    want.sum().backward()
    assert_close(le.grad, lt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_ctc_loss_gradient_is_exact_for_log_probs(rng):
    logits, targets, _, _ = _ctc_case(rng)
    lp = torch.log_softmax(torch.tensor(logits[:5, :2]), 2).numpy()
    check_grad(lambda v: F.ctc_loss(v, ember.tensor(targets[:2, :2]), [5, 4], [2, 1], reduction="none"), [lp],
               second_order=False)


def test_ctc_zero_infinity_blank_and_unbatched(rng):
    logits, targets, in_len, tg_len = _ctc_case(rng)
    in_len = np.array([3, 9, 6, 10])  # the first alignment is impossible
    le, lt = ember.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    got = F.ctc_loss(F.log_softmax(le, 2), ember.tensor(targets - 1), in_len, tg_len, blank=4, zero_infinity=True,
                     reduction="sum")
    want = TF.ctc_loss(torch.log_softmax(lt, 2), torch.tensor(targets - 1), torch.tensor(in_len),
                       torch.tensor(tg_len), blank=4, zero_infinity=True, reduction="sum")
    assert_close(got, want.detach().numpy(), rtol=1e-12)
    got.backward()
    want.backward()
    assert_close(le.grad, lt.grad.numpy(), rtol=1e-9, atol=1e-12)
    inf = F.ctc_loss(F.log_softmax(ember.tensor(logits), 2), ember.tensor(targets), in_len, tg_len, reduction="none")
    assert np.isinf(inf.numpy()[0])
    single = F.ctc_loss(F.log_softmax(ember.tensor(logits[:, 0]), 1), ember.tensor(targets[0]), [10], [4])
    want1 = TF.ctc_loss(torch.log_softmax(torch.tensor(logits[:, 0]), 1), torch.tensor(targets[0]), [10], [4])
    assert_close(single, want1.numpy(), rtol=1e-12)


def test_ctc_errors(rng):
    logits, targets, in_len, tg_len = _ctc_case(rng)
    lp = ember.tensor(logits)
    with pytest.raises(ember.errors.ShapeError, match=r"ctc_loss: input lengths \[11"):
        F.ctc_loss(lp, ember.tensor(targets), [11, 1, 1, 1], tg_len)
    with pytest.raises(ember.errors.ShapeError, match="ctc_loss: target_lengths must hold one length per batch"):
        F.ctc_loss(lp, ember.tensor(targets), in_len, [1, 2])
    with pytest.raises(ember.errors.ShapeError, match=r"ctc_loss: log_probs must be \(T, N, C\)"):
        F.ctc_loss(ember.zeros(2, 3, 4, 5), ember.tensor(targets), in_len, tg_len)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_methods_match_torch(name):
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    for dim, dtype in [(-1, None), (0, ember.float64)]:
        ours = getattr(ember.tensor(x), name)(dim, dtype=dtype)
        theirs = getattr(torch.from_numpy(x), name)(dim, dtype=None if dtype is None else torch.float64)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    jitted = ember.jit(ember.func.vmap(lambda r: getattr(r, name)(-1)))
    np.testing.assert_allclose(jitted(ember.tensor(x)).numpy(), getattr(torch.from_numpy(x), name)(-1).numpy(),
                               rtol=1e-6, atol=1e-7)
