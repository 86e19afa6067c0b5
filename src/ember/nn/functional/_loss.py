"""Regression, binary, divergence, ranking and sequence losses (PyTorch's names and reductions).

The pointwise parts of the robust regression losses are formulas of the elementwise DSL. The CTC loss
is a primitive: its kernel runs the forward (alpha) recursion in log space, vectorised over the batch
and the label positions, and its VJP is a second kernel that runs alpha and beta and returns
``d loss / d log_probs``.
"""
from __future__ import annotations

import numpy as np

from ..._core import creation, dtypes
from ..._core.dispatch import bind
from ..._core.errors import DTypeError, ShapeError
from ..._core.primitive import Primitive
from ..._core.primitives import elementwise as ew
from ..._core.primitives import movement, reduce
from ..._core.primitives.elementwise import SAME, apply, elementwise
from ..._core.tensor import Tensor
from ._activation import logsigmoid
from ._basic import _reduce

__all__ = ["l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div", "cosine_embedding_loss", "margin_ranking_loss",
           "triplet_margin_loss", "pairwise_distance", "soft_margin_loss", "multilabel_soft_margin_loss",
           "ctc_loss"]

smooth_l1_p = elementwise("smooth_l1", "where(abs(d) < b, 0.5 * d * d / b, abs(d) - 0.5 * b)", SAME,
                          ("d", "b"))
huber_p = elementwise("huber", "where(abs(d) < k, 0.5 * d * d, k * (abs(d) - 0.5 * k))", SAME, ("d", "k"))


def _same_shape(op: str, input: Tensor, target: Tensor) -> None:
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError(op, f"input shape {tuple(input.shape)} and target shape {tuple(target.shape)} "
                         "differ", (input, target))


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean absolute error ``|input - target|``.

    Example:
        >>> F.l1_loss(ember.tensor([1.0, 2.0]), ember.tensor([0.0, 4.0])).item()
        1.5
    """
    _same_shape("l1_loss", input, target)
    return _reduce(ew.abs(input - target), reduction, "l1_loss")


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """``0.5 d² / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = input - target``).

    Example:
        >>> F.smooth_l1_loss(ember.tensor([0.5, 3.0]), ember.tensor([0.0, 0.0]), reduction="none").tolist()
        [0.125, 2.5]
    """
    _same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise ValueError("smooth_l1_loss does not support negative values for beta")
    d = input - target
    loss = ew.abs(d) if beta == 0 else apply(smooth_l1_p, d, beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """``0.5 d²`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``.

    Example:
        >>> F.huber_loss(ember.tensor([0.5, 3.0]), ember.tensor([0.0, 0.0]), reduction="none").tolist()
        [0.125, 2.5]
    """
    _same_shape("huber_loss", input, target)
    if delta <= 0:
        raise ValueError("huber_loss does not support non-positive values for delta")
    return _reduce(apply(huber_p, input - target, delta), reduction, "huber_loss")


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """``-w (t log p + (1 - t) log(1 - p))`` with the logs clamped at -100, as PyTorch does.

    Example:
        >>> round(F.binary_cross_entropy(ember.tensor([0.5]), ember.tensor([1.0])).item(), 4)
        0.6931
    """
    _same_shape("binary_cross_entropy", input, target)
    log_p = ew.clamp(ew.log(input), -100.0)
    log_q = ew.clamp(ew.log(1.0 - input), -100.0)
    loss = -(target * log_p + (1.0 - target) * log_q)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid plus binary cross-entropy in one stable formula.

    ``loss = (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)``, times `weight`.

    Example:
        >>> round(F.binary_cross_entropy_with_logits(ember.tensor([0.0]), ember.tensor([1.0])).item(), 4)
        0.6931
    """
    _same_shape("binary_cross_entropy_with_logits", input, target)
    soft = ew.softplus(-input)
    if pos_weight is None:
        loss = (1.0 - target) * input + soft
    else:
        loss = (1.0 - target) * input + (1.0 + (pos_weight - 1.0) * target) * soft
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence with `input` holding log-probabilities.

    ``t (log t - input)`` (0 where t = 0), or ``exp(t) (t - input)`` with `log_target`. ``'batchmean'``
    divides the sum by the batch size, the mathematically correct KL divergence.

    Example:
        >>> F.kl_div(ember.tensor([0.0]), ember.tensor([1.0]), reduction="sum").item()
        0.0
    """
    if log_target:
        loss = ew.exp(target) * (target - input)
    else:
        safe = ew.where(target > 0, target, 1.0)
        loss = ew.where(target > 0, target * ew.log(safe), 0.0) - target * input
    if reduction == "batchmean":
        total = reduce.sum(loss)
        return total / input.shape[0] if input.ndim > 0 else total
    return _reduce(loss, reduction, "kl_div")


def _check_target_values(op: str, target: Tensor) -> None:
    values = np.unique(np.asarray(target.detach().numpy()))
    if not np.isin(values, (-1, 1)).all():
        raise ShapeError(op, f"target must hold 1 or -1, got values {values.tolist()[:5]}", (target,))


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          reduction: str = "mean") -> Tensor:
    """``1 - cos(x1, x2)`` where target is 1, ``max(0, cos(x1, x2) - margin)`` where it is -1.

    Example:
        >>> F.cosine_embedding_loss(ember.tensor([[1.0, 0.0]]), ember.tensor([[1.0, 0.0]]),
        ...                         ember.tensor([1.0])).item()
        0.0
    """
    if input1.ndim not in (1, 2) or tuple(input1.shape) != tuple(input2.shape):
        raise ShapeError("cosine_embedding_loss", f"expected two 1-d or 2-d inputs of one shape, got "
                         f"{tuple(input1.shape)} and {tuple(input2.shape)}", (input1, input2))
    if tuple(target.shape) != tuple(input1.shape[:-1]):
        raise ShapeError("cosine_embedding_loss", f"target shape {tuple(target.shape)} does not match the "
                         f"inputs' batch shape {tuple(input1.shape[:-1])}", (input1, target))
    eps = 1e-12
    dot = reduce.sum(input1 * input2, -1)
    mag = ew.sqrt((reduce.sum(input1 * input1, -1) + eps) * (reduce.sum(input2 * input2, -1) + eps))
    cos = dot / mag
    pos = ew.where(target == 1, 1.0 - cos, 0.0)
    neg = ew.where(target == -1, ew.clamp(cos - margin, 0.0), 0.0)
    return _reduce(pos + neg, reduction, "cosine_embedding_loss")


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        reduction: str = "mean") -> Tensor:
    """``max(0, -target (x1 - x2) + margin)``.

    Example:
        >>> F.margin_ranking_loss(ember.tensor([1.0]), ember.tensor([2.0]), ember.tensor([1.0])).item()
        1.0
    """
    if not (tuple(input1.shape) == tuple(input2.shape) == tuple(target.shape)):
        raise ShapeError("margin_ranking_loss", f"input1 {tuple(input1.shape)}, input2 {tuple(input2.shape)} "
                         f"and target {tuple(target.shape)} must have one shape", (input1, input2, target))
    return _reduce(ew.clamp(-target * (input1 - input2) + margin, 0.0), reduction, "margin_ranking_loss")


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    """The p-norm of ``x1 - x2 + eps`` over the last dimension.

    Example:
        >>> round(F.pairwise_distance(ember.tensor([[0.0, 0.0]]), ember.tensor([[3.0, 4.0]])).item(), 3)
        5.0
    """
    return reduce.norm(x1 - x2 + eps, p, -1, keepdim)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0,
                        p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                        reduction: str = "mean") -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)`` with pairwise p-norm distances.

    With `swap`, ``d(a, n)`` is replaced by ``min(d(a, n), d(p, n))``.

    Example:
        >>> a = ember.tensor([[0.0, 0.0]])
        >>> F.triplet_margin_loss(a, a, ember.tensor([[3.0, 4.0]])).item()
        0.0
    """
    ndims = (anchor.ndim, positive.ndim, negative.ndim)
    if len(set(ndims)) != 1 or ndims[0] not in (1, 2):
        raise ShapeError("triplet_margin_loss", f"anchor, positive and negative must all be 1-d or all 2-d, "
                         f"got {ndims[0]}-d, {ndims[1]}-d and {ndims[2]}-d", (anchor, positive, negative))
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = ew.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(ew.clamp(margin + d_pos - d_neg, 0.0), reduction, "triplet_margin_loss")


def soft_margin_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """``log(1 + exp(-target * input))``.

    Example:
        >>> round(F.soft_margin_loss(ember.tensor([0.0]), ember.tensor([1.0])).item(), 4)
        0.6931
    """
    _same_shape("soft_margin_loss", input, target)
    return _reduce(ew.softplus(-target * input), reduction, "soft_margin_loss")


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                reduction: str = "mean") -> Tensor:
    """Per-class logistic loss averaged over the classes (dimension -1) of each sample.

    Example:
        >>> x, y = ember.tensor([[0.0, 0.0]]), ember.tensor([[1.0, 0.0]])
        >>> round(F.multilabel_soft_margin_loss(x, y).item(), 4)
        0.6931
    """
    _same_shape("multilabel_soft_margin_loss", input, target)
    loss = -(target * logsigmoid(input) + (1.0 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    return _reduce(reduce.mean(loss, -1), reduction, "multilabel_soft_margin_loss")


# -- CTC ------------------------------------------------------------------------------------------
def _ctc_setup(lp, targets, in_len, tg_len, blank):
    """Extended label sequences (blank, l1, blank, l2, …, blank) and their log-probabilities."""
    steps, batch, _ = lp.shape
    width = 2 * targets.shape[1] + 1
    ext = np.full((batch, width), blank, dtype=np.int64)
    ext[:, 1::2] = targets
    pos = np.arange(width)
    valid = pos[None, :] < 2 * tg_len[:, None] + 1
    ext = np.where(valid, ext, blank)
    skip = np.zeros((batch, width), dtype=bool)  # s-2 -> s allowed: a label differing from the one before
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    lpe = np.take_along_axis(lp, np.broadcast_to(ext[None], (steps, batch, width)), axis=2)
    lpe = np.where(valid[None], lpe, -np.inf)
    return ext, skip, lpe


def _shift(a, k):
    out = np.full_like(a, -np.inf)
    if k < a.shape[-1]:
        out[..., k:] = a[..., :a.shape[-1] - k]
    return out


def _ctc_alpha(lpe, skip, in_len):
    steps, batch, width = lpe.shape
    alpha = np.full((steps, batch, width), -np.inf, dtype=lpe.dtype)
    if steps == 0:
        return alpha
    alpha[0, :, :2] = lpe[0, :, :2]
    for t in range(1, steps):
        prev = alpha[t - 1]
        acc = np.logaddexp(prev, _shift(prev, 1))
        acc = np.logaddexp(acc, np.where(skip, _shift(prev, 2), -np.inf))
        alpha[t] = acc + lpe[t]
    return alpha


def _ctc_beta(lpe, skip, in_len, tg_len):
    steps, batch, width = lpe.shape
    beta = np.full((steps, batch, width), -np.inf, dtype=lpe.dtype)
    ends = np.stack([2 * tg_len, 2 * tg_len - 1], 1)  # the last blank and the last label
    end_ok = np.stack([np.ones_like(tg_len, dtype=bool), tg_len > 0], 1)
    rows = np.arange(batch)
    skip_next = np.zeros_like(skip)  # s -> s+2 allowed when s+2 may be reached by skipping
    skip_next[:, :-2] = skip[:, 2:]
    for t in range(steps - 1, -1, -1):
        if t < steps - 1:
            nxt = beta[t + 1]
            acc = np.logaddexp(nxt, np.concatenate([nxt[:, 1:], np.full((batch, 1), -np.inf)], 1))
            two = np.concatenate([nxt[:, 2:], np.full((batch, 2), -np.inf)], 1)
            acc = np.logaddexp(acc, np.where(skip_next, two, -np.inf))
            beta[t] = np.where((t < in_len - 1)[:, None], acc + lpe[t], -np.inf)
        last = t == in_len - 1
        for j in range(2):
            sel = last & end_ok[:, j]
            beta[t, rows[sel], ends[sel, j]] = lpe[t, rows[sel], ends[sel, j]]
    return beta


def _ctc_nll(lp, targets, in_len, tg_len, blank):
    _, skip, lpe = _ctc_setup(lp, targets, in_len, tg_len, blank)
    alpha = _ctc_alpha(lpe, skip, in_len)
    rows = np.arange(lp.shape[1])
    last = np.maximum(in_len - 1, 0)
    end_blank = alpha[last, rows, 2 * tg_len]
    end_label = np.where(tg_len > 0, alpha[last, rows, np.maximum(2 * tg_len - 1, 0)], -np.inf)
    ll = np.logaddexp(end_blank, end_label)
    ll = np.where(in_len > 0, ll, np.where(tg_len == 0, 0.0, -np.inf))
    return -ll


def _ctc_impl(xp, lp, targets, in_len, tg_len, blank, zero_infinity):
    nll = _ctc_nll(lp, targets, in_len, tg_len, blank)
    if zero_infinity:
        nll = np.where(np.isinf(nll), 0.0, nll)
    return nll.astype(lp.dtype)


def _ctc_grad_impl(xp, lp, targets, in_len, tg_len, blank, zero_infinity):
    """d nll_n / d log_probs[t, n, c] = -sum_{s: ext_s = c} exp(alpha + beta - lp - log p) (t < T_n)."""
    ext, skip, lpe = _ctc_setup(lp, targets, in_len, tg_len, blank)
    alpha = _ctc_alpha(lpe, skip, in_len)
    beta = _ctc_beta(lpe, skip, in_len, tg_len)
    nll = _ctc_nll(lp, targets, in_len, tg_len, blank)
    ab = alpha + beta  # (T, N, S')
    top = np.max(ab, axis=2, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    onehot = (ext[:, :, None] == np.arange(lp.shape[2])).astype(lp.dtype)  # (N, S', C)
    summed = np.einsum("tns,nsc->tnc", np.exp(ab - top), onehot)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        grad = -summed * np.exp(top + nll[None, :, None] - lp)
    bad = ~np.isfinite(nll)
    grad = np.where(bad[None, :, None], 0.0 if zero_infinity else np.nan, grad)
    grad = np.where(np.isfinite(grad) | bad[None, :, None], grad, 0.0)
    return grad.astype(lp.dtype)


ctc_grad_p = Primitive("ctc_loss_grad", _ctc_grad_impl, nondiff_inputs=(1, 2, 3),
                       doc="d ctc_loss / d log_probs, per batch element")


def _ctc_vjp(g, out, lp, targets, in_len, tg_len, blank, zero_infinity):
    grad = bind(ctc_grad_p, lp, targets, in_len, tg_len, blank=blank, zero_infinity=zero_infinity)
    return (grad * movement.reshape(g, (1, -1, 1)), None, None, None)


ctc_p = Primitive("ctc_loss", _ctc_impl, vjp=_ctc_vjp, nondiff_inputs=(1, 2, 3),
                  doc="per-sample CTC negative log-likelihood")


def _lengths(value, batch: int, name: str, log_probs: Tensor) -> np.ndarray:
    host = value.detach().numpy() if isinstance(value, Tensor) else value
    arr = np.asarray(host, dtype=np.int64).reshape(-1)
    if arr.shape != (batch,):
        raise ShapeError("ctc_loss", f"{name} must hold one length per batch element ({batch}), got shape "
                         f"{arr.shape}", (log_probs,))
    return arr


def _padded_targets(targets: Tensor, tg_len: np.ndarray, log_probs: Tensor) -> np.ndarray:
    tg = np.asarray(targets.detach().numpy(), dtype=np.int64)
    if tg.ndim == 2:
        if tg.shape[0] != tg_len.shape[0] or (tg_len > tg.shape[1]).any():
            raise ShapeError("ctc_loss", f"padded targets of shape {tg.shape} do not fit target lengths "
                             f"{tg_len.tolist()}", (log_probs, targets))
        return tg
    if tg.ndim != 1 or tg.shape[0] != tg_len.sum():
        raise ShapeError("ctc_loss", f"concatenated targets must be 1-d with sum(target_lengths) = "
                         f"{int(tg_len.sum())} elements, got shape {tg.shape}", (log_probs, targets))
    out = np.zeros((tg_len.shape[0], int(tg_len.max(initial=0))), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(tg_len)[:-1]])
    for i, (s, n) in enumerate(zip(starts, tg_len)):  # one copy per sequence, done once on the host
        out[i, :n] = tg[s:s + n]
    return out


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """Connectionist Temporal Classification loss.

    Args:
        log_probs: (T, N, C) or unbatched (T, C) log-probabilities (e.g. from ``log_softmax``).
        targets: (N, S) padded label sequences, or 1-d with all sequences concatenated.
        input_lengths: (N,) number of valid time steps of each sequence.
        target_lengths: (N,) length of each target sequence.
        blank: the blank label.
        reduction: 'none' (per-sequence losses), 'sum', or 'mean' (each loss divided by its target
            length, then averaged over the batch).
        zero_infinity: replace infinite losses (impossible alignments) and their gradients by zero.

    The gradient is the exact derivative with respect to `log_probs`; PyTorch returns the gradient with
    respect to the logits of a ``log_softmax`` instead. Both give the same gradient for the logits when
    `log_probs` comes from ``log_softmax``.

    Example:
        >>> lp = ember.full((2, 1, 2), 0.5).log()  # paths "1 1", "_ 1", "1 _": p = 3/4
        >>> round(F.ctc_loss(lp, ember.tensor([[1]]), [2], [1]).item(), 4)
        0.2877
    """
    if not log_probs.dtype.is_floating_point:
        raise DTypeError("ctc_loss", f"log_probs must be floating point, got {log_probs.dtype}", (log_probs,))
    unbatched = log_probs.ndim == 2
    if unbatched:
        log_probs = movement.unsqueeze(log_probs, 1)
        targets = movement.unsqueeze(targets, 0) if targets.ndim == 1 else targets
    if log_probs.ndim != 3:
        raise ShapeError("ctc_loss", f"log_probs must be (T, N, C) or (T, C), got shape "
                         f"{tuple(log_probs.shape)}", (log_probs,))
    steps, batch, classes = log_probs.shape
    in_len = _lengths(input_lengths, batch, "input_lengths", log_probs)
    tg_len = _lengths(target_lengths, batch, "target_lengths", log_probs)
    if (in_len > steps).any() or (in_len < 0).any() or (tg_len < 0).any():
        raise ShapeError("ctc_loss", f"input lengths {in_len.tolist()} must lie in [0, {steps}]",
                         (log_probs,))
    padded = _padded_targets(targets, tg_len, log_probs)
    if padded.size and ((padded < 0) | (padded >= classes)).any() or not 0 <= blank < classes:
        raise ShapeError("ctc_loss", f"target labels and blank ({blank}) must lie in [0, {classes})",
                         (log_probs, targets))
    args = [creation.tensor(a, dtype=dtypes.int64) for a in (padded, in_len, tg_len)]
    nll = bind(ctc_p, log_probs, *args, blank=int(blank), zero_infinity=bool(zero_infinity))
    if unbatched and reduction == "none":
        return movement.squeeze(nll, 0)
    if reduction == "mean":
        return reduce.mean(nll / ew.clamp(ew.convert(args[2], nll.dtype), 1.0))
    return _reduce(nll, reduction, "ctc_loss")
