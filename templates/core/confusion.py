"""Single-label classification metrics from one confusion matrix: loss, top-1, per-class precision / recall / F1.

The classification tasks (images, texts, series) score a split with a subclass of ``ConfusionMetrics`` (task.py's
``Metrics``), write evaluate.py's report with ``write_report`` and predict.py's predictions.csv with
``write_top_k``. Every project gets this file with the core;
the tasks that do not classify (detection, segmentation, forecasting) have metrics of their own and leave it
unused.

Macro-F1 follows scikit-learn's ``f1_score(average="macro")``: the unweighted mean F1 over the classes that
occur in the targets or the predictions, so a class absent from both adds no meaningless zero (a split in which
every class occurs averages over all classes).
"""

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from errors import ProjectError


class ConfusionMetrics:
    """Summed cross-entropy and the confusion matrix of one split, accumulated per batch.

    ``confusion[i, j]`` counts the samples of true class i predicted (argmax) as class j. Under DDP each rank
    sees a disjoint shard of the split; ``compute`` sums the loss and the matrix over all ranks once, so every
    rank gets the metrics of the whole split, unless ``distributed`` is false (a split scored on one rank alone).
    ``split`` prefixes the keys ``compute`` returns (``val_loss``, ``test_acc1``).
    """

    noun = "samples"  # what the split holds, for the error a split without any raises ("images", "texts")
    epoch_macro_f1 = True  # whether compute() (metrics.csv, the epoch line) has {split}_macro_f1

    def __init__(
        self, meta: Mapping[str, Any], device: torch.device, split: str = "val", distributed: bool = True
    ) -> None:
        self.classes: list[str] = list(meta["classes"])
        self.split, self.distributed = split, distributed
        n = len(self.classes)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.confusion = torch.zeros(n, n, dtype=torch.int64, device=device)
        self.reduced = False

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch: ``logits`` (batch x classes), ``targets`` the class indices."""
        logits = logits.float()
        self.loss_sum += nn.functional.cross_entropy(logits, targets, reduction="sum")
        n = len(self.classes)
        self.confusion += torch.bincount(targets * n + logits.argmax(1), minlength=n * n).view(n, n)

    def compute(self) -> dict[str, float]:
        """``{split}_loss`` (mean cross-entropy), ``{split}_acc1`` and ``{split}_macro_f1`` (percent) over everything
        seen, on all ranks."""
        if self.distributed and dist.is_initialized() and not self.reduced:
            dist.all_reduce(self.loss_sum)
            dist.all_reduce(self.confusion)
            self.reduced = True
        count = int(self.confusion.sum())
        if count == 0:
            raise ProjectError(f"the {self.split} split yielded no {self.noun}")
        s = self.split
        values = {f"{s}_loss": float(self.loss_sum) / count,
                  f"{s}_acc1": 100.0 * float(self.confusion.diag().sum()) / count}  # fmt: skip
        if self.epoch_macro_f1:
            values[f"{s}_macro_f1"] = self.macro_f1()
        return values

    def per_class(self) -> list[dict[str, Any]]:
        """Each class's precision, recall and F1 (percent; 0 where undefined, as scikit-learn's
        ``zero_division=0``), its support (true samples) and how often it was predicted."""
        c = self.confusion.double().cpu()
        tp, predicted, actual = c.diag(), c.sum(0), c.sum(1)
        precision = tp / predicted.clamp(min=1)  # tp is 0 where nothing was predicted
        recall = tp / actual.clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        return [
            {"class": name, "precision": 100 * float(p), "recall": 100 * float(r), "f1": 100 * float(f),
             "support": int(s), "predicted": int(q)}
            for name, p, r, f, s, q in zip(self.classes, precision, recall, f1, actual, predicted, strict=True)
        ]  # fmt: skip

    def macro_f1(self) -> float:
        """The unweighted mean F1 (percent) over the classes that occur in the targets or the predictions."""
        rows = [r for r in self.per_class() if r["support"] or r["predicted"]]
        return sum(r["f1"] for r in rows) / max(1, len(rows))


def write_report(metrics: ConfusionMetrics, out: Path) -> dict[str, Any]:
    """Print the per-class table; write ``out/per_class.json`` (macro-F1, the rows, the confusion matrix)."""
    rows = metrics.per_class()
    width = max(5, *(len(r["class"]) for r in rows))
    print(f"{'class':<{width}}  precision  recall     f1  support")
    for r in rows:
        print(f"{r['class']:<{width}}  {r['precision']:9.2f}  {r['recall']:6.2f}  {r['f1']:5.2f}  {r['support']:7d}")
    macro_f1 = metrics.macro_f1()
    out.mkdir(parents=True, exist_ok=True)
    report = {"macro_f1": macro_f1, "per_class": rows, "confusion": metrics.confusion.cpu().tolist()}
    (out / "per_class.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return {"macro_f1": macro_f1, "per_class_json": str(out / "per_class.json")}


def write_top_k(
    out: Path,
    header: Sequence[str],
    keys: Iterable[Sequence[Any]],
    logits: np.ndarray | Sequence[np.ndarray],
    classes: Sequence[str],
    top_k: int,
) -> Path:
    """``out/predictions.csv``: per input, the columns that name it (``header`` / ``keys``: the file, a line or a
    series index) and its top-k labels with softmax probabilities, best first (ties keep the class order).
    ``logits``: one (inputs x classes) array, or one per batch in the inputs' order."""
    z = np.concatenate(logits) if isinstance(logits, list | tuple) else np.asarray(logits)
    z = z.astype(np.float64)
    probs = np.exp(z - z.max(1, keepdims=True))  # softmax in float64, shifted by the row max: no overflow
    probs /= probs.sum(1, keepdims=True)
    k = min(top_k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "predictions.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*header, *(f"{col}_{i + 1}" for i in range(k) for col in ("label", "prob"))])
        for key, row, p in zip(keys, order, probs, strict=True):
            writer.writerow([*key, *(v for c in row for v in (classes[c], f"{p[c]:.6f}"))])
    return path
