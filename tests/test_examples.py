"""The examples run and learn (small settings; the README's main job uses the defaults)."""
from __future__ import annotations

import importlib.util
import pathlib

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_trains_a_digits_classifier():
    accuracy = _load("quickstart").main(epochs=4)
    assert accuracy > 0.9
