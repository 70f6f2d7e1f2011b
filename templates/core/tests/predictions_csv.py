"""The check the classification tasks' ``same_predictions`` fixtures share (tests/conftest.py): two predictions.csv
files (task.write_predictions: the columns that name a row, then label_1, prob_1, label_2, ...) that PyTorch and
onnxruntime wrote for the same inputs. The tasks without a predictions.csv check their own outputs instead."""

import csv
from pathlib import Path

import pytest


def same_top_k(a_path: Path, b_path: Path) -> None:
    """The same rows (every column before the labels: file, line, series...) and top-1 labels, probabilities
    within 1e-4. Lower-ranked labels are not compared: two classes within rounding of each other may swap."""
    a, b = (list(csv.DictReader(p.read_text(encoding="utf-8").splitlines())) for p in (a_path, b_path))
    assert len(a) == len(b) > 0
    for row_a, row_b in zip(a, b, strict=True):
        assert row_a.keys() == row_b.keys()
        keys = list(row_a)
        for key in keys[: keys.index("label_1") + 1]:
            assert row_a[key] == row_b[key], key
        for key in (k for k in keys if k.startswith("prob")):
            assert float(row_a[key]) == pytest.approx(float(row_b[key]), abs=1e-4), key
