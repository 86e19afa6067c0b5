PYTHON ?= python3

.PHONY: install install-test demo train test bench docs

install:
	$(PYTHON) -m pip install -q -e ".[examples]"

install-test:
	$(PYTHON) -m pip install -q -e ".[test]"

demo: install
	$(PYTHON) examples/quickstart.py

train: install
	$(PYTHON) -m ember train configs/digits_cnn.json --checkpoint-dir runs/digits-cnn

test: install-test
	$(PYTHON) -m ruff check src tests benchmarks examples
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest tests

bench: install-test
	$(PYTHON) -m benchmarks

docs:
	$(PYTHON) -m pip install -q -e ".[docs]"
	$(PYTHON) -m mkdocs build --strict
