"""The segmentation loss: cross-entropy with the ignore index, optional soft Dice, optional class weights.

* Cross-entropy per pixel, ignoring label 255 (padding, VOC's object borders): the loss of FCN (Long et al.
  2015, arXiv:1411.4038) and every model since.
* Soft Dice (Milletari et al. 2016, "V-Net", arXiv:1606.04797), one minus the Dice overlap of the softmax
  probabilities with the one-hot labels, computed over the whole batch per class and averaged over the classes
  present in the batch's labels: it scores the overlap of a small object as much as a large one, which is what
  mIoU does, where cross-entropy is dominated by the large classes. ``ce+dice`` adds the two (the combination
  nnU-Net trains with, Isensee et al. 2021, arXiv:1809.10486).
* Class weights from the training masks (``median_frequency``: Eigen & Fergus 2015, arXiv:1411.4734, section
  4.2): w_c = median(f) / f_c with f_c the share of class c in the labelled pixels, so a rare class's pixel
  costs more and the median class costs 1.
* DeepLabV3's auxiliary logits add ``aux_weight`` times the same loss (0.5, as torchvision's segmentation
  reference; PSPNet's deep supervision, Zhao et al. arXiv:1612.01105, used 0.4).
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = 255
LOSSES = ("ce", "dice", "ce+dice")
CLASS_WEIGHTS = ("none", "median_frequency")


def median_frequency_weights(class_pixels: np.ndarray) -> Tensor:
    """Per-class weights median(f) / f_c from pixel counts; a class with no pixels gets weight 0."""
    counts = torch.as_tensor(class_pixels, dtype=torch.float64)
    freq = counts / counts.sum().clamp(min=1)
    present = freq > 0
    if not present.any():
        return torch.ones_like(freq, dtype=torch.float32)
    weights = torch.zeros_like(freq)
    weights[present] = freq[present].median() / freq[present]
    return weights.float()


def soft_dice_loss(logits: Tensor, targets: Tensor, ignore_index: int = IGNORE_INDEX, eps: float = 1.0) -> Tensor:
    """1 - mean Dice over the classes in ``targets``, from softmax probabilities (ignored pixels left out).

    ``eps`` (Laplace smoothing, as smp's DiceLoss ``smooth``) keeps the gradient finite for empty classes.
    """
    n = logits.shape[1]
    valid = targets != ignore_index
    probs = logits.float().softmax(1) * valid.unsqueeze(1)
    onehot = F.one_hot(targets.where(valid, 0), n).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    cardinality = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * intersection + eps) / (cardinality + eps)
    present = onehot.sum(dims) > 0
    if not present.any():
        return logits.sum() * 0.0  # nothing labelled in this batch: no Dice term (and a graph for backward)
    return 1 - dice[present].mean()


class SegmentationLoss(nn.Module):
    """``ce``, ``dice`` or ``ce+dice`` on the logits, plus ``aux_weight`` times it on auxiliary logits.

    Takes what the model returns: a logits tensor, or ``(logits, aux_logits)`` (DeepLabV3 in training mode).
    """

    def __init__(
        self,
        name: str = "ce",
        class_weights: Tensor | None = None,
        aux_weight: float = 0.5,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        if name not in LOSSES:
            raise ValueError(f"loss.name {name!r}: supported are {', '.join(LOSSES)}")
        self.name = name
        self.aux_weight = aux_weight
        self.ignore_index = ignore_index
        self.register_buffer("class_weights", class_weights, persistent=False)

    def single(self, logits: Tensor, targets: Tensor) -> Tensor:
        """The loss of one logits map."""
        if not (targets != self.ignore_index).any():
            return logits.sum() * 0.0  # an all-ignored batch: cross-entropy's mean would be 0/0
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.name in ("ce", "ce+dice"):
            w = None if self.class_weights is None else self.class_weights.to(logits.device)
            loss = loss + F.cross_entropy(logits.float(), targets, weight=w, ignore_index=self.ignore_index)
        if self.name in ("dice", "ce+dice"):
            loss = loss + soft_dice_loss(logits, targets, self.ignore_index)
        return loss

    def forward(self, outputs: Tensor | tuple[Tensor, Tensor], targets: Tensor) -> Tensor:
        if isinstance(outputs, tuple | list):
            logits, aux = outputs
            return self.single(logits, targets) + self.aux_weight * self.single(aux, targets)
        return self.single(outputs, targets)
