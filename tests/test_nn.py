"""ember.nn: Module semantics, layers and losses against PyTorch."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

from helpers import assert_close, torch


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.register_buffer("running", ember.zeros(4))
        self.register_buffer("scratch", ember.zeros(1), persistent=False)
        self.scale = nn.Parameter(ember.ones(4))

    def forward(self, x):
        return self.fc(x) * self.scale + self.running


def test_module_registers_parameters_buffers_and_submodules():
    m = nn.Sequential(OrderedDict(block=Block(), act=nn.ReLU()))
    assert [n for n, _ in m.named_parameters()] == ["block.scale", "block.fc.weight", "block.fc.bias"]
    assert [n for n, _ in m.named_buffers()] == ["block.running", "block.scratch"]
    assert list(m.state_dict()) == ["block.scale", "block.running", "block.fc.weight", "block.fc.bias"]
    assert [n for n, _ in m.named_modules()] == ["", "block", "block.fc", "act"]
    assert len(list(m.children())) == 2


def test_train_eval_and_zero_grad():
    m = Block()
    m.eval()
    assert not m.training and not m.fc.training
    m.train()
    assert m.fc.training
    m(ember.ones(2, 3)).sum().backward()
    assert m.fc.weight.grad is not None
    m.zero_grad()
    assert m.fc.weight.grad is None


def test_state_dict_round_trip_keeps_parameter_identity():
    a, b = Block(), Block()
    weight = b.fc.weight
    b.load_state_dict(a.state_dict())
    assert b.fc.weight is weight
    assert_close(b.fc.weight, a.fc.weight.detach().numpy())


def test_load_state_dict_lists_missing_unexpected_and_mismatched_keys():
    m = Block()
    sd = m.state_dict()
    del sd["scale"]
    sd["extra"] = ember.zeros(1)
    sd["fc.bias"] = ember.zeros(7)
    with pytest.raises(nn.StateDictError) as info:
        m.load_state_dict(sd)
    msg = str(info.value)
    assert "missing keys: scale" in msg and "unexpected keys: extra" in msg and "fc.bias" in msg and "(7,)" in msg
    del sd["fc.bias"]
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["scale", "fc.bias"] and result.unexpected_keys == ["extra"]


def test_forward_hooks_run_and_can_be_removed():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append("pre"))
    h2 = m.register_forward_hook(lambda mod, args, out: out * 0)
    assert m(ember.ones(1, 2)).tolist() == [[0.0, 0.0]] and calls == ["pre"]
    h1.remove()
    h2.remove()
    m(ember.ones(1, 2))
    assert calls == ["pre"]


def test_sequential_item_assignment_and_deletion_follow_torch():
    ours = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 4), nn.Tanh())
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 4),
                                 torch.nn.Tanh())
    ours[1] = nn.Sigmoid()
    theirs[1] = torch.nn.Sigmoid()
    del ours[0]
    del theirs[0]
    del ours[1:2]
    del theirs[1:2]
    assert list(ours._modules) == list(theirs._modules) == ["0", "1"]
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs] == ["Sigmoid", "Tanh"]
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []
    with pytest.raises(IndexError):
        ours[5] = nn.ReLU()
    listed = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    listed[0] = nn.Sigmoid()  # keeps its place
    assert [type(m).__name__ for m in listed] == ["Sigmoid", "Tanh"]
    with pytest.raises(TypeError, match="not a Module"):
        listed[1] = torch.nn.ReLU()


def test_repr_shows_the_tree():
    text = repr(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    assert text == "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)"


def test_apply_and_to_dtype():
    m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    m.apply(lambda mod: nn.init.zeros_(mod.bias) if isinstance(mod, nn.Linear) else None)
    assert all(float(p.abs().sum()) == 0 for n, p in m.named_parameters() if n.endswith("bias"))
    m.double()
    assert all(p.dtype is ember.float64 for p in m.parameters())


def test_dtype_conversion_keeps_parameters_so_an_optimiser_goes_on():
    m = nn.Linear(3, 2)
    params = list(m.parameters())
    opt = ember.optim.SGD(m.parameters(), lr=0.1)
    m(ember.ones(4, 3)).sum().backward()
    m.double()  # as torch.nn.Module.double: the same Parameter objects, gradients converted too
    assert list(m.parameters()) == params and all(p is q for p, q in zip(m.parameters(), params))
    assert all(p.dtype is ember.float64 and p.grad.dtype is ember.float64 for p in params)
    before = m.weight.detach().clone()
    opt.step()
    np.testing.assert_allclose(m.weight.detach().numpy(), before.numpy() - 0.1 * 4, rtol=1e-12)


def test_linear_matches_torch_with_copied_weights(rng):
    m = nn.Linear(5, 3)
    t = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        t.weight.copy_(torch.tensor(m.weight.detach().numpy()))
        t.bias.copy_(torch.tensor(m.bias.detach().numpy()))
    x = rng.standard_normal((4, 5))
    assert_close(m.double()(ember.tensor(x)), t(torch.tensor(x)).detach().numpy(), rtol=1e-12)


def test_linear_init_bounds_follow_torch():
    m = nn.Linear(100, 50)
    bound = 1 / np.sqrt(100)
    w = m.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(m.bias.detach().numpy()).max() <= bound


def test_linear_shape_error_names_features():
    with pytest.raises(ember.errors.ShapeError, match="input has 4 features but weight expects 3"):
        nn.Linear(3, 2)(ember.ones(2, 4))


@pytest.mark.parametrize("kwargs", [{}, {"ignore_index": 1}, {"label_smoothing": 0.1}, {"reduction": "sum"},
                                    {"weight": [1.0, 2.0, 0.5, 1.5]},
                                    {"weight": [1.0, 2.0, 0.5, 1.5], "label_smoothing": 0.2, "ignore_index": 0},
                                    {"reduction": "none"}])
def test_cross_entropy_matches_torch(kwargs, rng):
    logits = rng.standard_normal((6, 4))
    target = np.array([0, 1, 2, 3, 1, 1])
    ekw = dict(kwargs)
    tkw = dict(kwargs)
    if "weight" in kwargs:
        ekw["weight"] = ember.tensor(np.array(kwargs["weight"]))
        tkw["weight"] = torch.tensor(kwargs["weight"], dtype=torch.float64)
    x = ember.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, ember.tensor(target), **ekw)
    tx = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tx, torch.tensor(target), **tkw)
    assert_close(loss, tloss.detach().numpy(), rtol=1e-10)
    loss.sum().backward()
    tloss.sum().backward()
    assert_close(x.grad, tx.grad.numpy(), rtol=1e-10)


def test_cross_entropy_with_probabilities_and_spatial_dims(rng):
    logits = rng.standard_normal((2, 3, 4))
    probs = rng.dirichlet(np.ones(3), size=(2, 4)).transpose(0, 2, 1)
    got = F.cross_entropy(ember.tensor(logits), ember.tensor(probs), label_smoothing=0.1)
    want = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(probs), label_smoothing=0.1)
    assert_close(got, want.numpy(), rtol=1e-10)
    target = rng.integers(0, 3, (2, 4))
    got = F.cross_entropy(ember.tensor(logits), ember.tensor(target))
    want = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(target))
    assert_close(got, want.numpy(), rtol=1e-10)


def test_softmax_log_softmax_and_mse_match_torch(rng):
    x = rng.standard_normal((3, 5)) * 10
    assert_close(F.softmax(ember.tensor(x), 1), torch.softmax(torch.tensor(x), 1).numpy(), rtol=1e-12)
    assert_close(F.log_softmax(ember.tensor(x), 0), torch.log_softmax(torch.tensor(x), 0).numpy(), rtol=1e-12)
    y = rng.standard_normal((3, 5))
    assert_close(F.mse_loss(ember.tensor(x), ember.tensor(y)),
                 torch.nn.functional.mse_loss(torch.tensor(x), torch.tensor(y)).numpy(), rtol=1e-12)


def test_dropout_scales_kept_values_and_is_identity_in_eval():
    ember.manual_seed(0)
    d = nn.Dropout(0.25)
    x = ember.ones(1000)
    y = d(x).numpy()
    kept = y != 0
    assert np.allclose(y[kept], 1 / 0.75) and 0.6 < kept.mean() < 0.9
    d.eval()
    assert d(x) is x


def test_init_functions_have_the_right_statistics():
    ember.manual_seed(1)
    w = ember.empty(400, 300)
    nn.init.xavier_uniform_(w)
    bound = np.sqrt(6 / 700)
    assert np.abs(w.numpy()).max() <= bound and abs(w.numpy().std() - bound / np.sqrt(3)) < 0.01 * bound * 3
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.numpy().std() - np.sqrt(2 / 300)) < 0.02 * np.sqrt(2 / 300)
    nn.init.orthogonal_(w)
    q = w.numpy().astype(np.float64)
    assert_close(q.T @ q, np.eye(300), atol=1e-4)
    nn.init.trunc_normal_(w, std=1.0, a=-1.0, b=1.0)
    assert np.abs(w.numpy()).max() <= 1.0


def test_reassigning_a_parameter_keeps_its_place_in_the_state_dict():
    m = nn.Linear(2, 2)
    m.weight = nn.Parameter(ember.zeros(2, 2))
    assert list(m.state_dict()) == ["weight", "bias"]


def test_to_keeps_tied_weights_tied():
    model = ember.models.gpt(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=4)
    model.double()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.weight.dtype is ember.float64
