"""Object detectors and instance segmenters from torchvision (BSD-3), built offline for your classes.

The models are torchvision's own (``torchvision.models.detection``), not copies: this file only builds them the
way a project training from scratch needs, and loads COCO weights into them when asked.

    ssdlite320_mobilenet_v3_large      SSDlite (Liu et al. 2016, arXiv:1512.02325; MobileNetV3, arXiv:1905.02244)
    fasterrcnn_mobilenet_v3_large_fpn  Faster R-CNN (Ren et al. 2015, arXiv:1506.01497) on a MobileNetV3-FPN
    fasterrcnn_mobilenet_v3_large_320_fpn  the same, tuned by torchvision for 320 px inputs
    fasterrcnn_resnet50_fpn_v2         Faster R-CNN, ResNet-50 FPN (Lin et al. 2017, arXiv:1612.03144), the
                                       improved recipe of Li et al. 2021 (arXiv:2111.11429)
    fcos_resnet50_fpn                  FCOS, anchor-free (Tian et al. 2019, arXiv:1904.01355)
    retinanet_resnet50_fpn_v2          RetinaNet, focal loss (Lin et al. 2017, arXiv:1708.02002)
    maskrcnn_resnet50_fpn_v2           Mask R-CNN (He et al. 2017, arXiv:1703.06870)
    maskrcnn_mobilenet_v3_large_fpn    Mask R-CNN on the MobileNetV3-FPN backbone of the Faster R-CNN above,
                                       assembled from torchvision's parts (torchvision ships no such builder)

Choices that matter when training from scratch:

* ``weights=None, weights_backbone=None`` always: the builders download when given weights, and this file never
  passes any. COCO weights are loaded afterwards from a file (or fetched only when ``pretrained`` asks for
  torchvision's; see ``coco_state_dict``).
* Trainable BatchNorm and every layer trainable. torchvision's builders do this themselves when no weights are
  given (``_validate_trainable_layers`` falls back to all layers, ``norm_layer=nn.BatchNorm2d``), but its
  ``mobilenet_backbone`` helper defaults to ``FrozenBatchNorm2d`` and 2 trainable stages, which is right only for
  an ImageNet backbone: frozen statistics of random weights would never become the data's. Fine-tuning from
  COCO weights (``prepare_finetune``) restores torchvision's fine-tuning setup: frozen BatchNorm statistics where
  torchvision freezes them, and the first backbone stages frozen (3 trainable, torchvision's default).
* ``num_classes`` is the number of object classes in your data; every model gets ``num_classes + 1`` outputs,
  index 0 the background. That is torchvision's convention for all its detectors ("number of output classes of
  the model (including the background)"): RetinaNet and FCOS, whose sigmoid heads need no background class,
  then carry one logit that is never a positive, as torchvision's own COCO weights do (91 outputs, 80 classes).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import (
    MaskRCNN,
    fasterrcnn_mobilenet_v3_large_320_fpn,
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn_v2,
    fcos_resnet50_fpn,
    maskrcnn_resnet50_fpn_v2,
    retinanet_resnet50_fpn_v2,
    ssdlite320_mobilenet_v3_large,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

# export.py: torchvision's detectors export only with the TorchScript-based ONNX exporter (their NMS and
# per-image loops are data-dependent; torchvision's own test/test_onnx.py uses it)
ONNX_DYNAMO = False
COCO_CLASSES = 91  # torchvision's COCO weights: 80 classes at their original ids 1..90, plus the background


def _maskrcnn_mobilenet_v3_large_fpn(*, num_classes: int, **kwargs: Any) -> MaskRCNN:
    """Mask R-CNN on MobileNetV3-Large FPN, the backbone and anchors of torchvision's
    ``fasterrcnn_mobilenet_v3_large_fpn`` (models/detection/faster_rcnn.py) plus Mask R-CNN's default mask head.

    ``mobilenet_backbone`` defaults to FrozenBatchNorm2d and 2 trainable stages (for ImageNet weights): from
    scratch, trainable BatchNorm and all 6 stages.
    """
    backbone = mobilenet_backbone(
        backbone_name="mobilenet_v3_large", weights=None, fpn=True, norm_layer=nn.BatchNorm2d, trainable_layers=6
    )
    anchor_sizes = ((32, 64, 128, 256, 512),) * 3  # one tuple per FPN level: '0', '1' and 'pool'
    aspect_ratios = ((0.5, 1.0, 2.0),) * len(anchor_sizes)
    return MaskRCNN(backbone, num_classes, rpn_anchor_generator=AnchorGenerator(anchor_sizes, aspect_ratios), **kwargs)


@dataclass(frozen=True)
class Variant:
    """One detector: its builder and what differs between the families."""

    builder: Callable[..., nn.Module]
    masks: bool = False  # instance segmentation (Mask R-CNN)
    two_stage: bool = True  # R-CNN: RPN + RoI heads (rpn/box settings apply)
    fixed_size: int | None = None  # SSD resizes every image to a square of this side
    frozen_bn_pretrained: bool = True  # torchvision freezes BatchNorm statistics when fine-tuning this one
    coco_weights: bool = True  # torchvision publishes COCO weights for it


VARIANTS: dict[str, Variant] = {
    "ssdlite320_mobilenet_v3_large": Variant(
        ssdlite320_mobilenet_v3_large, two_stage=False, fixed_size=320, frozen_bn_pretrained=False
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": Variant(fasterrcnn_mobilenet_v3_large_320_fpn),
    "fasterrcnn_mobilenet_v3_large_fpn": Variant(fasterrcnn_mobilenet_v3_large_fpn),
    # the v2 recipes keep BatchNorm trainable even when fine-tuning (Li et al. 2021)
    "fasterrcnn_resnet50_fpn_v2": Variant(fasterrcnn_resnet50_fpn_v2, frozen_bn_pretrained=False),
    "fcos_resnet50_fpn": Variant(fcos_resnet50_fpn, two_stage=False),
    "retinanet_resnet50_fpn_v2": Variant(retinanet_resnet50_fpn_v2, two_stage=False, frozen_bn_pretrained=False),
    "maskrcnn_resnet50_fpn_v2": Variant(maskrcnn_resnet50_fpn_v2, masks=True, frozen_bn_pretrained=False),
    "maskrcnn_mobilenet_v3_large_fpn": Variant(_maskrcnn_mobilenet_v3_large_fpn, masks=True, coco_weights=False),
}


def build_model(
    arch: str,
    num_classes: int,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
    score_thresh: float | None = None,
    detections_per_img: int | None = None,
    **detector_kwargs: Any,
) -> nn.Module:
    """``arch`` for ``num_classes`` object classes (+1 background output), fresh weights, never downloading.

    ``min_size`` / ``max_size``: the side lengths the model's transform resizes to (GeneralizedRCNNTransform:
    shorter side to min_size, longer side at most max_size); for SSDlite, ``min_size`` is the square input side
    (320 by default; anchors are relative to it, so a smaller side is the same model at a lower cost).
    ``score_thresh``: boxes below this score are dropped before NMS (torchvision's 0.05 for R-CNN by default).
    ``detector_kwargs``: any other argument of torchvision's model class (FasterRCNN, MaskRCNN, RetinaNet, FCOS),
    e.g. ``rpn_post_nms_top_n_test`` or ``box_batch_size_per_image``: small images need fewer proposals, and
    the RoI heads' cost grows with them.
    """
    if arch not in VARIANTS:
        raise ValueError(f"unknown detector {arch!r}; supported: {', '.join(VARIANTS)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (object classes, without the background), got {num_classes}")
    variant = VARIANTS[arch]
    kwargs: dict[str, Any] = {"num_classes": num_classes + 1}
    if variant.builder is not _maskrcnn_mobilenet_v3_large_fpn:
        kwargs.update(weights=None, weights_backbone=None)
    if variant.fixed_size is None:  # SSDlite passes extra kwargs on to its backbone: set its values afterwards
        kwargs.update(detector_kwargs)
        kwargs.update({k: v for k, v in (("min_size", min_size), ("max_size", max_size)) if v is not None})
        if score_thresh is not None:
            kwargs["box_score_thresh" if variant.two_stage else "score_thresh"] = score_thresh
        if detections_per_img is not None:
            kwargs["box_detections_per_img" if variant.two_stage else "detections_per_img"] = detections_per_img
    elif detector_kwargs:
        raise ValueError(f"{arch} takes no detector_kwargs (its builder fixes its settings): {sorted(detector_kwargs)}")
    model = variant.builder(**kwargs)
    if not variant.two_stage and variant.fixed_size is None:
        model.register_forward_hook(_drop_background)
    if variant.fixed_size is not None:
        side = min_size or variant.fixed_size
        model.transform.min_size, model.transform.max_size, model.transform.fixed_size = (side,), side, (side, side)
        if score_thresh is not None:
            model.score_thresh = score_thresh
        if detections_per_img is not None:
            model.detections_per_img = detections_per_img
    return model


def _drop_background(module: nn.Module, args: Any, output: Any) -> Any:
    """RetinaNet and FCOS score every output with a sigmoid, the background's too: although never a positive in
    training, it can make a low-scoring detection, which names no class. Dropped (a forward hook: it is traced
    into the ONNX export as well)."""
    if module.training or not isinstance(output, list):
        return output
    return [{k: v[d["labels"] > 0] for k, v in d.items()} for d in output]


# --- COCO weights, for fine-tuning ------------------------------------------------------------------------


def coco_state_dict(arch: str, source: str | Path | bool) -> dict[str, torch.Tensor]:
    """COCO weights for ``arch``: a state_dict file (loaded with ``weights_only=True``), or with ``True`` /
    ``"torchvision"`` torchvision's DEFAULT weights, downloaded into torch's cache (the only network access)."""
    if source is True or source == "torchvision":
        if not VARIANTS[arch].coco_weights:
            raise ValueError(f"torchvision publishes no COCO weights for {arch}: pass a weights file")
        from torchvision.models import get_model_weights

        return get_model_weights(arch).DEFAULT.get_state_dict(progress=True, check_hash=True)
    state = torch.load(Path(source), map_location="cpu", weights_only=True)
    for key in ("model_ema", "model"):  # a checkpoint of this project rather than a bare state_dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    return state


def load_coco_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load every tensor whose name and shape match; returns the names left at their fresh values.

    With a different class count only the class-dependent layers differ (Faster/Mask R-CNN's ``cls_score``,
    ``bbox_pred`` and ``mask_fcn_logits``, RetinaNet's / FCOS's / SSD's classification convs): they stay as the
    constructor initialised them (e.g. RetinaNet's prior-probability bias), which is the head replaced for
    your classes. Any other mismatch is an error: the file is for another architecture.
    """
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"the weights have {len(unknown)} tensors this model lacks, e.g. {unknown[0]!r}")
    kept = {k: v for k, v in state.items() if v.shape == own[k].shape}
    fresh = sorted(set(own) - set(kept))
    wrong = [k for k in fresh if k in state and "num_batches_tracked" not in k and not _class_dependent(k)]
    if wrong:
        raise ValueError(f"shape mismatch outside the class-dependent head: {wrong[0]} {tuple(state[wrong[0]].shape)}")
    model.load_state_dict(kept, strict=False)
    return fresh


def _class_dependent(name: str) -> bool:
    return any(part in name for part in ("cls_score", "bbox_pred", "mask_fcn_logits", "cls_logits", "classification"))


def prepare_finetune(model: nn.Module, arch: str, trainable_layers: int = 3) -> None:
    """torchvision's fine-tuning setup, applied after COCO weights are loaded: frozen BatchNorm statistics where
    its builders use FrozenBatchNorm2d with weights, and only the last ``trainable_layers`` backbone stages
    trained (``_validate_trainable_layers``' default 3; SSDlite trains all 6, as torchvision's builder does)."""
    variant = VARIANTS[arch]
    body = model.backbone.body if hasattr(model.backbone, "body") else model.backbone.features
    if variant.frozen_bn_pretrained:
        _freeze_batchnorm(body)
    if variant.fixed_size is not None:
        return
    if hasattr(body, "layer4"):  # ResNet: torchvision's _resnet_fpn_extractor
        train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
        for name, p in body.named_parameters():
            p.requires_grad_(any(name.startswith(layer) for layer in train))
        return
    # MobileNet: torchvision's _mobilenet_extractor counts stages from the strided blocks
    blocks = list(body.children())
    stages = [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
    freeze_before = len(blocks) if trainable_layers == 0 else stages[len(stages) - trainable_layers]
    for i, block in enumerate(blocks):
        block.requires_grad_(i >= freeze_before)


def _freeze_batchnorm(module: nn.Module) -> None:
    """Replace every BatchNorm2d under ``module`` by a FrozenBatchNorm2d holding its statistics and affine."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)
