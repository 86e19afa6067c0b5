"""The kernel IR: a loop nest over one broadcast output shape computing scalar expressions.

A :class:`Kernel` is what a fused group lowers to. Its loop nest runs over the output shape after
*coalescing* (adjacent dimensions along which every operand is either contiguous or broadcast merge
into one), so a fully contiguous group has one flat loop. Each input carries a broadcast mask (stride
zero on broadcast dimensions); the strides of the others follow from the loop extents, since inputs
are C-contiguous in their own shape. The body is one scalar expression (of :mod:`ember._core.expr`)
per output. Renderers (C now, CUDA beside it) read this IR and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..._core import expr

SCALAR_TYPES = ("float32", "float64", "bool")


@dataclass(frozen=True)
class Operand:
    """A kernel input: its name in the expressions, its element type and its broadcast mask.

    ``broadcast[d]`` is True when the input is repeated along loop dimension ``d`` (stride zero).
    """

    name: str
    dtype: str
    broadcast: tuple[bool, ...]


@dataclass(frozen=True)
class Kernel:
    """A loop nest over ``ndim`` dimensions (extents passed at run time) writing one output per
    expression, all of element type ``dtype``; ``comment`` lines head the generated source.

    With ``reduce``, the one output is summed along the last loop dimension (in a float64
    accumulator), so the kernel writes one value per row.
    """

    name: str
    dtype: str
    ndim: int
    inputs: tuple[Operand, ...]
    outputs: tuple[expr.Expr, ...]
    comment: tuple[str, ...] = ()
    reduce: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"kernels compute in float32 or float64, not {self.dtype}")
        for op in self.inputs:
            if op.dtype not in SCALAR_TYPES or len(op.broadcast) != self.ndim:
                raise ValueError(f"bad kernel operand {op}")
        if self.reduce and (len(self.outputs) != 1 or self.ndim < 2):
            raise ValueError("a reducing kernel has one output and at least two loop dimensions")


def broadcast_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The NumPy broadcast of `shapes` (they are assumed compatible)."""
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        for d, n in enumerate(s, rank - len(s)):
            if n != 1:
                out[d] = n
    return tuple(out)


def coalesce(out_shape: tuple[int, ...], shapes: list[tuple[int, ...]]
             ) -> tuple[tuple[int, ...], tuple[tuple[bool, ...], ...]]:
    """Loop extents and per-input broadcast masks for inputs of `shapes` broadcast to `out_shape`.

    Dimensions of extent 1 are dropped and neighbours with the same mask in every input are merged;
    the result has at least one dimension.

    Example:
        >>> coalesce((4, 3, 5), [(4, 3, 5), (5,)])
        ((12, 5), ((False, False), (True, False)))
    """
    rank = len(out_shape)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    dims: list[int] = []
    masks: list[list[bool]] = [[] for _ in shapes]
    for d, n in enumerate(out_shape):
        if n == 1:
            continue
        col = [p[d] == 1 for p in padded]
        if dims and all(m[-1] == c for m, c in zip(masks, col)):
            dims[-1] *= n
            continue
        dims.append(n)
        for m, c in zip(masks, col):
            m.append(c)
    if not dims:
        return (1,), tuple((False,) for _ in shapes)
    return tuple(dims), tuple(tuple(m) for m in masks)


def coalesce_reduce(out_shape: tuple[int, ...], shapes: list[tuple[int, ...]], r: int
                    ) -> tuple[tuple[int, ...], tuple[tuple[bool, ...], ...]] | None:
    """Like :func:`coalesce` for a sum over the last `r` dimensions: the kept dimensions and the summed
    ones coalesce separately, and the summed ones must become one loop dimension (else None).

    Example:
        >>> coalesce_reduce((4, 3, 5), [(4, 3, 5), (5,)], 1)
        ((12, 5), ((False, False), (True, False)))
    """
    rank = len(out_shape)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    outer = coalesce(out_shape[:rank - r], [p[:rank - r] for p in padded])
    inner = coalesce(out_shape[rank - r:], [p[rank - r:] for p in padded])
    if len(inner[0]) != 1:
        return None
    masks = tuple(a + b for a, b in zip(outer[1], inner[1]))
    return outer[0] + inner[0], masks
