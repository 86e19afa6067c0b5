"""Convolution and pooling: values and all gradients against PyTorch, higher order, vmap, layers, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.errors import DTypeError, ShapeError
from ember.func import grad, vmap

from helpers import assert_close, check_grad, check_jvp, check_vmap, torch

TF = torch.nn.functional
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")
RNG = np.random.default_rng(0)


def _randn(*shape):
    return RNG.standard_normal(shape)


def _compare(ember_fn, torch_fn, arrays, tol=1e-10):
    """Output and the gradient of every input, in float64, for a random cotangent."""
    ours = [ember.tensor(a).requires_grad_() for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, want = ember_fn(*ours), torch_fn(*theirs)
    assert tuple(out.shape) == tuple(want.shape)
    assert_close(out, want.detach().numpy(), rtol=tol, atol=tol)
    cot = _randn(*want.shape)
    (out * ember.tensor(cot)).sum().backward()
    (want * torch.tensor(cot)).sum().backward()
    for a, b in zip(ours, theirs):
        assert_close(a.grad, b.grad.numpy(), rtol=tol, atol=tol)


# -- convolution -------------------------------------------------------------------------------------
CONV_CASES = [  # (nd, input shape, weight shape, keyword arguments)
    (1, (2, 3, 9), (4, 3, 3), {}),
    (1, (2, 4, 11), (6, 2, 3), dict(stride=2, padding=2, dilation=2, groups=2)),
    (1, (3, 10), (2, 3, 4), dict(padding="same")),  # unbatched input, even kernel: asymmetric padding
    (2, (2, 3, 7, 6), (5, 3, 3, 2), dict(stride=2, padding=1)),
    (2, (2, 3, 7, 8), (4, 3, 2, 3), dict(padding="same", dilation=(2, 1))),
    (2, (2, 3, 7, 8), (4, 3, 3, 3), dict(padding="valid", stride=(1, 3))),
    (2, (2, 4, 6, 6), (6, 2, 3, 3), dict(groups=2, padding=(1, 0))),
    (2, (2, 4, 6, 5), (8, 1, 3, 3), dict(groups=4, padding=1)),  # depthwise with multiplier 2
    (3, (2, 2, 5, 4, 6), (3, 2, 2, 3, 2), dict(stride=(1, 2, 2), padding=1)),
    (3, (1, 4, 5, 5, 5), (2, 2, 3, 3, 3), dict(padding="same", groups=2, dilation=(1, 2, 1))),
]


@pytest.mark.parametrize("nd,xs,ws,kw", CONV_CASES)
def test_conv_matches_torch_values_and_all_gradients(nd, xs, ws, kw):
    ours, theirs = getattr(F, f"conv{nd}d"), getattr(TF, f"conv{nd}d")
    _compare(lambda x, w, b: ours(x, w, b, **kw), lambda x, w, b: theirs(x, w, b, **kw),
             [_randn(*xs), _randn(*ws), _randn(ws[0])])


CONVT_CASES = [
    (1, (2, 4, 5), (4, 3, 3), dict(stride=2, output_padding=1)),
    (1, (2, 4, 6), (4, 1, 3), dict(stride=3, padding=1, groups=2, dilation=2, output_padding=2)),
    (2, (2, 4, 3, 4), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=2)),
    (2, (2, 3, 4, 3), (3, 2, 2, 3), dict(stride=(1, 2), dilation=(2, 1), output_padding=(1, 0))),
    (3, (1, 2, 3, 2, 3), (2, 2, 2, 3, 2), dict(stride=2, padding=(0, 1, 0))),
]


@pytest.mark.parametrize("nd,xs,ws,kw", CONVT_CASES)
def test_conv_transpose_matches_torch(nd, xs, ws, kw):
    ours, theirs = getattr(F, f"conv_transpose{nd}d"), getattr(TF, f"conv_transpose{nd}d")
    out_channels = ws[1] * kw.get("groups", 1)
    _compare(lambda x, w, b: ours(x, w, b, **kw), lambda x, w, b: theirs(x, w, b, **kw),
             [_randn(*xs), _randn(*ws), _randn(out_channels)])


def test_conv2d_float32_matches_torch():
    x, w = _randn(4, 3, 9, 9).astype(np.float32), _randn(8, 3, 3, 3).astype(np.float32)
    out = F.conv2d(ember.tensor(x), ember.tensor(w), padding=1)
    assert out.dtype is ember.float32
    assert_close(out, TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy(), rtol=1e-4, atol=1e-4)


def test_conv_second_order_and_jvp():
    x, w = _randn(1, 2, 4, 3), _randn(2, 1, 2, 2)
    check_grad(lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=1, groups=2) ** 2, [x, w])
    check_grad(lambda x, w: F.conv_transpose1d(x, w, stride=2, output_padding=1) ** 2,
               [_randn(1, 2, 3), _randn(2, 1, 2)])
    check_jvp(lambda x, w: F.conv2d(x, w, padding="same", groups=2), [x, w])


@pytest.mark.parametrize("in_dims", [(0, None), (None, 0), (1, 0)])
def test_conv2d_vmap_matches_loop(in_dims):
    x = _randn(3, 2, 4, 5, 5) if in_dims[0] == 0 else _randn(2, 3, 4, 5, 5) if in_dims[0] == 1 else \
        _randn(2, 4, 5, 5)
    w = _randn(3, 6, 2, 3, 3) if in_dims[1] == 0 else _randn(6, 2, 3, 3)
    check_vmap(lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=2), [x, w], in_dims)


def test_per_example_weight_gradients_with_vmap_of_grad():
    xs, w = _randn(4, 1, 2, 5, 5), _randn(3, 2, 3, 3)

    def loss(w, x):
        return (F.conv2d(x, w, padding=1) ** 2).sum()

    got = vmap(grad(loss), in_dims=(None, 0))(ember.tensor(w), ember.tensor(xs))
    for i in range(4):
        wt = torch.tensor(w, requires_grad=True)
        (TF.conv2d(torch.tensor(xs[i]), wt, padding=1) ** 2).sum().backward()
        assert_close(got[i], wt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=(3, 2), dilation=(1, 2), padding=1,
                                                                stride=(2, 1))])
def test_unfold_and_fold_match_torch(kw):
    _compare(lambda x: F.unfold(x, **kw), lambda x: TF.unfold(x, **kw), [_randn(2, 3, 7, 6)])
    blocks = TF.unfold(torch.zeros(1, 3, 7, 6), **kw).shape
    _compare(lambda c: F.fold(c, (7, 6), **kw), lambda c: TF.fold(c, (7, 6), **kw), [_randn(2, *blocks[1:])])


# -- pooling -----------------------------------------------------------------------------------------
MAX_CASES = [
    (1, (2, 3, 9), dict(kernel_size=3)),
    (1, (2, 3, 10), dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    (2, (2, 3, 7, 6), dict(kernel_size=2)),
    (2, (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (2, (3, 8, 7), dict(kernel_size=(2, 3), stride=1, dilation=(2, 1))),  # unbatched, overlapping
    (3, (1, 2, 5, 6, 5), dict(kernel_size=2, stride=(2, 1, 2), ceil_mode=True)),
]


@pytest.mark.parametrize("nd,xs,kw", MAX_CASES)
def test_max_pool_matches_torch_with_indices(nd, xs, kw):
    ours, theirs = getattr(F, f"max_pool{nd}d"), getattr(TF, f"max_pool{nd}d")
    _compare(lambda x: ours(x, **kw), lambda x: theirs(x, **kw), [_randn(*xs)])
    x = _randn(*xs)
    _, idx = ours(ember.tensor(x), return_indices=True, **kw)
    _, want = theirs(torch.tensor(x), return_indices=True, **kw)
    assert idx.dtype is ember.int64
    np.testing.assert_array_equal(idx.numpy(), want.numpy())


def test_max_pool_ties_send_gradient_to_first_maximum():
    x = np.round(_randn(2, 2, 6, 6))  # many ties
    _compare(lambda x: F.max_pool2d(x, 3, stride=2, padding=1), lambda x: TF.max_pool2d(x, 3, stride=2, padding=1),
             [x])


def test_max_pool_propagates_nan_and_indexes_it_like_torch():
    x = _randn(1, 2, 4, 4)
    x[0, 0, 1, 1] = x[0, 1, 2, 3] = np.nan
    out, idx = F.max_pool2d(ember.tensor(x), 2, return_indices=True)
    want, want_idx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(out.numpy(), want.numpy())
    np.testing.assert_array_equal(idx.numpy(), want_idx.numpy())


AVG_CASES = [
    (1, (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    (1, (2, 3, 10), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
    (2, (2, 3, 7, 6), dict(kernel_size=2)),
    (2, (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (2, (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    (2, (2, 3, 7, 6), dict(kernel_size=(3, 2), padding=(1, 0), divisor_override=5)),
    (3, (1, 2, 5, 6, 5), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
]


@pytest.mark.parametrize("nd,xs,kw", AVG_CASES)
def test_avg_pool_matches_torch(nd, xs, kw):
    ours, theirs = getattr(F, f"avg_pool{nd}d"), getattr(TF, f"avg_pool{nd}d")
    _compare(lambda x: ours(x, **kw), lambda x: theirs(x, **kw), [_randn(*xs)])


ADAPTIVE_CASES = [(1, (2, 3, 10), 3), (1, (2, 3, 5), 7), (2, (2, 3, 7, 9), (3, 4)), (2, (3, 5, 6), (None, 4)),
                  (3, (1, 2, 5, 7, 6), (2, 3, 4))]


@pytest.mark.parametrize("nd,xs,size", ADAPTIVE_CASES)
def test_adaptive_pools_match_torch_on_uneven_bins(nd, xs, size):
    avg, tavg = getattr(F, f"adaptive_avg_pool{nd}d"), getattr(TF, f"adaptive_avg_pool{nd}d")
    _compare(lambda x: avg(x, size), lambda x: tavg(x, size), [_randn(*xs)])
    mx, tmx = getattr(F, f"adaptive_max_pool{nd}d"), getattr(TF, f"adaptive_max_pool{nd}d")
    x = np.round(_randn(*xs) * 2)  # ties: the first maximum in row-major order wins
    _compare(lambda x: mx(x, size), lambda x: tmx(x, size), [x])
    _, idx = mx(ember.tensor(x), size, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tmx(torch.tensor(x), size, return_indices=True)[1].numpy())


def test_pooling_second_order_jvp_and_vmap():
    x = _randn(1, 2, 5, 4)
    check_grad(lambda x: F.max_pool2d(x, 2, stride=1, padding=1) ** 2, [x])
    check_grad(lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True) ** 2, [x])
    check_jvp(lambda x: F.max_pool2d(x, 3, stride=2, padding=1), [x])
    check_jvp(lambda x: F.avg_pool1d(x, 2), [_randn(2, 3, 6)])
    check_vmap(lambda x: F.max_pool2d(x, 3, stride=2, padding=1), [_randn(3, 2, 2, 5, 6)], [0])
    check_vmap(lambda x: F.max_pool2d(x, 2) ** 2, [_randn(2, 5, 2, 4, 4)], [1])


def test_max_pool_backward_under_vmap_of_grad():
    xs = _randn(3, 2, 4, 4)

    def f(x):
        return (F.max_pool2d(x, 2) ** 2).sum()

    got = vmap(grad(f))(ember.tensor(xs))
    for i in range(3):
        xt = torch.tensor(xs[i], requires_grad=True)
        (TF.max_pool2d(xt, 2) ** 2).sum().backward()
        assert_close(got[i], xt.grad.numpy(), rtol=1e-12, atol=1e-12)


# -- layers ------------------------------------------------------------------------------------------
def _torch_twin(ours, theirs):
    theirs = theirs.double()
    theirs.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in ours.state_dict().items()})
    return theirs


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_layer_padding_modes_match_torch(mode):
    ours = nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=(2, 1), padding_mode=mode, dtype=ember.float64)
    theirs = _torch_twin(ours, torch.nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=(2, 1), padding_mode=mode))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = _randn(2, 3, 6, 7)
    xe, xt = ember.tensor(x).requires_grad_(), torch.tensor(x, requires_grad=True)
    out, want = ours(xe), theirs(xt)
    assert_close(out, want.detach().numpy(), rtol=1e-10, atol=1e-10)
    (out ** 2).sum().backward()
    (want ** 2).sum().backward()
    assert_close(xe.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert_close(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_conv_layers_1d_3d_same_padding_reflect_and_repr():
    for ours_cls, torch_cls, x in [(nn.Conv1d, torch.nn.Conv1d, _randn(2, 2, 9)),
                                   (nn.Conv3d, torch.nn.Conv3d, _randn(1, 2, 5, 4, 6))]:
        ours = ours_cls(2, 4, 4, padding="same", padding_mode="reflect", groups=2, bias=False,
                        dtype=ember.float64)
        theirs = _torch_twin(ours, torch_cls(2, 4, 4, padding="same", padding_mode="reflect", groups=2,
                                             bias=False))
        assert_close(ours(ember.tensor(x)), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-10)
        assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_layers_match_torch_including_output_size(nd):
    ours_cls, torch_cls = getattr(nn, f"ConvTranspose{nd}d"), getattr(torch.nn, f"ConvTranspose{nd}d")
    ours = ours_cls(4, 6, 3, stride=2, padding=1, groups=2, dtype=ember.float64)
    theirs = _torch_twin(ours, torch_cls(4, 6, 3, stride=2, padding=1, groups=2))
    assert tuple(ours.weight.shape) == tuple(theirs.weight.shape) == (4, 3) + (3,) * nd
    x = _randn(2, 4, *([3] * nd))
    size = (6,) * nd
    assert_close(ours(ember.tensor(x), output_size=size),
                 theirs(torch.tensor(x), output_size=size).detach().numpy(), rtol=1e-10, atol=1e-10)
    assert repr(ours) == repr(theirs)


def test_conv_init_follows_torch_bounds():
    layer = nn.Conv2d(16, 32, 3)
    fan_in = 16 * 9
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=√5) gives the same bound as the bias
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound


def test_pool_layers_match_torch_and_repr():
    x = _randn(2, 3, 9, 8)
    pairs = [(nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
             (nn.AvgPool2d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
             (nn.AvgPool1d(3), torch.nn.AvgPool1d(3)), (nn.MaxPool1d(2), torch.nn.MaxPool1d(2)),
             (nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3))),
             (nn.AdaptiveMaxPool2d(3), torch.nn.AdaptiveMaxPool2d(3))]
    for ours, theirs in pairs:
        inp = x[0] if isinstance(ours, (nn.AvgPool1d, nn.MaxPool1d)) else x
        assert_close(ours(ember.tensor(inp)), theirs(torch.tensor(inp)).numpy(), rtol=1e-12, atol=1e-12)
        assert repr(ours) == repr(theirs)
    out, idx = nn.MaxPool3d(2, return_indices=True)(ember.tensor(_randn(1, 1, 4, 4, 4)))
    assert out.shape == idx.shape == (1, 1, 2, 2, 2)


def test_small_cnn_trains_like_torch():
    ours = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    ours = ours.to(ember.float64) if hasattr(ours, "to") else ours
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(16, 3)).double()
    theirs.load_state_dict({k: torch.tensor(v.detach().numpy().astype(np.float64))
                            for k, v in ours.state_dict().items()})
    x, y = _randn(5, 1, 4, 4), np.array([0, 1, 2, 1, 0])
    loss = F.cross_entropy(ours(ember.tensor(x).to(ours[0].weight.dtype)), ember.tensor(y))
    want = TF.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
    loss.backward()
    want.backward()
    tol = 1e-10 if ours[0].weight.dtype is ember.float64 else 1e-5
    assert_close(loss, want.item(), rtol=tol, atol=tol)
    assert_close(ours[0].weight.grad, theirs[0].weight.grad.numpy(), rtol=tol, atol=tol)


# -- errors ------------------------------------------------------------------------------------------
def test_channel_mismatch_names_op_and_both_shapes():
    with pytest.raises(ShapeError) as err:
        F.conv2d(ember.ones(1, 3, 8, 8), ember.ones(4, 2, 3, 3))
    msg = str(err.value)
    assert "conv2d" in msg and "(1, 3, 8, 8)" in msg and "(4, 2, 3, 3)" in msg


def test_kernel_larger_than_padded_input_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"conv2d.*kernel size 5 can't be greater than the padded input "
                       r"size 4"):
        F.conv2d(ember.ones(1, 1, 2, 8), ember.ones(1, 1, 5, 3), padding=1)
    with pytest.raises(ShapeError, match="max_pool2d"):
        F.max_pool2d(ember.ones(1, 1, 2, 2), 3)


@pytest.mark.parametrize("call,match", [
    (lambda: F.conv2d(ember.ones(3, 8, 8, 1, 1), ember.ones(4, 3, 3, 3)), "conv2d.*4-d"),
    (lambda: F.conv1d(ember.ones(1, 4, 8), ember.ones(4, 2, 3), groups=3), "conv1d"),
    (lambda: F.conv2d(ember.ones(1, 1, 8, 8), ember.ones(1, 1, 3, 3), stride=2, padding="same"), "same"),
    (lambda: F.conv2d(ember.ones(1, 1, 8, 8), ember.ones(1, 1, 3, 3), ember.ones(2)), "bias"),
    (lambda: F.max_pool2d(ember.ones(1, 1, 8, 8), 2, padding=2), "half"),
    (lambda: F.conv_transpose2d(ember.ones(1, 2, 4, 4), ember.ones(2, 1, 3, 3), output_padding=1),
     "output_padding"),
])
def test_bad_arguments_raise_shape_errors(call, match):
    with pytest.raises(ShapeError, match=match):
        call()


def test_dtype_errors():
    with pytest.raises(DTypeError, match="conv2d"):
        F.conv2d(ember.ones(1, 1, 4, 4), ember.ones(1, 1, 3, 3, dtype=ember.float64))
    with pytest.raises(DTypeError, match="max_pool2d"):
        F.max_pool2d(ember.ones(1, 1, 4, 4, dtype=ember.int64), 2)
