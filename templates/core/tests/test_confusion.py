"""Tests of confusion.py, the classification tasks' metrics, against numbers worked out by hand from one small
confusion matrix, in one process and summed over two gloo processes (DDP on CPU)."""

import json
import math
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from confusion import ConfusionMetrics, write_report, write_top_k
from errors import ProjectError

CLASSES = ["a", "b", "c", "d"]
# (true, predicted) of 8 samples. Rows true, columns predicted:
#        a  b  c  d
#   a [  3  1  0  0 ]
#   b [  1  2  1  0 ]     c is predicted once and never true; d occurs nowhere
PAIRS = [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (1, 0), (1, 2)]
CONFUSION = [[3, 1, 0, 0], [1, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
# a: precision 3/4, recall 3/4, F1 3/4; b: 2/3, 2/4, F1 2 (2/3)(1/2) / (2/3 + 1/2) = 4/7; c: 0 (1 false positive)
F1 = {"a": 3 / 4, "b": 4 / 7, "c": 0.0, "d": 0.0}
MACRO_F1 = 100 * (3 / 4 + 4 / 7 + 0) / 3  # over a, b, c (d is in neither targets nor predictions): 37/84
# logits: ln 5 for the predicted class, 0 for the 3 others, so the softmax denominator is 8 and the cross-entropy
# is ln(8/5) for the 5 right predictions and ln 8 for the 3 wrong ones
LOSS = (5 * math.log(8 / 5) + 3 * math.log(8)) / 8


def batch(pairs: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.zeros(len(pairs), len(CLASSES))
    logits[torch.arange(len(pairs)), [p for _, p in pairs]] = math.log(5)
    return logits, torch.tensor([t for t, _ in pairs])


def scored(pairs: list[tuple[int, int]], **kwargs: Any) -> ConfusionMetrics:
    metrics = ConfusionMetrics({"classes": CLASSES}, torch.device("cpu"), **kwargs)
    for i in range(0, len(pairs), 3):  # batches of 3, 3 and 2
        metrics.update(*batch(pairs[i : i + 3]))
    return metrics


def test_the_metrics_of_a_known_confusion_matrix() -> None:
    metrics = scored(PAIRS)
    assert metrics.confusion.tolist() == CONFUSION
    values = metrics.compute()
    assert values.keys() == {"val_loss", "val_acc1", "val_macro_f1"}
    assert values["val_loss"] == pytest.approx(LOSS)
    assert values["val_acc1"] == pytest.approx(100 * 5 / 8)
    assert values["val_macro_f1"] == pytest.approx(MACRO_F1)
    rows = {r["class"]: r for r in metrics.per_class()}
    assert rows["b"]["precision"] == pytest.approx(100 * 2 / 3) and rows["b"]["recall"] == pytest.approx(50)
    assert {name: r["f1"] for name, r in rows.items()} == pytest.approx({k: 100 * v for k, v in F1.items()})
    assert [(r["support"], r["predicted"]) for r in rows.values()] == [(4, 4), (4, 3), (0, 1), (0, 0)]


def test_split_prefix_and_a_task_without_macro_f1_per_epoch() -> None:
    assert scored(PAIRS, split="test").compute()["test_acc1"] == pytest.approx(62.5)

    class TopOneOnly(ConfusionMetrics):
        epoch_macro_f1 = False

    metrics = TopOneOnly({"classes": CLASSES}, torch.device("cpu"))
    metrics.update(*batch(PAIRS))
    assert metrics.compute().keys() == {"val_loss", "val_acc1"}


def test_an_empty_split_is_one_line_naming_the_split_and_the_samples() -> None:
    class Texts(ConfusionMetrics):
        noun = "texts"

    with pytest.raises(ProjectError, match="^the val split yielded no texts$"):
        Texts({"classes": CLASSES}, torch.device("cpu")).compute()


def test_write_report_writes_the_rows_and_the_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = write_report(scored(PAIRS), tmp_path / "report")
    saved = json.loads(Path(report["per_class_json"]).read_text(encoding="utf-8"))
    assert report["macro_f1"] == saved["macro_f1"] == pytest.approx(MACRO_F1)
    assert saved["confusion"] == CONFUSION and [r["class"] for r in saved["per_class"]] == CLASSES
    assert "precision  recall" in capsys.readouterr().out


def _ddp_rank(rank: int, store: str, queue: Any) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    local = PAIRS[rank::2]  # disjoint halves of the split
    summed, alone = scored(local).compute(), scored(local, distributed=False).compute()
    queue.put((rank, summed, alone["val_acc1"]))
    dist.destroy_process_group()


def test_write_top_k_ranks_softmax_probabilities_and_keeps_class_order_on_ties(tmp_path: Path) -> None:
    """ln 5 for one class and 0 for the others: probabilities 5/8, then three ties of 1/8 in class order; a
    logit of 1000 (exp overflows in float32) still gives probability 1; batches concatenate in order."""
    import csv

    import numpy as np

    batches = [np.array([[0.0, math.log(5), 0.0, 0.0]], dtype=np.float32), np.array([[1000.0, 0.0, 0.0, 0.0]])]
    path = write_top_k(tmp_path / "out", ["file", "series"], [["x.ts", 0], ["x.ts", 1]], batches, CLASSES, top_k=3)
    rows = list(csv.reader(path.open(encoding="utf-8")))
    assert path == tmp_path / "out" / "predictions.csv"
    assert rows[0] == ["file", "series", "label_1", "prob_1", "label_2", "prob_2", "label_3", "prob_3"]
    assert rows[1] == ["x.ts", "0", "b", "0.625000", "a", "0.125000", "c", "0.125000"]
    assert rows[2][:4] == ["x.ts", "1", "a", "1.000000"]
    # top_k beyond the classes: every class, once
    wide = write_top_k(tmp_path / "wide", ["file"], [["y"]], batches[0], CLASSES, top_k=10)
    assert len(next(csv.reader(wide.open(encoding="utf-8")))) == 1 + 2 * len(CLASSES)
    with pytest.raises(ValueError):  # a key for every row of logits, no more, no fewer
        write_top_k(tmp_path / "bad", ["file"], [["y"], ["z"]], batches[0], CLASSES, top_k=1)


def test_ddp_ranks_each_get_the_metrics_of_the_whole_split(tmp_path: Path) -> None:
    """Two gloo processes, each with half the samples: compute() on each returns the one-process numbers;
    ``distributed=False`` keeps the rank's own (the halves score 3/4 and 2/4 right)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_rank, args=(rank, str(tmp_path / "store"), queue)) for rank in (0, 1)]
    for p in procs:
        p.start()
    results = {rank: (summed, alone) for rank, summed, alone in (queue.get(timeout=60) for _ in procs)}
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    expected = {"val_loss": LOSS, "val_acc1": 62.5, "val_macro_f1": MACRO_F1}
    for rank in (0, 1):
        assert results[rank][0] == pytest.approx(expected)
    assert results[0][1] == pytest.approx(75.0) and results[1][1] == pytest.approx(50.0)
