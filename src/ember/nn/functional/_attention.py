"""Attention: scaled dot-product attention and the multi-head attention forward pass (PyTorch's semantics).

Both are compositions of matmul, softmax and masking, so they differentiate to any order and run
under vmap and jvp like any other composite.
"""
from __future__ import annotations

import math
from typing import Any

from ..._core import creation, dtypes
from ..._core.errors import DTypeError, ShapeError
from ..._core.primitives import elementwise as ew
from ..._core.primitives import linalg, movement, reduce
from ..._core.tensor import Tensor
from ._attention_kernel import causal_mask, fused_attention
from ._basic import dropout, linear
from ._softmax import softmax_last

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]

_NEG_INF = float("-inf")


def _check_mask_dtype(mask: Tensor, name: str, op: str) -> None:
    if mask.dtype.kind != dtypes._BOOL and not mask.dtype.is_floating_point:
        raise DTypeError(op, f"only bool and floating types of {name} are supported, got {mask.dtype}",
                         (mask,))


def _check_sdpa(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None, op: str) -> None:
    operands = (query, key, value)
    if any(t.ndim < 2 for t in operands):
        raise ShapeError(op, "query, key and value need at least 2 dimensions (..., length, features)",
                         operands)
    if not query.dtype is key.dtype is value.dtype:
        raise DTypeError(op, f"expected query, key and value to have the same dtype, got {query.dtype}, "
                         f"{key.dtype} and {value.dtype}", operands)
    if query.shape[-1] != key.shape[-1]:
        raise ShapeError(op, f"query and key must have the same feature size, got {query.shape[-1]} and "
                         f"{key.shape[-1]}", operands)
    if key.shape[-2] != value.shape[-2]:
        raise ShapeError(op, f"key and value must have the same length, got {key.shape[-2]} and "
                         f"{value.shape[-2]}", operands)
    batch = movement.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2], op=op,
                                      operands=operands)
    if attn_mask is not None:
        _check_mask_dtype(attn_mask, "attn_mask", op)
        scores = tuple(batch) + (query.shape[-2], key.shape[-2])
        full = movement.broadcast_shapes(scores, attn_mask.shape, op=op, operands=operands + (attn_mask,))
        if tuple(full) != scores:
            raise ShapeError(op, f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to the "
                             f"attention scores of shape {scores}", operands + (attn_mask,))


def _repeat_heads(query: Tensor, key: Tensor, value: Tensor, op: str) -> tuple[Tensor, Tensor]:
    """Grouped-query attention: repeat each key/value head for its group of query heads."""
    if min(query.ndim, key.ndim, value.ndim) < 3:
        raise ShapeError(op, "enable_gqa needs a heads dimension (..., heads, length, features)",
                         (query, key, value))
    hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
    if hk != hv or hq % hk:
        raise ShapeError(op, f"enable_gqa needs key and value with the same number of heads, dividing the "
                         f"{hq} query heads; got {hk} and {hv}", (query, key, value))
    return (movement.repeat_interleave(key, hq // hk, dim=-3),
            movement.repeat_interleave(value, hq // hk, dim=-3))


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """``softmax(q kᵀ · scale + mask) v``, as ``torch.nn.functional.scaled_dot_product_attention``.

    Args:
        query: ``(..., L, E)``.
        key: ``(..., S, E)``.
        value: ``(..., S, Ev)``; the leading dimensions of the three broadcast.
        attn_mask: broadcastable to ``(..., L, S)``; bool (True = may attend) or float (added to the
            scores, ``-inf`` to block).
        dropout_p: dropout probability on the attention weights (applied whenever > 0, as in PyTorch).
        is_causal: mask out keys after each query position (the top-left aligned lower triangle);
            cannot be combined with `attn_mask`.
        scale: score scale, ``1/√E`` by default.
        enable_gqa: repeat key/value heads (dimension -3) to match the query heads.

    Returns:
        ``(..., L, Ev)``. A query that may attend to no key gets zeros.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> q = k = v = ember.ones(2, 3, 4)
        >>> tuple(F.scaled_dot_product_attention(q, k, v, is_causal=True).shape)
        (2, 3, 4)
    """
    op = "scaled_dot_product_attention"
    if enable_gqa:
        key, value = _repeat_heads(query, key, value, op)
    _check_sdpa(query, key, value, attn_mask, op)
    if is_causal and attn_mask is not None:
        raise ShapeError(op, "an explicit attn_mask cannot be combined with is_causal=True", (attn_mask,))
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    if dropout_p <= 0:  # one fused primitive (a generated kernel on the CPU) where it applies
        out = fused_attention(query, key, value, attn_mask, scale, is_causal)
        if out is not None:
            return out
    scores = linalg.matmul(query, movement.transpose(key, -2, -1)) * scale
    if is_causal:
        attn_mask = causal_mask(query, key)
    if attn_mask is not None:
        if attn_mask.dtype.kind == dtypes._BOOL:
            scores = ew.where(attn_mask, scores, _NEG_INF)
        else:
            scores = scores + attn_mask
    weights = softmax_last(scores, safe=True)  # a fully masked row gives zeros
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, True)
    return linalg.matmul(weights, value)


# -- multi-head attention -----------------------------------------------------------------------------
def _additive_mask(mask: Tensor | None, name: str, dtype: Any, op: str) -> Tensor | None:
    """A bool mask (True = blocked) as a float mask of -inf/0; a float mask as it is."""
    if mask is None:
        return None
    _check_mask_dtype(mask, name, op)
    if mask.dtype.kind == dtypes._BOOL:
        return ew.convert(ew.where(mask, _NEG_INF, 0.0), dtype)
    return mask


def _heads(x: Tensor, length: int, batch_heads: int, head_dim: int) -> Tensor:
    """(length, batch, embed) -> (batch·heads, length, head_dim)."""
    return movement.transpose(movement.reshape(x, (length, batch_heads, head_dim)), 0, 1)


def _in_projection(query: Tensor, key: Tensor, value: Tensor, w: tuple, b: tuple) -> tuple:
    return tuple(linear(x, wi, bi) for x, wi, bi in zip((query, key, value), w, b))


def _check_mha_inputs(query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None,
                      attn_mask: Tensor | None, op: str) -> bool:
    """Shape checks; returns whether the inputs are batched."""
    operands = (query, key, value)
    if query.ndim not in (2, 3):
        raise ShapeError(op, f"query should be unbatched 2D or batched 3D, got shape {tuple(query.shape)}",
                         operands)
    batched = query.ndim == 3
    if key.ndim != query.ndim or value.ndim != query.ndim:
        raise ShapeError(op, f"for {query.ndim}-D query, key and value should be {query.ndim}-D too, got "
                         f"shapes {tuple(key.shape)} and {tuple(value.shape)}", operands)
    if key_padding_mask is not None and key_padding_mask.ndim != query.ndim - 1:
        raise ShapeError(op, f"for {query.ndim}-D query, key_padding_mask should be {query.ndim - 1}-D, got "
                         f"shape {tuple(key_padding_mask.shape)}", operands + (key_padding_mask,))
    if attn_mask is not None and attn_mask.ndim not in (2, 3):
        raise ShapeError(op, f"attn_mask should be 2-D or 3-D, got shape {tuple(attn_mask.shape)}",
                         operands + (attn_mask,))
    return batched


def _projection_weights(embed_dim: int, in_proj_weight: Tensor | None, in_proj_bias: Tensor | None,
                        use_separate: bool, separate: tuple) -> tuple[tuple, tuple]:
    if use_separate:
        if any(w is None for w in separate):
            raise ShapeError("multi_head_attention_forward", "use_separate_proj_weight needs q_proj_weight, "
                             "k_proj_weight and v_proj_weight")
        weights = separate
    else:
        weights = movement.split(in_proj_weight, embed_dim, 0)
    biases = (None,) * 3 if in_proj_bias is None else movement.split(in_proj_bias, embed_dim, 0)
    return tuple(weights), tuple(biases)


def _attn_mask_3d(attn_mask: Tensor | None, shape: tuple, op: str) -> Tensor | None:
    """A 2-D mask (L, S) gets a leading 1; both forms are checked against (batch·heads, L, S)."""
    if attn_mask is None:
        return None
    if attn_mask.ndim == 2:
        if tuple(attn_mask.shape) != shape[1:]:
            raise ShapeError(op, f"the shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should be "
                             f"{shape[1:]}", (attn_mask,))
        return movement.unsqueeze(attn_mask, 0)
    if tuple(attn_mask.shape) != shape:
        raise ShapeError(op, f"the shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should be "
                         f"{shape}", (attn_mask,))
    return attn_mask


def _append_column(x: Tensor, column: Tensor, dim: int) -> Tensor:
    return movement.cat([x, column], dim)


def _pad_last(mask: Tensor | None) -> Tensor | None:
    return None if mask is None else movement.pad(mask, (0, 1))


def multi_head_attention_forward(query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int,
                                 num_heads: int, in_proj_weight: Tensor | None, in_proj_bias: Tensor | None,
                                 bias_k: Tensor | None, bias_v: Tensor | None, add_zero_attn: bool,
                                 dropout_p: float, out_proj_weight: Tensor, out_proj_bias: Tensor | None,
                                 training: bool = True, key_padding_mask: Tensor | None = None,
                                 need_weights: bool = True, attn_mask: Tensor | None = None,
                                 use_separate_proj_weight: bool = False, q_proj_weight: Tensor | None = None,
                                 k_proj_weight: Tensor | None = None, v_proj_weight: Tensor | None = None,
                                 static_k: Tensor | None = None, static_v: Tensor | None = None,
                                 average_attn_weights: bool = True,
                                 is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
    """The forward pass of :class:`~ember.nn.MultiheadAttention`, as PyTorch's function of that name.

    Args:
        query: ``(L, N, E)`` or unbatched ``(L, E)``.
        key, value: ``(S, N, E_k)``, ``(S, N, E_v)`` (or unbatched).
        embed_dim_to_check: expected ``E``.
        num_heads: number of heads (``E`` must be divisible by it).
        in_proj_weight, in_proj_bias: packed ``(3E, E)`` projection and ``(3E,)`` bias.
        bias_k, bias_v: ``(1, 1, E)`` extra key/value appended to the sequence, or None.
        add_zero_attn: append a zero key/value per head.
        dropout_p: dropout on the attention weights (training only).
        out_proj_weight, out_proj_bias: output projection.
        training: apply dropout.
        key_padding_mask: ``(N, S)``; bool (True = ignore that key) or float (added).
        need_weights: also return the attention weights.
        attn_mask: ``(L, S)`` or ``(N·heads, L, S)``; bool (True = blocked) or float (added).
        use_separate_proj_weight: use `q_proj_weight`/`k_proj_weight`/`v_proj_weight` instead.
        static_k, static_v: ``(N·heads, S, E/heads)`` keys/values used as they are.
        average_attn_weights: average the returned weights over heads.
        is_causal: a hint that `attn_mask` is the causal mask (which must still be given); as in PyTorch,
            without `need_weights` and `key_padding_mask` the causal mask is then built from the key length
            (including any `bias_k` / zero-attention column) instead.

    Returns:
        ``(attn_output (L, N, E), attn_weights)``: weights ``(N, L, S)`` averaged or ``(N, heads, L, S)``,
        None without `need_weights`.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> x = ember.randn(3, 2, 4)
        >>> w, b = ember.randn(12, 4), ember.zeros(12)
        >>> out, attn = F.multi_head_attention_forward(x, x, x, 4, 2, w, b, None, None, False, 0.0,
        ...                                            ember.randn(4, 4), ember.zeros(4))
        >>> tuple(out.shape), tuple(attn.shape)
        ((3, 2, 4), (2, 3, 3))
    """
    op = "multi_head_attention_forward"
    batched = _check_mha_inputs(query, key, value, key_padding_mask, attn_mask, op)
    if not batched:
        query, key, value = (movement.unsqueeze(t, 1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = movement.unsqueeze(key_padding_mask, 0)
    tgt_len, bsz, embed_dim = query.shape
    if embed_dim != embed_dim_to_check:
        raise ShapeError(op, f"was expecting embedding dimension of {embed_dim_to_check}, but got "
                         f"{embed_dim}", (query,))
    if embed_dim % num_heads:
        raise ShapeError(op, f"embed_dim {embed_dim} not divisible by num_heads {num_heads}", (query,))
    head_dim = embed_dim // num_heads
    same_shape = tuple(key.shape) == tuple(value.shape)
    if (key.shape[:2] != value.shape[:2]) if use_separate_proj_weight else not same_shape:
        raise ShapeError(op, f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}",
                         (key, value))
    if key.shape[1] != bsz:
        raise ShapeError(op, f"query has batch size {bsz} but key has {key.shape[1]}", (query, key))
    key_padding_mask = _additive_mask(key_padding_mask, "key_padding_mask", query.dtype, op)
    attn_mask = _additive_mask(attn_mask, "attn_mask", query.dtype, op)
    if is_causal and attn_mask is None:
        raise ShapeError(op, "need attn_mask if specifying the is_causal hint")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # as PyTorch: the hint is trusted and the kernel builds the causal mask itself
    else:
        is_causal = False

    weights, biases = _projection_weights(embed_dim, in_proj_weight, in_proj_bias, use_separate_proj_weight,
                                          (q_proj_weight, k_proj_weight, v_proj_weight))
    q, k, v = _in_projection(query, key, value, weights, biases)
    attn_mask = _attn_mask_3d(attn_mask, (bsz * num_heads, tgt_len, key.shape[0]), op)
    if (bias_k is None) != (bias_v is None):
        raise ShapeError(op, "bias_k and bias_v must be given together")
    if bias_k is not None:
        if static_k is not None or static_v is not None:
            raise ShapeError(op, "bias cannot be added to static key/value")
        k = _append_column(k, movement.broadcast_to(bias_k, (1, bsz, embed_dim)), 0)
        v = _append_column(v, movement.broadcast_to(bias_v, (1, bsz, embed_dim)), 0)
        attn_mask, key_padding_mask = _pad_last(attn_mask), _pad_last(key_padding_mask)

    q = _heads(q, tgt_len, bsz * num_heads, head_dim)
    k = _static_or_heads(k, static_k, bsz * num_heads, head_dim, "static_k", op)
    v = _static_or_heads(v, static_v, bsz * num_heads, head_dim, "static_v", op)
    if add_zero_attn:
        zeros = creation.zeros(bsz * num_heads, 1, head_dim, dtype=q.dtype, device=q.device)
        k, v = _append_column(k, zeros, 1), _append_column(v, zeros, 1)
        attn_mask, key_padding_mask = _pad_last(attn_mask), _pad_last(key_padding_mask)
    src_len = k.shape[1]
    attn_mask = _merge_padding(attn_mask, key_padding_mask, bsz, num_heads, src_len, op)
    if not training:
        dropout_p = 0.0

    if need_weights:
        out, attn = _explicit_attention(q, k, v, attn_mask, dropout_p, head_dim)
    else:
        q, k, v = (movement.reshape(t, (bsz, num_heads) + tuple(t.shape[1:])) for t in (q, k, v))
        if attn_mask is not None and attn_mask.shape[0] == 1:
            attn_mask = movement.unsqueeze(attn_mask, 0)
        elif attn_mask is not None:
            attn_mask = movement.reshape(attn_mask, (bsz, num_heads, -1, src_len))
        out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
        out = movement.reshape(out, (bsz * num_heads, tgt_len, head_dim))
        attn = None
    out = movement.reshape(movement.transpose(out, 0, 1), (tgt_len * bsz, embed_dim))
    out = movement.reshape(linear(out, out_proj_weight, out_proj_bias), (tgt_len, bsz, embed_dim))
    if attn is not None:
        attn = movement.reshape(attn, (bsz, num_heads, tgt_len, src_len))
        if average_attn_weights:
            attn = reduce.mean(attn, 1)
        if not batched:
            attn = movement.squeeze(attn, 0)
    if not batched:
        out = movement.squeeze(out, 1)
    return out, attn


def _static_or_heads(x: Tensor, static: Tensor | None, batch_heads: int, head_dim: int, name: str,
                     op: str) -> Tensor:
    if static is None:
        return _heads(x, x.shape[0], batch_heads, head_dim)
    if static.ndim != 3 or static.shape[0] != batch_heads or static.shape[2] != head_dim:
        raise ShapeError(op, f"expecting {name} of shape ({batch_heads}, S, {head_dim}), got "
                         f"{tuple(static.shape)}", (static,))
    return static


def _merge_padding(attn_mask: Tensor | None, key_padding_mask: Tensor | None, bsz: int, num_heads: int,
                   src_len: int, op: str) -> Tensor | None:
    """Fold the (N, S) key padding mask into the (N·heads or 1, L, S) attention mask."""
    if key_padding_mask is None:
        return attn_mask
    if tuple(key_padding_mask.shape) != (bsz, src_len):
        raise ShapeError(op, f"expecting key_padding_mask shape of {(bsz, src_len)}, but got "
                         f"{tuple(key_padding_mask.shape)}", (key_padding_mask,))
    kpm = movement.broadcast_to(movement.reshape(key_padding_mask, (bsz, 1, 1, src_len)),
                                (bsz, num_heads, 1, src_len))
    kpm = movement.reshape(kpm, (bsz * num_heads, 1, src_len))
    return kpm if attn_mask is None else attn_mask + kpm


def _explicit_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, dropout_p: float,
                        head_dim: int) -> tuple[Tensor, Tensor]:
    """Attention that also returns its weights; fully masked rows give NaN, as in PyTorch."""
    scores = linalg.matmul(q * math.sqrt(1.0 / head_dim), movement.transpose(k, -2, -1))
    if attn_mask is not None:
        scores = scores + attn_mask
    weights = softmax_last(scores)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, True)
    return linalg.matmul(weights, v), weights
