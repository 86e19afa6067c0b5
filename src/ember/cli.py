"""The ``ember`` command line."""
from __future__ import annotations

import argparse
import json
import sys


def _info(args: argparse.Namespace) -> int:
    import ember
    from ember._core.device import _BACKENDS
    from ember._core.primitive import PRIMITIVES

    print(f"ember {ember.__version__}")
    print(f"devices: {', '.join(sorted(_BACKENDS))}")
    print(f"primitives: {len(PRIMITIVES)}")
    if args.primitives:
        for name in sorted(PRIMITIVES):
            p = PRIMITIVES[name]
            rules = [r for r in ("vjp", "jvp", "batch") if getattr(p, r) is not None]
            print(f"  {name:28s} {' '.join(rules)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .trainer import Trainer, load_config

    config = load_config(args.config)
    if args.epochs is not None:
        config["epochs"] = args.epochs
    if args.compile:
        config["compile"] = True
    trainer = Trainer(config, checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                      progress=not args.no_progress)
    summary = trainer.fit()
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ember`` and ``python -m ember``."""
    parser = argparse.ArgumentParser(prog="ember", description="Ember deep-learning framework")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="version, devices and the primitive table")
    info.add_argument("--primitives", action="store_true", help="list every primitive and its rules")
    info.set_defaults(run=_info)
    train = sub.add_parser("train", help="train a model from a config file (JSON or YAML)")
    train.add_argument("config", help="path to the run's config")
    train.add_argument("--epochs", type=int, default=None, help="override the config's number of epochs")
    train.add_argument("--checkpoint-dir", default=None, help="write last.ckpt here after every epoch")
    train.add_argument("--resume", default=None,
                       help="continue from this checkpoint ('auto': the checkpoint dir's last.ckpt)")
    train.add_argument("--compile", action="store_true",
                       help="compile each training step with ember.jit (as the config's \"compile\": true)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--summary-json", default=None, help="write the final summary here")
    train.set_defaults(run=_train)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
