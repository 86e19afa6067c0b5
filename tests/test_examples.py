"""The examples run and learn (small settings; the README's main job uses the defaults)."""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_trains_a_digits_classifier():
    accuracy = _load("quickstart").main(epochs=4)
    assert accuracy > 0.9


def _char_gpt(tmp_path, compile):
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question.\n" * 40)
    return _load("char_gpt").main(str(text), steps=30, batch_size=8, block_size=16, n_layer=1, n_head=2,
                                  n_embd=16, sample_chars=20, log_every=10, prompt="to be", lr=2e-2,
                                  compile=compile)


def test_char_gpt_example_learns_on_a_small_text(tmp_path):
    result = _char_gpt(tmp_path, compile=False)
    assert result["final_loss"] < result["first_loss"] - 0.5, result
    assert result["sample"].startswith("to be") and len(result["sample"]) == 25


def test_char_gpt_example_compiled_gives_the_eager_losses(tmp_path):
    # a cosine schedule and gradient clipping inside one compiled step
    eager, compiled = _char_gpt(tmp_path, compile=False), _char_gpt(tmp_path, compile=True)
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=1e-4)
