"""``archadvisor profile`` for the detectors and instance segmenters projects are generated on (torchvision's,
built by templates/models/detection_tv.py): the same figures as for the zoo's classifiers, measured on the
detector as a project runs it.

* Built for COCO's 80 classes (91 outputs, torchvision's layout) with random weights, so parameters compare with
  the catalog's (torchvision's weights meta); the model's transform resizes to the profiled side (min_size =
  max_size = image size; SSDlite: its square side), so GMACs at the catalog's input size compare with its figure.
* Inference is the whole detector: transform, backbone, RPN / heads, box decoding and NMS on random weights (an
  R-CNN's box head runs on its full proposal count, as on real images).
* The training step's loss is the detector's own (one box per image, and a mask for Mask R-CNN), not
  cross-entropy on labels.
ONNX timing is not offered here: detectors export with the TorchScript-based exporter only (the project's
export.py), at batch 1.
torch is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archadvisor.measure.device import torch_module, torch_threads
from archadvisor.measure.profile import ProgressFn, _figures, _method, checked_stages
from archadvisor.measure.timing import MAX_SECONDS, TARGET_REL_CI, CpuContention, busy_warning

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from archadvisor.catalog import External

DETECTION_MODULE = "detection_tv"
COCO_CLASSES = 90  # object classes of torchvision's COCO heads (ids 1..90, 80 used), background added by the model


def is_detector(external: External | None) -> bool:
    return external is not None and external.module == DETECTION_MODULE and external.build is not None


def build_detector(external: External, image_size: int) -> nn.Module:
    """The detector behind a tensor-batch call (eval: detections, a list of dicts) with ``training_loss``."""
    torch = torch_module()
    from archadvisor.resources import load_model_module

    module = load_model_module(DETECTION_MODULE)
    net = module.build_model(external.build, COCO_CLASSES, min_size=image_size, max_size=image_size)
    masks = module.VARIANTS[external.build].masks

    class Profiled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> Any:
            return self.net(list(x))

        def training_loss(self, x: torch.Tensor) -> torch.Tensor:
            """The detector's summed losses on one centred box per image (and its mask for Mask R-CNN)."""
            h, w = x.shape[-2:]
            box = torch.tensor([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], device=x.device)
            targets = []
            for _ in range(x.shape[0]):
                t: dict[str, torch.Tensor] = {"boxes": box, "labels": torch.ones(1, dtype=torch.int64, device=x.device)}
                if masks:
                    m = torch.zeros(1, h, w, dtype=torch.uint8, device=x.device)
                    m[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
                    t["masks"] = m
                targets.append(t)
            return sum(self.net(list(x), targets).values())

    return Profiled().eval()


def profile_detector(
    external: External,
    *,
    image_size: int | None = None,
    batch: int = 8,
    device: str = "cpu",
    threads: int | None = None,
    progress: ProgressFn | None = None,
    target_rel_ci: float = TARGET_REL_CI,
    max_seconds: float = MAX_SECONDS,
) -> dict[str, Any]:
    """``profile_model``'s figures and result layout for a torchvision detector (``is_detector(external)``)."""
    size = image_size or external.input_size or 320
    stage = checked_stages(size, batch, threads, max_seconds, device, False, progress)
    with torch_threads(threads) as n_threads, CpuContention() as contention:
        stage()
        model = build_detector(external, size)
        figures = _figures(model, size, batch, device, False, n_threads, stage, target_rel_ci, max_seconds)
    stage()  # past the last stage: "done"
    method = _method(device, n_threads, target_rel_ci, max_seconds)
    method["mode"] = (
        "model.eval() under torch.inference_mode(), fp32, random weights, random input; the whole detector "
        f"(transform to {size} px, backbone, heads, box decoding, NMS), {COCO_CLASSES + 1} outputs"
    )
    method["train_step"] = "AdamW, the detector's own losses on one box per image, forward + backward + step"
    method["other_processes_cpu"] = None if contention.fraction is None else round(contention.fraction, 3)
    params, gmacs = figures["params"], figures["gmacs"]
    catalog_params = round(external.params_m * 1e6) if external.params_m is not None else None
    at_catalog_size = external.gmacs is not None and size == external.input_size
    return {
        "arch": external.name,
        "family": external.provider,
        "kind": external.arch_kind or "cnn",
        "image_size": size,
        "batch": batch,
        "small_input": False,
        "measured": True,
        "params": params,
        "params_m": round(params / 1e6, 3),
        "gmacs": round(gmacs, 4),
        "attention_gmacs": round(figures["attention_gmacs"], 4),
        "catalog": {
            "params": catalog_params,
            "gmacs": external.gmacs,
            "input_size": external.input_size,
            "gmacs_at_image_size": round(external.gmacs_at(size), 4) if external.gmacs is not None else None,
            "imagenet_top1": None,
            "cpu_latency_ms": None,
            "metric": external.metric,
        },
        # the catalog gives millions to two decimals (torchvision's weights meta)
        "params_match_catalog": external.params_m is not None and round(params / 1e6, 2) == round(external.params_m, 2),
        "gmacs_delta_pct": round(100 * (gmacs / external.gmacs - 1), 3) if at_catalog_size else None,
        "memory": figures["memory"],
        "latency": figures["latency"],
        "throughput": figures["throughput"],
        "onnx": None,
        "method": method,
        "warnings": busy_warning(contention.fraction, device),
    }
