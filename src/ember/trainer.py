"""Config-driven training: the loop behind ``ember train`` (progress, evaluation, checkpoints, resume).

A run is described by a plain dict (or a JSON/YAML file):

```json
{"seed": 0, "epochs": 12,
 "data": {"dataset": "Digits", "batch_size": 64, "args": {}},
 "model": {"type": "Sequential", "layers": [...]},
 "optimizer": {"type": "Adam", "lr": 0.001},
 "scheduler": {"type": "CosineAnnealingLR", "T_max": 12},
 "loss": "cross_entropy", "compile": true}
```

``model`` is either an ``ember.nn.from_config`` description or ``{"zoo": "lenet5", "args": {...}}``.
``compile`` (default false) runs each training step as one graph compiled with ``ember.jit``.
Each epoch's shuffling order comes from a generator seeded with ``(seed, epoch)``, and checkpoints carry
the RNG state, so a resumed run reproduces an uninterrupted one exactly.
"""
from __future__ import annotations

import copy
import json
import os
import time
from typing import Any, Callable

from . import _core
from ._core.autograd import no_grad
from ._core.errors import EmberError


class ConfigError(EmberError, ValueError):
    """A training configuration that cannot be built."""


def load_config(source: str | dict) -> dict:
    """A training config from a dict, a .json file or a .yaml/.yml file."""
    if isinstance(source, dict):
        return copy.deepcopy(source)
    path = os.fspath(source)
    if not os.path.exists(path):
        raise ConfigError("train", f"config file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        if path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                raise ConfigError("train", "reading a YAML config needs PyYAML (pip install pyyaml)") \
                    from None
            return yaml.safe_load(f)
        return json.load(f)


def _lookup(module: Any, name: str, what: str) -> Callable:
    obj = getattr(module, name, None)
    if obj is None:
        known = sorted(n for n in dir(module) if not n.startswith("_") and n[0].isupper())
        raise ConfigError("train", f"unknown {what} {name!r}; known: {', '.join(known)}")
    return obj


def build_model(cfg: dict):
    """The model described by `cfg` (a from_config description or {"zoo": name, "args": {...}})."""
    from . import nn

    cfg = copy.deepcopy(cfg)
    if "zoo" in cfg:
        from . import models

        factory = getattr(models, cfg["zoo"], None)
        if factory is None:
            raise ConfigError("train", f"unknown zoo model {cfg['zoo']!r}")
        return factory(**cfg.get("args", {}))
    return nn.from_config(cfg)


def build_optimizer(cfg: dict, params):
    """The optimizer of `cfg` ({"type": "Adam", "lr": ...}) over `params`."""
    from . import optim

    cfg = dict(cfg)
    cls = _lookup(optim, cfg.pop("type", "SGD"), "optimizer")
    return cls(params, **cfg)


def build_scheduler(cfg: dict | None, optimizer):
    """The learning-rate scheduler of `cfg`, or None."""
    if not cfg:
        return None
    from .optim import lr_scheduler

    cfg = dict(cfg)
    cls = _lookup(lr_scheduler, cfg.pop("type"), "scheduler")
    return cls(optimizer, **cfg)


def build_datasets(cfg: dict):
    """(train, test) datasets named by `cfg` from ``ember.data.datasets``."""
    from .data import datasets

    cls = _lookup(datasets, cfg.get("dataset", "Digits"), "dataset")
    args = dict(cfg.get("args", {}))
    return cls(train=True, **args), cls(train=False, **args)


_LOSSES = {"cross_entropy", "mse_loss", "nll_loss"}


class Trainer:
    """Runs a training config: epochs of mini-batch updates with a progress bar, periodic evaluation,
    atomic checkpoints after each epoch, resuming, and a final summary.

    Args:
        config: the run description (dict or file path).
        checkpoint_dir: where ``last.ckpt`` is written each epoch (None: no checkpoints).
        resume: a checkpoint path to continue from (or "auto": ``checkpoint_dir/last.ckpt`` if present).
        progress: show a progress bar.
        log: where text lines go (default: print).
    """

    def __init__(self, config: str | dict, checkpoint_dir: str | None = None, resume: str | None = None,
                 progress: bool = True, log: Callable[[str], None] = print) -> None:
        from . import data

        self.config = load_config(config)
        compile_step = self.config.get("compile", False)
        if not isinstance(compile_step, bool):
            raise ConfigError("train", f"'compile' must be true or false, not {compile_step!r}")
        self.log = log
        self.progress = progress
        self.seed = int(self.config.get("seed", 0))
        _core.random.manual_seed(self.seed)
        self.epochs = int(self.config.get("epochs", 10))
        self.model = build_model(self.config["model"])
        self.optimizer = build_optimizer(self.config.get("optimizer", {"type": "Adam", "lr": 1e-3}),
                                         self.model.parameters())
        self.scheduler = build_scheduler(self.config.get("scheduler"), self.optimizer)
        loss = self.config.get("loss", "cross_entropy")
        if loss not in _LOSSES:
            raise ConfigError("train", f"unknown loss {loss!r}; known: {', '.join(sorted(_LOSSES))}")
        from .nn import functional as F

        self.loss_fn = getattr(F, loss)
        if compile_step:
            from .compiler import jit

            self._step_fn: Callable = jit(self._train_step)
        else:
            self._step_fn = self._train_step
        data_cfg = self.config.get("data", {})
        self.train_set, self.test_set = build_datasets(data_cfg)
        self.batch_size = int(data_cfg.get("batch_size", 64))
        self.num_workers = int(data_cfg.get("num_workers", 0))
        self.test_loader = data.DataLoader(self.test_set, batch_size=256, num_workers=0)
        self.checkpoint_dir = checkpoint_dir
        self.epoch = 0
        self.step = 0
        self.history: list[dict] = []
        if resume == "auto":
            candidate = os.path.join(checkpoint_dir or ".", "last.ckpt")
            resume = candidate if os.path.exists(candidate) else None
        if resume:
            self._resume(resume)

    # -- checkpoints ---------------------------------------------------------------------------------
    def _resume(self, path: str) -> None:
        from .io import load_checkpoint

        info = load_checkpoint(path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        self.epoch = int(info.get("epoch", 0))
        self.step = int(info.get("step", 0))
        self.history = list(info.get("history", []))
        self.log(f"resumed from {path} at epoch {self.epoch} (step {self.step})")

    def _save(self) -> str | None:
        if not self.checkpoint_dir:
            return None
        from .io import save_checkpoint

        os.makedirs(self.checkpoint_dir, exist_ok=True)
        path = os.path.join(self.checkpoint_dir, "last.ckpt")
        save_checkpoint(path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                        step=self.step, epoch=self.epoch, history=self.history)
        return path

    # -- the loop ------------------------------------------------------------------------------------
    def _train_loader(self):
        from . import data

        gen = _core.random.Generator()
        gen.manual_seed(self.seed * 100_003 + self.epoch)
        return data.DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, generator=gen,
                               num_workers=self.num_workers)

    def _train_step(self, x, y):
        """One optimisation step on a batch: (loss, model output)."""
        out = self.model(x)
        loss = self.loss_fn(out, y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss, out

    def train_epoch(self) -> dict:
        """One pass over the training set; returns mean loss, accuracy and throughput."""
        self.model.train()
        loader = self._train_loader()
        bar = _progress(len(loader), f"epoch {self.epoch + 1}/{self.epochs}", self.progress)
        total_loss = correct = seen = 0
        start = time.perf_counter()
        for x, y in loader:
            loss, out = self._step_fn(x, y)
            self.step += 1
            n = len(y)
            total_loss += float(loss) * n
            if out.ndim == 2 and y.ndim == 1:
                correct += int((out.argmax(1) == y).sum())
            seen += n
            bar.update(1)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}",
                            rate=f"{seen / (time.perf_counter() - start):.0f}/s")
        bar.close()
        if self.scheduler is not None:
            self.scheduler.step()
        elapsed = time.perf_counter() - start
        return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1),
                "samples_per_s": seen / elapsed}

    def evaluate(self) -> dict:
        """Loss and accuracy on the test set (eval mode, no gradients)."""
        self.model.eval()
        total_loss = correct = seen = 0
        with no_grad():
            for x, y in self.test_loader:
                out = self.model(x)
                total_loss += float(self.loss_fn(out, y, reduction="sum"))
                correct += int((out.argmax(1) == y).sum())
                seen += len(y)
        return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}

    def fit(self) -> dict:
        """Train until ``epochs``, evaluating every ``eval_every`` epochs; returns the summary."""
        eval_every = int(self.config.get("eval_every", 1))
        start = time.perf_counter()
        params = sum(p.numel() for p in self.model.parameters())
        self.log(f"model: {type(self.model).__name__} with {params:,} parameters; "
                 f"train {len(self.train_set)} / test {len(self.test_set)} samples")
        while self.epoch < self.epochs:
            train = self.train_epoch()
            self.epoch += 1
            record = {"epoch": self.epoch, "train_loss": train["loss"], "train_accuracy": train["accuracy"]}
            if self.epoch % eval_every == 0 or self.epoch == self.epochs:
                test = self.evaluate()
                record.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
            self.history.append(record)
            self.log(_format(record, train["samples_per_s"]))
            self._save()
        summary = {"epochs": self.epoch, "steps": self.step, "parameters": params,
                   "seconds": time.perf_counter() - start, "history": self.history}
        final = [h for h in self.history if "test_accuracy" in h]
        if final:
            summary["test_accuracy"] = final[-1]["test_accuracy"]
            summary["best_test_accuracy"] = max(h["test_accuracy"] for h in final)
            self.log(f"done: test accuracy {summary['test_accuracy']:.4f} (best "
                     f"{summary['best_test_accuracy']:.4f}) in {summary['seconds']:.1f} s, {self.step} steps")
        return summary


def _format(record: dict, rate: float) -> str:
    text = (f"epoch {record['epoch']:3d}  train loss {record['train_loss']:.4f}  "
            f"acc {record['train_accuracy']:.4f}")
    if "test_accuracy" in record:
        text += f"  | test loss {record['test_loss']:.4f}  acc {record['test_accuracy']:.4f}"
    return text + f"  ({rate:.0f} samples/s)"


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
