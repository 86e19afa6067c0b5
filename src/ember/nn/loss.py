"""Loss modules over the functional losses (PyTorch's names, arguments and reductions)."""
from __future__ import annotations

from .._core.tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss",
           "CosineEmbeddingLoss", "MarginRankingLoss", "TripletMarginLoss", "SoftMarginLoss",
           "MultiLabelSoftMarginLoss", "CTCLoss"]


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """Mean absolute error (see ``functional.l1_loss``).

    Shape: input and target of one shape; a scalar unless ``reduction='none'``.

    Example:
        >>> ember.nn.L1Loss()(ember.tensor([1.0]), ember.tensor([3.0])).item()
        2.0
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic below `beta`, linear above (see ``functional.smooth_l1_loss``).

    Example:
        >>> ember.nn.SmoothL1Loss()(ember.tensor([0.5]), ember.tensor([0.0])).item()
        0.125
    """

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, self.reduction, self.beta)


class HuberLoss(_Loss):
    """Quadratic below `delta`, linear (slope `delta`) above (see ``functional.huber_loss``).

    Example:
        >>> ember.nn.HuberLoss(delta=2.0)(ember.tensor([3.0]), ember.tensor([0.0])).item()
        4.0
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(input, target, self.reduction, self.delta)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy between probabilities and targets (logs clamped at -100).

    Example:
        >>> round(ember.nn.BCELoss()(ember.tensor([0.5]), ember.tensor([0.0])).item(), 4)
        0.6931
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid and binary cross-entropy in one stable step, with optional `weight` and `pos_weight`.

    Example:
        >>> round(ember.nn.BCEWithLogitsLoss()(ember.tensor([0.0]), ember.tensor([1.0])).item(), 4)
        0.6931
    """

    def __init__(self, weight: Tensor | None = None, reduction: str = "mean",
                 pos_weight: Tensor | None = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class KLDivLoss(_Loss):
    """KL divergence with log-probability inputs; ``reduction='batchmean'`` divides by the batch size.

    Example:
        >>> ember.nn.KLDivLoss(reduction="batchmean")(ember.tensor([[0.0]]), ember.tensor([[1.0]])).item()
        0.0
    """

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.kl_div(input, target, self.reduction, self.log_target)


class CosineEmbeddingLoss(_Loss):
    """Pull pairs together (target 1) or push them below a cosine `margin` (target -1).

    Example:
        >>> x = ember.tensor([[1.0, 0.0]])
        >>> ember.nn.CosineEmbeddingLoss()(x, x, ember.tensor([1.0])).item()
        0.0
    """

    def __init__(self, margin: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return F.cosine_embedding_loss(input1, input2, target, self.margin, self.reduction)


class MarginRankingLoss(CosineEmbeddingLoss):
    """``max(0, -y (x1 - x2) + margin)``.

    Example:
        >>> ember.nn.MarginRankingLoss()(ember.tensor([2.0]), ember.tensor([1.0]), ember.tensor([1.0])).item()
        0.0
    """

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return F.margin_ranking_loss(input1, input2, target, self.margin, self.reduction)


class TripletMarginLoss(_Loss):
    """``max(d(a, p) - d(a, n) + margin, 0)`` with p-norm distances; `swap` uses the closer negative.

    Example:
        >>> a = ember.tensor([[0.0, 0.0]])
        >>> ember.nn.TripletMarginLoss()(a, a, ember.tensor([[3.0, 4.0]])).item()
        0.0
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return F.triplet_margin_loss(anchor, positive, negative, self.margin, self.p, self.eps, self.swap,
                                     self.reduction)


class SoftMarginLoss(_Loss):
    """Logistic loss ``log(1 + exp(-y x))`` for targets ±1.

    Example:
        >>> round(ember.nn.SoftMarginLoss()(ember.tensor([0.0]), ember.tensor([1.0])).item(), 4)
        0.6931
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.soft_margin_loss(input, target, self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """Per-class logistic loss averaged over classes.

    Example:
        >>> round(ember.nn.MultiLabelSoftMarginLoss()(ember.zeros(1, 2), ember.ones(1, 2)).item(), 4)
        0.6931
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.multilabel_soft_margin_loss(input, target, self.weight, self.reduction)


class CTCLoss(_Loss):
    """Connectionist Temporal Classification loss (see ``functional.ctc_loss``).

    Args:
        blank: the blank label.
        reduction: 'none', 'sum' or 'mean' (per-target-length normalised, then averaged).
        zero_infinity: zero infinite losses and their gradients.

    Shape: log_probs (T, N, C), targets (N, S) or concatenated, lengths (N,) -> scalar or (N,).

    Example:
        >>> lp = ember.full((2, 1, 2), 0.5).log()
        >>> round(ember.nn.CTCLoss()(lp, ember.tensor([[1]]), [2], [1]).item(), 4)
        0.2877
    """

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> None:
        super().__init__(reduction)
        self.blank, self.zero_infinity = blank, zero_infinity

    def forward(self, log_probs: Tensor, targets: Tensor, input_lengths, target_lengths) -> Tensor:
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank, self.reduction,
                          self.zero_infinity)
