"""Image classification: the task's part of this project, the hooks the core scripts call.

train.py, evaluate.py, predict.py and export.py are the same in every generated project; what is particular to
classifying images lives here (and in data.py, which reads the ImageFolder and builds the transforms):

    data_stage, build_data, data_meta     the loaders (per progressive-resizing stage) and what the model needs
    model_from_meta, build_model          model.py's architecture; pretrained weights only in build_model
    build_loss, train_batch_transform     cross-entropy with label smoothing; MixUp / CutMix on training batches
    to_device, Metrics, MONITOR           a batch on the device; loss, top-1 and the confusion matrix (DDP-summed)
    val_loader, write_report              evaluate.py: the val split, per-class precision / recall / F1
    EXPORT, export_example                export.py: input / output names, an example input
    predict_files, predict_loader, write_predictions     predict.py: images in, predictions.csv out
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

import confusion
import data
from errors import ProjectError
from model import build_model as build_architecture
from weights import PretrainedWeightsError, load_pretrained

# best.pt and early stopping follow the validation top-1 accuracy unless training.monitor says otherwise
MONITOR = {"metric": "val_acc1", "mode": "max"}
# export.py: ONNX graph names, and the exporter (torch.export-based unless model.py sets ONNX_DYNAMO = False)
EXPORT = {"input_names": ["images"], "output_names": ["logits"], "dynamo": True}


# --- data --------------------------------------------------------------------------------------------------


def data_stage(cfg: dict[str, Any], epoch: int) -> int:
    """The image size at ``epoch``: the last progressive-resizing stage [start_epoch, size] that has begun."""
    size = cfg["data"]["image_size"]
    for start, stage_size in cfg["training"]["progressive_resizing"]:
        if epoch >= start:
            size = stage_size
    return size


def build_data(cfg: dict[str, Any], stage: int, *, rank: int, world_size: int, pin_memory: bool) -> data.Data:
    """The train / val loaders at image size ``stage`` (the ImageFolder at data.root, checked first)."""
    return data.load_data(cfg, stage, rank=rank, world_size=world_size, pin_memory=pin_memory)


def data_meta(cfg: dict[str, Any], loaded: data.Data, log: Callable[..., None] = print) -> dict[str, Any]:
    """What rebuilds the model and its preprocessing later (saved in every checkpoint): plain values only."""
    m, d = cfg["model"], cfg["data"]
    if len(loaded.classes) != m["num_classes"]:
        log(
            f"note: {loaded.root} has {len(loaded.classes)} classes; config.yaml says {m['num_classes']}: "
            "using the data's"
        )
    return {
        "arch": m["arch"],
        "num_classes": len(loaded.classes),
        "classes": loaded.classes,
        "small_input": m["small_input"],
        "image_size": d["image_size"],
        "eval_crop_pct": d["eval_crop_pct"],
        "mean": d["mean"],
        "std": d["std"],
    }


# --- model and loss ------------------------------------------------------------------------------------------


def model_from_meta(meta: dict[str, Any], **kwargs: Any) -> nn.Module:
    """The architecture with fresh weights (never downloads anything)."""
    return build_architecture(meta["arch"], meta["num_classes"], small_input=meta["small_input"], **kwargs)


def default_weights(arch: str) -> str:
    """The ImageNet weights for ``model.pretrained: true``: torchvision's DEFAULT, else timm's default tag."""
    from torchvision.models import get_model_weights

    try:
        return f"torchvision:{get_model_weights(arch).DEFAULT}"
    except ValueError:
        return f"timm:{arch}"


def build_model(cfg: dict[str, Any], meta: dict[str, Any], log: Callable[..., None] = print) -> nn.Module:
    """The model to train: dropout and stochastic depth from the config, then ``model.pretrained`` if set."""
    m = cfg["model"]
    model = model_from_meta(meta, drop_path_rate=m["drop_path"], dropout=m["dropout"])
    if m["pretrained"]:
        source = default_weights(m["arch"]) if m["pretrained"] is True else m["pretrained"]
        try:
            # a small-input stem (3x3, stride 1) has no ImageNet counterpart: load everything else
            log(load_pretrained(model, source, strict_backbone=not m["small_input"]))
        except (PretrainedWeightsError, FileNotFoundError) as e:
            offline = isinstance(e, PretrainedWeightsError) and e.unreachable
            raise ProjectError(
                f"{'cannot fetch' if offline else 'cannot load'} the pretrained weights {source} "
                f"({str(e).splitlines()[0]}): put a weights file on this machine and set model.pretrained: FILE "
                "in config.yaml (or pass --pretrained FILE), or train from scratch with --no-pretrained "
                "(model.pretrained: false)"
            ) from e
    return model


def build_loss(cfg: dict[str, Any], meta: dict[str, Any] | None = None) -> nn.Module:
    """Cross-entropy with label smoothing (Szegedy et al., arXiv:1512.00567); takes class indices or the soft
    targets MixUp / CutMix make. ``meta`` (what data_meta returned) is not needed here."""
    return nn.CrossEntropyLoss(label_smoothing=cfg["training"]["label_smoothing"])


def train_batch_transform(cfg: dict[str, Any], meta: dict[str, Any]) -> v2.Transform | None:
    """MixUp (Zhang et al., arXiv:1710.09412) or CutMix (Yun et al., arXiv:1905.04899) on a share of the
    training batches (augmentation.mix_prob), or None when both are off."""
    aug = cfg["augmentation"]
    mixes: list[v2.Transform] = []
    if aug["mixup_alpha"] and aug["mixup_alpha"] > 0:
        mixes.append(v2.MixUp(alpha=aug["mixup_alpha"], num_classes=meta["num_classes"]))
    if aug["cutmix_alpha"] and aug["cutmix_alpha"] > 0:
        mixes.append(v2.CutMix(alpha=aug["cutmix_alpha"], num_classes=meta["num_classes"]))
    if not mixes or not aug["mix_prob"]:
        return None
    return v2.RandomApply([v2.RandomChoice(mixes)], p=aug["mix_prob"])


def to_device(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, class indices) of a loader batch, on ``device``."""
    images, targets = batch
    return images.to(device, non_blocking=True), targets.to(device, non_blocking=True)


# --- metrics -------------------------------------------------------------------------------------------------


class Metrics(confusion.ConfusionMetrics):
    """Validation loss and top-1 accuracy per epoch, and the confusion matrix behind evaluate.py's per-class
    report (confusion.py; summed over the DDP ranks, each of which sees a disjoint shard of the val set)."""

    noun = "images"
    epoch_macro_f1 = False  # metrics.csv: loss and top-1; macro-F1 is in evaluate.py's report


# --- evaluate.py ----------------------------------------------------------------------------------------------


def val_loader(cfg: dict[str, Any], meta: dict[str, Any], batch_size: int | None = None) -> DataLoader:
    """The validation split of ``data.root`` at the checkpoint's image size; its classes must be the model's."""
    loader, classes = data.val_loader(cfg, meta["image_size"], batch_size)
    if classes != meta["classes"]:
        raise ProjectError(
            f"the val folders {classes} differ from the classes the model was trained on {meta['classes']}"
        )
    return loader


def write_report(metrics: Metrics, out: Path) -> dict[str, Any]:
    """Print the per-class table; write ``out/per_class.json`` and ``out/confusion_matrix.png``."""
    report = confusion.write_report(metrics, out)
    plot_confusion(metrics.confusion.cpu().numpy(), metrics.classes, out / "confusion_matrix.png")
    return {**report, "confusion_png": str(out / "confusion_matrix.png")}


def plot_confusion(counts: np.ndarray, classes: list[str], path: Path) -> None:
    """The confusion matrix, rows normalized to the true class (matplotlib's file backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = counts / np.maximum(1, counts.sum(1, keepdims=True))
    size = min(20, 2 + 0.4 * len(classes))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= 30:  # beyond that the labels overlap
        ax.set_xticks(range(len(classes)), classes, rotation=90)
        ax.set_yticks(range(len(classes)), classes)
        for i, j in zip(*np.nonzero(counts), strict=True):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")  # fmt: skip
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (counts; colour: share of the true class)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- export.py ----------------------------------------------------------------------------------------------


def export_example(meta: dict[str, Any], batch: int, seed: int) -> torch.Tensor:
    """A batch of random images at the checkpoint's size (parity checks use fresh seeds, not the traced one)."""
    size = meta["image_size"]
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --- predict.py ---------------------------------------------------------------------------------------------


def predict_files(inputs: list[str]) -> list[Path]:
    """The images named by files, folders and globs."""
    return data.image_files(inputs)


def predict_loader(files: list[Path], meta: dict[str, Any], batch_size: int) -> DataLoader:
    """Batches of (images, indices into ``files``), preprocessed as the validation images were."""
    transform = data.build_eval_transform(meta["image_size"], meta["eval_crop_pct"], meta["mean"], meta["std"])
    return DataLoader(data.ImageFiles(files, transform), batch_size=batch_size, shuffle=False)


def write_predictions(out: Path, files: list[Path], logits: list[np.ndarray], meta: dict[str, Any], top_k: int) -> Path:
    """``out/predictions.csv``: each file with its top-k labels and softmax probabilities, best first.
    ``logits``: predict_loader's batches' outputs, in file order."""
    return confusion.write_top_k(out, ["file"], ([str(f)] for f in files), logits, meta["classes"], top_k)
