"""Basic functional ops: linear, dropout, core activations, softmax and the classification losses."""
from __future__ import annotations

from typing import Any

from ... import _core
from ..._core import creation
from ..._core.errors import DTypeError, ShapeError
from ..._core.primitives import elementwise as ew
from ..._core.primitives import indexing, linalg, movement, reduce
from ..._core.tensor import Tensor
from ._softmax import log_softmax_last, softmax_last

__all__ = ["linear", "dropout", "relu", "sigmoid", "tanh", "silu", "gelu", "softplus", "softmax",
           "log_softmax", "mse_loss", "nll_loss", "cross_entropy", "one_hot"]

# -- layers ---------------------------------------------------------------------------------------


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``. Shape: (*, in) -> (*, out); weight (out, in)."""
    if input.shape[-1] != weight.shape[-1]:
        raise ShapeError("linear", f"input has {input.shape[-1]} features but weight expects "
                         f"{weight.shape[-1]} (weight shape {tuple(weight.shape)})", (input, weight))
    lead = tuple(input.shape[:-1])
    if input.ndim > 2 and weight.ndim == 2:
        # One (rows, in) x (in, out) product instead of a stack of them: a single BLAS call forward, and
        # the weight gradient comes out of one product instead of a stack summed over the batch.
        rows = 1
        for s in lead:
            rows *= s
        input = movement.reshape(input, (rows, input.shape[-1]))
    out = linalg.matmul(input, movement.transpose(weight, 0, 1))
    if bias is not None:
        out = out + bias
    return movement.reshape(out, lead + (weight.shape[0],)) if len(lead) > 1 and weight.ndim == 2 else out


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
            generator: Any = None) -> Tensor:
    """Zero elements with probability `p` and scale the rest by 1/(1-p) (identity when not training)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    mask = _core.random.dropout_mask(tuple(input.shape), p, generator, device=input.device)
    return ew.where(mask, input * (1.0 / (1.0 - p)), 0.0)


# -- activations ----------------------------------------------------------------------------------
relu = ew.relu
sigmoid = ew.sigmoid
tanh = ew.tanh
silu = ew.silu


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """GELU: exact (``approximate='none'``) or with the tanh approximation (``'tanh'``)."""
    return ew.gelu_tanh(input) if approximate == "tanh" else ew.gelu(input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, linear where ``beta x > threshold``."""
    scaled = input * beta if beta != 1.0 else input
    soft = ew.softplus(scaled)
    soft = soft / beta if beta != 1.0 else soft
    return ew.where(scaled > threshold, input, soft)


def _shift(input: Tensor, dim: int) -> Tensor:
    """The slice maxima along `dim` as a constant (0 where not finite, so an all -inf slice is not shifted).

    Taken from the detached input: the result of softmax does not depend on the shift, so it needs no
    gradient (and no tape entries).
    """
    top = reduce.amax(input.detach(), dim, keepdim=True)
    return ew.where(ew.isfinite(top), top, 0.0)


def softmax(input: Tensor, dim: int, dtype: Any = None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along `dim`, computed stably."""
    if dtype is not None:
        input = ew.convert(input, dtype)
    if input.ndim and input.dtype.is_floating_point and dim in (-1, input.ndim - 1):
        return softmax_last(input)  # one primitive with a generated row kernel
    e = ew.exp(input - _shift(input, dim))
    return e / reduce.sum(e, dim, keepdim=True)


def log_softmax(input: Tensor, dim: int, dtype: Any = None) -> Tensor:
    """``x - logsumexp(x)`` along `dim`, as ``(x - m) - log(sum(exp(x - m)))`` with the slice maximum m."""
    if dtype is not None:
        input = ew.convert(input, dtype)
    if input.ndim and input.dtype.is_floating_point and dim in (-1, input.ndim - 1):
        return log_softmax_last(input)  # one primitive with a generated row kernel
    shifted = input - _shift(input, dim)
    return shifted - ew.log(reduce.sum(ew.exp(shifted), dim, keepdim=True))


# -- losses ---------------------------------------------------------------------------------------


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return reduce.mean(loss)
    if reduction == "sum":
        return reduce.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error."""
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError("mse_loss", f"input shape {tuple(input.shape)} and target shape "
                         f"{tuple(target.shape)} differ", (input, target))
    return _reduce((input - target) ** 2, reduction, "mse_loss")


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices given log-probabilities (N, C) or (N, C, d1, …)."""
    if target.dtype.kind != _core.dtypes._INT:
        raise DTypeError("nll_loss", f"target must hold class indices (an integer dtype), got "
                         f"{target.dtype}", (input, target))
    expected = tuple(input.shape[:1]) + tuple(input.shape[2:])
    if input.ndim < 1 or tuple(target.shape) != expected:
        raise ShapeError("nll_loss", f"expected target of shape {expected} for input of shape "
                         f"{tuple(input.shape)}, got {tuple(target.shape)}", (input, target))
    valid = target != ignore_index
    safe = ew.where(valid, target, 0)
    picked = movement.squeeze(indexing.gather(input, 1, movement.unsqueeze(safe, 1)), 1)
    w = ew.where(valid, 1.0, 0.0) if weight is None else ew.where(valid, _class_weights(weight, safe), 0.0)
    losses = -picked * w
    if reduction == "mean":
        return reduce.sum(losses) / reduce.sum(w)
    return _reduce(losses, reduction, "nll_loss")


def _class_weights(weight: Tensor, target: Tensor) -> Tensor:
    """The weight of each target's class, shaped like `target`."""
    return movement.reshape(indexing.index_select(weight, 0, movement.reshape(target, -1)), target.shape)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between logits (N, C, …) and class indices or class probabilities.

    Matches ``torch.nn.functional.cross_entropy`` including `weight`, `ignore_index` and
    `label_smoothing`.
    """
    logp = log_softmax(input, 1)
    n_classes = input.shape[1]
    if target.dtype.is_floating_point:  # class probabilities
        probs = target
        if label_smoothing:
            probs = target * (1 - label_smoothing) + label_smoothing / n_classes
        wshape = (1, n_classes) + (1,) * (input.ndim - 2)
        terms = logp * probs if weight is None else logp * probs * weight.reshape(wshape)
        return _reduce(-reduce.sum(terms, 1), reduction, "cross_entropy")
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    valid = ew.where(target != ignore_index, 1.0, 0.0)
    wshape = (1, n_classes) + (1,) * (input.ndim - 2)
    per_class = logp if weight is None else logp * weight.reshape(wshape)
    smooth = -reduce.sum(per_class, 1) * valid / n_classes
    if reduction == "mean":
        if weight is None:
            denom = reduce.sum(valid)
        else:
            denom = reduce.sum(_class_weights(weight, ew.where(target != ignore_index, target, 0)) * valid)
        smooth = reduce.sum(smooth) / denom
    else:
        smooth = _reduce(smooth, reduction, "cross_entropy")
    return nll * (1 - label_smoothing) + smooth * label_smoothing


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Int64 one-hot encoding with a new last dimension of size `num_classes`."""
    if num_classes < 0:
        num_classes = int(reduce.amax(tensor).item()) + 1
    classes = creation.arange(num_classes)
    return ew.convert(movement.unsqueeze(tensor, -1) == classes, _core.dtypes.int64)
