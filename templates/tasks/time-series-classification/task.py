"""Time-series classification: the task's part of this project, the hooks the core scripts call.

train.py, evaluate.py, predict.py and export.py are the same in every generated project; what is particular to
classifying series lives here (and in data.py, which reads ``.ts`` / ``.npz`` files, splits and scores the
1-NN baseline):

    data_stage, build_data, data_meta     TRAIN split into fit / val (stratified, seeded); TEST held out
    model_from_meta, build_model          model.py's architecture for the data's channels and classes
    build_loss, train_batch_transform     cross-entropy; jitter / scaling of training batches (augmentation.ops)
    to_device, Metrics, MONITOR           a batch on the device; loss, top-1, macro-F1 (DDP-summed)
    final_metrics                         once, at the end: TEST scored with best.pt, beside the 1-NN baseline
    val_loader, write_report              evaluate.py: the val split, per-class precision / recall / F1
    EXPORT, export_example                export.py: input / output names, an example input
    predict_files, predict_loader, write_predictions     predict.py: .ts / .npz in, predictions.csv out

Series are normalized per channel with the mean and standard deviation of the fit split (saved in every
checkpoint); a shorter series keeps NaN in its padded tail, which the models read as its length.
"""

import glob
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import confusion
import data
from errors import ProjectError
from model import build_model as build_architecture

try:  # model.py says whether its models take any series length (all the owned 1-D classifiers do)
    from model import DYNAMIC_LENGTH
except ImportError:
    DYNAMIC_LENGTH = False

HERE = Path(__file__).resolve().parent
DEMO = HERE / "demo" / "GunPoint"
# best.pt and early stopping follow the validation top-1 accuracy unless training.monitor says otherwise
MONITOR = {"metric": "val_acc1", "mode": "max"}
# export.py: ONNX graph names, the exporter (model.py's ONNX_DYNAMO wins: the owned 1-D models say False), and
# the input axes that vary: the batch, and the length (axis 2 of batch x channels x length) where the model takes
# any length
EXPORT = {"input_names": ["series"], "output_names": ["logits"], "dynamo": False,
          "dynamic_axes": {0: "batch", 2: "length"} if DYNAMIC_LENGTH else {0: "batch"}}  # fmt: skip


# --- data --------------------------------------------------------------------------------------------------


@dataclass
class Data:
    """The splits of one run (normalized), their loaders, and the 1-NN baseline on the same splits."""

    root: Path
    classes: tuple[str, ...]
    fit: data.SeriesSet
    val: data.SeriesSet
    test: data.SeriesSet
    mean: np.ndarray
    std: np.ndarray
    train_sampler: DistributedSampler
    train_loader: DataLoader
    val_loader: DataLoader

    def describe(self) -> str:
        """One line for the training log."""
        c, t = self.fit.X.shape[1], self.fit.X.shape[2]
        return (f"{len(self.classes)} classes, {c} channel(s) x {t} steps, {len(self.fit)} train / {len(self.val)} "
                f"val series (from TRAIN) + {len(self.test)} TEST from {self.root}")  # fmt: skip


def resolve_root(root: str | None) -> Path:
    """``data.root``; ``None`` means the bundled GunPoint demo."""
    return DEMO if root is None else Path(root).expanduser()


def normalized(s: data.SeriesSet, mean: np.ndarray, std: np.ndarray) -> data.SeriesSet:
    """``s`` with each channel standardized (NaN padding stays NaN)."""
    X = ((s.X - mean[None, :, None]) / std[None, :, None]).astype(np.float32)
    return data.SeriesSet(X, s.lengths, s.y, s.classes, s.source)


def num_workers(cfg: dict[str, Any]) -> int:
    workers = cfg["data"]["num_workers"]
    return 0 if workers == "auto" else int(workers)  # in memory: a loader process only adds start-up time


def series_loader(s: data.SeriesSet, batch_size: int, workers: int, sampler: Any = None, drop_last: bool = False,
                  pin: bool = False) -> DataLoader:  # fmt: skip
    dataset = TensorDataset(torch.from_numpy(s.X), torch.from_numpy(s.y))
    # the loader's own generator: worker seeds must not come from the training RNG (exact --resume)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin,
                      drop_last=drop_last, persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip


def splits(cfg: dict[str, Any]) -> tuple[Path, data.SeriesSet, data.SeriesSet, data.SeriesSet]:
    """(root, fit, val, test), unnormalized: val is carved from TRAIN (stratified, seeded with run.seed)."""
    d = cfg["data"]
    root = resolve_root(d["root"])
    train, test = data.load_split(root, d["fill"])
    fit_index, val_index = data.stratified_split(train.y, d["val_fraction"], cfg["run"]["seed"])
    return root, train.subset(fit_index), train.subset(val_index), test


def data_stage(cfg: dict[str, Any], epoch: int) -> int:
    """One stage for the whole run (no progressive resizing for series)."""
    return 0


def build_data(cfg: dict[str, Any], stage: int, *, rank: int, world_size: int, pin_memory: bool) -> Data:
    """Read TRAIN and TEST at data.root, split TRAIN, normalize with the fit split's statistics, build loaders."""
    root, fit, val, test = splits(cfg)
    mean, std = data.channel_stats(fit)
    fit, val, test = (normalized(s, mean, std) for s in (fit, val, test))
    batch, workers = cfg["data"]["batch_size"], num_workers(cfg)
    sampler = DistributedSampler(TensorDataset(torch.from_numpy(fit.y)), num_replicas=world_size, rank=rank,
                                 shuffle=True, seed=cfg["run"]["seed"])  # fmt: skip
    # drop the ragged last batch (a batch of 1 breaks BatchNorm) unless the shard is smaller than one batch
    train_loader = series_loader(fit, batch, workers, sampler, drop_last=len(sampler) >= batch, pin=pin_memory)
    shard = np.arange(rank, len(val), world_size)  # each rank a disjoint share of val: exact reduced metrics
    val_loader = series_loader(val.subset(shard) if world_size > 1 else val, batch, workers, pin=pin_memory)
    return Data(root, fit.classes, fit, val, test, mean, std, sampler, train_loader, val_loader)


def data_meta(cfg: dict[str, Any], loaded: Data, log: Callable[..., None] = print) -> dict[str, Any]:
    """What rebuilds the model and its preprocessing later (saved in every checkpoint): plain values only."""
    m = cfg["model"]
    if len(loaded.classes) != m["num_classes"]:
        log(f"note: {loaded.root} has {len(loaded.classes)} classes; config.yaml says {m['num_classes']}: "
            "using the data's")  # fmt: skip
    # the baseline a user should compare with, on the same split, before any training
    baseline = data.one_nn_accuracy(loaded.fit, loaded.val)
    log(f"1-NN Euclidean baseline (fit split as the reference set): val {baseline:.1f}%")
    return {
        "arch": m["arch"],
        "num_classes": len(loaded.classes),
        "classes": list(loaded.classes),
        "channels": int(loaded.fit.X.shape[1]),
        "length": int(loaded.fit.X.shape[2]),
        "mean": loaded.mean.tolist(),
        "std": loaded.std.tolist(),
        "fill": cfg["data"]["fill"],
    }


# --- model and loss ------------------------------------------------------------------------------------------


def model_from_meta(meta: dict[str, Any], **kwargs: Any) -> nn.Module:
    """The architecture with fresh weights for the data's classes and channels."""
    return build_architecture(meta["arch"], meta["num_classes"], meta["channels"], **kwargs)


def build_model(cfg: dict[str, Any], meta: dict[str, Any], log: Callable[..., None] = print) -> nn.Module:
    """The model to train (from scratch: there are no pretrained weights for these models)."""
    m = cfg["model"]
    if m.get("pretrained"):
        raise ProjectError("model.pretrained: the time-series models train from scratch; set it to false")
    return model_from_meta(meta, dropout=m["dropout"])


def build_loss(cfg: dict[str, Any], meta: dict[str, Any] | None = None) -> nn.Module:
    """Cross-entropy (with label smoothing when training.label_smoothing is set)."""
    return nn.CrossEntropyLoss(label_smoothing=cfg["training"].get("label_smoothing") or 0.0)


def train_batch_transform(cfg: dict[str, Any], meta: dict[str, Any]) -> Callable[..., Any] | None:
    """augmentation.ops on training batches, in the training process (so --resume replays them exactly):
    ``jitter`` adds N(0, sigma) noise, ``scaling`` multiplies each series by 1 + N(0, sigma) (Um et al. 2017,
    arXiv:1706.00527); NaN padding stays NaN. None when there are no ops."""
    ops = (cfg.get("augmentation") or {}).get("ops") or []
    unknown = [op["name"] for op in ops if op["name"] not in data.SUPPORTED_OPS]
    if unknown:
        raise ProjectError(f"augmentation.ops {unknown}: supported are {', '.join(data.SUPPORTED_OPS)}")
    if not ops:
        return None

    def transform(inputs: torch.Tensor, targets: Any) -> tuple[torch.Tensor, Any]:
        for op in ops:
            if op["name"] == "jitter":
                inputs = inputs + op["sigma"] * torch.randn_like(inputs)
            else:
                inputs = inputs * (1 + op["sigma"] * torch.randn(len(inputs), *[1] * (inputs.ndim - 1),
                                                                 device=inputs.device))  # fmt: skip
        return inputs, targets

    return transform


def to_device(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(series, class indices) of a loader batch, on ``device``."""
    series, targets = batch
    return series.to(device, non_blocking=True), targets.to(device, non_blocking=True)


# --- metrics -------------------------------------------------------------------------------------------------


class Metrics(confusion.ConfusionMetrics):
    """Loss, top-1 accuracy, macro-F1 and the confusion matrix of one split (confusion.py): ``split="val"``
    summed over the DDP ranks, each with a disjoint shard; the final TEST scoring on rank 0 alone
    (``distributed=False``)."""

    noun = "series"


@torch.no_grad()
def final_metrics(cfg: dict[str, Any], meta: dict[str, Any], loaded: Data, checkpoint: Path,
                  device: torch.device) -> dict[str, float]:  # fmt: skip
    """TEST, scored once with the checkpoint the validation split selected, and the 1-NN Euclidean baseline on
    the same split (fit series as its reference set): summary.json's test_acc1, test_macro_f1, baseline_test_acc1."""
    from checkpoint import load_model

    model, _ = load_model(checkpoint)
    model.to(device)
    metrics = Metrics(meta, device, split="test", distributed=False)
    for series, targets in series_loader(loaded.test, cfg["data"]["batch_size"], 0):
        metrics.update(model(series.to(device)), targets.to(device))
    scores = metrics.compute()
    baseline = data.one_nn_accuracy(loaded.fit, loaded.test)
    print(f"TEST ({len(loaded.test)} series, {checkpoint.name}): acc1 {scores['test_acc1']:.2f}%  "
          f"macro-F1 {scores['test_macro_f1']:.2f}%  | 1-NN Euclidean baseline {baseline:.2f}%")  # fmt: skip
    return {"test_acc1": scores["test_acc1"], "test_macro_f1": scores["test_macro_f1"], "baseline_test_acc1": baseline}


# --- evaluate.py ----------------------------------------------------------------------------------------------


def val_loader(cfg: dict[str, Any], meta: dict[str, Any], batch_size: int | None = None) -> DataLoader:
    """The validation split of the run (the same stratified, seeded carve-out of TRAIN), normalized as trained."""
    _, _, val, _ = splits(cfg)
    if list(val.classes) != meta["classes"]:
        raise ProjectError(f"the data's classes {list(val.classes)} differ from the model's {meta['classes']}")
    val = normalized(val, np.asarray(meta["mean"], np.float32), np.asarray(meta["std"], np.float32))
    return series_loader(val, batch_size or cfg["data"]["batch_size"], num_workers(cfg))


# evaluate.py's report: the per-class table, and per_class.json with macro-F1 and the confusion matrix
write_report = confusion.write_report


# --- export.py ----------------------------------------------------------------------------------------------


def export_example(meta: dict[str, Any], batch: int, seed: int) -> torch.Tensor:
    """A batch of random normalized series, ``batch x channels x length``. Seed 0 (what export.py traces) is at the
    training length; where the model takes any length (DYNAMIC_LENGTH), the parity checks' seeds (1-3) are 5, 10,
    15 steps shorter, their rows after the first with NaN-padded tails, so the ONNX graph's length axis and the
    padding masks are checked, not only the traced shape."""
    g, length = torch.Generator().manual_seed(seed), meta["length"]
    if seed == 0 or not DYNAMIC_LENGTH:
        return torch.randn(batch, meta["channels"], length, generator=g)
    length = max(min(length, 8), length - 5 * seed)
    x = torch.randn(batch, meta["channels"], length, generator=g)
    valid = torch.randint(max(1, length // 2), length + 1, (batch,), generator=g)
    valid[0] = length
    return x.masked_fill(torch.arange(length) >= valid[:, None, None], float("nan"))


# --- predict.py ---------------------------------------------------------------------------------------------


def predict_files(inputs: list[str]) -> list[Path]:
    """The ``.ts`` / ``.npz`` files named by files, folders and globs (a file's labels, if any, are ignored)."""
    files: list[Path] = []
    for item in inputs:
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        for match in map(Path, matches):
            if match.is_dir():
                files += sorted(p for p in match.rglob("*") if p.suffix in (".ts", ".npz") and p.is_file())
            elif match.is_file():
                files.append(match)
            else:
                raise data.DataError(f"{match}: no such file or folder")
    if not files:
        raise data.DataError(f"no .ts or .npz files in {' '.join(inputs)}")
    return list(dict.fromkeys(files))


def predict_series(files: list[Path], meta: dict[str, Any]) -> tuple[np.ndarray, list[tuple[Path, int]]]:
    """Every series of ``files``, normalized and padded to one width: (N x C x T, [(file, index in file)])."""
    arrays, where = [], []
    for path in files:
        raw = data.read_file(path, meta["fill"])
        if raw.X.shape[1] != meta["channels"]:
            raise data.DataError(f"{path}: {raw.X.shape[1]} channels; the model was trained on {meta['channels']}")
        arrays.append(raw.X)
        where += [(path, i) for i in range(len(raw.X))]
    width = max(a.shape[2] for a in arrays)
    X = np.concatenate([np.pad(a, ((0, 0), (0, 0), (0, width - a.shape[2])), constant_values=np.nan) for a in arrays])
    mean, std = np.asarray(meta["mean"], np.float32), np.asarray(meta["std"], np.float32)
    return ((X - mean[None, :, None]) / std[None, :, None]).astype(np.float32), where


def predict_loader(files: list[Path], meta: dict[str, Any], batch_size: int) -> DataLoader:
    """Batches of (series, row numbers), preprocessed as the training series were."""
    X, _ = predict_series(files, meta)
    return DataLoader(TensorDataset(torch.from_numpy(X), torch.arange(len(X))), batch_size=batch_size)


def write_predictions(out: Path, files: list[Path], logits: Any, meta: dict[str, Any], top_k: int) -> Path:
    """``out/predictions.csv``: each series (file, index in the file) with its top-k labels and probabilities.
    ``logits``: one array, or a list of per-batch arrays."""
    _, where = predict_series(files, meta)
    keys = ([str(file), index] for file, index in where)
    return confusion.write_top_k(out, ["file", "series"], keys, logits, meta["classes"], top_k)
