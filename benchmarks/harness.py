"""The one benchmark harness: timing (warm-up, repeats, median) and the results table.

Every workload measures Ember and its peers in the same process with :func:`compare`, which
interleaves the candidates repeat by repeat so that machine noise hits all of them alike, and
returns :class:`Row` records that :func:`format_table` prints with the ratio Ember/peer and the
target the ratio is held to.
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable


@dataclass
class Target:
    """The goal a row's ratio is held to: ``ratio <op> limit`` against ``peer``.

    For times (lower is better) the goal reads ``ember/peer <= limit``; for rates such as GFLOP/s
    (higher is better) it reads ``ember/peer >= limit``.
    """

    peer: str
    limit: float
    higher_is_better: bool = False

    def met(self, ratio: float) -> bool:
        return ratio >= self.limit if self.higher_is_better else ratio <= self.limit

    def __str__(self) -> str:
        return f"{'>=' if self.higher_is_better else '<='} {self.limit:g}x {self.peer}"


@dataclass
class Row:
    """One measured case: Ember's value and each peer's, in `unit`, with an optional target."""

    workload: str
    case: str
    unit: str
    ember: float
    peers: dict[str, float] = field(default_factory=dict)
    target: Target | None = None
    note: str = ""

    def ratio(self, peer: str) -> float:
        """Ember's value divided by `peer`'s (a time ratio or a rate ratio, as the unit says)."""
        return self.ember / self.peers[peer]

    def target_met(self) -> bool | None:
        if self.target is None or self.target.peer not in self.peers:
            return None
        return self.target.met(self.ratio(self.target.peer))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratios"] = {p: self.ratio(p) for p in self.peers}
        d["target"] = None if self.target is None else str(self.target)
        d["target_met"] = self.target_met()
        return d


def skipped(workload: str, case: str, reason: str) -> Row:
    """A row for a case that could not run (printed with its reason, never counted as a pass)."""
    return Row(workload, case, "", float("nan"), note=f"skipped: {reason}")


def time_once(fn: Callable[[], object], number: int) -> float:
    """Seconds per call of `fn` over `number` back-to-back calls (garbage collection paused)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        if enabled:
            gc.enable()


def compare(candidates: dict[str, Callable[[], object]], *, warmup: int = 2, repeat: int = 7,
            number: int = 1) -> dict[str, float]:
    """Median seconds per call of each candidate.

    Args:
        candidates: name -> zero-argument callable (e.g. ``{"ember": f, "numpy": g}``).
        warmup: untimed calls of each candidate first (caches, pools, lazy kernel compilation).
        repeat: timed repeats; the candidates take turns in each repeat.
        number: calls per repeat (raise it for microsecond-scale work).

    Returns:
        name -> median over the repeats of the seconds per call.

    Example:
        >>> compare({"sum": lambda: sum(range(10))}, warmup=1, repeat=3, number=10)["sum"] > 0
        True
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            samples[name].append(time_once(fn, number))
    return {name: statistics.median(s) for name, s in samples.items()}


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_table(rows: list[Row]) -> str:
    """A plain-text table: case, unit, Ember, each peer with Ember/peer, the target and whether it is met."""
    header = ["workload", "case", "unit", "ember", "peers (value, ember/peer)", "target", "met"]
    lines = []
    for r in rows:
        peers = ", ".join(f"{p} {_fmt(v)} ({r.ratio(p):.2f}x)" for p, v in r.peers.items()) or r.note
        met = r.target_met()
        flag = "" if met is None else ("yes" if met else "NO")
        lines.append([r.workload, r.case, r.unit, _fmt(r.ember), peers, str(r.target or ""), flag])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths)),
           "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def format_markdown(rows: list[Row]) -> str:
    """The same table in Markdown (for the README)."""
    out = ["| workload | case | unit | ember | peers (value, ember/peer) | target | met |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        peers = ", ".join(f"{p} {_fmt(v)} ({r.ratio(p):.2f}x)" for p, v in r.peers.items()) or r.note
        met = r.target_met()
        flag = "" if met is None else ("yes" if met else "**no**")
        cells = [r.workload, r.case, r.unit, _fmt(r.ember), peers, str(r.target or ""), flag]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)
