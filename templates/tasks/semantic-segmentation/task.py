"""Semantic segmentation: the task's part of this project, the hooks the core scripts call.

train.py, evaluate.py, predict.py and export.py are the same in every generated project; what is particular to
labelling every pixel lives here (and in data.py, losses.py, metrics.py):

    data_stage, build_data, data_meta     the loaders (checked masks) and what the model needs
    model_from_meta, build_model          model.py's architecture; pretrained weights only in build_model
    build_loss, train_batch_transform     cross-entropy / Dice with the ignore index, class weights, aux weight
    to_device, Metrics, MONITOR           a batch on the device; mIoU, Dice, pixel accuracy (one DDP-summed matrix)
    val_loader, write_report              evaluate.py: the val split, per-class IoU and Dice
    EXPORT, export_example                export.py: input / output names, an example input
    predict_files, predict_loader, write_predictions     predict.py: images in, masks, overlays, fractions out
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

import data
from errors import ProjectError
from losses import CLASS_WEIGHTS, SegmentationLoss, median_frequency_weights
from metrics import ConfusionMatrix
from model import build_model as build_architecture

# best.pt and early stopping follow the validation mIoU unless training.monitor says otherwise
MONITOR = {"metric": "val_miou", "mode": "max"}
# export.py: ONNX graph names; height and width are dynamic (the U-Nets pad to their stride and crop back, the
# torchvision models resize their logits to the input): model.onnx takes images of any size, as predict.py feeds
EXPORT = {"input_names": ["images"], "output_names": ["logits"], "dynamo": True, "dynamic_hw": True}

# ImageNet weights of each zoo encoder, for model.pretrained: true on a U-Net
ENCODER_WEIGHTS = {
    "unet_resnet18": "torchvision:ResNet18_Weights.IMAGENET1K_V1",
    "unet_resnet34": "torchvision:ResNet34_Weights.IMAGENET1K_V1",
    "unet_mobilenet_v3_large": "torchvision:MobileNet_V3_Large_Weights.IMAGENET1K_V1",
}


# --- data --------------------------------------------------------------------------------------------------


def data_stage(cfg: dict[str, Any], epoch: int) -> int:
    """The training crop size (one stage: segmentation crops do not change size during a run)."""
    return cfg["data"]["image_size"]


def build_data(cfg: dict[str, Any], stage: int, *, rank: int, world_size: int, pin_memory: bool) -> data.Data:
    """The train / val loaders with ``stage``-pixel training crops (every mask checked first)."""
    return data.load_data(cfg, stage, rank=rank, world_size=world_size, pin_memory=pin_memory)


def data_meta(cfg: dict[str, Any], loaded: data.Data, log: Callable[..., None] = print) -> dict[str, Any]:
    """What rebuilds the model, its preprocessing and its loss later (saved in every checkpoint): plain values."""
    m, d = cfg["model"], cfg["data"]
    if len(loaded.classes) != m["num_classes"]:
        log(f"note: {loaded.root}/classes.txt has {len(loaded.classes)} classes; config.yaml says "
            f"{m['num_classes']}: using classes.txt")  # fmt: skip
    return {
        "arch": m["arch"],
        "num_classes": len(loaded.classes),
        "classes": loaded.classes,
        "norm": m.get("norm", "batch"),
        "image_size": d["image_size"],
        "mean": d["mean"],
        "std": d["std"],
        "class_pixels": [int(c) for c in loaded.class_pixels],
    }


# --- model and loss ------------------------------------------------------------------------------------------


def model_from_meta(meta: dict[str, Any], **kwargs: Any) -> nn.Module:
    """The architecture with fresh weights (never downloads anything)."""
    if meta["arch"].startswith("unet"):
        kwargs.setdefault("norm", meta["norm"])
    return build_architecture(meta["arch"], meta["num_classes"], **kwargs)


def build_model(cfg: dict[str, Any], meta: dict[str, Any], log: Callable[..., None] = print) -> nn.Module:
    """The model to train, then ``model.pretrained`` (true: the encoder's ImageNet weights; or a weights file,
    e.g. an smp ``Unet`` checkpoint of the same encoder)."""
    m, arch = cfg["model"], meta["arch"]
    pretrained = m.get("pretrained") or False
    if pretrained is True and not arch.startswith("unet"):
        # torchvision's DeepLabV3 / LR-ASPP builders load the ImageNet backbone themselves (downloads)
        return model_from_meta(meta, weights_backbone="DEFAULT")
    model = model_from_meta(meta)
    if not pretrained:
        return model
    from weights import PretrainedWeightsError, load_pretrained

    if pretrained is True and arch not in ENCODER_WEIGHTS:
        raise ProjectError(
            f"model.pretrained: {arch} has no pretrained encoder; use one of {', '.join(ENCODER_WEIGHTS)}"
        )
    source = ENCODER_WEIGHTS[arch] if pretrained is True else pretrained
    try:
        if pretrained is True:  # ImageNet classifier weights: the encoder only, its classifier head skipped
            log(load_pretrained(model.encoder, source, strict_backbone=False))
        else:
            log(load_pretrained(model, source))
    except (PretrainedWeightsError, FileNotFoundError) as e:
        raise ProjectError(f"cannot load the pretrained weights {source} ({str(e).splitlines()[0]}): put a weights "
                           "file on this machine and set model.pretrained: FILE, or train from scratch "
                           "(model.pretrained: false)") from e  # fmt: skip
    return model


def build_loss(cfg: dict[str, Any], meta: dict[str, Any] | None = None) -> nn.Module:
    """``loss.name`` (ce, dice, ce+dice), ``loss.class_weights`` (none, median_frequency, from ``meta``'s
    training-mask pixel counts) and ``loss.aux_weight`` for DeepLabV3's auxiliary head."""
    spec = cfg["loss"]
    weights = None
    if spec["class_weights"] not in CLASS_WEIGHTS:
        raise ProjectError(f"loss.class_weights {spec['class_weights']!r}: supported are {', '.join(CLASS_WEIGHTS)}")
    if spec["class_weights"] == "median_frequency":
        if meta is None:
            raise ProjectError("loss.class_weights: median_frequency needs the training masks' pixel counts")
        weights = median_frequency_weights(np.asarray(meta["class_pixels"]))
    try:
        return SegmentationLoss(spec["name"], weights, aux_weight=spec["aux_weight"], ignore_index=data.IGNORE_INDEX)
    except ValueError as e:
        raise ProjectError(str(e)) from e


def train_batch_transform(cfg: dict[str, Any], meta: dict[str, Any]) -> None:
    """No batch-level augmentation: MixUp / CutMix of label maps is not part of this recipe."""
    return


def to_device(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, masks) of a loader batch, on ``device``."""
    images, masks = batch
    return images.to(device, non_blocking=True), masks.to(device, non_blocking=True)


# --- metrics -------------------------------------------------------------------------------------------------


class Metrics:
    """Validation loss, mIoU, Dice and pixel accuracy from one confusion matrix over the whole split (metrics.py);
    under DDP ``compute`` sums the matrix over all ranks."""

    def __init__(self, meta: dict[str, Any], device: torch.device) -> None:
        self.classes: list[str] = list(meta["classes"])
        self.confusion = ConfusionMatrix(len(self.classes), device, ignore_index=data.IGNORE_INDEX)

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.confusion.update(logits, targets)

    def compute(self) -> dict[str, float]:
        """``{"val_loss", "val_miou", "val_dice", "val_pixel_acc"}`` over everything seen (all ranks), in %."""
        summary = self.confusion.summary()
        if int(self.confusion.matrix.sum()) == 0:
            raise data.DataError("the validation set yielded no labelled pixels")
        return summary

    def per_class(self) -> list[dict[str, Any]]:
        """IoU and Dice (in %, None where the class is in neither labels nor predictions) and the pixel count."""
        iou, dice = self.confusion.iou().cpu(), self.confusion.dice().cpu()
        pixels = self.confusion.matrix.sum(1).cpu()
        return [
            {
                "class": name,
                "iou": None if i.isnan() else 100 * float(i),
                "dice": None if d.isnan() else 100 * float(d),
                "pixels": int(p),
            }
            for name, i, d, p in zip(self.classes, iou, dice, pixels, strict=True)
        ]


# --- evaluate.py ----------------------------------------------------------------------------------------------


def val_loader(cfg: dict[str, Any], meta: dict[str, Any], batch_size: int | None = None) -> DataLoader:
    """The validation split of ``data.root``, masks checked against the model's class count."""
    return data.val_loader(cfg, meta["num_classes"], batch_size)


def write_report(metrics: Metrics, out: Path) -> dict[str, Any]:
    """Print the per-class table; write ``out/per_class.json`` (IoU, Dice, pixels, the confusion matrix)."""
    rows = metrics.per_class()
    width = max(5, *(len(r["class"]) for r in rows))
    print(f"{'class':<{width}}     iou    dice      pixels")
    for r in rows:
        iou, dice = (f"{v:7.2f}" if v is not None else "      -" for v in (r["iou"], r["dice"]))
        print(f"{r['class']:<{width}} {iou} {dice} {r['pixels']:11d}")
    out.mkdir(parents=True, exist_ok=True)
    summary = metrics.compute()
    report = {**summary, "per_class": rows, "confusion": metrics.confusion.matrix.cpu().tolist()}
    (out / "per_class.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return {"val_miou": summary["val_miou"], "per_class_json": str(out / "per_class.json")}


# --- export.py ----------------------------------------------------------------------------------------------


def export_example(meta: dict[str, Any], batch: int, seed: int) -> torch.Tensor:
    """A batch of random images at the training crop size (parity checks use fresh seeds, not the traced one)."""
    size = meta["image_size"]
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --- predict.py ---------------------------------------------------------------------------------------------


def predict_files(inputs: list[str]) -> list[Path]:
    """The images named by files, folders and globs."""
    return data.image_files(inputs)


def predict_loader(files: list[Path], meta: dict[str, Any], batch_size: int) -> DataLoader:
    """Batches of (images padded to the batch's largest, indices into ``files``), normalized as in validation."""
    dataset = data.ImageFiles(files, data.build_eval_transform(meta["mean"], meta["std"]))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=data.pad_collate)


def palette(n: int) -> np.ndarray:
    """n x 3 uint8 colours: the PASCAL VOC palette (bits of the class index spread over R, G, B)."""
    colours = np.zeros((n, 3), np.uint8)
    for c in range(n):
        v, r, g, b = c, 0, 0, 0
        for bit in range(8):
            r |= ((v >> 0) & 1) << (7 - bit)
            g |= ((v >> 1) & 1) << (7 - bit)
            b |= ((v >> 2) & 1) << (7 - bit)
            v >>= 3
        colours[c] = (r, g, b)
    return colours


def output_stems(files: list[Path]) -> list[str]:
    """The name each input's outputs get: its stem, or ``<folder>_<stem>`` where two inputs share a stem (then
    ``_<n>`` if that still repeats), so no prediction overwrites another."""
    counts: dict[str, int] = {}
    for file in files:
        counts[file.stem] = counts.get(file.stem, 0) + 1
    stems, taken = [], set()
    for file in files:
        stem = file.stem if counts[file.stem] == 1 else f"{file.parent.name}_{file.stem}"
        unique, n = stem, 1
        while unique in taken:
            unique, n = f"{stem}_{n}", n + 1
        taken.add(unique)
        stems.append(unique)
    return stems


def write_masks(
    out: Path, file: Path, labels: np.ndarray, meta: dict[str, Any], stem: str | None = None
) -> dict[str, float]:
    """``out/<stem>.png`` (class indices, palette PNG) and ``out/<stem>_overlay.png``; returns class fractions.

    The overlay blends each class's VOC colour at 50% over the image; class 0 (VOC's background) stays
    uncoloured so the image shows through.
    """
    colours = palette(256)
    mask = Image.fromarray(labels.astype(np.uint8), mode="P")
    mask.putpalette(colours.ravel().tolist())
    stem = stem or file.stem
    mask.save(out / f"{stem}.png")  # a P image's pixels are the indices: np.asarray(Image.open(...)) reads them
    with Image.open(file) as img:
        rgb = np.asarray(img.convert("RGB"), np.float32)
    tint = colours[labels].astype(np.float32)
    blend = np.where((labels > 0)[..., None], 0.5 * rgb + 0.5 * tint, rgb)
    Image.fromarray(blend.round().astype(np.uint8)).save(out / f"{stem}_overlay.png")
    counts = np.bincount(labels.ravel(), minlength=meta["num_classes"])
    return {name: float(c) / labels.size for name, c in zip(meta["classes"], counts, strict=True)}


def write_predictions(
    out: Path, files: list[Path], logits: list[np.ndarray] | np.ndarray, meta: dict[str, Any], top_k: int = 0
) -> Path:
    """Per image ``out/<stem>.png`` and ``out/<stem>_overlay.png`` (inputs sharing a stem: ``output_stems``);
    ``out/fractions.json`` with each image's per-class pixel fractions. ``logits``: the per-batch outputs of
    ``predict_loader``'s batches (padded to each batch's largest image; cropped back here to each image's size).
    ``top_k`` is not used."""
    batches = [logits] if isinstance(logits, np.ndarray) else list(logits)
    out.mkdir(parents=True, exist_ok=True)
    fractions: dict[str, dict[str, float]] = {}
    stems = output_stems(files)
    i = 0
    for batch in batches:
        for labels in batch.argmax(1):
            if i >= len(files):
                raise ProjectError(f"predict: more outputs than the {len(files)} images")
            file = files[i]
            with Image.open(file) as img:
                w, h = img.size
            fractions[str(file)] = write_masks(out, file, labels[:h, :w], meta, stems[i])
            i += 1
    if i != len(files):
        raise ProjectError(f"predict: {i} outputs for {len(files)} images")
    path = out / "fractions.json"
    path.write_text(json.dumps(fractions, indent=2) + "\n", encoding="utf-8")
    return path
