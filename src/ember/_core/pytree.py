"""Minimal pytrees: nested tuples, lists and dicts (and None) with tensor or scalar leaves."""
from __future__ import annotations

from typing import Any, Callable


class TreeDef:
    """The structure of a pytree, without its leaves."""

    __slots__ = ("kind", "meta", "children")

    def __init__(self, kind: str, meta: Any, children: tuple):
        self.kind = kind
        self.meta = meta
        self.children = children

    def __eq__(self, other) -> bool:
        return isinstance(other, TreeDef) and (self.kind, self.meta, self.children) == \
            (other.kind, other.meta, other.children)

    def __hash__(self) -> int:
        return hash((self.kind, self.meta, self.children))

    def __repr__(self) -> str:
        return f"TreeDef({self.kind}, {self.meta}, {self.children})"


LEAF = TreeDef("leaf", None, ())


def flatten(tree: Any) -> tuple[list, TreeDef]:
    """The leaves of `tree` (depth first) and its structure."""
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list) -> TreeDef:
    if isinstance(tree, (tuple, list)) and not hasattr(tree, "_fields"):
        kind = "tuple" if isinstance(tree, tuple) else "list"
        return TreeDef(kind, len(tree), tuple(_flatten(t, leaves) for t in tree))
    if isinstance(tree, tuple):  # namedtuple
        return TreeDef("namedtuple", type(tree), tuple(_flatten(t, leaves) for t in tree))
    if isinstance(tree, dict):
        keys = tuple(tree.keys())
        return TreeDef("dict", keys, tuple(_flatten(tree[k], leaves) for k in keys))
    if tree is None:
        return TreeDef("none", None, ())
    leaves.append(tree)
    return LEAF


def unflatten(treedef: TreeDef, leaves) -> Any:
    """Rebuild a pytree of structure `treedef` from `leaves`."""
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(td: TreeDef, it) -> Any:
    if td.kind == "leaf":
        return next(it)
    if td.kind == "none":
        return None
    children = [_unflatten(c, it) for c in td.children]
    if td.kind == "tuple":
        return tuple(children)
    if td.kind == "list":
        return children
    if td.kind == "namedtuple":
        return td.meta(*children)
    return dict(zip(td.meta, children))


def tree_map(fn: Callable, tree: Any, *rest: Any) -> Any:
    """Apply `fn` to corresponding leaves of `tree` and `rest` (which share its structure)."""
    leaves, td = flatten(tree)
    others = [flatten(r)[0] for r in rest]
    return unflatten(td, [fn(*xs) for xs in zip(leaves, *others)])
