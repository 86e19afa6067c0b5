"""Smoke test of the benchmark harness: every workload runs at a tiny size (nothing is timed here)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds benchmarks/

pytest.importorskip("torch")
from benchmarks.__main__ import main  # noqa: E402
from benchmarks.harness import Row, Target, compare, format_markdown, format_table  # noqa: E402
from benchmarks.workloads import WORKLOADS  # noqa: E402


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workload_runs_and_reports_rows(name):
    rows = WORKLOADS[name](quick=True)
    assert rows and all(r.workload == name for r in rows)
    for r in rows:
        if r.note.startswith("skipped"):
            continue
        assert r.ember > 0 and math.isfinite(r.ember) and r.peers
        assert r.target is not None and r.target.peer in r.peers
        assert r.target_met() in (True, False)


def test_compare_returns_a_median_per_candidate():
    calls = {"a": 0}

    def a():
        calls["a"] += 1

    times = compare({"a": a, "b": lambda: None}, warmup=2, repeat=3, number=4)
    assert set(times) == {"a", "b"} and all(t >= 0 for t in times.values())
    assert calls["a"] == 2 + 3 * 4


def test_ratio_and_target_directions():
    slow = Row("w", "c", "ms", 3.0, {"numpy": 2.0}, Target("numpy", 1.2))
    assert slow.ratio("numpy") == 1.5 and slow.target_met() is False
    rate = Row("w", "c", "GFLOP/s", 96.0, {"numpy": 100.0}, Target("numpy", 0.95, higher_is_better=True))
    assert rate.target_met() is True
    table = format_table([slow, rate])
    assert "1.50x" in table and "NO" in table and ">= 0.95x numpy" in table
    assert format_markdown([slow]).count("\n") == 2


def test_command_line_writes_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    assert main(["op_overhead", "--quick", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["results"][0]["workload"] == "op_overhead"
    assert "ratios" in data["results"][0] and "op_overhead" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["no_such_workload"])
