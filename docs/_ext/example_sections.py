"""Griffe extension for the API pages: read a Google-style ``Example:`` section as ``Examples:``.

Ember's docstrings title their doctest section ``Example:``; Griffe parses only ``Examples:`` into
code, and renders ``Example:`` as an admonition in which ``>>>`` would read as quotes.
"""
from __future__ import annotations

import re

import griffe

_TITLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section titles to ``Examples:`` before docstrings are parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _TITLE.sub(r"\1Examples:", obj.docstring.value)
