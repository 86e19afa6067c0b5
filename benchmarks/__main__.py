"""``python -m benchmarks [WORKLOAD ...] [--quick] [--json PATH]``: run workloads and print the table."""
from __future__ import annotations

import argparse
import json
import platform
import sys

from .harness import format_table
from .workloads import WORKLOADS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                        help=f"workloads to run (default: all of {', '.join(WORKLOADS)})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (checks, not timings)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH as JSON")
    args = parser.parse_args(argv)
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    rows = []
    for name in args.workloads or list(WORKLOADS):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += WORKLOADS[name](quick=args.quick)
    print(format_table(rows))
    for r in rows:
        if r.note:
            print(f"{r.workload} {r.case}: {r.note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.platform(), "quick": args.quick,
                       "results": [r.to_dict() for r in rows]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
