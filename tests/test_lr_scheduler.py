"""Learning-rate schedulers: the lr (and momentum) sequences over 35 steps equal PyTorch's."""
from __future__ import annotations

import pickle
import warnings

import pytest

import ember
import ember.optim as optim
from ember.nn import Parameter
from ember.optim import lr_scheduler as ours_mod

from helpers import torch

theirs_mod = torch.optim.lr_scheduler if torch is not None else None
STEPS = 35


def _optimizers(kind="SGD"):
    """The same two-group optimiser in ember and in torch."""
    def make(lib_optim, param):
        groups = [{"params": [param(1)]}, {"params": [param(2)], "lr": 0.05}]
        if kind == "SGD":
            return lib_optim.SGD(groups, lr=0.1, momentum=0.9)
        return lib_optim.Adam(groups, lr=0.1, betas=(0.9, 0.99))

    ours = make(optim, lambda n: Parameter(ember.zeros(n)))
    theirs = make(torch.optim, lambda n: torch.nn.Parameter(torch.zeros(n)))
    return ours, theirs


class Halving:
    """A callable object: LambdaLR saves its ``__dict__`` in the state dict."""

    def __init__(self, every):
        self.every = every

    def __call__(self, epoch):
        return 0.5 ** (epoch // self.every)


def _seq(m, o):
    return m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                              m.CosineAnnealingLR(o, T_max=12, eta_min=0.001),
                              m.ExponentialLR(o, gamma=0.9)], milestones=[5, 17])


CASES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[3, 10, 10, 25], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    "CosineAnnealingLR-zero-min": lambda m, o: m.CosineAnnealingLR(o, T_max=7),
    "WarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5),
    "WarmRestarts-mult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01),
    "OneCycleLR-cos": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=STEPS + 1),
    "OneCycleLR-linear": lambda m, o: m.OneCycleLR(o, max_lr=1.0, epochs=4, steps_per_epoch=9,
                                                   anneal_strategy="linear", pct_start=0.25),
    "OneCycleLR-three-phase": lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=40, three_phase=True,
                                                        div_factor=10.0, final_div_factor=100.0),
    "OneCycleLR-no-momentum": lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=STEPS,
                                                        cycle_momentum=False),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=10),
    "LinearLR-default": lambda m, o: m.LinearLR(o),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 1.0 / (1 + e), Halving(4)]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.97),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4),
    "SequentialLR": _seq,
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=3),
                                                         m.ExponentialLR(o, gamma=0.9)]),
    "ChainedScheduler-cosine": lambda m, o: m.ChainedScheduler([m.CosineAnnealingLR(o, T_max=8),
                                                                m.MultiStepLR(o, milestones=[4, 20])]),
}


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


# the optimiser only matters for OneCycleLR's momentum cycling (SGD's momentum, Adam's beta1)
SEQUENCE_CASES = [(name, "SGD") for name in CASES] + [(name, "Adam") for name in CASES if "OneCycle" in name]


@pytest.mark.parametrize("name,kind", SEQUENCE_CASES)
def test_lr_sequence_matches_torch(name, kind):
    o_ours, o_theirs = _optimizers(kind)
    s_ours, s_theirs = CASES[name](ours_mod, o_ours), CASES[name](theirs_mod, o_theirs)
    assert s_ours.get_last_lr() == pytest.approx(s_theirs.get_last_lr(), rel=1e-13)
    for step in range(STEPS):
        o_ours.step()
        o_theirs.step()
        s_ours.step()
        s_theirs.step()
        assert s_ours.get_last_lr() == s_theirs.get_last_lr(), step  # the same floating-point operations
        assert [g["lr"] for g in o_ours.param_groups] == s_ours.get_last_lr()
        assert _momenta(o_ours) == _momenta(o_theirs), step


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                  "WarmRestarts-mult", "OneCycleLR-cos", "LambdaLR-per-group",
                                  "MultiplicativeLR", "SequentialLR", "ChainedScheduler"])
def test_state_dict_round_trip_continues_identically(name):
    o_ref, _ = _optimizers()
    ref = CASES[name](ours_mod, o_ref)
    o1, _ = _optimizers()
    s1 = CASES[name](ours_mod, o1)
    for _ in range(12):
        o_ref.step(), ref.step()
        o1.step(), s1.step()
    saved_opt, saved = o1.state_dict(), pickle.loads(pickle.dumps(s1.state_dict()))
    o2, _ = _optimizers()
    s2 = CASES[name](ours_mod, o2)
    o2.load_state_dict(saved_opt)
    s2.load_state_dict(saved)
    for _ in range(12):
        o_ref.step(), ref.step()
        o2.step(), s2.step()
        assert s2.get_last_lr() == ref.get_last_lr()


def test_lambda_state_dict_saves_callable_objects_only():
    o, _ = _optimizers()
    s = ours_mod.LambdaLR(o, [lambda e: 1.0, Halving(4)])
    state = s.state_dict()
    assert state["lr_lambdas"] == [None, {"every": 4}]
    s2 = ours_mod.LambdaLR(_optimizers()[0], [lambda e: 1.0, Halving(9)])
    s2.load_state_dict(state)
    assert s2.lr_lambdas[1].every == 4


def test_state_dict_keys_match_torch():
    for name in ["StepLR", "CosineAnnealingLR", "OneCycleLR-cos", "WarmRestarts"]:
        o_ours, o_theirs = _optimizers()
        ours, theirs = CASES[name](ours_mod, o_ours).state_dict(), CASES[name](theirs_mod, o_theirs).state_dict()
        public = {k for k in theirs if not k.startswith("_")}
        assert public <= set(ours), (name, public - set(ours))


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
                                  "ConstantLR", "WarmRestarts-mult"])
def test_step_with_an_epoch_uses_the_closed_form_like_torch(name):
    o_ours, o_theirs = _optimizers()
    s_ours, s_theirs = CASES[name](ours_mod, o_ours), CASES[name](theirs_mod, o_theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in [3, 8, 2, 15, 11.5 if name.startswith("Warm") else 11]:
            s_ours.step(epoch)
            s_theirs.step(epoch)
            assert s_ours.get_last_lr() == pytest.approx(s_theirs.get_last_lr(), rel=1e-13)


def test_step_with_an_epoch_warns():
    o, _ = _optimizers()
    s = ours_mod.StepLR(o, step_size=2)
    with pytest.warns(UserWarning, match="deprecated"):
        s.step(4)
    assert s.last_epoch == 4 and s.get_last_lr() == pytest.approx([0.001, 0.0005])


PLATEAU_CASES = [
    dict(),
    dict(patience=2, factor=0.5),
    dict(mode="max", patience=1, threshold=0.05, threshold_mode="abs"),
    dict(patience=0, cooldown=3, factor=0.5, min_lr=[0.01, 0.02]),
    dict(mode="max", patience=1, threshold=0.01, factor=0.3, min_lr=0.004, eps=1e-3),
]


@pytest.mark.parametrize("kwargs", PLATEAU_CASES, ids=[str(i) for i in range(len(PLATEAU_CASES))])
def test_reduce_on_plateau_matches_torch(kwargs):
    metrics = [1.0, 0.9, 0.95, 0.9, 0.899995, 0.91, 0.92, 0.5, 0.6, 0.7, 0.8, 0.85, 0.5, 0.5, 0.49]
    metrics = metrics + [0.3 + 0.01 * (i % 4) for i in range(20)]
    o_ours, o_theirs = _optimizers()
    s_ours = ours_mod.ReduceLROnPlateau(o_ours, **kwargs)
    s_theirs = theirs_mod.ReduceLROnPlateau(o_theirs, **kwargs)
    for m in metrics:
        s_ours.step(m)
        s_theirs.step(m)
        assert s_ours.get_last_lr() == pytest.approx(s_theirs.get_last_lr(), rel=1e-13)
        assert (s_ours.best, s_ours.num_bad_epochs, s_ours.cooldown_counter) == (
            s_theirs.best, s_theirs.num_bad_epochs, s_theirs.cooldown_counter)


def test_reduce_on_plateau_accepts_a_tensor_metric_and_round_trips():
    o, _ = _optimizers()
    s = ours_mod.ReduceLROnPlateau(o, patience=1)
    for m in [1.0, 1.0, 1.0]:
        s.step(ember.tensor(m))
    assert s.get_last_lr() == pytest.approx([0.01, 0.005])
    s2 = ours_mod.ReduceLROnPlateau(_optimizers()[0], mode="max")
    s2.load_state_dict(s.state_dict())
    assert s2.mode == "min" and s2.num_bad_epochs == s.num_bad_epochs and s2.best == 1.0


@pytest.mark.parametrize("build,error,match", [
    (lambda o: ours_mod.StepLR("not an optimizer", 3), TypeError, "not an Optimizer"),
    (lambda o: ours_mod.StepLR(o, 3, last_epoch=4), KeyError, "initial_lr"),
    (lambda o: ours_mod.ConstantLR(o, factor=2.0), ValueError, "between 0 and 1"),
    (lambda o: ours_mod.LinearLR(o, start_factor=0.0), ValueError, "greater than 0"),
    (lambda o: ours_mod.LambdaLR(o, [lambda e: 1.0]), ValueError, "Expected 2 lr_lambdas"),
    (lambda o: ours_mod.MultiplicativeLR(o, 0.5), TypeError, "function"),
    (lambda o: ours_mod.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "T_0"),
    (lambda o: ours_mod.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError, "T_mult"),
    (lambda o: ours_mod.OneCycleLR(o, max_lr=1.0), ValueError, "total_steps"),
    (lambda o: ours_mod.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5), ValueError, "pct_start"),
    (lambda o: ours_mod.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"), ValueError, "cos"),
    (lambda o: ours_mod.OneCycleLR(o, max_lr=[1.0], total_steps=10), ValueError, "one value per"),
    (lambda o: ours_mod.OneCycleLR(optim.Adagrad(o.param_groups[0]["params"]), max_lr=1.0, total_steps=10),
     ValueError, "momentum"),
    (lambda o: ours_mod.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor"),
    (lambda o: ours_mod.ReduceLROnPlateau(o, mode="up"), ValueError, "mode up"),
    (lambda o: ours_mod.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "threshold mode"),
    (lambda o: ours_mod.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "one value per"),
    (lambda o: ours_mod.SequentialLR(o, [ours_mod.StepLR(o, 2)], milestones=[3]), ValueError, "milestones"),
    (lambda o: ours_mod.ChainedScheduler([]), ValueError, "at least one"),
    (lambda o: ours_mod.ChainedScheduler([ours_mod.StepLR(o, 2), ours_mod.StepLR(_optimizers()[0], 2)]),
     ValueError, "same optimizer"),
    (lambda o: ours_mod.SequentialLR(o, [ours_mod.StepLR(o, 2), ours_mod.ReduceLROnPlateau(o)], [3]),
     ValueError, "ReduceLROnPlateau"),
])
def test_invalid_arguments_raise(build, error, match):
    o, _ = _optimizers()
    with pytest.raises(error, match=match):
        build(o)


def test_one_cycle_refuses_to_step_past_its_length():
    o, _ = _optimizers()
    s = ours_mod.OneCycleLR(o, max_lr=1.0, total_steps=3)
    for _ in range(3):
        s.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        s.step()


def test_resuming_with_last_epoch_behaves_like_torch():
    o_ours, o_theirs = _optimizers()
    scheds = [m.StepLR(o, step_size=3, gamma=0.5) for m, o in [(ours_mod, o_ours), (theirs_mod, o_theirs)]]
    for _ in range(5):
        o_ours.step(), o_theirs.step()
        for s in scheds:
            s.step()
    resumed = [m.StepLR(o, step_size=3, gamma=0.5, last_epoch=5)
               for m, o in [(ours_mod, o_ours), (theirs_mod, o_theirs)]]
    assert resumed[0].base_lrs == [0.1, 0.05] and resumed[0].last_epoch == resumed[1].last_epoch == 6
    assert resumed[0].get_last_lr() == pytest.approx(resumed[1].get_last_lr(), rel=1e-13)
