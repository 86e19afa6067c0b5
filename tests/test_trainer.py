"""The config-driven trainer and the ``ember train`` command line."""
from __future__ import annotations

import json

import pytest

import ember
from ember import cli
from ember.trainer import ConfigError, Trainer

SMALL = {
    "seed": 0,
    "epochs": 2,
    "data": {"dataset": "Digits", "batch_size": 64},
    "model": {"type": "Sequential", "layers": [
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 64, "out_features": 64},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 64, "out_features": 10}]},
    "optimizer": {"type": "Adam", "lr": 0.01},
    "loss": "cross_entropy",
}


def test_trainer_learns_the_digits_and_reports_a_summary():
    summary = Trainer(SMALL, progress=False, log=lambda s: None).fit()
    assert summary["epochs"] == 2 and summary["steps"] == 2 * 23
    assert summary["test_accuracy"] > 0.85
    assert [h["epoch"] for h in summary["history"]] == [1, 2]


def test_same_seed_gives_the_same_run():
    a = Trainer(SMALL, progress=False, log=lambda s: None).fit()
    b = Trainer(SMALL, progress=False, log=lambda s: None).fit()
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_unknown_names_in_the_config_are_clear_errors():
    bad = dict(SMALL, optimizer={"type": "Adamm", "lr": 0.1})
    with pytest.raises(ConfigError, match="unknown optimizer 'Adamm'"):
        Trainer(bad, progress=False)
    with pytest.raises(ConfigError, match="unknown loss"):
        Trainer(dict(SMALL, loss="hinge"), progress=False)
    with pytest.raises(ConfigError, match="does not exist"):
        Trainer("no/such/config.json")


def test_cli_train_runs_a_config_file(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(dict(SMALL, epochs=1)))
    out = tmp_path / "summary.json"
    assert cli.main(["train", str(path), "--no-progress", "--summary-json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["epochs"] == 1 and "test accuracy" in capsys.readouterr().out


def test_cli_info_lists_primitives(capsys):
    assert cli.main(["info", "--primitives"]) == 0
    text = capsys.readouterr().out
    assert f"ember {ember.__version__}" in text and "matmul" in text and "vjp jvp batch" in text


def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_run(tmp_path):
    cfg = dict(SMALL, epochs=3)
    cfg["model"] = {"type": "Sequential", "layers": SMALL["model"]["layers"][:3] + [
        {"type": "Dropout", "p": 0.3}, SMALL["model"]["layers"][3]]}
    straight = Trainer(cfg, progress=False, log=lambda s: None).fit()
    Trainer(dict(cfg, epochs=2), checkpoint_dir=str(tmp_path), progress=False, log=lambda s: None).fit()
    resumed = Trainer(cfg, checkpoint_dir=str(tmp_path), resume="auto", progress=False,
                      log=lambda s: None).fit()
    assert resumed["history"] == straight["history"]
    assert (tmp_path / "last.ckpt").exists()


def test_a_compiled_run_gives_the_eager_run():
    # Dropout draws and the cosine schedule's learning rate are read by the compiled step at run time
    cfg = dict(SMALL, epochs=3, scheduler={"type": "CosineAnnealingLR", "T_max": 3})
    cfg["model"] = {"type": "Sequential", "layers": SMALL["model"]["layers"][:3] + [
        {"type": "Dropout", "p": 0.3}, SMALL["model"]["layers"][3]]}
    a = Trainer(cfg, progress=False, log=lambda s: None).fit()  # (each run seeds when it is built)
    compiled = Trainer(dict(cfg, compile=True), progress=False, log=lambda s: None)
    b = compiled.fit()
    for x, y in zip(a["history"], b["history"]):
        assert x.keys() == y.keys()
        for key in x:
            assert y[key] == pytest.approx(x[key], rel=1e-5), key
    # the first step (no optimiser state yet), the steady one and the shorter last batch
    assert compiled._step_fn.compile_count == 3


def test_compile_must_be_a_boolean(tmp_path, capsys):
    with pytest.raises(ConfigError, match="'compile' must be true or false"):
        Trainer(dict(SMALL, compile="yes"), progress=False)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(dict(SMALL, epochs=1)))
    assert cli.main(["train", str(path), "--no-progress", "--compile"]) == 0
    assert "test accuracy" in capsys.readouterr().out
