"""The ``ember`` command line."""
from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ember`` and ``python -m ember``."""
    parser = argparse.ArgumentParser(prog="ember", description="Ember deep-learning framework")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="version, devices and the primitive table")
    info.add_argument("--primitives", action="store_true", help="list every primitive and its rules")
    info.set_defaults(run=_info)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
