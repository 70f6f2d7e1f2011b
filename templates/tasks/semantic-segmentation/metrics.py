"""Segmentation metrics from one confusion matrix accumulated over the whole validation set.

IoU (Jaccard) per class c is TP / (TP + FP + FN) of the dataset-level confusion matrix, the PASCAL VOC
definition (Everingham et al. 2010, IJCV 88:303, section 4.2): summing the matrix over all images and only then
dividing is not the same as averaging per-batch or per-image IoUs, which overweights small images and classes
that are absent from a batch. mIoU averages the classes that occur in the predictions or the labels; a class
absent from both has no IoU (0/0) and is left out of the mean, not counted as 0 or 1. Dice per class is
2TP / (2TP + FP + FN) on the same matrix (dataset-level, not averaged per image); pixel accuracy is the trace
over all labelled pixels. Pixels labelled 255 are not counted anywhere.

Under DDP each rank holds the matrix of its shard; ``compute`` all-reduces (sums) it once, so every rank gets
the metrics of the whole split. Counts are int64: exact at any dataset size.
"""

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = 255


class ConfusionMatrix:
    """Rows: labelled class, columns: predicted class; plus the summed cross-entropy of the labelled pixels."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.reduced = False

    def update(self, logits: Tensor | tuple[Tensor, ...], targets: Tensor) -> None:
        """Add a batch: ``logits`` B x C x H x W (or a tuple whose first item is), ``targets`` B x H x W."""
        if isinstance(logits, tuple | list):
            logits = logits[0]
        logits = logits.float()
        self.loss_sum += F.cross_entropy(logits, targets, ignore_index=self.ignore_index, reduction="sum")
        self.add(logits.argmax(1), targets)

    def add(self, predicted: Tensor, targets: Tensor) -> None:
        """Add class-index maps (any shape, equal shapes); labels equal to the ignore index are skipped."""
        n = self.num_classes
        valid = targets != self.ignore_index
        pairs = targets[valid].long() * n + predicted[valid].long()
        self.matrix += torch.bincount(pairs, minlength=n * n).view(n, n)

    def all_reduce(self) -> None:
        """Sum the matrix and the loss over all ranks (once; a no-op without torch.distributed)."""
        if dist.is_available() and dist.is_initialized() and not self.reduced:
            dist.all_reduce(self.matrix)
            dist.all_reduce(self.loss_sum)
            self.reduced = True

    def iou(self) -> Tensor:
        """Per-class IoU in [0, 1], NaN for a class absent from both the labels and the predictions."""
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))

    def dice(self) -> Tensor:
        """Per-class Dice (F1) in [0, 1], NaN where the class is absent from both."""
        m = self.matrix.double()
        tp = m.diag()
        denom = m.sum(0) + m.sum(1)
        return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.full_like(tp, math.nan))

    def pixel_accuracy(self) -> float:
        total = int(self.matrix.sum())
        return float(self.matrix.diag().sum()) / total if total else math.nan

    def summary(self) -> dict[str, float]:
        """``val_loss`` (mean per labelled pixel), ``val_miou``, ``val_dice``, ``val_pixel_acc`` (percent)."""
        self.all_reduce()
        count = int(self.matrix.sum())
        return {
            "val_loss": float(self.loss_sum) / count if count else math.nan,
            "val_miou": 100 * float(self.iou().nanmean()),
            "val_dice": 100 * float(self.dice().nanmean()),
            "val_pixel_acc": 100 * self.pixel_accuracy(),
        }
