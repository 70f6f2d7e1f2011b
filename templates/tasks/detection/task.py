"""Object detection and instance segmentation: the task's part of this project, the hooks the core scripts call.

train.py, evaluate.py, predict.py and export.py are the same in every generated project; what is particular to
detecting objects lives here (and in data.py, which reads the COCO folder and builds the transforms):

    data_stage, build_data, data_meta     the loaders and what rebuilds the model (classes, original category ids)
    model_from_meta, build_model          model.py's torchvision detector; COCO weights only in build_model
    build_loss, train_batch_transform     the detector's own losses, summed; no batch mixing
    to_device, Metrics, MONITOR           a batch on the device; COCO mAP (torchmetrics, gathered under DDP)
    val_loader, write_report              evaluate.py: the val split, AP per class
    EXPORT, export_onnx, check_onnx       export.py: ONNX (TorchScript-based exporter), parity by matching
    predict_files, predict, write_predictions     predict.py: images in, predictions.json + drawn PNGs out

Labels inside the project are contiguous, 1..K in category-id order (0 is the background, torchvision's
convention); ``meta["category_ids"]`` maps them back to the ids of your annotations in everything written out.
"""

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from torchvision.ops import box_iou

import data
from errors import ProjectError
from model import VARIANTS, coco_state_dict, load_coco_weights, prepare_finetune
from model import build_model as build_architecture

# best.pt and early stopping follow COCO mAP@[.5:.95] of the boxes unless training.monitor says otherwise
MONITOR = {"metric": "val_map", "mode": "max"}
# export.py: ONNX graph names; torchvision's detectors need the TorchScript-based exporter (data-dependent NMS)
EXPORT = {"input_names": ["image"], "output_names": ["boxes", "scores", "labels"], "dynamo": False}
MASK_THRESHOLD = 0.5  # Mask R-CNN's per-pixel probabilities -> binary masks (He et al. 2017, section 3)


# --- data --------------------------------------------------------------------------------------------------


def data_stage(cfg: dict[str, Any], epoch: int) -> int:
    """One stage for the whole run: multi-scale training is the model's ``min_size`` list, drawn per batch."""
    return 0


def build_data(cfg: dict[str, Any], stage: int, *, rank: int, world_size: int, pin_memory: bool) -> data.Data:
    """The train / val loaders of the COCO folder at data.root (checked first)."""
    return data.load_data(cfg, rank=rank, world_size=world_size, pin_memory=pin_memory)


def data_meta(cfg: dict[str, Any], loaded: data.Data, log: Callable[..., None] = print) -> dict[str, Any]:
    """What rebuilds the model and maps its labels back (saved in every checkpoint): plain values only."""
    m = cfg["model"]
    if len(loaded.classes) != m["num_classes"]:
        log(
            f"note: {loaded.root} has {len(loaded.classes)} categories; config.yaml says {m['num_classes']}: "
            "using the data's"
        )
    if VARIANTS[m["arch"]].masks != bool(cfg["data"]["masks"]):
        raise ProjectError(
            f"model.arch {m['arch']} {'needs' if VARIANTS[m['arch']].masks else 'has no'} masks: "
            f"set data.masks: {str(VARIANTS[m['arch']].masks).lower()}"
        )
    return {
        "arch": m["arch"],
        "num_classes": len(loaded.classes),
        "classes": loaded.classes,
        "category_ids": loaded.category_ids,
        "masks": bool(cfg["data"]["masks"]),
        "min_size": m["min_size"],
        "max_size": m["max_size"],
        "score_thresh": m["score_thresh"],
        "detections_per_img": m["detections_per_img"],
        "detector_kwargs": dict(m["detector_kwargs"] or {}),
    }


class Batch:
    """A batch as the core loop passes it to the model: the images, and the targets the detector needs in
    training (torchvision's detectors compute their losses inside forward: ``model(images, targets)``)."""

    def __init__(self, images: list[torch.Tensor], targets: list[dict[str, Any]]) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)


def to_device(batch: Any, device: torch.device) -> tuple[Batch, list[dict[str, Any]]]:
    """(Batch, targets) of a loader batch, tensors on ``device``."""
    images, targets = batch
    if isinstance(images, Batch):  # already a model input (the core's tests pass fixed_batch back in)
        images = images.images
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [
        {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
        for t in targets
    ]
    return Batch(images, targets), targets


# --- model and loss ------------------------------------------------------------------------------------------


class Detector(nn.Module):
    """model.py's detector behind the core loop's one-argument call: in training ``net(images, targets)``
    returns the loss dict, in eval ``net(images)`` the detections (a dict per image, input-image pixels)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: Batch | list[torch.Tensor]) -> Any:
        if isinstance(batch, Batch):
            return self.net(batch.images, batch.targets if self.training else None)
        return self.net(list(batch))


def model_from_meta(meta: dict[str, Any], **kwargs: Any) -> Detector:
    """The architecture with fresh weights (never downloads anything)."""
    net = build_architecture(
        meta["arch"],
        meta["num_classes"],
        min_size=meta["min_size"],
        max_size=meta["max_size"],
        score_thresh=meta["score_thresh"],
        detections_per_img=meta["detections_per_img"],
        **meta["detector_kwargs"],
    )
    return Detector(net)


def build_model(cfg: dict[str, Any], meta: dict[str, Any], log: Callable[..., None] = print) -> Detector:
    """The model to train: fresh, or COCO weights (``model.pretrained``: a file, or true for torchvision's) with
    the class-dependent head layers fresh for your classes and torchvision's fine-tuning setup."""
    model = model_from_meta(meta)
    source = cfg["model"]["pretrained"]
    if source:
        try:
            state = coco_state_dict(meta["arch"], source)
            fresh = load_coco_weights(model.net, state)
        except (OSError, ValueError, RuntimeError) as e:
            raise ProjectError(
                f"cannot load the pretrained weights {source} ({str(e).splitlines()[0]}): put a weights file on "
                "this machine and set model.pretrained: FILE, or train from scratch (model.pretrained: false)"
            ) from e
        prepare_finetune(model.net, meta["arch"], cfg["model"]["trainable_backbone_layers"])
        log(f"loaded {source}: {len(state) - len(fresh)} tensors kept, {len(fresh)} fresh (the class head)")
    return model


def build_loss(
    cfg: dict[str, Any], meta: dict[str, Any] | None = None
) -> Callable[[dict[str, torch.Tensor], Any], torch.Tensor]:
    """The sum of the detector's own losses (RPN objectness and box, RoI classifier and box, mask; or focal /
    GIoU / centerness; or SSD's), each already normalized by torchvision as its paper does."""

    def total(losses: dict[str, torch.Tensor], targets: Any) -> torch.Tensor:
        value = sum(losses.values())
        if not torch.isfinite(value):  # a diverged detector stays diverged: stop with the parts that blew up
            parts = ", ".join(f"{k} {float(v):.3g}" for k, v in losses.items())
            raise ProjectError(f"non-finite training loss ({parts}): lower training.lr or set grad_clip_norm")
        return value

    return total


def train_batch_transform(cfg: dict[str, Any], meta: dict[str, Any]) -> None:
    """No batch-level mixing for detection (augmentation is per image, in data.py)."""
    return


# --- metrics -------------------------------------------------------------------------------------------------


def binary_masks(masks: torch.Tensor) -> torch.Tensor:
    """Mask R-CNN's (N, 1, H, W) probabilities -> (N, H, W) bool, the form COCO scores."""
    return masks[:, 0] > MASK_THRESHOLD if masks.ndim == 4 else masks.bool()


class Metrics:
    """COCO mAP@[.5:.95], mAP@.5 and AP per class (boxes, and masks for instance segmentation) through
    ``torchmetrics.detection.MeanAveragePrecision``, which runs COCO's own evaluation (pycocotools, or
    faster_coco_eval with ``metrics.backend``).

    Under DDP each rank sees a disjoint shard of the val set, and shards may differ by an image. torchmetrics'
    own sync all-gathers MeanAveragePrecision's list states one element at a time, which needs the same number
    of images on every rank (uneven shards leave the collectives mismatched: a hang). So the metric keeps its
    states local (``sync_on_compute=False``) and ``compute`` gathers them whole, as Python objects (masks are
    already RLE there), in rank order: a collective, called on every rank as train.evaluate does; every rank
    then scores the whole split.
    """

    def __init__(self, meta: dict[str, Any], device: torch.device, backend: str = "pycocotools") -> None:
        from torchmetrics.detection import MeanAveragePrecision

        self.meta, self.masks = meta, bool(meta["masks"])
        iou_type = ("bbox", "segm") if self.masks else "bbox"
        self.metric = MeanAveragePrecision(
            iou_type=iou_type, class_metrics=True, backend=backend, sync_on_compute=False
        ).to(device)
        self.result: dict[str, Any] | None = None
        self.images = 0

    def update(self, outputs: list[dict[str, torch.Tensor]], targets: list[dict[str, Any]]) -> None:
        preds, truth = [], []
        for out, tgt in zip(outputs, targets, strict=True):
            p = {"boxes": out["boxes"].float(), "scores": out["scores"].float(), "labels": out["labels"]}
            t = {
                "boxes": tgt["boxes"].as_subclass(torch.Tensor).float(),
                "labels": tgt["labels"],
                "iscrowd": tgt["iscrowd"],
            }
            if self.masks:
                p["masks"], t["masks"] = binary_masks(out["masks"]), tgt["masks"].as_subclass(torch.Tensor).bool()
            preds.append(p)
            truth.append(t)
        self.metric.update(preds, truth)
        self.images += len(outputs)

    def compute(self) -> dict[str, float]:
        """``val_map``, ``val_map50`` (and ``val_mask_map``, ``val_mask_map50``) in percent, over all ranks.

        ``val_loss`` is NaN: torchvision's detectors return detections, not losses, in eval mode (computing
        losses would need train mode, which updates BatchNorm statistics on validation images)."""
        if self.result is None:
            self._gather()
            self.result = self.metric.compute()
        r = self.result
        box = "bbox_" if self.masks else ""
        values = {
            "val_loss": math.nan,
            "val_map": 100 * float(r[f"{box}map"]),
            "val_map50": 100 * float(r[f"{box}map_50"]),
        }
        if self.masks:
            values.update(val_mask_map=100 * float(r["segm_map"]), val_mask_map50=100 * float(r["segm_map_50"]))
        # COCO's -1 means "no ground truth to score" (an empty val split, or only negatives)
        return {k: (max(v, 0.0) if k != "val_loss" else v) for k, v in values.items()}

    def _gather(self) -> None:
        """Every rank's prediction and target states, concatenated in rank order (each image's entries stay
        aligned across the states)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        names = list(self.metric._defaults)  # the metric's state lists (boxes, scores, labels, masks, ...)
        local = {n: [t.cpu() if isinstance(t, torch.Tensor) else t for t in getattr(self.metric, n)] for n in names}
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, local)
        for n in names:
            merged = [item for part in gathered for item in part[n]]
            setattr(self.metric, n, [t.to(self.metric.device) if isinstance(t, torch.Tensor) else t for t in merged])

    def per_class(self) -> list[dict[str, Any]]:
        """AP@[.5:.95] per category (percent; None where the val split has none of it), by original id."""
        if self.result is None:
            self.compute()
        r = self.result
        box = "bbox_" if self.masks else ""
        classes = r["classes"].flatten().tolist()
        aps = {int(c): float(v) for c, v in zip(classes, r[f"{box}map_per_class"].flatten().tolist(), strict=True)}
        mask_aps = (
            {int(c): float(v) for c, v in zip(classes, r["segm_map_per_class"].flatten().tolist(), strict=True)}
            if self.masks
            else {}
        )
        rows = []
        for label, (cid, name) in enumerate(zip(self.meta["category_ids"], self.meta["classes"], strict=True), 1):
            row: dict[str, Any] = {
                "category_id": cid,
                "class": name,
                "ap": 100 * aps[label] if aps.get(label, -1) >= 0 else None,
            }
            if self.masks:
                row["mask_ap"] = 100 * mask_aps[label] if mask_aps.get(label, -1) >= 0 else None
            rows.append(row)
        return rows


# --- evaluate.py ----------------------------------------------------------------------------------------------


def val_loader(cfg: dict[str, Any], meta: dict[str, Any], batch_size: int | None = None) -> DataLoader:
    """The validation split of ``data.root``; its categories must be the model's."""
    loader, split = data.val_loader(cfg, batch_size)
    if split.category_ids != meta["category_ids"]:
        raise ProjectError(
            f"the val categories {split.category_ids} differ from those the model was trained on {meta['category_ids']}"
        )
    return loader


def write_report(metrics: Metrics, out: Path) -> dict[str, Any]:
    """Print AP per class; write ``out/per_class.json``."""
    rows = metrics.per_class()
    width = max(5, *(len(r["class"]) for r in rows))
    print(f"{'class':<{width}}  {'id':>6}  {'AP':>6}" + ("  mask AP" if metrics.masks else ""))
    for r in rows:
        ap = "-" if r["ap"] is None else f"{r['ap']:.2f}"
        mask = ("  " + ("-" if r["mask_ap"] is None else f"{r['mask_ap']:.2f}")) if metrics.masks else ""
        print(f"{r['class']:<{width}}  {r['category_id']:>6}  {ap:>6}{mask}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "per_class.json"
    path.write_text(json.dumps({"per_class": rows, **metrics.compute()}, indent=2) + "\n", encoding="utf-8")
    return {"per_class_json": str(path)}


# --- predict.py ---------------------------------------------------------------------------------------------


def add_predict_args(parser: Any) -> None:
    """predict.py's detection flags."""
    parser.add_argument("--score-threshold", type=float, default=0.5, help="detections kept and drawn (0-1)")
    parser.add_argument("--annotations", type=Path, help="a COCO file whose image ids predictions.json uses")


def predict_options(args: Any) -> dict[str, Any]:
    """write_predictions' keyword arguments from predict.py's flags."""
    return {"score_threshold": args.score_threshold, "annotations": args.annotations}


def predict_files(inputs: list[str]) -> list[Path]:
    """The images named by files, folders and globs."""
    return data.image_files(inputs)


def image_ids(files: list[Path], annotations: Path | None) -> list[int]:
    """Each file's ``image_id``: from a COCO annotations file (matched by ``file_name``, else by the file's name
    alone), or its 1-based position among the inputs."""
    if annotations is None:
        return list(range(1, len(files) + 1))
    coco = data.read_coco_json(annotations)
    by_path = {Path(im["file_name"]).as_posix(): int(im["id"]) for im in coco["images"]}
    by_name: dict[str, list[int]] = {}
    for im in coco["images"]:
        by_name.setdefault(Path(im["file_name"]).name, []).append(int(im["id"]))
    ids = []
    for f in files:
        matches = [i for p, i in by_path.items() if f.as_posix().endswith(p)] or by_name.get(f.name, [])
        if len(matches) != 1:
            raise ProjectError(f"{f}: {'no' if not matches else 'more than one'} image of {annotations} matches it")
        ids.append(matches[0])
    return ids


@torch.no_grad()
def predict(
    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]], files: list[Path]
) -> list[dict[str, np.ndarray]]:
    """Detections per file (input-image pixels): ``forward`` takes one CxHxW image in [0, 1] and returns
    ``boxes`` (XYXY), ``scores``, ``labels`` (1..K) and, for masks, ``masks`` (N, H, W) bool."""
    out = []
    for images, _ in data.predict_loader(files, batch_size=1):
        d = forward(images[0])
        out.append({k: v.cpu().numpy() for k, v in d.items()})
    return out


def torch_forward(model: nn.Module, device: torch.device) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    net = model.net if isinstance(model, Detector) else model
    net.eval().to(device)

    def forward(image: torch.Tensor) -> dict[str, torch.Tensor]:
        d = net([image.to(device)])[0]
        if "masks" in d:
            d["masks"] = binary_masks(d["masks"])
        return d

    return forward


def onnx_forward(path: Path) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """The same, through onnxruntime on the CPU (an ONNX file from export_onnx)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def forward(image: torch.Tensor) -> dict[str, torch.Tensor]:
        values = session.run(None, {session.get_inputs()[0].name: image[None].numpy()})
        d = {n: torch.from_numpy(v) for n, v in zip(names, values, strict=True)}
        if "masks" in d:
            d["masks"] = binary_masks(d["masks"])
        return d

    return forward


def coco_results(
    detections: list[dict[str, np.ndarray]],
    ids: list[int],
    files: list[Path],
    meta: dict[str, Any],
    score_threshold: float,
) -> list[dict[str, Any]]:
    """The COCO results format (what ``COCO.loadRes`` reads): one entry per detection with ``image_id``,
    ``category_id`` (the original id), ``bbox`` ``[x, y, w, h]`` in input pixels, ``score``, ``file_name``, and
    ``segmentation`` as compressed RLE for masks."""
    from pycocotools import mask as coco_mask

    results = []
    for det, image_id, f in zip(detections, ids, files, strict=True):
        for i in np.flatnonzero(det["scores"] >= score_threshold):
            x1, y1, x2, y2 = (float(v) for v in det["boxes"][i])
            entry: dict[str, Any] = {
                "image_id": image_id,
                "category_id": meta["category_ids"][int(det["labels"][i]) - 1],
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "score": round(float(det["scores"][i]), 5),
                "file_name": str(f),
            }
            if "masks" in det:
                rle = coco_mask.encode(np.asfortranarray(det["masks"][i].astype(np.uint8)))
                entry["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            results.append(entry)
    return results


def write_predictions(
    out: Path,
    files: list[Path],
    detections: list[dict[str, np.ndarray]],
    meta: dict[str, Any],
    *,
    score_threshold: float = 0.5,
    annotations: Path | None = None,
) -> Path:
    """``out/predictions.json`` (COCO results) and ``out/<stem>.png``: each image with its boxes, labels, scores
    (and masks) drawn, detections at or above ``score_threshold``."""
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    out.mkdir(parents=True, exist_ok=True)
    results = coco_results(detections, image_ids(files, annotations), files, meta, score_threshold)
    path = out / "predictions.json"
    path.write_text(json.dumps(results) + "\n", encoding="utf-8")
    stems: dict[str, int] = {}
    for f, det in zip(files, detections, strict=True):
        keep = det["scores"] >= score_threshold
        image = torch.from_numpy(np.asarray(data.read_image(f))).permute(2, 0, 1)
        if "masks" in det and keep.any():
            image = draw_segmentation_masks(image, torch.from_numpy(det["masks"][keep]), alpha=0.45)
        labels = [
            f"{meta['classes'][int(c) - 1]} {s:.2f}"
            for c, s in zip(det["labels"][keep], det["scores"][keep], strict=True)
        ]
        image = draw_bounding_boxes(image, torch.from_numpy(det["boxes"][keep]), labels, colors="red", width=2)
        n = stems.get(f.stem, 0)
        stems[f.stem] = n + 1
        name = f"{f.stem}.png" if n == 0 else f"{f.stem}_{n}.png"  # two inputs may share a stem
        from PIL import Image

        Image.fromarray(image.permute(1, 2, 0).numpy()).save(out / name)
    return path


# --- export.py ----------------------------------------------------------------------------------------------


class ExportModule(nn.Module):
    """One image (a 1x3xHxW float tensor in [0, 1]) -> boxes (N, 4, XYXY, input pixels), scores (N), labels
    (N, 1..K) [, masks (N, 1, H, W) probabilities]: the tensors ONNX can carry, in place of a list of dicts."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = self.net([image[0]])[0]
        return tuple(d[k] for k in ("boxes", "scores", "labels", "masks") if k in d)


def export_onnx(model: nn.Module, path: Path, meta: dict[str, Any], example: torch.Tensor, opset: int = 17) -> str:
    """ONNX with the TorchScript-based exporter (``dynamo=False``: the detectors' NMS and per-image loops are
    data-dependent; torchvision's test/test_onnx.py exports them this way). The file takes ONE image per call
    (batch 1) of any height and width: its own transform resizes it to ``min_size`` / ``max_size`` (SSDlite: its
    square side), and boxes come back in the pixels of the image given. Returns that description."""
    import warnings

    net = (model.net if isinstance(model, Detector) else model).eval()
    outputs = EXPORT["output_names"] + (["masks"] if meta["masks"] else [])
    axes = {"image": {2: "height", 3: "width"}, **{name: {0: "detections"} for name in outputs}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")  # the TorchScript exporter is deprecated, and the tracer is chatty
        torch.onnx.export(
            ExportModule(net),
            (example,),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
        )
    return "batch 1 (one image per call), any height x width (resized inside to the model's input size)"


def _tied_pairs(a: list[float], b: list[float], tol: float) -> int:
    """How many of the sorted scores ``a`` pair one-to-one with one of the sorted ``b`` within ``tol``."""
    i = j = pairs = 0
    while i < len(a) and j < len(b):
        if abs(a[i] - b[j]) <= tol:
            pairs, i, j = pairs + 1, i + 1, j + 1
        elif a[i] < b[j]:
            i += 1
        else:
            j += 1
    return pairs


def match_detections(
    expected: dict[str, np.ndarray],
    got: dict[str, np.ndarray],
    *,
    min_score: float,
    iou: float = 0.9,
    score_tol: float = 1e-3,
) -> dict[str, Any]:
    """Pair every detection scoring >= ``min_score`` in one output with one in the other: same label, IoU >=
    ``iou``, scores within ``score_tol``. By content, not position: tied scores may come out in another order.

    Detections within ``score_tol`` of ``min_score`` may be absent on one side (rounding moves them across it).
    """

    def pick(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keep = d["scores"] >= min_score - score_tol
        return {k: v[keep] for k, v in d.items()}

    a, b = pick(expected), pick(got)
    used = np.zeros(len(b["scores"]), dtype=bool)
    unmatched, worst_iou, worst_score = 0, 1.0, 0.0
    missing: list[float] = []  # scores of the detections of ``expected`` left without a partner
    ious = box_iou(torch.from_numpy(a["boxes"]).float(), torch.from_numpy(b["boxes"]).float()).numpy()
    for i in np.argsort(-a["scores"], kind="stable"):
        ok = (~used) & (b["labels"] == a["labels"][i]) & (np.abs(b["scores"] - a["scores"][i]) <= score_tol)
        ok &= ious[i] >= iou
        if not ok.any():
            if a["scores"][i] >= min_score + score_tol:  # near the threshold: may be absent
                unmatched += 1
                missing.append(float(a["scores"][i]))
            continue
        j = int(np.flatnonzero(ok)[np.argmax(ious[i][ok])])
        used[j] = True
        worst_iou = min(worst_iou, float(ious[i, j]))
        worst_score = max(worst_score, float(abs(b["scores"][j] - a["scores"][i])))
    spare = b["scores"][(~used) & (b["scores"] >= min_score + score_tol)]
    # NMS keeps the first of overlapping boxes in score order, and the top-k cut (detections_per_img) the first k:
    # among scores tied within rounding (an untrained head scores everything alike: a focal-loss head near its
    # 0.01 prior, SSD's softmax near 1 / classes) either export may keep the other box. A missing detection and a
    # spare one of the same score are such a swap, not a disagreement
    swapped = _tied_pairs(sorted(missing), sorted(spare.tolist()), score_tol)
    # expected: the detections that must find a partner (clear of the threshold); matched: those paired by
    # content, plus the swaps among ties
    return {
        "expected": int((a["scores"] >= min_score + score_tol).sum()),
        "matched": int(used.sum()) + swapped,
        "unmatched": unmatched - swapped,
        "extra": len(spare) - swapped,
        "tied_swaps": swapped,
        "min_iou": worst_iou,
        "max_score_diff": worst_score,
    }


def _score_threshold(model: nn.Module) -> float:
    """The detector's own score threshold: what it returns is what the parity check compares."""
    net = getattr(model, "net", model)
    thresh = getattr(getattr(net, "roi_heads", net), "score_thresh", None)
    return float(thresh) if isinstance(thresh, float) else 0.05


def check_onnx(
    path: Path, model: nn.Module, images: list[torch.Tensor], min_score: float | None = None
) -> dict[str, Any]:
    """onnxruntime against PyTorch on ``images`` (real images, not noise: an untrained or noise-fed detector
    returns nothing and would agree vacuously), every detection scoring >= ``min_score`` (default: the model's
    score threshold). Raises unless some detections exist and all of them match."""
    reference, exported = torch_forward(model, torch.device("cpu")), onnx_forward(path)
    min_score = _score_threshold(model) if min_score is None else min_score
    totals = {
        "images": len(images),
        "expected": 0,
        "matched": 0,
        "unmatched": 0,
        "extra": 0,
        "tied_swaps": 0,
        "min_iou": 1.0,
        "max_score_diff": 0.0,
    }
    for image in images:
        with torch.no_grad():
            a = {k: v.numpy() for k, v in reference(image).items() if k != "masks"}
        b = {k: v.numpy() for k, v in exported(image).items() if k != "masks"}
        m = match_detections(a, b, min_score=min_score)
        for k in ("expected", "matched", "unmatched", "extra", "tied_swaps"):
            totals[k] += m[k]
        totals["min_iou"], totals["max_score_diff"] = (
            min(totals["min_iou"], m["min_iou"]),
            max(totals["max_score_diff"], m["max_score_diff"]),
        )
    if totals["expected"] == 0:
        raise ProjectError(
            f"no detection scored >= {min_score} on {len(images)} images: the parity check would "
            "pass vacuously (train the model first)"
        )
    # swaps among ties are excused while at least half the detections pair by content (an untrained FCOS swaps
    # ~1/3 of its near-equal scores): a wrong box decoding or score would move every box
    if totals["unmatched"] or totals["extra"] or totals["tied_swaps"] > 0.5 * totals["expected"]:
        raise ProjectError(f"{path} disagrees with the PyTorch model: {totals}")
    return totals
