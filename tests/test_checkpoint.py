"""Training checkpoints: bit-identical resume, atomic writes that survive a crash, and clear errors."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ember
import ember.io._files as files
from ember.io import SerializationError, load_checkpoint, save_checkpoint
from ember.optim import lr_scheduler

N = 5  # steps before and after the checkpoint
BATCH = 8
DATA = np.random.default_rng(0).standard_normal((24, 6)).astype(np.float32)
LABELS = np.random.default_rng(1).integers(0, 3, 24)


def make_run(seed: int):
    """A small MLP with dropout, Adam and a step schedule, freshly initialised from `seed`."""
    ember.manual_seed(seed)
    model = ember.nn.Sequential(ember.nn.Linear(6, 16), ember.nn.ReLU(), ember.nn.Dropout(0.3),
                                ember.nn.Linear(16, 3))
    opt = ember.optim.Adam(model.parameters(), lr=0.01)
    sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    return model, opt, sched


def train(model, opt, sched, start: int, steps: int, perm):
    """Steps `start .. start+steps-1`; a new ember.randperm shuffle starts every epoch. Returns the losses
    and the current epoch's permutation (needed to resume mid-epoch)."""
    losses = []
    per_epoch = len(DATA) // BATCH
    loss_fn = ember.nn.CrossEntropyLoss()
    for step in range(start, start + steps):
        if step % per_epoch == 0:
            perm = ember.randperm(len(DATA))
        idx = perm[(step % per_epoch) * BATCH:(step % per_epoch + 1) * BATCH].numpy()
        noise = np.random.standard_normal((BATCH, 6)).astype(np.float32) * 0.01  # NumPy's global RNG
        x = ember.tensor(DATA[idx] + noise * random.random())  # and Python's
        loss = loss_fn(model(x), ember.tensor(LABELS[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses, perm


def _seed_host_rngs():
    np.random.seed(5)
    random.seed(5)


def test_resuming_from_a_checkpoint_continues_bit_identically(tmp_path):
    _seed_host_rngs()
    model, opt, sched = make_run(seed=0)
    straight, _ = train(model, opt, sched, 0, 2 * N, None)
    final = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    _seed_host_rngs()
    model, opt, sched = make_run(seed=0)
    first, perm = train(model, opt, sched, 0, N, None)
    assert first == straight[:N]
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, step=N, perm=perm)

    np.random.seed(99)  # scramble every generator; the checkpoint must restore them
    random.seed(99)
    model, opt, sched = make_run(seed=123)
    info = load_checkpoint(path, model=model, optimizer=opt, scheduler=sched)
    assert info["step"] == N and sched.last_epoch == N
    resumed, _ = train(model, opt, sched, info["step"], N, info["perm"])

    assert resumed == straight[N:]  # exact equality, not allclose
    for key, value in model.state_dict().items():
        assert np.array_equal(value.numpy(), final[key]), key


def test_checkpoint_contents_and_metadata(tmp_path):
    model, opt, sched = make_run(seed=1)
    train(model, opt, sched, 0, 2, None)
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, model=model, optimizer=opt, step=2, epoch=0, tag="warmup", best=(0.5, "val"))
    raw = ember.load(path)
    assert set(raw) >= {"model", "optimizer", "rng", "step", "metadata"} and "scheduler" not in raw
    assert raw["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert raw["optimizer"]["state"][0]["step"] == 2
    assert load_checkpoint(path) == {"step": 2, "epoch": 0, "tag": "warmup", "best": (0.5, "val")}


def test_rng_false_leaves_the_generators_alone(tmp_path):
    path = tmp_path / "c.ckpt"
    ember.manual_seed(3)
    save_checkpoint(path, step=0)
    ember.manual_seed(4)
    expected = ember.rand(3).tolist()
    ember.manual_seed(4)
    load_checkpoint(path, rng=False)
    assert ember.rand(3).tolist() == expected
    ember.manual_seed(4)
    load_checkpoint(path)
    ember.manual_seed(3)
    assert ember.rand(3).tolist() != expected
    save_checkpoint(path, rng=False)
    assert "rng" not in ember.load(path)


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, sched = make_run(seed=2)
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, model=model, optimizer=opt, step=1)
    old = path.read_bytes()
    train(model, opt, sched, 0, 1, None)

    def fail_midway(f, data):
        f.write(data[: len(data) // 3])
        f.flush()
        raise OSError("no space left on device")

    monkeypatch.setattr(files, "_write_payload", fail_midway)
    with pytest.raises(OSError, match="no space left"):
        save_checkpoint(path, model=model, optimizer=opt, step=2)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["c.ckpt"]
    fresh, fresh_opt, _ = make_run(seed=5)
    assert load_checkpoint(path, model=fresh, optimizer=fresh_opt)["step"] == 1


def test_a_process_killed_mid_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, model=ember.nn.Linear(4, 4), step=1)
    old = path.read_bytes()
    script = textwrap.dedent(f"""
        import os
        import ember, ember.io._files as files
        def die_midway(f, data):
            f.write(data[: len(data) // 2])
            f.flush()
            os._exit(3)  # no cleanup, as in a power cut or SIGKILL
        files._write_payload = die_midway
        ember.io.save_checkpoint({str(path)!r}, model=ember.nn.Linear(4, 4), step=2)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 3, result.stderr.decode()
    assert path.read_bytes() == old
    assert load_checkpoint(path, model=ember.nn.Linear(4, 4))["step"] == 1
    leftovers = [name for name in os.listdir(tmp_path) if name != "c.ckpt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".c.ckpt.") and leftovers[0].endswith(".tmp")


def test_mismatched_model_keys_are_reported_with_the_file(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, model=ember.nn.Sequential(ember.nn.Linear(3, 2)))
    other = ember.nn.Sequential(ember.nn.Linear(3, 2), ember.nn.Linear(2, 2))
    with pytest.raises(ember.nn.StateDictError) as info:
        load_checkpoint(path, model=other)
    message = str(info.value)
    assert str(path) in message and "missing keys: 1.weight, 1.bias" in message
    with pytest.raises(ember.nn.StateDictError, match="size mismatch"):
        load_checkpoint(path, model=ember.nn.Sequential(ember.nn.Linear(3, 5)))
    load_checkpoint(path, model=other, strict=False)
    assert other[1].weight.shape == (2, 2)


def test_missing_states_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "c.ckpt"
    model = ember.nn.Linear(2, 2)
    save_checkpoint(path, model=model)
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(SerializationError, match="has no optimizer or scheduler state"):
        load_checkpoint(path, model=model, optimizer=opt, scheduler=lr_scheduler.StepLR(opt, 2))
    ember.save({"model": model.state_dict()}, tmp_path / "plain")
    with pytest.raises(SerializationError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "plain", model=model)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(SerializationError, match="c.ckpt"):
        load_checkpoint(path, model=model)


def test_an_optimizer_that_does_not_fit_is_refused_before_anything_changes(tmp_path):
    model, opt, _ = make_run(seed=0)
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, model=model, optimizer=opt)
    other_model, _, _ = make_run(seed=7)
    before = other_model[0].weight.detach().numpy().copy()
    small_opt = ember.optim.Adam(list(other_model.parameters())[:2])
    with pytest.raises(SerializationError, match=r"parameter groups of sizes \[4\], the optimizer \[2\]"):
        load_checkpoint(path, model=other_model, optimizer=small_opt)
    assert np.array_equal(other_model[0].weight.detach().numpy(), before)


def test_unsaveable_metadata_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(SerializationError, match=r"obj\['metadata'\]\['callback'\]"):
        save_checkpoint(tmp_path / "c.ckpt", step=1, callback=print)
    assert os.listdir(tmp_path) == []
