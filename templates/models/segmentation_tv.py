"""DeepLabV3 and LR-ASPP from ``torchvision.models.segmentation``, with a forward that returns logits.

* DeepLabV3 (Chen et al. 2017, "Rethinking Atrous Convolution for Semantic Image Segmentation",
  arXiv:1706.05587): a dilated backbone (output stride 8 for ResNet-50, 16 for MobileNetV3-Large), the ASPP
  head, and an auxiliary FCN head on an earlier stage (the deep supervision of PSPNet, Zhao et al. 2017,
  arXiv:1612.01105) whose loss is added with a small weight during training only.
* LR-ASPP (Howard et al. 2019, "Searching for MobileNetV3", arXiv:1905.02244, section 6.4): MobileNetV3-Large
  with a light head that gates the stride-16 features with a pooled attention branch and adds a stride-8 skip.

These models are torchvision's own modules, not a copy: owning them would copy a large, well-kept library.
What this file adds:

* the builders are always called with ``weights=None, weights_backbone=None`` unless the caller names weights
  (torchvision's builders would otherwise download ImageNet backbone weights by default);
* ``forward`` returns the logits tensor B x num_classes x H x W (bilinear upsampling to the input size, as
  torchvision), not torchvision's ``{"out", "aux"}`` dict, so training, metrics and ONNX export see one tensor.
  In training mode with an auxiliary head it returns ``(logits, aux_logits)``; the loss weighs the second;
* the module names are torchvision's (``backbone``, ``classifier``, ``aux_classifier``), so torchvision's
  checkpoints load with ``strict=True``.

BatchNorm in ASPP's image-pooling branch sees one value per channel and image: a training batch of 1 image is an
error there (keep the last partial batch out of training, ``drop_last=True``).
"""

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import segmentation as tvseg

__all__ = ["VARIANTS", "TorchvisionSegmentation", "VariantConfig", "build_model"]


@dataclass(frozen=True)
class VariantConfig:
    """A torchvision builder and whether its model has an auxiliary head."""

    builder: Callable[..., nn.Module]
    aux: bool


VARIANTS: dict[str, VariantConfig] = {
    "deeplabv3_resnet50": VariantConfig(tvseg.deeplabv3_resnet50, aux=True),
    "deeplabv3_mobilenet_v3_large": VariantConfig(tvseg.deeplabv3_mobilenet_v3_large, aux=True),
    "lraspp_mobilenet_v3_large": VariantConfig(tvseg.lraspp_mobilenet_v3_large, aux=False),
}

# the class count of torchvision's published segmentation weights (COCO images, the 20 VOC classes + background)
_PRETRAINED_CLASSES = 21


class TorchvisionSegmentation(nn.Module):
    """A torchvision segmentation model's parts behind a forward that returns logits at the input size."""

    def __init__(self, model: nn.Module, lraspp: bool) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.classifier = model.classifier
        self.aux_classifier: nn.Module | None = getattr(model, "aux_classifier", None)
        self.lraspp = lraspp

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Logits B x C x H x W; ``(logits, aux_logits)`` in training mode when there is an aux head."""
        size = x.shape[-2:]
        features = self.backbone(x)
        # LR-ASPP's head takes the whole {"low", "high"} dict; DeepLab's takes the "out" map
        out = self.classifier(features if self.lraspp else features["out"])
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        if self.training and self.aux_classifier is not None:
            aux = F.interpolate(self.aux_classifier(features["aux"]), size=size, mode="bilinear", align_corners=False)
            return out, aux
        return out


def _replace_last_conv(head: nn.Sequential, num_classes: int) -> None:
    """Give a pretrained head a freshly initialized 1x1 classifier for ``num_classes``."""
    last = head[-1]
    head[-1] = nn.Conv2d(last.in_channels, num_classes, kernel_size=1)


def build_model(
    arch: str,
    num_classes: int,
    *,
    aux_loss: bool | None = None,
    weights: str | None = None,
    weights_backbone: str | None = None,
    **kw: Any,
) -> nn.Module:
    """Build a torchvision segmentation model by name, offline unless weights are named.

    Args:
        arch: a key of ``VARIANTS``.
        num_classes: output channels.
        aux_loss: keep DeepLabV3's auxiliary head (``None``: yes for DeepLabV3; LR-ASPP has none).
        weights: torchvision weights for the whole model (e.g. ``"DEFAULT"``, COCO with VOC classes; downloads);
            the 1x1 classifiers are replaced when ``num_classes`` is not 21.
        weights_backbone: torchvision ImageNet weights for the backbone only (e.g. ``"DEFAULT"``; downloads).
        **kw: passed to the torchvision builder.
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown segmentation model {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    cfg = VARIANTS[arch]
    aux = cfg.aux if aux_loss is None else aux_loss
    if aux and not cfg.aux:
        raise ValueError(f"{arch} has no auxiliary head")
    lraspp = arch.startswith("lraspp")
    args: dict[str, Any] = {"weights": weights, "weights_backbone": weights_backbone, **kw}
    if not lraspp:
        args["aux_loss"] = aux
    if weights is None:
        model = cfg.builder(num_classes=num_classes, **args)
    else:
        # torchvision's weights come with 21 classes (and DeepLab's with the aux head): load, then re-head
        if not lraspp:
            args["aux_loss"] = True
        model = cfg.builder(num_classes=_PRETRAINED_CLASSES, **args)
        if num_classes != _PRETRAINED_CLASSES:
            if lraspp:
                for name in ("low_classifier", "high_classifier"):
                    old = getattr(model.classifier, name)
                    setattr(model.classifier, name, nn.Conv2d(old.in_channels, num_classes, 1))
            else:
                _replace_last_conv(model.classifier, num_classes)
                _replace_last_conv(model.aux_classifier, num_classes)
        if not lraspp and not aux:
            model.aux_classifier = None
    return TorchvisionSegmentation(model, lraspp)


def count_parameters(model: nn.Module) -> int:
    """Parameters of ``model`` (the aux head included: it is trained, then unused at inference)."""
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":  # python segmentation_tv.py: the variants and their sizes
    for name in VARIANTS:
        m = build_model(name, 21)
        with torch.no_grad():
            shape = tuple(m.eval()(torch.zeros(1, 3, 64, 64)).shape)
        print(f"{name:32s} {count_parameters(m) / 1e6:6.2f}M params, 64x64 in -> {shape}")
