"""The Python examples of the user documentation run: each page's ```python blocks execute in order, in
a fresh namespace per page, so a change that breaks the documented behaviour fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import ember

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = [DOCS / "index.md", DOCS / "getting-started.md"] + sorted((DOCS / "guide").glob("*.md"))
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    """The source of every ```python block of `page`, in order."""
    return _BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_pages_exist_and_have_examples():
    names = {p.name for p in PAGES}
    assert {"index.md", "getting-started.md", "tensors.md", "autograd.md", "func.md", "errors.md"} <= names
    for page in PAGES:
        if page.name != "environment.md":
            assert python_blocks(page), f"{page.name} has no python example"


def test_block_extraction_finds_fenced_python_only(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n```python\nx = 1\n```\n```\nnot python\n```\n```python\ny = x + 1\n```\n")
    assert python_blocks(page) == ["x = 1\n", "y = x + 1\n"]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run(page, capsys):
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    default = ember.get_default_dtype()
    try:
        for i, block in enumerate(python_blocks(page)):
            code = compile(block, f"{page.relative_to(DOCS)} (python block {i + 1})", "exec")
            exec(code, namespace)
    finally:
        ember.set_default_dtype(default)
        ember.set_detect_anomaly(False)
